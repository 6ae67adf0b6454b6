"""The real app starts, shows live figures and charts, and exits cleanly: 20 times in a row.

PySide6 6.12.0 on Python 3.11 killed the app at exit ("Fatal Python error: none_dealloc") in
about a third of runs: that binding returns None and True without taking a reference, so every
call wears one away (see gui/binding_check.py and the pin in pyproject.toml). This test
is the guard: any crash, non-zero exit code or line on stderr fails it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agentproc import RealAgent

RUNS = 20


def run_app_once(profile: Path, marker: Path, sig: signal.Signals) -> tuple[int, str]:
    marker.unlink(missing_ok=True)
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "HEATSHARE_BENCH_FIRST_PAINT": str(marker),
        "PYTHONFAULTHANDLER": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "heatshare.gui", "--profile-dir", str(profile)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert marker.exists(), "the dashboard never painted the agent's figures"
        time.sleep(0.8)  # the charts are built and fed right after the first paint
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_app_exits_cleanly_20_times_in_a_row(real_agent: RealAgent, tmp_path: Path) -> None:
    failures = []
    for i in range(RUNS):
        sig = signal.SIGTERM if i % 2 == 0 else signal.SIGINT
        code, err = run_app_once(real_agent.profile, tmp_path / "painted.txt", sig)
        if code != 0 or err.strip():
            failures.append(f"run {i + 1} ({sig.name}): exit {code}\n{err}")
    assert not failures, "\n".join(failures)
    log = (real_agent.paths.log_dir / "app.log").read_text("utf-8")
    assert log.count("heatshare exits with code 0") == RUNS
    assert " CRITICAL " not in log
    assert " ERROR " not in log
