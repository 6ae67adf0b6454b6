"""The tray icon in a real tray: embedded in trayer under Xvfb, its menu opened and used.

The program under test is a small real app (below) in a subprocess on the X server; the
test looks from outside, the way a user's desktop sees it: which window the icon lives in,
whether a popup menu appears, and what the program did when an entry was chosen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from xserver import Program, XServer, python_program, wait_until, xserver_for_tests

pytestmark = pytest.mark.xserver

PROBE = """
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from heatshare.gui.icons import AppIcons
from heatshare.gui.tray import TrayController
from heatshare.protocol.local_api import AgentState, AgentStatus

app = QApplication(sys.argv)
app.setApplicationName("heatshare-tray-probe")
app.setQuitOnLastWindowClosed(False)


def say(*words):
    print(*words, flush=True)


tray = TrayController(AppIcons.load())
tray.menu_shown.connect(
    lambda: say("menu-shown", "|".join(a.text() for a in tray.menu.actions() if a.text()))
)
tray.open_requested.connect(lambda: say("signal open_requested"))
tray.pause_requested.connect(lambda seconds: say("signal pause_requested", seconds))
tray.resume_requested.connect(lambda: say("signal resume_requested"))
tray.quit_and_stop_requested.connect(lambda: say("signal quit_and_stop_requested"))
tray.quit_requested.connect(lambda: (say("signal quit_requested"), app.quit()))
tray.update(
    AgentStatus(
        protocol_version=1,
        agent_version="0.1.0",
        hostname="study-pc",
        state=AgentState.HEATING,
        heat_w=182.0,
        hottest_name="GPU 0",
        hottest_c=71.0,
    ),
    True,
)
say("available", tray.available())
tray.show()
say("shown", tray.state)
QTimer.singleShot(60_000, app.quit)  # never outlive a broken test
app.exec()
tray.close()
say("exited")
"""


@pytest.fixture(scope="module")
def x11(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
    yield from xserver_for_tests(tmp_path_factory)


@pytest.fixture
def probe_cmd(tmp_path: Path) -> list[str]:
    return python_program(PROBE, tmp_path / "tray_probe.py")


@pytest.fixture
def embedded(x11: XServer, probe_cmd: list[str]) -> Iterator[tuple[Program, int]]:
    """The probe running, with its icon embedded in trayer: (program, icon window)."""
    program = x11.start(probe_cmd)
    program.wait_for_line(r"^available True$")
    program.wait_for_line(r"^shown heating$")
    panel = x11.tray_panel()

    def icon_in_panel() -> int:
        for window in x11.windows_of(program.pid):
            if panel in x11.ancestors(window):
                return window
        return 0

    icon = wait_until(icon_in_panel, "the tray icon to be embedded in trayer's panel", 10)
    yield program, icon
    program.stop()


def test_the_fixture_runs_a_tray_host(x11: XServer) -> None:
    owner = x11.tray_owner()
    assert owner != 0
    panel = x11.tray_panel()
    assert x11.geometry(panel).height == 24


def test_icon_is_embedded_in_the_tray(x11: XServer, embedded: tuple[Program, int]) -> None:
    _program, icon = embedded
    panel = x11.tray_panel()
    assert icon in x11.descendants(panel)
    icon_box = x11.geometry(icon)
    panel_box = x11.geometry(panel)
    # A real icon-sized window inside the panel, not a 1x1 placeholder.
    assert 16 <= icon_box.width <= 24
    assert 16 <= icon_box.height <= 24
    assert panel_box.x <= icon_box.x < panel_box.x + panel_box.width
    assert panel_box.y <= icon_box.y < panel_box.y + panel_box.height


def open_menu(x11: XServer, program: Program, icon: int) -> int:
    """Right-click the icon; return the popup menu's window once it shows."""
    before = set(x11.windows_of(program.pid, visible=True))
    x11.click(*x11.geometry(icon).center, button=3)
    program.wait_for_line(
        r"^menu-shown Heating · 182 W\|Open Heatshare\|Pause for 1 hour\|"
        r"Quit Heatshare\|Quit and stop the agent$"
    )

    def popup() -> int:
        new = set(x11.windows_of(program.pid, visible=True)) - before
        menus = [w for w in new if "_NET_WM_WINDOW_TYPE_POPUP_MENU" in x11.window_types(w)]
        return menus[0] if len(menus) == 1 else 0

    return wait_until(popup, "the tray menu's popup window", 5)


def test_right_click_opens_the_menu_and_an_entry_fires(
    x11: XServer, embedded: tuple[Program, int]
) -> None:
    program, icon = embedded
    menu = open_menu(x11, program, icon)
    assert x11.geometry(menu).height > 5 * 16  # five entries and two separators
    x11.key("Down", "Down", "Return")  # past the info line: Open, then Pause for 1 hour
    program.wait_for_line(r"^signal pause_requested 3600$")
    wait_until(
        lambda: menu not in x11.windows_of(program.pid, visible=True),
        "the menu to close",
        5,
    )


def test_left_click_asks_for_the_window(x11: XServer, embedded: tuple[Program, int]) -> None:
    program, icon = embedded
    x11.click(*x11.geometry(icon).center, button=1)
    program.wait_for_line(r"^signal open_requested$")


def test_quit_from_the_menu_removes_the_icon(x11: XServer, embedded: tuple[Program, int]) -> None:
    program, icon = embedded
    open_menu(x11, program, icon)
    x11.key("Down", "Down", "Down", "Return")  # Open, Pause, Quit Heatshare
    program.wait_for_line(r"^signal quit_requested$")
    program.wait_for_line(r"^exited$")
    assert program.wait(5) == 0
    panel = x11.tray_panel()
    wait_until(lambda: icon not in x11.descendants(panel), "the icon to leave the tray", 5)


# -- heating: the mode switch and a safety notice, in the real tray ------------------------------

HEATING_PROBE = """
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from heatshare.gui.icons import AppIcons
from heatshare.gui.tray import TrayController
from heatshare.protocol.heating import HeatingSummary, HeatMode
from heatshare.protocol.local_api import AgentState, AgentStatus

app = QApplication(sys.argv)
app.setApplicationName("heatshare-tray-probe")
app.setQuitOnLastWindowClosed(False)


def say(*words):
    print(*words, flush=True)


tray = TrayController(AppIcons.load())
tray.menu_shown.connect(
    lambda: say("menu-shown", "|".join(a.text() for a in tray.menu.actions() if a.text()))
)
tray.mode_requested.connect(lambda mode: say("signal mode_requested", mode.value))
tray.nudge_requested.connect(lambda delta: say("signal nudge_requested", delta))
tray.notified.connect(lambda title, message: say("notified", title))
tray.update(
    AgentStatus(
        protocol_version=1,
        agent_version="0.1.0",
        hostname="study-pc",
        state=AgentState.HEATING,
        heat_w=182.0,
        hottest_name="GPU 0",
        hottest_c=71.0,
        heating=HeatingSummary(mode=HeatMode.HEAT_FIRST, room_c=20.4, setpoint_c=21.0),
    ),
    True,
)
tray.show()
say("shown", tray.state)
for line in sys.stdin:
    break  # the test says when
"""


def test_the_mode_submenu_and_a_safety_notice_in_a_real_tray(x11: XServer, tmp_path: Path) -> None:
    source = HEATING_PROBE.replace(
        "for line in sys.stdin:\n    break  # the test says when\n",
        "QTimer.singleShot(60_000, app.quit)\n"
        "QTimer.singleShot(1500, lambda: tray.notify('Heating stopped: gpu too hot', "
        "'GPU 0 is at 86 °C, above its 80 °C limit.'))\n"
        "app.exec()\ntray.close()\nsay('exited')\n",
    )
    program = x11.start(python_program(source, tmp_path / "heating_probe.py"))
    try:
        program.wait_for_line(r"^shown heating$")
        panel = x11.tray_panel()

        def icon_in_panel() -> int:
            for window in x11.windows_of(program.pid):
                if panel in x11.ancestors(window):
                    return window
            return 0

        icon = wait_until(icon_in_panel, "the tray icon to be embedded in trayer's panel", 10)
        # The notice: shown by the real tray (Qt's balloon where no notification daemon runs).
        program.wait_for_line(r"^notified Heating stopped: gpu too hot$")
        wait_until(
            lambda: any(
                "_NET_WM_WINDOW_TYPE_TOOLTIP" in x11.window_types(w)
                for w in x11.windows_of(program.pid, visible=True)
            ),
            "the notice's balloon to show",
            5,
        )

        def open_menu() -> None:
            before = set(x11.windows_of(program.pid, visible=True))
            x11.click(*x11.geometry(icon).center, button=3)
            program.wait_for_line(
                r"^menu-shown Heating · 182 W\|Room 20\.4 °C → 21\.0 °C\|Open Heatshare\|"
                r"Pause for 1 hour\|Mode: Heat first\|Boost for 1 hour\|"
                r"Warmer \(\+0\.5 °C\)\|Cooler \(−0\.5 °C\)\|Quit Heatshare\|"
                r"Quit and stop the agent$"
            )
            wait_until(
                lambda: any(
                    "_NET_WM_WINDOW_TYPE_POPUP_MENU" in x11.window_types(w)
                    for w in set(x11.windows_of(program.pid, visible=True)) - before
                ),
                "the tray menu to show",
                5,
            )

        open_menu()
        # Open, Pause, then the Mode submenu: into it, down to Earn first.
        x11.key("Down", "Down", "Down", "Right", "Down", "Return")
        program.wait_for_line(r"^signal mode_requested earn_first$")
        x11.tool("xdotool", "mousemove", "0", "400")  # off the icon: no tooltip over it
        time.sleep(0.3)  # the menu closes
        open_menu()
        x11.key("Up", "Up", "Up", "Return")  # from the bottom: Quit and stop, Quit, Cooler
        program.wait_for_line(r"^signal nudge_requested -0\.5$")
    finally:
        program.stop()
    left = program.output()  # what no wait above consumed
    assert "signal mode_requested" not in left  # the submenu's click came once, not twice
    # Qt's warnings go to stderr, which the program's output holds: none (the balloon too).
    assert left == "", left
