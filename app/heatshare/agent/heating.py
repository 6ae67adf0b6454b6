"""The heating loop: from the mode, the schedule, the room and the safety policy to a decision.

No threads of its own: the agent's heating thread calls :meth:`HeatingLoop.step` several times a
second with what the sensors say, and carries out the :class:`HeatingDecision` (leases or none,
jobs frozen or stopped at their checkpoint, the GPU's power limit, the CPU cores).

Safety comes first and fails closed: a safety stop (or a policy that cannot decide) stops the
computing whatever the mode says. Then the mode:

* heat first: a PI controller on the room temperature turns the distance from the setpoint into
  a heat demand; without a thermometer the schedule's power levels; with a stale or missing
  reading at most the floor power. Nothing in summer.
* quiet: heat first under the quiet power cap.
* earn first: compute whenever there is work (the safety limits, the room's among them, apply).
* off: nothing.
* boost: full heat for a while, whatever the mode.

With prices that change through the day (a dynamic tariff) and price-aware heating on, heat
first aims above the setpoint while electricity is cheap and below it while it is dear, within the
householder's comfort band (the same comfort on average), and earn first computes only while the
work earns more per kWh than electricity costs, by the margin asked. :meth:`HeatingLoop.plan`
shows what the heater means to do over the hours ahead.

The demand becomes heat, power cap first and pause last: the GPU's power limit where the agent
may set it (down to the card's minimum), below that a duty cycle with minimum on and off times.
A stop the thermostat asks for lets a running job reach its checkpoint first when it says the
checkpoint is at most two minutes away.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal

from heatshare.domain.safety import Event, Limits, SafetyInputs, SafetyPolicy, Verdict
from heatshare.domain.thermostat import (
    DutyCycle,
    DutyLimits,
    Override,
    Period,
    PiController,
    PiGains,
    RoomReading,
    Season,
    Setpoint,
    SetpointSource,
    TariffSlot,
    WeekSchedule,
    is_summer,
    price_offsets,
    slot_index,
)
from heatshare.protocol.energy import PlanSlot, PriceAwareSettings
from heatshare.protocol.heating import (
    Actuation,
    HeatingSettings,
    HeatingStatus,
    HeatingSummary,
    HeatMode,
    RoomSourceKind,
    SafetyEvent,
    SafetyRule,
    SetpointRequest,
)

__all__ = [
    "Capability",
    "HeatingDecision",
    "HeatingInputs",
    "HeatingLoop",
    "RoomReading",
    "TariffSlot",
]

log = logging.getLogger(__name__)

# A job whose next checkpoint is at most this far away reaches it before a thermostat stop.
CHECKPOINT_GRACE_S = 120.0
# Below this much demand for this long, running jobs are stopped at a checkpoint rather than
# frozen: a frozen job holds its lease, its memory and its GPU.
LONG_IDLE_S = 1800.0
# With a power cap, a demand down to this share of the card's minimum still runs continuously
# at the minimum; below it the minimum is duty-cycled.
CAP_CONTINUOUS = 0.85
# A reading outside this range is a broken thermometer (a DS18B20 says -127 °C or 85 °C when
# it fails), not a room: heating on it could run flat out, so it counts as no reading. A shed
# in winter can be well below freezing.
ROOM_PLAUSIBLE_C = (-30.0, 60.0)
# Setpoints a room can be asked for (the protocol's RoomC range).
MIN_SETPOINT_C = 5.0
MAX_SETPOINT_C = 30.0
_STATE_VERSION = 1
# A price offset smaller than this is the setpoint itself: nothing to say about it.
PRICE_OFFSET_SHOWN_C = 0.1
# The plan's rows: at most this long, and cut where the price changes.
PLAN_ROW_S = 1800.0
# The plan's power estimate: a target raised by 1 °C over a row adds this much demand to it.
PLAN_DEMAND_PER_C = 1.0
# Quiet mode's fan ceiling: the power comes down this fast (share of the quiet cap per second)
# while a fan is above the ceiling, and goes back up this fast once every fan is this far below
# it; in between it holds, so the fans' slow response cannot make it hunt.
QUIET_FAN_DOWN_PER_S = 0.10 / 60.0
QUIET_FAN_UP_PER_S = 0.02 / 60.0
QUIET_FAN_HYSTERESIS_PCT = 5.0
QUIET_FAN_MIN_SCALE = 0.2
# How prices read in a sentence: the minor unit where it has a usual short name.
_MINOR_UNITS = {"GBP": "p", "EUR": "c", "USD": "¢"}


@dataclass(frozen=True)
class Capability:
    """What the agent may actuate on this machine."""

    # (index, min_w, max_w) of each GPU whose power limit the agent MAY set; () when it may not.
    gpu_power_limits: tuple[tuple[int, float, float], ...]
    cores: int


@dataclass(frozen=True)
class HeatingInputs:
    """What the heating thread knows at one step."""

    wall: float  # UTC epoch seconds
    mono: float  # monotonic seconds
    room: RoomReading | None
    room_problem: str | None  # the room source's error sentence, if any
    outdoor_c: float | None
    safety: SafetyInputs
    job_running: bool
    checkpoint_eta_s: float | None  # seconds to the running job's next checkpoint, when it says
    # The tariff's prices, in time order, from a little before now to as far ahead as known.
    # Pass the same slots (whole half hours, not cut at now) until the prices change: the
    # offsets are ranked again only when they do.
    prices: tuple[TariffSlot, ...] = ()
    # What the work earns per kWh lately, in the tariff's currency; None: unknown or not money.
    earnings_per_kwh: Decimal | None = None


@dataclass(frozen=True)
class HeatingDecision:
    """What to do until the next step."""

    compute: bool  # False: no new leases; running jobs are held
    # How to hold running jobs when compute is False: freeze = SIGSTOP now (safety stops,
    # duty-cycle off times); stop = stop at the checkpoint (mode off, long idle).
    hold: Literal["none", "freeze", "stop"]
    gpu_power_limit_w: dict[int, float]  # index -> W to set; {} = leave/restore the default
    cpu_cores: int | None  # CPU jobs limited to this many cores; None = all
    reason: str  # a sentence: why it computes or not
    safety_stop: bool


@dataclass
class _Seen:
    """What the last step saw and decided, for the status."""

    room: RoomReading | None = None
    room_problem: str | None = None
    outdoor_c: float | None = None
    summer: bool = False
    demand: float = 0.0
    actuation: Actuation = Actuation.NONE
    gpu_power_limit_w: float | None = None
    computing: bool = False
    reason: str = "The heating has not started yet."
    safety_stop: bool = False
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class _Context:
    """One step's view, for the mode's plan."""

    inputs: HeatingInputs
    now: datetime
    room: RoomReading | None  # None: missing or stale
    problem: str | None
    summer: bool
    dt: float
    safety_stop: bool


@dataclass
class _Plan:
    """The mode's wish before the duty cycle, the checkpoint grace and safety."""

    demand: float  # 0..1
    full: bool  # compute without a cap or duty cycle (earn first, boost)
    hold: Literal["none", "freeze", "stop"]
    reason: str
    cores: int | None = None


def _utc(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, UTC)


def _fmt_c(value: float) -> str:
    return f"{value:.1f} °C"


def _limits(settings: HeatingSettings) -> Limits:
    """The domain's safety limits from the protocol's (same field names)."""
    data = settings.limits.model_dump()
    data["exclusive_apps"] = tuple(data["exclusive_apps"])
    return Limits(**data)


def _schedule(settings: HeatingSettings, tz: tzinfo, override: Override | None) -> WeekSchedule:
    periods = tuple(Period(p.day, p.start_min, p.end_min) for p in settings.periods)
    return WeekSchedule(periods, settings.comfort_c, settings.eco_c, tz, override)


def _season(settings: HeatingSettings) -> Season | None:
    if settings.season_start is None or settings.season_end is None:
        return None
    return Season.parse(settings.season_start, settings.season_end)


def _event(e: Event) -> SafetyEvent:
    return SafetyEvent(
        rule=SafetyRule(e.rule.value),
        message=e.message,
        since=_utc(e.since_wall),
        stops_at=None if e.stops_at_wall is None else _utc(e.stops_at_wall),
        resumes_at=None if e.resumes_at_wall is None else _utc(e.resumes_at_wall),
    )


class HeatingLoop:
    """The thermostat and the safety policy of one agent; see the module's description.

    Not thread-safe: the heating thread calls :meth:`step`; the agent serialises the other
    calls with it (one lock).

    Args:
        settings: the householder's heating settings.
        tz: the household's time zone (the comfort periods are its wall time).
        capability: what the agent may actuate.
        gains: the PI controller's gains (the room simulator tunes them).
        duty: the duty cycle's minimum times and band.
        price_aware: price-aware heating's settings (off where None).
        currency: the tariff's currency, for the sentences that name a price.
    """

    def __init__(
        self,
        settings: HeatingSettings,
        *,
        tz: tzinfo,
        capability: Capability,
        gains: PiGains | None = None,
        duty: DutyLimits | None = None,
        price_aware: PriceAwareSettings | None = None,
        currency: str = "GBP",
    ) -> None:
        self._tz = tz
        self._settings = settings
        self._capability = capability
        self._override: Override | None = None
        self._boost_until: float | None = None
        self._schedule = _schedule(settings, tz, None)
        self._season = _season(settings)
        self._policy = SafetyPolicy(_limits(settings))
        self._pi = PiController(gains if gains is not None else PiGains())
        self._duty = DutyCycle(duty if duty is not None else DutyLimits())
        self._last_mono: float | None = None
        self._last_wall: float | None = None
        self._warm_outside = False
        self._idle_since: float | None = None  # mono since the demand has been zero
        self._checkpoint_until: float | None = None  # mono until which a job may checkpoint
        self._computing = False
        self._seen = _Seen()
        self._notify: list[SafetyEvent] = []
        # next_change() scans a week of the time zone: keep its answer until it passes.
        self._next_change: tuple[datetime, datetime | None] | None = None
        self._price_aware = price_aware if price_aware is not None else PriceAwareSettings()
        self._currency = currency
        self._prices: tuple[TariffSlot, ...] = ()
        self._offsets: tuple[float, ...] = ()  # per price slot, for the band in force
        self._earnings: Decimal | None = None
        self._fan_scale = 1.0  # quiet mode's fan ceiling: share of the quiet cap allowed
        self._fan_pct: float | None = None  # the hottest-running fan's last reading

    # -- configuration -------------------------------------------------------------------------

    @property
    def settings(self) -> HeatingSettings:
        return self._settings

    def configure(self, settings: HeatingSettings) -> None:
        """New settings; an override and a boost stay."""
        self._settings = settings
        self._schedule = _schedule(settings, self._tz, self._override)
        self._season = _season(settings)
        self._policy.configure(_limits(settings))
        self._next_change = None

    def set_capability(self, capability: Capability) -> None:
        self._capability = capability

    @property
    def price_aware(self) -> PriceAwareSettings:
        return self._price_aware

    def configure_prices(self, settings: PriceAwareSettings, currency: str | None = None) -> None:
        """Price-aware heating's settings (and the tariff's currency, where it changed)."""
        self._price_aware = settings
        if currency is not None:
            self._currency = currency
        self._offsets = self._price_offsets(self._prices)

    def _take_prices(self, prices: tuple[TariffSlot, ...]) -> None:
        """The step's prices; their offsets are worked out again only when they change."""
        if prices is self._prices or prices == self._prices:
            self._prices = prices
            return
        slots = tuple(sorted(prices, key=lambda p: p.start))
        self._prices = prices if slots == prices else slots
        self._offsets = self._price_offsets(self._prices)

    def _price_offsets(self, slots: tuple[TariffSlot, ...]) -> tuple[float, ...]:
        return price_offsets(slots, self._price_aware.band_c)

    def set_mode(self, mode: HeatMode, wall: float) -> None:
        """Change the mode; a boost ends."""
        self._settings = self._settings.model_copy(update={"mode": mode})
        self._boost_until = None
        self._last_wall = wall
        # A householder who switches mode expects the new mode to act now, not after a pause.
        self._duty.release()

    def boost(self, minutes: int, wall: float) -> None:
        """Full heat for ``minutes`` from ``wall``; 0 ends a boost."""
        if minutes < 0:
            raise ValueError("a boost cannot last a negative number of minutes")
        self._boost_until = wall + minutes * 60.0 if minutes > 0 else None
        self._last_wall = wall

    def setpoint(self, req: SetpointRequest, wall: float) -> None:
        """A temporary setpoint, a nudge of the current one, or back to the schedule.

        The override lasts until ``req.until`` or, without one, until the schedule's next
        change (a nudge of an override keeps its end). A naive ``until`` is household time.

        Raises:
            ValueError: ``until`` is not in the future.
        """
        self._last_wall = wall
        now = _utc(wall)
        if req.clear:
            self._set_override(None)
            return
        until: datetime | None
        if req.until is not None:
            until = (
                req.until if req.until.tzinfo is not None else req.until.replace(tzinfo=self._tz)
            )
            if until <= now:
                raise ValueError("The override must end in the future.")
        else:
            until = None
        current = self._schedule.setpoint_at(now)
        nudging_override = (
            req.delta_c is not None
            and current.source is SetpointSource.OVERRIDE
            and self._override is not None
        )
        if req.setpoint_c is not None:
            target = req.setpoint_c
        else:
            assert req.delta_c is not None  # the model allows exactly one
            target = current.setpoint_c + req.delta_c
        if req.until is None:
            if nudging_override:
                assert self._override is not None
                until = self._override.until
            else:
                until = self._schedule.next_change(now)
        target = round(min(max(target, MIN_SETPOINT_C), MAX_SETPOINT_C), 2)
        self._set_override(Override(target, until))

    def _set_override(self, override: Override | None) -> None:
        self._override = override
        self._schedule = self._schedule.with_override(override)

    # -- persistence ---------------------------------------------------------------------------

    def runtime_state(self) -> dict[str, Any]:
        """The override, the boost and the controller's integral, JSON-able, to persist."""
        o = self._override
        return {
            "version": _STATE_VERSION,
            "override": None
            if o is None
            else {
                "setpoint_c": o.setpoint_c,
                "until": None if o.until is None else o.until.timestamp(),
            },
            "boost_until": self._boost_until,
            "integral": self._pi.integral,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`runtime_state` gave; anything malformed is ignored."""
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            return
        o = state.get("override")
        if isinstance(o, dict):
            sp, until = _num(o.get("setpoint_c")), _num(o.get("until"))
            if sp is not None and MIN_SETPOINT_C <= sp <= MAX_SETPOINT_C:
                if o.get("until") is None:
                    self._set_override(Override(sp, None))
                elif until is not None:
                    self._set_override(Override(sp, _utc(until)))
        boost = _num(state.get("boost_until"))
        if boost is not None:
            self._boost_until = boost
        integral = _num(state.get("integral"))
        if integral is not None:
            self._pi.reset(integral)

    # -- the step ------------------------------------------------------------------------------

    def step(self, inputs: HeatingInputs) -> HeatingDecision:
        """Decide what to do now; call several times a second."""
        dt = 0.0 if self._last_mono is None else inputs.mono - self._last_mono
        self._last_mono = inputs.mono
        self._last_wall = inputs.wall
        self._take_prices(inputs.prices)
        self._earnings = inputs.earnings_per_kwh
        verdict = self._evaluate_safety(inputs.safety)
        now = _utc(inputs.wall)
        self._expire(now)
        settings = self._settings
        room = self._fresh_room(inputs)
        problem = inputs.room_problem
        if room is not None and not ROOM_PLAUSIBLE_C[0] <= room.temp_c <= ROOM_PLAUSIBLE_C[1]:
            problem = (
                f"The thermometer says {_fmt_c(room.temp_c)}, which cannot be the room's "
                "temperature."
            )
            room = None
        if room is None and settings.room_source is not RoomSourceKind.NONE and problem is None:
            problem = self._stale_sentence(inputs)
        summer, self._warm_outside = is_summer(
            now.astimezone(self._tz).date(),
            inputs.outdoor_c,
            threshold_c=settings.summer_outdoor_c,
            season=self._season,
            was_warm=self._warm_outside,
        )
        plan = self._plan(_Context(inputs, now, room, problem, summer, dt, verdict.stop))
        decision, actuation, cap_w = self._actuate(plan, inputs, verdict)
        self._computing = decision.compute
        self._seen = _Seen(
            room=inputs.room,
            room_problem=problem,
            outdoor_c=inputs.outdoor_c,
            summer=summer,
            demand=plan.demand,
            actuation=actuation,
            gpu_power_limit_w=cap_w,
            computing=decision.compute,
            reason=decision.reason,
            safety_stop=decision.safety_stop,
            events=verdict.events,
        )
        return decision

    def _evaluate_safety(self, safety: SafetyInputs) -> Verdict:
        try:
            verdict = self._policy.evaluate(safety)
        except Exception:
            # Fail closed: a policy that cannot decide stops the computing.
            log.exception("the safety policy failed; computing is stopped")
            return Verdict(stop=True, events=(), started=())
        self._notify.extend(_event(e) for e in verdict.started)
        return verdict

    def _expire(self, now: datetime) -> None:
        if self._boost_until is not None and now.timestamp() >= self._boost_until:
            self._boost_until = None
        o = self._override
        if o is not None and o.until is not None and now >= o.until:
            self._set_override(None)

    def _fresh_room(self, inputs: HeatingInputs) -> RoomReading | None:
        r = inputs.room
        if r is None or not (math.isfinite(r.temp_c) and math.isfinite(r.wall)):
            return None
        if inputs.wall - r.wall > self._settings.limits.stale_after_s:
            return None
        return r

    def _stale_sentence(self, inputs: HeatingInputs) -> str:
        r = inputs.room
        if r is None:
            return "No room temperature has come in yet."
        age_min = max(0.0, inputs.wall - r.wall) / 60.0
        return f"The last room temperature is {age_min:.0f} minutes old."

    def _plan(self, ctx: _Context) -> _Plan:
        s = self._settings
        if self._boost_until is not None:
            until = _utc(self._boost_until).astimezone(self._tz)
            return _Plan(1.0, True, "none", f"Boost: full heat until {until:%H:%M}.")
        if s.mode is HeatMode.OFF:
            return _Plan(0.0, False, "stop", "Heating is off: nothing is computed.")
        if s.mode is HeatMode.EARN_FIRST:
            return self._plan_earn(ctx)
        return self._plan_heat(ctx)

    def _plan_earn(self, ctx: _Context) -> _Plan:
        """Earn first: whenever there is work, or with price-aware heating while it pays."""
        wall = ctx.inputs.wall
        margin = self._margin_at(wall)
        if margin is None:
            return _Plan(
                1.0,
                True,
                "none",
                "Earn first: computing whenever there is work, within the limits.",
            )
        i, price, earns, need = margin
        if earns - price >= need:
            return _Plan(
                1.0,
                True,
                "none",
                f"Earn first: computing while the work earns {self._fmt_price(earns)}, more "
                f"than electricity costs ({self._fmt_price(price)}).",
            )
        until = self._run_end(i, lambda j: not self._pays(j))
        asked = f" by the margin of {self._fmt_price(need)}" if need > 0 else ""
        return _Plan(
            0.0,
            False,
            "freeze",
            f"Earn first: holding off while electricity costs {self._fmt_price(price)} "
            f"(until {self._fmt_time(until)}), as the work earns {self._fmt_price(earns)}, "
            f"not more{asked}.",
        )

    def _margin_at(self, wall: float) -> tuple[int, Decimal, Decimal, Decimal] | None:
        """(slot, price, earnings, margin asked) where earn first weighs the price, else None."""
        pa = self._price_aware
        if not pa.enabled or self._earnings is None:
            return None
        i = slot_index(self._prices, wall)
        if i is None or self._prices[i].fallback:
            return None
        return i, self._prices[i].price, self._earnings, pa.min_margin_per_kwh

    def _pays(self, i: int) -> bool:
        slot = self._prices[i]
        if self._earnings is None or slot.fallback:
            return True
        return self._earnings - slot.price >= self._price_aware.min_margin_per_kwh

    def _offset_at(self, wall: float) -> tuple[int, float] | None:
        """(slot, offset °C) where heat first shifts its target for the price, else None."""
        if not self._price_aware.enabled or not self._offsets:
            return None
        i = slot_index(self._prices, wall)
        if i is None:
            return None
        return i, self._offsets[i]

    def _run_end(self, i: int, same: Callable[[int], bool]) -> float:
        """The end of the run of slots from ``i`` on that ``same(j)`` says belong with it."""
        end = self._prices[i].end
        for j in range(i + 1, len(self._prices)):
            if self._prices[j].start > end or not same(j):
                break
            end = self._prices[j].end
        return end

    def _fmt_price(self, price: Decimal) -> str:
        minor = _MINOR_UNITS.get(self._currency)
        if minor is not None:
            return f"{float(price) * 100:.1f} {minor}/kWh"
        return f"{float(price):.3f} {self._currency}/kWh"

    def _fmt_time(self, wall: float) -> str:
        return f"{_utc(wall).astimezone(self._tz):%H:%M}"

    def _plan_heat(self, ctx: _Context) -> _Plan:
        """Heat first, and quiet (heat first under a cap)."""
        s, inputs, room = self._settings, ctx.inputs, ctx.room
        label = "Quiet" if s.mode is HeatMode.QUIET else "Heat first"
        cap = 1.0
        cores = None
        fans = ""
        if s.mode is HeatMode.QUIET:
            self._limit_fans(inputs, ctx.dt)
            cap = s.quiet_power_pct / 100.0 * self._fan_scale
            cores = max(1, math.ceil(self._capability.cores * cap))
            if self._fan_scale < 1.0:
                fans = (
                    f" (the quiet cap held down to {cap * 100:.0f} %: the fans ran above "
                    f"{s.quiet_fan_pct:.0f} %)"
                )
        else:
            self._fan_scale = 1.0
        setpoint = self._schedule.setpoint_at(ctx.now)
        if ctx.summer:
            self._pi.reset(0.0)
            why = (
                f"it is {_fmt_c(inputs.outdoor_c)} outside"
                if self._warm_outside and inputs.outdoor_c is not None
                else "it is outside the heating season"
            )
            return _Plan(0.0, False, "stop", f"{label}: no heat is wanted, {why}.")
        if s.room_source is RoomSourceKind.NONE:
            comfort = setpoint.setpoint_c >= (s.comfort_c + s.eco_c) / 2
            pct = s.comfort_power_pct if comfort else s.eco_power_pct
            demand = min(pct / 100.0, cap)
            level = "comfort" if comfort else "eco"
            return _Plan(
                demand,
                False,
                "freeze",
                f"{label}: no room thermometer, so the {level} power level ({demand * 100:.0f} %).",
                cores=cores,
            )
        if room is None:
            floor = s.limits.floor_pct / 100.0
            demand = min(floor, cap)
            return _Plan(
                demand,
                False,
                "freeze",
                f"{label}: the room temperature is unknown ({(ctx.problem or '').rstrip('.')}), "
                f"so at most the floor power ({demand * 100:.0f} %).",
                cores=cores,
            )
        target, why_price = self._price_target(setpoint, inputs.wall)
        can_heat = inputs.job_running and not ctx.safety_stop
        demand = self._pi.update(target, room.temp_c, ctx.dt, can_heat=can_heat)
        demand = min(demand, cap)
        where = f"the room is {_fmt_c(room.temp_c)}, the setpoint {_fmt_c(setpoint.setpoint_c)}"
        if demand <= 0.0:
            reason = f"{label}: {why_price}no heat needed, {where}{fans}."
        else:
            reason = f"{label}: {why_price}heating at {demand * 100:.0f} %, {where}{fans}."
        return _Plan(demand, False, "freeze", reason, cores=cores)

    def _price_target(self, setpoint: Setpoint, wall: float) -> tuple[float, str]:
        """The temperature to aim for, the setpoint moved for the price, and why (or "")."""
        at = self._offset_at(wall) if setpoint.source is not SetpointSource.OVERRIDE else None
        if at is None:
            return setpoint.setpoint_c, ""
        i, offset = at
        target = min(max(setpoint.setpoint_c + offset, MIN_SETPOINT_C), MAX_SETPOINT_C)
        price = self._fmt_price(self._prices[i].price)
        if offset >= PRICE_OFFSET_SHOWN_C:
            until = self._run_end(i, lambda j: self._offsets[j] >= PRICE_OFFSET_SHOWN_C)
            return target, (
                f"pre-heating to {_fmt_c(target)} while electricity is cheap ({price} until "
                f"{self._fmt_time(until)}); "
            )
        if offset <= -PRICE_OFFSET_SHOWN_C:
            until = self._run_end(i, lambda j: self._offsets[j] <= -PRICE_OFFSET_SHOWN_C)
            return target, (
                f"holding back to {_fmt_c(target)} while electricity is dear ({price} until "
                f"{self._fmt_time(until)}); "
            )
        return target, ""

    def _limit_fans(self, inputs: HeatingInputs, dt: float) -> None:
        """Quiet mode's fan ceiling: a slow limiter on the power while a fan runs above it."""
        fans = [g.fan_pct for g in inputs.safety.gpus if g.fan_pct is not None]
        fans = [f for f in fans if math.isfinite(f)]
        self._fan_pct = max(fans) if fans else None
        if self._fan_pct is None:
            return
        ceiling = self._settings.quiet_fan_pct
        dt = min(max(dt, 0.0), 60.0)
        if self._fan_pct > ceiling:
            self._fan_scale = max(QUIET_FAN_MIN_SCALE, self._fan_scale - QUIET_FAN_DOWN_PER_S * dt)
        elif self._fan_pct < ceiling - QUIET_FAN_HYSTERESIS_PCT:
            self._fan_scale = min(1.0, self._fan_scale + QUIET_FAN_UP_PER_S * dt)

    def _actuate(
        self, plan: _Plan, inputs: HeatingInputs, verdict: Verdict
    ) -> tuple[HeatingDecision, Actuation, float | None]:
        mono = inputs.mono
        if verdict.stop:
            self._duty.force_off(mono)
            self._checkpoint_until = None
            why = verdict.reason or "Computing is stopped until the safety checks can decide."
            return (
                HeatingDecision(False, "freeze", {}, None, why, safety_stop=True),
                Actuation.NONE,
                None,
            )
        if plan.full:
            self._duty.update(1.0, mono)
            self._idle_since = None
            self._checkpoint_until = None
            return (
                HeatingDecision(True, "none", {}, plan.cores, plan.reason, safety_stop=False),
                Actuation.FULL,
                None,
            )
        return self._regulate(plan, inputs)

    def _regulate(
        self, plan: _Plan, inputs: HeatingInputs
    ) -> tuple[HeatingDecision, Actuation, float | None]:
        """A demand as heat: power cap first, then the duty cycle; a checkpoint before a pause."""
        mono = inputs.mono
        caps: dict[int, float] = {}
        fraction = plan.demand
        limits = self._capability.gpu_power_limits
        if limits and plan.demand > 0.0:
            fraction = 1.0
            for index, min_w, max_w in limits:
                want = plan.demand * max_w
                caps[index] = round(min(max(want, min_w), max_w), 1)
                fraction = min(fraction, want / min_w if min_w > 0 else 1.0)
            if fraction >= CAP_CONTINUOUS:
                # A little above the demand at the card's minimum: the PI takes the excess
                # back within minutes, where a pause would drop the room at once.
                fraction = 1.0
        run = self._duty.update(fraction, mono) if plan.hold != "stop" else False
        if plan.hold == "stop":
            self._duty.force_off(mono)
        if plan.demand > 0.0:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = mono
        if run:
            self._checkpoint_until = None
            if caps:
                actuation = Actuation.POWER_CAP if fraction >= 1.0 else Actuation.DUTY_CYCLE
            else:
                actuation = Actuation.DUTY_CYCLE if fraction < 1.0 else Actuation.FULL
            cap_w = next(iter(caps.values())) if caps else None
            return (
                HeatingDecision(True, "none", caps, plan.cores, plan.reason, safety_stop=False),
                actuation,
                cap_w,
            )
        hold = plan.hold
        if (
            hold == "freeze"
            and self._idle_since is not None
            and mono - self._idle_since >= LONG_IDLE_S
        ):
            hold = "stop"
        reason = plan.reason
        if plan.demand > 0.0:
            reason = (
                f"{reason.rstrip('.')}; pausing between runs so the machine does not start "
                "and stop too often."
            )
        grace = self._checkpoint_grace(inputs)
        if grace is not None:
            return (
                HeatingDecision(True, "none", caps, plan.cores, grace, safety_stop=False),
                Actuation.FULL if not caps else Actuation.POWER_CAP,
                next(iter(caps.values())) if caps else None,
            )
        return (
            HeatingDecision(False, hold, {}, plan.cores, reason, safety_stop=False),
            Actuation.NONE,
            None,
        )

    def _checkpoint_grace(self, inputs: HeatingInputs) -> str | None:
        """A sentence while a running job may finish its near checkpoint before a stop."""
        if self._checkpoint_until is None:
            eta = inputs.checkpoint_eta_s
            if (
                not self._computing
                or not inputs.job_running
                or eta is None
                or not math.isfinite(eta)
                or not 0 <= eta <= CHECKPOINT_GRACE_S
            ):
                return None
            self._checkpoint_until = inputs.mono + eta
        if inputs.mono >= self._checkpoint_until or not inputs.job_running:
            return None
        left = self._checkpoint_until - inputs.mono
        return f"Letting the running job reach its checkpoint (about {left:.0f} s) before pausing."

    # -- what it shows -------------------------------------------------------------------------

    def _now(self) -> datetime | None:
        return None if self._last_wall is None else _utc(self._last_wall)

    def status(self) -> HeatingStatus:
        """What the thermostat sees and decides (the last step's view)."""
        s, seen, now = self._settings, self._seen, self._now()
        setpoint_c: float | None = None
        source: Literal["comfort", "eco", "override", "none"] = "none"
        override_until = next_change = None
        if now is not None:
            self._expire(now)
            sp = self._schedule.setpoint_at(now)
            setpoint_c, source = sp.setpoint_c, sp.source.value
            if self._override is not None:
                override_until = self._override.until
            next_change = self._cached_next_change(now)
        room = seen.room
        return HeatingStatus(
            mode=s.mode,
            boost_until=None if self._boost_until is None else _utc(self._boost_until),
            room_source=s.room_source,
            room_c=None if room is None else room.temp_c,
            room_at=None if room is None else _utc(room.wall),
            room_problem=seen.room_problem,
            outdoor_c=seen.outdoor_c,
            summer=seen.summer,
            setpoint_c=setpoint_c,
            setpoint_source=source,
            override_until=override_until,
            next_change_at=next_change,
            demand_pct=round(seen.demand * 100.0, 1),
            actuation=seen.actuation,
            gpu_power_limit_w=seen.gpu_power_limit_w,
            computing=seen.computing,
            reason=seen.reason,
            safety_stop=seen.safety_stop,
            events=[_event(e) for e in seen.events],
        )

    def summary(self) -> HeatingSummary:
        st = self.status()
        return HeatingSummary(
            mode=st.mode,
            boost_until=st.boost_until,
            room_c=st.room_c,
            setpoint_c=st.setpoint_c,
            computing=st.computing,
            reason=st.reason,
            safety_stop=st.safety_stop,
        )

    def plan(self, wall: float, hours: float = 24.0) -> list[PlanSlot]:
        """What the heater means to do over the next ``hours`` from ``wall``, for the chart.

        One row per half hour at most, cut where the price changes, over the prices known (no
        rows where none is). The power is an estimate: the controller's present steady demand,
        more where the target rises and less where it falls; earn first's is all or nothing.
        """
        if hours <= 0 or not math.isfinite(hours) or not math.isfinite(wall):
            raise ValueError("the plan needs a time and a positive number of hours")
        end = wall + hours * 3600.0
        rows: list[PlanSlot] = []
        prev_target: float | None = None
        for i, slot in enumerate(self._prices):
            if slot.end <= wall or slot.start >= end:
                continue
            t = max(slot.start, wall)
            while t < min(slot.end, end):
                nxt = min((math.floor(t / PLAN_ROW_S) + 1) * PLAN_ROW_S, slot.end, end)
                setpoint, pct, prev_target = self._plan_row(i, t, prev_target)
                rows.append(
                    PlanSlot(
                        start=_utc(t),
                        end=_utc(nxt),
                        price_per_kwh=slot.price,
                        fallback=slot.fallback,
                        power_pct=round(pct, 1),
                        setpoint_c=None if setpoint is None else round(setpoint, 2),
                    )
                )
                t = nxt
        return rows

    def _plan_row(
        self, i: int, t: float, prev_target: float | None
    ) -> tuple[float | None, float, float | None]:
        """(setpoint aimed at, power %, target to carry to the next row) at ``t`` in slot i."""
        s = self._settings
        if self._boost_until is not None and t < self._boost_until:
            return None, 100.0, None
        if s.mode is HeatMode.OFF:
            return None, 0.0, None
        if s.mode is HeatMode.EARN_FIRST:
            pays = self._pays(i) or not self._price_aware.enabled
            return None, 100.0 if pays else 0.0, None
        if self._seen.summer:
            return None, 0.0, None
        cap = 1.0
        if s.mode is HeatMode.QUIET:
            cap = s.quiet_power_pct / 100.0 * self._fan_scale
        sp = self._schedule.setpoint_at(_utc(t))
        if s.room_source is RoomSourceKind.NONE:
            comfort = sp.setpoint_c >= (s.comfort_c + s.eco_c) / 2
            pct = s.comfort_power_pct if comfort else s.eco_power_pct
            return sp.setpoint_c, min(pct / 100.0, cap) * 100.0, None
        target, _ = self._price_target(sp, t)
        demand = self._pi.integral
        if prev_target is not None:
            demand += (target - prev_target) * PLAN_DEMAND_PER_C
        return target, min(max(demand, 0.0), cap) * 100.0, target

    def notifications(self) -> list[SafetyEvent]:
        """Safety events that began since the last call."""
        out, self._notify = self._notify, []
        return out

    def setpoint_now(self, wall: float) -> float:
        """The setpoint at ``wall`` (the override's while it lasts)."""
        return self._schedule.setpoint_at(_utc(wall)).setpoint_c

    def _cached_next_change(self, now: datetime) -> datetime | None:
        cached = self._next_change
        if cached is not None:
            computed_at, answer = cached
            # None ("never changes") is asked again after a day; a settings change clears it.
            fresh = answer is not None or now - computed_at < timedelta(days=1)
            if computed_at <= now and (answer is None or now < answer) and fresh:
                return answer
        answer = self._schedule.next_change(now)
        self._next_change = (now, answer)
        return answer


def _num(value: object) -> float | None:
    """A finite number from persisted JSON, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
