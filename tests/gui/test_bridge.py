"""The bridge against a real agent process: typed status, unreachable, reconnect, settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from agentproc import RealAgent
from pytestqt.qtbot import QtBot

from heatshare.gui.bridge import (
    AgentBridge,
    AgentLauncher,
    ConnectionState,
    FixedEndpoint,
    HistoryResult,
    LocalEndpoints,
    parse_host_port,
)
from heatshare.gui.tasks import TaskRunner
from heatshare.protocol.discovery import Paths
from heatshare.protocol.local_api import AgentStatus, HistoryResponse, Settings, SettingsPatch


def make_bridge(paths: Paths, launcher: AgentLauncher | None = None) -> AgentBridge:
    return AgentBridge(LocalEndpoints(paths), TaskRunner(), launcher=launcher)


def finish(bridge: AgentBridge) -> None:
    bridge.stop()
    bridge._tasks.shutdown()


def test_status_arrives_as_a_typed_object(qtbot: QtBot, real_agent: RealAgent) -> None:
    bridge = make_bridge(real_agent.paths)
    with qtbot.waitSignal(bridge.status_received, timeout=5000) as blocker:
        bridge.start()
    status = blocker.args[0]
    assert isinstance(status, AgentStatus)
    assert bridge.state is ConnectionState.CONNECTED
    qtbot.waitUntil(lambda: isinstance(bridge.settings, Settings), timeout=5000)
    finish(bridge)


def test_history_arrives_as_a_typed_object(qtbot: QtBot, real_agent: RealAgent) -> None:
    bridge = make_bridge(real_agent.paths)
    with qtbot.waitSignal(bridge.status_received, timeout=5000):
        bridge.start()
    now = time.time()
    with qtbot.waitSignal(bridge.history_received, timeout=5000) as blocker:
        rid = bridge.request_history(["heat.power_w", "heat.energy_kwh"], now - 300, now)
    result = blocker.args[0]
    assert isinstance(result, HistoryResult)
    assert result.request_id == rid
    assert isinstance(result.response, HistoryResponse)
    assert result.response.resolution_s == 1
    finish(bridge)


def test_killed_agent_shows_unreachable_and_a_restarted_one_reconnects(
    qtbot: QtBot, real_agent: RealAgent, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"The agent stopped answering")
    bridge = make_bridge(real_agent.paths)
    states: list[ConnectionState] = []
    bridge.connection_changed.connect(lambda s, _m: states.append(s))
    with qtbot.waitSignal(bridge.status_received, timeout=5000):
        bridge.start()

    real_agent.kill()
    qtbot.waitUntil(lambda: bridge.state is ConnectionState.UNREACHABLE, timeout=5000)
    assert "No answer from the local agent" in bridge.message

    info = real_agent.start()  # a new process: a new port, found through the runtime file
    qtbot.waitUntil(lambda: bridge.state is ConnectionState.CONNECTED, timeout=10_000)
    assert bridge._endpoint is not None
    assert bridge._endpoint.base_url == info.base_url
    assert states == [
        ConnectionState.CONNECTED,
        ConnectionState.UNREACHABLE,
        ConnectionState.CONNECTED,
    ]
    finish(bridge)


def test_the_agents_validation_message_comes_back(qtbot: QtBot, real_agent: RealAgent) -> None:
    bridge = make_bridge(real_agent.paths)
    with qtbot.waitSignal(bridge.status_received, timeout=5000):
        bridge.start()
    bad = SettingsPatch.model_construct(_fields_set={"tariff_per_kwh"}, tariff_per_kwh=Decimal(500))
    with qtbot.waitSignal(bridge.settings_failed, timeout=5000) as blocker:
        bridge.save_settings(bad)
    assert "tariff" in blocker.args[0].lower()

    good = SettingsPatch(tariff_per_kwh=Decimal("0.30"), temperature_unit="F")
    with qtbot.waitSignal(bridge.settings_received, timeout=5000) as ok:
        bridge.save_settings(good)
    assert ok.args[0].tariff_per_kwh == Decimal("0.30")
    assert ok.args[0].temperature_unit == "F"
    finish(bridge)


@pytest.mark.slow
def test_no_agent_at_start_starts_one_and_waits(qtbot: QtBot, tmp_path: Path) -> None:
    profile = tmp_path / "fresh"
    paths = Paths.for_profile(profile)
    launcher = AgentLauncher(paths, str(profile))
    bridge = make_bridge(paths, launcher)
    states: list[ConnectionState] = []
    bridge.connection_changed.connect(lambda s, _m: states.append(s))
    try:
        bridge.start()
        qtbot.waitUntil(lambda: bridge.state is ConnectionState.CONNECTED, timeout=20_000)
        assert states[0] is ConnectionState.STARTING_AGENT
        assert launcher.process is not None
        assert (paths.log_dir / "agent-console.log").exists()
        qtbot.waitUntil(lambda: bridge.settings is not None, timeout=5000)  # loaded on connect
        done: list[bool] = []
        bridge.shutdown_agent(on_done=lambda: done.append(True))
        qtbot.waitUntil(lambda: bool(done), timeout=5000)
        assert launcher.process.wait(timeout=10) == 0
    finally:
        finish(bridge)
        if launcher.process is not None and launcher.process.poll() is None:
            launcher.process.kill()
            launcher.process.wait()


def test_connect_mode_never_starts_an_agent(qtbot: QtBot) -> None:
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    bridge = AgentBridge(FixedEndpoint("127.0.0.1:9", "x"), TaskRunner(), launcher=None)
    bridge.start()
    qtbot.waitUntil(lambda: bridge.state is ConnectionState.UNREACHABLE, timeout=5000)
    assert "http://127.0.0.1:9" in bridge.message
    finish(bridge)


def test_host_port_parsing() -> None:
    assert parse_host_port("shed.local:47821") == "http://shed.local:47821"
    assert parse_host_port("http://10.0.0.5:80/") == "http://10.0.0.5:80"
    assert parse_host_port("[::1]:47821") == "http://[::1]:47821"
    for bad in ("shed.local", ":80", "host:port", "host:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_host_port(bad)
