"""The real agent as a process: ``python -m heatshare.agent run`` on a temp profile.

Helpers for the integration and GUI tests (their fixtures are in each folder's
``conftest.py``); a module of its own name, since ``conftest`` is a name several test folders
share.

Every agent here listens on a port the OS picks (``--listen 127.0.0.1:0``), so the tests run
beside a real agent on this machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from heatshare.protocol.client import AgentClient
from heatshare.protocol.discovery import Paths, RuntimeInfo, read_runtime, read_token

START_TIMEOUT_S = 15.0


@dataclass
class AgentProcess:
    """One ``heatshare-agent run`` process and how to talk to it."""

    profile: Path
    proc: subprocess.Popen[bytes]
    stderr_file: Path
    clients: list[AgentClient] = field(default_factory=list)

    @property
    def stdout_file(self) -> Path:
        return self.stderr_file.with_name(self.stderr_file.name.replace("stderr-", "stdout-"))

    @property
    def paths(self) -> Paths:
        return Paths.for_profile(self.profile)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> RuntimeInfo:
        """The runtime file this process wrote, once it has."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = read_runtime(self.paths)
            if info is not None and info.pid == self.proc.pid:
                return info
            if self.proc.poll() is not None:
                pytest.fail(f"the agent exited with {self.proc.returncode}: {self.stderr()}")
            time.sleep(0.05)
        pytest.fail(f"the agent wrote no runtime file within {timeout_s} s: {self.stderr()}")

    def client(self) -> AgentClient:
        info = self.wait_ready()
        c = AgentClient(info.base_url, read_token(self.paths))
        self.clients.append(c)
        return c

    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def log_problems(self) -> list[str]:
        """WARNING, ERROR and CRITICAL lines of the agent's log file."""
        log = self.paths.log_dir / "agent.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return [ln for ln in text.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", ln)]

    def terminate(self, timeout_s: float = 3.0) -> int:
        """SIGTERM, and the exit code within ``timeout_s``."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        for c in self.clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def spawn_agent(profile: Path, *extra: str, listen: str | None = "127.0.0.1:0") -> AgentProcess:
    """Start an agent on ``profile``; ``listen=None`` leaves the port to the agent."""
    profile.mkdir(parents=True, exist_ok=True)
    stderr_file = profile / f"stderr-{time.monotonic_ns()}.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    stdout_file = stderr_file.with_name(stderr_file.name.replace("stderr-", "stdout-"))
    with stderr_file.open("wb") as err, stdout_file.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "heatshare.agent",
                "run",
                "--profile-dir",
                str(profile),
                *(["--listen", listen] if listen is not None else []),
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
        )
    return AgentProcess(profile, proc, stderr_file)


def run_cli(*args: str, timeout_s: float = 15.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heatshare.agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
