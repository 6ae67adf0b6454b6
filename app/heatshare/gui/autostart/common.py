"""What every platform's autostart shares: the command line and the per-profile names."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from heatshare.__about__ import __app_id__, __app_name__

APP_ID = __app_id__
APP_NAME = __app_name__
START_HIDDEN = "--start-hidden"
PROFILE_DIR = "--profile-dir"


def default_command() -> list[str]:
    """How to start this installation of the app, as absolute paths.

    A login session's ``PATH`` is not the shell's, so the command found now is written out in
    full: the frozen executable, else the ``heatshare`` launcher beside this interpreter
    (a virtual environment's ``bin``), else one on ``PATH``, else ``python -m``.
    """
    if getattr(sys, "frozen", False):  # PyInstaller and friends
        return [str(Path(sys.executable).resolve())]
    script = "heatshare.exe" if sys.platform == "win32" else "heatshare"
    beside = Path(sys.executable).parent / script
    if beside.is_file():
        return [str(beside)]
    found = shutil.which(script)
    if found:
        return [str(Path(found).resolve())]
    return [str(Path(sys.executable).resolve()), "-m", "heatshare.gui.main"]


def profile_key(profile_dir: str | os.PathLike[str] | None) -> str | None:
    """A short, stable key for a profile folder, or None for the default profile."""
    if profile_dir is None:
        return None
    resolved = str(Path(profile_dir).expanduser().resolve())
    return hashlib.sha256(resolved.encode()).hexdigest()[:8]


def launch_arguments(
    command: Sequence[str],
    *,
    profile_dir: str | os.PathLike[str] | None,
    start_hidden: bool,
) -> list[str]:
    """``command`` plus the flags an autostarted app needs."""
    args = list(command)
    if start_hidden:
        args.append(START_HIDDEN)
    if profile_dir is not None:
        args += [PROFILE_DIR, str(Path(profile_dir).expanduser().resolve())]
    return args
