"""The tray's menu, tooltip and icon state as pure functions of the agent's status."""

from __future__ import annotations

from typing import Any

import pytest

from heatshare.domain.readings import Provenance
from heatshare.gui.tray_menu import (
    CONNECTING_TEXT,
    INFO,
    OPEN,
    PAUSE,
    QUIT,
    QUIT_AND_STOP,
    RESUME,
    TOOLTIP_MAX,
    UNREACHABLE_TEXT,
    MenuEntry,
    tray_menu_entries,
    tray_state,
    tray_tooltip,
)
from heatshare.protocol.local_api import AgentState, AgentStatus


def status(state: AgentState = AgentState.HEATING, **kw: Any) -> AgentStatus:
    fields: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "study-pc",
        "state": state,
        "heat_w": 182.4,
        "heat_provenance": Provenance.ENERGY_COUNTER,
        "hottest_name": "GPU 0",
        "hottest_c": 71.2,
    }
    fields.update(kw)
    return AgentStatus(**fields)


def actions(entries: list[MenuEntry]) -> dict[str, MenuEntry]:
    return {e.key: e for e in entries if not e.separator}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (AgentState.HEATING, "heating"),
        (AgentState.IDLE, "idle"),
        (AgentState.PAUSED, "paused"),
        (AgentState.STARTING, "idle"),
    ],
)
def test_state_follows_the_agent(state: AgentState, expected: str) -> None:
    assert tray_state(status(state), reachable=True) == expected


def test_state_is_unreachable_whatever_was_last_known() -> None:
    assert tray_state(status(AgentState.HEATING), reachable=False) == "unreachable"
    assert tray_state(None, reachable=False) == "unreachable"


def test_state_before_the_first_status_is_idle() -> None:
    assert tray_state(None, reachable=True) == "idle"


def test_menu_while_heating() -> None:
    entries = tray_menu_entries(status(AgentState.HEATING), reachable=True)
    assert [e.key for e in entries if not e.separator] == [INFO, OPEN, PAUSE, QUIT, QUIT_AND_STOP]
    assert entries[0] == MenuEntry(INFO, "Heating · 182 W", enabled=False)
    assert entries[1].separator
    by_key = actions(entries)
    assert by_key[OPEN].text == "Open Heatshare"
    assert by_key[PAUSE].text == "Pause for 1 hour"
    assert by_key[QUIT].text == "Quit Heatshare"
    assert by_key[QUIT_AND_STOP].text == "Quit and stop the agent"
    assert all(by_key[k].enabled for k in (OPEN, PAUSE, QUIT, QUIT_AND_STOP))


def test_menu_while_idle_offers_pause() -> None:
    entries = tray_menu_entries(status(AgentState.IDLE, heat_w=11.6), reachable=True)
    assert entries[0].text == "Idle · 12 W"
    assert actions(entries)[PAUSE].enabled
    assert RESUME not in actions(entries)


def test_menu_while_paused_offers_resume() -> None:
    entries = tray_menu_entries(status(AgentState.PAUSED, heat_w=9.0), reachable=True)
    by_key = actions(entries)
    assert entries[0].text == "Paused · 9 W"
    assert PAUSE not in by_key
    assert by_key[RESUME] == MenuEntry(RESUME, "Resume")


def test_menu_while_starting_without_heat_figure() -> None:
    entries = tray_menu_entries(status(AgentState.STARTING, heat_w=None), reachable=True)
    assert entries[0].text == "Starting"


def test_menu_says_when_heat_is_an_estimate() -> None:
    entries = tray_menu_entries(
        status(heat_w=1234.0, heat_provenance=Provenance.ESTIMATE), reachable=True
    )
    assert entries[0].text == "Heating · 1,234 W (estimated)"


def test_menu_while_unreachable_disables_what_needs_the_agent() -> None:
    for last_known in (None, status(AgentState.HEATING), status(AgentState.PAUSED)):
        entries = tray_menu_entries(last_known, reachable=False)
        by_key = actions(entries)
        assert entries[0] == MenuEntry(INFO, UNREACHABLE_TEXT, enabled=False)
        toggle = by_key.get(PAUSE) or by_key[RESUME]
        assert not toggle.enabled
        assert not by_key[QUIT_AND_STOP].enabled
        # The app itself can always be opened and quit.
        assert by_key[OPEN].enabled
        assert by_key[QUIT].enabled


def test_menu_before_the_first_status() -> None:
    entries = tray_menu_entries(None, reachable=True)
    by_key = actions(entries)
    assert entries[0].text == CONNECTING_TEXT
    assert not by_key[PAUSE].enabled  # nothing known yet to pause
    assert by_key[QUIT_AND_STOP].enabled


def test_separator_keys_are_unique() -> None:
    entries = tray_menu_entries(status(), reachable=True)
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys))


def test_tooltip_heating() -> None:
    assert tray_tooltip(status(), reachable=True) == (
        "Heatshare · Heating\nHeat: 182 W\nHottest: 71 °C (GPU 0)"
    )


def test_tooltip_in_fahrenheit() -> None:
    text = tray_tooltip(status(hottest_c=70.0), reachable=True, fahrenheit=True)
    assert text.endswith("Hottest: 158 °F (GPU 0)")


def test_tooltip_without_readings_says_not_available() -> None:
    text = tray_tooltip(
        status(AgentState.IDLE, heat_w=None, hottest_c=None, hottest_name=None), reachable=True
    )
    assert text == "Heatshare · Idle\nHeat: not available\nHottest: not available"


def test_tooltip_hottest_without_name() -> None:
    text = tray_tooltip(status(hottest_name=None), reachable=True)
    assert text.endswith("Hottest: 71 °C")


def test_tooltip_unreachable_and_connecting() -> None:
    assert tray_tooltip(status(), reachable=False) == f"Heatshare\n{UNREACHABLE_TEXT}"
    assert tray_tooltip(None, reachable=False) == f"Heatshare\n{UNREACHABLE_TEXT}"
    assert tray_tooltip(None, reachable=True) == f"Heatshare\n{CONNECTING_TEXT}"


def test_tooltip_fits_windows_limit_with_a_long_name() -> None:
    text = tray_tooltip(
        status(
            heat_w=12345.0,
            heat_provenance=Provenance.ESTIMATE,
            hottest_name="NVIDIA GeForce RTX 4090 Laptop GPU with a very long marketing name",
        ),
        reachable=True,
    )
    assert len(text) <= TOOLTIP_MAX
    assert "Hottest: 71 °C (NVIDIA GeForce RTX 4090 Lap…)" in text


def test_info_line_of_a_mostly_measured_heater_says_partly_estimated() -> None:
    s = AgentStatus.model_validate(
        {
            "protocol_version": 1,
            "agent_version": "0.1.0",
            "hostname": "shed",
            "state": "heating",
            "heat_w": 693.0,
            "heat_provenance": "estimate",
            "gpus": [
                {"index": 0, "name": "H100", "power_w": 680.0, "power_provenance": "energy_counter"}
            ],
            "host": {"cpu_power_w": 13.0, "cpu_power_provenance": "estimate"},
        }
    )
    info = tray_menu_entries(s, reachable=True)[0]
    assert info.text == "Heating · 693 W (partly estimated)"
