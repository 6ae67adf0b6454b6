"""Shared by the benches: a real agent on a temp profile, and the app as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from heatshare.protocol.discovery import Paths, read_runtime


def start_agent(profile: Path) -> subprocess.Popen[bytes]:
    """``python -m heatshare.agent run`` on ``profile``; returns once it answers."""
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "heatshare.agent",
            "run",
            "--profile-dir",
            str(profile),
            "--listen",
            "127.0.0.1:0",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    paths = Paths.for_profile(profile)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the agent exited with {proc.returncode} before it was ready")
        info = read_runtime(paths)
        if info is not None and info.pid == proc.pid:
            time.sleep(1.5)  # a few samples, so the first status has figures
            return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the agent did not start")


def app_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    if "DISPLAY" not in env and "QT_QPA_PLATFORM" not in env:
        env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
