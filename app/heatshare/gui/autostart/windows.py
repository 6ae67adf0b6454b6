"""Windows: a value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Protocol

from heatshare.gui.autostart.common import APP_NAME, launch_arguments, profile_key

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


class RunKey(Protocol):
    """The seam: string values of the current user's ``Run`` key."""

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


class WinregRunKey:
    """The real ``Run`` key, through :mod:`winreg` (Windows only)."""

    def get(self, name: str) -> str | None:
        if sys.platform != "win32":
            raise OSError("the Windows registry exists only on Windows")
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                value, _kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        return str(value)

    def set(self, name: str, value: str) -> None:
        if sys.platform != "win32":
            raise OSError("the Windows registry exists only on Windows")
        import winreg

        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

    def delete(self, name: str) -> None:
        if sys.platform != "win32":
            raise OSError("the Windows registry exists only on Windows")
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            pass


class WindowsAutostart:
    """Start at login through the ``Heatshare`` value of the ``Run`` key.

    A ``--profile-dir`` gets its own value (``Heatshare (profile <hash>)``).
    """

    supported = True

    def __init__(
        self,
        command: Sequence[str],
        *,
        profile_dir: str | os.PathLike[str] | None = None,
        run_key: RunKey | None = None,
    ) -> None:
        """Args:
        command: What starts the app (the installed ``Heatshare.exe``).
        profile_dir: The ``--profile-dir`` in use, if any.
        run_key: Stands in for the registry (tests).
        """
        self._command = list(command)
        self._profile_dir = profile_dir
        self._run_key: RunKey = run_key if run_key is not None else WinregRunKey()
        key = profile_key(profile_dir)
        self.value_name = f"{APP_NAME} (profile {key})" if key else APP_NAME

    def command_line(self, *, start_hidden: bool = True) -> str:
        """The value written: one command line, quoted the way Windows programs parse it."""
        args = launch_arguments(
            self._command, profile_dir=self._profile_dir, start_hidden=start_hidden
        )
        return subprocess.list2cmdline(args)

    def is_enabled(self) -> bool:
        return bool(self._run_key.get(self.value_name))

    def set_enabled(self, on: bool, *, start_hidden: bool = True) -> None:
        if on:
            self._run_key.set(self.value_name, self.command_line(start_hidden=start_hidden))
        else:
            self._run_key.delete(self.value_name)
