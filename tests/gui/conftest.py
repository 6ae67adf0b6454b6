"""GUI tests run on Qt's offscreen platform unless a test starts its own X server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from agentproc import RealAgent  # noqa: E402 (the platform is chosen first)


@pytest.fixture
def real_agent(tmp_path: Path) -> Iterator[RealAgent]:
    """A real agent process on a temp profile, listening on a port the OS picks."""
    agent = RealAgent(tmp_path / "profile")
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
