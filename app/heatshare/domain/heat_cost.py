"""The true cost of heat: Heatshare's heat beside what the householder's usual heating charges.

All the electricity a computer draws becomes heat in the room, so a period's heat is its
electricity. Its *effective cost* per kWh of heat is (electricity cost − earnings) / heat; the
usual heating (gas boiler, heat pump, electric heater, oil boiler) would have charged, for the same
heat, the fuel it needs (heat / efficiency, or / COP) at its price. The difference is the saving.
CO₂: the usual heating's emissions for that heat, the grid's for the electricity drawn, and the
difference (avoided; negative where the grid is dirtier than the usual heating).

Units: energy in joules in, kWh as exact :class:`~decimal.Decimal` out; money in, as from
:mod:`heatshare.domain.tariffs`, in integer micro-minor units; money out in integer minor units
(pennies), per-kWh figures in micro-minor units per kWh; prices are major units (pounds) per kWh
or per litre; mass in integer grams of CO₂e. Rounding is half to even, once per figure.

Periods (today, this month, this season) are local calendar spans passed to :func:`totals` as UTC
bounds from :func:`day_bounds`, :func:`month_bounds` and :func:`season_bounds`; a record counts
in the period in which it starts. Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType

from heatshare.domain.money import J_PER_KWH, MICRO, micro_to_minor
from heatshare.domain.readings import Provenance
from heatshare.domain.tariffs import local_to_utc

# Emission factors, kg CO₂e per kWh of fuel or electricity: the UK government's greenhouse gas
# conversion factors for company reporting (DESNZ, 2024, gross calorific value; electricity as
# generated), rounded to three places. Other countries' grids differ widely: they are settings.
GAS_KG_PER_KWH = Decimal("0.183")  # natural gas
OIL_KG_PER_KWH = Decimal("0.247")  # burning oil (kerosene, the usual heating oil)
GRID_KG_PER_KWH = Decimal("0.207")  # UK grid electricity
# Energy in a litre of kerosene (gross), as the Energy Saving Trust and suppliers quote it.
KEROSENE_KWH_PER_LITRE = Decimal("10.35")

NO_HEAT = "No heat was delivered in this period, so there is no cost per kWh of heat yet."
NO_USUAL = "The usual heating is not set, so there is nothing to compare with."


class HeatingKind(StrEnum):
    """The householder's usual heating."""

    GAS_BOILER = "gas_boiler"
    HEAT_PUMP = "heat_pump"
    ELECTRIC_HEATER = "electric_heater"
    OIL_BOILER = "oil_boiler"


@dataclass(frozen=True, slots=True)
class EmissionFactors:
    """kg CO₂e per kWh of gas, of heating oil and of grid electricity."""

    gas: Decimal = GAS_KG_PER_KWH
    oil: Decimal = OIL_KG_PER_KWH
    grid: Decimal = GRID_KG_PER_KWH

    def __post_init__(self) -> None:
        for name in ("gas", "oil", "grid"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"the {name} emission factor must be 0 or more kg CO₂e per kWh")


@dataclass(frozen=True, slots=True)
class UsualHeating:
    """What heats the home without Heatshare, and what its fuel costs.

    ``price`` is major units per unit of fuel, the unit holding ``unit_kwh`` kWh (1 for a price
    per kWh; 10.35 for kerosene priced per litre). ``efficiency`` is heat out per kWh of fuel in:
    a boiler's efficiency (0.85 for 85 %), a heat pump's COP, 1 for an electric heater.
    Build one with the class methods, which carry sensible defaults.
    """

    kind: HeatingKind
    price: Decimal
    efficiency: Decimal
    unit_kwh: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        if not self.price.is_finite() or self.price < 0:
            raise ValueError("the usual heating's price must be 0 or more")
        # A boiler above 1.1 is a percentage typed as a number (85 for 0.85).
        ceiling = Decimal(10) if self.kind is HeatingKind.HEAT_PUMP else Decimal("1.1")
        if not self.efficiency.is_finite() or not 0 < self.efficiency <= ceiling:
            what = (
                "coefficient of performance"
                if self.kind is HeatingKind.HEAT_PUMP
                else ("efficiency (0.85 for 85 %)")
            )
            raise ValueError(f"the usual heating's {what} must be above 0 and at most {ceiling}")
        if not self.unit_kwh.is_finite() or self.unit_kwh <= 0:
            raise ValueError("the energy in a unit of fuel must be above 0 kWh")

    @classmethod
    def gas_boiler(
        cls, price_per_kwh: Decimal, efficiency: Decimal = Decimal("0.85")
    ) -> UsualHeating:
        """A gas boiler: gas price per kWh and seasonal efficiency (a condensing boiler ≈ 0.85)."""
        return cls(HeatingKind.GAS_BOILER, price_per_kwh, efficiency)

    @classmethod
    def heat_pump(cls, electricity_per_kwh: Decimal, cop: Decimal = Decimal(3)) -> UsualHeating:
        """A heat pump: electricity price per kWh and seasonal COP (≈ 3 for air to water)."""
        return cls(HeatingKind.HEAT_PUMP, electricity_per_kwh, cop)

    @classmethod
    def electric_heater(cls, electricity_per_kwh: Decimal) -> UsualHeating:
        """A resistive heater: every kWh of electricity is a kWh of heat."""
        return cls(HeatingKind.ELECTRIC_HEATER, electricity_per_kwh, Decimal(1))

    @classmethod
    def oil_boiler(
        cls,
        price: Decimal,
        efficiency: Decimal = Decimal("0.85"),
        *,
        per_litre: bool = True,
        kwh_per_litre: Decimal = KEROSENE_KWH_PER_LITRE,
    ) -> UsualHeating:
        """An oil boiler: oil price per litre (or per kWh) and efficiency."""
        unit = kwh_per_litre if per_litre else Decimal(1)
        return cls(HeatingKind.OIL_BOILER, price, efficiency, unit)

    def fuel_kwh(self, heat_kwh: Fraction) -> Fraction:
        """kWh of fuel (or electricity) this heating burns (or draws) for ``heat_kwh`` of heat."""
        return heat_kwh / Fraction(self.efficiency)

    def cost_micro_minor(self, heat_kwh: Fraction, minor_per_major: int = 100) -> Fraction:
        """What ``heat_kwh`` of heat costs this way, in micro-minor units (exact)."""
        units = self.fuel_kwh(heat_kwh) / Fraction(self.unit_kwh)
        return units * Fraction(self.price) * minor_per_major * MICRO

    def kg_per_fuel_kwh(self, factors: EmissionFactors) -> Decimal:
        if self.kind is HeatingKind.GAS_BOILER:
            return factors.gas
        if self.kind is HeatingKind.OIL_BOILER:
            return factors.oil
        return factors.grid


@dataclass(frozen=True, slots=True)
class EnergyRecord:
    """One interval's electricity, what it cost and earned, and the heat it gave (per record).

    ``start``/``end`` aware; ``energy_j`` electricity in joules, measured by ``source``;
    ``cost_micro_minor`` and ``earnings_micro_minor`` in micro-minor units; ``heat_j`` the heat
    delivered, the electricity itself unless given (a machine whose heat is not wanted, say).
    """

    start: datetime
    end: datetime
    source: Provenance
    energy_j: float
    cost_micro_minor: int
    earnings_micro_minor: int = 0
    heat_j: float | None = None

    def __post_init__(self) -> None:
        if self.start.utcoffset() is None or self.end.utcoffset() is None:
            raise ValueError("a record's start and end need their time zone")
        # In UTC: two datetimes of one zone compare by their wall clocks (fold ignored).
        if self.end.astimezone(UTC) < self.start.astimezone(UTC):
            raise ValueError("a record must not end before it starts")
        for name in ("energy_j", "heat_j"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError(f"a record's {name} must be a finite number of joules >= 0")

    @property
    def heat(self) -> float:
        return self.energy_j if self.heat_j is None else self.heat_j


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """Sums over ``[start, end)`` (UTC): joules by source, heat, cost and earnings (micro-minor)."""

    start: datetime
    end: datetime
    energy_j_by_source: Mapping[Provenance, float] = field(
        default_factory=lambda: MappingProxyType({})
    )
    heat_j: float = 0.0
    cost_micro_minor: int = 0
    earnings_micro_minor: int = 0

    @property
    def energy_j(self) -> float:
        return math.fsum(self.energy_j_by_source.values())


def totals(records: Iterable[EnergyRecord], start: datetime, end: datetime) -> PeriodTotals:
    """The records that start in ``[start, end)``, summed (floats with :func:`math.fsum`)."""
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    chosen = [r for r in records if s <= r.start.astimezone(UTC) < e]
    by_source = {
        p: math.fsum(r.energy_j for r in chosen if r.source is p)
        for p in Provenance
        if any(r.source is p for r in chosen)
    }
    return PeriodTotals(
        s,
        e,
        MappingProxyType(by_source),
        math.fsum(r.heat for r in chosen),
        sum(r.cost_micro_minor for r in chosen),
        sum(r.earnings_micro_minor for r in chosen),
    )


@dataclass(frozen=True, slots=True)
class HeatCost:
    """A period's figures, in the units of the module docstring.

    ``effective_micro_per_kwh`` is None, ``effective_note`` saying why, when there was no heat;
    the ``usual_*``, ``saving_minor`` and ``co2_avoided_g`` are None when the usual heating is not
    set (``usual_note`` says so). ``net_cost_minor`` is ``electricity_cost_minor −
    earnings_minor`` as shown, so the figures on a screen add up.
    """

    heat_kwh: Decimal
    electricity_cost_minor: int
    earnings_minor: int
    net_cost_minor: int
    effective_micro_per_kwh: int | None
    effective_note: str | None
    usual_cost_minor: int | None
    usual_micro_per_kwh: int | None
    saving_minor: int | None
    electricity_co2_g: int
    usual_co2_g: int | None
    co2_avoided_g: int | None
    usual_note: str | None


def heat_cost(
    period: PeriodTotals,
    usual: UsualHeating | None,
    factors: EmissionFactors | None = None,
    minor_per_major: int = 100,
) -> HeatCost:
    """Effective cost of a period's heat beside the usual heating's, the saving and CO₂."""
    factors = factors or EmissionFactors()
    heat = Fraction(period.heat_j) / J_PER_KWH  # kWh, exact
    electricity = Fraction(period.energy_j) / J_PER_KWH
    cost_minor = micro_to_minor(period.cost_micro_minor)
    earnings_minor = micro_to_minor(period.earnings_micro_minor)
    net_micro = period.cost_micro_minor - period.earnings_micro_minor
    effective = round(Fraction(net_micro) / heat) if heat > 0 else None
    electricity_co2 = round(electricity * Fraction(factors.grid) * 1000)
    usual_cost = usual_per_kwh = saving = usual_co2 = avoided = None
    if usual is not None:
        usual_cost = round(usual.cost_micro_minor(heat, minor_per_major) / MICRO)
        usual_per_kwh = round(usual.cost_micro_minor(Fraction(1), minor_per_major))
        saving = usual_cost - (cost_minor - earnings_minor)
        usual_co2 = round(usual.fuel_kwh(heat) * Fraction(usual.kg_per_fuel_kwh(factors)) * 1000)
        avoided = usual_co2 - electricity_co2
    return HeatCost(
        heat_kwh=_kwh_decimal(period.heat_j),
        electricity_cost_minor=cost_minor,
        earnings_minor=earnings_minor,
        net_cost_minor=cost_minor - earnings_minor,
        effective_micro_per_kwh=effective,
        effective_note=None if effective is not None else NO_HEAT,
        usual_cost_minor=usual_cost,
        usual_micro_per_kwh=usual_per_kwh,
        saving_minor=saving,
        electricity_co2_g=electricity_co2,
        usual_co2_g=usual_co2,
        co2_avoided_g=avoided,
        usual_note=None if usual is not None else NO_USUAL,
    )


# -- periods --------------------------------------------------------------------------------------


def day_bounds(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """The local calendar day holding ``now``, as UTC bounds ``[start, end)`` (23 to 25 hours)."""
    today = _local_date(now, tz)
    return _midnight(today, tz), _midnight(today + timedelta(days=1), tz)


def month_bounds(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """The local calendar month holding ``now``, as UTC bounds ``[start, end)``."""
    today = _local_date(now, tz)
    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first, tz), _midnight(following, tz)


def season_bounds(
    now: datetime, tz: tzinfo, start: tuple[int, int], end: tuple[int, int]
) -> tuple[datetime, datetime]:
    """This heating season, as UTC bounds ``[start, end)``: the latest one begun by ``now``.

    ``start`` and ``end`` are (month, day), both days inclusive; a season may run over the new
    year (October to April). Outside the season, the one that ended last. 29 February is the
    28th in other years.
    """
    today = _local_date(now, tz)
    begin = _on(today.year, start)
    if begin > today:
        begin = _on(today.year - 1, start)
    finish = _on(begin.year, end)
    if finish < begin:
        finish = _on(begin.year + 1, end)
    return _midnight(begin, tz), _midnight(finish + timedelta(days=1), tz)


def _local_date(now: datetime, tz: tzinfo) -> date:
    if now.utcoffset() is None:
        raise ValueError("a period needs an aware datetime (with its time zone)")
    return now.astimezone(tz).date()


def _midnight(day: date, tz: tzinfo) -> datetime:
    return local_to_utc(datetime(day.year, day.month, day.day), tz)  # noqa: DTZ001 - wall time


def _on(year: int, month_day: tuple[int, int]) -> date:
    month, day = month_day
    if (month, day) == (2, 29) and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        day = 28
    return date(year, month, day)


def _kwh_decimal(joules: float) -> Decimal:
    """Joules as kWh to the watt-hour (3 places), half to even."""
    return Decimal(round(Fraction(joules) / 3600)) / 1000
