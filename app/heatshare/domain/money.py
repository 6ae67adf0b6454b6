"""Money: the cost of energy in integer units, exact decimal arithmetic, and how it is shown.

Money is never a float. A tick's cost is far below one penny (100 W for 1 s at £0.245/kWh is
0.00068 p), so costs are accumulated in *micro-minor* units (millionths of a penny or cent) and
turned into minor units only for display and the ledger.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

J_PER_KWH = 3_600_000
MICRO = 1_000_000

# Plenty for an exact quotient wherever one exists (so a true half rounds as a half), and for
# a correctly rounded integer otherwise.
_PRECISION = 60

# ISO 4217 currencies whose minor unit is not a hundredth of the major one.
_MINOR_PER_MAJOR = {
    "BHD": 1000, "CLP": 1, "IQD": 1000, "ISK": 1, "JOD": 1000, "JPY": 1, "KRW": 1,
    "KWD": 1000, "LYD": 1000, "OMR": 1000, "PYG": 1, "TND": 1000, "UGX": 1, "VND": 1,
}  # fmt: skip
# Symbols only where one is unambiguous; "$" is used by a score of currencies, so USD is "USD".
_SYMBOLS = {"GBP": "£", "EUR": "€", "JPY": "¥", "INR": "₹", "KRW": "₩"}


def minor_per_major(currency: str) -> int:
    """How many minor units make one major unit of ``currency`` (100 for most)."""
    return _MINOR_PER_MAJOR.get(currency.upper(), 100)


def cost_micro_minor(energy_j: float, price_per_kwh: Decimal, minor_per_major: int = 100) -> int:
    """The cost of ``energy_j`` joules at ``price_per_kwh`` (major units), in micro-minor units.

    The float is converted to its exact decimal value, the arithmetic is decimal, and the result
    is rounded half to even once, at the end.

    Raises:
        ValueError: on negative or non-finite energy, or a negative price.
    """
    if not math.isfinite(energy_j) or energy_j < 0:
        raise ValueError(f"energy must be a finite number of joules >= 0, not {energy_j!r}")
    if not price_per_kwh.is_finite() or price_per_kwh < 0:
        raise ValueError(f"price must be a finite amount >= 0, not {price_per_kwh!r}")
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        micro = Decimal(energy_j) * price_per_kwh * minor_per_major * MICRO / J_PER_KWH
        return int(micro.to_integral_value(rounding=ROUND_HALF_EVEN))


def micro_to_minor(micro: int) -> int:
    """Micro-minor units to whole minor units, rounding half to even."""
    whole, rest = divmod(micro, MICRO)  # floor division: ``rest`` is in [0, MICRO)
    if rest > MICRO // 2 or (rest == MICRO // 2 and whole % 2 == 1):
        whole += 1
    return whole


def format_money(minor: int, currency: str) -> str:
    """``format_money(42, "GBP") == "£0.42"``; ``format_money(210, "USD") == "USD 2.10"``."""
    code = currency.upper()
    per_major = minor_per_major(code)
    digits = len(str(per_major)) - 1
    sign = "-" if minor < 0 else ""
    major, rest = divmod(abs(minor), per_major)
    amount = f"{major:,}" + (f".{rest:0{digits}d}" if digits else "")
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{code} {amount}"


def local_day(wall_ts: float, utc_offset_s: int) -> str:
    """The calendar day (``"2026-11-27"``) of a UTC timestamp at a UTC offset the caller knows.

    The offset is passed in, not looked up, so this stays pure; the caller takes it from the
    zone in force at ``wall_ts`` (it changes with daylight saving time).
    """
    return datetime.fromtimestamp(wall_ts + utc_offset_s, tz=UTC).date().isoformat()
