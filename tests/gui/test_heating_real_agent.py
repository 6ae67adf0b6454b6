"""The Heating page against the real agent: its answers, its refusals and its probe, no fake.

A real agent process (tests/agent_process.py) on a temp profile, with no room thermometer to
begin with; the Home Assistant it is pointed at is a closed port on loopback, so the probe's
failure is the agent's own sentence about a server that does not answer.
"""

from __future__ import annotations

import socket

import pytest
from agentproc import RealAgent
from appfactory import AppFactory
from pytestqt.qtbot import QtBot

from heatshare.gui.app import HeatshareApp
from heatshare.gui.heating_page import TAB_ROOM, HeatingPage
from heatshare.gui.window import HEATING
from heatshare.protocol.client import AgentClient
from heatshare.protocol.discovery import read_runtime, read_token
from heatshare.protocol.heating import HeatMode, RoomSourceKind


@pytest.fixture
def root(real_agent: RealAgent, make_app: AppFactory) -> HeatshareApp:
    return make_app(agent=real_agent)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client(agent: RealAgent) -> AgentClient:
    info = read_runtime(agent.paths)
    assert info is not None
    return AgentClient(info.base_url, read_token(agent.paths))


def test_the_heating_page_with_the_real_agent(
    qtbot: QtBot, root: HeatshareApp, real_agent: RealAgent
) -> None:
    root.window.show_page(HEATING)
    page = root.window.heating_page
    assert isinstance(page, HeatingPage)
    qtbot.waitUntil(lambda: page.status is not None and page.saved is not None, timeout=10_000)
    assert page.status is not None
    assert page.status.room_source is RoomSourceKind.NONE  # a new profile: no thermometer
    assert page.room_card.value.text() == "not available"
    assert page.reason.text() and page.reason.text() != "The agent gave no reason."
    assert page.source.currentText().startswith("None")

    # The mode acts at once, and the agent says so in its own status.
    page.mode_buttons[HeatMode.QUIET].click()
    qtbot.waitUntil(
        lambda: page.status is not None and page.status.mode is HeatMode.QUIET, timeout=5000
    )
    qtbot.waitUntil(
        lambda: (
            root.bridge.last_status is not None
            and root.bridge.last_status.heating is not None
            and root.bridge.last_status.heating.mode is HeatMode.QUIET
        ),
        timeout=5000,
    )

    # A Home Assistant that does not answer: the Test shows the agent's sentence.
    page.tabs.setCurrentIndex(TAB_ROOM)
    page.source.setCurrentIndex(1)
    page.ha_url.setText(f"http://127.0.0.1:{closed_port()}")
    page.ha_token.setText("a-long-lived-token")
    page.find_button.click()
    qtbot.waitUntil(lambda: page.probing is None, timeout=20_000)
    assert "#c62828" in page.probe_label.styleSheet()
    assert page.probe_label.text().endswith(".")  # a sentence, not a traceback
    assert "127.0.0.1" in page.probe_label.text()

    # Saved with a sensor named by hand: the agent keeps the token and never sends it back.
    page._fill_entities([], "sensor.study_temperature", None)
    page._form_edited()
    page.save_button.click()
    qtbot.waitUntil(lambda: page.form_state.text() == "Saved.", timeout=10_000)
    assert page.ha_token.text() == ""
    assert page.ha_token.placeholderText() == "stored; leave empty to keep it"
    c = client(real_agent)
    try:
        stored = c.heating_settings()
        assert stored.room_source is RoomSourceKind.HOME_ASSISTANT
        assert stored.home_assistant is not None
        assert stored.home_assistant.token is None
        assert stored.home_assistant.entity_id == "sensor.study_temperature"
        assert stored.mode is HeatMode.QUIET  # Save kept the mode in force
    finally:
        c.close()

    # Saved again without typing the token: the stored one is kept, so the agent accepts it.
    page.comfort_c.setValue(page.comfort_c.value() + 0.5)
    page.save_button.click()
    qtbot.waitUntil(lambda: page.form_state.text() == "Saved.", timeout=10_000)
    assert not page.form_error.isVisible()
