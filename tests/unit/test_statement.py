"""Monthly statements: days in the household's time zone, totals rounded once, the CSV text.

Hand calculations in the comments, in pence (p) and kWh; µp = micro-pence.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from heatshare.domain.heat_cost import EnergyRecord, UsualHeating
from heatshare.domain.readings import Provenance
from heatshare.domain.statement import monthly_statement, statement_csv
from heatshare.domain.tariffs import DynamicTariff, FlatTariff, PriceInterval

LONDON = ZoneInfo("Europe/London")
KWH = 3_600_000.0
GAS = UsualHeating.gas_boiler(Decimal("0.06"), Decimal("0.9"))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def march_records() -> list[EnergyRecord]:
    flat = FlatTariff(Decimal("0.245"))
    agile = DynamicTariff(
        (PriceInterval(utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), Decimal("0.20")),),
        fallback_per_kwh=Decimal("0.245"),
    )
    day1 = (utc(2026, 3, 1, 0), utc(2026, 3, 1, 2))
    day15 = (utc(2026, 3, 15, 12), utc(2026, 3, 15, 13))
    day29 = (utc(2026, 3, 29, 0), utc(2026, 3, 29, 1))
    # The tariff's costs are the hand figures: 2 kWh × 24.5 p = 49 p; 0.5 kWh × 24.5 p =
    # 12.25 p; 1.5 kWh × 20 p = 30 p.
    assert flat.cost_micro_minor(2 * KWH, *day1) == 49_000_000
    assert flat.cost_micro_minor(0.5 * KWH, *day15) == 12_250_000
    assert agile.cost_micro_minor(1.5 * KWH, *day29) == 30_000_000
    return [
        EnergyRecord(*day1, Provenance.PLUG, 2 * KWH, 49_000_000, 30_000_000),
        EnergyRecord(*day15, Provenance.ESTIMATE, 0.5 * KWH, 12_250_000, 2_500_000),
        EnergyRecord(*day29, Provenance.ENERGY_COUNTER, 1.5 * KWH, 30_000_000),
        # 23:30 UTC on 28 February is still February in London (GMT).
        EnergyRecord(utc(2026, 2, 28, 23, 30), utc(2026, 3, 1), Provenance.PLUG, KWH, 1),
        # 23:00 UTC on 31 March is 00:00 BST on 1 April: April's.
        EnergyRecord(utc(2026, 3, 31, 23), utc(2026, 4, 1), Provenance.PLUG, KWH, 1),
    ]


def test_march_totals_and_lines() -> None:
    s = monthly_statement(march_records(), 2026, 3, LONDON, currency="gbp", usual=GAS)
    assert (s.currency, len(s.lines)) == ("GBP", 31)
    t, f = s.total.totals, s.total.figures
    assert dict(t.energy_j_by_source) == {
        Provenance.PLUG: 2 * KWH,
        Provenance.ENERGY_COUNTER: 1.5 * KWH,
        Provenance.ESTIMATE: 0.5 * KWH,
    }
    # Cost 49 + 12.25 + 30 = 91.25 p → 91; earnings 30 + 2.5 = 32.5 p → 32 (half to even).
    assert (f.electricity_cost_minor, f.earnings_minor, f.net_cost_minor) == (91, 32, 59)
    # (91.25 − 32.5) p / 4 kWh = 14.6875 p/kWh.
    assert f.effective_micro_per_kwh == 14_687_500
    # Gas: 4 / 0.9 × 6 p = 26.67 p → 27; saving 27 − 59 = −32 p.
    assert (f.usual_cost_minor, f.saving_minor) == (27, -32)
    # CO₂: grid 4 × 0.207 kg = 828 g; gas 4 / 0.9 × 0.183 kg = 813.3 g → 813; avoided −15 g.
    assert (f.electricity_co2_g, f.usual_co2_g, f.co2_avoided_g) == (828, 813, -15)
    # The 23-hour day is a line of its own, 29 March.
    day29 = s.lines[28]
    assert day29.day is not None and day29.day.isoformat() == "2026-03-29"
    assert (day29.totals.start, day29.totals.end) == (utc(2026, 3, 29), utc(2026, 3, 29, 23))
    assert day29.figures.electricity_cost_minor == 30


def test_march_csv() -> None:
    text = statement_csv(
        monthly_statement(march_records(), 2026, 3, LONDON, currency="GBP", usual=GAS)
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "date",
        "kwh_plug",
        "kwh_energy_counter",
        "kwh_power_reading",
        "kwh_estimate",
        "kwh_total",
        "heat_kwh",
        "electricity_cost_GBP",
        "earnings_GBP",
        "net_cost_GBP",
        "effective_cost_per_kwh_heat_GBP",
        "usual_heating_cost_GBP",
        "saving_GBP",
        "co2_avoided_kg",
    ]
    assert len(rows) == 1 + 31 + 1
    lines = text.splitlines()
    # 1 March: 2 kWh at the plug, 49 p, 30 p earned, net 19 p, 19 / 2 = 9.5 p/kWh; gas 2 / 0.9 ×
    # 6 = 13.33 → 13 p, saving 13 − 19 = −6 p; CO₂ 2 × 0.207 = 414 g, gas 2 / 0.9 × 0.183 =
    # 406.67 → 407 g: −7 g.
    assert lines[1] == (
        "2026-03-01,2.000,0.000,0.000,0.000,2.000,2.000,0.49,0.30,0.19,0.0950,0.13,-0.06,-0.007"
    )
    # An idle day: zeros, and no cost per kWh of heat.
    assert (
        lines[2] == "2026-03-02,0.000,0.000,0.000,0.000,0.000,0.000,0.00,0.00,0.00,,0.00,0.00,0.000"
    )
    # 15 March: 0.5 kWh estimated; 12.25 → 12 p, 2.5 → 2 p, net 10 p; (12.25 − 2.5) / 0.5 =
    # 19.5 p/kWh; gas 0.5 / 0.9 × 6 = 3.33 → 3 p, saving −7 p; CO₂ 103.5 → 104 g (half to even)
    # against 0.5 / 0.9 × 183 = 101.67 → 102 g: −2 g.
    assert lines[15] == (
        "2026-03-15,0.000,0.000,0.000,0.500,0.500,0.500,0.12,0.02,0.10,0.1950,0.03,-0.07,-0.002"
    )
    # 14.6875 p/kWh is 0.146875 £/kWh, shown to a hundredth of a penny: 0.1469 (…75 → up).
    assert lines[-1] == (
        "total,2.000,1.500,0.000,0.500,4.000,4.000,0.91,0.32,0.59,0.1469,0.27,-0.32,-0.015"
    )


def test_totals_are_rounded_once_not_summed_from_lines() -> None:
    # Two days at 0.5 p each: each line rounds half to even to 0 p, the month is 1 p exactly.
    records = [
        EnergyRecord(utc(2026, 1, d), utc(2026, 1, d, 1), Provenance.PLUG, 0.05 * KWH, 500_000)
        for d in (5, 6)
    ]
    s = monthly_statement(records, 2026, 1, LONDON, currency="GBP")
    assert [line.figures.electricity_cost_minor for line in s.lines[4:6]] == [0, 0]
    assert s.total.figures.electricity_cost_minor == 1
    # 1 p for 0.1 kWh is 10 p/kWh. Without a usual heating its columns are empty, not zero.
    total = statement_csv(s).splitlines()[-1]
    assert total == "total,0.100,0.000,0.000,0.000,0.100,0.100,0.01,0.00,0.01,0.1000,,,"


def test_other_currencies_and_bad_months() -> None:
    # 1 kWh at ¥30 = ¥30 (no minor unit): the money columns have no decimals; the per-kWh
    # figure keeps two (hundredths of a yen).
    records = [EnergyRecord(utc(2026, 2, 1), utc(2026, 2, 1, 1), Provenance.PLUG, KWH, 30_000_000)]
    text = statement_csv(
        monthly_statement(records, 2026, 2, ZoneInfo("Asia/Tokyo"), currency="JPY")
    )
    assert text.splitlines()[0].endswith(
        "electricity_cost_JPY,earnings_JPY,net_cost_JPY,"
        "effective_cost_per_kwh_heat_JPY,usual_heating_cost_JPY,"
        "saving_JPY,co2_avoided_kg"
    )
    assert text.splitlines()[-1] == "total,1.000,0.000,0.000,0.000,1.000,1.000,30,0,30,30.00,,,"
    assert len(text.splitlines()) == 1 + 28 + 1
    with pytest.raises(ValueError, match="a month is 1 to 12, not 13"):
        monthly_statement([], 2026, 13, LONDON, currency="GBP")
