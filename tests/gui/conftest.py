"""GUI tests run on Qt's offscreen platform unless a test starts its own X server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from agentproc import RealAgent


@pytest.fixture
def real_agent(tmp_path: Path) -> Iterator[RealAgent]:
    """A real agent process on a temp profile, listening on a port the OS picks."""
    agent = RealAgent(tmp_path / "profile")
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The offscreen platform says this of every shown top-level window: a limit of the test
    # platform, not a fault of the app. Every other Qt warning still fails the test.
    for item in items:
        if "tests/gui/" in str(item.path).replace("\\", "/"):
            item.add_marker(
                pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$")
            )
