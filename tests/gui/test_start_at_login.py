"""Start at login, as the user sets it: the switch in the settings dialog and the app's wiring.

The Linux autostart is rooted in a temp folder (given to it, or through ``XDG_CONFIG_HOME``),
so no test touches the real ``~/.config``. The last tests run the real app under Xvfb with a
real tray host, to see that ``--start-hidden`` (what the autostart entry passes) keeps the
window hidden and the tray icon shown.
"""

from __future__ import annotations

import configparser
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from agentproc import RealAgent
from appfactory import AppFactory
from PySide6.QtCore import QRect, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QStyleOptionButton,
    QWidget,
)
from pytestqt.qtbot import QtBot
from xserver import Program, XServer, wait_until, xserver_for_tests

from heatshare.gui.app import AUTOSTART_REMOTE, HeatshareApp, Options
from heatshare.gui.autostart import START_HIDDEN, autostart_for_platform
from heatshare.gui.autostart.linux import XdgAutostart
from heatshare.gui.autostart.noop import NoAutostart
from heatshare.gui.settings_dialog import SettingsDialog
from heatshare.gui.window import STYLE
from heatshare.protocol.discovery import Paths
from heatshare.protocol.local_api import Settings

COMMAND = ["/opt/Heatshare/heatshare"]
SCREENSHOT = Path("/tmp/heatshare-settings-dialog.png")  # for a person to look at


def settings() -> Settings:
    return Settings(tariff_per_kwh=Decimal("0.245"), currency="GBP", temperature_unit="C")


def desktop_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # case-sensitive keys
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return tmp_path / "profile dir"


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp ``XDG_CONFIG_HOME``: whatever reads the environment writes here."""
    folder = tmp_path / "xdg-config"
    folder.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


@pytest.fixture
def open_dialog(qtbot: QtBot) -> Callable[..., SettingsDialog]:
    """Open a settings dialog on ``autostart``, the way the app does (not modal here)."""

    def make(autostart: object, **kwargs: object) -> SettingsDialog:
        dialog = SettingsDialog(settings(), autostart, **kwargs)  # type: ignore[arg-type]
        qtbot.addWidget(dialog)
        dialog.show()
        return dialog

    return make


# -- the dialog ----------------------------------------------------------------------------


def test_switch_on_writes_the_entry_off_removes_it_and_reopening_shows_it(
    open_dialog: Callable[..., SettingsDialog], xdg: Path, profile: Path
) -> None:
    def autostart() -> XdgAutostart:  # a fresh object each time, as after a restart
        made = autostart_for_platform(command=COMMAND, profile_dir=profile, platform="linux")
        assert isinstance(made, XdgAutostart)
        return made

    path = autostart().path
    assert path.parent == xdg / "autostart"

    dialog = open_dialog(autostart())
    box = dialog.start_at_login
    assert box.isEnabled()
    assert box.text() == "Start Heatshare when I log in"
    assert not box.isChecked()
    box.setChecked(True)
    assert not path.exists()  # nothing is written before Save
    assert dialog.apply_start_at_login() is None
    entry = desktop_entry(path)
    assert entry["Exec"].split(" ", 1)[0] == COMMAND[0]
    assert START_HIDDEN in entry["Exec"]
    assert f'--profile-dir "{profile.resolve()}"' in entry["Exec"]  # quoted: it has a space
    assert autostart().is_enabled()

    again = open_dialog(autostart())
    assert again.start_at_login.isChecked()
    again.start_at_login.setChecked(False)
    assert again.apply_start_at_login() is None
    assert not path.exists()
    assert list(path.parent.iterdir()) == []

    assert not open_dialog(autostart()).start_at_login.isChecked()


def test_an_unchanged_switch_writes_nothing(
    open_dialog: Callable[..., SettingsDialog], tmp_path: Path
) -> None:
    """Saving the tariff must not fail, or rewrite the entry, because of start at login."""
    autostart = XdgAutostart(COMMAND, config_dir=tmp_path)
    autostart.set_enabled(True)
    autostart.path.write_text(autostart.path.read_text() + "X-Mine=kept\n")
    dialog = open_dialog(autostart)
    assert dialog.start_at_login.isChecked()
    assert dialog.apply_start_at_login() is None
    assert desktop_entry(autostart.path)["X-Mine"] == "kept"


def block_the_folder(config: Path) -> None:
    """Where the autostart folder should be, a file: no one (root included) writes in it."""
    config.mkdir(parents=True, exist_ok=True)
    (config / "autostart").write_text("not a folder")


@pytest.mark.parametrize("how", ["a file in the way", "a read-only folder"])
def test_an_unwritable_folder_is_reported_in_the_dialog(
    open_dialog: Callable[..., SettingsDialog],
    tmp_path: Path,
    how: str,
    expect_log: Callable[[str], None],
) -> None:
    expect_log(r"^Start at login not changed: ")
    config = tmp_path / "config"
    if how == "a file in the way":
        block_the_folder(config)
        where = config / "autostart"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes in read-only folders")
        where = config / "autostart"
        where.mkdir(parents=True)
        where.chmod(0o500)
    autostart = XdgAutostart(COMMAND, config_dir=config)
    try:
        dialog = open_dialog(autostart)
        dialog.start_at_login.setChecked(True)
        message = dialog.apply_start_at_login()
        assert message is not None
        assert message.startswith("Start at login could not be turned on: ")
        assert str(where) in message
        assert ".heatshare-" not in message  # the folder, not a temp file's name
        dialog.show_error(message)
        assert dialog.error.isVisible()
        assert dialog.error.text() == message
        assert dialog.buttons.isEnabled()  # the user can fix the folder and try again
        assert not autostart.is_enabled()
    finally:
        if where.is_dir():
            where.chmod(0o700)


def test_switching_off_in_a_folder_that_cannot_change_is_reported(
    open_dialog: Callable[..., SettingsDialog], tmp_path: Path, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"^Start at login not changed: ")
    autostart = XdgAutostart(COMMAND, config_dir=tmp_path)
    autostart.set_enabled(True)
    dialog = open_dialog(autostart)
    assert dialog.start_at_login.isChecked()
    # The entry's folder swapped for a file after the dialog opened: removing fails.
    for child in autostart.path.parent.iterdir():
        child.unlink()
    autostart.path.parent.rmdir()
    autostart.path.parent.write_text("in the way")
    dialog.start_at_login.setChecked(False)
    message = dialog.apply_start_at_login()
    assert message is not None
    assert message.startswith("Start at login could not be turned off: ")


def test_unsupported_platform_shows_a_disabled_switch_and_why(
    open_dialog: Callable[..., SettingsDialog],
) -> None:
    dialog = open_dialog(NoAutostart("no autostart for platform 'emscripten'"))
    assert not dialog.start_at_login.isEnabled()
    assert not dialog.start_at_login.isChecked()
    assert dialog.start_at_login_note.isVisible()
    assert "Not available on this system" in dialog.start_at_login_note.text()
    assert dialog.apply_start_at_login() is None

    remote = open_dialog(NoAutostart("remote"), autostart_unavailable=AUTOSTART_REMOTE)
    assert remote.start_at_login_note.text() == AUTOSTART_REMOTE


# -- how it looks --------------------------------------------------------------------------


def _boxes(dialog: QWidget) -> list[tuple[QWidget, QRect]]:
    kinds = (QLabel, QCheckBox, QLineEdit, QComboBox, QDialogButtonBox)
    widgets = [w for w in dialog.findChildren(QWidget) if isinstance(w, kinds) and w.isVisible()]
    # Parts of other widgets (an editable combo box's line edit, the buttons) are theirs.
    widgets = [
        w for w in widgets if not isinstance(w.parentWidget(), (QDialogButtonBox, QComboBox))
    ]
    return [(w, QRect(w.mapTo(dialog, w.rect().topLeft()), w.size())) for w in widgets]


def test_the_dialog_is_tidy(open_dialog: Callable[..., SettingsDialog], tmp_path: Path) -> None:
    """Nothing overlaps or is squeezed below its natural height; text columns line up.

    The dialog is also saved to ``/tmp/heatshare-settings-dialog.png`` for a person to see.
    """
    dialog = open_dialog(XdgAutostart(COMMAND, config_dir=tmp_path))
    dialog.setStyleSheet(STYLE)  # the main window's sheet, which a parented dialog inherits
    dialog.adjustSize()
    QApplication.processEvents()
    assert dialog.grab().save(str(SCREENSHOT))

    boxes = _boxes(dialog)
    assert len(boxes) >= 7  # three labels, two fields, the hint, the switch and its note
    for widget, rect in boxes:
        assert dialog.rect().contains(rect), widget
        assert widget.height() >= widget.minimumSizeHint().height(), widget
    for i, (a, ra) in enumerate(boxes):
        for b, rb in boxes[i + 1 :]:
            assert not ra.intersects(rb), (a, b)
    # The switch's left edge is the form's label column; its note lines up with its text,
    # not with its tick box.
    box, note = dialog.start_at_login, dialog.start_at_login_note
    price = next(w for w in dialog.findChildren(QLabel) if w.text() == "Electricity price per kWh")

    def left(widget: QWidget) -> int:
        return widget.mapTo(dialog, widget.rect().topLeft()).x()

    assert left(box) == left(price) == left(note)
    option = QStyleOptionButton()
    box.initStyleOption(option)
    contents = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxContents, option, box)
    assert abs(note.indent() - contents.left()) <= 2, (note.indent(), contents)


# -- the composition root ------------------------------------------------------------------


def test_the_app_builds_one_autostart_for_its_profile(
    qapp: QApplication, tmp_path: Path, xdg: Path, profile: Path
) -> None:
    root = HeatshareApp(qapp, Options(profile_dir=str(profile)), Paths.for_profile(str(profile)))
    try:
        autostart = root.autostart
        assert isinstance(autostart, XdgAutostart)
        assert autostart.path.parent == xdg / "autostart"
        assert autostart.path.name.startswith("org.heatshare.Heatshare.profile-")
        entry = autostart.desktop_entry()
        assert START_HIDDEN in entry
        assert str(profile.resolve()) in entry
    finally:
        root.shutdown()
        root.window.deleteLater()
        root.deleteLater()


def test_an_app_showing_another_machine_offers_no_autostart(
    qapp: QApplication, tmp_path: Path
) -> None:
    options = Options(profile_dir=str(tmp_path / "p"), connect="127.0.0.1:9")
    root = HeatshareApp(qapp, options, Paths.for_profile(options.profile_dir))
    try:
        assert not root.autostart.supported
    finally:
        root.shutdown()
        root.window.deleteLater()
        root.deleteLater()


@pytest.fixture
def live_app(qtbot: QtBot, real_agent: RealAgent, xdg: Path, make_app: AppFactory) -> HeatshareApp:
    root = make_app(agent=real_agent, wizard=True)
    qtbot.waitUntil(lambda: root.bridge.settings is not None, timeout=5000)
    return root


def run_dialog(app: HeatshareApp, interact: Callable[[SettingsDialog], None]) -> None:
    """Open the app's (modal) settings dialog and act in it from inside its event loop."""

    def act() -> None:
        dialog = app.settings_dialog
        assert dialog is not None
        interact(dialog)

    QTimer.singleShot(0, act)
    app.open_settings()


def save_button(dialog: SettingsDialog) -> QPushButton:
    button = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    assert button is not None
    return button


def test_saving_in_the_app_sets_start_at_login_and_the_agent_settings(
    qtbot: QtBot, live_app: HeatshareApp
) -> None:
    path = live_app.autostart.path  # type: ignore[attr-defined]  # the Linux autostart here

    def turn_on(dialog: SettingsDialog) -> None:
        assert not dialog.start_at_login.isChecked()
        dialog.start_at_login.setChecked(True)
        dialog.tariff.setText("0.31")
        save_button(dialog).click()

    run_dialog(live_app, turn_on)  # returns when the agent has saved and the dialog closed
    assert START_HIDDEN in desktop_entry(path)["Exec"]
    assert live_app.bridge.settings is not None
    assert live_app.bridge.settings.tariff_per_kwh == Decimal("0.31")

    seen: dict[str, bool] = {}

    def turn_off(dialog: SettingsDialog) -> None:
        seen["checked"] = dialog.start_at_login.isChecked()
        dialog.start_at_login.setChecked(False)
        save_button(dialog).click()  # nothing for the agent: the dialog closes at once

    run_dialog(live_app, turn_off)
    assert seen["checked"]
    assert not path.exists()


def test_in_the_app_an_unwritable_folder_keeps_the_dialog_open_and_the_agent_unchanged(
    qtbot: QtBot, live_app: HeatshareApp, xdg: Path, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"^Start at login not changed: ")
    block_the_folder(xdg)
    before = live_app.bridge.settings
    seen: dict[str, object] = {}

    def try_it(dialog: SettingsDialog) -> None:
        dialog.start_at_login.setChecked(True)
        dialog.tariff.setText("0.40")
        save_button(dialog).click()
        seen["error"] = dialog.error.text() if dialog.error.isVisible() else None
        seen["open"] = dialog.isVisible()
        dialog.reject()

    run_dialog(live_app, try_it)
    assert seen["open"] is True
    assert isinstance(seen["error"], str)
    assert seen["error"].startswith("Start at login could not be turned on: ")
    qtbot.wait(300)  # had a save gone to the agent, its answer would be back by now
    assert live_app.bridge.settings == before


def test_a_reconnection_does_not_close_an_open_dialog(qtbot: QtBot, live_app: HeatshareApp) -> None:
    """Settings arrive on every (re)connection; only the user's Save closes the dialog."""
    seen: dict[str, bool] = {}

    def act(dialog: SettingsDialog) -> None:
        settings_now = live_app.bridge.settings
        assert settings_now is not None
        live_app.bridge.settings_received.emit(settings_now)  # what a reconnection sends
        seen["open"] = dialog.isVisible()
        dialog.reject()

    run_dialog(live_app, act)
    assert seen["open"]


# -- --start-hidden in a real desktop ------------------------------------------------------


@pytest.fixture(scope="module")
def x11(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
    yield from xserver_for_tests(tmp_path_factory)


def closed_port() -> int:
    """A loopback port nothing listens on: the app shows 'unreachable' and starts no agent."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_app(x11: XServer, tmp_path: Path, *extra: str) -> Program:
    args = [sys.executable, "-m", "heatshare.gui.main", "--profile-dir", str(tmp_path / "p")]
    return x11.start([*args, "--connect", f"127.0.0.1:{closed_port()}", *extra])


def tray_icon(x11: XServer, program: Program) -> int:
    panel = x11.tray_panel()

    def icon_in_panel() -> int:
        for window in x11.windows_of(program.pid):
            if panel in x11.ancestors(window):
                return window
        return 0

    return wait_until(icon_in_panel, "the app's tray icon in trayer's panel", 15)


def shown_windows(x11: XServer, program: Program, icon: int) -> list[int]:
    """The app's visible windows other than its tray icon."""
    return [w for w in x11.windows_of(program.pid, visible=True) if w != icon]


@pytest.mark.xserver
@pytest.mark.slow
def test_start_hidden_shows_the_tray_and_no_window(x11: XServer, tmp_path: Path) -> None:
    hidden = start_app(x11, tmp_path / "hidden", START_HIDDEN)
    try:
        icon = tray_icon(x11, hidden)
        time.sleep(1.0)  # a window would be mapped by now: the icon comes after it
        assert shown_windows(x11, hidden, icon) == [], hidden.output()
    finally:
        hidden.stop()
    assert hidden.proc.returncode == 0, hidden.output()

    # The same check sees the window of an app started without the flag.
    shown = start_app(x11, tmp_path / "shown")
    try:
        icon = tray_icon(x11, shown)
        wait_until(lambda: shown_windows(x11, shown, icon), "the main window", 10)
    finally:
        shown.stop()
