"""macOS: a LaunchAgent in ``~/Library/LaunchAgents`` that runs the app at login."""

from __future__ import annotations

import os
import plistlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heatshare.gui.autostart.common import APP_ID, launch_arguments, profile_key


class LaunchAgentAutostart:
    """Start at login through ``~/Library/LaunchAgents/org.heatshare.Heatshare.plist``.

    launchd reads the folder at login; nothing is loaded now (the app is running already).
    A ``--profile-dir`` gets its own label and file.
    """

    supported = True

    def __init__(
        self,
        command: Sequence[str],
        *,
        profile_dir: str | os.PathLike[str] | None = None,
        home: Path | None = None,
    ) -> None:
        """Args:
        command: What starts the app (inside a bundle: ``…/Heatshare.app/Contents/MacOS/…``).
        profile_dir: The ``--profile-dir`` in use, if any.
        home: Stands in for the home folder (tests).
        """
        self._command = list(command)
        self._profile_dir = profile_dir
        self._home = home
        key = profile_key(profile_dir)
        self.label = f"{APP_ID}.profile-{key}" if key else APP_ID

    @property
    def path(self) -> Path:
        home = self._home if self._home is not None else Path.home()
        return home / "Library" / "LaunchAgents" / f"{self.label}.plist"

    def job(self, *, start_hidden: bool = True) -> dict[str, Any]:
        """The LaunchAgent's property list."""
        return {
            "Label": self.label,
            "ProgramArguments": launch_arguments(
                self._command, profile_dir=self._profile_dir, start_hidden=start_hidden
            ),
            "RunAtLoad": True,
            "ProcessType": "Interactive",  # a GUI app: not throttled like a daemon
            "LimitLoadToSessionType": "Aqua",  # only in a graphical login, not over ssh
        }

    def is_enabled(self) -> bool:
        try:
            with self.path.open("rb") as f:
                job = plistlib.load(f)
        except (OSError, plistlib.InvalidFileException, ValueError):
            return False
        return isinstance(job, dict) and job.get("RunAtLoad") is True and not job.get("Disabled")

    def set_enabled(self, on: bool, *, start_hidden: bool = True) -> None:
        path = self.path
        if not on:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".heatshare-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                plistlib.dump(self.job(start_hidden=start_hidden), f)
            Path(tmp).chmod(0o644)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
