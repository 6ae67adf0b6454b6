"""Tariffs: prices at instants, exact costs split across price changes, clock changes, price lists.

Every expected cost is a hand calculation in the comments: pounds per kWh × kWh = pounds, × 100
pence per pound × 10⁶ micro-pence per penny.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from heatshare.domain import money
from heatshare.domain.tariffs import (
    OPEN_END,
    DynamicTariff,
    FlatTariff,
    Price,
    PriceInterval,
    PriceListError,
    PriceSpan,
    PriceUnit,
    TimeOfUseTariff,
    TouPeriod,
    parse_price_csv,
    parse_price_json,
    rank_slots,
    standing_charge_micro_minor,
)

LONDON = ZoneInfo("Europe/London")
KWH = 3_600_000.0  # joules
EVERY_DAY = frozenset(range(7))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def london(y: int, mo: int, d: int, h: int = 0, mi: int = 0, *, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=LONDON, fold=fold)


# -- flat -----------------------------------------------------------------------------------------


def test_flat_one_kwh_and_standing_charge_kept_apart() -> None:
    t = FlatTariff(Decimal("0.245"), standing_charge_per_day=Decimal("0.6012"))
    # 1 kWh × £0.245 = 24.5 p = 24 500 000 µp; the standing charge does not enter it.
    assert t.cost_micro_minor(KWH, utc(2026, 1, 1), utc(2026, 1, 1, 1)) == 24_500_000
    assert t.price_at(utc(2026, 1, 1)) == Price(Decimal("0.245"))
    # 30 days × £0.6012 = £18.036 = 1803.6 p = 1 803 600 000 µp.
    assert standing_charge_micro_minor(t, 30) == 1_803_600_000


@pytest.mark.parametrize("energy_j", [0.0, 0.1, 0.5, 100.0, 250.0, 1234.5678, 3_600_000.0, 7e9])
@pytest.mark.parametrize("price", ["0.245", "0.00036", "0.18", "0.1999"])
def test_flat_agrees_with_money(energy_j: float, price: str) -> None:
    # The same exact arithmetic and the same single rounding as money.cost_micro_minor.
    t = FlatTariff(Decimal(price))
    got = t.cost_micro_minor(energy_j, utc(2026, 5, 1), utc(2026, 5, 1, 0, 0, 1))
    assert got == money.cost_micro_minor(energy_j, Decimal(price))


def test_rounds_half_to_even_once() -> None:
    t = FlatTariff(Decimal("0.00036"))
    # 1 J at £0.00036/kWh = 0.00036 × 10⁸ ÷ 3.6 × 10⁶ = 0.01 µp: 250 J = 2.5 µp → 2, 350 J → 4.
    assert t.cost_micro_minor(250.0, utc(2026, 1, 1), utc(2026, 1, 1, 0, 1)) == 2
    assert t.cost_micro_minor(350.0, utc(2026, 1, 1), utc(2026, 1, 1, 0, 1)) == 4


def test_bad_intervals_and_energy_are_refused() -> None:
    t = FlatTariff(Decimal("0.2"))
    with pytest.raises(ValueError, match="before it starts"):
        t.cost(1.0, utc(2026, 1, 1, 1), utc(2026, 1, 1))
    with pytest.raises(ValueError, match="aware datetime"):
        t.price_at(datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time is the point
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number of joules"):
            t.cost(bad, utc(2026, 1, 1), utc(2026, 1, 1, 1))
    with pytest.raises(ValueError, match="finite Decimal"):
        FlatTariff(Decimal("NaN"))


# -- dynamic --------------------------------------------------------------------------------------


def half_hours(start: datetime, prices: list[str]) -> tuple[PriceInterval, ...]:
    step = timedelta(minutes=30)
    return tuple(
        PriceInterval(start + step * i, start + step * (i + 1), Decimal(p))
        for i, p in enumerate(prices)
    )


def test_interval_across_a_mid_hour_price_change() -> None:
    t = DynamicTariff(half_hours(utc(2026, 2, 3, 10), ["0.20", "0.30"]), Decimal("0.25"))
    # 1 kWh over 10:15–10:45: 15 min at £0.20 and 15 min at £0.30, half the energy each:
    # 0.5 × 0.20 + 0.5 × 0.30 = £0.25 = 25 p.
    c = t.cost(KWH, utc(2026, 2, 3, 10, 15), utc(2026, 2, 3, 10, 45))
    assert (c.micro_minor, c.fallback) == (25_000_000, False)
    # 1.2 kWh over 10:20–10:50: 10 min at £0.20, 20 min at £0.30:
    # 1.2 × (10 × 0.20 + 20 × 0.30) / 30 = 1.2 × 8 / 30 = £0.32 = 32 p.
    assert t.cost_micro_minor(1.2 * KWH, utc(2026, 2, 3, 10, 20), utc(2026, 2, 3, 10, 50)) == (
        32_000_000
    )


def test_prices_changing_off_the_half_hour() -> None:
    # A list whose prices change at 10:20 and 10:45 (not on half hours).
    rows = (
        PriceInterval(utc(2026, 2, 3, 10), utc(2026, 2, 3, 10, 20), Decimal("0.12")),
        PriceInterval(utc(2026, 2, 3, 10, 20), utc(2026, 2, 3, 10, 45), Decimal("0.36")),
        PriceInterval(utc(2026, 2, 3, 10, 45), utc(2026, 2, 3, 11), Decimal("0.24")),
    )
    t = DynamicTariff(rows, Decimal("0.5"))
    # 0.6 kWh over 10:00–11:00 (0.01 kWh a minute):
    # 20 min × 0.01 × 0.12 + 25 × 0.01 × 0.36 + 15 × 0.01 × 0.24 = 0.024 + 0.09 + 0.036 = £0.15.
    assert t.cost_micro_minor(0.6 * KWH, utc(2026, 2, 3, 10), utc(2026, 2, 3, 11)) == 15_000_000
    assert t.price_at(utc(2026, 2, 3, 10, 19, 59)).per_kwh == Decimal("0.12")
    assert t.price_at(utc(2026, 2, 3, 10, 20)).per_kwh == Decimal("0.36")  # start inclusive


def test_a_gap_is_priced_at_the_fallback_and_flagged() -> None:
    rows = (
        PriceInterval(utc(2026, 2, 3, 10), utc(2026, 2, 3, 10, 30), Decimal("0.20")),
        PriceInterval(utc(2026, 2, 3, 11), utc(2026, 2, 3, 11, 30), Decimal("0.10")),
    )
    t = DynamicTariff(rows, Decimal("0.25"))
    assert t.price_at(utc(2026, 2, 3, 10, 45)) == Price(Decimal("0.25"), fallback=True)
    assert t.price_at(utc(2026, 2, 3, 10, 30)) == Price(Decimal("0.25"), fallback=True)
    assert t.price_at(utc(2026, 2, 3, 11)) == Price(Decimal("0.10"))
    assert t.price_at(utc(2026, 2, 3, 9)).fallback  # before the list
    assert t.price_at(utc(2026, 2, 3, 12)).fallback  # after it
    assert t.prices_between(utc(2026, 2, 3, 10), utc(2026, 2, 3, 11, 30)) == [
        PriceSpan(utc(2026, 2, 3, 10), utc(2026, 2, 3, 10, 30), Price(Decimal("0.20"))),
        PriceSpan(utc(2026, 2, 3, 10, 30), utc(2026, 2, 3, 11), Price(Decimal("0.25"), True)),
        PriceSpan(utc(2026, 2, 3, 11), utc(2026, 2, 3, 11, 30), Price(Decimal("0.10"))),
    ]
    # 3 kWh over 10:00–11:30, 1 kWh per half hour: 20 p + 25 p (fallback) + 10 p = 55 p.
    c = t.cost(3 * KWH, utc(2026, 2, 3, 10), utc(2026, 2, 3, 11, 30))
    assert (c.micro_minor, c.fallback) == (55_000_000, True)
    # Inside a published price the flag stays down.
    assert not t.cost(KWH, utc(2026, 2, 3, 11), utc(2026, 2, 3, 11, 30)).fallback
    assert t.covered_until == utc(2026, 2, 3, 11, 30)


def test_negative_prices() -> None:
    t = DynamicTariff(half_hours(utc(2026, 4, 5, 2), ["0.10", "-0.04", "-0.0525"]), Decimal("0.3"))
    # 2 kWh over 02:00–03:00: 1 kWh × £0.10 + 1 kWh × −£0.04 = £0.06 = 6 p.
    assert t.cost_micro_minor(2 * KWH, utc(2026, 4, 5, 2), utc(2026, 4, 5, 3)) == 6_000_000
    # 1 kWh over 02:30–03:00 alone: −£0.04 = −4 p: the householder is paid.
    assert t.cost_micro_minor(KWH, utc(2026, 4, 5, 2, 30), utc(2026, 4, 5, 3)) == -4_000_000
    # 100 J at −£0.0525/kWh: −0.0525 × 10⁸ × 100 / 3.6 × 10⁶ = −145.833… µp → −146.
    assert t.cost_micro_minor(100.0, utc(2026, 4, 5, 3), utc(2026, 4, 5, 3, 0, 1)) == -146


def test_an_instant_is_priced_where_it_falls() -> None:
    t = DynamicTariff(half_hours(utc(2026, 2, 3, 10), ["0.20", "0.30"]), Decimal("0.25"))
    # No length: the energy is priced at the start, here the second price (start inclusive).
    assert t.cost_micro_minor(KWH, utc(2026, 2, 3, 10, 30), utc(2026, 2, 3, 10, 30)) == 30_000_000


def test_overlapping_intervals_are_refused_and_repeats_kept_once() -> None:
    rows = half_hours(utc(2026, 2, 3, 10), ["0.20", "0.30"])
    assert DynamicTariff(rows + rows, Decimal("0.25")).intervals == rows
    clash = PriceInterval(utc(2026, 2, 3, 10, 15), utc(2026, 2, 3, 10, 45), Decimal("0.2"))
    with pytest.raises(PriceListError, match=r"from 2026-02-03T10:00:00Z and .* overlap"):
        DynamicTariff((*rows, clash), Decimal("0.25"))
    with pytest.raises(PriceListError, match="ends when it starts"):
        DynamicTariff(
            (PriceInterval(utc(2026, 1, 1), utc(2026, 1, 1), Decimal(1)),), Decimal("0.25")
        )


# -- time of use across the clock changes ---------------------------------------------------------

# An overnight cheap rate and a dear base, every day, in Europe/London wall time.
NIGHT = TimeOfUseTariff(
    (TouPeriod(EVERY_DAY, time(0, 30), time(7, 30), Decimal("0.09")),),
    base_per_kwh=Decimal("0.30"),
    tz=LONDON,
)


def test_time_of_use_boundaries_on_an_ordinary_day() -> None:
    # In January London is on GMT: wall time is UTC.
    assert NIGHT.price_at(utc(2026, 1, 14, 0, 29, 59)).per_kwh == Decimal("0.30")
    assert NIGHT.price_at(utc(2026, 1, 14, 0, 30)).per_kwh == Decimal("0.09")
    assert NIGHT.price_at(utc(2026, 1, 14, 7, 29, 59)).per_kwh == Decimal("0.09")
    assert NIGHT.price_at(utc(2026, 1, 14, 7, 30)).per_kwh == Decimal("0.30")
    # In July (BST, UTC+1) the cheap rate starts at 23:30 UTC the evening before.
    assert NIGHT.price_at(utc(2026, 7, 13, 23, 30)).per_kwh == Decimal("0.09")
    assert NIGHT.price_at(utc(2026, 7, 13, 23, 29)).per_kwh == Decimal("0.30")
    # 1 kW over the ordinary 24-hour day: 7 h × 0.09 + 17 h × 0.30 = 0.63 + 5.10 = £5.73.
    day = NIGHT.cost_micro_minor(24 * KWH, london(2026, 1, 14), london(2026, 1, 15))
    assert day == 573_000_000


def test_time_of_use_on_the_23_hour_day() -> None:
    # Sunday 29 March 2026: 01:00 GMT becomes 02:00 BST. The local day runs 00:00 UTC–23:00 UTC
    # (23 h); the cheap rate runs 00:30 GMT (00:30 UTC) to 07:30 BST (06:30 UTC): 6 h.
    start, end = london(2026, 3, 29), london(2026, 3, 30)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    spans = NIGHT.prices_between(start, end)
    assert [(s.start, s.end, s.price.per_kwh) for s in spans] == [
        (utc(2026, 3, 29, 0), utc(2026, 3, 29, 0, 30), Decimal("0.30")),
        (utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 6, 30), Decimal("0.09")),
        (utc(2026, 3, 29, 6, 30), utc(2026, 3, 29, 23), Decimal("0.30")),
    ]
    # 1 kW all day: 23 kWh; 6 × 0.09 + 17 × 0.30 = 0.54 + 5.10 = £5.64.
    assert NIGHT.cost_micro_minor(23 * KWH, start, end) == 564_000_000


def test_time_of_use_on_the_25_hour_day() -> None:
    # Sunday 25 October 2026: 02:00 BST becomes 01:00 GMT. The local day runs 23:00 UTC on the
    # 24th to 00:00 UTC on the 26th (25 h); the cheap rate runs 00:30 BST (23:30 UTC) to
    # 07:30 GMT (07:30 UTC): 8 h.
    start, end = london(2026, 10, 25), london(2026, 10, 26)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=25)
    spans = NIGHT.prices_between(start, end)
    assert [(s.start, s.end, s.price.per_kwh) for s in spans] == [
        (utc(2026, 10, 24, 23), utc(2026, 10, 24, 23, 30), Decimal("0.30")),
        (utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 7, 30), Decimal("0.09")),
        (utc(2026, 10, 25, 7, 30), utc(2026, 10, 26), Decimal("0.30")),
    ]
    # 1 kW all day: 25 kWh; 8 × 0.09 + 17 × 0.30 = 0.72 + 5.10 = £5.82.
    assert NIGHT.cost_micro_minor(25 * KWH, start, end) == 582_000_000


def test_a_period_in_the_hour_the_clocks_skip_or_repeat() -> None:
    # A dear hour 01:00–02:00 on Sundays, the base price around it.
    t = TimeOfUseTariff(
        (TouPeriod(frozenset({6}), time(1), time(2), Decimal("0.50")),),
        base_per_kwh=Decimal("0.20"),
        tz=LONDON,
    )
    # 29 March: 01:00–02:00 never happens on the wall clock: no dear hour at all.
    spring = t.prices_between(london(2026, 3, 29), london(2026, 3, 30))
    assert [s.price.per_kwh for s in spring] == [Decimal("0.20")]
    # 25 October: it happens twice, 01:00 BST–02:00 BST (00:00–01:00 UTC) and then
    # 01:00 GMT–02:00 GMT (01:00–02:00 UTC): two dear hours in a row.
    autumn = t.prices_between(london(2026, 10, 25), london(2026, 10, 26))
    assert [(s.start, s.end, s.price.per_kwh) for s in autumn] == [
        (utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), Decimal("0.20")),
        (utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), Decimal("0.50")),
        (utc(2026, 10, 25, 2), utc(2026, 10, 26), Decimal("0.20")),
    ]
    # 1 kW over that 25-hour day: 2 × 0.50 + 23 × 0.20 = 1.00 + 4.60 = £5.60.
    assert t.cost_micro_minor(25 * KWH, london(2026, 10, 25), london(2026, 10, 26)) == 560_000_000


@pytest.mark.parametrize("day", [(2026, 3, 28), (2026, 10, 24)])
def test_spans_agree_with_a_minute_scan_across_the_clock_change(day: tuple[int, int, int]) -> None:
    t = TimeOfUseTariff(
        (
            TouPeriod(frozenset({5}), time(23, 30), time(1, 30), Decimal("0.07")),  # Sat→Sun
            TouPeriod(frozenset({6}), time(1, 45), time(2, 15), Decimal("0.40")),
            TouPeriod(EVERY_DAY, time(16), time(19), Decimal("0.35")),
        ),
        base_per_kwh=Decimal("0.22"),
        tz=LONDON,
    )
    start = london(*day)
    end = london(*day) + timedelta(days=2)  # wall-clock days: 47 or 49 hours
    spans = t.prices_between(start, end)
    assert spans[0].start == start.astimezone(UTC)
    assert spans[-1].end == end.astimezone(UTC)
    minute = start.astimezone(UTC)
    k = 0
    while minute < end:
        while spans[k].end <= minute:
            k += 1
        assert spans[k].price == t.price_at(minute), minute
        minute += timedelta(minutes=1)


def test_overnight_period_runs_into_the_next_weekday() -> None:
    t = TimeOfUseTariff(
        (TouPeriod(frozenset({4}), time(23, 30), time(5, 30), Decimal("0.08")),),  # Friday night
        base_per_kwh=Decimal("0.28"),
        tz=LONDON,
    )
    assert t.price_at(utc(2026, 1, 16, 23, 30)).per_kwh == Decimal("0.08")  # Friday
    assert t.price_at(utc(2026, 1, 17, 5, 29)).per_kwh == Decimal("0.08")  # Saturday morning
    assert t.price_at(utc(2026, 1, 17, 23, 30)).per_kwh == Decimal("0.28")  # Saturday night
    assert t.price_at(utc(2026, 1, 18, 3)).per_kwh == Decimal("0.28")  # Sunday morning


def test_overlapping_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap on weekday 2 at 07:00"):
        TimeOfUseTariff(
            (
                TouPeriod(frozenset({2}), time(0), time(8), Decimal("0.1")),
                TouPeriod(frozenset({2}), time(7), time(9), Decimal("0.2")),
            ),
            base_per_kwh=Decimal("0.3"),
            tz=LONDON,
        )
    with pytest.raises(ValueError, match="weekdays 0"):
        TouPeriod(frozenset({7}), time(0), time(8), Decimal("0.1"))


# -- published price lists ------------------------------------------------------------------------

# As the Octopus Energy API pages agile unit rates: newest first, pence per kWh, floats.
AGILE_JSON = """{
  "count": 3, "next": null, "previous": null,
  "results": [
    {"value_exc_vat": -1.5, "value_inc_vat": -1.575, "valid_from": "2026-03-29T01:00:00Z",
     "valid_to": "2026-03-29T01:30:00Z", "payment_method": null},
    {"value_exc_vat": 14.91, "value_inc_vat": 15.6555, "valid_from": "2026-03-29T00:30:00Z",
     "valid_to": "2026-03-29T01:00:00Z", "payment_method": null},
    {"value_exc_vat": 20.0, "value_inc_vat": 21.0, "valid_from": "2026-03-29T00:00:00Z",
     "valid_to": "2026-03-29T00:30:00Z", "payment_method": null}
  ]
}"""


def test_agile_json_as_published() -> None:
    rows = parse_price_json(AGILE_JSON, unit=PriceUnit.MINOR)
    # Sorted, and 15.6555 p read exactly (no float): £0.156555.
    assert rows == (
        PriceInterval(utc(2026, 3, 29, 0), utc(2026, 3, 29, 0, 30), Decimal("0.21")),
        PriceInterval(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), Decimal("0.156555")),
        PriceInterval(utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30), Decimal("-0.01575")),
    )
    t = DynamicTariff(rows, fallback_per_kwh=Decimal("0.245"))
    # 0.75 kWh over 00:15–01:30 (0.01 kWh a minute): 15 min at 21 p + 30 at 15.6555 p + 30 at
    # −1.575 p = 0.15 × 21 + 0.3 × 15.6555 + 0.3 × −1.575 = 3.15 + 4.69665 − 0.4725 = 7.37415 p.
    assert t.cost_micro_minor(0.75 * KWH, utc(2026, 3, 29, 0, 15), utc(2026, 3, 29, 1, 30)) == (
        7_374_150
    )
    # A bare list of rows is read too.
    bare = json.dumps(json.loads(AGILE_JSON)["results"])
    assert parse_price_json(bare, unit=PriceUnit.MINOR) == rows


def test_json_row_without_valid_to_runs_to_the_next() -> None:
    text = json.dumps(
        [
            {"valid_from": "2026-01-01T00:00:00Z", "valid_to": None, "value_inc_vat": 25},
            {"valid_from": "2026-04-01T00:00:00+01:00", "valid_to": None, "value_inc_vat": "24.5"},
        ]
    )
    rows = parse_price_json(text, unit=PriceUnit.MINOR)
    assert rows == (
        PriceInterval(utc(2026, 1, 1), utc(2026, 3, 31, 23), Decimal("0.25")),
        PriceInterval(utc(2026, 3, 31, 23), OPEN_END, Decimal("0.245")),
    )


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("{", "not valid JSON"),
        ('{"results": 3}', 'a "results" list'),
        ("[1]", "row 1 is not an object"),
        ('[{"value_inc_vat": 1}]', "row 1 has no valid_from"),
        (
            '[{"valid_from": "2026-01-01T00:00Z", "valid_to": "2026-01-01T00:30Z", '
            '"value_inc_vat": 1}, {"valid_from": "yesterday", "value_inc_vat": 1}]',
            "row 2: valid_from 'yesterday' is not a date and time",
        ),
        ('[{"valid_from": "2026-01-01T00:00Z"}]', "row 1 has no value_inc_vat"),
        ('[{"valid_from": "2026-01-01T00:00Z", "value_inc_vat": true}]', "row 1: .* not a number"),
        ('[{"valid_from": "2026-01-01T00:00Z", "value_inc_vat": "x"}]', "row 1: .* not a number"),
        ('[{"valid_from": "2026-01-01T00:00Z", "value_inc_vat": NaN}]', "not a finite number"),
        ('[{"valid_from": "2026-01-01T00:00", "value_inc_vat": 1}]', "has no UTC offset"),
        (
            '[{"valid_from": "2026-01-01T01:00Z", "valid_to": "2026-01-01T00:30Z", '
            '"value_inc_vat": 1}]',
            r"row 1: valid_to \(2026-01-01T00:30:00Z\) is not after valid_from",
        ),
        (
            '[{"valid_from": "2026-01-01T00:00Z", "valid_to": "2026-01-01T01:00Z", '
            '"value_inc_vat": 1}, {"valid_from": "2026-01-01T00:30Z", '
            '"valid_to": "2026-01-01T01:30Z", "value_inc_vat": 2}]',
            r"row 2 \(from 2026-01-01T00:30:00Z\) overlaps row 1",
        ),
    ],
)
def test_malformed_json_rows_are_named(text: str, sentence: str) -> None:
    with pytest.raises(PriceListError, match=sentence):
        parse_price_json(text, unit=PriceUnit.MINOR)


def test_agile_csv_with_extra_columns() -> None:
    text = (
        "\ufeffvalid_from,valid_to,value_exc_vat,value_inc_vat\n"
        "2026-03-29T00:00:00Z,2026-03-29T00:30:00Z,20.0,21.0\n"
        "2026-03-29T00:30:00Z,2026-03-29T01:00:00Z,-2,-2.1\n"
        "\n"
    )
    assert parse_price_csv(text, unit=PriceUnit.MINOR) == (
        PriceInterval(utc(2026, 3, 29, 0), utc(2026, 3, 29, 0, 30), Decimal("0.21")),
        PriceInterval(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), Decimal("-0.021")),
    )


def test_start_price_csv_in_local_time_across_the_clock_change() -> None:
    # Wall times in London on 29 March: 00:30 GMT is followed by 02:00 BST (01:00 UTC);
    # euros per kWh; the last slot lasts the usual half hour.
    text = "start,price\n2026-03-29 00:00,0.20\n2026-03-29 00:30,0.10\n2026-03-29 02:00,0.30\n"
    rows = parse_price_csv(text, unit=PriceUnit.MAJOR, tz=LONDON)
    assert rows == (
        PriceInterval(utc(2026, 3, 29, 0), utc(2026, 3, 29, 0, 30), Decimal("0.20")),
        PriceInterval(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), Decimal("0.10")),
        PriceInterval(utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30), Decimal("0.30")),
    )
    # A single row lasts the slot given.
    (only,) = parse_price_csv(
        "start,price\n2026-01-01T00:00Z,1\n", unit=PriceUnit.MAJOR, slot=timedelta(hours=1)
    )
    assert only == PriceInterval(utc(2026, 1, 1), utc(2026, 1, 1, 1), Decimal(1))


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("", "empty"),
        ("when,cost\n", "line 1 must name the columns"),
        ("start,price\n2026-01-01T00:00Z\n", "line 2 has 1 values where the header names 2"),
        ("start,price\n2026-01-01T00:00Z,1\n2026-01-01T00:30Z,abc\n", "line 3: price 'abc'"),
        ("start,price\n2026-01-01T00:00Z,1\n2026-01-01T00:30Z,inf\n", "line 3: .* not a finite"),
        ("start,price\n2026-01-01T00:00Z,1\n2026-01-01T00:30Z,\n", "line 3 has no price"),
        ("start,price\n2026-03-29 01:30,1\n", "does not exist in local time"),
        ("start,price\n2026-10-25 01:30,1\n", "happens twice in local time"),
        ("start,price\n2026-01-01T00:00Z,1\n2026-01-01T00:00Z,2\n", "line 3 starts at .* line 2"),
        ("start,price\n2026-01-01T00:00Z,1\n", "one row needs the length of its slot"),
        ("start,price\n31/01/2026 00:00,1\n", "line 2: start '31/01/2026 00:00' is not a date"),
    ],
)
def test_malformed_csv_lines_are_named(text: str, sentence: str) -> None:
    with pytest.raises(PriceListError, match=sentence):
        parse_price_csv(text, unit=PriceUnit.MAJOR, tz=LONDON)


# -- ranking the hours ahead ----------------------------------------------------------------------


def test_rank_the_next_hours() -> None:
    rows = half_hours(utc(2026, 2, 3, 16), ["0.30", "0.40", "0.10", "0.05", "0.20", "0.20"])
    t = DynamicTariff(rows, Decimal("0.25"))
    ranked = rank_slots(t, utc(2026, 2, 3, 16), 4)
    # Hour means: 16:00 (0.30+0.40)/2 = 0.35, 17:00 (0.10+0.05)/2 = 0.075, 18:00 0.20,
    # 19:00 no list: 0.25 (fallback).
    assert [(s.start.hour, s.mean_per_kwh, s.fallback) for s in ranked] == [
        (17, Decimal("0.075"), False),
        (18, Decimal("0.2"), False),
        (19, Decimal("0.25"), True),
        (16, Decimal("0.35"), False),
    ]
    dearest = rank_slots(t, utc(2026, 2, 3, 16), 4, dearest_first=True)
    assert [s.start.hour for s in dearest] == [16, 19, 18, 17]
    # Half-hour slots; equal prices (18:00 and 18:30) keep their order in time.
    halves = rank_slots(t, utc(2026, 2, 3, 16), 6, timedelta(minutes=30))
    assert [(s.start.hour, s.start.minute) for s in halves] == [
        (17, 30), (17, 0), (18, 0), (18, 30), (16, 0), (16, 30),
    ]  # fmt: skip


def test_rank_time_of_use_hours_across_midnight() -> None:
    ranked = rank_slots(NIGHT, london(2026, 1, 14, 22), 4)
    # 22:00 0.30, 23:00 0.30, 00:00 half at 0.30 and half at 0.09 = 0.195, 01:00 0.09.
    assert [(s.start.hour, s.mean_per_kwh) for s in ranked] == [
        (1, Decimal("0.09")),
        (0, Decimal("0.195")),
        (22, Decimal("0.30")),
        (23, Decimal("0.30")),
    ]


def test_semicolon_csv_and_decimal_commas() -> None:
    # A spreadsheet in a decimal-comma language: semicolons between columns.
    text = "start;price\n2026-01-01T00:00Z;0.25\n2026-01-01T00:30Z;0.5\n"
    assert parse_price_csv(text, unit=PriceUnit.MAJOR)[1].per_kwh == Decimal("0.5")
    with pytest.raises(PriceListError, match=r"line 2: price '0,25' is not a number \(use a point"):
        parse_price_csv("start;price\n2026-01-01T00:00Z;0,25\n", unit=PriceUnit.MAJOR)


def test_intervals_in_local_time_are_kept_as_instants() -> None:
    # 01:30 BST and 01:30 GMT on 25 October have the same wall time and are an hour apart:
    # Python compares two datetimes of one zone by wall time, the tariff by instant.
    first = london(2026, 10, 25, 1, 30)
    second = london(2026, 10, 25, 1, 30, fold=1)
    row = PriceInterval(first, second, Decimal("0.3"))
    assert (row.start, row.end) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))
    t = DynamicTariff((row,), Decimal("0.1"))
    # 1 kWh over that hour at £0.30 = 30 p.
    assert t.cost_micro_minor(KWH, first, second) == 30_000_000
    with pytest.raises(ValueError, match="before it starts"):
        PriceInterval(second, first, Decimal("0.3"))
