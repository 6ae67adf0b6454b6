"""The tray controller under Qt's offscreen platform: icon, tooltip, menu and signals.

The real tray (embedding in a tray host, clicks, the popup) is in test_tray_xserver.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtWidgets import QSystemTrayIcon
from pytestqt.qtbot import QtBot

from heatshare.domain.readings import Provenance
from heatshare.gui import tray_menu
from heatshare.gui.icons import AppIcons
from heatshare.gui.tray import TrayController
from heatshare.protocol.local_api import AgentState, AgentStatus

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def status(state: AgentState = AgentState.HEATING, **kw: Any) -> AgentStatus:
    fields: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "study-pc",
        "state": state,
        "heat_w": 182.0,
        "heat_provenance": Provenance.ENERGY_COUNTER,
        "hottest_name": "GPU 0",
        "hottest_c": 71.0,
    }
    fields.update(kw)
    return AgentStatus(**fields)


@pytest.fixture
def icons(qapp: Any) -> AppIcons:
    return AppIcons.load()


@pytest.fixture
def tray(icons: AppIcons, qtbot: QtBot) -> Iterator[TrayController]:
    controller = TrayController(icons)
    yield controller
    controller.close()


def texts(controller: TrayController) -> list[str]:
    return [a.text() for a in controller.menu.actions() if not a.isSeparator()]


def action(controller: TrayController, key: str) -> Any:
    (found,) = [a for a in controller.menu.actions() if a.data() == key]
    return found


def icon_key(controller: TrayController) -> int:
    (tray_icon,) = controller.findChildren(QSystemTrayIcon)
    return tray_icon.icon().cacheKey()


def test_starts_idle_and_connecting(tray: TrayController, icons: AppIcons) -> None:
    assert tray.state == "idle"
    assert icon_key(tray) == icons.state("idle").cacheKey()
    assert tray.tooltip() == f"Heatshare\n{tray_menu.CONNECTING_TEXT}"


@pytest.mark.parametrize(
    ("agent", "reachable", "expected"),
    [
        (AgentState.HEATING, True, "heating"),
        (AgentState.IDLE, True, "idle"),
        (AgentState.PAUSED, True, "paused"),
        (AgentState.HEATING, False, "unreachable"),
    ],
)
def test_icon_and_tooltip_follow_the_state(
    tray: TrayController, icons: AppIcons, agent: AgentState, reachable: bool, expected: str
) -> None:
    tray.update(status(agent), reachable)
    assert tray.state == expected
    assert icon_key(tray) == icons.state(expected).cacheKey()
    (tray_icon,) = tray.findChildren(QSystemTrayIcon)
    assert tray_icon.toolTip() == tray_menu.tray_tooltip(status(agent), reachable)


def test_tooltip_in_fahrenheit_is_kept_across_updates(tray: TrayController) -> None:
    tray.update(status(hottest_c=70.0), True, fahrenheit=True)
    tray.update(status(hottest_c=70.0), True)
    assert "158 °F" in tray.tooltip()


def test_menu_is_rebuilt_each_time_it_opens(tray: TrayController, qtbot: QtBot) -> None:
    tray.update(status(AgentState.HEATING), True)
    with qtbot.waitSignal(tray.menu_shown, timeout=1000):
        tray.menu.aboutToShow.emit()
    assert texts(tray) == [
        "Heating · 182 W",
        "Open Heatshare",
        "Pause for 1 hour",
        "Quit Heatshare",
        "Quit and stop the agent",
    ]
    tray.update(status(AgentState.PAUSED, heat_w=8.0), True)
    tray.menu.aboutToShow.emit()
    assert texts(tray)[0] == "Paused · 8 W"
    assert "Resume" in texts(tray)
    assert "Pause for 1 hour" not in texts(tray)
    tray.update(status(AgentState.PAUSED), False)
    tray.menu.aboutToShow.emit()
    assert texts(tray)[0] == tray_menu.UNREACHABLE_TEXT
    assert not action(tray, tray_menu.RESUME).isEnabled()
    assert not action(tray, tray_menu.QUIT_AND_STOP).isEnabled()
    assert not action(tray, tray_menu.INFO).isEnabled()


@pytest.mark.parametrize(
    ("agent", "key", "signal", "args"),
    [
        (AgentState.HEATING, tray_menu.OPEN, "open_requested", []),
        (AgentState.HEATING, tray_menu.PAUSE, "pause_requested", [3600]),
        (AgentState.PAUSED, tray_menu.RESUME, "resume_requested", []),
        (AgentState.IDLE, tray_menu.QUIT, "quit_requested", []),
        (AgentState.IDLE, tray_menu.QUIT_AND_STOP, "quit_and_stop_requested", []),
    ],
)
def test_each_entry_emits_its_signal(
    tray: TrayController,
    qtbot: QtBot,
    agent: AgentState,
    key: str,
    signal: str,
    args: list[int],
) -> None:
    tray.update(status(agent), True)
    tray.menu.aboutToShow.emit()
    with qtbot.waitSignal(getattr(tray, signal), timeout=1000) as blocker:
        action(tray, key).trigger()
    assert blocker.args == args


def test_the_info_line_emits_nothing(tray: TrayController, qtbot: QtBot) -> None:
    tray.update(status(), True)
    tray.menu.aboutToShow.emit()
    with (
        qtbot.assertNotEmitted(tray.open_requested),
        qtbot.assertNotEmitted(tray.pause_requested),
        qtbot.assertNotEmitted(tray.resume_requested),
        qtbot.assertNotEmitted(tray.quit_requested),
        qtbot.assertNotEmitted(tray.quit_and_stop_requested),
    ):
        tray.menu.triggered.emit(action(tray, tray_menu.INFO))


def test_left_click_opens_the_window(tray: TrayController, qtbot: QtBot) -> None:
    (tray_icon,) = tray.findChildren(QSystemTrayIcon)
    with qtbot.waitSignal(tray.open_requested, timeout=1000):
        tray_icon.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    with qtbot.assertNotEmitted(tray.open_requested):
        tray_icon.activated.emit(QSystemTrayIcon.ActivationReason.Context)
        tray_icon.activated.emit(QSystemTrayIcon.ActivationReason.MiddleClick)


# Offscreen popups cannot raise or grab the keyboard; Qt says so, and that is all it is.
@pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing the keyboard")
def test_an_open_menu_is_updated_in_place(tray: TrayController, qtbot: QtBot) -> None:
    tray.update(status(heat_w=182.0), True)
    tray.menu.popup(tray.menu.pos())
    qtbot.waitUntil(tray.menu.isVisible, timeout=1000)
    try:
        first = action(tray, tray_menu.INFO)
        tray.update(status(heat_w=190.0), True)
        assert action(tray, tray_menu.INFO) is first
        assert first.text() == "Heating · 190 W"
        tray.update(status(heat_w=190.0), False)
        assert not action(tray, tray_menu.PAUSE).isEnabled()
    finally:
        tray.menu.hide()


def test_show_is_quiet_where_no_tray_can_exist(tray: TrayController) -> None:
    # The offscreen platform never has a tray: no icon, and no Qt warning about it.
    assert not tray.available()
    tray.show()
    assert not tray.is_visible()
    tray.hide()


def test_close_releases_the_icon_and_menu(icons: AppIcons, qtbot: QtBot) -> None:
    controller = TrayController(icons)
    menu = controller.menu
    with qtbot.waitSignal(menu.destroyed, timeout=1000):
        controller.close()
    qtbot.waitUntil(lambda: controller.findChildren(QSystemTrayIcon) == [], timeout=1000)
    # Shutdown order is not always tidy: late calls are harmless.
    controller.close()
    controller.update(status(), True)
    controller.show()
    controller.hide()
    assert not controller.is_visible()
