"""How figures read on screen: pure functions of the agent's values, tested without Qt.

A figure the agent does not have (``None``) reads "not available", never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from heatshare.domain.readings import Provenance
from heatshare.domain.units import c_to_f, w_to_btu_h
from heatshare.protocol.local_api import AgentStatus

NOT_AVAILABLE = "not available"

_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥", "INR": "₹", "CNY": "¥"}
_SYMBOL_AFTER = {"SEK", "NOK", "DKK", "PLN", "CZK", "CHF", "HUF"}
# The demo network's currency: credits, not money (100 minor units per credit).
DEMO_CURRENCY = "CRD"
# ISO 4217 minor-unit exponents that are not 2.
_EXPONENT = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "TND": 3}


def minor_exponent(currency: str) -> int:
    return _EXPONENT.get(currency.upper(), 2)


def _grouped(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def format_power(watts: float | None) -> str:
    if watts is None:
        return NOT_AVAILABLE
    return f"{_grouped(watts, 0 if abs(watts) >= 10 else 1)} W"


def format_btu_h(watts: float | None) -> str:
    if watts is None:
        return NOT_AVAILABLE
    return f"{_grouped(w_to_btu_h(watts), 0)} BTU/h"


def format_energy_kwh(kwh: float | None) -> str:
    if kwh is None:
        return NOT_AVAILABLE
    decimals = 3 if abs(kwh) < 1 else 2 if abs(kwh) < 100 else 1
    return f"{_grouped(kwh, decimals)} kWh"


def format_temperature(celsius: float | None, unit: Literal["C", "F"] = "C") -> str:
    if celsius is None:
        return NOT_AVAILABLE
    if unit == "F":
        return f"{c_to_f(celsius):.0f} °F"
    return f"{celsius:.0f} °C"


def _with_symbol(amount: str, currency: str) -> str:
    code = currency.upper()
    if code == DEMO_CURRENCY:
        return f"{amount} credits"
    symbol = _SYMBOLS.get(code)
    if symbol is not None:
        return f"-{symbol}{amount[1:]}" if amount.startswith("-") else f"{symbol}{amount}"
    if code in _SYMBOL_AFTER:
        return f"{amount} {code}"
    return f"{code} {amount}"


def format_money_minor(minor: int | None, currency: str) -> str:
    """Integer minor units → ``"£1.23"``. No float ever touches the amount."""
    if minor is None:
        return NOT_AVAILABLE
    exp = minor_exponent(currency)
    amount = Decimal(minor).scaleb(-exp)
    return _with_symbol(f"{amount:,.{exp}f}", currency)


def format_money(minor: int | None, currency: str | None) -> str:
    """Like :func:`format_money_minor`, for figures whose currency may not be known yet."""
    if minor is None or not currency:
        return NOT_AVAILABLE
    return format_money_minor(minor, currency)


def format_energy_j(joules: float | None) -> str:
    """A job's energy: Wh below one kWh (a tile takes a few), kWh above."""
    if joules is None:
        return NOT_AVAILABLE
    wh = joules / 3600.0
    if abs(wh) < 1000:
        return f"{_grouped(wh, 1 if abs(wh) < 100 else 0)} Wh"
    return format_energy_kwh(wh / 1000.0)


def format_duration(seconds: float | None) -> str:
    """``75`` → ``"1 min 15 s"``; ``3725`` → ``"1 h 02 min"``."""
    if seconds is None:
        return NOT_AVAILABLE
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_when(at: datetime | None, now: datetime | None = None) -> str:
    """A UTC time in local time: ``"14:05:09"`` today, ``"3 Jan 14:05"`` before."""
    if at is None:
        return "never"
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    if local.date() == today:
        return local.strftime("%H:%M:%S")
    return f"{local.day} {local.strftime('%b %H:%M')}"


def format_progress(fraction: float | None) -> str:
    if fraction is None:
        return ""
    return f"{min(100.0, max(0.0, fraction * 100)):.0f} %"


def format_tariff(per_kwh: Decimal | None, currency: str) -> str:
    if per_kwh is None:
        return "tariff not set"
    # Tariffs carry more precision than money (24.5p): show up to 4 places, trimmed.
    exp = minor_exponent(currency)
    text = f"{per_kwh:,.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    frac = frac.ljust(exp, "0")
    amount = f"{whole}.{frac}" if frac else whole
    return f"at {_with_symbol(amount, currency)} per kWh"


def provenance_text(provenance: Provenance | None) -> str:
    """``Provenance.ESTIMATE`` → ``"Estimated from utilisation"``."""
    if provenance is None:
        return "Source not known"
    label = provenance.label
    return label[:1].upper() + label[1:]


def measured_share(status: AgentStatus) -> int | None:
    """The per cent of an estimated heat total that is measured, where it is partly measured.

    A GPU metered by its energy counter beside a CPU estimated from utilisation makes the
    total an estimate by the weakest-part rule, yet most of its watts are measured: saying
    only "estimated" would undersell a figure the householder can trust. None when the total
    is not an estimate, or nothing (or everything) in it is measured.
    """
    if status.heat_provenance is not Provenance.ESTIMATE or not status.heat_w:
        return None
    parts = [(g.power_w, g.power_provenance) for g in status.gpus]
    parts.append((status.host.cpu_power_w, status.host.cpu_power_provenance))
    measured_w = sum(w for w, p in parts if w is not None and p is not None and p.is_measured)
    share = round(100 * measured_w / status.heat_w)
    return share if 0 < share < 100 else None


def heat_source_text(status: AgentStatus) -> str:
    """Where the heat figure comes from, saying how much is measured if only part of it is."""
    if status.heat_w is None:
        return ""
    share = measured_share(status)
    if share is not None:
        return f"{share} % measured, the rest estimated from utilisation"
    return provenance_text(status.heat_provenance)


def component_name(status: AgentStatus, key: str | None) -> str:
    """A readable name for a key of ``status.temperatures`` (``gpu0`` → the card's name)."""
    if key is None:
        return ""
    lowered = key.lower()
    if lowered.startswith("gpu"):
        digits = "".join(ch for ch in lowered[3:] if ch.isdigit())
        for gpu in status.gpus:
            if digits and gpu.index == int(digits):
                return f"GPU {gpu.index} · {gpu.name}"
        return f"GPU {digits}" if digits else key
    if lowered in {"cpu", "cpu.temp_c", "cpu_temp"}:
        return "CPU"
    return key


STATE_WORDS = {
    "starting": "Starting",
    "heating": "Heating",
    "idle": "Idle",
    "paused": "Paused",
}


@dataclass(frozen=True, slots=True)
class Figures:
    """The dashboard's big figures, as text."""

    heat_w: str
    heat_btu_h: str
    heat_source: str
    heat_today: str
    hottest: str
    hottest_name: str
    cost_today: str
    tariff: str


def dashboard_figures(
    status: AgentStatus,
    *,
    temperature_unit: Literal["C", "F"] = "C",
    tariff_per_kwh: Decimal | None = None,
) -> Figures:
    """Everything the dashboard's cards say, from one status (and the tariff setting)."""
    heat_w = status.heat_w
    return Figures(
        heat_w=format_power(heat_w),
        heat_btu_h=format_btu_h(heat_w),
        heat_source=heat_source_text(status),
        heat_today=format_energy_kwh(status.heat_today_kwh),
        hottest=format_temperature(status.hottest_c, temperature_unit),
        hottest_name=component_name(status, status.hottest_name)
        if status.hottest_c is not None
        else "",
        cost_today=format_money_minor(status.cost_today_minor, status.currency),
        tariff=format_tariff(tariff_per_kwh, status.currency),
    )
