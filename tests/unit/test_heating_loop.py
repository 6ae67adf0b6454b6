"""The agent's heating loop with the real safety policy: each mode, boost and summer, a stale
room reading, the power cap and the duty cycle, the checkpoint grace, overrides and their
persistence, and safety first."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heatshare.agent.heating import (
    CHECKPOINT_GRACE_S,
    LONG_IDLE_S,
    Capability,
    HeatingDecision,
    HeatingInputs,
    HeatingLoop,
    RoomReading,
)
from heatshare.domain.safety import SafetyInputs, SafetyPolicy, Verdict
from heatshare.domain.thermostat import DutyLimits, PiGains
from heatshare.protocol.heating import (
    Actuation,
    ComfortPeriod,
    HeatingSettings,
    HeatMode,
    MqttSource,
    RoomSourceKind,
    SafetyLimits,
    SafetyRule,
    SetpointRequest,
)

LONDON = ZoneInfo("Europe/London")
# Monday 12 January 2026, 10:00 GMT.
MONDAY_10 = datetime(2026, 1, 12, 10, tzinfo=UTC).timestamp()
NO_CAP = Capability((), 8)
GPU_CAP = Capability(((0, 150.0, 450.0),), 8)


def settings(**changes: Any) -> HeatingSettings:
    """Heat first with a thermometer; comfort 20.5 °C 09:00–17:00 every day, eco 17 °C."""
    base: dict[str, Any] = {
        "mode": HeatMode.HEAT_FIRST,
        "comfort_c": 20.5,
        "eco_c": 17.0,
        "periods": [ComfortPeriod(day=d, start_min=9 * 60, end_min=17 * 60) for d in range(7)],
        "room_source": RoomSourceKind.MQTT,
        "mqtt": MqttSource(host="localhost", topic="room"),
    }
    base.update(changes)
    return HeatingSettings(**base)


class Rig:
    """A heating loop on a simulated clock (wall and monotonic time advance together)."""

    def __init__(
        self,
        s: HeatingSettings | None = None,
        *,
        capability: Capability = NO_CAP,
        wall: float = MONDAY_10,
        duty: DutyLimits | None = None,
    ) -> None:
        self.loop = HeatingLoop(
            s or settings(), tz=LONDON, capability=capability, duty=duty, gains=PiGains()
        )
        self.wall = wall
        self.mono = 1000.0
        self.computing = False

    def step(
        self,
        room_c: float | None = 20.5,
        *,
        advance: float = 5.0,
        room_age_s: float = 0.0,
        outdoor_c: float | None = 5.0,
        job: bool = True,
        eta: float | None = None,
        sample_error: str | None = None,
        on_battery: bool | None = False,
        room_problem: str | None = None,
    ) -> HeatingDecision:
        self.wall += advance
        self.mono += advance
        room = None if room_c is None else RoomReading(room_c, self.wall - room_age_s)
        safety = SafetyInputs(
            wall=self.wall,
            mono=self.mono,
            sample_mono=self.mono,
            sample_error=sample_error,
            on_battery=on_battery,
            computing=self.computing,
        )
        d = self.loop.step(
            HeatingInputs(
                wall=self.wall,
                mono=self.mono,
                room=room,
                room_problem=room_problem,
                outdoor_c=outdoor_c,
                safety=safety,
                job_running=job,
                checkpoint_eta_s=eta,
            )
        )
        self.computing = d.compute
        return d

    def run(self, seconds: float, **kw: Any) -> list[HeatingDecision]:
        return [self.step(**kw) for _ in range(round(seconds / kw.get("advance", 5.0)))]


# -- heat first ---------------------------------------------------------------------------------


def test_heat_first_heats_a_cold_room_and_stops_in_a_warm_one() -> None:
    rig = Rig()
    d = rig.run(600, room_c=18.0)[-1]
    assert d.compute and d.hold == "none" and not d.safety_stop
    st = rig.loop.status()
    assert st.setpoint_c == 20.5 and st.setpoint_source == "comfort"
    assert st.room_c == 18.0 and st.demand_pct == 100.0
    assert st.actuation is Actuation.FULL
    assert "18.0 °C" in d.reason and "20.5 °C" in d.reason
    # Warm: no demand; after the minimum on time it stops, frozen (it may soon heat again).
    d = rig.run(600, room_c=22.0)[-1]
    assert not d.compute and d.hold == "freeze"
    assert "no heat needed" in d.reason
    assert rig.loop.status().actuation is Actuation.NONE
    # A long time without demand: running jobs are stopped at a checkpoint instead.
    d = rig.run(LONG_IDLE_S, room_c=22.0, advance=30.0)[-1]
    assert not d.compute and d.hold == "stop"


def test_heat_first_duty_cycles_a_partial_demand_within_the_limits() -> None:
    limits = DutyLimits(min_on_s=300, min_off_s=300, band_s=150)
    rig = Rig(duty=limits)
    # Hold the demand at about half: the integral carries it at the setpoint.
    rig.loop.restore({"version": 1, "override": None, "boost_until": None, "integral": 0.5})
    decisions = rig.run(4 * 3600, room_c=20.5)
    on = [d.compute for d in decisions]
    starts = sum(1 for a, b in itertools.pairwise(on) if b and not a)
    assert 0.4 < sum(on) / len(on) < 0.6
    assert 1 <= starts <= 4 * limits.max_starts_per_hour
    paused = [d for d in decisions if not d.compute]
    assert all(d.hold == "freeze" for d in paused)
    assert "pausing between runs" in paused[0].reason


def test_heat_first_sets_the_gpu_power_limit_before_it_pauses() -> None:
    rig = Rig(capability=GPU_CAP)
    rig.loop.restore({"version": 1, "override": None, "boost_until": None, "integral": 0.5})
    d = rig.step(room_c=20.5)
    d = rig.run(300, room_c=20.5)[-1]
    assert d.compute
    assert d.gpu_power_limit_w == {0: pytest.approx(225.0, abs=5)}  # half of 450 W
    st = rig.loop.status()
    assert st.actuation is Actuation.POWER_CAP
    assert st.gpu_power_limit_w == pytest.approx(225.0, abs=5)
    # Below the card's minimum (150 W): the minimum, duty-cycled.
    rig.loop.restore({"version": 1, "override": None, "boost_until": None, "integral": 0.2})
    decisions = rig.run(2 * 3600, room_c=20.5)
    on = [d for d in decisions if d.compute]
    assert on and all(d.gpu_power_limit_w == {0: 150.0} for d in on)
    assert 0.45 < len(on) / len(decisions) < 0.75  # 0.2 × 450 W / 150 W = 60 %


def test_no_heat_can_flow_so_the_integral_does_not_wind_up() -> None:
    rig = Rig()
    rig.run(3600, room_c=19.5, job=False)
    assert rig.loop.runtime_state()["integral"] == 0.0
    rig.run(600, room_c=19.5, job=True)
    assert rig.loop.runtime_state()["integral"] > 0.0


def test_a_stale_or_missing_reading_falls_back_to_the_floor() -> None:
    s = settings(limits=SafetyLimits(floor_pct=20.0, stale_after_s=600))
    rig = Rig(s, capability=GPU_CAP)
    d = rig.step(room_c=15.0, room_age_s=601)
    st = rig.loop.status()
    assert st.room_problem == "The last room temperature is 10 minutes old."
    assert st.demand_pct == 20.0
    assert "unknown" in d.reason and "floor power (20 %)" in d.reason
    on = [x for x in rig.run(1800, room_c=15.0, room_age_s=601) if x.compute]
    assert on and all(x.gpu_power_limit_w == {0: 150.0} for x in on)  # 90 W: the minimum
    # No reading at all, and the source's own sentence.
    rig.step(room_c=None, room_problem="The MQTT broker at localhost:1883 does not answer.")
    st = rig.loop.status()
    assert st.room_problem == "The MQTT broker at localhost:1883 does not answer."
    assert "does not answer" in st.reason
    # A floor of 0: nothing at all while the room is unknown.
    rig0 = Rig(settings())
    d = rig0.run(600, room_c=None)[-1]
    assert not d.compute
    assert rig0.loop.status().room_problem == "No room temperature has come in yet."


def test_an_impossible_reading_counts_as_none() -> None:
    rig = Rig(settings(limits=SafetyLimits(floor_pct=10.0)))
    d = rig.run(600, room_c=-127.0)[-1]  # a failed DS18B20
    st = rig.loop.status()
    assert (
        st.room_problem == "The thermometer says -127.0 °C, which cannot be the room's temperature."
    )
    assert st.demand_pct == 10.0  # the floor, not flat out
    assert "floor" in d.reason
    rig.step(room_c=-5.0)  # a shed in winter is a room
    assert rig.loop.status().room_problem is None


def test_without_a_thermometer_the_schedule_power_levels() -> None:
    s = settings(
        room_source=RoomSourceKind.NONE, mqtt=None, comfort_power_pct=100.0, eco_power_pct=0.0
    )
    rig = Rig(s)  # 10:00: comfort
    d = rig.run(600, room_c=None)[-1]
    assert d.compute and "comfort power level (100 %)" in d.reason
    rig.wall = datetime(2026, 1, 12, 18, tzinfo=UTC).timestamp()  # 18:00: eco
    d = rig.run(600, room_c=None)[-1]
    assert not d.compute and "eco power level (0 %)" in d.reason


# -- the other modes ----------------------------------------------------------------------------


def test_earn_first_computes_whatever_the_room_within_the_limits() -> None:
    rig = Rig(settings(mode=HeatMode.EARN_FIRST), capability=GPU_CAP)
    d = rig.step(room_c=23.0)
    assert d == HeatingDecision(True, "none", {}, None, d.reason, safety_stop=False)
    assert d.reason.startswith("Earn first")
    assert rig.loop.status().actuation is Actuation.FULL


def test_off_computes_nothing_and_stops_at_a_checkpoint() -> None:
    rig = Rig(settings(mode=HeatMode.OFF))
    d = rig.step(room_c=15.0)
    assert not d.compute and d.hold == "stop"
    assert d.reason == "Heating is off: nothing is computed."


def test_quiet_is_heat_first_under_the_quiet_cap() -> None:
    s = settings(mode=HeatMode.QUIET, quiet_power_pct=40.0)
    rig = Rig(s, capability=GPU_CAP)
    d = rig.run(600, room_c=15.0)[-1]
    assert d.compute
    assert d.gpu_power_limit_w == {0: 180.0}  # 40 % of 450 W
    assert d.cpu_cores == 4  # 40 % of 8 cores, rounded up
    assert rig.loop.status().demand_pct == 40.0
    assert d.reason.startswith("Quiet")


def test_boost_heats_in_any_mode_until_it_ends() -> None:
    rig = Rig(settings(mode=HeatMode.OFF))
    rig.loop.boost(60, rig.wall)
    st = rig.loop.status()
    assert st.boost_until == datetime.fromtimestamp(rig.wall + 3600, UTC)
    d = rig.step(room_c=25.0)
    assert d.compute and d.gpu_power_limit_w == {} and d.reason.startswith("Boost")
    assert rig.loop.summary().boost_until is not None
    rig.run(3600, room_c=25.0, advance=60.0)
    d = rig.step(room_c=25.0)
    assert not d.compute and rig.loop.status().boost_until is None
    # boost(0) ends a boost, and so does a change of mode.
    rig.loop.boost(30, rig.wall)
    rig.loop.boost(0, rig.wall)
    assert rig.loop.status().boost_until is None
    rig.loop.boost(30, rig.wall)
    rig.loop.set_mode(HeatMode.HEAT_FIRST, rig.wall)
    assert rig.loop.status().boost_until is None
    assert rig.loop.status().mode is HeatMode.HEAT_FIRST
    with pytest.raises(ValueError, match="negative"):
        rig.loop.boost(-1, rig.wall)


def test_summer_heat_first_computes_nothing_but_earn_first_does() -> None:
    rig = Rig()
    d = rig.step(room_c=15.0, outdoor_c=19.0)
    assert not d.compute and d.hold == "stop"
    assert d.reason == "Heat first: no heat is wanted, it is 19.0 °C outside."
    assert rig.loop.status().summer
    # Outside the heating season, whatever the weather.
    july = Rig(wall=datetime(2026, 7, 6, 10, tzinfo=UTC).timestamp())
    d = july.step(room_c=15.0, outdoor_c=None)
    assert not d.compute
    assert d.reason == "Heat first: no heat is wanted, it is outside the heating season."
    earn = Rig(settings(mode=HeatMode.EARN_FIRST))
    assert earn.step(room_c=15.0, outdoor_c=25.0).compute


# -- safety first -------------------------------------------------------------------------------


def test_a_safety_stop_wins_over_every_mode_and_says_why() -> None:
    rig = Rig(settings(mode=HeatMode.EARN_FIRST))
    rig.loop.boost(60, rig.wall)
    assert rig.step().compute
    d = rig.step(sample_error="The GPU's sensors cannot be read.")
    assert not d.compute and d.hold == "freeze" and d.safety_stop
    assert "cannot be read" in d.reason
    st = rig.loop.status()
    assert st.safety_stop and not st.computing
    assert [e.rule for e in st.events] == [SafetyRule.SENSOR_ERROR]
    assert rig.loop.summary().safety_stop
    notes = rig.loop.notifications()
    assert [n.rule for n in notes] == [SafetyRule.SENSOR_ERROR]
    assert rig.loop.notifications() == []  # each once


def test_the_battery_rule_stops_after_its_grace_period() -> None:
    rig = Rig(settings(mode=HeatMode.EARN_FIRST, limits=SafetyLimits(grace_s=10)))
    d = rig.step(on_battery=True, advance=1.0)
    assert d.compute  # pending: the grace period
    pending = rig.loop.status().events
    assert pending and pending[0].stops_at is not None
    d = rig.run(15, on_battery=True, advance=1.0)[-1]
    assert not d.compute and d.safety_stop


def test_a_failing_safety_policy_stops_the_computing(
    expect_log: Callable[[str], None],
) -> None:
    class Broken(SafetyPolicy):
        def evaluate(self, inputs: SafetyInputs) -> Verdict:
            raise RuntimeError("broken")

    expect_log("the safety policy failed")
    rig = Rig(settings(mode=HeatMode.EARN_FIRST))
    rig.loop._policy = Broken(rig.loop._policy.limits)  # the seam: the policy it owns
    d = rig.step()
    assert not d.compute and d.safety_stop and d.hold == "freeze"
    assert "safety" in d.reason


# -- the checkpoint grace -----------------------------------------------------------------------


def test_a_thermostat_stop_lets_a_near_checkpoint_finish() -> None:
    rig = Rig()
    assert rig.run(600, room_c=15.0)[-1].compute
    d = rig.step(room_c=25.0, eta=60.0)
    assert d.compute and "checkpoint" in d.reason
    # The deadline is fixed when the stop came: a job cannot extend it by saying 60 s again.
    decisions = rig.run(70, room_c=25.0, eta=60.0)
    assert decisions[0].compute
    assert not decisions[-1].compute
    # A checkpoint further away than the grace: stop now.
    rig2 = Rig()
    rig2.run(600, room_c=15.0)
    assert not rig2.step(room_c=25.0, eta=CHECKPOINT_GRACE_S + 1).compute


def test_switching_off_also_lets_a_near_checkpoint_finish() -> None:
    rig = Rig()
    rig.run(600, room_c=15.0)
    rig.loop.set_mode(HeatMode.OFF, rig.wall)
    d = rig.step(room_c=15.0, eta=30.0)
    assert d.compute and "checkpoint" in d.reason
    d = rig.run(35, room_c=15.0, eta=30.0)[-1]
    assert not d.compute and d.hold == "stop"


def test_a_safety_stop_does_not_wait_for_a_checkpoint() -> None:
    rig = Rig()
    rig.run(600, room_c=15.0)
    d = rig.step(room_c=15.0, eta=30.0, sample_error="The sampler stalled.")
    assert not d.compute and d.safety_stop


# -- setpoints, overrides and persistence --------------------------------------------------------


def test_an_override_lasts_until_the_next_change_and_nudges_keep_its_end() -> None:
    rig = Rig()
    rig.step()
    rig.loop.setpoint(SetpointRequest(setpoint_c=22.0), rig.wall)
    st = rig.loop.status()
    assert st.setpoint_c == 22.0 and st.setpoint_source == "override"
    five_pm = datetime(2026, 1, 12, 17, tzinfo=UTC)
    assert st.override_until == five_pm == st.next_change_at
    rig.loop.setpoint(SetpointRequest(delta_c=-0.5), rig.wall)
    st = rig.loop.status()
    assert st.setpoint_c == 21.5 and st.override_until == five_pm
    # At 17:00 the override ends with the comfort period: eco.
    rig.wall = five_pm.timestamp()
    rig.step()
    st = rig.loop.status()
    assert st.setpoint_source == "eco" and st.setpoint_c == 17.0 and st.override_until is None
    # A nudge of the schedule's setpoint, then back to the schedule.
    rig.loop.setpoint(SetpointRequest(delta_c=0.5), rig.wall)
    assert rig.loop.status().setpoint_c == 17.5
    rig.loop.setpoint(SetpointRequest(clear=True), rig.wall)
    assert rig.loop.status().setpoint_source == "eco"


def test_an_override_with_its_own_end_and_the_bounds() -> None:
    rig = Rig()
    rig.step()
    until = datetime(2026, 1, 13, 8, 0)  # noqa: DTZ001 - naive: household time (GMT)
    rig.loop.setpoint(SetpointRequest(setpoint_c=19.0, until=until), rig.wall)
    assert rig.loop.status().override_until == until.replace(tzinfo=LONDON)
    rig.loop.setpoint(SetpointRequest(delta_c=5.0), rig.wall)
    rig.loop.setpoint(SetpointRequest(delta_c=5.0), rig.wall)
    rig.loop.setpoint(SetpointRequest(delta_c=5.0), rig.wall)
    assert rig.loop.status().setpoint_c == 30.0  # never above what a room can be asked
    past = datetime.fromtimestamp(rig.wall, UTC) - timedelta(minutes=1)
    with pytest.raises(ValueError, match="must end in the future"):
        rig.loop.setpoint(SetpointRequest(setpoint_c=20.0, until=past), rig.wall)


def test_runtime_state_round_trips_through_json_and_junk_is_ignored() -> None:
    import json

    rig = Rig()
    rig.run(1200, room_c=19.0)
    rig.loop.setpoint(SetpointRequest(setpoint_c=21.0), rig.wall)
    rig.loop.boost(45, rig.wall)
    state = json.loads(json.dumps(rig.loop.runtime_state()))
    fresh = HeatingLoop(settings(), tz=LONDON, capability=NO_CAP)
    fresh.restore(state)
    assert fresh.runtime_state() == state
    fresh.step(
        HeatingInputs(
            rig.wall,
            5.0,
            RoomReading(19.0, rig.wall),
            None,
            5.0,
            SafetyInputs(wall=rig.wall, mono=5.0, sample_mono=5.0, sample_error=None),
            True,
            None,
        )
    )
    st = fresh.status()
    assert st.setpoint_c == 21.0 and st.boost_until is not None
    for junk in (
        {},
        {"version": 99, "integral": 0.5},
        {"version": 1, "override": {"setpoint_c": "hot"}, "boost_until": "soon", "integral": None},
        {"version": 1, "override": {"setpoint_c": 99.0, "until": None}, "integral": float("nan")},
    ):
        loop = HeatingLoop(settings(), tz=LONDON, capability=NO_CAP)
        loop.restore(junk)
        assert loop.runtime_state() == {
            "version": 1,
            "override": None,
            "boost_until": None,
            "integral": 0.0,
        }


def test_status_before_the_first_step_and_a_new_configuration() -> None:
    loop = HeatingLoop(settings(), tz=LONDON, capability=NO_CAP)
    st = loop.status()
    assert st.setpoint_c is None and not st.computing
    assert st.reason == "The heating has not started yet."
    loop.configure(settings(comfort_c=22.0, mode=HeatMode.EARN_FIRST))
    loop.set_mode(HeatMode.HEAT_FIRST, MONDAY_10)
    st = loop.status()
    assert st.setpoint_c == 22.0 and st.mode is HeatMode.HEAT_FIRST
    assert loop.settings.mode is HeatMode.HEAT_FIRST


def test_next_change_in_the_status_is_exact_on_the_day_the_clocks_go_forward() -> None:
    s = settings(periods=[ComfortPeriod(day=6, start_min=90, end_min=6 * 60)])
    sat_night = datetime(2026, 3, 28, 23, tzinfo=UTC).timestamp()
    rig = Rig(s, wall=sat_night)
    rig.step()
    assert rig.loop.status().next_change_at == datetime(2026, 3, 29, 1, tzinfo=UTC)
    rig.wall = datetime(2026, 3, 29, 1, tzinfo=UTC).timestamp()
    rig.step()
    st = rig.loop.status()
    assert st.setpoint_source == "comfort"
    assert st.next_change_at == datetime(2026, 3, 29, 5, tzinfo=UTC)  # 06:00 BST


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward (Sunday 29 March 2026): 06:30 and 08:30 BST.
        (
            datetime(2026, 3, 28, 22, tzinfo=UTC),
            [datetime(2026, 3, 29, 5, 30, tzinfo=UTC), datetime(2026, 3, 29, 7, 30, tzinfo=UTC)],
        ),
        # Fall back (Sunday 25 October 2026): 06:30 and 08:30 GMT.
        (
            datetime(2026, 10, 24, 22, tzinfo=UTC),
            [datetime(2026, 10, 25, 6, 30, tzinfo=UTC), datetime(2026, 10, 25, 8, 30, tzinfo=UTC)],
        ),
    ],
)
def test_the_loop_follows_the_wall_clock_through_a_clock_change(
    start: datetime, expected: list[datetime]
) -> None:
    s = settings(periods=[ComfortPeriod(day=6, start_min=6 * 60 + 30, end_min=8 * 60 + 30)])
    rig = Rig(s, wall=start.timestamp())
    seen: list[datetime] = []
    source = None
    for _ in range(12 * 60):  # twelve hours, a step a minute
        rig.step(room_c=18.0, advance=60.0)
        st = rig.loop.status()
        if source is not None and st.setpoint_source != source:
            seen.append(datetime.fromtimestamp(rig.wall, UTC))
        source = st.setpoint_source
    assert seen == expected
