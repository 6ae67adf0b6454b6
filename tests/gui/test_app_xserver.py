"""The real app, as a user runs it: on a real X server, with and without a real tray host.

Each test starts the installed ``heatshare`` program in its own process on Xvfb, against a
real agent process on the same temp profile (started by the ``real_agent`` fixture, so the
test owns its teardown), and looks at it from outside the way a desktop does: which windows
are mapped, whether the tray icon is embedded in trayer, what the tray icon shows; and it acts
the way a user does: mouse clicks on the icon, keys in its menu and dialogs, a window
manager's close request. What the app did is then read back from the agent's API, the app's
exit code, its output and its settings file.
"""

from __future__ import annotations

import configparser
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from agentproc import RealAgent
from xserver import (
    APT_LINE,
    Program,
    XServer,
    missing_tools,
    request_close,
    running_xserver,
    wait_until,
    window_pixels,
    xserver_for_tests,
)

from heatshare.gui.dashboard import BENCH_FIRST_PAINT_ENV
from heatshare.gui.tray_menu import PAUSE_SECONDS
from heatshare.protocol.client import AgentClient
from heatshare.protocol.discovery import read_runtime, read_token
from heatshare.protocol.local_api import AgentState, AgentStatus

# The sum of the waits below on a loaded machine: one run of a test here took 45 s at a load of 7.5.
pytestmark = [pytest.mark.xserver, pytest.mark.timeout(120)]

START_S = 20.0  # a cold start of the app on a busy two-core CI machine, with margin
STEP_S = 10.0  # anything one click or key sets off

# Keyboard paths through the tray menu (see tray_menu.tray_menu_entries): the info lines at
# the top are disabled, so the first Down lands on "Open Heatshare"; separators are skipped.
# The two ways to quit are the last entries: Up from the top reaches them, whatever the
# heating entries between (mode, boost, warmer, cooler) hold.
PAUSE_OR_RESUME = ("Down", "Down", "Return")
QUIT = ("Up", "Up", "Return")
QUIT_AND_STOP = ("Up", "Return")


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def x11(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
    """Xvfb with trayer: a desktop with a system tray."""
    yield from xserver_for_tests(tmp_path_factory)


@pytest.fixture(scope="module")
def x11_without_tray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
    """Xvfb alone: a desktop with no system tray (and, like the other, no window manager)."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: {APT_LINE}")
    with running_xserver(tray=False, log_dir=tmp_path_factory.mktemp("xserver-bare")) as server:
        yield server


@pytest.fixture
def client(real_agent: RealAgent) -> Iterator[AgentClient]:
    """The real agent's API, with the token from its profile."""
    info = read_runtime(real_agent.paths)
    assert info is not None
    api = AgentClient(info.base_url, read_token(real_agent.paths))
    try:
        yield api
    finally:
        api.close()


# -- the app from outside ----------------------------------------------------------------------


def app_command(profile: Path) -> list[str]:
    """The ``heatshare`` gui-script installed beside this Python, as a user starts it."""
    script = Path(sys.executable).with_name("heatshare")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "heatshare.gui.main"]
    return [*base, "--profile-dir", str(profile)]


def ancestors(x11: XServer, window: int) -> list[int]:
    """``window``'s parents up to the root; none when it went between finding and asking."""
    try:
        return x11.ancestors(window)
    except AssertionError:  # xwininfo: BadWindow; a window of a program that is closing
        return []


@dataclass
class RunningApp:
    """The app's process on an X server, and what a desktop can see of it."""

    x11: XServer
    program: Program
    painted: Path  # written by the dashboard's first paint of the agent's figures
    log_file: Path
    menus_opened: int = 0

    @property
    def pid(self) -> int:
        return self.program.pid

    def running(self) -> bool:
        return self.program.proc.poll() is None

    def top_levels(self, name: str) -> list[int]:
        """This app's mapped top-level windows whose title matches ``name`` (a regex)."""
        out = self.x11.tool(
            "xdotool", "search", "--all", "--onlyvisible", "--pid", str(self.pid), "--name", name,
            check=False,  # xdotool exits 1 when nothing matches
        )  # fmt: skip
        # Without a window manager a top-level window's parent is the root; the tray icon's
        # window, of the same process and class, lives inside trayer's panel instead.
        return [w for w in map(int, out.split()) if len(ancestors(self.x11, w)) == 1]

    def main_window(self, timeout: float = START_S) -> int:
        windows = wait_until(lambda: self.top_levels("^Heatshare$"), "the main window", timeout)
        assert len(windows) == 1, f"expected one main window, found {windows}"
        # xdotool cannot match a class and a name at once: the class is checked here.
        wm_class = self.x11.tool("xprop", "-id", str(windows[0]), "WM_CLASS")
        assert wm_class.rstrip().endswith('"Heatshare"'), wm_class
        return windows[0]

    def main_window_shown(self, window: int) -> bool:
        return window in self.top_levels("^Heatshare$")

    def tray_icon(self, timeout: float = STEP_S) -> int:
        """The icon's window, once embedded in trayer's panel."""
        panel = self.x11.tray_panel()

        def embedded() -> int:
            for window in self.x11.windows_of(self.pid):
                if panel in ancestors(self.x11, window):
                    return window
            return 0

        return wait_until(embedded, "the tray icon to be embedded in trayer's panel", timeout)

    def wait_for_agent_figures(self) -> None:
        """Until the dashboard has painted the agent's status: the tray has it too by then."""
        wait_until(self.painted.exists, "the dashboard to paint the agent's figures", START_S)

    def open_tray_menu(self, icon: int) -> int:
        """Right-click the icon; return the popup menu's window once it is mapped.

        The app answers the click once its UI thread is free. The first menu of a run is
        asked for just after the first paint, while the app builds its charts (pyqtgraph's
        import and first plots): under load that takes seconds (0.6 to 3.2 s at a load of
        7.5, where later menus opened within 0.12 s), so the first gets a start's time.
        """
        before = set(self.x11.windows_of(self.pid, visible=True))
        self.x11.click(*self.x11.geometry(icon).center, button=3)

        def popup() -> int:
            new = set(self.x11.windows_of(self.pid, visible=True)) - before
            menus = [w for w in new if "_NET_WM_WINDOW_TYPE_POPUP_MENU" in self.x11.window_types(w)]
            return menus[0] if len(menus) == 1 else 0

        timeout = STEP_S if self.menus_opened else START_S
        menu = wait_until(popup, "the tray menu's popup window", timeout)
        self.menus_opened += 1
        return menu

    def choose_in_tray_menu(self, icon: int, keys: tuple[str, ...]) -> None:
        menu = self.open_tray_menu(icon)
        self.x11.key(*keys)
        wait_until(
            lambda: menu not in self.x11.windows_of(self.pid, visible=True),
            "the tray menu to close",
            STEP_S,
        )
        # Off the icon, so no tooltip opens over it before the next click.
        self.x11.tool("xdotool", "mousemove", "0", "400")

    def wait_exit(self, timeout: float = STEP_S) -> tuple[int, str]:
        """The exit code and everything it printed (stdout and stderr) once it has ended."""
        try:
            code = self.program.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"the app did not exit in {timeout} s; output:\n{self.program.output()}"
            ) from exc
        self.program.stop()  # reaps the output reader
        return code, self.program.output()

    def assert_clean_exit(self, timeout: float = STEP_S) -> None:
        code, output = self.wait_exit(timeout)
        assert "Fatal" not in output, output
        assert code == 0, f"exit code {code}; output:\n{output}"
        # WARNING and up go to stderr: a clean run says nothing at all.
        assert output == "", f"the app printed:\n{output}"
        log = self.log_file.read_text("utf-8")
        assert "heatshare exits with code 0" in log
        assert " ERROR " not in log, log
        assert " CRITICAL " not in log, log


@contextlib.contextmanager
def launched(x11: XServer, profile: Path, painted: Path) -> Iterator[RunningApp]:
    """The app started on ``x11``; stopped (SIGTERM, then SIGKILL) whatever the test did."""
    painted.unlink(missing_ok=True)
    env = {BENCH_FIRST_PAINT_ENV: str(painted), "PYTHONFAULTHANDLER": "1"}
    program = x11.start(app_command(profile), None, **env)
    try:
        yield RunningApp(x11, program, painted, profile / "logs" / "app.log")
    finally:
        program.stop()


def steady_pixels(x11: XServer, window: int, differ_from: bytes | None = None) -> bytes:
    """What ``window`` shows once it has stopped changing (and, if given, differs from that)."""
    last = [window_pixels(x11, window)]

    def settled() -> bytes | None:
        time.sleep(0.15)
        now = window_pixels(x11, window)
        same, last[0] = now == last[0], now
        return now if same and now != differ_from else None

    pixels = wait_until(settled, "the window's picture to settle on a new look", STEP_S)
    assert pixels is not None
    return pixels


def wait_for_paused(client: AgentClient, paused: bool, what: str) -> AgentStatus:
    """The agent's status once it is (or is no longer) paused, asked through its API."""

    def probe() -> AgentStatus | None:
        status = client.status()
        return status if (status.state is AgentState.PAUSED) == paused else None

    status = wait_until(probe, what, STEP_S, interval=0.1)
    assert status is not None
    return status


def assert_agent_alone_and_running(agent: RealAgent, client: AgentClient) -> None:
    """Our agent still answers, and the app never started a second one on the profile."""
    assert agent.proc is not None
    assert agent.proc.poll() is None, "the agent stopped with the app"
    client.status()
    info = read_runtime(agent.paths)
    assert info is not None
    assert info.pid == agent.proc.pid


# -- with a tray -------------------------------------------------------------------------------


def test_tray_menu_pauses_resumes_and_quits_the_real_app(
    x11: XServer, real_agent: RealAgent, client: AgentClient, tmp_path: Path
) -> None:
    with launched(x11, real_agent.profile, tmp_path / "painted.txt") as app:
        window = app.main_window()
        box = x11.geometry(window)
        assert box.width > 600
        assert box.height > 400
        icon = app.tray_icon()
        icon_box = x11.geometry(icon)
        assert 16 <= icon_box.width <= 24
        assert 16 <= icon_box.height <= 24
        app.wait_for_agent_figures()
        assert client.status().state is not AgentState.PAUSED
        looks_running = steady_pixels(x11, icon)

        # Pause for 1 hour, from the tray menu.
        asked = datetime.now(UTC)
        app.choose_in_tray_menu(icon, PAUSE_OR_RESUME)
        paused = wait_for_paused(client, True, "the agent to be paused")
        answered = datetime.now(UTC)
        assert paused.paused_until is not None
        hour = timedelta(seconds=PAUSE_SECONDS)
        slack = timedelta(seconds=2)
        assert asked + hour - slack <= paused.paused_until <= answered + hour + slack
        # The icon shows it (and so the app knows it: its next menu offers Resume).
        looks_paused = steady_pixels(x11, icon, differ_from=looks_running)

        # Resume, from the same place in the rebuilt menu.
        app.choose_in_tray_menu(icon, PAUSE_OR_RESUME)
        resumed = wait_for_paused(client, False, "the agent to resume")
        assert resumed.paused_until is None
        steady_pixels(x11, icon, differ_from=looks_paused)

        # Quit Heatshare: the app goes, its icon leaves the tray, the agent heats on.
        app.choose_in_tray_menu(icon, QUIT)
        app.assert_clean_exit()
        panel = x11.tray_panel()
        wait_until(lambda: icon not in x11.descendants(panel), "the icon to leave the tray")
        assert_agent_alone_and_running(real_agent, client)


def test_quit_and_stop_the_agent_ends_both(
    x11: XServer, real_agent: RealAgent, client: AgentClient, tmp_path: Path
) -> None:
    with launched(x11, real_agent.profile, tmp_path / "painted.txt") as app:
        app.main_window()
        icon = app.tray_icon()
        app.wait_for_agent_figures()
        app.choose_in_tray_menu(icon, QUIT_AND_STOP)
        app.assert_clean_exit()
    assert real_agent.proc is not None
    assert real_agent.proc.wait(STEP_S) == 0
    assert read_runtime(real_agent.paths) is None  # the agent tidied up after itself


def test_closing_the_window_leaves_the_app_in_the_tray(
    x11: XServer, real_agent: RealAgent, client: AgentClient, tmp_path: Path
) -> None:
    with launched(x11, real_agent.profile, tmp_path / "painted.txt") as app:
        window = app.main_window()
        icon = app.tray_icon()
        app.wait_for_agent_figures()

        request_close(x11, window)
        wait_until(lambda: not app.main_window_shown(window), "the window to hide")
        time.sleep(0.3)  # room for a wrong dialog or exit to show itself
        assert app.running(), "closing the window quit the app"
        assert app.top_levels(".*") == [], "closing the window showed a window"
        assert icon in x11.descendants(x11.tray_panel())

        x11.click(*x11.geometry(icon).center, button=1)
        wait_until(lambda: app.main_window_shown(window), "a left click to show the window")

        program = app.program
        program.proc.terminate()  # logout: SIGTERM quits cleanly
        app.assert_clean_exit()
        assert_agent_alone_and_running(real_agent, client)


# -- without a tray ----------------------------------------------------------------------------


def app_settings(profile: Path) -> configparser.ConfigParser:
    """The app's own settings file (QSettings, INI format)."""
    parser = configparser.ConfigParser()
    parser.read(profile / "config" / "app.ini", encoding="utf-8")
    return parser


def quit_dialog(app: RunningApp) -> int:
    dialogs = wait_until(
        lambda: app.top_levels(r"^Quit Heatshare\?$"), "the 'Quit Heatshare?' dialog", STEP_S
    )
    assert len(dialogs) == 1, dialogs
    assert "_NET_WM_WINDOW_TYPE_DIALOG" in app.x11.window_types(dialogs[0])
    # No window manager gives it the keyboard: do what one would on mapping a dialog.
    app.x11.tool("xdotool", "windowfocus", "--sync", str(dialogs[0]))
    return dialogs[0]


def test_without_a_tray_closing_asks_once_and_remembers(
    x11_without_tray: XServer, real_agent: RealAgent, client: AgentClient, tmp_path: Path
) -> None:
    x11 = x11_without_tray
    assert x11.tray_owner() == 0
    profile = real_agent.profile
    with launched(x11, profile, tmp_path / "painted-1.txt") as app:
        window = app.main_window()
        app.wait_for_agent_figures()

        # Cancel: the app and its window stay, and nothing is remembered.
        request_close(x11, window)
        dialog = quit_dialog(app)
        x11.key("Escape")
        wait_until(lambda: dialog not in app.top_levels(".*"), "the dialog to go")
        assert app.running()
        assert app.main_window_shown(window)
        assert not app_settings(profile).has_option("close", "confirmed")

        # Asked again; "Don't ask again" ticked, then Close: the app quits.
        request_close(x11, window)
        quit_dialog(app)
        # Focus starts on Close (the default button); the check box comes just before it.
        x11.key("shift+Tab", "space", "Return")
        app.assert_clean_exit()
    assert app_settings(profile).getboolean("close", "confirmed", fallback=False)
    assert_agent_alone_and_running(real_agent, client)

    # The next time, closing the window quits at once, without asking.
    with launched(x11, profile, tmp_path / "painted-2.txt") as app:
        window = app.main_window()
        app.wait_for_agent_figures()
        request_close(x11, window)
        wait_until(
            lambda: not app.running() or app.top_levels(r"^Quit Heatshare\?$"),
            "the app to quit or ask",
            STEP_S,
        )
        assert not app.top_levels(r"^Quit Heatshare\?$"), "it asked again"
        app.assert_clean_exit()
    assert_agent_alone_and_running(real_agent, client)


def test_a_second_launch_raises_the_first_window(
    x11: XServer, real_agent: RealAgent, client: AgentClient, tmp_path: Path
) -> None:
    """One instance per user and profile: launching again shows the window already running."""
    with launched(x11, real_agent.profile, tmp_path / "painted-1.txt") as first:
        window = first.main_window()
        first.tray_icon()
        first.wait_for_agent_figures()
        request_close(x11, window)
        wait_until(lambda: not first.main_window_shown(window), "the window to go to the tray")

        with launched(x11, real_agent.profile, tmp_path / "painted-2.txt") as second:
            code, output = second.wait_exit(START_S)
            assert code == 0, f"exit code {code}; output:\n{output}"
            assert "Fatal" not in output, output
            assert not second.painted.exists(), "the second launch built a dashboard of its own"
        wait_until(lambda: first.main_window_shown(window), "the first window to be raised")
        assert first.running()
        first.program.proc.terminate()
        first.assert_clean_exit()
    assert_agent_alone_and_running(real_agent, client)
