"""Start at login: the Linux .desktop file, the macOS LaunchAgent and the Windows Run key.

Each platform is tested here on Linux through its one seam: the base folder (Linux, macOS)
or the registry key (Windows).
"""

from __future__ import annotations

import configparser
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from heatshare.gui.autostart import START_HIDDEN, autostart_for_platform, default_command
from heatshare.gui.autostart.linux import XdgAutostart, config_home, exec_line
from heatshare.gui.autostart.macos import LaunchAgentAutostart
from heatshare.gui.autostart.noop import NoAutostart
from heatshare.gui.autostart.windows import WindowsAutostart, WinregRunKey

COMMAND = ["/opt/Heatshare/heatshare"]


def read_desktop(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # case-sensitive keys
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def unescape_exec(value: str) -> list[str]:
    """Read an Exec value back as the Desktop Entry Spec says: string escapes, then quoting.

    Inside double quotes a backslash escapes a double quote, a backtick, a dollar and itself;
    ``%%`` is ``%``.
    """
    text, i = "", 0
    while i < len(value):  # the string escapes of every desktop-file value
        if value[i] == "\\" and i + 1 < len(value):
            text += {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}[value[i + 1]]
            i += 2
        else:
            text += value[i]
            i += 1
    args: list[str] = []
    current, quoted, i, started = "", False, 0, False
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\" and text[i + 1] in '"`$\\':
                current += text[i + 1]
                i += 1
            elif c == '"':
                quoted = False
            else:
                current += c
        elif c == '"':
            quoted = started = True
        elif c == " ":
            if started:
                args.append(current)
            current, started = "", False
        else:
            current += c
            started = True
        i += 1
    assert not quoted, value
    if started:
        args.append(current)
    return [arg.replace("%%", "%") for arg in args]


# -- Linux ---------------------------------------------------------------------------------


def test_linux_writes_and_removes_the_desktop_file(tmp_path: Path) -> None:
    autostart = XdgAutostart(COMMAND, config_dir=tmp_path)
    path = tmp_path / "autostart" / "org.heatshare.Heatshare.desktop"
    assert autostart.path == path
    assert not autostart.is_enabled()

    autostart.set_enabled(True)
    assert autostart.is_enabled()
    entry = read_desktop(path)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Heatshare"
    assert entry["Exec"] == "/opt/Heatshare/heatshare --start-hidden"
    assert entry["TryExec"] == "/opt/Heatshare/heatshare"  # skipped once the app is removed
    assert entry["Icon"] == "org.heatshare.Heatshare"
    assert entry["X-GNOME-Autostart-enabled"] == "true"
    assert entry["Terminal"] == "false"
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left

    autostart.set_enabled(False)
    assert not path.exists()
    assert not autostart.is_enabled()
    autostart.set_enabled(False)  # disabling twice is fine


def test_linux_without_start_hidden(tmp_path: Path) -> None:
    autostart = XdgAutostart(COMMAND, config_dir=tmp_path)
    autostart.set_enabled(True, start_hidden=False)
    assert read_desktop(autostart.path)["Exec"] == "/opt/Heatshare/heatshare"
    autostart.set_enabled(True)  # rewritten, not appended to
    assert read_desktop(autostart.path)["Exec"].endswith(START_HIDDEN)


def test_linux_profile_gets_its_own_entry(tmp_path: Path) -> None:
    profile = tmp_path / "dev profile"
    main = XdgAutostart(COMMAND, config_dir=tmp_path)
    dev = XdgAutostart(COMMAND, config_dir=tmp_path, profile_dir=profile)
    assert dev.path != main.path
    assert dev.path.name.startswith("org.heatshare.Heatshare.profile-")
    dev.set_enabled(True)
    assert dev.is_enabled()
    assert not main.is_enabled()
    exec_value = read_desktop(dev.path)["Exec"]
    assert unescape_exec(exec_value) == [
        *COMMAND,
        "--start-hidden",
        "--profile-dir",
        str(profile.resolve()),
    ]


def test_linux_honours_a_desktop_that_disabled_the_entry(tmp_path: Path) -> None:
    autostart = XdgAutostart(COMMAND, config_dir=tmp_path)
    autostart.set_enabled(True)
    text = autostart.path.read_text()
    autostart.path.write_text(text.replace("X-GNOME-Autostart-enabled=true", "Hidden=true"))
    assert not autostart.is_enabled()
    autostart.path.write_text(
        text.replace("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false")
    )
    assert not autostart.is_enabled()
    autostart.path.write_text("not a desktop file")
    assert not autostart.is_enabled()


@pytest.mark.parametrize(
    "args",
    [
        ["/usr/bin/heatshare"],
        ["/home/a b/.venv/bin/heatshare", "--profile-dir", "/home/a b/p"],
        ["/x/python", "-m", "heatshare.gui.main", "--profile-dir", "/tmp/100%"],
        ["/x/it's", 'say "hi"', "$HOME", "back\\slash", "`tick`", "semi;colon", "a=b"],
    ],
)
def test_linux_exec_line_round_trips(args: list[str]) -> None:
    assert unescape_exec(exec_line(args)) == args


def test_linux_exec_quoting_follows_the_spec() -> None:
    assert exec_line(["/a b/c"]) == '"/a b/c"'
    assert exec_line(["100%"]) == "100%%"
    # Inside quotes a backslash is escaped, then doubled again by the string rules.
    assert exec_line(["a\\b"]) == '"a\\\\\\\\b"'
    assert exec_line(['say "x"']) == '"say \\\\"x\\\\""'


def test_linux_config_home_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_home() == tmp_path
    assert XdgAutostart(COMMAND).path == tmp_path / "autostart" / "org.heatshare.Heatshare.desktop"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/path")  # ignored, as the spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_home() == tmp_path / "home" / ".config"


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils")
def test_linux_entry_is_valid(tmp_path: Path) -> None:
    autostart = XdgAutostart(COMMAND, config_dir=tmp_path, profile_dir=tmp_path / "p q")
    autostart.set_enabled(True)
    done = subprocess.run(
        ["desktop-file-validate", str(autostart.path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


# -- macOS ---------------------------------------------------------------------------------


def test_macos_writes_and_removes_the_launch_agent(tmp_path: Path) -> None:
    autostart = LaunchAgentAutostart(
        ["/Applications/Heatshare.app/Contents/MacOS/Heatshare"], home=tmp_path
    )
    path = tmp_path / "Library" / "LaunchAgents" / "org.heatshare.Heatshare.plist"
    assert autostart.path == path
    assert not autostart.is_enabled()
    autostart.set_enabled(True)
    assert autostart.is_enabled()
    with path.open("rb") as f:
        job = plistlib.load(f)
    assert job == {
        "Label": "org.heatshare.Heatshare",
        "ProgramArguments": [
            "/Applications/Heatshare.app/Contents/MacOS/Heatshare",
            "--start-hidden",
        ],
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
    }
    autostart.set_enabled(False)
    assert not path.exists()
    assert not autostart.is_enabled()


def test_macos_profile_and_disabled_job(tmp_path: Path) -> None:
    profile = tmp_path / "dev"
    autostart = LaunchAgentAutostart(COMMAND, home=tmp_path, profile_dir=profile)
    assert autostart.label.startswith("org.heatshare.Heatshare.profile-")
    autostart.set_enabled(True, start_hidden=False)
    with autostart.path.open("rb") as f:
        job = plistlib.load(f)
    assert job["Label"] == autostart.label
    assert job["ProgramArguments"] == [*COMMAND, "--profile-dir", str(profile.resolve())]
    job["Disabled"] = True
    with autostart.path.open("wb") as f:
        plistlib.dump(job, f)
    assert not autostart.is_enabled()
    autostart.path.write_bytes(b"garbage")
    assert not autostart.is_enabled()


# -- Windows -------------------------------------------------------------------------------


class FakeRunKey:
    """The Run key as a dict: the one seam of the Windows autostart."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


def test_windows_writes_and_removes_the_run_value() -> None:
    key = FakeRunKey()
    exe = r"C:\Program Files\Heatshare\Heatshare.exe"
    autostart = WindowsAutostart([exe], run_key=key)
    assert not autostart.is_enabled()
    autostart.set_enabled(True)
    assert autostart.is_enabled()
    assert key.values == {"Heatshare": f'"{exe}" --start-hidden'}
    autostart.set_enabled(True, start_hidden=False)
    assert key.values == {"Heatshare": f'"{exe}"'}
    autostart.set_enabled(False)
    assert key.values == {}
    assert not autostart.is_enabled()
    autostart.set_enabled(False)


def test_windows_profile_gets_its_own_value(tmp_path: Path) -> None:
    key = FakeRunKey()
    profile = tmp_path / "dev profile"
    WindowsAutostart([r"C:\H\Heatshare.exe"], run_key=key).set_enabled(True)
    dev = WindowsAutostart([r"C:\H\Heatshare.exe"], run_key=key, profile_dir=profile)
    dev.set_enabled(True)
    assert dev.value_name.startswith("Heatshare (profile ")
    assert key.values[dev.value_name] == (
        rf'C:\H\Heatshare.exe --start-hidden --profile-dir "{profile.resolve()}"'
    )
    assert len(key.values) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="checks the guard on other platforms")
def test_windows_registry_is_refused_elsewhere() -> None:
    with pytest.raises(OSError, match="only on Windows"):
        WinregRunKey().get("Heatshare")


# -- choosing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "kind"),
    [
        ("linux", XdgAutostart),
        ("freebsd14", XdgAutostart),
        ("darwin", LaunchAgentAutostart),
        ("win32", WindowsAutostart),
        ("emscripten", NoAutostart),
    ],
)
def test_each_platform_gets_its_autostart(platform: str, kind: type) -> None:
    autostart = autostart_for_platform(command=COMMAND, platform=platform)
    assert isinstance(autostart, kind)
    assert autostart.supported is (kind is not NoAutostart)


def test_noop_is_never_enabled(caplog: pytest.LogCaptureFixture) -> None:
    autostart = autostart_for_platform(command=COMMAND, platform="emscripten")
    autostart.set_enabled(True)
    assert not autostart.is_enabled()


def test_default_command_runs_this_installation() -> None:
    command = default_command()
    assert Path(command[0]).is_absolute()
    assert Path(command[0]).exists()
    # From this virtual environment: its heatshare launcher (or python -m as the last resort).
    assert command[-1] == "heatshare.gui.main" or Path(command[0]).name == "heatshare"


def test_default_command_when_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert default_command() == [str(Path(sys.executable).resolve())]
