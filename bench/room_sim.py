"""Benchmark: the real heating loop holding a simulated room at its setpoint.

An RC thermal model of a room (two heat capacities: the air with the furniture, and the walls
and floor; loss to an outside temperature that follows a daily curve) is heated by the machine,
whose heat is what the :class:`~heatshare.agent.heating.HeatingLoop` lets it compute. The loop
sees the room through a thermometer that reports every 30 s what it measured 30 s earlier, with
noise and a 0.1 °C resolution, as a Zigbee thermometer read through Home Assistant does. Time is
simulated, so a week runs in seconds; the loop, its PI controller, its duty cycle and its safety
policy are the agent's own code.

Two machines are simulated:

* ``duty``: a GPU whose power limit the agent may not set: heat is on or off (duty cycle);
* ``cap``: a GPU whose power limit the agent may set (150–450 W): continuous power, and a duty
  cycle only below the card's minimum.

The setpoint is a constant comfort temperature and one step of +1 °C part-way through. Steady
state is every sample after a warm-up and outside the three hours after the step. Judged by:
in steady state the room within ±0.3 °C of the setpoint (``max_dev_c``) with at most 6 starts an
hour. The last line is one JSON object: the worst of the machines at the top level, each machine
under ``machines``.

With ``--prices agile``, each machine also heats the same week (no setpoint step) on an
agile-like dynamic tariff (half-hourly prices: cheap nights with a few negative half hours, a dear
16:00–19:00 peak, each day's prices published at 16:00 the day before, as Octopus Agile's are),
once price-blind and once price-aware (``--band`` °C either side of the setpoint); the JSON line
gains ``prices``: each run's electricity cost, the saving (absolute and %), and the comfort of each
(mean room temperature and degree-hours below the setpoint), over the same steady hours.

Run: ``.venv/bin/python bench/room_sim.py --days 7 [--machine duty|cap|both] [--quick]
[--prices agile [--band 1.0]]``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from heatshare.agent.heating import Capability, HeatingInputs, HeatingLoop, RoomReading
from heatshare.domain.safety import GpuFacts, SafetyInputs
from heatshare.domain.thermostat import DutyLimits, PiGains, TariffSlot, slot_index
from heatshare.protocol.energy import PriceAwareSettings
from heatshare.protocol.heating import (
    ComfortPeriod,
    HeatingSettings,
    HeatMode,
    MqttSource,
    RoomSourceKind,
    SetpointRequest,
)

GOAL_DEV_C = 0.3
GOAL_STARTS_PER_HOUR = 6.0
TZ = ZoneInfo("Europe/London")
START = datetime(2027, 1, 11, 0, 0, tzinfo=TZ)  # a Monday in January: heating season
SETPOINT_C = 20.5
STEP_C = 1.0
AFTER_STEP_EXCLUDED_S = 3 * 3600.0
# Settled: within the goal band and staying there this long.
SETTLED_HOLD_S = 3600.0


@dataclass
class Room:
    """A two-node RC model: air (with furniture) and the building's mass, losing to outside.

    Capacities in J/K, conductances in W/K. The machine heats the air; the air exchanges heat
    with the mass and, through ventilation and windows, with the outside; the mass loses heat
    through the walls to the outside.
    """

    c_air: float = 0.4e6
    c_mass: float = 4.0e6
    h_air_mass: float = 100.0
    ua_air: float = 12.0
    ua_mass: float = 10.0
    t_air: float = SETPOINT_C
    t_mass: float = SETPOINT_C

    def settle(self, t_air: float, t_out: float) -> None:
        """The mass in equilibrium with the air at ``t_air`` and the outside at ``t_out``."""
        self.t_air = t_air
        self.t_mass = (self.h_air_mass * t_air + self.ua_mass * t_out) / (
            self.h_air_mass + self.ua_mass
        )

    def step(self, dt: float, heat_w: float, t_out: float) -> None:
        q_am = self.h_air_mass * (self.t_air - self.t_mass)
        d_air = (heat_w - q_am - self.ua_air * (self.t_air - t_out)) / self.c_air
        d_mass = (q_am - self.ua_mass * (self.t_mass - t_out)) / self.c_mass
        self.t_air += d_air * dt
        self.t_mass += d_mass * dt

    def loss_w(self, t_air: float, t_out: float) -> float:
        """The heat the room loses in steady state at these temperatures."""
        mass_path = self.h_air_mass * self.ua_mass / (self.h_air_mass + self.ua_mass)
        return (self.ua_air + mass_path) * (t_air - t_out)


def outside_c(t_s: float, *, mean: float = 5.0, swing: float = 4.0) -> float:
    """Outside temperature: coldest at 05:00, warmest at 17:00 (local time of the start)."""
    hours = (t_s / 3600.0) % 24.0
    return mean - swing * math.cos(2 * math.pi * (hours - 5.0) / 24.0)


HALF_HOUR_S = 1800.0
# An agile-like day (local time, pence per kWh): cheap nights, a solar dip at noon, the peak.
AGILE_PENCE = [
    (0, 13.0), (2, 9.5), (5, 15.0), (7, 23.0), (11, 18.0), (15, 22.0), (16, 35.0), (19, 21.0),
    (23, 15.0),
]  # fmt: skip
# Days (from the start) with a windy night: 02:00–04:00 below zero.
NEGATIVE_NIGHTS = (2, 5)


class PriceCurve:
    """Half-hourly prices over the run, as a dynamic tariff publishes them.

    Each day's prices (23:00 to 23:00 local) are known from 16:00 the day before, so at any
    instant the loop is given what a householder's agent would hold: the past and up to the
    next 23:00 (or the one after, from 16:00).
    """

    def __init__(self, start: datetime, days: float, seed: int) -> None:
        rng = random.Random(seed * 7919 + 5)
        self.wall0 = start.timestamp()
        n = math.ceil((days + 2) * 86400.0 / HALF_HOUR_S)
        slots: list[TariffSlot] = []
        for i in range(n):
            t = self.wall0 + i * HALF_HOUR_S
            local = datetime.fromtimestamp(t, TZ)
            hour = local.hour + local.minute / 60.0
            pence = [p for h, p in AGILE_PENCE if h <= hour][-1] + rng.gauss(0.0, 1.5)
            day = (local.date() - start.date()).days
            if day in NEGATIVE_NIGHTS and 2 <= hour < 4:
                pence = -abs(rng.gauss(2.5, 1.5))
            price = Decimal(f"{pence / 100:.4f}")
            slots.append(TariffSlot(t, t + HALF_HOUR_S, price))
        self.slots = tuple(slots)
        self._known: tuple[float, tuple[TariffSlot, ...]] | None = None

    def price(self, wall: float) -> Decimal:
        i = slot_index(self.slots, wall)
        assert i is not None, "the curve covers the whole run"
        return self.slots[i].price

    def known(self, wall: float) -> tuple[TariffSlot, ...]:
        """The prices published by ``wall`` (the same tuple until the next publication)."""
        local = datetime.fromtimestamp(wall, TZ)
        until = local.replace(hour=23, minute=0, second=0, microsecond=0)
        if local.hour >= 23:
            until += timedelta(days=1)
        if local.hour >= 16:
            until += timedelta(days=1)
        edge = until.timestamp()
        if self._known is None or self._known[0] != edge:
            self._known = (edge, tuple(s for s in self.slots if s.end <= edge))
        return self._known[1]


@dataclass(frozen=True)
class Machine:
    name: str
    capability: Capability
    idle_w: float  # the machine on but not computing
    rest_w: float  # CPU, memory, fans, the power supply's loss while computing
    gpu_w: float  # the GPU at its default limit


MACHINES = {
    "duty": Machine("duty", Capability((), 8), idle_w=50.0, rest_w=80.0, gpu_w=400.0),
    "cap": Machine(
        "cap", Capability(((0, 150.0, 450.0),), 8), idle_w=50.0, rest_w=80.0, gpu_w=450.0
    ),
}


class Thermometer:
    """Reports every ``period_s`` what it measured ``lag_s`` earlier, noisy and rounded."""

    def __init__(self, rng: random.Random, *, lag_s: float = 30.0, period_s: float = 30.0) -> None:
        self.rng = rng
        self.lag_s = lag_s
        self.period_s = period_s
        self.history: deque[tuple[float, float]] = deque()
        self.next_report = 0.0
        self.reading: tuple[float, float] | None = None  # (°C, when measured)

    def sample(self, t: float, true_c: float) -> None:
        self.history.append((t, true_c))
        while len(self.history) > 1 and self.history[1][0] <= t - self.lag_s:
            self.history.popleft()
        if t >= self.next_report:
            self.next_report = t + self.period_s
            when, value = self.history[0]
            noisy = value + self.rng.gauss(0.0, 0.05)
            self.reading = (round(noisy, 1), when)


@dataclass
class Result:
    machine: str
    rms_c: float
    max_dev_c: float
    overshoot_c: float
    settling_min: float | None
    starts_per_hour: float
    mean_heat_w: float
    on_fraction: float
    steady_hours: float
    seconds: float
    mean_c: float  # the room's mean (true air) temperature in steady state
    below_dh: float  # degree-hours below the setpoint in steady state
    kwh: float  # electricity in steady state (all of it becomes heat)
    cost: float | None  # its cost at the dynamic prices, major units; None without prices

    def comfort(self) -> dict[str, object]:
        return {
            "cost": None if self.cost is None else round(self.cost, 3),
            "kwh": round(self.kwh, 2),
            "mean_c": round(self.mean_c, 3),
            "below_setpoint_dh": round(self.below_dh, 2),
            "max_dev_c": round(self.max_dev_c, 3),
            "starts_per_hour": round(self.starts_per_hour, 2),
        }

    def figures(self) -> dict[str, object]:
        return {
            "rms_c": round(self.rms_c, 3),
            "max_dev_c": round(self.max_dev_c, 3),
            "overshoot_c": round(self.overshoot_c, 3),
            "settling_min": None if self.settling_min is None else round(self.settling_min, 1),
            "starts_per_hour": round(self.starts_per_hour, 2),
            "mean_heat_w": round(self.mean_heat_w, 1),
            "on_fraction": round(self.on_fraction, 3),
            "steady_hours": round(self.steady_hours, 1),
        }


def settings() -> HeatingSettings:
    return HeatingSettings(
        mode=HeatMode.HEAT_FIRST,
        comfort_c=SETPOINT_C,
        eco_c=17.0,
        periods=[ComfortPeriod(day=d, start_min=0, end_min=1440) for d in range(7)],
        room_source=RoomSourceKind.MQTT,
        mqtt=MqttSource(host="localhost", topic="room/temperature"),
    )


def simulate(
    machine: Machine,
    *,
    days: float,
    step_s: float,
    seed: int,
    gains: PiGains | None = None,
    duty: DutyLimits | None = None,
    c_air: float = Room.c_air,
    outdoor_mean_c: float = 5.0,
    start: datetime = START,
    curve: PriceCurve | None = None,
    band_c: float | None = None,
    step_setpoint: bool = True,
) -> Result:
    """One run; with ``band_c`` the loop is price-aware on ``curve``'s prices."""
    rng = random.Random(seed)
    total_s = days * 86400.0
    warmup_s = min(12 * 3600.0, 0.2 * total_s)
    step_at = max(warmup_s, 0.4 * total_s)
    wall0 = start.timestamp()
    aware = PriceAwareSettings(enabled=band_c is not None, band_c=band_c or 0.0)
    loop = HeatingLoop(
        settings(),
        tz=TZ,
        capability=machine.capability,
        gains=gains,
        duty=duty,
        price_aware=aware,
    )
    room = Room(c_air=c_air)
    room.settle(SETPOINT_C, outside_c(0.0, mean=outdoor_mean_c))
    thermo = Thermometer(rng)
    # The controller starts from nothing (integral 0): the warm-up, excluded from the figures,
    # is its time to learn the heat the room needs.
    stepped = False
    t = 0.0
    heating = False
    starts = 0
    sq = 0.0
    n = 0
    max_dev = 0.0
    overshoot = 0.0
    energy = 0.0
    on_time = 0.0
    steady_time = 0.0
    temp_sum = 0.0
    below = 0.0
    money = 0.0
    settled_since: float | None = None
    settling: float | None = None
    substeps = max(1, round(step_s))
    sub_dt = step_s / substeps
    t0 = time.perf_counter()
    while t < total_s:
        if step_setpoint and not stepped and t >= step_at:
            loop.setpoint(SetpointRequest(setpoint_c=SETPOINT_C + STEP_C), wall0 + t)
            stepped = True
        out_c = outside_c(t, mean=outdoor_mean_c)
        thermo.sample(t, room.t_air)
        reading = None
        if thermo.reading is not None:
            reading = RoomReading(thermo.reading[0], wall0 + thermo.reading[1])
        safety = SafetyInputs(
            wall=wall0 + t,
            mono=t,
            sample_mono=t,
            sample_error=None,
            gpus=(GpuFacts(index=0, temp_c=62.0, fan_pct=45.0, power_w=300.0, slowdown_c=90.0),),
            cpu_temp_c=55.0,
            heat_w=None,
            on_battery=False,
            room_c=None if reading is None else reading.temp_c,
            room_wall=None if reading is None else reading.wall,
            computing=heating,
        )
        decision = loop.step(
            HeatingInputs(
                wall=wall0 + t,
                mono=t,
                room=reading,
                room_problem=None,
                outdoor_c=round(out_c, 1),
                safety=safety,
                job_running=True,
                checkpoint_eta_s=None,
                prices=() if curve is None else curve.known(wall0 + t),
            )
        )
        was = heating
        heating = decision.compute
        if heating:
            gpu = decision.gpu_power_limit_w.get(0, machine.gpu_w)
            heat_w = machine.idle_w + machine.rest_w + gpu
        else:
            heat_w = machine.idle_w
        setpoint = loop.setpoint_now(wall0 + t)
        for _ in range(substeps):
            room.step(sub_dt, heat_w, out_c)
        t += step_s
        dev = room.t_air - setpoint
        after_step = step_setpoint and step_at <= t < step_at + AFTER_STEP_EXCLUDED_S
        steady = t >= warmup_s and not after_step
        if steady:
            sq += dev * dev
            n += 1
            max_dev = max(max_dev, abs(dev))
            steady_time += step_s
            energy += heat_w * step_s
            temp_sum += room.t_air * step_s
            below += max(0.0, setpoint - room.t_air) * step_s / 3600.0
            if curve is not None:
                money += heat_w * step_s / 3.6e6 * float(curve.price(wall0 + t - step_s))
            on_time += step_s if heating else 0.0
            if heating and not was:
                starts += 1
        if stepped:
            overshoot = max(overshoot, dev)
            if abs(dev) <= GOAL_DEV_C:
                if settled_since is None:
                    settled_since = t
                if settling is None and t - settled_since >= SETTLED_HOLD_S:
                    settling = (settled_since - step_at) / 60.0
            else:
                settled_since = None
    hours = steady_time / 3600.0
    return Result(
        machine=machine.name,
        rms_c=math.sqrt(sq / n) if n else math.nan,
        max_dev_c=max_dev,
        overshoot_c=overshoot,
        settling_min=settling,
        starts_per_hour=starts / hours if hours else math.nan,
        mean_heat_w=energy / steady_time if steady_time else math.nan,
        on_fraction=on_time / steady_time if steady_time else math.nan,
        steady_hours=hours,
        seconds=time.perf_counter() - t0,
        mean_c=temp_sum / steady_time if steady_time else math.nan,
        below_dh=below,
        kwh=energy / 3.6e6,
        cost=None if curve is None else money,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0, help="simulated days (default 7)")
    parser.add_argument("--machine", choices=["duty", "cap", "both"], default="both")
    parser.add_argument("--step-s", type=float, default=5.0, help="loop period, simulated s")
    parser.add_argument("--quick", action="store_true", help="a coarser step (10 s), for tests")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=START.date(),
        help="the first simulated day, local midnight in London (YYYY-MM-DD)",
    )
    parser.add_argument(
        "--c-air", type=float, default=Room.c_air, help="the air node's capacity, J/K"
    )
    parser.add_argument(
        "--outdoor-mean", type=float, default=5.0, help="mean outside temperature, °C (±4)"
    )
    parser.add_argument(
        "--prices",
        choices=["agile"],
        default=None,
        help="also heat the week on a dynamic tariff, price-blind and price-aware",
    )
    parser.add_argument(
        "--band", type=float, default=1.0, help="price-aware comfort band, ± °C (default 1)"
    )
    parser.add_argument("--kp", type=float, default=None, help="PI gain, demand per °C")
    parser.add_argument("--ti-s", type=float, default=None, help="PI integral time, s")
    parser.add_argument("--band-s", type=float, default=None, help="duty-cycle band, s")
    parser.add_argument("--min-on-s", type=float, default=None, help="duty-cycle minimum on, s")
    parser.add_argument("--min-off-s", type=float, default=None, help="minimum off, s")
    parser.add_argument("--min-cycle-s", type=float, default=None, help="start to start, s")
    args = parser.parse_args()
    if args.days <= 0 or args.step_s <= 0:
        parser.error("--days and --step-s must be positive")
    start = datetime(args.start.year, args.start.month, args.start.day, tzinfo=TZ)
    if args.c_air <= 0:
        parser.error("--c-air must be positive")
    if not 0 <= args.band <= 3:
        parser.error("--band must be 0 to 3 °C")
    step_s = 10.0 if args.quick else args.step_s
    base = PiGains()
    gains = PiGains(
        kp=base.kp if args.kp is None else args.kp,
        ti_s=base.ti_s if args.ti_s is None else args.ti_s,
    )
    dbase = DutyLimits()
    duty = DutyLimits(
        min_on_s=dbase.min_on_s if args.min_on_s is None else args.min_on_s,
        min_off_s=dbase.min_off_s if args.min_off_s is None else args.min_off_s,
        band_s=dbase.band_s if args.band_s is None else args.band_s,
        min_cycle_s=dbase.min_cycle_s if args.min_cycle_s is None else args.min_cycle_s,
    )
    names = ["duty", "cap"] if args.machine == "both" else [args.machine]
    room = Room(c_air=args.c_air)
    lo, hi = args.outdoor_mean - 4.0, args.outdoor_mean + 4.0
    print(
        f"room: C air {room.c_air / 1e6:.2f} MJ/K, C mass {room.c_mass / 1e6:.1f} MJ/K, "
        f"loss at the setpoint {room.loss_w(SETPOINT_C, hi):.0f}–"
        f"{room.loss_w(SETPOINT_C + STEP_C, lo):.0f} W (outside {lo:g}–{hi:g} °C); "
        f"thermometer every 30 s, 30 s late, σ 0.05 °C, 0.1 °C steps"
    )
    print(
        f"controller: kp {gains.kp} /°C, Ti {gains.ti_s:.0f} s; duty cycle: on ≥ "
        f"{duty.min_on_s:.0f} s, off ≥ {duty.min_off_s:.0f} s, start to start ≥ "
        f"{duty.min_cycle_s:.0f} s, band {duty.band_s:.0f} s; "
        f"loop every {step_s:g} s "
        f"(simulated); {args.days:g} days from {start:%Y-%m-%d}; setpoint {SETPOINT_C} °C, "
        f"+{STEP_C} °C at 40 % of the run"
    )
    results = []
    for name in names:
        r = simulate(
            MACHINES[name],
            days=args.days,
            step_s=step_s,
            seed=args.seed,
            gains=gains,
            duty=duty,
            c_air=args.c_air,
            outdoor_mean_c=args.outdoor_mean,
            start=start,
        )
        results.append(r)
        f = r.figures()
        print(
            f"{name:5s}: rms {f['rms_c']} °C, max dev {f['max_dev_c']} °C, overshoot "
            f"{f['overshoot_c']} °C, settling {f['settling_min']} min, "
            f"{f['starts_per_hour']} starts/h, mean heat {f['mean_heat_w']} W, "
            f"on {f['on_fraction']:.0%} of {f['steady_hours']} h steady ({r.seconds:.1f} s)"
        )

    def worst(key: str) -> object:
        values = [r.figures()[key] for r in results]
        if any(v is None for v in values):
            return None
        return max(v for v in values if isinstance(v, int | float))

    summary: dict[str, object] = {
        key: worst(key)
        for key in ("rms_c", "max_dev_c", "overshoot_c", "settling_min", "starts_per_hour")
    }
    max_dev = summary["max_dev_c"]
    starts = summary["starts_per_hour"]
    summary["goal_met"] = (
        isinstance(max_dev, float)
        and isinstance(starts, float)
        and max_dev <= GOAL_DEV_C
        and starts <= GOAL_STARTS_PER_HOUR
    )
    summary["goal"] = {"max_dev_c": GOAL_DEV_C, "starts_per_hour": GOAL_STARTS_PER_HOUR}
    summary["days"] = args.days
    summary["step_s"] = step_s
    summary["machines"] = {r.machine: r.figures() for r in results}
    if args.prices is not None:
        curve = PriceCurve(start, args.days, args.seed)
        pence = sorted(float(s.price) * 100 for s in curve.slots)
        print(
            f"prices: {args.prices}-like, half-hourly, {pence[0]:.1f} to {pence[-1]:.1f} p/kWh "
            f"(median {pence[len(pence) // 2]:.1f}), {sum(p < 0 for p in pence)} half hours "
            f"below zero; price-aware band ±{args.band:g} °C; no setpoint step"
        )
        compared: dict[str, object] = {}
        for name in names:
            runs = {
                label: simulate(
                    MACHINES[name],
                    days=args.days,
                    step_s=step_s,
                    seed=args.seed,
                    gains=gains,
                    duty=duty,
                    c_air=args.c_air,
                    outdoor_mean_c=args.outdoor_mean,
                    start=start,
                    curve=curve,
                    band_c=band,
                    step_setpoint=False,
                )
                for label, band in (("blind", None), ("aware", args.band))
            }
            blind, aware = runs["blind"], runs["aware"]
            assert blind.cost is not None and aware.cost is not None
            saving = blind.cost - aware.cost
            pct = 100.0 * saving / blind.cost if blind.cost else math.nan
            compared[name] = {
                "blind": blind.comfort(),
                "aware": aware.comfort(),
                "saving": round(saving, 3),
                "saving_pct": round(pct, 1),
                "mean_c_diff": round(aware.mean_c - blind.mean_c, 3),
            }
            for label, r in runs.items():
                print(
                    f"{name:5s} {label}: £{r.cost:.2f} for {r.kwh:.1f} kWh, mean "
                    f"{r.mean_c:.2f} °C, {r.below_dh:.1f} °C·h below the setpoint, max dev "
                    f"{r.max_dev_c:.2f} °C, {r.starts_per_hour:.2f} starts/h ({r.seconds:.1f} s)"
                )
            print(f"{name:5s} saving: £{saving:.2f} ({pct:.1f} %)")
        summary["prices"] = {
            "curve": args.prices,
            "band_c": args.band,
            "steady_hours": results[0].steady_hours,
            "machines": compared,
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
