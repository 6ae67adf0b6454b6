"""Start Heatshare when the user logs in: one small interface, one module per platform.

* Linux and other freedesktop systems: a ``.desktop`` file in ``$XDG_CONFIG_HOME/autostart``
  (:mod:`.linux`).
* Windows: a value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``
  (:mod:`.windows`).
* macOS: a LaunchAgent in ``~/Library/LaunchAgents`` (:mod:`.macos`).
* Anything else: :class:`.noop.NoAutostart`, which says it is not supported.

Each writes a command that starts the app hidden in the tray (``--start-hidden``) unless asked
otherwise, and carries ``--profile-dir`` along, so a development profile autostarts itself
and not the everyday one. ``set_enabled`` raises :class:`OSError` when the file or registry
cannot be written; the caller tells the user.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Protocol

from heatshare.gui.autostart.common import START_HIDDEN, default_command

__all__ = ["START_HIDDEN", "Autostart", "autostart_for_platform", "default_command"]


class Autostart(Protocol):
    """Whether the app starts at login, and the switch for it."""

    @property
    def supported(self) -> bool:
        """False where this platform has no autostart Heatshare knows how to set."""
        ...

    def is_enabled(self) -> bool: ...

    def set_enabled(self, on: bool, *, start_hidden: bool = True) -> None: ...


def autostart_for_platform(
    *,
    command: Sequence[str] | None = None,
    profile_dir: str | os.PathLike[str] | None = None,
    platform: str | None = None,
) -> Autostart:
    """The autostart for this platform.

    Args:
        command: The program and arguments that start the app; by default the frozen
            executable, or the installed ``heatshare`` script (see :func:`default_command`).
        profile_dir: The ``--profile-dir`` in use, if any.
        platform: A ``sys.platform`` value, for tests; this platform by default.
    """
    cmd = list(command) if command is not None else default_command()
    plat = sys.platform if platform is None else platform
    if plat == "win32":
        from heatshare.gui.autostart.windows import WindowsAutostart

        return WindowsAutostart(cmd, profile_dir=profile_dir)
    if plat == "darwin":
        from heatshare.gui.autostart.macos import LaunchAgentAutostart

        return LaunchAgentAutostart(cmd, profile_dir=profile_dir)
    if plat.startswith(("linux", "freebsd", "openbsd", "netbsd", "dragonfly", "sunos")):
        from heatshare.gui.autostart.linux import XdgAutostart

        return XdgAutostart(cmd, profile_dir=profile_dir)
    from heatshare.gui.autostart.noop import NoAutostart

    return NoAutostart(f"no autostart for platform {plat!r}")
