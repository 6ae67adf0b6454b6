"""The local API's routes against a real service and a real temp store."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_api_support import T0, TOKEN, Agent, FakeSensors, start_agent

from heatshare.protocol.client import AgentClient
from heatshare.protocol.local_api import (
    AgentState,
    AgentStatus,
    HistoryResponse,
    SeriesList,
    Settings,
    SettingsPatch,
)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(tmp_path)
    yield a
    a.close()


@pytest.fixture
def client(agent: Agent) -> Iterator[AgentClient]:
    c = AgentClient(agent.url, TOKEN)
    yield c
    c.close()


def test_status_before_the_first_sample_is_starting(client: AgentClient) -> None:
    status = client.status()
    assert status.state is AgentState.STARTING
    assert status.heat_w is None
    assert status.sample_time is None
    assert status.agent_version
    assert status.hostname == "testhost"


def test_status_reports_the_last_sample(agent: Agent, client: AgentClient) -> None:
    agent.tick(3)
    status = client.status()
    assert status.state is AgentState.IDLE  # 10 % CPU, 5 % GPU: below the 25 % threshold
    assert status.sample_time is not None
    assert status.sample_time.timestamp() == pytest.approx(agent.sensors.wall)
    # 180 W from the GPU's energy counter plus the CPU estimated at 10 % load.
    assert status.heat_w == pytest.approx(180.0 + 10.0 + 55.0 * 0.10)
    assert status.heat_provenance == "estimate"  # a total is as good as its weakest part
    assert status.heat_btu_h == pytest.approx(status.heat_w * 3.412141633)
    assert status.temperatures == {"cpu": 48.0, "gpu0": 66.0}
    assert (status.hottest_name, status.hottest_c) == ("gpu0", 66.0)
    gpu = status.gpus[0]
    assert (gpu.name, gpu.power_w, gpu.power_provenance) == (
        "NVIDIA GeForce RTX 3080",
        pytest.approx(180.0),
        "energy_counter",
    )
    assert gpu.power_limit_max_w == 370.0
    assert status.host.cpu_power_provenance == "estimate"
    assert status.host.per_core_pct == [10.0, 10.0]
    assert any("estimated" in w for w in status.warnings)
    # Two integrated intervals of about 195.5 W each.
    assert status.heat_today_kwh == pytest.approx(2 * 195.5 / 3.6e6)


def test_heating_when_any_utilisation_reaches_the_threshold(
    agent: Agent, client: AgentClient
) -> None:
    agent.sensors.gpu_util_pct = 97.0
    agent.tick()
    assert client.status().state is AgentState.HEATING
    client.update_settings(SettingsPatch(heating_threshold_pct=98))
    agent.tick()
    assert client.status().state is AgentState.IDLE


def test_a_cpu_only_machine_heats_by_estimate(tmp_path: Path) -> None:
    agent = start_agent(tmp_path, FakeSensors(gpu=False, cpu_pct=100.0))
    try:
        agent.tick(2)
        status = AgentStatus.model_validate(agent.request("GET", "/v1/status").json())
        assert status.gpus == []
        assert status.heat_w == pytest.approx(65.0)
        assert status.heat_provenance == "estimate"
        assert status.state is AgentState.HEATING
        assert status.temperatures == {"cpu": 48.0}
    finally:
        agent.close()


def test_series_lists_what_was_recorded_with_units(agent: Agent, client: AgentClient) -> None:
    assert client.series() == SeriesList(series=[])
    agent.tick(2)
    by_name = {s.name: s for s in client.series().series}
    assert {"heat.power_w", "heat.energy_kwh", "cpu.util_pct", "gpu0.temp_c"} <= set(by_name)
    assert by_name["gpu0.temp_c"].unit == "°C"
    assert by_name["gpu0.temp_c"].label == "GPU 0 temperature"
    assert by_name["heat.energy_kwh"].unit == "kWh"
    assert "cpu.temp_c" in by_name
    assert "gpu0.mem_used_pct" in by_name


def test_history_returns_raw_samples_for_a_short_range(agent: Agent, client: AgentClient) -> None:
    agent.tick(10)
    h = client.history(["cpu.util_pct", "gpu0.mem_used_pct"], T0, agent.sensors.wall)
    assert h.resolution_s == 1
    cpu, mem = h.series
    assert cpu.name == "cpu.util_pct" and cpu.unit == "%"
    assert len(cpu.t) == 10
    assert cpu.t == sorted(cpu.t)
    assert set(cpu.mean) == {10.0}
    assert cpu.min is None  # raw samples carry no min/max
    assert mem.mean == [pytest.approx(20.0)] * 10


def test_history_picks_rollups_for_a_long_range(agent: Agent, client: AgentClient) -> None:
    agent.tick(5)
    h = client.history(["heat.power_w"], T0 - 30 * 86400, agent.sensors.wall)
    assert h.resolution_s == 3600
    (heat,) = h.series
    assert len(heat.t) == 1
    assert heat.min is not None and heat.max is not None


def test_history_of_a_known_series_with_no_data_yet_is_empty(
    agent: Agent, client: AgentClient
) -> None:
    h = client.history(["heat.power_w", "gpu3.temp_c"], T0 - 60, T0)
    assert [(s.name, s.t, s.mean) for s in h.series] == [
        ("heat.power_w", [], []),
        ("gpu3.temp_c", [], []),
    ]


def test_cumulative_heat_grows_and_continues_after_a_restart(tmp_path: Path) -> None:
    sensors = FakeSensors(gpu=False, cpu_pct=0.0)  # 10 W estimated
    agent = start_agent(tmp_path, sensors)
    agent.tick(11)
    first = HistoryResponse.model_validate(
        agent.request("GET", f"/v1/history?series=heat.energy_kwh&start={T0}").json()
    )
    agent.close()
    values = first.series[0].mean
    assert values[0] == 0.0
    assert values[-1] == pytest.approx(10 * 10.0 / 3.6e6)

    sensors.mono += 100  # a restart: a new accountant, no interval across the gap
    agent = start_agent(tmp_path, sensors)
    try:
        agent.tick(3)
        status = agent.request("GET", "/v1/status").json()
        assert status["heat_today_kwh"] == pytest.approx(12 * 10.0 / 3.6e6)
        latest = agent.request(
            "GET", f"/v1/history?series=heat.energy_kwh&start={sensors.wall - 2}"
        ).json()["series"][0]["mean"]
        assert latest[-1] == pytest.approx(12 * 10.0 / 3.6e6)
    finally:
        agent.close()


def test_settings_round_trip_and_apply_live(agent: Agent, client: AgentClient) -> None:
    assert client.settings() == Settings()
    new = client.update_settings(
        SettingsPatch(tariff_per_kwh="0.30", currency="EUR", rest_of_system_w=25.0)
    )
    assert str(new.tariff_per_kwh) == "0.30"
    assert new.currency == "EUR"
    assert new.temperature_unit == "C"  # untouched
    assert client.settings() == new
    agent.tick(2)
    status = client.status()
    assert status.currency == "EUR"
    # The rest of the system now counts, as an estimate.
    assert status.heat_w == pytest.approx(180.0 + 15.5 + 25.0)


def test_an_empty_patch_changes_nothing(agent: Agent, client: AgentClient) -> None:
    resp = agent.request(
        "PATCH", "/v1/settings", data="{}", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 200
    assert Settings.model_validate(resp.json()) == Settings()


def test_settings_persist_in_the_store(tmp_path: Path) -> None:
    agent = start_agent(tmp_path)
    AgentClient(agent.url, TOKEN).update_settings(SettingsPatch(heating_threshold_pct=60))
    agent.close()
    agent = start_agent(tmp_path)
    try:
        assert agent.request("GET", "/v1/settings").json()["heating_threshold_pct"] == 60
    finally:
        agent.close()


def test_cost_today_follows_the_tariff(agent: Agent, client: AgentClient) -> None:
    client.update_settings(SettingsPatch(tariff_per_kwh="50"))  # a very dear tariff
    agent.tick(61)  # 60 intervals of 195.5 W: 11 730 J = 0.00326 kWh
    status = client.status()
    assert status.cost_today_minor == round(11_730 / 3.6e6 * 50 * 100)


def test_pause_until_resumed_and_resume(agent: Agent, client: AgentClient) -> None:
    agent.tick()
    status = client.pause()
    assert status.state is AgentState.PAUSED
    assert status.paused_until is None
    agent.tick()
    assert client.status().state is AgentState.PAUSED
    status = client.resume()
    assert status.state is AgentState.IDLE
    assert client.resume().state is AgentState.IDLE  # resuming twice is fine


def test_a_timed_pause_ends_by_itself(agent: Agent, client: AgentClient) -> None:
    agent.tick()
    status = client.pause(3600)
    assert status.paused_until is not None
    assert status.paused_until.timestamp() == pytest.approx(agent.sensors.wall + 3600)
    agent.sensors.wall += 3599
    assert client.status().state is AgentState.PAUSED
    agent.sensors.wall += 2
    assert client.status().state is AgentState.IDLE


def test_a_pause_survives_a_restart(tmp_path: Path) -> None:
    agent = start_agent(tmp_path)
    agent.tick()
    resp = agent.request(
        "POST",
        "/v1/pause",
        data=json.dumps({"duration_s": 600}),
        headers={"Content-Type": "application/json"},
    )
    assert resp.json()["state"] == "paused"
    agent.close()
    agent = start_agent(tmp_path, agent.sensors)
    try:
        status = agent.request("GET", "/v1/status").json()
        assert status["state"] == "paused"
        assert status["paused_until"] is not None
    finally:
        agent.close()


def test_pause_without_a_body_pauses_until_resumed(agent: Agent) -> None:
    resp = agent.request("POST", "/v1/pause")
    assert resp.status_code == 200
    assert resp.json()["state"] == "paused"
    assert resp.json()["paused_until"] is None


def test_shutdown_answers_then_asks_the_root_to_stop(agent: Agent, client: AgentClient) -> None:
    assert client.shutdown().ok
    assert agent.shutdown.wait(2)


def test_store_warnings_reach_the_status(agent: Agent, client: AgentClient) -> None:
    # What the store says at open (a damaged file set aside) is shown as it is.
    agent.service._store.warnings.append("The history database was damaged; set aside.")
    assert "The history database was damaged; set aside." in client.status().warnings


def test_a_failing_sensor_shows_in_the_status_and_recovers(
    agent: Agent, client: AgentClient
) -> None:
    agent.tick()
    agent.sensors.fail = OSError("psutil went away")
    with pytest.raises(OSError, match="psutil"):
        agent.service.tick()
    assert "Sampling failed: psutil went away" in client.status().warnings
    agent.sensors.fail = None
    agent.tick()
    assert not any("Sampling failed" in w for w in client.status().warnings)


def test_the_openapi_document_describes_every_route(agent: Agent) -> None:
    doc = agent.request("GET", "/v1/openapi.json", token=None).json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/v1/status",
        "/v1/series",
        "/v1/history",
        "/v1/settings",
        "/v1/pause",
        "/v1/resume",
        "/v1/shutdown",
        "/v1/network",
        "/v1/network/enrol",
        "/v1/network/demo",
        "/v1/network/leave",
        "/v1/jobs",
        "/v1/jobs/{attempt_id}/log",
        "/v1/jobs/{attempt_id}/files",
        "/v1/earnings",
        "/v1/heating",
        "/v1/heating/settings",
        "/v1/heating/mode",
        "/v1/heating/boost",
        "/v1/heating/setpoint",
        "/v1/heating/room-probe",
        "/v1/energy/settings",
        "/v1/energy/plug-probe",
        "/v1/energy/prices",
        "/v1/energy/costs",
        "/v1/energy/statement",
        "/v1/openapi.json",
    }
    assert set(doc["paths"]["/v1/settings"]) == {"get", "patch"}
    schemas = doc["components"]["schemas"]
    assert {"AgentStatus", "ErrorResponse", "HistoryResponse", "SettingsPatch"} <= set(schemas)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # Every reference resolves.
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas


def test_damaged_stored_settings_keep_what_is_valid_and_say_so(
    tmp_path: Path, expect_log: Callable[[str], None]
) -> None:
    from heatshare.agent.service import SETTINGS_KEY
    from heatshare.store import Store

    with Store.open(tmp_path / "history.sqlite3", now=T0) as store:
        store.set_state(
            SETTINGS_KEY,
            json.dumps({"currency": "EUR", "tariff_per_kwh": "-3", "from_the_future": 1}),
        )
    expect_log(r"Some stored settings were not usable")
    agent = start_agent(tmp_path)
    try:
        settings = Settings.model_validate(agent.request("GET", "/v1/settings").json())
        assert settings.currency == "EUR"
        assert settings.tariff_per_kwh == Settings().tariff_per_kwh
        warnings = agent.request("GET", "/v1/status").json()["warnings"]
        assert any("from_the_future" in w and "tariff_per_kwh" in w for w in warnings)
    finally:
        agent.close()


def test_unreadable_stored_settings_fall_back_to_the_defaults(
    tmp_path: Path, expect_log: Callable[[str], None]
) -> None:
    from heatshare.agent.service import SETTINGS_KEY
    from heatshare.store import Store

    with Store.open(tmp_path / "history.sqlite3", now=T0) as store:
        store.set_state(SETTINGS_KEY, "{not json")
    expect_log(r"Some stored settings were not usable")
    agent = start_agent(tmp_path)
    try:
        assert Settings.model_validate(agent.request("GET", "/v1/settings").json()) == Settings()
    finally:
        agent.close()


def test_rollup_and_prune_run_once_a_minute_off_the_sampler(agent: Agent) -> None:
    store = agent.service._store
    calls: list[tuple[str, str, float]] = []
    real_rollup, real_prune = store.rollup, store.prune

    def rollup(now: float) -> None:
        calls.append(("rollup", threading.current_thread().name, now))
        real_rollup(now)

    def prune(now: float) -> None:
        calls.append(("prune", threading.current_thread().name, now))
        real_prune(now)

    store.rollup, store.prune = rollup, prune  # type: ignore[method-assign]
    agent.tick(125)
    deadline = time.monotonic() + 5
    while len(calls) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [c[0] for c in calls] == ["rollup", "prune"] * 3
    assert all(c[1].startswith("store-maintenance") for c in calls)
    assert [c[2] for c in calls[::2]] == [T0 + 1, T0 + 61, T0 + 121]
