"""The safety policy, one injected fault per rule, evaluated at 4 Hz as the agent does.

Each rule is taken through its steps: trigger (a pending event with its stop time), grace (no
stop yet), stop (with its sentence, announced once), dwell (a stop that holds while cooling) and
resume. Time is simulated: ``Rig`` moves a monotonic and a wall clock together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from heatshare.domain import safety
from heatshare.domain.safety import (
    FIRST_SAMPLE_QUIET_S,
    SAMPLE_MAX_AGE_S,
    SENSOR_RESUME_S,
    Event,
    GpuFacts,
    HourRow,
    Limits,
    Rule,
    SafetyInputs,
    SafetyPolicy,
    Verdict,
    dust_trend,
    effective_gpu_limits,
)
from heatshare.protocol.heating import SafetyLimits, SafetyRule

TICK = 0.25  # the agent evaluates at 4 Hz
WALL0 = 1_790_000_000.0  # a wall clock far from the monotonic one
GRACE = 10.0
DWELL = 120.0


class Rig:
    """A policy and the world it watches; ``run`` moves time on and evaluates every tick.

    The sampler is healthy unless a test says otherwise: a fresh sample every tick.
    """

    def __init__(self, limits: Limits | None = None, **world: Any) -> None:
        self.policy = SafetyPolicy(limits or Limits(grace_s=GRACE, dwell_s=DWELL))
        self.mono = 1000.0
        self.wall = WALL0
        self.sampler_stalled = False
        self.sample_mono: float | None = self.mono
        self.world: dict[str, Any] = {
            "sample_error": None,
            "gpus": (gpu(55.0),),
            "cpu_temp_c": 50.0,
            "heat_w": 300.0,
            "on_battery": None,
            "exclusive": (),
            "room_c": None,
            "room_wall": None,
            "computing": True,
        }
        self.world.update(world)
        self.verdicts: list[Verdict] = []

    def set(self, **world: Any) -> None:
        self.world.update(world)

    def gpu(self, **facts: Any) -> None:
        """Change GPU 0's facts."""
        self.world["gpus"] = (dataclasses.replace(self.world["gpus"][0], **facts),)

    def inputs(self) -> SafetyInputs:
        if not self.sampler_stalled and self.sample_mono is not None:
            self.sample_mono = self.mono
        return SafetyInputs(
            wall=self.wall, mono=self.mono, sample_mono=self.sample_mono, **self.world
        )

    def step(self) -> Verdict:
        """One evaluation now, then the clocks move on one tick."""
        v = self.policy.evaluate(self.inputs())
        self.verdicts.append(v)
        self.mono += TICK
        self.wall += TICK
        return v

    def run(self, seconds: float) -> list[Verdict]:
        """Evaluate every tick for ``seconds``; the verdicts."""
        return [self.step() for _ in range(round(seconds / TICK))]

    def until(self, predicate: Any, limit_s: float) -> float:
        """Seconds until ``predicate(verdict)`` holds (evaluating every tick), else fail."""
        t0 = self.mono
        for _ in range(round(limit_s / TICK) + 1):
            now = self.mono
            if predicate(self.step()):
                return now - t0
        raise AssertionError(f"not within {limit_s} s")


def gpu(temp_c: float, **facts: Any) -> GpuFacts:
    return GpuFacts(
        index=facts.pop("index", 0),
        temp_c=temp_c,
        fan_pct=facts.pop("fan_pct", 40.0),
        power_w=facts.pop("power_w", 250.0),
        slowdown_c=facts.pop("slowdown_c", 90.0),
        util_pct=facts.pop("util_pct", 100.0),
    )


def only(v: Verdict, rule: Rule) -> Event:
    events = [e for e in v.events if e.rule is rule]
    assert len(events) == 1, v.events
    return events[0]


def started(rig: Rig) -> list[Event]:
    return [e for v in rig.verdicts for e in v.started]


def ended(rig: Rig) -> list[Event]:
    return [e for v in rig.verdicts for e in v.ended]


def stops(vs: list[Verdict]) -> list[bool]:
    return [v.stop for v in vs]


def assert_sentence(text: str) -> None:
    assert text[0].isupper() and text.endswith("."), text
    assert safety.LEFT not in text and "{" not in text, text


# -- the models agree with the protocol's ------------------------------------------------------


def test_rules_have_the_protocols_values() -> None:
    assert [r.value for r in Rule] == [r.value for r in SafetyRule]


def test_limits_mirror_the_protocols_fields_and_defaults() -> None:
    ours = {f.name: f.default for f in dataclasses.fields(Limits)}
    theirs = SafetyLimits()
    assert set(ours) == set(SafetyLimits.model_fields)
    for name, default in ours.items():
        value = getattr(theirs, name)
        assert (tuple(value) if isinstance(value, list) else value) == default, name


def test_limits_refuse_a_resume_threshold_at_or_above_the_limit() -> None:
    with pytest.raises(ValueError, match="GPU must resume below"):
        Limits(gpu_max_c=80, gpu_resume_c=80)
    with pytest.raises(ValueError, match="CPU must resume below"):
        Limits(cpu_max_c=90, cpu_resume_c=95)
    with pytest.raises(ValueError, match="negative"):
        Limits(grace_s=-1)
    with pytest.raises(ValueError, match="open-window drop"):
        Limits(open_window_drop_c=0)


def test_all_is_well_nothing_happens() -> None:
    rig = Rig()
    assert not any(stops(rig.run(600)))
    assert all(v.events == () and v.started == () for v in rig.verdicts)
    assert rig.verdicts[-1].reason is None


# -- component temperatures --------------------------------------------------------------------


def test_a_hot_gpu_waits_its_grace_then_stops_dwells_and_resumes() -> None:
    rig = Rig()
    rig.run(5)
    rig.gpu(temp_c=85.0)
    t_hot, wall_hot = rig.mono, rig.wall
    v = rig.step()
    e = only(v, Rule.GPU_HOT)
    assert not v.stop and e.pending
    assert e.stops_at_wall == pytest.approx(wall_hot + GRACE)
    assert e.since_wall == wall_hot
    assert v.started == (e,)
    assert "80 °C limit" in e.message and "stops in 10 seconds" in e.message
    # Grace: computing goes on until the stop time, the sentence counting down.
    grace = rig.run(GRACE - 2 * TICK)
    assert not any(stops(grace))
    assert "stops in 1 second" in only(grace[-1], Rule.GPU_HOT).message
    waited = rig.until(lambda v: v.stop, 1.0)
    assert rig.mono - TICK - t_hot == pytest.approx(GRACE)
    assert waited <= TICK
    v = rig.verdicts[-1]
    e = only(v, Rule.GPU_HOT)
    assert not e.pending and e.resumes_at_wall is None
    assert v.started == (e,)  # the stop is news of its own
    assert v.reason == e.message
    assert "so computing stopped" in e.message and "72 °C for 2 minutes" in e.message
    # Still hot: stopped, nothing new announced.
    assert all(stops(rig.run(60)))
    assert len(started(rig)) == 2
    # Cooling, but not to the resume threshold: still stopped, no countdown.
    rig.gpu(temp_c=75.0)
    vs = rig.run(300)
    assert all(stops(vs)) and only(vs[-1], Rule.GPU_HOT).resumes_at_wall is None
    # At the resume threshold: the dwell counts down, then computing resumes.
    rig.gpu(temp_c=72.0)
    cooled_wall = rig.wall
    v = rig.step()
    e = only(v, Rule.GPU_HOT)
    assert v.stop and e.resumes_at_wall == pytest.approx(cooled_wall + DWELL)
    assert "resumes in 2 minutes" in e.message
    waited = rig.until(lambda v: not v.stop, DWELL + 1)
    assert waited + TICK == pytest.approx(DWELL)
    assert rig.verdicts[-1].events == ()
    assert [e.rule for e in ended(rig)] == [Rule.GPU_HOT]
    assert len(started(rig)) == 2


def test_a_gpu_that_cools_to_its_resume_threshold_within_the_grace_does_not_stop() -> None:
    rig = Rig()
    rig.gpu(temp_c=83.0)
    rig.run(GRACE / 2)
    rig.gpu(temp_c=71.0)
    v = rig.step()
    assert not v.stop and v.events == ()
    assert [e.rule for e in v.ended] == [Rule.GPU_HOT]  # the log hears the alarm is over
    assert not any(stops(rig.run(60)))


def test_a_gpu_back_under_its_limit_but_above_resume_still_stops_after_the_grace() -> None:
    # Failing closed: a card that went over its limit must show it has cooled, not hover.
    rig = Rig()
    rig.gpu(temp_c=81.0)
    rig.step()
    rig.gpu(temp_c=78.0)
    assert rig.until(lambda v: v.stop, GRACE + 1) == pytest.approx(GRACE - TICK)


def test_a_temperature_wavering_around_the_limit_does_not_make_the_verdict_waver() -> None:
    rig = Rig()
    for k in range(4 * 600):  # ten minutes of 79 / 81 °C, flipping every tick
        rig.gpu(temp_c=81.0 if k % 2 else 79.0)
        rig.step()
    flips = sum(a.stop != b.stop for a, b in zip(rig.verdicts, rig.verdicts[1:], strict=False))
    assert flips == 1  # once, into the stop, after the grace
    first_stop = stops(rig.verdicts).index(True)
    assert first_stop * TICK == pytest.approx(GRACE + TICK)  # counted from the first 81 °C
    assert [e.pending for e in started(rig)] == [True, False]
    assert ended(rig) == []


def test_a_dwell_starts_afresh_when_the_temperature_rises_again() -> None:
    rig = Rig()
    rig.gpu(temp_c=85.0)
    rig.run(GRACE + 1)
    rig.gpu(temp_c=70.0)
    rig.run(DWELL - 20)
    rig.gpu(temp_c=74.0)  # above the resume threshold again
    v = rig.step()
    assert v.stop and only(v, Rule.GPU_HOT).resumes_at_wall is None
    rig.gpu(temp_c=70.0)
    assert rig.until(lambda v: not v.stop, 2 * DWELL) == pytest.approx(DWELL)
    assert len(started(rig)) == 2  # no news for the dwell's restart


def test_the_gpu_limit_is_kept_three_degrees_below_its_slowdown() -> None:
    lim = Limits(gpu_max_c=90.0, gpu_resume_c=82.0)
    assert effective_gpu_limits(lim, 88.0) == (85.0, 77.0)  # the band of 8 °C kept
    assert effective_gpu_limits(lim, 95.0) == (90.0, 82.0)  # the householder's is lower
    assert effective_gpu_limits(lim, None) == (90.0, 82.0)  # slowdown unknown
    assert effective_gpu_limits(Limits(), 83.0) == (80.0, 72.0)  # exactly at the margin
    rig = Rig(Limits(gpu_max_c=90.0, gpu_resume_c=82.0, grace_s=GRACE, dwell_s=DWELL))
    rig.gpu(temp_c=85.0, slowdown_c=88.0)
    assert rig.step().events == ()  # at the effective limit: allowed
    rig.gpu(temp_c=86.0)
    e = only(rig.step(), Rule.GPU_HOT)
    assert "85 °C limit" in e.message and "cools to 77 °C" in e.message
    rig.run(GRACE)
    rig.gpu(temp_c=80.0)  # below the householder's resume (82) but not the effective (77)
    assert all(stops(rig.run(DWELL + 10)))
    rig.gpu(temp_c=77.0)
    assert rig.until(lambda v: not v.stop, DWELL + 1) == pytest.approx(DWELL)


def test_each_of_two_gpus_is_watched_and_named() -> None:
    rig = Rig(gpus=(gpu(60.0, index=0), gpu(60.0, index=1, slowdown_c=80.0)))
    rig.set(gpus=(gpu(60.0, index=0), gpu(78.0, index=1, slowdown_c=80.0)))  # limit 77 here
    e = only(rig.step(), Rule.GPU_HOT)
    assert e.message.startswith("GPU 1 went above its 77 °C limit")


def test_a_hot_cpu_stops_after_its_grace_and_resumes_after_its_dwell() -> None:
    rig = Rig()
    rig.set(cpu_temp_c=95.0)
    e = only(rig.step(), Rule.CPU_HOT)
    assert e.pending and e.message.startswith("The processor went above its 90 °C limit")
    assert rig.until(lambda v: v.stop, GRACE + 1) == pytest.approx(GRACE - TICK)
    rig.set(cpu_temp_c=85.0)
    assert all(stops(rig.run(DWELL * 2)))
    rig.set(cpu_temp_c=80.0)
    assert rig.until(lambda v: not v.stop, DWELL + 1) == pytest.approx(DWELL)


def test_a_cpu_stop_holds_while_its_temperature_cannot_be_read() -> None:
    rig = Rig()
    rig.set(cpu_temp_c=99.0)
    rig.run(GRACE + 1)
    rig.set(cpu_temp_c=None)
    vs = rig.run(DWELL * 2)
    assert all(stops(vs))
    assert {e.rule for e in vs[-1].events} == {Rule.CPU_HOT, Rule.SENSOR_ERROR}
    assert only(vs[-1], Rule.CPU_HOT).resumes_at_wall is None


def test_a_cpu_whose_temperature_is_never_read_is_no_fault() -> None:
    # Virtual machines and many laptops offer no CPU temperature; the CPU throttles itself.
    rig = Rig(cpu_temp_c=None)
    assert not any(stops(rig.run(30)))


# -- the sensors themselves --------------------------------------------------------------------


def test_a_sensor_error_stops_at_once_and_resumes_after_good_readings() -> None:
    rig = Rig()
    rig.run(5)
    rig.set(sample_error="NVML stopped answering: GPU_IS_LOST")
    v = rig.step()
    e = only(v, Rule.SENSOR_ERROR)
    assert v.stop and not e.pending and v.started == (e,)
    assert e.message.startswith("NVML stopped answering: GPU_IS_LOST. Computing stopped at once")
    assert all(stops(rig.run(30)))
    rig.set(sample_error=None)
    v = rig.step()
    assert v.stop and only(v, Rule.SENSOR_ERROR).resumes_at_wall is not None
    assert rig.until(lambda v: not v.stop, 10) + TICK == pytest.approx(SENSOR_RESUME_S)
    assert len(started(rig)) == 1 and len(ended(rig)) == 1


def test_a_stalled_sampler_stops_within_two_seconds_of_its_last_sample() -> None:
    rig = Rig()
    rig.run(5)
    rig.sampler_stalled = True
    last = rig.mono - TICK
    rig.until(lambda v: v.stop, 3)
    stopped_at = rig.mono - TICK
    assert stopped_at - last > SAMPLE_MAX_AGE_S  # not before the sample is stale
    assert stopped_at - last <= SAMPLE_MAX_AGE_S + TICK <= 2.0
    e = only(rig.verdicts[-1], Rule.SENSOR_ERROR)
    assert e.message.startswith("The sensors have not been read for 1.8 seconds.")
    # The sampler comes back: five seconds of good samples, then computing resumes.
    rig.sampler_stalled = False
    assert rig.until(lambda v: not v.stop, 10) == pytest.approx(SENSOR_RESUME_S)


def test_a_sampler_that_stalls_again_during_the_dwell_restarts_it() -> None:
    rig = Rig()
    rig.sampler_stalled = True
    rig.run(3)
    rig.sampler_stalled = False
    rig.run(SENSOR_RESUME_S - 1)
    rig.sampler_stalled = True
    rig.run(1.75)
    rig.sampler_stalled = False
    assert rig.until(lambda v: not v.stop, 20) == pytest.approx(SENSOR_RESUME_S)


def test_a_gpu_temperature_that_cannot_be_read_stops_at_once() -> None:
    rig = Rig()
    rig.run(2)
    rig.gpu(temp_c=None)
    v = rig.step()
    assert v.stop
    assert only(v, Rule.SENSOR_ERROR).message.startswith("The temperature of GPU 0 cannot be read.")


def test_two_gpus_that_cannot_be_read_are_both_named() -> None:
    rig = Rig(gpus=(GpuFacts(index=0), GpuFacts(index=1)))
    e = only(rig.step(), Rule.SENSOR_ERROR)
    assert e.message.startswith("The temperature of GPUs 0, 1 cannot be read.")


def test_a_gpu_that_was_never_read_is_a_sensor_error_from_the_start() -> None:
    rig = Rig(gpus=(GpuFacts(index=0),))
    assert rig.step().stop


def test_a_gpu_missing_from_the_sample_stops_and_its_hot_stop_holds() -> None:
    rig = Rig()
    rig.gpu(temp_c=90.0)
    rig.run(GRACE + 1)
    rig.set(gpus=())  # the card fell off the bus
    v = rig.step()
    assert {e.rule for e in v.events} == {Rule.GPU_HOT, Rule.SENSOR_ERROR}
    assert all(stops(rig.run(DWELL * 2)))  # nothing known: the hot stop never dwells out
    rig.set(gpus=(gpu(60.0),))
    rig.run(SENSOR_RESUME_S + 1)
    assert [e.rule for e in rig.verdicts[-1].events] == [Rule.GPU_HOT]
    assert rig.until(lambda v: not v.stop, DWELL + 1) <= DWELL


def test_a_cpu_temperature_that_vanishes_after_being_read_is_a_sensor_error() -> None:
    rig = Rig()
    rig.run(2)
    rig.set(cpu_temp_c=None)
    v = rig.step()
    assert v.stop
    assert only(v, Rule.SENSOR_ERROR).message.startswith(
        "The processor's temperature cannot be read."
    )


def test_waiting_for_the_first_sample_stops_quietly_unless_it_lasts() -> None:
    rig = Rig()
    rig.sample_mono = None  # the agent just started: no sample yet
    vs = rig.run(3)
    assert all(stops(vs)) and started(rig) == []
    assert only(vs[0], Rule.SENSOR_ERROR).message.startswith("The sensors have not been read yet.")
    rig.sample_mono = rig.mono
    rig.until(lambda v: not v.stop, 10)
    assert started(rig) == [] and ended(rig) == []  # no news at all at a normal start
    # Where the first sample never comes, the householder hears of it.
    rig = Rig()
    rig.sample_mono = None
    rig.run(FIRST_SAMPLE_QUIET_S + 1)
    assert [e.rule for e in started(rig)] == [Rule.SENSOR_ERROR]


# -- battery and exclusive programs ------------------------------------------------------------


def test_on_battery_stops_after_the_grace_and_resumes_after_plugging_in() -> None:
    rig = Rig(on_battery=False)
    rig.run(2)
    rig.set(on_battery=True)
    e = only(rig.step(), Rule.ON_BATTERY)
    assert e.pending and "plugged in again" in e.message
    assert rig.until(lambda v: v.stop, GRACE + 1) == pytest.approx(GRACE - TICK)
    assert_sentence(only(rig.verdicts[-1], Rule.ON_BATTERY).message)
    rig.set(on_battery=False)
    assert rig.until(lambda v: not v.stop, DWELL + 1) == pytest.approx(DWELL)


def test_unplugged_for_less_than_the_grace_stops_nothing() -> None:
    rig = Rig(on_battery=False)
    rig.set(on_battery=True)
    rig.run(GRACE - 1)
    rig.set(on_battery=False)
    assert not any(stops(rig.run(30)))
    assert rig.verdicts[-1].events == ()


def test_battery_unknown_or_not_watched_is_no_fault() -> None:
    rig = Rig(on_battery=None)
    assert not any(stops(rig.run(30)))
    rig = Rig(Limits(stop_on_battery=False), on_battery=True)
    assert not any(stops(rig.run(30)))


def test_switching_the_battery_rule_off_ends_its_stop() -> None:
    rig = Rig(on_battery=True)
    rig.run(GRACE + 1)
    assert rig.verdicts[-1].stop
    rig.policy.configure(Limits(grace_s=GRACE, dwell_s=DWELL, stop_on_battery=False))
    v = rig.step()
    assert not v.stop and [e.rule for e in v.ended] == [Rule.ON_BATTERY]


def test_an_exclusive_program_pauses_computing_until_it_has_closed() -> None:
    rig = Rig()
    rig.set(exclusive=("Steam", "Blender"))
    e = only(rig.step(), Rule.EXCLUSIVE_APP)
    assert e.message == "Computing pauses in 10 seconds to leave the machine to Steam, Blender."
    assert rig.until(lambda v: v.stop, GRACE + 1) == pytest.approx(GRACE - TICK)
    e = only(rig.verdicts[-1], Rule.EXCLUSIVE_APP)
    assert "paused while Steam, Blender is running" in e.message
    rig.set(exclusive=("Blender",))
    assert all(stops(rig.run(DWELL * 2)))  # one still runs
    rig.set(exclusive=())
    assert rig.until(lambda v: not v.stop, DWELL + 1) == pytest.approx(DWELL)


# -- the room ----------------------------------------------------------------------------------


class Room:
    """A thermometer reporting every 30 s into a rig."""

    def __init__(self, rig: Rig, temp_c: float) -> None:
        self.rig = rig
        self.temp_c = temp_c
        self.next_report = rig.wall
        self.report()

    def report(self) -> None:
        self.rig.set(room_c=self.temp_c, room_wall=self.rig.wall)
        self.next_report = self.rig.wall + 30

    def run(self, seconds: float, *, rate_c_per_min: float = 0.0) -> list[Verdict]:
        out = []
        for _ in range(round(seconds / TICK)):
            self.temp_c += rate_c_per_min * TICK / 60
            if self.rig.wall >= self.next_report:
                self.report()
            out.append(self.rig.step())
        return out


def test_an_open_window_pauses_heating_for_the_set_time() -> None:
    rig = Rig()
    room = Room(rig, 21.0)
    assert not any(stops(room.run(600)))
    # Window open: -0.3 °C a minute; the drop reaches 1 °C within 4 minutes.
    vs = room.run(240, rate_c_per_min=-0.3)
    first = next(k for k, v in enumerate(vs) if v.events)
    assert first * TICK <= 240
    e = only(vs[first], Rule.OPEN_WINDOW)
    assert e.pending and e.stops_at_wall == pytest.approx(e.since_wall + GRACE)
    assert e.message.startswith("The room cooled by 1.")
    assert "within five minutes, as when a window is open: heating stops in 10 seconds" in e.message
    stop = next(k for k, v in enumerate(vs) if v.stop)
    assert (stop - first) * TICK == pytest.approx(GRACE)
    e = only(vs[stop], Rule.OPEN_WINDOW)
    assert e.resumes_at_wall == pytest.approx(e.since_wall + GRACE + 30 * 60)
    assert "paused for 30 minutes" in e.message
    # Window shut again and the room warming: the pause still runs its course, and no longer.
    vs += room.run(40 * 60, rate_c_per_min=+0.1)
    assert sum(stops(vs)) * TICK == pytest.approx(30 * 60)
    assert stops(vs)[stop : stop + 30 * 60 * 4] == [True] * 30 * 60 * 4
    assert [e.rule for e in ended(rig)] == [Rule.OPEN_WINDOW]


def test_an_open_window_seen_by_a_thermometer_that_reports_only_changes() -> None:
    # Zigbee thermometers report a value when it changes: 21.0 °C eight minutes ago and
    # nothing since, then 20.4 and 19.9 °C within four minutes.
    rig = Rig(room_c=21.0, room_wall=WALL0)
    rig.run(480)
    rig.set(room_c=20.4, room_wall=rig.wall)
    rig.run(120)
    rig.set(room_c=19.9, room_wall=rig.wall)
    e = only(rig.step(), Rule.OPEN_WINDOW)
    assert e.message.startswith("The room cooled by 1.1 °C within five minutes")
    # The same fall spread over more than five minutes is not a window.
    rig = Rig(room_c=21.0, room_wall=WALL0)
    rig.run(480)
    rig.set(room_c=20.4, room_wall=rig.wall)
    rig.run(301)
    rig.set(room_c=19.9, room_wall=rig.wall)
    assert not any(v.events for v in rig.run(60))


def test_a_room_cooling_slowly_is_not_an_open_window() -> None:
    rig = Rig()
    room = Room(rig, 21.0)
    assert not any(v.events for v in room.run(3600, rate_c_per_min=-0.15))  # 0.75 °C in 5 min


def test_an_open_window_shut_within_the_grace_stops_nothing() -> None:
    rig = Rig()
    room = Room(rig, 21.0)
    room.run(300)
    room.temp_c = 19.8
    room.report()
    assert only(room.run(TICK)[0], Rule.OPEN_WINDOW).pending
    room.temp_c = 20.5  # the drop from the five minutes' highest is now 0.5 °C
    room.report()
    assert not any(stops(room.run(60)))


def test_open_window_detection_off_or_a_stale_reading_sees_nothing() -> None:
    rig = Rig(Limits(open_window=False, grace_s=GRACE))
    room = Room(rig, 21.0)
    room.run(60)
    assert not any(v.events for v in room.run(300, rate_c_per_min=-1.0))
    # Readings older than stale_after_s (600 s here) are not the room now.
    rig = Rig(
        Limits(grace_s=GRACE, dwell_s=DWELL, stale_after_s=600), room_c=21.0, room_wall=WALL0 - 700
    )
    rig.run(2)
    rig.set(room_c=18.0, room_wall=WALL0 - 650)
    assert not any(v.events for v in rig.run(60))


def test_a_room_above_its_limit_stops_heating_until_it_cools_a_degree() -> None:
    # (This room's jumps would look like an open window too: that rule is off here.)
    rig = Rig(Limits(grace_s=GRACE, dwell_s=DWELL, open_window=False))
    room = Room(rig, 25.5)
    room.run(60)
    room.temp_c = 26.2
    room.report()
    e = only(room.run(TICK)[0], Rule.ROOM_HOT)
    assert e.pending and e.message.startswith("The room went above 26.0 °C (26.2 °C now)")
    vs = room.run(GRACE)
    assert vs[-1].stop
    assert "at or below 25.0 °C" in only(vs[-1], Rule.ROOM_HOT).message
    room.temp_c = 25.4
    assert all(stops(room.run(DWELL * 2)))
    room.temp_c = 25.0
    room.report()
    vs = room.run(DWELL + 1)
    assert vs[-1].stop is False
    assert sum(stops(vs)) * TICK == pytest.approx(DWELL)


def test_a_room_stop_holds_while_the_reading_is_stale() -> None:
    rig = Rig(Limits(grace_s=GRACE, dwell_s=DWELL, stale_after_s=600), room_c=27.0, room_wall=WALL0)
    rig.run(GRACE + 1)
    assert rig.verdicts[-1].stop
    # No reading for longer than stale_after_s: nothing shows the room has cooled.
    vs = rig.run(1200)
    assert all(stops(vs)) and only(vs[-1], Rule.ROOM_HOT).resumes_at_wall is None
    # The reading comes back 3 °C lower: the room cooled at some time while unknown, which is
    # no open window.
    rig.set(room_c=24.0, room_wall=rig.wall)
    assert rig.until(lambda v: not v.stop, DWELL + 1) == pytest.approx(DWELL)
    assert {e.rule for e in started(rig)} == {Rule.ROOM_HOT}


# -- fan failure -------------------------------------------------------------------------------


def test_a_fan_standing_still_on_a_hot_computing_gpu_stops_until_it_turns() -> None:
    rig = Rig()
    rig.gpu(temp_c=70.0, fan_pct=0.0)
    e = only(rig.step(), Rule.FAN_FAILURE)
    assert e.pending and e.message.startswith("The GPU's fan stands still at 70 °C")
    assert rig.until(lambda v: v.stop, GRACE + 1) == pytest.approx(GRACE - TICK)
    # Stopped: the card cools, its fan still still. The stop holds: only a turning fan clears it.
    rig.set(computing=False)
    rig.gpu(temp_c=40.0)
    vs = rig.run(3600)
    assert all(stops(vs))
    e = only(vs[-1], Rule.FAN_FAILURE)
    assert e.resumes_at_wall is None and "restart Heatshare" in e.message
    rig.gpu(fan_pct=35.0)
    assert rig.until(lambda v: not v.stop, DWELL + 1) == pytest.approx(DWELL)


@pytest.mark.parametrize(
    ("temp_c", "fan_pct", "computing"),
    [
        (50.0, 0.0, True),  # a cool card in zero-RPM mode
        (70.0, 0.0, False),  # hot from something else, not our computing
        (70.0, None, True),  # a passively cooled card (no fan to read)
        (70.0, 20.0, True),  # turning
    ],
)
def test_a_still_fan_is_a_fault_only_on_a_hot_computing_gpu(
    temp_c: float, fan_pct: float | None, computing: bool
) -> None:
    rig = Rig(computing=computing)
    rig.gpu(temp_c=temp_c, fan_pct=fan_pct)
    assert not any(v.events for v in rig.run(60))


def test_a_fan_that_starts_within_the_grace_stops_nothing() -> None:
    rig = Rig()
    rig.gpu(temp_c=68.0, fan_pct=0.0)
    rig.run(GRACE / 2)
    rig.gpu(fan_pct=30.0)
    assert not any(stops(rig.run(60)))


def test_the_fan_threshold_stays_below_a_low_gpu_limit() -> None:
    rig = Rig(Limits(gpu_max_c=62.0, gpu_resume_c=55.0, grace_s=GRACE))
    rig.gpu(temp_c=58.0, fan_pct=0.0)  # 65 °C is above this card's limit: 57 °C is the mark
    assert {e.rule for e in rig.step().events} == {Rule.FAN_FAILURE}


# -- the policy as a whole ---------------------------------------------------------------------


def test_events_list_stops_first_and_the_reason_is_the_first_stop() -> None:
    rig = Rig()
    rig.set(on_battery=True)
    rig.run(GRACE + 1)
    rig.gpu(temp_c=85.0)
    v = rig.step()
    assert [e.rule for e in v.events] == [Rule.ON_BATTERY, Rule.GPU_HOT]
    assert v.reason == v.events[0].message


def test_a_longer_grace_configured_while_pending_applies_at_once() -> None:
    rig = Rig()
    rig.gpu(temp_c=85.0)
    rig.run(GRACE / 2)
    rig.policy.configure(Limits(grace_s=60, dwell_s=DWELL))
    v = rig.step()
    assert only(v, Rule.GPU_HOT).stops_at_wall == pytest.approx(WALL0 + 60)
    assert rig.until(lambda v: v.stop, 60) + GRACE / 2 + TICK == pytest.approx(60)


def test_no_grace_configured_stops_at_the_first_trigger() -> None:
    rig = Rig(Limits(grace_s=0, dwell_s=DWELL))
    rig.gpu(temp_c=85.0)
    v = rig.step()
    assert v.stop and [e.pending for e in v.started] == [False]


def test_a_wall_clock_change_does_not_shorten_a_dwell() -> None:
    rig = Rig()
    rig.gpu(temp_c=85.0)
    rig.run(GRACE + 1)
    rig.gpu(temp_c=60.0)
    rig.run(10)
    rig.wall += 3600  # the clock set an hour forward (NTP, summer time is not this)
    v = rig.step()
    e = only(v, Rule.GPU_HOT)
    assert v.stop and e.resumes_at_wall == pytest.approx(rig.wall - TICK + DWELL - 10)
    assert rig.until(lambda v: not v.stop, DWELL) + 10 + TICK == pytest.approx(DWELL)


def every_fault() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "gpu", {"gpus": (gpu(90.0),)}
    yield "cpu", {"cpu_temp_c": 99.0}
    yield "sensor", {"sample_error": "reading the sensors failed"}
    yield "battery", {"on_battery": True}
    yield "exclusive", {"exclusive": ("steam",)}
    yield "fan", {"gpus": (gpu(75.0, fan_pct=0.0),)}
    yield "room", {"room_c": 30.0, "room_wall": WALL0 + 100}


@pytest.mark.parametrize(("name", "fault"), list(every_fault()))
def test_every_stop_says_what_happened_and_what_comes_next(
    name: str, fault: dict[str, Any]
) -> None:
    rig = Rig()
    rig.run(100)
    rig.set(**fault)
    vs = rig.run(GRACE + 1)
    assert vs[-1].stop, name
    for v in vs:
        for e in v.events:
            assert_sentence(e.message)
    stop = only(vs[-1], vs[-1].events[0].rule)
    assert "stopped" in stop.message or "paused" in stop.message
    assert "resume" in stop.message or "restart" in stop.message


# -- the dust reminder -------------------------------------------------------------------------

HOUR = 3600.0


def history(
    days: int, *, creep_c: float = 0.0, powers: tuple[float, ...] = (300.0, 150.0, 20.0)
) -> list[HourRow]:
    """Hourly rows: a card with 0.15 K/W to the room plus 8 °C, cycling through ``powers``,
    whose rise creeps up linearly by ``creep_c`` over the whole span."""
    rows = []
    n = days * 24
    for h in range(n):
        p = powers[h % len(powers)]
        room = 20.0 + (h % 24) / 12  # the room wanders a little through the day
        rows.append(HourRow(WALL0 + h * HOUR, p, room + 8.0 + 0.15 * p + creep_c * h / n, room))
    return rows


def test_dust_a_steady_card_gets_no_reminder() -> None:
    assert dust_trend(history(60)) is None


def test_dust_a_rise_creeping_up_at_the_same_power_gets_a_reminder() -> None:
    text = dust_trend(history(42, creep_c=9.0), component="GPU")
    assert text is not None
    assert text.startswith("The GPU now runs 8 °C warmer above the room than 6 weeks ago")
    assert "dust" in text
    assert_sentence(text)
    assert dust_trend(history(42, creep_c=4.0)) is None  # under 5 °C: not yet


def test_dust_more_power_is_not_mistaken_for_dust() -> None:
    # Same card, same cooling; only the work changed: light in the first weeks, heavy later.
    early = history(14, powers=(100.0, 120.0))
    late = [r._replace(wall=r.wall + 14 * 86400) for r in history(14, powers=(280.0, 300.0))]
    assert dust_trend(early + late) is None


def test_dust_needs_two_weeks_and_comparable_hours() -> None:
    assert dust_trend(history(13, creep_c=20.0)) is None
    assert dust_trend([]) is None
    idle = [r._replace(power_w=0.0) for r in history(42, creep_c=20.0)]
    assert dust_trend(idle) is None


def test_dust_accepts_plain_tuples_and_skips_unknown_hours() -> None:
    rows: list[Any] = [tuple(r) for r in history(42, creep_c=9.0)]
    rows += [(WALL0 + 5.5 * HOUR, None, 80.0, 20.0), (WALL0 + 6.5 * HOUR, 300.0, 80.0, None)]
    rows.append((WALL0 + 7.5 * HOUR, 300.0, float("nan"), 20.0))
    assert dust_trend(reversed(rows)) == dust_trend(history(42, creep_c=9.0))
