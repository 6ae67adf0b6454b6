"""What the tests of the installed packages share: running commands, and looking from outside.

The tests install a package on this machine as root (CI runs as root), run what it installed
with nothing of this checkout's Python around it, and remove it again.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

LIB = Path("/usr/lib/heatshare")
PROGRAMS = ("heatshare", "heatshare-agent", "heatshare-coordinator")
ICON_SIZES = ("16x16", "22x22", "24x24", "32x32", "48x48", "64x64", "128x128", "256x256", "512x512")
REQUIRED = bool(os.environ.get("HEATSHARE_REQUIRE_PACKAGING"))
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def needs(condition: bool, reason: str) -> None:
    """Skip for ``reason`` unless the condition holds; in CI (required) that is a failure."""
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"HEATSHARE_REQUIRE_PACKAGING is set, but {reason}")
    pytest.skip(reason)


def run(*args: str, timeout: float = 120.0, **env: str) -> str:
    """Run a command; its output, or an AssertionError with everything it printed."""
    done = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env},
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def session_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` as a desktop session has it: nothing of this checkout's Python in it."""
    env = dict(base)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PATH"] = SYSTEM_PATH
    return env


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the sha256 of its content."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def verify_unit() -> None:
    """systemd's own check of the installed agent unit, for one user's instance."""
    run("systemd-analyze", "verify", "--man=no", "heatshare-agent@root.service")
