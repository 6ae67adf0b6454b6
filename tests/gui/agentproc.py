"""The real agent as a process for the GUI tests: start, kill, restart on one temp profile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from heatshare.protocol.discovery import Paths, RuntimeInfo, read_runtime

START_TIMEOUT_S = 20.0


@dataclass
class RealAgent:
    """``python -m heatshare.agent run --profile-dir PROFILE --listen 127.0.0.1:0``."""

    profile: Path
    proc: subprocess.Popen[bytes] | None = None
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def paths(self) -> Paths:
        return Paths.for_profile(self.profile)

    def start(self) -> RuntimeInfo:
        self.profile.mkdir(parents=True, exist_ok=True)
        err = self.profile / f"agent-stderr-{len(self.started)}.txt"
        with err.open("wb") as sink:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "heatshare.agent",
                    "run",
                    "--profile-dir",
                    str(self.profile),
                    "--listen",
                    "127.0.0.1:0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.started.append(self.proc)
        return self.wait_ready()

    def wait_ready(self) -> RuntimeInfo:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            info = read_runtime(self.paths)
            if info is not None and info.pid == self.proc.pid:
                return info
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError("the agent wrote no runtime file in time")

    def kill(self) -> None:
        """SIGKILL: the agent vanishes without a word, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
