"""GUI tests run on Qt's offscreen platform unless a test starts its own X server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from agentproc import RealAgent
from appfactory import AppFactory
from fake_agent import FakeAgentClient
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from heatshare.gui.app import WIZARD_DISMISSED_KEY, HeatshareApp, Options
from heatshare.gui.bridge import ConnectionState
from heatshare.gui.icons import AppIcons
from heatshare.gui.tray import TrayController
from heatshare.protocol.discovery import Paths

CONNECT_TIMEOUT_MS = 10_000  # a real agent on a busy two-core machine; a fake is at once


@pytest.fixture
def real_agent(tmp_path: Path) -> Iterator[RealAgent]:
    """A real agent process on a temp profile, listening on a port the OS picks."""
    agent = RealAgent(tmp_path / "profile")
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def fake() -> FakeAgentClient:
    """The agent at the client seam (fake_agent.py), for apps made without a real agent."""
    return FakeAgentClient()


@pytest.fixture
def make_app(
    request: pytest.FixtureRequest, qtbot: QtBot, qapp: QApplication, tmp_path: Path
) -> Iterator[AppFactory]:
    """Makes started apps (see ``AppFactory``); shuts each down in order after the test."""
    if "real_agent" in request.fixturenames:
        # Up before the apps, so it stops after them: an app shut down first says nothing of
        # an agent that went away.
        request.getfixturevalue("real_agent")
    made: list[HeatshareApp] = []

    def make(
        *,
        agent: RealAgent | None = None,
        demo: bool = False,
        wizard: bool = False,
        tray: bool = False,
    ) -> HeatshareApp:
        if agent is not None:
            root = HeatshareApp(
                qapp, Options(profile_dir=str(agent.profile), demo=demo), agent.paths
            )
        else:
            client: FakeAgentClient = request.getfixturevalue("fake")
            profile = tmp_path / "profile"
            root = HeatshareApp(
                qapp,
                # --connect: a fixed endpoint, so nothing looks for or starts a local agent.
                Options(profile_dir=str(profile), connect="127.0.0.1:1", demo=demo),
                Paths.for_profile(profile),
                client_factory=lambda _endpoint: client,
            )
        if not wizard:
            root.ui_settings.setValue(WIZARD_DISMISSED_KEY, True)
        made.append(root)
        if tray:
            root.tray = TrayController(AppIcons.load(), root)
        root.start()
        qtbot.waitUntil(
            lambda: root.bridge.state is ConnectionState.CONNECTED, timeout=CONNECT_TIMEOUT_MS
        )
        return root

    yield make
    for root in made:
        root.shutdown()
        root.window.deleteLater()
        root.deleteLater()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The offscreen platform says this of every shown top-level window: a limit of the test
    # platform, not a fault of the app. Every other Qt warning still fails the test.
    for item in items:
        if "tests/gui/" in str(item.path).replace("\\", "/"):
            item.add_marker(
                pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$")
            )
