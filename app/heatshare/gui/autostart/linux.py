"""Linux (and other freedesktop systems): an XDG autostart ``.desktop`` file.

See the Desktop Application Autostart Specification: a file in ``$XDG_CONFIG_HOME/autostart``
runs at login unless it says ``Hidden=true``; GNOME also honours
``X-GNOME-Autostart-enabled=false``.
"""

from __future__ import annotations

import configparser
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from heatshare.gui.autostart.common import APP_ID, APP_NAME, launch_arguments, profile_key

# Characters that force an Exec argument into double quotes (Desktop Entry Spec, "The Exec key").
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def config_home() -> Path:
    """``$XDG_CONFIG_HOME`` when set to an absolute path (as the spec says), else ``~/.config``."""
    env = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(env) if env and Path(env).is_absolute() else Path.home() / ".config"


def _quote_arg(arg: str) -> str:
    arg = arg.replace("%", "%%")  # a lone % would start a field code
    if not arg or any(c in _RESERVED for c in arg):
        inner = "".join("\\" + c if c in '"`$\\' else c for c in arg)
        arg = f'"{inner}"'
    return arg


def _escape(value: str) -> str:
    """A desktop-file string value (the spec's escapes)."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def exec_line(args: Sequence[str]) -> str:
    """The value of an ``Exec=`` key that runs ``args`` exactly.

    Quoting comes first, then the string escapes of every desktop-file value (a backslash is
    written twice), as the spec orders them.
    """
    return _escape(" ".join(_quote_arg(a) for a in args))


class XdgAutostart:
    """Start at login through ``$XDG_CONFIG_HOME/autostart/org.heatshare.Heatshare.desktop``.

    A ``--profile-dir`` gets its own file (``org.heatshare.Heatshare.profile-<hash>.desktop``).
    """

    supported = True

    def __init__(
        self,
        command: Sequence[str],
        *,
        profile_dir: str | os.PathLike[str] | None = None,
        config_dir: Path | None = None,
    ) -> None:
        """Args:
        command: What starts the app.
        profile_dir: The ``--profile-dir`` in use, if any.
        config_dir: Stands in for ``$XDG_CONFIG_HOME`` (tests); read from the environment
            at each call when None.
        """
        self._command = list(command)
        self._profile_dir = profile_dir
        self._config_dir = config_dir
        key = profile_key(profile_dir)
        self._file_name = f"{APP_ID}.profile-{key}.desktop" if key else f"{APP_ID}.desktop"

    @property
    def path(self) -> Path:
        base = self._config_dir if self._config_dir is not None else config_home()
        return base / "autostart" / self._file_name

    def is_enabled(self) -> bool:
        path = self.path
        if not path.is_file():
            return False
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
        try:
            parser.read(path, encoding="utf-8")
            entry = parser["Desktop Entry"]
        except (configparser.Error, KeyError, UnicodeDecodeError):
            return False
        if entry.get("Hidden", "false").strip().lower() == "true":
            return False
        return entry.get("X-GNOME-Autostart-enabled", "true").strip().lower() != "false"

    def desktop_entry(self, *, start_hidden: bool = True) -> str:
        """The file's text."""
        args = launch_arguments(
            self._command, profile_dir=self._profile_dir, start_hidden=start_hidden
        )
        name = APP_NAME if self._profile_dir is None else f"{APP_NAME} ({self._file_name})"
        lines = [
            "[Desktop Entry]",
            "Type=Application",
            f"Name={name}",
            "Comment=Start Heatshare in the tray when you log in",
            f"Exec={exec_line(args)}",
            # Once the program is gone (the package removed), the session skips the entry.
            *([f"TryExec={_escape(args[0])}"] if Path(args[0]).is_absolute() else []),
            f"Icon={APP_ID}",
            "Terminal=false",
            "X-GNOME-Autostart-enabled=true",
            # Give the panel a moment, so the tray exists when the app looks for it.
            "X-GNOME-Autostart-Delay=5",
            "X-KDE-autostart-after=panel",
        ]
        return "\n".join(lines) + "\n"

    def set_enabled(self, on: bool, *, start_hidden: bool = True) -> None:
        path = self.path
        if not on:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.desktop_entry(start_hidden=start_hidden)
        # Write beside and rename, so a session starting now never reads half a file.
        fd, tmp = tempfile.mkstemp(prefix=".heatshare-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            Path(tmp).chmod(0o644)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
