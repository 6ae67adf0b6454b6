"""The heating control's wiring, stepped by hand on a fake clock: what it hands the job engine,
the GPUs' power limits through NVML (the fake ``pynvml`` replaying a real card, answering the
set call as a root or a normal user would), the room source and the Home Assistant bridge.

The loop, the safety policy, the store (a real SQLite file) and the NVML sensor are real."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_pynvml import FakePynvml, load_recording
from heatshare.agent.heating_control import HeatingControl, Presence, SampleFacts
from heatshare.domain.readings import HostReading, Snapshot
from heatshare.protocol.heating import (
    Actuation,
    ComfortPeriod,
    HeatingSettings,
    HeatMode,
    ModeRequest,
    MqttSource,
    RoomSourceKind,
)
from heatshare.sensors import HostSensor, NvmlSensor, SensorSuite
from heatshare.sensors.room import RoomSample
from heatshare.store import Store

T0 = 1_800_000_000.0
REC = load_recording()
DEFAULT_MW = REC["ticks"][0]["devices"][0]["nvmlDeviceGetPowerManagementLimit"]["value"]
ALL_DAY = [ComfortPeriod(day=d, start_min=0, end_min=1440) for d in range(7)]


@dataclass
class Clock:
    wall: float = T0
    mono: float = 100.0

    def advance(self, s: float) -> None:
        self.wall += s
        self.mono += s


@dataclass
class Jobs:
    """The job engine's side: a job running, and what the control told it."""

    running: bool = True
    eta: float | None = None
    holds: list[tuple[bool, str, int | None]] = field(default_factory=list)

    def hold(self, *, compute: bool, hold: str, cpu_cores: int | None) -> None:
        self.holds.append((compute, hold, cpu_cores))

    def job_running(self) -> bool:
        return self.running

    def job_frozen(self) -> bool:
        return bool(self.holds) and not self.holds[-1][0] and self.holds[-1][1] == "freeze"

    def checkpoint_eta_s(self) -> float | None:
        return self.eta


@dataclass
class Room:
    sample: RoomSample = field(default_factory=lambda: RoomSample(20.0, None, T0, None))
    started: int = 0
    stopped: int = 0

    def start(self) -> None:
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1

    def latest(self) -> RoomSample:
        return self.sample


@dataclass
class Bridge:
    args: tuple[Any, ...]
    kw: dict[str, Any]
    started: bool = False
    stopped: bool = False
    published: list[Any] = field(default_factory=list)
    connected: bool = True
    error: str | None = None

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def publish(self, state: Any) -> None:
        self.published.append(state)


@dataclass
class Rig:
    control: HeatingControl
    clock: Clock
    jobs: Jobs
    fake: FakePynvml
    suite: SensorSuite
    store: Store
    sample_error: str | None = None
    rooms: list[Room] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)
    presence_reads: int = 0

    def facts(self) -> SampleFacts:
        snap = Snapshot(
            mono_s=self.clock.mono,
            wall_ts=self.clock.wall,
            host=HostReading(cpu_temp_c=50.0),
            gpus=self.suite.nvml.read() if self.suite.nvml else (),
        )
        return SampleFacts(snap, 300.0, self.clock.mono, self.sample_error, 1.5)

    def step(self, seconds: float = 0.25) -> None:
        self.clock.advance(seconds)
        self.control.step()


def make_rig(
    tmp_path: Path,
    *,
    set_limit: str | None,
    period_s: float = 3600.0,  # the tests step it themselves
    presence: Presence | None = None,
) -> Rig:
    clock = Clock()
    fake = FakePynvml(REC, set_limit=set_limit)
    suite = SensorSuite(host=HostSensor(), nvml=NvmlSensor(fake), rapl=None)
    store = Store.open(tmp_path / "heating.sqlite3", now=T0)
    rig: Rig

    def room_factory(settings: HeatingSettings) -> Room | None:
        if settings.room_source is RoomSourceKind.NONE:
            return None
        rig.rooms.append(Room())
        return rig.rooms[-1]

    def bridge_factory(*args: Any, **kw: Any) -> Bridge:
        rig.bridges.append(Bridge(args, kw))
        return rig.bridges[-1]

    def read_presence(settings: HeatingSettings) -> Presence:
        rig.presence_reads += 1
        return presence or Presence()

    control = HeatingControl(
        store,
        facts=lambda: rig.facts(),  # noqa: PLW0108 - rig is made below, and tests swap facts
        power=suite,
        presence=read_presence,
        wall=lambda: clock.wall,
        mono=lambda: clock.mono,
        tz=__import__("datetime").UTC,
        room_factory=room_factory,  # type: ignore[arg-type]
        bridge_factory=bridge_factory,  # type: ignore[arg-type]
        real_sources=False,
        period_s=period_s,
        presence_period_s=period_s,
    )
    rig = Rig(control, clock, Jobs(), fake, suite, store)
    control.attach_network(rig.jobs)
    return rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path, set_limit=None)  # root: the limit may be set
    yield r
    r.control.stop()
    r.suite.close()
    r.store.close()


@pytest.fixture
def user_rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path, set_limit="NVMLError_NoPermission")
    yield r
    r.control.stop()
    r.suite.close()
    r.store.close()


def heat_first_at(pct: float) -> HeatingSettings:
    return HeatingSettings(mode=HeatMode.HEAT_FIRST, periods=ALL_DAY, comfort_power_pct=pct)


def test_a_power_cap_where_nvml_allows_it_and_the_default_back_after(rig: Rig) -> None:
    rig.control.put_settings(heat_first_at(60))
    rig.step()
    rig.step(400.0)  # past the duty cycle's minimum off time from the start
    status = rig.control.status()
    assert status.actuation is Actuation.POWER_CAP
    assert status.gpu_power_limit_w == 420.0  # 60 % of the H100's 700 W
    assert rig.fake.limits_set[0][-1] == 420_000
    assert rig.jobs.holds[-1][0] is True
    sets = len(rig.fake.limits_set[0])
    rig.step()
    assert len(rig.fake.limits_set[0]) == sets  # the same cap is not set again
    # The cap dropped (earn first: full power): the default limit comes back.
    rig.control.set_mode(ModeRequest(mode=HeatMode.EARN_FIRST))
    rig.step()
    assert rig.fake.limits_set[0][-1] == DEFAULT_MW
    # Capped again, then the agent stops: the default comes back too.
    rig.control.set_mode(ModeRequest(mode=HeatMode.HEAT_FIRST))
    rig.step(400.0)
    assert rig.fake.limits_set[0][-1] == 420_000
    rig.control.stop()
    assert rig.fake.limits_set[0][-1] == DEFAULT_MW


def test_without_the_right_to_set_the_limit_it_falls_back_to_the_duty_cycle(
    user_rig: Rig,
) -> None:
    user_rig.control.put_settings(heat_first_at(60))
    for _ in range(8):
        user_rig.step(100.0)
    status = user_rig.control.status()
    assert status.actuation in (Actuation.DUTY_CYCLE, Actuation.NONE)
    assert status.gpu_power_limit_w is None
    assert user_rig.fake.limits_set == {}
    # Asked once (the probe), never again.
    assert user_rig.fake.calls["nvmlDeviceSetPowerManagementLimit"] == 1


def test_the_sensor_suite_restores_a_cap_when_it_closes(tmp_path: Path) -> None:
    fake = FakePynvml(REC, set_limit=None)
    suite = SensorSuite(host=HostSensor(), nvml=NvmlSensor(fake), rapl=None)
    assert suite.gpu_power_limit_control() == ((0, 200.0, 700.0),)
    assert suite.set_gpu_power_limits({0: 1000.0}) == {0: 700.0}  # clamped to its range
    assert suite.set_gpu_power_limits({0: 250.0}) == {0: 250.0}
    assert suite.nvml is not None
    assert suite.nvml.read()[0].power_limit_w == 250.0  # the new limit shows at once
    suite.close()
    assert fake.limits_set[0][-1] == DEFAULT_MW


@pytest.mark.parametrize("answer", ["NVMLError_NoPermission", "NVMLError_NotSupported"])
def test_a_refused_limit_is_not_offered(answer: str) -> None:
    # The refusal as a recording of a real card holds it (a normal user's, a card's without
    # a settable limit).
    rec = copy.deepcopy(REC)
    rec["devices"][0]["static"]["nvmlDeviceSetPowerManagementLimit"] = {"error": answer}
    fake = FakePynvml(rec)
    suite = SensorSuite(host=HostSensor(), nvml=NvmlSensor(fake), rapl=None)
    try:
        assert suite.gpu_power_limit_control() == ()
        assert suite.set_gpu_power_limits({0: 300.0}) == {}
    finally:
        suite.close()


def test_a_safety_stop_freezes_the_job_and_is_logged(
    rig: Rig, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"sensor|Sensor")
    rig.step()
    assert rig.jobs.holds[-1] == (True, "none", None)
    rig.sample_error = "Sampling failed: the hwmon file vanished"
    rig.step()
    assert rig.jobs.holds[-1][:2] == (False, "freeze")
    status = rig.control.status()
    assert status.safety_stop
    summary = rig.control.summary()
    assert summary is not None and summary.safety_stop and not summary.computing


def test_a_stalled_sampler_is_seen_by_the_heating_thread(
    rig: Rig, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"[Ss]ensor|[Ss]ampl")
    rig.step()
    stalled_at = rig.clock.mono
    rig.facts = lambda: SampleFacts(None, None, stalled_at, None)  # type: ignore[method-assign]
    frozen_after = None
    for i in range(1, 20):
        rig.step(0.25)
        if rig.jobs.holds[-1][:2] == (False, "freeze"):
            frozen_after = i * 0.25
            break
    assert frozen_after is not None and frozen_after <= 2.0, frozen_after


def test_a_failing_step_holds_the_jobs_frozen(rig: Rig) -> None:
    def broken() -> SampleFacts:
        raise RuntimeError("the service went away")

    rig.facts = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        rig.step()
    assert rig.jobs.holds[-1] == (False, "freeze", None)


def test_mode_off_stops_at_the_checkpoint_the_job_says_is_near(rig: Rig) -> None:
    rig.step()
    rig.jobs.eta = 5.0
    rig.control.set_mode(ModeRequest(mode=HeatMode.OFF))
    rig.step()
    assert rig.jobs.holds[-1][0] is True  # let it reach the checkpoint
    assert "checkpoint" in rig.control.status().reason
    rig.step(6.0)
    assert rig.jobs.holds[-1][:2] == (False, "stop")


def test_presence_is_read_on_its_own_thread_not_every_step(rig: Rig) -> None:
    for _ in range(10):
        rig.step()
    assert rig.presence_reads == 0


def test_the_room_source_and_bridge_follow_the_settings(rig: Rig) -> None:
    rig.control.start()
    assert rig.rooms == [] and rig.bridges == []
    mqtt = MqttSource(host="127.0.0.1", topic="zigbee2mqtt/room", password="pw")
    rig.control.put_settings(HeatingSettings(room_source=RoomSourceKind.MQTT, mqtt=mqtt))
    assert len(rig.rooms) == 1 and rig.rooms[0].started == 1
    assert len(rig.bridges) == 1 and rig.bridges[0].started
    key = rig.bridges[0].kw["node_key"]
    rig.step()
    assert rig.control.status().room_c == 20.0
    assert rig.control.status().home_assistant == "connected"
    # A change elsewhere leaves them running; a change of the broker restarts both.
    rig.control.put_settings(rig.control.settings_stored().model_copy(update={"eco_c": 16.0}))
    assert len(rig.rooms) == 1 and len(rig.bridges) == 1
    moved = mqtt.model_copy(update={"port": 1884})
    rig.control.put_settings(rig.control.settings_stored().model_copy(update={"mqtt": moved}))
    assert rig.rooms[0].stopped == 1 and rig.bridges[0].stopped
    assert len(rig.rooms) == 2 and len(rig.bridges) == 2
    assert rig.bridges[1].kw["node_key"] == key  # the same entity in Home Assistant
    # Commands from Home Assistant reach the loop, and their state goes back.
    bridge = rig.bridges[1]
    state = bridge.kw["on_setpoint"](22.5)
    assert state.target_c == 22.5
    assert rig.control.status().setpoint_source == "override"
    state = bridge.kw["on_mode"](HeatMode.OFF)
    assert state.mode is HeatMode.OFF
    assert rig.control.settings_stored().mode is HeatMode.OFF
    assert bridge.published  # published at once on a change
    rig.control.put_settings(HeatingSettings())
    assert rig.bridges[1].stopped and rig.rooms[1].stopped == 1


def test_the_threads_read_presence_and_stop_on_battery(
    tmp_path: Path, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"battery")
    r = make_rig(tmp_path, set_limit=None, period_s=0.05, presence=Presence(on_battery=True))
    try:
        r.control.put_settings(
            HeatingSettings(limits=HeatingSettings().limits.model_copy(update={"grace_s": 0}))
        )
        r.control.start()
        deadline = time.monotonic() + 5
        while not (r.jobs.holds and r.jobs.holds[-1][:2] == (False, "freeze")):
            assert time.monotonic() < deadline, r.jobs.holds[-3:]
            time.sleep(0.02)
        assert r.presence_reads >= 1
        assert any(e.rule.value == "on_battery" for e in r.control.status().events)
    finally:
        r.control.stop()
        r.suite.close()
        r.store.close()
