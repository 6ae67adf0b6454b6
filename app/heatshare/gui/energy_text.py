"""How the cost of heat reads on screen and in the statement: pure functions, tested without Qt.

Money arrives in integer minor units and costs per kWh of heat in micro-minor units (see
``protocol/energy.py``); both are turned into text with :class:`~decimal.Decimal`, never a
float. A figure the agent does not have (``None``) reads "not available", with the agent's
note saying why where it gave one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from heatshare.domain.readings import Provenance
from heatshare.gui.formatting import (
    DEMO_CURRENCY,
    NOT_AVAILABLE,
    _with_symbol,
    format_energy_kwh,
    format_money_minor,
    minor_exponent,
)
from heatshare.protocol.energy import CostFigures, CostsResponse, UsualHeatingKind

MICRO = 1_000_000

# "Heat measured by the smart plug": the heat figure's source, as the dashboard names it.
SOURCE_WORDS = {
    Provenance.PLUG: "measured by the smart plug",
    Provenance.ENERGY_COUNTER: "measured by the energy counters",
    Provenance.POWER_READING: "measured from power readings",
    Provenance.ESTIMATE: "estimated from utilisation",
}
USUAL_WORDS = {
    UsualHeatingKind.NONE: "Usual heating",
    UsualHeatingKind.GAS_BOILER: "Gas boiler",
    UsualHeatingKind.HEAT_PUMP: "Heat pump",
    UsualHeatingKind.ELECTRIC_HEATER: "Electric heater",
    UsualHeatingKind.OIL_BOILER: "Oil boiler",
}
PERIOD_TITLES = {"today": "Today", "month": "This month", "season": "This season"}


def _symbol_amount(amount: Decimal, currency: str, places: int) -> str:
    """A major-unit amount with the currency's sign, to ``places`` decimals."""
    return _with_symbol(f"{amount:,.{places}f}", currency)


def format_price(per_kwh: Decimal | None, currency: str) -> str:
    """``Decimal("0.2268")`` → ``"£0.2268"``: three to four decimals, as tariffs state them."""
    if per_kwh is None:
        return NOT_AVAILABLE
    places = max(3, min(4, -per_kwh.normalize().as_tuple().exponent))  # type: ignore[operator]
    return _symbol_amount(per_kwh, currency, places)


def format_per_kwh_micro(micro: int | None, currency: str) -> str:
    """A cost per kWh in micro-minor units → ``"£0.105"`` (a tenth of a penny)."""
    if micro is None:
        return NOT_AVAILABLE
    exp = minor_exponent(currency)
    major = Decimal(micro) / MICRO / (Decimal(10) ** exp)
    return _symbol_amount(major.quantize(Decimal(10) ** -(exp + 1)), currency, exp + 1)


def format_co2_g(grams: int | None) -> str:
    """``17`` → ``"17 g"``; ``925`` → ``"0.93 kg"``; a negative figure is CO₂ added."""
    if grams is None:
        return NOT_AVAILABLE
    if abs(grams) < 1000:
        return f"{grams} g"
    return f"{Decimal(grams) / 1000:,.2f} kg"


def format_kwh(kwh: Decimal | None) -> str:
    return format_energy_kwh(None if kwh is None else float(kwh))


def source_line(costs: CostsResponse) -> str:
    """``"Heat measured by the smart plug"``, or why the plug is not the source."""
    if costs.heat_source is None:
        head = "Heat source not known yet"
    else:
        head = f"Heat {SOURCE_WORDS[costs.heat_source]}"
    return head


def price_now_line(costs: CostsResponse) -> str:
    if costs.price_now_per_kwh is None:
        return ""
    text = f"Electricity now {format_price(costs.price_now_per_kwh, costs.currency)} per kWh"
    if costs.price_now_fallback:
        text += " (the tariff's fallback price: the price list does not cover now)"
    return text


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled figure of a period card; ``tone`` colours it ("good", "bad" or "")."""

    label: str
    value: str
    tone: str = ""


@dataclass(frozen=True, slots=True)
class PeriodText:
    title: str
    span: str  # "27 Nov", "November 2026", "since 1 Sep"
    headline: str  # the effective cost per kWh of heat
    headline_detail: str  # beside the usual heating's
    rows: tuple[Row, ...]
    notes: tuple[str, ...]


def _span(f: CostFigures) -> str:
    start = f.start.astimezone()
    if f.period == "today":
        return f"{start:%a} {start.day} {start:%b}"
    if f.period == "month":
        return f"{start:%B %Y}"
    return f"since {start.day} {start:%b %Y}"


def period_text(
    f: CostFigures, currency: str, usual: UsualHeatingKind = UsualHeatingKind.NONE
) -> PeriodText:
    """A period card's text: the cost per kWh of heat first, then the sums it comes from."""

    def money(minor: int | None) -> str:
        return format_money_minor(minor, currency)

    usual_name = USUAL_WORDS[usual]
    headline = format_per_kwh_micro(f.effective_micro_per_kwh, currency)
    if f.effective_micro_per_kwh is not None:
        headline += " per kWh of heat"
    detail = ""
    if f.usual_micro_per_kwh is not None:
        detail = (
            f"{usual_name.lower()}: {format_per_kwh_micro(f.usual_micro_per_kwh, currency)} per kWh"
        )
    rows = [
        Row("Heat delivered", format_kwh(f.heat_kwh)),
        Row("Electricity", money(f.electricity_cost_minor)),
        Row("Earnings", money(-f.earnings_minor) if f.earnings_minor else money(0)),
        Row("Net cost", money(f.net_cost_minor)),
    ]
    usual_label = f"{usual_name} would have cost"
    rows.append(Row(usual_label, money(f.usual_cost_minor)))
    if f.saving_minor is None:
        rows.append(Row("Saving", NOT_AVAILABLE))
    elif f.saving_minor >= 0:
        rows.append(Row("Saving", money(f.saving_minor), "good" if f.saving_minor else ""))
    else:
        rows.append(Row("Extra cost", money(-f.saving_minor), "bad"))
    if f.co2_avoided_g is None or f.co2_avoided_g >= 0:
        rows.append(Row("CO₂ avoided", format_co2_g(f.co2_avoided_g)))
    else:
        rows.append(Row("CO₂ added", format_co2_g(-f.co2_avoided_g)))
    # The usual heating's absence is said once for the panel (usual_hint), not on each card;
    # why there is no cost per kWh goes where that figure's detail would be.
    notes = []
    if f.effective_micro_per_kwh is None and f.effective_note:
        detail = f.effective_note
    elif f.effective_note:
        notes.append(f.effective_note)
    if currency.upper() == DEMO_CURRENCY:
        notes.append("Demo credits are not money: they are not taken off the cost.")
    if f.fallback_prices:
        notes.append(
            "Some electricity was priced at the tariff's fallback price, where the price "
            "list had no price."
        )
    return PeriodText(
        PERIOD_TITLES[f.period], _span(f), headline, detail, tuple(rows), tuple(notes)
    )


def plan_caption(costs: CostsResponse) -> str:
    """The plan strip's caption: how far it reaches and when the cheapest hour is."""
    if not costs.plan:
        return "No plan yet: the heating loop plans once it has prices for the hours ahead."
    cheapest = min(costs.plan, key=lambda s: (s.price_per_kwh, s.start))
    at = cheapest.start.astimezone()
    hours = round((costs.plan[-1].end - costs.plan[0].start).total_seconds() / 3600)
    price = format_price(cheapest.price_per_kwh, costs.currency)
    if all(s.price_per_kwh == cheapest.price_per_kwh for s in costs.plan):
        return f"Next {hours} hours · one price, {price} per kWh: no cheaper hour to heat in"
    return f"Next {hours} hours · cheapest from {at:%H:%M} at {price} per kWh"


def usual_hint(costs: CostsResponse, usual: UsualHeatingKind) -> str:
    """Once for the panel: why there is no saving to show (the agent's sentence)."""
    if usual is not UsualHeatingKind.NONE:
        return ""
    note = costs.month.usual_note or costs.today.usual_note
    if not note:
        return ""
    return f"{note} Set your usual heating in Energy settings to see the saving."


def hhmm(at: datetime) -> str:
    return f"{at.astimezone():%H:%M}"
