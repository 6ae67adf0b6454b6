"""Money: exact decimal costs in micro-minor units, rounding half to even, display, local days."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from heatshare.domain.money import (
    cost_micro_minor,
    format_money,
    local_day,
    micro_to_minor,
    minor_per_major,
)


def test_one_kwh_costs_the_tariff() -> None:
    # 3.6 MJ = 1 kWh; at £0.245/kWh that is 24.5 p = 24 500 000 micro-pence.
    assert cost_micro_minor(3_600_000.0, Decimal("0.245")) == 24_500_000


def test_one_second_at_100_w() -> None:
    # 100 J × 0.245 £/kWh × 100 p/£ × 10⁶ µp/p ÷ 3 600 000 J/kWh = 2450/3.6 = 680.55… µp → 681.
    assert cost_micro_minor(100.0, Decimal("0.245")) == 681


@pytest.mark.parametrize(
    ("energy_j", "micro"),
    [
        # At 0.00036 £/kWh one joule costs 0.00036 × 100 × 10⁶ ÷ 3.6 × 10⁶ = 0.01 µp exactly,
        # so these land on exact halves.
        (50.0, 0),  # 0.5 → 0 (even)
        (150.0, 2),  # 1.5 → 2
        (250.0, 2),  # 2.5 → 2
        (350.0, 4),  # 3.5 → 4
        (251.0, 3),  # 2.51 → 3
        (249.0, 2),  # 2.49 → 2
    ],
)
def test_rounds_half_to_even(energy_j: float, micro: int) -> None:
    assert cost_micro_minor(energy_j, Decimal("0.00036")) == micro


def test_the_float_is_taken_at_its_exact_value() -> None:
    # 0.1 J at 0.18 £/kWh would be exactly 0.5 µp, but the float 0.1 is
    # 0.1000000000000000055511151231257827…, a hair above: it rounds up, not to even.
    assert Decimal(0.1) > Decimal("0.1")  # noqa: RUF032  (the float is the point here)
    assert cost_micro_minor(0.1, Decimal("0.18")) == 1
    assert cost_micro_minor(0.5, Decimal("0.18")) == 2  # 0.5 is exact in binary: 2.5 → 2


def test_other_minor_units() -> None:
    # 1 kWh at ¥30/kWh is ¥30, and the yen has no minor unit.
    assert minor_per_major("JPY") == 1
    assert cost_micro_minor(3_600_000.0, Decimal(30), minor_per_major("JPY")) == 30_000_000
    # 1 kWh at 0.012 KWD/kWh is 12 fils.
    assert minor_per_major("KWD") == 1000
    assert cost_micro_minor(3_600_000.0, Decimal("0.012"), 1000) == 12_000_000
    assert minor_per_major("gbp") == 100


def test_large_amounts_stay_exact() -> None:
    # A year at 1 kW: 31 536 000 kJ = 8760 kWh at £0.24567 = £2152.0692 = 215 206.92 p.
    energy = 1000.0 * 365 * 24 * 3600
    assert cost_micro_minor(energy, Decimal("0.24567")) == 215_206_920_000


def test_zero_energy_or_price_costs_nothing() -> None:
    assert cost_micro_minor(0.0, Decimal("0.245")) == 0
    assert cost_micro_minor(1e6, Decimal(0)) == 0


@pytest.mark.parametrize("energy", [-1.0, float("nan"), float("inf")])
def test_rejects_impossible_energy(energy: float) -> None:
    with pytest.raises(ValueError, match="energy"):
        cost_micro_minor(energy, Decimal("0.245"))


@pytest.mark.parametrize("price", [Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_rejects_impossible_price(price: Decimal) -> None:
    with pytest.raises(ValueError, match="price"):
        cost_micro_minor(1.0, price)


def test_tick_by_tick_sums_stay_within_half_a_micro_unit_per_tick() -> None:
    ticks = [(80.0 + (k % 7) * 13.3) for k in range(3600)]  # an hour of 1 s ticks
    price = Decimal("0.245")
    summed = sum(cost_micro_minor(e, price) for e in ticks)
    whole = cost_micro_minor(sum(ticks), price)
    assert abs(summed - whole) <= len(ticks) / 2


@pytest.mark.parametrize(
    ("micro", "minor"),
    [
        (0, 0),
        (499_999, 0),
        (500_000, 0),  # half → even 0
        (500_001, 1),
        (1_500_000, 2),  # half → even 2
        (2_500_000, 2),
        (2_500_001, 3),
        (24_500_000, 24),
        (-1_500_000, -2),
        (-2_500_000, -2),
        (-499_999, 0),
    ],
)
def test_micro_to_minor_rounds_half_to_even(micro: int, minor: int) -> None:
    assert micro_to_minor(micro) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (42, "GBP", "£0.42"),
        (105, "EUR", "€1.05"),
        (210, "USD", "USD 2.10"),
        (0, "GBP", "£0.00"),
        (5, "gbp", "£0.05"),
        (-5, "GBP", "-£0.05"),
        (123_456_789, "GBP", "£1,234,567.89"),
        (1500, "JPY", "¥1,500"),
        (12_345, "KWD", "KWD 12.345"),
        (199, "CHF", "CHF 1.99"),
    ],
)
def test_format_money(minor: int, currency: str, text: str) -> None:
    assert format_money(minor, currency) == text


def _ts(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("ts", "offset", "day"),
    [
        (_ts(2026, 11, 27, 12, 0), 0, "2026-11-27"),
        (_ts(2026, 11, 27, 23, 30), 3600, "2026-11-28"),  # CET: already tomorrow
        (_ts(2026, 11, 28, 3, 0), -5 * 3600, "2026-11-27"),  # New York: still yesterday
        (_ts(2026, 11, 27, 0, 0), 0, "2026-11-27"),  # midnight belongs to the new day
        (_ts(2026, 11, 26, 23, 59, 59), 0, "2026-11-26"),
        (_ts(2026, 11, 27, 18, 45), 5 * 3600 + 1800, "2026-11-28"),  # India, +05:30
    ],
)
def test_local_day(ts: float, offset: int, day: str) -> None:
    assert local_day(ts, offset) == day
