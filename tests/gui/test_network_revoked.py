"""The Network page says why the machine left a network it did not choose to leave."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from heatshare.gui.network_page import NetworkPage
from heatshare.protocol.coordinator_api import NODE_REVOKED
from heatshare.protocol.local_api import NetworkStatus

REASON = (
    f"{NODE_REVOKED} on 2026-11-27 11:30 UTC, so it gets no more work. What it earned before "
    "stays in the ledger; to join again, enrol it with a new pairing code."
)


def test_a_revoked_machine_is_told_why_until_it_joins_again(qtbot: QtBot) -> None:
    page = NetworkPage()
    qtbot.addWidget(page)
    page.show()
    page.set_network(NetworkStatus(enrolled=False))
    assert page.not_enrolled.isVisible() and not page.left_reason.isVisible()

    page.set_network(NetworkStatus(enrolled=False, last_error=REASON))
    assert page.not_enrolled.isVisible() and page.left_reason.isVisible()
    assert page.left_reason.text() == REASON

    page.set_network(
        NetworkStatus(enrolled=True, coordinator_url="https://heat.example.org", node_id=4)
    )
    assert not page.not_enrolled.isVisible() and not page.left_reason.isVisible()


def test_out_of_a_network_the_card_keeps_its_height(qtbot: QtBot) -> None:
    page = NetworkPage()
    qtbot.addWidget(page)
    page.resize(900, 700)
    page.show()
    page.set_network(NetworkStatus(enrolled=False, last_error=REASON))
    qtbot.waitUntil(page.not_enrolled.isVisible)
    card = page.not_enrolled
    # The card is as tall as what it says, not the page's height spread between its lines.
    assert card.height() <= card.sizeHint().height() + 4, (card.height(), card.sizeHint())
    assert page.not_enrolled_title.text() == "This computer is not part of a compute network"
