"""The real agent process reading this machine's real sensors, through its real API and CLI."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from agent_process import AgentProcess, run_cli, spawn_agent
from heatshare.protocol.client import AgentClient
from heatshare.protocol.discovery import DEFAULT_PORT, Paths, read_runtime
from heatshare.protocol.local_api import AgentState, AgentStatus, Provenance, SettingsPatch


def wait_for_samples(client: AgentClient, n: int = 2, timeout_s: float = 10.0) -> AgentStatus:
    """The status once at least ``n`` samples are recorded (one a second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.status()
        if status.sample_time is not None:
            h = client.history(["cpu.util_pct"], time.time() - 60, time.time() + 1)
            if len(h.series[0].t) >= n:
                return status
        time.sleep(0.2)
    pytest.fail(f"fewer than {n} samples within {timeout_s} s")


def test_real_samples_of_this_machine(agent: AgentProcess) -> None:
    client = agent.client()
    status = wait_for_samples(client, n=3)
    assert status.state in (AgentState.HEATING, AgentState.IDLE)
    assert status.host.cpu_pct is not None and 0.0 <= status.host.cpu_pct <= 100.0
    assert status.host.mem_pct is not None and 0.0 < status.host.mem_pct <= 100.0
    assert "cpu" in status.temperatures  # its value is None where the OS reports none
    assert status.heat_w is not None and status.heat_w > 0
    assert status.heat_provenance is not None
    if not status.gpus and status.host.cpu_power_provenance is Provenance.ESTIMATE:
        # This machine (no NVIDIA GPU, no readable RAPL): an estimate, and it says so.
        assert status.heat_provenance is Provenance.ESTIMATE
        assert any("estimated" in w for w in status.warnings)

    now = time.time()
    h = client.history(["cpu.util_pct", "heat.power_w", "heat.energy_kwh"], now - 60, now + 1)
    assert h.resolution_s == 1
    cpu, heat, energy = h.series
    assert len(cpu.t) >= 3
    assert all(v is not None and 0.0 <= v <= 100.0 for v in cpu.mean)
    # One sample a second, on a drift-free schedule.
    gaps = [b - a for a, b in zip(cpu.t, cpu.t[1:], strict=False)]
    assert all(0.5 <= g <= 1.5 for g in gaps), gaps  # loose: a busy CI box delays a tick
    assert (cpu.t[-1] - cpu.t[0]) / len(gaps) == pytest.approx(1.0, abs=0.1)
    assert all(v is not None and v > 0 for v in heat.mean)
    assert energy.mean == sorted(energy.mean)  # cumulative
    names = {s.name for s in client.series().series}
    assert {"cpu.util_pct", "heat.power_w", "mem.used_pct"} <= names


def test_run_tells_a_person_where_things_are(agent: AgentProcess) -> None:
    info = agent.wait_ready()
    deadline = time.monotonic() + 5.0
    while "Stop it with" not in agent.stdout_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    out = agent.stdout_file.read_text()
    assert "is running" in out
    assert info.base_url in out
    assert str(agent.paths.token_file) in out
    assert "Sensor" in out


def test_status_json_from_the_command_line(agent: AgentProcess) -> None:
    wait_for_samples(agent.client(), n=1)
    out = run_cli("status", "--json", "--profile-dir", str(agent.profile))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["state"] in {"heating", "idle"}
    assert data["heat_w"] is None or isinstance(data["heat_w"], float)
    assert data["heat_provenance"] in {p.value for p in Provenance} | {None}
    assert isinstance(data["temperatures"], dict)
    assert all(v is None or isinstance(v, float) for v in data["temperatures"].values())
    text = run_cli("status", "--profile-dir", str(agent.profile))
    assert text.returncode == 0
    assert "Heat output" in text.stdout


def test_status_without_an_agent_exits_3(tmp_path: Path) -> None:
    out = run_cli("status", "--json", "--profile-dir", str(tmp_path / "nobody"))
    assert out.returncode == 3
    assert "No agent is running" in out.stderr
    assert out.stdout == ""


def test_pause_and_resume(agent: AgentProcess) -> None:
    client = agent.client()
    wait_for_samples(client, n=1)
    assert client.pause(3600).state is AgentState.PAUSED
    time.sleep(1.2)  # the sampler goes on: a tick must not undo the pause
    status = client.status()
    assert status.state is AgentState.PAUSED
    assert status.paused_until is not None
    assert client.resume().state in (AgentState.HEATING, AgentState.IDLE)


def test_settings_and_pause_survive_a_restart(tmp_path: Path, spawn: list[AgentProcess]) -> None:
    first = spawn_agent(tmp_path / "p")
    spawn.append(first)
    client = first.client()
    client.update_settings(SettingsPatch(tariff_per_kwh="0.31", currency="EUR"))
    client.pause()
    assert first.terminate() == 0

    second = spawn_agent(tmp_path / "p")
    spawn.append(second)
    client = second.client()
    settings = client.settings()
    assert (str(settings.tariff_per_kwh), settings.currency) == ("0.31", "EUR")
    assert client.status().state is AgentState.PAUSED
    assert second.terminate() == 0
    assert second.log_problems() == []


def test_sigterm_exits_0_within_3_s_and_removes_the_runtime_file(agent: AgentProcess) -> None:
    wait_for_samples(agent.client(), n=1)
    started = time.monotonic()
    assert agent.terminate(timeout_s=3.0) == 0
    assert time.monotonic() - started < 3.0
    assert not agent.paths.runtime_file.exists()
    assert agent.log_problems() == []
    assert agent.stderr() == ""


def test_a_second_agent_on_the_same_profile_refuses(
    agent: AgentProcess, spawn: list[AgentProcess]
) -> None:
    second = spawn_agent(agent.profile)
    spawn.append(second)
    assert second.proc.wait(timeout=15) == 1
    assert "another agent is already running" in second.stderr()
    # The first goes on, and its runtime file is still its own.
    info = read_runtime(agent.paths)
    assert info is not None and info.pid == agent.proc.pid
    assert agent.client().status().hostname


def test_stop_from_the_command_line(agent: AgentProcess) -> None:
    out = run_cli("stop", "--profile-dir", str(agent.profile))
    assert out.returncode == 0, out.stderr
    assert agent.proc.wait(timeout=5) == 0
    assert not agent.paths.runtime_file.exists()


def test_the_default_port_falls_back_when_taken(tmp_path: Path, spawn: list[AgentProcess]) -> None:
    with socket.socket() as holder:
        # As the agent does: a port left in TIME_WAIT by an earlier agent is free to take.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", DEFAULT_PORT))
            holder.listen()
        except OSError:
            pass  # a real agent holds it already: the fallback is tested all the same
        a = spawn_agent(tmp_path / "default-port", listen=None)
        spawn.append(a)
        info = a.wait_ready()
        assert info.port != DEFAULT_PORT
        assert a.client().status().agent_version
        assert a.terminate() == 0


def test_a_damaged_database_is_set_aside_and_the_user_told(
    tmp_path: Path, spawn: list[AgentProcess]
) -> None:
    """The real agent on a profile whose history file is garbage: kept, not overwritten."""
    paths = Paths.for_profile(tmp_path / "p")
    paths.ensure()
    garbage = b"this is not a database " * 400
    paths.db_file.write_bytes(garbage)

    agent = spawn_agent(tmp_path / "p")
    spawn.append(agent)
    client = agent.client()
    status = wait_for_samples(client)
    notes = [w for w in status.warnings if "damaged" in w]
    assert len(notes) == 1, status.warnings
    set_aside = [p for p in paths.data_dir.iterdir() if ".corrupt-" in p.name]
    assert len(set_aside) == 1
    assert set_aside[0].read_bytes() == garbage  # never overwritten
    assert set_aside[0].name in notes[0]
    assert agent.terminate() == 0
    # The warning went to the agent's log too, and the new database is a working one.
    assert any("damaged" in line for line in agent.log_problems())
    again = spawn_agent(tmp_path / "p")
    spawn.append(again)
    assert not [w for w in again.client().status().warnings if "damaged" in w]
    assert again.terminate() == 0
