"""The thermostat's pure parts: the weekly schedule (on the days the clocks change too), the PI
controller's anti-windup, the duty cycle's limits, the heating season and summer."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from heatshare.domain.tariffs import DynamicTariff, PriceInterval
from heatshare.domain.thermostat import (
    DutyCycle,
    DutyLimits,
    Override,
    Period,
    PiController,
    PiGains,
    Season,
    SetpointSource,
    TariffSlot,
    WeekSchedule,
    is_summer,
    price_offsets,
    slot_index,
    tariff_slots,
)

LONDON = ZoneInfo("Europe/London")
SUNDAY = 6
# 2026 in London: the clocks go forward at 01:00 UTC on Sunday 29 March (01:00 GMT becomes
# 02:00 BST) and back at 01:00 UTC on Sunday 25 October (02:00 BST becomes 01:00 GMT).
SPRING = date(2026, 3, 29)
AUTUMN = date(2026, 10, 25)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc,arg-type]


def hm(h: int, m: int = 0) -> int:
    return h * 60 + m


def schedule(*periods: Period, tz: ZoneInfo = LONDON) -> WeekSchedule:
    return WeekSchedule(periods, comfort_c=21.0, eco_c=17.0, tz=tz)


def changes(s: WeekSchedule, start: datetime, n: int) -> list[datetime]:
    out: list[datetime] = []
    t = start
    for _ in range(n):
        nxt = s.next_change(t)
        assert nxt is not None
        out.append(nxt)
        t = nxt
    return out


# -- the schedule -------------------------------------------------------------------------------


def test_comfort_in_periods_eco_elsewhere_in_local_wall_time() -> None:
    s = schedule(Period(0, hm(6, 30), hm(8, 30)))  # Monday
    # Monday 12 January 2026, GMT: wall time is UTC.
    assert s.setpoint_at(utc(2026, 1, 12, 6, 29)).source is SetpointSource.ECO
    assert s.setpoint_at(utc(2026, 1, 12, 6, 30)) == s.scheduled_at(utc(2026, 1, 12, 6, 30))
    assert s.setpoint_at(utc(2026, 1, 12, 6, 30)).setpoint_c == 21.0
    assert s.setpoint_at(utc(2026, 1, 12, 8, 29)).source is SetpointSource.COMFORT
    assert s.setpoint_at(utc(2026, 1, 12, 8, 30)).source is SetpointSource.ECO  # end exclusive
    # Monday 13 July 2026, BST: 06:30 local is 05:30 UTC.
    assert s.comfort_at(utc(2026, 7, 13, 5, 30))
    assert not s.comfort_at(utc(2026, 7, 13, 7, 30))
    assert s.next_change(utc(2026, 7, 13, 0, 0)) == utc(2026, 7, 13, 5, 30)
    assert s.next_change(utc(2026, 7, 13, 5, 30)) == utc(2026, 7, 13, 7, 30)
    # A week later, the next Monday.
    assert s.next_change(utc(2026, 7, 13, 7, 30)) == utc(2026, 7, 20, 5, 30)


def test_overlapping_and_midnight_spanning_periods_merge() -> None:
    s = schedule(
        Period(0, hm(22), 1440),
        Period(1, 0, hm(6)),
        Period(1, hm(5), hm(7)),  # overlaps the one before
    )
    # Monday 12 January 2026 22:00 → Tuesday 07:00, without a change at midnight or 06:00.
    assert s.next_change(utc(2026, 1, 12, 12)) == utc(2026, 1, 12, 22)
    assert s.next_change(utc(2026, 1, 12, 22)) == utc(2026, 1, 13, 7)


def test_a_schedule_that_never_changes_has_no_next_change() -> None:
    assert schedule().next_change(utc(2026, 1, 12)) is None
    always = schedule(*(Period(d, 0, 1440) for d in range(7)))
    assert always.next_change(utc(2026, 1, 12)) is None
    assert always.setpoint_at(utc(2026, 1, 12, 3)).source is SetpointSource.COMFORT


def test_spring_forward_a_period_starting_in_the_skipped_hour_starts_at_the_jump() -> None:
    s = schedule(Period(SUNDAY, hm(1, 30), hm(6)))
    before = utc(2026, 3, 28, 23)
    assert not s.comfort_at(before)
    # 01:30 never happens that night: comfort begins when the clocks jump past it.
    assert s.next_change(before) == utc(2026, 3, 29, 1, 0)
    assert not s.comfort_at(utc(2026, 3, 29, 0, 59, 59))
    assert s.comfort_at(utc(2026, 3, 29, 1, 0))
    # 06:00 BST is 05:00 UTC: four real hours of comfort, not four and a half.
    assert s.next_change(utc(2026, 3, 29, 1)) == utc(2026, 3, 29, 5, 0)


def test_spring_forward_a_period_ending_in_the_skipped_hour_ends_at_the_jump() -> None:
    s = schedule(Period(SUNDAY, hm(0, 30), hm(1, 30)))
    assert s.next_change(utc(2026, 3, 29, 0)) == utc(2026, 3, 29, 0, 30)
    assert s.next_change(utc(2026, 3, 29, 0, 30)) == utc(2026, 3, 29, 1, 0)


def test_spring_forward_morning_period_keeps_its_wall_time() -> None:
    s = schedule(Period(SUNDAY, hm(6, 30), hm(8, 30)))
    assert changes(s, utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 5, 30),  # 06:30 BST
        utc(2026, 3, 29, 7, 30),  # 08:30 BST
    ]


def test_fall_back_a_period_in_the_repeated_hour_happens_twice() -> None:
    s = schedule(Period(SUNDAY, hm(1, 15), hm(1, 45)))
    assert changes(s, utc(2026, 10, 25, 0), 4) == [
        utc(2026, 10, 25, 0, 15),  # 01:15 BST
        utc(2026, 10, 25, 0, 45),
        utc(2026, 10, 25, 1, 15),  # 01:15 GMT
        utc(2026, 10, 25, 1, 45),
    ]


def test_fall_back_a_period_across_the_change_lasts_an_hour_longer() -> None:
    s = schedule(Period(SUNDAY, 0, hm(3)))
    start, end = changes(s, utc(2026, 10, 24, 12), 2)
    assert start == utc(2026, 10, 24, 23)  # 00:00 BST
    assert end == utc(2026, 10, 25, 3)  # 03:00 GMT
    assert end - start == timedelta(hours=4)


def test_fall_back_a_period_starting_in_the_repeated_hour_pauses_at_the_change() -> None:
    # Comfort from 01:30: reached at 01:30 BST; the clocks go back to 01:00, before the start,
    # and reach 01:30 again an hour later. The schedule follows the wall clock.
    s = schedule(Period(SUNDAY, hm(1, 30), hm(6)))
    assert changes(s, utc(2026, 10, 25, 0), 4) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 0),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 25, 6, 0),
    ]


def test_a_half_hour_clock_change_is_exact() -> None:
    # Lord Howe Island moves its clocks by 30 minutes (02:00 → 02:30 on 4 October 2026).
    lhi = ZoneInfo("Australia/Lord_Howe")
    s = schedule(Period(SUNDAY, hm(2, 10), hm(4)), tz=lhi)
    nxt = s.next_change(datetime(2026, 10, 3, 12, tzinfo=lhi))
    assert nxt is not None
    assert nxt.astimezone(lhi) == datetime(2026, 10, 4, 2, 30, tzinfo=lhi)
    assert s.comfort_at(nxt)
    assert not s.comfort_at(nxt - timedelta(seconds=1))


def test_next_change_agrees_with_a_minute_by_minute_scan_around_both_changes() -> None:
    s = schedule(
        Period(SUNDAY, hm(0, 45), hm(1, 20)),
        Period(SUNDAY, hm(1, 40), hm(2, 10)),
        Period(SUNDAY, hm(6, 30), hm(8, 30)),
        Period(5, hm(23), 1440),
    )
    for day in (SPRING, AUTUMN):
        t = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=4)
        end = t + timedelta(hours=14)
        expected: list[datetime] = []
        state = s.comfort_at(t)
        m = t
        while m < end:
            m += timedelta(minutes=5)
            if s.comfort_at(m) != state:
                state = not state
                expected.append(m)
        got: list[datetime] = []
        cur = t
        while True:
            nxt = s.next_change(cur)
            assert nxt is not None
            if nxt >= end:
                break
            got.append(nxt)
            cur = nxt
        assert got == expected, day


def test_the_schedule_needs_aware_datetimes() -> None:
    s = schedule(Period(0, 0, 60))
    with pytest.raises(ValueError, match="aware"):
        s.setpoint_at(datetime(2026, 1, 12))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="aware"):
        s.next_change(datetime(2026, 1, 12))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("day", "start", "end"), [(7, 0, 10), (-1, 0, 10), (0, 10, 10), (0, 10, 5), (0, 0, 1441)]
)
def test_a_bad_period_is_refused(day: int, start: int, end: int) -> None:
    with pytest.raises(ValueError, match="comfort period"):
        Period(day, start, end)


def test_an_override_holds_until_its_end_then_the_schedule_returns() -> None:
    s = schedule(Period(0, hm(6), hm(8)))
    o = s.with_override(Override(23.0, utc(2026, 1, 12, 7)))
    assert o.setpoint_at(utc(2026, 1, 12, 6, 59)).source is SetpointSource.OVERRIDE
    assert o.setpoint_at(utc(2026, 1, 12, 6, 59)).setpoint_c == 23.0
    assert o.setpoint_at(utc(2026, 1, 12, 7)).source is SetpointSource.COMFORT
    # The override does not move the schedule's own changes.
    assert o.next_change(utc(2026, 1, 12, 6, 30)) == utc(2026, 1, 12, 8)
    forever = s.with_override(Override(19.0, None))
    assert forever.setpoint_at(utc(2030, 1, 1)).setpoint_c == 19.0
    assert forever.with_override(None).setpoint_at(utc(2030, 1, 1)).setpoint_c == 17.0
    with pytest.raises(ValueError, match="aware"):
        Override(20.0, datetime(2026, 1, 1))  # noqa: DTZ001


# -- the PI controller --------------------------------------------------------------------------


def test_pi_proportional_and_integral() -> None:
    pi = PiController(PiGains(kp=0.5, ti_s=1000.0))
    assert pi.update(20.0, 19.0, 0.0, can_heat=True) == pytest.approx(0.5)
    # 1 °C for 100 s adds kp * 1 * 100 / ti = 0.05 to the integral.
    for _ in range(10):
        pi.update(20.0, 19.0, 10.0, can_heat=True)
    assert pi.integral == pytest.approx(0.05)
    assert pi.output(20.0, 20.0) == pytest.approx(0.05)


def test_pi_anti_windup_while_saturated_then_no_overshoot_of_the_demand() -> None:
    pi = PiController(PiGains(kp=0.6, ti_s=1800.0))
    pi.reset(0.5)
    # Two hours 3 °C below the setpoint: the output is pinned at 1.
    for _ in range(720):
        assert pi.update(20.0, 17.0, 10.0, can_heat=True) == 1.0
    # The integral stopped where the output saturated, not two hours of error later.
    assert pi.integral == pytest.approx(0.5)
    # At the setpoint the demand is what it was, and it falls as soon as the room is warm.
    assert pi.update(20.0, 20.0, 10.0, can_heat=True) == pytest.approx(0.5, abs=0.01)
    assert pi.update(20.0, 20.5, 10.0, can_heat=True) < 0.3


def test_pi_does_not_wind_up_while_no_heat_can_flow() -> None:
    pi = PiController(PiGains(kp=0.1, ti_s=600.0))
    for _ in range(360):  # an hour 1 °C cold, no job running
        pi.update(20.0, 19.0, 10.0, can_heat=False)
    assert pi.integral == 0.0
    pi.update(20.0, 19.0, 10.0, can_heat=True)
    assert pi.integral > 0.0


def test_pi_integral_stays_within_zero_and_one() -> None:
    pi = PiController(PiGains(kp=0.01, ti_s=10.0))
    for _ in range(1000):
        pi.update(20.0, 25.0, 10.0, can_heat=True)
    assert pi.integral == 0.0
    assert pi.update(20.0, 19.9, 10.0, can_heat=True) > 0.0  # recovers at once
    for _ in range(1000):
        pi.update(20.0, 19.0, 10.0, can_heat=True)
    assert pi.integral <= 1.0


def test_pi_a_long_gap_is_not_integrated_and_bad_numbers_are_refused() -> None:
    pi = PiController(PiGains(kp=0.5, ti_s=1000.0))
    pi.update(20.0, 19.0, 3600.0, can_heat=True)  # a sleep of an hour counts as 60 s
    assert pi.integral == pytest.approx(0.5 * 60 / 1000)
    with pytest.raises(ValueError, match="finite"):
        pi.update(20.0, math.nan, 1.0, can_heat=True)


# -- the duty cycle -----------------------------------------------------------------------------


def run_duty(
    duty: DutyCycle, demand: float | list[float], seconds: float, step: float = 1.0
) -> list[tuple[float, bool]]:
    """Edges (time, on) over ``seconds``; a list of demands is cycled one per step."""
    edges: list[tuple[float, bool]] = []
    t0 = duty.last_mono or 0.0
    n = round(seconds / step)
    prev = duty.on
    for i in range(1, n + 1):
        d = demand if isinstance(demand, float) else demand[i % len(demand)]
        on = duty.update(d, t0 + i * step)
        if on != prev:
            edges.append((t0 + i * step, on))
            prev = on
    return edges


def on_fraction(edges: list[tuple[float, bool]], start: float, end: float, on0: bool) -> float:
    on_time, state, t = 0.0, on0, start
    for when, on in edges:
        if state:
            on_time += when - t
        state, t = on, when
    if state:
        on_time += end - t
    return on_time / (end - start)


@pytest.mark.parametrize("demand", [0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95])
def test_duty_cycle_average_follows_the_demand_within_the_limits(demand: float) -> None:
    limits = DutyLimits(min_on_s=300, min_off_s=300, band_s=150)
    duty = DutyCycle(limits)
    assert duty.update(demand, 0.0) is True  # fresh: it starts at once
    hours = 12
    edges = run_duty(duty, demand, hours * 3600.0)
    assert on_fraction(edges, 0.0, hours * 3600.0, True) == pytest.approx(demand, abs=0.02)
    starts = sum(1 for _, on in edges if on)
    # A steady demand cycles at most once per 8 bands (3 an hour: 6 starts and stops).
    assert starts / hours <= 3600 / (8 * limits.band_s) + 1 / hours
    assert limits.max_starts_per_hour <= 6
    # Every on and off period lasts at least its minimum.
    for (t1, on1), (t2, _) in itertools.pairwise(edges):
        assert t2 - t1 >= (limits.min_on_s if on1 else limits.min_off_s)


def test_duty_cycle_noisy_demand_neither_flaps_nor_breaks_the_minimum_times() -> None:
    rng = random.Random(4)
    demands = [min(max(0.5 + rng.gauss(0, 0.3), 0.0), 1.0) for _ in range(997)]
    limits = DutyLimits()
    duty = DutyCycle(limits)
    duty.update(0.5, 0.0)
    edges = run_duty(duty, demands, 6 * 3600.0)
    starts = sum(1 for _, on in edges if on)
    assert 0 < starts <= 6 * limits.max_starts_per_hour
    for (t1, on1), (t2, _) in itertools.pairwise(edges):
        assert t2 - t1 >= (limits.min_on_s if on1 else limits.min_off_s)


def test_duty_cycle_full_and_zero_demand_switch_after_the_minimum_time() -> None:
    duty = DutyCycle(DutyLimits(min_on_s=300, min_off_s=120, band_s=150))
    assert duty.update(0.0, 0.0) is False
    assert run_duty(duty, 1.0, 200) == [(1.0, True)]  # fresh: no off time owed
    assert duty.starts == 1
    edges = run_duty(duty, 0.0, 400)
    assert edges == [(301.0, False)]  # 300 s after it started
    # Now the minimum times hold: here the cycle's (600 s from the first start).
    assert run_duty(duty, 1.0, 300) == [(601.0, True)]
    edges = run_duty(duty, 0.0, 400)
    assert edges == [(901.0, False)]
    assert run_duty(duty, 0.0, 3600) == []  # stays off


def test_a_fresh_or_released_duty_cycle_starts_on_any_demand_at_once() -> None:
    limits = DutyLimits(min_on_s=120, min_off_s=120, min_cycle_s=600, band_s=75)
    duty = DutyCycle(limits)
    # Held by a safety stop at the start (no sample yet): still fresh once it clears.
    duty.force_off(0.0)
    assert duty.update(0.2, 5.0) is True
    assert run_duty(duty, 0.0, 200) == [(125.0, False)]
    # Just stopped: a small demand waits for its band, the off time and the cycle.
    assert duty.update(0.2, 210.0) is False
    # A mode change releases it: on at once, with neither the off time nor the cycle owed.
    duty.release()
    assert duty.update(0.2, 215.0) is True
    assert duty.starts == 2
    # Releasing a running machine changes nothing.
    duty.release()
    assert duty.update(0.2, 220.0) is True
    assert not duty.fresh


def test_duty_cycle_forced_off_starts_its_minimum_off_time() -> None:
    duty = DutyCycle(DutyLimits(min_on_s=0, min_off_s=300, min_cycle_s=0, band_s=10))
    duty.update(1.0, 0.0)
    duty.update(1.0, 300.0)
    assert duty.on
    duty.force_off(400.0)
    assert not duty.on
    assert duty.update(1.0, 650.0) is False
    assert duty.update(1.0, 700.0) is True


def test_duty_cycle_starts_at_most_once_per_minimum_cycle() -> None:
    limits = DutyLimits(min_on_s=60, min_off_s=60, min_cycle_s=600, band_s=10)
    duty = DutyCycle(limits)
    duty.update(0.0, 0.0)
    # A demand that flips between full and nothing every 90 s.
    demands = [1.0] * 90 + [0.0] * 90
    edges = run_duty(duty, demands, 3 * 3600.0)
    starts = [t for t, on in edges if on]
    assert len(starts) == 18  # 3 hours at 6 an hour
    assert all(b - a >= 600 for a, b in itertools.pairwise(starts))
    for (t1, on1), (t2, _) in itertools.pairwise(edges):
        assert t2 - t1 >= (limits.min_on_s if on1 else limits.min_off_s)


def test_duty_cycle_high_demand_pauses_briefly() -> None:
    # At 95 % the pauses are short (the room barely cools) and the runs long.
    limits = DutyLimits()
    duty = DutyCycle(limits)
    duty.update(0.95, 0.0)
    edges = run_duty(duty, 0.95, 6 * 3600.0)
    offs = [t2 - t1 for (t1, on1), (t2, _) in itertools.pairwise(edges) if not on1]
    assert offs and max(offs) <= 200
    assert on_fraction(edges, 0.0, 6 * 3600.0, True) == pytest.approx(0.95, abs=0.02)


def test_duty_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="band"):
        DutyLimits(band_s=0)
    with pytest.raises(ValueError, match="negative"):
        DutyLimits(min_cycle_s=-1)
    assert DutyLimits().max_starts_per_hour == 6.0
    assert DutyLimits(min_on_s=600, min_off_s=600).max_starts_per_hour == 3.0


# -- season and summer --------------------------------------------------------------------------


def test_season_wraps_over_the_new_year() -> None:
    s = Season.parse("09-15", "05-15")
    assert s.contains(date(2026, 12, 1))
    assert s.contains(date(2026, 1, 1))
    assert s.contains(date(2026, 5, 15))
    assert not s.contains(date(2026, 5, 16))
    assert not s.contains(date(2026, 7, 1))
    assert s.contains(date(2026, 9, 15))
    plain = Season.parse("01-01", "03-31")
    assert plain.contains(date(2026, 2, 28))
    assert not plain.contains(date(2026, 4, 1))


@pytest.mark.parametrize("text", ["13-01", "02-30", "xx-01", "0101"])
def test_a_bad_season_date_is_refused_with_a_sentence(text: str) -> None:
    with pytest.raises(ValueError, match="is not a month and day"):
        Season.parse(text, "05-15")


def test_summer_from_the_outdoor_temperature_with_hysteresis() -> None:
    season = Season.parse("09-15", "05-15")
    winter = date(2026, 1, 10)

    def summer(outdoor: float | None, was: bool) -> tuple[bool, bool]:
        return is_summer(winter, outdoor, threshold_c=18.0, season=season, was_warm=was)

    assert summer(17.9, False) == (False, False)
    assert summer(18.0, False) == (True, True)
    assert summer(17.5, True) == (True, True)  # within the hysteresis
    assert summer(16.9, True) == (False, False)
    assert summer(None, True) == (False, False)  # unknown: never summer
    assert summer(math.nan, False) == (False, False)


def test_summer_outside_the_heating_season_whatever_the_weather() -> None:
    season = Season.parse("09-15", "05-15")
    july = date(2026, 7, 1)
    assert is_summer(july, 5.0, threshold_c=18.0, season=season, was_warm=False) == (True, False)
    assert is_summer(july, None, threshold_c=None, season=None, was_warm=False) == (False, False)


# -- prices -------------------------------------------------------------------------------------


def hourly(*prices: str, start: float = 0.0) -> tuple[TariffSlot, ...]:
    return tuple(
        TariffSlot(start + 3600.0 * i, start + 3600.0 * (i + 1), Decimal(p))
        for i, p in enumerate(prices)
    )


def test_price_offsets_rank_each_hour_among_its_neighbours() -> None:
    # Four hours, all within each other's window: ranks by hand (time below + half the equal).
    slots = hourly("0.10", "0.30", "0.20", "0.20")
    offsets = price_offsets(slots, 1.0)
    # 0.10: 0.5/4 below → 1 − 2 × 0.125; 0.30: 3.5/4; 0.20: (1 + 1)/4.
    assert offsets == pytest.approx((0.75, -0.75, 0.0, 0.0))
    assert price_offsets(slots, 0.5) == pytest.approx((0.375, -0.375, 0.0, 0.0))
    # Only the prices within the window count: with 1 h either side of its middle the first
    # hour sees itself (1 h, equal) and half the second (dearer): rank 0.5 / 1.5.
    assert price_offsets(slots, 1.0, window_s=3600.0)[0] == pytest.approx(1 - 2 * 0.5 / 1.5)
    # Negative prices rank below everything.
    assert price_offsets(hourly("-0.05", "0.10"), 1.0) == pytest.approx((0.5, -0.5))


def test_price_offsets_are_zero_with_nothing_to_compare_or_a_fallback_price() -> None:
    assert price_offsets((), 1.0) == ()
    assert price_offsets(hourly("0.2", "0.2", "0.2"), 1.0) == (0.0, 0.0, 0.0)
    assert price_offsets(hourly("0.1", "0.3"), 0.0) == (0.0, 0.0)
    slots = (*hourly("0.1", "0.3"), TariffSlot(7200.0, 10800.0, Decimal("0.9"), fallback=True))
    # The fallback price neither moves its own hour nor counts in the others' ranks.
    assert price_offsets(slots, 1.0) == pytest.approx((0.5, -0.5, 0.0))
    with pytest.raises(ValueError, match="comfort band"):
        price_offsets(slots, -1.0)


def test_tariff_slots_from_a_price_list_with_a_gap_and_the_slot_in_force() -> None:
    t0 = datetime(2026, 1, 12, 10, tzinfo=UTC)
    tariff = DynamicTariff(
        (
            PriceInterval(t0, t0 + timedelta(minutes=30), Decimal("0.12")),
            PriceInterval(t0 + timedelta(hours=1), t0 + timedelta(hours=2), Decimal("0.30")),
        ),
        fallback_per_kwh=Decimal("0.25"),
    )
    slots = tariff_slots(tariff, t0, t0 + timedelta(hours=2))
    base = t0.timestamp()
    assert slots == (
        TariffSlot(base, base + 1800, Decimal("0.12")),
        TariffSlot(base + 1800, base + 3600, Decimal("0.25"), fallback=True),
        TariffSlot(base + 3600, base + 7200, Decimal("0.30")),
    )
    assert slot_index(slots, base) == 0
    assert slot_index(slots, base + 1799.9) == 0
    assert slot_index(slots, base + 1800) == 1
    assert slot_index(slots, base + 7200) is None
    assert slot_index(slots, base - 1) is None
    assert slot_index((), base) is None
    with pytest.raises(ValueError, match="end after it starts"):
        TariffSlot(base, base, Decimal("0.1"))
