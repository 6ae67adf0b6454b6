"""How the cost of heat reads: money in integer units to text, the period cards, the inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from heatshare.gui.energy_settings import days_text, parse_days, parse_minute, parse_price
from heatshare.gui.energy_text import (
    format_co2_g,
    format_per_kwh_micro,
    format_price,
    period_text,
)
from heatshare.gui.formatting import NOT_AVAILABLE
from heatshare.protocol.energy import CostFigures, UsualHeatingKind


def figures(**kw: Any) -> CostFigures:
    base: dict[str, Any] = {
        "period": "month",
        "start": datetime(2026, 11, 1, tzinfo=UTC),
        "end": datetime(2026, 12, 1, tzinfo=UTC),
        "electricity_kwh": Decimal("111.455"),
        "heat_kwh": Decimal("111.455"),
        "electricity_cost_minor": 2172,
        "earnings_minor": 1003,
        "net_cost_minor": 1169,
        "effective_micro_per_kwh": 10_488_537,
        "usual_cost_minor": 833,
        "usual_micro_per_kwh": 7_470_588,
        "saving_minor": -336,
        "co2_avoided_g": 925,
    }
    return CostFigures.model_validate(base | kw)


@pytest.mark.parametrize(
    ("micro", "currency", "text"),
    [
        (10_488_537, "GBP", "£0.105"),  # 10.49p a kWh, to a tenth of a penny
        (4_950_000, "EUR", "€0.050"),  # half to even at the tenth of a cent
        (-2_000_000, "GBP", "-£0.020"),  # earnings above the cost: heat that pays
        (1_234_000_000, "JPY", "¥1,234.0"),  # no minor unit: a tenth of a yen
        (None, "GBP", NOT_AVAILABLE),
    ],
)
def test_cost_per_kwh(micro: int | None, currency: str, text: str) -> None:
    assert format_per_kwh_micro(micro, currency) == text


def test_prices_and_co2() -> None:
    assert format_price(Decimal("0.2268"), "GBP") == "£0.2268"
    assert format_price(Decimal("0.3"), "GBP") == "£0.300"
    assert format_price(Decimal("0.245"), "SEK") == "0.245 SEK"
    assert format_co2_g(17) == "17 g"
    assert format_co2_g(3_070) == "3.07 kg"
    assert format_co2_g(None) == NOT_AVAILABLE


def test_a_month_dearer_than_gas_says_extra_cost() -> None:
    text = period_text(figures(), "GBP", UsualHeatingKind.GAS_BOILER)
    assert text.title == "This month"
    assert text.headline == "£0.105 per kWh of heat"
    assert text.headline_detail == "gas boiler: £0.075 per kWh"
    rows = {r.label: (r.value, r.tone) for r in text.rows}
    assert rows["Heat delivered"] == ("111.5 kWh", "")
    assert rows["Electricity"] == ("£21.72", "")
    assert rows["Earnings"] == ("-£10.03", "")
    assert rows["Net cost"] == ("£11.69", "")
    assert rows["Gas boiler would have cost"] == ("£8.33", "")
    assert rows["Extra cost"] == ("£3.36", "bad")
    assert rows["CO₂ avoided"] == ("925 g", "")
    assert text.notes == ()


def test_a_saving_and_co2_added() -> None:
    text = period_text(
        figures(saving_minor=412, co2_avoided_g=-1_500), "GBP", UsualHeatingKind.HEAT_PUMP
    )
    rows = {r.label: (r.value, r.tone) for r in text.rows}
    assert rows["Saving"] == ("£4.12", "good")
    assert rows["CO₂ added"] == ("1.50 kg", "")
    assert rows["Heat pump would have cost"] == ("£8.33", "")


def test_missing_figures_say_not_available_and_why() -> None:
    text = period_text(
        figures(
            period="today",
            heat_kwh=Decimal(0),
            electricity_kwh=Decimal(0),
            electricity_cost_minor=0,
            earnings_minor=0,
            net_cost_minor=0,
            effective_micro_per_kwh=None,
            effective_note="No heat was delivered in this period, so there is no cost per kWh "
            "of heat yet.",
            usual_cost_minor=None,
            usual_micro_per_kwh=None,
            saving_minor=None,
            co2_avoided_g=None,
            usual_note="The usual heating is not set, so there is nothing to compare with.",
            fallback_prices=True,
        ),
        "GBP",
    )
    assert text.headline == NOT_AVAILABLE
    assert text.headline_detail.startswith("No heat was delivered in this period")
    rows = {r.label: r.value for r in text.rows}
    assert rows["Usual heating would have cost"] == NOT_AVAILABLE
    assert rows["Saving"] == NOT_AVAILABLE
    assert rows["CO₂ avoided"] == NOT_AVAILABLE
    # The usual heating's absence is said once for the panel, not on each card.
    assert len(text.notes) == 1
    assert "fallback price" in text.notes[0]


def test_demo_credits_are_not_money() -> None:
    text = period_text(figures(earnings_minor=0, net_cost_minor=2172), "CRD")
    assert any("not money" in n for n in text.notes)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("Mon-Fri", [0, 1, 2, 3, 4]),
        ("sat sun", [5, 6]),
        ("Sat, Sun", [5, 6]),
        ("every day", [0, 1, 2, 3, 4, 5, 6]),
        ("Fri-Mon", [0, 4, 5, 6]),  # across the weekend
        ("Tuesday", [1]),
    ],
)
def test_days(text: str, days: list[int]) -> None:
    assert parse_days(text) == days
    assert parse_days(days_text(days)) == days


def test_days_text() -> None:
    assert days_text([0, 1, 2, 3, 4]) == "Mon-Fri"
    assert days_text([5, 6]) == "Sat Sun"
    assert days_text([0, 2, 3, 4]) == "Mon Wed-Fri"


def test_bad_inputs_get_sentences() -> None:
    assert str(parse_days("weekdays")).startswith("“weekdays” is not a set of days.")
    assert parse_minute("07:30") == 450
    assert parse_minute("24:00") == 1440
    assert str(parse_minute("7.75")).startswith("“7.75” is not a time.")
    assert str(parse_minute("24:30")).startswith("“24:30” is not a time.")
    assert parse_price("0,245", "The price") == Decimal("0.245")
    assert (
        parse_price("abc", "The price") == "The price: “abc” is not a price. Write it like 0.245."
    )


def test_the_plan_caption() -> None:
    from heatshare.gui.energy_text import plan_caption
    from heatshare.protocol.energy import CostsResponse, PlanSlot

    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def slot(i: int, price: str) -> PlanSlot:
        s = start + timedelta(minutes=30 * i)
        return PlanSlot(
            start=s, end=s + timedelta(minutes=30), price_per_kwh=Decimal(price), power_pct=50
        )

    def costs(plan: list[PlanSlot]) -> CostsResponse:
        f = figures()
        return CostsResponse(currency="GBP", today=f, month=f, season=f, plan=plan)

    flat = costs([slot(i, "0.245") for i in range(48)])
    assert plan_caption(flat) == (
        "Next 24 hours · one price, £0.245 per kWh: no cheaper hour to heat in"
    )
    agile = costs([slot(i, "0.12" if 30 <= i < 40 else "0.25") for i in range(48)])
    local = (start + timedelta(hours=15)).astimezone()
    assert plan_caption(agile) == (f"Next 24 hours · cheapest from {local:%H:%M} at £0.120 per kWh")
    assert plan_caption(costs([])).startswith("No plan yet")
