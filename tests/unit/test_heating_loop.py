"""The agent's heating loop with the real safety policy: each mode, boost and summer, a stale
room reading, the power cap and the duty cycle, the checkpoint grace, overrides and their
persistence, and safety first."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
from heatshare.domain.safety import GpuFacts, SafetyInputs, SafetyPolicy, Verdict
from heatshare.domain.thermostat import DutyLimits, PiGains, TariffSlot
from heatshare.protocol.energy import PriceAwareSettings
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
        gpus: tuple[GpuFacts, ...] = (),
        prices: tuple[TariffSlot, ...] = (),
        earnings: Decimal | None = None,
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
            gpus=gpus,
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
                prices=prices,
                earnings_per_kwh=earnings,
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


# -- quiet mode's fan ceiling and a prompt start ------------------------------------------------


def fan(pct: float) -> tuple[GpuFacts, ...]:
    return (GpuFacts(index=0, temp_c=60.0, fan_pct=pct, power_w=200.0, slowdown_c=90.0),)


def test_quiet_brings_the_power_down_slowly_while_a_fan_runs_above_its_ceiling() -> None:
    s = settings(mode=HeatMode.QUIET, quiet_power_pct=50.0, quiet_fan_pct=60.0)
    rig = Rig(s, capability=GPU_CAP)
    d = rig.run(60, room_c=15.0, gpus=fan(50.0))[-1]
    assert d.gpu_power_limit_w == {0: 225.0}  # the quiet cap: 50 % of 450 W
    # Fans at 80 %: 10 % of the quiet cap a minute, not at once.
    d = rig.run(60, room_c=15.0, gpus=fan(80.0))[-1]
    assert rig.loop.status().demand_pct == pytest.approx(45.0, abs=0.5)
    assert "the fans ran above 60 %" in d.reason
    decisions = rig.run(240, room_c=15.0, gpus=fan(80.0))
    assert rig.loop.status().demand_pct == pytest.approx(25.0, abs=0.5)
    # 112.5 W is below the card's 150 W: its minimum, now duty-cycled.
    assert decisions[-1].gpu_power_limit_w in ({0: 150.0}, {})
    # Within 5 % under the ceiling it holds (no hunting as the fans slow down).
    rig.run(600, room_c=15.0, gpus=fan(57.0))
    assert rig.loop.status().demand_pct == pytest.approx(25.0, abs=0.5)
    # Well under it, it comes back up, five times slower than it came down.
    rig.run(300, room_c=15.0, gpus=fan(50.0))
    assert rig.loop.status().demand_pct == pytest.approx(30.0, abs=0.5)
    # A long run above the ceiling stops at a fifth of the quiet cap, never nothing.
    rig.run(3600, room_c=15.0, gpus=fan(95.0))
    assert rig.loop.status().demand_pct == pytest.approx(10.0, abs=0.5)
    hour = rig.run(3600, room_c=15.0, gpus=fan(95.0))
    # 10 % of 450 W is 45 W: the card's minimum 150 W a third of the time.
    assert 0.2 < sum(x.compute for x in hour) / len(hour) < 0.4
    # Heat first has no fan ceiling.
    rig.loop.set_mode(HeatMode.HEAT_FIRST, rig.wall)
    d = rig.step(room_c=15.0, gpus=fan(95.0))
    assert rig.loop.status().demand_pct == 100.0 and "fans" not in d.reason


def test_a_machine_starts_heating_a_cold_room_at_once() -> None:
    # The agent's start: a partial demand (0.6 × 1 °C) runs from the first step.
    rig = Rig()
    d = rig.step(room_c=19.5)
    assert d.compute and rig.loop.status().demand_pct == pytest.approx(60.0)
    # Warm: it pauses. Cold again a minute later: the minimum off time holds as usual.
    decisions = rig.run(300, room_c=22.0)
    assert not decisions[-1].compute
    assert not rig.step(room_c=19.5).compute
    # Switched off and back to heat first (a mode change): no minimum off time owed.
    rig.loop.set_mode(HeatMode.OFF, rig.wall)
    assert not rig.step(room_c=19.5).compute
    rig.loop.set_mode(HeatMode.HEAT_FIRST, rig.wall)
    assert rig.step(room_c=19.5).compute
    # And from quiet, a paused machine too.
    quiet = Rig(settings(mode=HeatMode.QUIET))
    quiet.run(300, room_c=19.5)
    quiet.run(300, room_c=22.0)
    assert not quiet.step(room_c=20.0).compute
    quiet.loop.set_mode(HeatMode.HEAT_FIRST, quiet.wall)
    assert quiet.step(room_c=20.0).compute


# -- price-aware heating ------------------------------------------------------------------------

SUNDAY_NOON = MONDAY_10 - 22 * 3600.0


def day_prices(*, fallback_at: float | None = None) -> tuple[TariffSlot, ...]:
    """Half hours from Sunday noon to Tuesday noon (UTC = London in January): 8.2 p/kWh
    10:00–12:00, 35 p/kWh 16:00–19:00, 20 p/kWh the rest."""
    out = []
    for i in range(96):
        start = SUNDAY_NOON + i * 1800.0
        hour = datetime.fromtimestamp(start, UTC).hour
        price = "0.082" if 10 <= hour < 12 else "0.35" if 16 <= hour < 19 else "0.20"
        out.append(TariffSlot(start, start + 1800.0, Decimal(price), start == fallback_at))
    return tuple(out)


PRICES = day_prices()
# By hand: a slot's price ranked among the 24 h around it. The cheap 2 h: (0 + 2/2) / 24 below,
# offset 1 − 2 × 1/24 = +0.917 °C. The dear 3 h: (21 + 3/2) / 24, offset −0.875 °C. The rest:
# (2 + 19/2) / 24, offset +0.042 °C (too small to mention).
CHEAP_UP, DEAR_DOWN, MID_UP = 1 - 2 / 24, 1 - 2 * 22.5 / 24, 1 - 2 * 11.5 / 24


def aware(s: HeatingSettings | None = None, **kw: Any) -> Rig:
    rig = Rig(s, **kw)
    rig.loop.configure_prices(PriceAwareSettings(enabled=True, band_c=1.0))
    return rig


def test_heat_first_pre_heats_while_electricity_is_cheap() -> None:
    blind, rig = Rig(), aware()
    # 20.8 °C at 10:00: above the setpoint, so price-blind heating rests.
    assert not blind.run(120, room_c=20.8, prices=PRICES)[-1].compute
    d = rig.run(120, room_c=20.8, prices=PRICES)[-1]
    assert d.compute
    target = 20.5 + CHEAP_UP
    assert d.reason == (
        f"Heat first: pre-heating to {target:.1f} °C while electricity is cheap (8.2 p/kWh "
        f"until 12:00); heating at {rig.loop.status().demand_pct:.0f} %, the room is 20.8 °C, "
        "the setpoint 20.5 °C."
    )
    assert rig.loop.status().setpoint_c == 20.5  # the schedule's setpoint is unchanged
    # Up to the band and no further: at the top of it there is nothing to add.
    d = rig.run(600, room_c=21.6, prices=PRICES)[-1]
    assert not d.compute and "no heat needed" in d.reason


def test_heat_first_holds_back_while_electricity_is_dear() -> None:
    later = MONDAY_10 + 6 * 3600.0  # 16:00, still comfort (until 17:00)
    blind, rig = Rig(wall=later), aware(wall=later)
    assert blind.run(120, room_c=20.2, prices=PRICES)[-1].compute
    d = rig.run(120, room_c=20.2, prices=PRICES)[-1]
    assert not d.compute
    assert d.reason.startswith(
        f"Heat first: holding back to {20.5 + DEAR_DOWN:.1f} °C while electricity is dear "
        "(35.0 p/kWh until 19:00); no heat needed, the room is 20.2 °C"
    )
    # Below the band's bottom it heats again, dear or not.
    assert any(d.compute for d in rig.run(300, room_c=19.3, prices=PRICES))


def test_price_shifts_stay_out_of_an_override_a_fallback_price_and_a_disabled_setting() -> None:
    # A middling price: no mention, the setpoint as good as unchanged.
    noon = aware(wall=MONDAY_10 + 3 * 3600.0)
    d = noon.step(room_c=20.0, prices=PRICES)
    assert "cheap" not in d.reason and "dear" not in d.reason
    assert noon.loop.status().demand_pct == pytest.approx(60 * (0.5 + MID_UP), abs=0.1)
    # The householder's override is what they asked for: no shift.
    rig = aware()
    rig.loop.setpoint(SetpointRequest(setpoint_c=20.5), rig.wall)
    assert not rig.run(120, room_c=20.8, prices=PRICES)[-1].compute
    # A fallback price (no published price for now) is not acted on.
    rig = aware()
    slot_now = MONDAY_10 - (MONDAY_10 - SUNDAY_NOON) % 1800.0
    d = rig.step(room_c=20.8, prices=day_prices(fallback_at=slot_now))
    assert not d.compute and "cheap" not in d.reason
    # Price-aware heating switched off: prices are shown in the plan but change nothing.
    rig = aware()
    rig.loop.configure_prices(PriceAwareSettings(enabled=False, band_c=1.0))
    assert not rig.run(120, room_c=20.8, prices=PRICES)[-1].compute
    # A narrower band shifts less.
    rig = aware()
    rig.loop.configure_prices(PriceAwareSettings(enabled=True, band_c=0.5))
    d = rig.step(room_c=20.8, prices=PRICES)
    assert f"pre-heating to {20.5 + CHEAP_UP / 2:.1f} °C" in d.reason


def test_earn_first_computes_only_while_the_work_pays_by_the_margin() -> None:
    s = settings(mode=HeatMode.EARN_FIRST)
    rig = Rig(s, wall=MONDAY_10 + 6 * 3600.0)  # 16:00: 35 p/kWh
    rig.loop.configure_prices(
        PriceAwareSettings(enabled=True, min_margin_per_kwh=Decimal("0.02")), currency="GBP"
    )
    d = rig.step(room_c=20.0, prices=PRICES, earnings=Decimal("0.25"))
    assert not d.compute and d.hold == "freeze"
    assert d.reason == (
        "Earn first: holding off while electricity costs 35.0 p/kWh (until 19:00), as the work "
        "earns 25.0 p/kWh, not more by the margin of 2.0 p/kWh."
    )
    # Earnings unknown (or not money): it computes as it always has.
    d = rig.step(room_c=20.0, prices=PRICES, earnings=None)
    assert d.compute and d.reason.startswith("Earn first: computing whenever there is work")
    # At 19:00 the price is 20 p/kWh: 25 − 20 beats the 2 p margin.
    rig.wall += 3 * 3600.0
    d = rig.step(room_c=20.0, prices=PRICES, earnings=Decimal("0.25"))
    assert d.compute and d.reason == (
        "Earn first: computing while the work earns 25.0 p/kWh, more than electricity costs "
        "(20.0 p/kWh)."
    )
    # 21 − 20 does not: held off again (after the minimum run).
    d = rig.run(300, room_c=20.0, prices=PRICES, earnings=Decimal("0.21"))[-1]
    assert not d.compute and "not more by the margin of 2.0 p/kWh" in d.reason


def test_prices_read_in_the_currency_of_the_tariff() -> None:
    rig = aware()
    rig.loop.configure_prices(PriceAwareSettings(enabled=True), currency="EUR")
    assert "(8.2 c/kWh until 12:00)" in rig.step(room_c=20.8, prices=PRICES).reason
    rig.loop.configure_prices(PriceAwareSettings(enabled=True), currency="CRD")
    assert "(0.082 CRD/kWh until 12:00)" in rig.step(room_c=20.8, prices=PRICES).reason


def test_the_plan_for_the_next_hours() -> None:
    rig = aware()
    assert rig.loop.plan(MONDAY_10) == []  # no prices known yet
    rig.run(60, room_c=20.5, prices=PRICES)
    wall = rig.wall  # 10:01
    plan = rig.loop.plan(wall, hours=24)
    # Half hours, the first from now; the prices end at Tuesday noon, 25 h 59 min away.
    assert plan[0].start == datetime.fromtimestamp(wall, UTC)
    assert plan[0].end == datetime(2026, 1, 12, 10, 30, tzinfo=UTC)
    assert plan[-1].end == datetime.fromtimestamp(wall + 24 * 3600.0, UTC)
    assert len(plan) == 49
    assert all(a.end == b.start for a, b in itertools.pairwise(plan))
    by_start = {(p.start.hour, p.start.minute): p for p in plan[1:]}
    cheap, dear, evening = by_start[(11, 0)], by_start[(16, 30)], by_start[(20, 0)]
    assert cheap.price_per_kwh == Decimal("0.082") and dear.price_per_kwh == Decimal("0.35")
    assert cheap.setpoint_c == pytest.approx(20.5 + CHEAP_UP, abs=0.01)
    assert dear.setpoint_c == pytest.approx(20.5 + DEAR_DOWN, abs=0.01)
    assert evening.setpoint_c == pytest.approx(17.0 + MID_UP, abs=0.01)  # eco from 17:00
    # More power where the target rises, none where it falls by the band.
    at_16 = by_start[(16, 0)]
    assert at_16.power_pct == 0.0
    assert by_start[(19, 0)].power_pct > evening.power_pct
    assert all(0.0 <= p.power_pct <= 100.0 for p in plan)
    # Earn first: all or nothing by the margin; off: nothing; a bad horizon is refused.
    rig.loop.set_mode(HeatMode.EARN_FIRST, wall)
    rig.step(room_c=20.5, prices=PRICES, earnings=Decimal("0.25"))
    powers = {(p.start.hour, p.start.minute): p.power_pct for p in rig.loop.plan(rig.wall)}
    assert powers[(11, 0)] == 100.0 and powers[(17, 0)] == 0.0 and powers[(20, 0)] == 100.0
    rig.loop.set_mode(HeatMode.OFF, wall)
    assert all(p.power_pct == 0.0 for p in rig.loop.plan(rig.wall))
    with pytest.raises(ValueError, match="positive number of hours"):
        rig.loop.plan(rig.wall, hours=0)
