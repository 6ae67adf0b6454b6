"""The app's network pages against the real agent: its refusals, and the demo end to end.

No fake here: a real agent process (tests/agent_process.py), which for the demo starts the
real demo coordinator, whose requester submits the real example jobs, which run in the real
sandbox; the app shows what comes back.
"""

from __future__ import annotations

import socket

import pytest
from agentproc import RealAgent
from appfactory import AppFactory
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from heatshare.gui import tray_menu
from heatshare.gui.window import JOBS, NETWORK
from heatshare.protocol.local_api import JobPhase


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_wizard_shows_the_real_agents_sentence(
    qtbot: QtBot, real_agent: RealAgent, make_app: AppFactory
) -> None:
    root = make_app(agent=real_agent, wizard=True)
    qtbot.waitUntil(lambda: root.wizard is not None, timeout=10_000)  # a new agent: not enrolled
    wizard = root.wizard
    assert wizard is not None
    url = f"http://127.0.0.1:{closed_port()}"
    wizard.url.setText(url)
    wizard.code.setText("ABCD-2345")
    wizard.join_button.click()
    assert wizard.busy_box.isVisible()
    qtbot.waitUntil(wizard.error.isVisible, timeout=30_000)
    text = wizard.error_label.text()
    assert "127.0.0.1" in text
    assert wizard.join_button.isEnabled()
    root.window.show_page(NETWORK)
    qtbot.waitUntil(root.window.network_page.not_enrolled.isVisible, timeout=5000)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_demo_jobs_run_and_credits_arrive_in_the_app(
    qtbot: QtBot, real_agent: RealAgent, make_app: AppFactory
) -> None:
    root = make_app(agent=real_agent, demo=True, wizard=True)
    assert root.window.page == JOBS
    page = root.window.jobs_page
    # A finished, credited job with its picture, within the newcomer's minute (and some).
    qtbot.waitUntil(
        lambda: (
            page.jobs is not None
            and any(j.phase is JobPhase.DONE and j.credited_minor for j in page.jobs.history)
        ),
        timeout=120_000,
    )
    assert root.wizard is None
    qtbot.waitUntil(
        lambda: page.images.count() > 0 and not page.images.item(0).icon().isNull(),
        timeout=20_000,
    )
    done = next(j for j in page.jobs.history if j.phase is JobPhase.DONE and j.credited_minor)
    page.select_attempt(done.attempt_id)
    qtbot.waitUntil(lambda: "--- heatshare ---" in page.log_view.toPlainText(), timeout=10_000)
    row = next(
        r
        for r in range(page.table.rowCount())
        if page.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == done.attempt_id
    )
    assert page.table.item(row, 3).text().endswith(" credits")

    qtbot.waitUntil(
        lambda: bool(root.bridge.last_status and root.bridge.last_status.earned_today_minor),
        timeout=20_000,
    )
    status = root.bridge.last_status
    assert status is not None
    earned = tray_menu.tray_tooltip(status, reachable=True).splitlines()[-1]
    assert earned.startswith("Earned today: ") and earned.endswith(" credits")

    root.window.show_page(NETWORK)
    net = root.window.network_page
    qtbot.waitUntil(lambda: bool(net.earnings and net.earnings.entries), timeout=20_000)
    assert net.network_card.value.text() == "Demo network"
    assert net.balance_card.value.text().endswith(" credits")
    assert net.entries.rowCount() == len(net.earnings.entries)
    assert net.chart is not None
    qtbot.waitUntil(lambda: net.chart.repaint_count >= 1, timeout=5000)
    assert int(net.chart.series.cumulative_minor[-1]) == sum(
        e.amount_minor for e in net.earnings.entries if e.kind != "payout"
    )
