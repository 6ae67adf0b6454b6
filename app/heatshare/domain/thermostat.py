"""The thermostat: a weekly setpoint schedule, a PI controller and a duty cycle.

* :class:`WeekSchedule` says which temperature the householder wants at an instant: comfort in
  the weekly comfort periods (local wall time), eco the rest of the week, or a temporary
  override. Periods are wall-clock times, so on the days the clocks change a period still starts
  at the wall time it names; a start inside the skipped hour takes effect when the clocks jump
  past it, and the repeated hour repeats the schedule.
* :class:`PiController` turns the room's distance from the setpoint into a heat demand 0..1, with
  anti-windup (the integral stops growing while the output is saturated or no heat can flow).
* :class:`DutyCycle` turns a demand into on/off periods for a machine that cannot lower its power:
  a sigma-delta modulator (the time-average of "on" follows the demand) with a hysteresis band,
  minimum on and off times and a minimum time from one start to the next, so it never starts
  more than ``3600 / min_cycle_s`` times an hour (6 by default).
* :func:`is_summer` says when no heat is wanted at all.
* :class:`TariffSlot` and :func:`price_offsets`: with prices that change through the day, how far
  above or below the setpoint each period's target lies (pre-heat when it is cheap, hold back when
  it is dear, within the householder's comfort band).

Pure: no I/O, no clock reads; every instant is passed in (wall time as aware datetimes or UTC
epoch seconds, intervals on a monotonic clock in seconds).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum

from heatshare.domain.tariffs import Tariff

MINUTES_PER_DAY = 1440
# How far ahead next_change() looks: a week and a day covers every weekly pattern.
_HORIZON_DAYS = 8
# Clock changes happen on a quarter hour everywhere; a coarser scan could step over one.
_OFFSET_SCAN = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class RoomReading:
    """A room thermometer's reading and when it was measured (UTC epoch seconds)."""

    temp_c: float
    wall: float


@dataclass(frozen=True, slots=True)
class Period:
    """A comfort period on one weekday (0 = Monday), minutes after local midnight, end exclusive."""

    day: int
    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        if not 0 <= self.day <= 6:
            raise ValueError("a comfort period's day must be 0 (Monday) to 6 (Sunday)")
        if not 0 <= self.start_min < self.end_min <= MINUTES_PER_DAY:
            raise ValueError("a comfort period must end after it starts, within its day")


class SetpointSource(StrEnum):
    """Where the setpoint comes from (the same values as the agent's status)."""

    COMFORT = "comfort"
    ECO = "eco"
    OVERRIDE = "override"


@dataclass(frozen=True, slots=True)
class Override:
    """A temporary setpoint; ``until`` None lasts until it is cleared."""

    setpoint_c: float
    until: datetime | None

    def __post_init__(self) -> None:
        if self.until is not None and self.until.utcoffset() is None:
            raise ValueError("an override's end must be an aware datetime")


@dataclass(frozen=True, slots=True)
class Setpoint:
    """The setpoint at an instant and where it comes from."""

    setpoint_c: float
    source: SetpointSource


def _require_aware(when: datetime) -> None:
    if when.utcoffset() is None:
        raise ValueError("the schedule needs an aware datetime (with its time zone)")


@dataclass(frozen=True, slots=True)
class WeekSchedule:
    """Comfort periods in local wall time, comfort and eco temperatures, and an override.

    ``tz`` is the household's time zone (a ``zoneinfo.ZoneInfo``); instants passed in may be in
    any zone and are converted to it.
    """

    periods: tuple[Period, ...]
    comfort_c: float
    eco_c: float
    tz: tzinfo
    override: Override | None = None
    # Per weekday, the merged comfort intervals [start, end) in minutes (derived).
    _days: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        days: list[tuple[tuple[int, int], ...]] = []
        for day in range(7):
            spans = sorted((p.start_min, p.end_min) for p in self.periods if p.day == day)
            merged: list[tuple[int, int]] = []
            for start, end in spans:
                if merged and start <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            days.append(tuple(merged))
        object.__setattr__(self, "_days", tuple(days))

    def with_override(self, override: Override | None) -> WeekSchedule:
        """This schedule with ``override`` in place of the current one (None clears it)."""
        return replace(self, override=override)

    def comfort_at(self, when: datetime) -> bool:
        """Whether ``when`` falls in a comfort period of the local wall clock."""
        _require_aware(when)
        local = when.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self._days[local.weekday()])

    def scheduled_at(self, when: datetime) -> Setpoint:
        """The schedule's own setpoint at ``when``, ignoring any override."""
        if self.comfort_at(when):
            return Setpoint(self.comfort_c, SetpointSource.COMFORT)
        return Setpoint(self.eco_c, SetpointSource.ECO)

    def override_active(self, when: datetime) -> bool:
        _require_aware(when)
        o = self.override
        return o is not None and (o.until is None or when < o.until)

    def setpoint_at(self, when: datetime) -> Setpoint:
        """The setpoint at ``when``: the override while it lasts, else the schedule's."""
        if self.override is not None and self.override_active(when):
            return Setpoint(self.override.setpoint_c, SetpointSource.OVERRIDE)
        return self.scheduled_at(when)

    def next_change(self, when: datetime) -> datetime | None:
        """The first instant after ``when`` at which the schedule turns comfort to eco or back.

        Ignores the override. None when the schedule never changes (no periods, or comfort all
        week). Exact on the days the clocks change: the answer is a UTC-aware datetime.
        """
        _require_aware(when)
        start = when.astimezone(self.tz)
        if all(not d for d in self._days) or all(d == ((0, MINUTES_PER_DAY),) for d in self._days):
            return None
        now_comfort = self.comfort_at(when)
        for t in self._candidates(start):
            if t > when and self.comfort_at(t) != now_comfort:
                return t.astimezone(UTC)
        return None

    def _candidates(self, start: datetime) -> list[datetime]:
        """Every instant in the horizon where the comfort state may change, in order.

        A state changes where the local wall clock reaches a period boundary, or where the
        clocks jump (over a boundary, or back before one). A boundary is mapped to an instant
        with each UTC offset the zone uses in the horizon, kept only where that offset is the
        one in force, so a wall time that happens twice yields both instants and one that never
        happens yields none (the jump itself is a candidate instead).
        """
        end = start + timedelta(days=_HORIZON_DAYS)
        transitions: list[datetime] = []
        offsets = {start.utcoffset()}
        t = start.astimezone(UTC)
        stop = end.astimezone(UTC)
        prev_offset = t.astimezone(self.tz).utcoffset()
        while t < stop:
            nxt = t + _OFFSET_SCAN
            off = nxt.astimezone(self.tz).utcoffset()
            if off != prev_offset:
                transitions.append(self._transition(t, nxt))
                offsets.add(off)
                prev_offset = off
            t = nxt
        out: list[datetime] = list(transitions)
        day0 = start.date()
        for n in range(-1, _HORIZON_DAYS + 1):
            d = day0 + timedelta(days=n)
            for lo, hi in self._days[d.weekday()]:
                for minute in (lo, hi):
                    # The wall time as if it were UTC; minus an offset, the real instant.
                    wall = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(minutes=minute)
                    for off in offsets:
                        if off is None:
                            continue
                        instant = wall - off
                        if instant.astimezone(self.tz).utcoffset() == off:
                            out.append(instant)
        return sorted(set(out))

    def _transition(self, before: datetime, after: datetime) -> datetime:
        """The first instant in (before, after] with ``after``'s UTC offset (to the second)."""
        target = after.astimezone(self.tz).utcoffset()
        lo, hi = before, after
        while hi - lo > timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            mid = mid.replace(microsecond=0)
            if mid <= lo:
                break
            if mid.astimezone(self.tz).utcoffset() == target:
                hi = mid
            else:
                lo = mid
        return hi


@dataclass(frozen=True, slots=True)
class PiGains:
    """PI gains: ``kp`` demand per °C of error, ``ti_s`` the integral time in seconds."""

    kp: float = 0.6
    ti_s: float = 1800.0


@dataclass(slots=True)
class PiController:
    """A PI controller from room error (°C) to heat demand 0..1, with anti-windup.

    The integral term is kept as a demand (0..1). It only moves in a direction the output can
    follow: not up while the output is at 1 or no heat can be delivered (no job, a safety stop),
    not down while the output is at 0. This is conditional integration; the integral is also
    clamped to 0..1, so after a long saturation the controller answers at once.
    """

    gains: PiGains = field(default_factory=PiGains)
    integral: float = 0.0
    last_error: float | None = None

    def reset(self, integral: float = 0.0) -> None:
        self.integral = min(max(integral, 0.0), 1.0)
        self.last_error = None

    def update(self, setpoint_c: float, measured_c: float, dt_s: float, *, can_heat: bool) -> float:
        """Advance by ``dt_s`` seconds and return the demand 0..1."""
        if not (math.isfinite(setpoint_c) and math.isfinite(measured_c)):
            raise ValueError("the setpoint and the measured temperature must be finite")
        error = setpoint_c - measured_c
        dt = min(max(dt_s, 0.0), 60.0)  # a long gap (sleep, a stalled loop) is not integrated
        p = self.gains.kp * error
        unclamped = p + self.integral
        if self.gains.ti_s > 0 and dt > 0:
            step = self.gains.kp * error * dt / self.gains.ti_s
            rising = step > 0
            blocked = (rising and (unclamped >= 1.0 or not can_heat)) or (
                not rising and unclamped <= 0.0
            )
            if not blocked:
                self.integral = min(max(self.integral + step, 0.0), 1.0)
        self.last_error = error
        return min(max(p + self.integral, 0.0), 1.0)

    def output(self, setpoint_c: float, measured_c: float) -> float:
        """The demand for this error without advancing the integral."""
        return min(max(self.gains.kp * (setpoint_c - measured_c) + self.integral, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class DutyLimits:
    """A duty cycle's constraints (seconds).

    ``min_on_s`` and ``min_off_s``: the shortest run and the shortest pause. ``min_cycle_s``:
    the shortest time from one start to the next, which caps the starts an hour
    (``3600 / min_cycle_s``) without making every pause long: a long pause is what lets the room
    cool, so at a high demand the pauses stay short and the runs long. ``band_s`` is the
    hysteresis: the on-time owed (positive) or owed back (negative) that must build up before
    the machine switches; at a steady demand a cycle lasts ``2 * band_s / (d * (1 - d))``, at
    least ``8 * band_s`` (at d = 50 %).
    """

    min_on_s: float = 120.0
    min_off_s: float = 120.0
    min_cycle_s: float = 600.0
    band_s: float = 75.0

    def __post_init__(self) -> None:
        if min(self.min_on_s, self.min_off_s, self.min_cycle_s) < 0 or self.band_s <= 0:
            raise ValueError("duty-cycle times must not be negative and the band must be positive")

    @property
    def max_starts_per_hour(self) -> float:
        """The most starts an hour can ever see."""
        return 3600.0 / max(self.min_on_s + self.min_off_s, self.min_cycle_s, 1.0)


@dataclass(slots=True)
class DutyCycle:
    """Sigma-delta on/off modulation with hysteresis, minimum times and a start-rate cap.

    ``owed`` integrates (demand − on) over time: positive when the machine has run less than the
    demand asked. It switches on once ``owed`` reaches ``+band_s`` (and the minimum off time and
    the minimum cycle since the last start have passed), and off once it reaches ``−band_s``
    (and the minimum on time has passed). A minimum time that makes a period longer leaves
    ``owed`` beyond the band, and the next period pays it back, so the average still follows
    the demand. Demands of 0 and 1 switch at once (within the minimum times): nothing to
    average.

    A fresh cycle (new, or after :meth:`release` at a mode change) owes no minimum off time
    and starts on any demand at once: a machine switched on in a cold room heats straight away.
    """

    limits: DutyLimits = field(default_factory=DutyLimits)
    on: bool = False
    owed_s: float = 0.0
    since_mono: float | None = None  # when the current on or off state began
    last_mono: float | None = None
    last_start_mono: float | None = None
    starts: int = 0
    fresh: bool = True  # not started since it was made or released

    def release(self) -> None:
        """Start afresh (a mode change): the next demand starts the machine at once."""
        if not self.on:
            self.fresh = True

    def update(self, demand: float, mono: float) -> bool:
        """Advance to ``mono`` with ``demand`` (0..1) and return whether to run."""
        demand = min(max(demand, 0.0), 1.0)
        lim = self.limits
        if self.since_mono is None:
            self.since_mono = mono
        if self.last_mono is not None:
            dt = min(max(mono - self.last_mono, 0.0), 60.0)
            self.owed_s += (demand - (1.0 if self.on else 0.0)) * dt
        self.last_mono = mono
        band = lim.band_s
        # Bounded so a long saturation (a minimum time, a demand of 0 or 1) is not paid back
        # for an hour afterwards; the bound is about a cycle's worth.
        bound = 2 * band + max(lim.min_on_s, lim.min_off_s, lim.min_cycle_s)
        self.owed_s = min(max(self.owed_s, -bound), bound)
        held = mono - self.since_mono
        if self.fresh and not self.on:
            # Nothing ran before: no off time to respect, and any demand is owed a start.
            held = max(held, lim.min_off_s)
            self.owed_s = max(self.owed_s, band)
        if self.on:
            want_off = demand <= 0.0 or (demand < 1.0 and self.owed_s <= -band)
            if want_off and held >= lim.min_on_s:
                self._switch(False, mono)
        else:
            want_on = demand >= 1.0 or (demand > 0.0 and self.owed_s >= band)
            cycle_ok = (
                self.fresh
                or self.last_start_mono is None
                or mono - self.last_start_mono >= lim.min_cycle_s
            )
            if want_on and held >= lim.min_off_s and cycle_ok:
                self._switch(True, mono)
        return self.on

    def force_off(self, mono: float) -> None:
        """The machine was stopped from outside (safety, mode): its off time starts now."""
        if self.on:
            self._switch(False, mono)
        self.last_mono = mono
        if not self.fresh:
            self.owed_s = min(self.owed_s, 0.0)

    def _switch(self, on: bool, mono: float) -> None:
        self.on = on
        self.since_mono = mono
        if on:
            self.fresh = False
            self.starts += 1
            self.last_start_mono = mono


@dataclass(frozen=True, slots=True)
class Season:
    """The heating season, inclusive, as (month, day) pairs; it may wrap over the new year."""

    start: tuple[int, int]
    end: tuple[int, int]

    @staticmethod
    def parse(start: str, end: str) -> Season:
        """From ``"MM-DD"`` strings; a clear error for a date that is not one."""

        def one(text: str) -> tuple[int, int]:
            try:
                month, day = (int(x) for x in text.split("-"))
                date(2000, month, day)  # a leap year, so 02-29 is accepted
            except ValueError:
                raise ValueError(f"{text!r} is not a month and day (MM-DD)") from None
            return month, day

        return Season(one(start), one(end))

    def contains(self, day: date) -> bool:
        md = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end


# Once summer began because it is warm outside, it ends only this much below the threshold,
# so a reading hovering at the threshold does not flip the heating on and off.
SUMMER_HYSTERESIS_C = 1.0


def is_summer(
    local_day: date,
    outdoor_c: float | None,
    *,
    threshold_c: float | None,
    season: Season | None,
    was_warm: bool,
) -> tuple[bool, bool]:
    """Whether no heat is wanted, and whether it is warm outside (to pass back as ``was_warm``).

    Summer: outside the heating season, or the outdoor temperature at or above the threshold
    (falling back below it only ``SUMMER_HYSTERESIS_C`` lower). An unknown outdoor temperature
    never makes summer.
    """
    warm = False
    if threshold_c is not None and outdoor_c is not None and math.isfinite(outdoor_c):
        limit = threshold_c - SUMMER_HYSTERESIS_C if was_warm else threshold_c
        warm = outdoor_c >= limit
    out_of_season = season is not None and not season.contains(local_day)
    return warm or out_of_season, warm


# -- prices ----------------------------------------------------------------------------------

# Each period's price is ranked among the prices this far before and after it: a day either side
# sees a night's cheap hours and an evening's peak whatever the hour.
PRICE_WINDOW_S = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class TariffSlot:
    """A price in force over ``[start, end)`` (UTC epoch seconds), major units per kWh.

    ``fallback``: not a published price but the tariff's stand-in for a time its list does not
    cover; price-aware heating does not act on it.
    """

    start: float
    end: float
    price: Decimal
    fallback: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end <= self.start:
            raise ValueError("a price slot must end after it starts")


def tariff_slots(tariff: Tariff, start: datetime, end: datetime) -> tuple[TariffSlot, ...]:
    """The tariff's prices over ``[start, end)`` as slots, in order (for the heating loop)."""
    return tuple(
        TariffSlot(s.start.timestamp(), s.end.timestamp(), s.price.per_kwh, s.price.fallback)
        for s in tariff.prices_between(start, end)
    )


def slot_index(slots: Sequence[TariffSlot], wall: float) -> int | None:
    """The index of the slot in force at ``wall`` (slots in time order), or None."""
    i = bisect.bisect_right([s.start for s in slots], wall) - 1
    if i >= 0 and wall < slots[i].end:
        return i
    return None


def price_offsets(
    slots: Sequence[TariffSlot], band_c: float, window_s: float = PRICE_WINDOW_S
) -> tuple[float, ...]:
    """Each slot's setpoint offset (°C, −band..+band): up when it is cheap, down when dear.

    A slot's price is ranked, weighted by time, among the published prices within ``window_s``
    of its middle: the cheapest gets ``+band_c`` (pre-heat), the dearest ``−band_c`` (let the
    room cool), the median 0, linearly between. Ranks spread evenly, so over a day the offsets
    average about zero and the room's mean temperature stays where the setpoint keeps it.
    Equal prices everywhere, a fallback price, or nothing to compare with give 0.
    """
    if band_c < 0 or not math.isfinite(band_c):
        raise ValueError("the comfort band must be 0 °C or more")
    out: list[float] = []
    for s in slots:
        if s.fallback or band_c == 0:
            out.append(0.0)
            continue
        mid = (s.start + s.end) / 2
        lo, hi = mid - window_s, mid + window_s
        below = equal = total = 0.0
        for o in slots:
            if o.fallback:
                continue
            w = min(o.end, hi) - max(o.start, lo)
            if w <= 0:
                continue
            total += w
            if o.price < s.price:
                below += w
            elif o.price == s.price:
                equal += w
        if total <= 0 or equal >= total:
            out.append(0.0)
            continue
        rank = (below + equal / 2) / total
        out.append(band_c * (1.0 - 2.0 * rank))
    return tuple(out)
