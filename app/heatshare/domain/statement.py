"""A monthly statement: a line per local day and the month's totals, and its CSV text.

Built from per-interval :class:`~heatshare.domain.heat_cost.EnergyRecord` s: electricity by the
source that measured it, its cost, the earnings and the heat. Each line and the total are
:class:`~heatshare.domain.heat_cost.HeatCost` figures of their own span, each rounded once from
exact sums, so the total is the month's own figure (the one the dashboard shows) and may differ by
a penny from the sum of rounded lines, as on an energy bill. A record counts on the day (and in
the month) in which it starts, in the household's time zone.

Pure: the CSV is returned as text; writing it (and the PDF) is the app's business.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from fractions import Fraction

from heatshare.domain.heat_cost import (
    EmissionFactors,
    EnergyRecord,
    HeatCost,
    PeriodTotals,
    UsualHeating,
    heat_cost,
    month_bounds,
    totals,
)
from heatshare.domain.money import MICRO, minor_per_major
from heatshare.domain.readings import Provenance
from heatshare.domain.tariffs import local_to_utc


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One local day (or, for :attr:`Statement.total`, the month): sums and figures."""

    day: date | None  # None on the total line
    totals: PeriodTotals
    figures: HeatCost


@dataclass(frozen=True, slots=True)
class Statement:
    """A month's statement; money in minor units of ``currency``."""

    year: int
    month: int
    currency: str
    usual: UsualHeating | None
    lines: tuple[StatementLine, ...]
    total: StatementLine


def monthly_statement(
    records: Iterable[EnergyRecord],
    year: int,
    month: int,
    tz: tzinfo,
    *,
    currency: str,
    usual: UsualHeating | None = None,
    factors: EmissionFactors | None = None,
) -> Statement:
    """The statement of local month ``year``-``month`` in zone ``tz``: every day, even idle ones."""
    if not 1 <= month <= 12:
        raise ValueError(f"a month is 1 to 12, not {month}")
    rows = list(records)
    per_major = minor_per_major(currency)
    first = date(year, month, 1)
    start, end = month_bounds(_midnight(first, tz), tz)

    lines = []
    day = first
    while day.month == month:
        span = totals(rows, _midnight(day, tz), _midnight(day + timedelta(days=1), tz))
        lines.append(StatementLine(day, span, heat_cost(span, usual, factors, per_major)))
        day += timedelta(days=1)
    whole = totals(rows, start, end)
    total = StatementLine(None, whole, heat_cost(whole, usual, factors, per_major))
    return Statement(year, month, currency.upper(), usual, tuple(lines), total)


def statement_csv(statement: Statement) -> str:
    """The statement as CSV text: a header, a row per day, then a ``total`` row.

    kWh to three places, money in major units (``2.45``) with the currency in the column names,
    effective costs per kWh of heat to a hundredth of a minor unit, CO₂ in kg to the gram. A
    figure that does not exist (no heat: no cost per kWh; no usual heating set) is left empty.
    """
    cur = statement.currency
    per_major = minor_per_major(cur)
    header = [
        "date",
        *(f"kwh_{p.value}" for p in Provenance),
        "kwh_total",
        "heat_kwh",
        f"electricity_cost_{cur}",
        f"earnings_{cur}",
        f"net_cost_{cur}",
        f"effective_cost_per_kwh_heat_{cur}",
        f"usual_heating_cost_{cur}",
        f"saving_{cur}",
        "co2_avoided_kg",
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for line in (*statement.lines, statement.total):
        t, f = line.totals, line.figures
        writer.writerow(
            [
                "total" if line.day is None else line.day.isoformat(),
                *(_kwh(t.energy_j_by_source.get(p, 0.0)) for p in Provenance),
                _kwh(t.energy_j),
                _kwh(t.heat_j),
                _money(f.electricity_cost_minor, per_major),
                _money(f.earnings_minor, per_major),
                _money(f.net_cost_minor, per_major),
                _per_kwh(f.effective_micro_per_kwh, per_major),
                _money(f.usual_cost_minor, per_major),
                _money(f.saving_minor, per_major),
                "" if f.co2_avoided_g is None else f"{Decimal(f.co2_avoided_g) / 1000:.3f}",
            ]
        )
    return out.getvalue()


def _midnight(day: date, tz: tzinfo) -> datetime:
    return local_to_utc(datetime(day.year, day.month, day.day), tz)  # noqa: DTZ001 - wall time


def _kwh(joules: float) -> str:
    return f"{Decimal(round(Fraction(joules) / 3600)) / 1000:.3f}"


def _money(minor: int | None, per_major: int) -> str:
    if minor is None:
        return ""
    digits = len(str(per_major)) - 1
    return f"{Decimal(minor) / per_major:.{digits}f}"


def _per_kwh(micro: int | None, per_major: int) -> str:
    if micro is None:
        return ""
    digits = len(str(per_major)) - 1 + 2  # hundredths of a minor unit
    value = Decimal(round(Fraction(micro, MICRO // 100))) / 100 / per_major
    return f"{value:.{digits}f}"
