"""The real agent as a process for the GUI tests: start, kill, restart on one temp profile."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from agent_process import AgentProcess, spawn_agent
from heatshare.protocol.discovery import Paths, RuntimeInfo

START_TIMEOUT_S = 20.0


@dataclass
class RealAgent:
    """``python -m heatshare.agent run --profile-dir PROFILE --listen 127.0.0.1:0``, restartable.

    Each start is a new process on the same profile (``spawn_agent``); ``proc`` is the latest.
    """

    profile: Path
    started: list[AgentProcess] = field(default_factory=list)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.started[-1].proc if self.started else None

    @property
    def paths(self) -> Paths:
        return Paths.for_profile(self.profile)

    def start(self) -> RuntimeInfo:
        self.started.append(spawn_agent(self.profile))
        return self.wait_ready()

    def wait_ready(self) -> RuntimeInfo:
        assert self.started, "no agent was started"
        return self.started[-1].wait_ready(START_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL: the agent vanishes without a word, as in a crash."""
        if self.started:
            self.started[-1].kill()

    def stop(self) -> None:
        for agent in self.started:
            if agent.proc.poll() is None:
                try:
                    agent.terminate(timeout_s=5.0)
                except subprocess.TimeoutExpired:
                    agent.kill()
