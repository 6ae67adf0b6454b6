"""What the tests of the installed packages share: running commands, and looking from outside.

The tests install a package on this machine as root (CI runs as root), run what it installed
with nothing of this checkout's Python around it, and remove it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from heatshare.__about__ import __version__

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "gui"))
from xserver import wait_until  # noqa: E402, F401 (the GUI tests' own, for the package tests)

PACKAGE = "heatshare"
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


def package_status() -> str:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", PACKAGE], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def the_deb() -> Path:
    """dist/'s .deb when it was built from this commit with a clean tree, else a fresh one."""
    arch = run("dpkg", "--print-architecture").strip()
    deb = ROOT / "dist" / f"heatshare_{__version__}_{arch}.deb"
    stamp = deb.with_name(deb.name + ".commit")
    head = run("git", "-C", str(ROOT), "rev-parse", "HEAD").strip()
    if deb.is_file() and stamp.is_file() and stamp.read_text().strip() == head:
        return deb
    run(str(ROOT / "packaging" / "linux" / "build-deb.sh"), timeout=300)
    assert deb.is_file(), f"build-deb.sh did not write {deb}"
    return deb


def bundle_processes() -> list[psutil.Process]:
    """Processes running the installed bundle's executable."""
    found = []
    for proc in psutil.process_iter(["exe"]):
        exe = proc.info["exe"] or ""
        if exe.startswith(f"{LIB}/"):
            found.append(proc)
    return found


def credited(profile: Path, env: dict[str, str] | None = None) -> dict[str, object] | None:
    """The installed agent's earnings once the network has credited a job, else None."""
    done = subprocess.run(
        ["/usr/bin/heatshare-agent", "earnings", "--json", "--profile-dir", str(profile)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        return None  # not enrolled yet, or the agent is still starting
    earnings = json.loads(done.stdout)
    assert isinstance(earnings, dict), earnings
    return earnings if earnings.get("entries") and earnings["balance_minor"] > 0 else None
