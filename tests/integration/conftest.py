"""Fixtures that start the real agent process; see ``tests/agent_process.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_process import AgentProcess, spawn_agent


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    """Start agents with ``spawn_agent``; any left running is killed at the end."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.kill()


@pytest.fixture
def agent(tmp_path: Path, spawn: list[AgentProcess]) -> AgentProcess:
    a = spawn_agent(tmp_path / "profile")
    spawn.append(a)
    a.wait_ready()
    return a
