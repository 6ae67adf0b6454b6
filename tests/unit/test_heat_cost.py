"""The cost of heat: effective cost per kWh, the usual heating's cost, the saving, CO₂, periods.

Hand calculations in the comments, in pence (p) and kWh; µp = micro-pence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from heatshare.domain.heat_cost import (
    NO_HEAT,
    NO_USUAL,
    EmissionFactors,
    EnergyRecord,
    HeatingKind,
    PeriodTotals,
    UsualHeating,
    day_bounds,
    heat_cost,
    month_bounds,
    season_bounds,
    totals,
)
from heatshare.domain.readings import Provenance

LONDON = ZoneInfo("Europe/London")
KWH = 3_600_000.0


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def london(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=LONDON)


# A day: 10 kWh of heat, the electricity 245 p (10 kWh × 24.5 p), earnings 150 p.
DAY = PeriodTotals(
    utc(2026, 1, 14),
    utc(2026, 1, 15),
    {Provenance.PLUG: 10 * KWH},
    heat_j=10 * KWH,
    cost_micro_minor=245_000_000,
    earnings_micro_minor=150_000_000,
)


def test_effective_cost_and_a_gas_boiler() -> None:
    usual = UsualHeating.gas_boiler(Decimal("0.0624"), Decimal("0.85"))
    got = heat_cost(DAY, usual)
    assert got.heat_kwh == Decimal("10.000")
    assert (got.electricity_cost_minor, got.earnings_minor, got.net_cost_minor) == (245, 150, 95)
    # (245 − 150) p / 10 kWh = 9.5 p/kWh = 9 500 000 µp/kWh.
    assert (got.effective_micro_per_kwh, got.effective_note) == (9_500_000, None)
    # Gas for 10 kWh of heat: 10 / 0.85 = 11.7647… kWh × 6.24 p = 73.41… p → 73 p.
    assert got.usual_cost_minor == 73
    # Per kWh of heat: 6.24 / 0.85 = 7.341176470… p = 7 341 176.47 µp → 7 341 176.
    assert got.usual_micro_per_kwh == 7_341_176
    # Saving 73 − 95 = −22 p: on these figures gas was cheaper, and the figure says so.
    assert got.saving_minor == -22
    # CO₂: electricity 10 kWh × 0.207 kg = 2070 g; gas 11.7647… kWh × 0.183 kg = 2152.94 g → 2153.
    assert (got.electricity_co2_g, got.usual_co2_g, got.co2_avoided_g) == (2070, 2153, 83)


def test_a_heat_pump_an_electric_heater_and_oil() -> None:
    pump = heat_cost(DAY, UsualHeating.heat_pump(Decimal("0.245"), cop=Decimal(3)))
    # 10 / 3 kWh of electricity × 24.5 p = 81.67 p → 82 p; saving 82 − 95 = −13 p.
    assert (pump.usual_cost_minor, pump.saving_minor) == (82, -13)
    # 24.5 / 3 = 8.1666… p/kWh → 8 166 667 µp/kWh.
    assert pump.usual_micro_per_kwh == 8_166_667
    # CO₂ 10 / 3 × 0.207 kg = 690 g against the computer's 2070 g: 1380 g more, not avoided.
    assert (pump.usual_co2_g, pump.co2_avoided_g) == (690, -1380)

    heater = heat_cost(DAY, UsualHeating.electric_heater(Decimal("0.245")))
    # The same electricity at the same price: 245 p; the saving is the earnings, 150 p.
    assert (heater.usual_cost_minor, heater.saving_minor, heater.co2_avoided_g) == (245, 150, 0)

    oil = heat_cost(DAY, UsualHeating.oil_boiler(Decimal("0.70"), Decimal("0.85")))
    # 10 / 0.85 kWh of kerosene / 10.35 kWh a litre = 1.1367 l × 70 p = 700 / 8.7975
    # = 79.568 p → 80 p; CO₂ 11.7647 kWh × 0.247 kg = 2905.88 g → 2906.
    assert (oil.usual_cost_minor, oil.saving_minor) == (80, -15)
    assert (oil.usual_co2_g, oil.co2_avoided_g) == (2906, 836)
    per_kwh = heat_cost(DAY, UsualHeating.oil_boiler(Decimal("0.07"), per_litre=False))
    # 10 / 0.85 × 7 p = 82.35 p → 82 p.
    assert per_kwh.usual_cost_minor == 82


def test_emission_factors_are_settings() -> None:
    got = heat_cost(
        DAY,
        UsualHeating.gas_boiler(Decimal("0.06"), Decimal("0.9")),
        EmissionFactors(gas=Decimal("0.2"), grid=Decimal("0.05")),
    )
    # Grid 10 × 0.05 = 500 g; gas 10 / 0.9 × 0.2 = 2222.2 g → 2222; avoided 1722 g.
    assert (got.electricity_co2_g, got.usual_co2_g, got.co2_avoided_g) == (500, 2222, 1722)
    with pytest.raises(ValueError, match="grid emission factor"):
        EmissionFactors(grid=Decimal(-1))


def test_zero_heat_has_no_cost_per_kwh_and_says_why() -> None:
    idle = PeriodTotals(utc(2026, 1, 14), utc(2026, 1, 15))
    got = heat_cost(idle, UsualHeating.gas_boiler(Decimal("0.06")))
    assert (got.effective_micro_per_kwh, got.effective_note) == (None, NO_HEAT)
    assert (got.heat_kwh, got.usual_cost_minor, got.saving_minor, got.co2_avoided_g) == (
        Decimal(0),
        0,
        0,
        0,
    )
    # No heat but a payment for a standing job (earnings without energy): still no division.
    paid = PeriodTotals(utc(2026, 1, 14), utc(2026, 1, 15), earnings_micro_minor=5_000_000)
    got = heat_cost(paid, None)
    assert (got.net_cost_minor, got.effective_micro_per_kwh) == (-5, None)
    assert (got.usual_cost_minor, got.saving_minor, got.usual_note) == (None, None, NO_USUAL)


def test_negative_prices_and_earnings_above_cost() -> None:
    # 4 kWh at −2 p/kWh (agile below zero) = −8 p, earnings 12 p: net −20 p for 4 kWh of heat,
    # −5 p/kWh: the householder was paid 5 p for every kWh of heat.
    period = PeriodTotals(
        utc(2026, 4, 5),
        utc(2026, 4, 6),
        {Provenance.ENERGY_COUNTER: 4 * KWH},
        heat_j=4 * KWH,
        cost_micro_minor=-8_000_000,
        earnings_micro_minor=12_000_000,
    )
    got = heat_cost(period, UsualHeating.electric_heater(Decimal("0.245")))
    assert (got.net_cost_minor, got.effective_micro_per_kwh) == (-20, -5_000_000)
    # The heater: 4 × 24.5 = 98 p; saving 98 − (−20) = 118 p.
    assert got.saving_minor == 118


def test_rounding_happens_once_per_figure() -> None:
    # 1 kWh; cost 24 500 001 µp (24.500001 p → 25 p), earnings 24 499 999 µp (24.499999 → 24 p):
    # the shown net is 25 − 24 = 1 p so the figures add up; the per-kWh figure uses the exact
    # 2 µp.
    period = PeriodTotals(
        utc(2026, 1, 1), utc(2026, 1, 2), {Provenance.PLUG: KWH}, KWH, 24_500_001, 24_499_999
    )
    got = heat_cost(period, None)
    assert (got.electricity_cost_minor, got.earnings_minor, got.net_cost_minor) == (25, 24, 1)
    assert got.effective_micro_per_kwh == 2


def test_bad_usual_heating_is_refused() -> None:
    with pytest.raises(ValueError, match=r"efficiency \(0.85 for 85 %\) must be above 0"):
        UsualHeating.gas_boiler(Decimal("0.06"), Decimal(85))
    with pytest.raises(ValueError, match="coefficient of performance"):
        UsualHeating.heat_pump(Decimal("0.25"), Decimal(0))
    with pytest.raises(ValueError, match="price must be 0 or more"):
        UsualHeating(HeatingKind.GAS_BOILER, Decimal("-0.01"), Decimal("0.9"))


# -- periods and records --------------------------------------------------------------------------


def test_days_and_months_across_the_clock_changes() -> None:
    assert day_bounds(utc(2026, 3, 29, 12), LONDON) == (utc(2026, 3, 29), utc(2026, 3, 29, 23))
    assert day_bounds(utc(2026, 10, 25, 12), LONDON) == (utc(2026, 10, 24, 23), utc(2026, 10, 26))
    # 23:30 UTC on 28 June is 00:30 BST on the 29th.
    assert day_bounds(utc(2026, 6, 28, 23, 30), LONDON) == (
        utc(2026, 6, 28, 23),
        utc(2026, 6, 29, 23),
    )
    # March: 1 March 00:00 GMT to 1 April 00:00 BST (31 March 23:00 UTC), 743 hours.
    start, end = month_bounds(utc(2026, 3, 15), LONDON)
    assert (start, end) == (utc(2026, 3, 1), utc(2026, 3, 31, 23))
    assert end - start == timedelta(hours=31 * 24 - 1)
    assert month_bounds(utc(2026, 12, 31, 23, 59), LONDON) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_a_day_whose_midnight_is_skipped() -> None:
    # Santiago moves its clocks from 00:00 to 01:00 on 6 September 2026: the day begins at the
    # jump, 04:00 UTC (00:00 at UTC−4), and lasts 23 hours.
    santiago = ZoneInfo("America/Santiago")
    start, end = day_bounds(utc(2026, 9, 6, 12), santiago)
    assert (start, end) == (utc(2026, 9, 6, 4), utc(2026, 9, 7, 3))


def test_season_bounds() -> None:
    october_to_april = ((10, 1), (4, 30))
    # In January the season began on 1 October 2025 (00:00 BST = 30 Sep 23:00 UTC) and ends
    # after 30 April 2026 (1 May 00:00 BST = 30 April 23:00 UTC).
    assert season_bounds(utc(2026, 1, 15), LONDON, *october_to_april) == (
        utc(2025, 9, 30, 23),
        utc(2026, 4, 30, 23),
    )
    # In June (out of season) "this season" is the one that ended.
    assert season_bounds(utc(2026, 6, 15), LONDON, *october_to_april)[0] == utc(2025, 9, 30, 23)
    # From 1 October 2026, local time, the new one.
    assert season_bounds(utc(2026, 9, 30, 23), LONDON, *october_to_april)[0] == utc(2026, 9, 30, 23)
    # A season within one year, ending on 29 February in a year without one: the 28th.
    assert season_bounds(utc(2027, 2, 10), UTC, (1, 1), (2, 29)) == (
        utc(2027, 1, 1),
        utc(2027, 3, 1),
    )


def test_totals_count_records_by_start_and_source() -> None:
    day = day_bounds(utc(2026, 3, 29, 12), LONDON)
    records = [
        # Starts at 23:59:30 on the 28th: yesterday's, though it ends today.
        EnergyRecord(utc(2026, 3, 28, 23, 59, 30), utc(2026, 3, 29), Provenance.PLUG, 30.0, 2),
        EnergyRecord(utc(2026, 3, 29), utc(2026, 3, 29, 1), Provenance.PLUG, 0.5 * KWH, 100, 40),
        EnergyRecord(
            utc(2026, 3, 29, 1), utc(2026, 3, 29, 2), Provenance.ENERGY_COUNTER, 0.25 * KWH, 60
        ),
        EnergyRecord(
            utc(2026, 3, 29, 22), utc(2026, 3, 29, 23), Provenance.ESTIMATE, 0.1 * KWH, 30, 5, 0.0
        ),
        # 23:00 UTC is midnight BST: tomorrow's.
        EnergyRecord(utc(2026, 3, 29, 23), utc(2026, 3, 30), Provenance.PLUG, KWH, 999),
    ]
    t = totals(records, *day)
    assert dict(t.energy_j_by_source) == {
        Provenance.PLUG: 0.5 * KWH,
        Provenance.ENERGY_COUNTER: 0.25 * KWH,
        Provenance.ESTIMATE: 0.1 * KWH,
    }
    assert t.energy_j == 0.85 * KWH
    # The estimate's machine gave no heat to the room (heat_j = 0): 0.75 kWh of heat.
    assert t.heat_j == 0.75 * KWH
    assert (t.cost_micro_minor, t.earnings_micro_minor) == (190, 45)
    with pytest.raises(ValueError, match="energy_j must be a finite number"):
        EnergyRecord(utc(2026, 1, 1), utc(2026, 1, 1, 1), Provenance.PLUG, float("nan"), 0)


def test_a_record_must_not_end_before_it_starts() -> None:
    # 01:45 BST (00:45 UTC) to 01:15 GMT (01:15 UTC) on 25 October: the wall clock goes back,
    # the record is half an hour long and is accepted.
    start = datetime(2026, 10, 25, 1, 45, tzinfo=LONDON)
    end = datetime(2026, 10, 25, 1, 15, tzinfo=LONDON, fold=1)
    EnergyRecord(start, end, Provenance.PLUG, KWH, 0)
    with pytest.raises(ValueError, match="must not end before it starts"):
        EnergyRecord(end, start, Provenance.PLUG, KWH, 0)
