"""Electricity tariffs: what a kWh costs at an instant, and what an interval's energy cost.

Three kinds, one interface (:class:`Tariff`):

* :class:`FlatTariff`: one price at all times;
* :class:`TimeOfUseTariff`: prices for weekly periods of local wall time (an overnight cheap rate,
  a dear evening peak), any other time at a base price. Periods follow the wall clock, so on the
  days the clocks change a period still starts and ends at the wall times it names: 00:30–07:30
  lasts 6 h on the 23-hour day and 8 h on the 25-hour day in Europe/London;
* :class:`DynamicTariff`: a published price list (intervals ``[start, end)`` in UTC with a price
  each, such as the UK's half-hourly agile prices), with a fallback price for any time the list
  does not cover, flagged as such. :func:`parse_price_csv` and :func:`parse_price_json` read such
  lists as they are published.

Units: prices are :class:`~decimal.Decimal` amounts of the currency's *major* unit per kWh (pounds,
euros), and may be negative (agile prices go below zero when the wind blows at night). Costs are
integers in *micro-minor* units (millionths of a penny), as in :mod:`heatshare.domain.money`,
computed exactly (rational arithmetic) and rounded half to even once. Standing charges (major units
per day) are stored with a tariff but never enter a per-kWh price or an energy cost.

Pure: no I/O, no clock reads. Instants are aware datetimes (any zone; compared as UTC); the
household's zone is passed in as a ``tzinfo``.
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Protocol

from heatshare.domain.money import J_PER_KWH, MICRO

MINUTES_PER_DAY = 1440
# Clock changes happen on a quarter hour everywhere; a coarser scan could step over one.
_OFFSET_SCAN = timedelta(minutes=15)
# The end of an open-ended price (a published row with no valid_to, and nothing after it).
OPEN_END = datetime(9999, 12, 31, tzinfo=UTC)


class PriceListError(ValueError):
    """A price list that cannot be read; the message names the row and says what is wrong."""


# -- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Price:
    """The price of a kWh at an instant (major units per kWh).

    ``fallback`` is True where a dynamic list had no price for the instant and the tariff's
    fallback price stands in for it.
    """

    per_kwh: Decimal
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class PriceSpan:
    """A price in force over ``[start, end)`` (UTC)."""

    start: datetime
    end: datetime
    price: Price


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of an interval's energy (micro-minor units; negative when prices were).

    ``fallback`` is True when any part of the interval was priced with the fallback price.
    """

    micro_minor: int
    fallback: bool


@dataclass(frozen=True, slots=True)
class SlotPrice:
    """One slot ``[start, end)`` ahead and its time-weighted mean price (major units per kWh)."""

    start: datetime
    end: datetime
    mean_per_kwh: Decimal
    fallback: bool


# -- the interface --------------------------------------------------------------------------------


class Tariff(Protocol):
    """What every tariff answers."""

    @property
    def standing_charge_per_day(self) -> Decimal:
        """Major units per day, whatever energy is used; never part of a per-kWh figure."""
        ...

    def price_at(self, when: datetime) -> Price:
        """The price in force at ``when`` (an aware datetime)."""
        ...

    def prices_between(self, start: datetime, end: datetime) -> list[PriceSpan]:
        """The prices in force over ``[start, end)``, in order, covering it without gaps."""
        ...


def cost(
    tariff: Tariff, energy_j: float, start: datetime, end: datetime, minor_per_major: int = 100
) -> Cost:
    """The cost of ``energy_j`` joules drawn evenly over ``[start, end)``.

    The energy is split across price changes in proportion to time: with ``p_i`` in force for
    ``t_i`` of the interval's ``T``, the cost is ``E × Σ(p_i × t_i) / T``, exactly, rounded half to
    even once, in micro-minor units. An interval of no length is priced at ``start``.

    Raises:
        ValueError: on negative or non-finite energy, naive instants, or ``end`` before ``start``.
    """
    energy = _energy(energy_j)
    _check_interval(start, end)
    # In UTC: Python subtracts two datetimes of one zone by their wall clocks.
    start, end = _utc(start), _utc(end)
    scale = Fraction(minor_per_major * MICRO, J_PER_KWH)
    if start == end:
        price = tariff.price_at(start)
        return Cost(round(energy * Fraction(price.per_kwh) * scale), price.fallback)
    spans = tariff.prices_between(start, end)
    weighted = sum(
        (Fraction(s.price.per_kwh) * _us(s.end - s.start) for s in spans), start=Fraction(0)
    )
    total = energy * weighted / _us(end - start) * scale
    return Cost(round(total), any(s.price.fallback for s in spans))  # round(): half to even


def cost_micro_minor(
    tariff: Tariff, energy_j: float, start: datetime, end: datetime, minor_per_major: int = 100
) -> int:
    """:func:`cost` in micro-minor units alone."""
    return cost(tariff, energy_j, start, end, minor_per_major).micro_minor


def standing_charge_micro_minor(tariff: Tariff, days: int, minor_per_major: int = 100) -> int:
    """The standing charge for ``days`` whole days, in micro-minor units (kept apart from cost)."""
    if days < 0:
        raise ValueError(f"a number of days must be 0 or more, not {days}")
    return round(Fraction(tariff.standing_charge_per_day) * days * minor_per_major * MICRO)


def rank_slots(
    tariff: Tariff,
    start: datetime,
    count: int,
    slot: timedelta = timedelta(hours=1),
    *,
    dearest_first: bool = False,
) -> list[SlotPrice]:
    """The ``count`` slots from ``start`` ranked by mean price, cheapest first (or dearest).

    For price-aware heating: ``rank_slots(t, top_of_hour, 12)`` ranks the next twelve hours. Slots
    start at ``start`` itself (pass a whole hour for hourly slots); equal prices keep time order.
    """
    _require_aware(start)
    start = _utc(start)  # slots of real time, not of the wall clock
    if count < 0 or slot <= timedelta(0):
        raise ValueError("the number of slots must be 0 or more and a slot must last some time")
    slots = []
    for i in range(count):
        s, e = start + slot * i, start + slot * (i + 1)
        spans = tariff.prices_between(s, e)
        weighted = sum(
            (Fraction(p.price.per_kwh) * _us(p.end - p.start) for p in spans), Fraction()
        )
        mean = weighted / _us(e - s)
        slots.append(
            SlotPrice(s, e, _to_decimal(mean), fallback=any(p.price.fallback for p in spans))
        )
    return sorted(slots, key=lambda x: x.mean_per_kwh, reverse=dearest_first)


class _Costs:
    """The cost methods every tariff shares (see :func:`cost`)."""

    __slots__ = ()

    def cost(
        self: Tariff, energy_j: float, start: datetime, end: datetime, minor_per_major: int = 100
    ) -> Cost:
        """:func:`cost` with this tariff."""
        return cost(self, energy_j, start, end, minor_per_major)

    def cost_micro_minor(
        self: Tariff, energy_j: float, start: datetime, end: datetime, minor_per_major: int = 100
    ) -> int:
        """:func:`cost` with this tariff, in micro-minor units alone."""
        return cost(self, energy_j, start, end, minor_per_major).micro_minor


# -- flat -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlatTariff(_Costs):
    """One price per kWh (major units) at all times, and a standing charge per day."""

    per_kwh: Decimal
    standing_charge_per_day: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _check_price(self.per_kwh, "the price")
        _check_price(self.standing_charge_per_day, "the standing charge")

    def price_at(self, when: datetime) -> Price:
        _require_aware(when)
        return Price(self.per_kwh)

    def prices_between(self, start: datetime, end: datetime) -> list[PriceSpan]:
        _check_interval(start, end)
        return _merged([PriceSpan(_utc(start), _utc(end), Price(self.per_kwh))])


# -- time of use ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TouPeriod:
    """A price for wall-clock times ``[start, end)`` on some weekdays (0 = Monday).

    ``end`` at or before ``start`` runs past midnight into the next day (23:30–05:30), the weekday
    being the one it starts on; ``time(0)`` as the end means midnight.
    """

    days: frozenset[int]
    start: time
    end: time
    per_kwh: Decimal

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("a period's days must be weekdays 0 (Monday) to 6 (Sunday)")
        for t in (self.start, self.end):
            if t.tzinfo is not None:
                raise ValueError("a period's times are local wall-clock times, without a zone")
        _check_price(self.per_kwh, "a period's price")

    def pieces(self) -> Iterator[tuple[int, float, float]]:
        """(weekday, start minute, end minute) within each day, the overnight part split off."""
        lo, hi = _minutes(self.start), _minutes(self.end)
        for day in sorted(self.days):
            if hi > lo:
                yield day, lo, hi
            else:
                yield day, lo, MINUTES_PER_DAY
                if hi > 0:
                    yield (day + 1) % 7, 0, hi


@dataclass(frozen=True, slots=True)
class TimeOfUseTariff(_Costs):
    """Prices by weekday and local wall time; ``base_per_kwh`` at any time no period covers.

    ``tz`` is the household's time zone (a ``zoneinfo.ZoneInfo``). Periods must not overlap.
    """

    periods: tuple[TouPeriod, ...]
    base_per_kwh: Decimal
    tz: tzinfo
    standing_charge_per_day: Decimal = Decimal(0)
    # Per weekday, the whole day cut into (start minute, end minute, price) pieces (derived).
    _days: tuple[tuple[tuple[float, float, Decimal], ...], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check_price(self.base_per_kwh, "the base price")
        _check_price(self.standing_charge_per_day, "the standing charge")
        days: list[tuple[tuple[float, float, Decimal], ...]] = []
        for day in range(7):
            pieces = sorted(
                (lo, hi, p.per_kwh) for p in self.periods for d, lo, hi in p.pieces() if d == day
            )
            cut: list[tuple[float, float, Decimal]] = []
            at = 0.0
            for lo, hi, price in pieces:
                if lo < at:
                    raise ValueError(
                        f"two time-of-use periods overlap on weekday {day} at {_hhmm(lo)}"
                    )
                if lo > at:
                    cut.append((at, lo, self.base_per_kwh))
                cut.append((lo, hi, price))
                at = hi
            if at < MINUTES_PER_DAY:
                cut.append((at, MINUTES_PER_DAY, self.base_per_kwh))
            days.append(tuple(cut))
        object.__setattr__(self, "_days", tuple(days))

    def price_at(self, when: datetime) -> Price:
        _require_aware(when)
        price, _ = self._lookup(when.astimezone(self.tz).replace(tzinfo=None))
        return Price(price)

    def prices_between(self, start: datetime, end: datetime) -> list[PriceSpan]:
        _check_interval(start, end)
        spans: list[PriceSpan] = []
        # Within a stretch of one UTC offset the wall clock runs with UTC, so each boundary of the
        # local day maps to one instant; clock changes cut the stretches.
        for s, e, offset in _offset_stretches(_utc(start), _utc(end), self.tz):
            t = s
            while t < e:
                local = (t + offset).replace(tzinfo=None)
                price, boundary = self._lookup(local)
                nxt = min(e, (boundary - offset).replace(tzinfo=UTC))
                spans.append(PriceSpan(t, nxt, Price(price)))
                t = nxt
        return _merged(spans)

    def _lookup(self, local: datetime) -> tuple[Decimal, datetime]:
        """The price at a naive local wall time, and the wall time where its piece ends."""
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        minute = (local - midnight) / timedelta(minutes=1)
        for lo, hi, price in self._days[local.weekday()]:
            if lo <= minute < hi:
                return price, midnight + timedelta(minutes=hi)
        raise AssertionError("the pieces of a day cover it")  # pragma: no cover


# -- dynamic price lists --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceInterval:
    """A published price over ``[start, end)``, major units per kWh; instants kept in UTC."""

    start: datetime
    end: datetime
    per_kwh: Decimal

    def __post_init__(self) -> None:
        _check_interval(self.start, self.end)
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        _check_price(self.per_kwh, f"the price from {_iso(self.start)}")
        if self.end == self.start:
            raise PriceListError(f"the price from {_iso(self.start)} ends when it starts")


@dataclass(frozen=True, slots=True)
class DynamicTariff(_Costs):
    """A price list; ``fallback_per_kwh`` for any time it does not cover (gaps, before, after).

    Intervals may come in any order; overlapping ones are refused (identical repeats, as paged
    downloads give, are kept once).
    """

    intervals: tuple[PriceInterval, ...]
    fallback_per_kwh: Decimal
    standing_charge_per_day: Decimal = Decimal(0)
    _starts: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_price(self.fallback_per_kwh, "the fallback price")
        _check_price(self.standing_charge_per_day, "the standing charge")
        rows = sorted(set(self.intervals), key=lambda i: (i.start, i.end))
        for a, b in itertools.pairwise(rows):
            if b.start < a.end:
                raise PriceListError(
                    f"the prices from {_iso(a.start)} and from {_iso(b.start)} overlap"
                )
        object.__setattr__(self, "intervals", tuple(rows))
        object.__setattr__(self, "_starts", tuple(i.start for i in rows))

    @property
    def covered_until(self) -> datetime | None:
        """The end of the last published price (a refresh is due before then), or None."""
        return self.intervals[-1].end if self.intervals else None

    def price_at(self, when: datetime) -> Price:
        _require_aware(when)
        t = _utc(when)
        i = bisect.bisect_right(self._starts, t) - 1
        if i >= 0 and t < self.intervals[i].end:
            return Price(self.intervals[i].per_kwh)
        return Price(self.fallback_per_kwh, fallback=True)

    def prices_between(self, start: datetime, end: datetime) -> list[PriceSpan]:
        _check_interval(start, end)
        s, e = _utc(start), _utc(end)
        spans: list[PriceSpan] = []
        t = s
        i = max(bisect.bisect_right(self._starts, s) - 1, 0)
        while t < e:
            while i < len(self.intervals) and self.intervals[i].end <= t:
                i += 1
            if i < len(self.intervals) and self.intervals[i].start <= t:
                row = self.intervals[i]
                nxt = min(e, row.end)
                spans.append(PriceSpan(t, nxt, Price(row.per_kwh)))
            else:  # a gap: until the next published price, or the end
                nxt = min(e, self.intervals[i].start) if i < len(self.intervals) else e
                spans.append(PriceSpan(t, nxt, Price(self.fallback_per_kwh, fallback=True)))
            t = nxt
        return _merged(spans)


class PriceUnit(StrEnum):
    """The unit a published list states its prices in."""

    MAJOR = "major"  # pounds or euros per kWh
    MINOR = "minor"  # pence or cents per kWh (as the UK's agile prices are published)


def parse_price_json(
    text: str, *, unit: PriceUnit, minor_per_major: int = 100
) -> tuple[PriceInterval, ...]:
    """A price list as the Octopus Energy API publishes it, or a bare list of its rows.

    ``{"results": [{"valid_from": "2026-03-29T00:00:00Z", "valid_to": "…", "value_inc_vat":
    24.36, …}, …]}``, newest first or in any order. Prices are read as exact decimals. A row with
    no ``valid_to`` runs until the next row's ``valid_from`` (open-ended when it is the last).

    Raises:
        PriceListError: naming the first bad row (1-based) and what is wrong with it.
    """
    try:
        doc = json.loads(text, parse_float=Decimal, parse_constant=Decimal)
    except json.JSONDecodeError as exc:
        raise PriceListError(
            f"the price list is not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    rows = doc.get("results") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise PriceListError('a JSON price list must be a list of rows or have a "results" list')
    parsed: list[tuple[str, datetime, datetime | None, Decimal]] = []
    for n, row in enumerate(rows, start=1):
        where = f"row {n}"
        if not isinstance(row, dict):
            raise PriceListError(f"{where} is not an object with valid_from and value_inc_vat")
        start = _parse_time(row.get("valid_from"), where, "valid_from", None)
        end_raw = row.get("valid_to")
        end = None if end_raw is None else _parse_time(end_raw, where, "valid_to", None)
        price = _parse_price(
            row.get("value_inc_vat"), where, "value_inc_vat", unit, minor_per_major
        )
        parsed.append((where, start, end, price))
    return _close_open_ends(parsed)


def parse_price_csv(
    text: str,
    *,
    unit: PriceUnit,
    minor_per_major: int = 100,
    tz: tzinfo | None = None,
    slot: timedelta | None = None,
) -> tuple[PriceInterval, ...]:
    """A CSV price list, with a header row, in one of two shapes.

    * ``valid_from,valid_to,value_inc_vat`` (other columns ignored), rows as the agile API gives;
    * ``start,price``: each price runs until the next row's start; the last one lasts ``slot``, or
      when ``slot`` is None, the most common step between starts.

    Columns are separated by commas, or by semicolons where the header has no comma.

    Times are ISO 8601. A time without a UTC offset is read as wall time in ``tz``; without
    ``tz``, or where that wall time is skipped or repeated by a clock change, it is refused.

    Raises:
        PriceListError: naming the first bad line (the header is line 1) and what is wrong.
    """
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    # Spreadsheets set to a language with decimal commas save CSV with semicolons.
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise PriceListError("the price list is empty")
    names = [h.strip().lower() for h in header]
    if {"valid_from", "value_inc_vat"} <= set(names):
        cols = {"start": "valid_from", "end": "valid_to", "price": "value_inc_vat"}
    elif {"start", "price"} <= set(names):
        cols = {"start": "start", "price": "price"}
    else:
        raise PriceListError(
            "line 1 must name the columns: valid_from,valid_to,value_inc_vat or start,price"
        )
    index = {key: names.index(col) for key, col in cols.items() if col in names}
    parsed: list[tuple[str, datetime, datetime | None, Decimal]] = []
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank lines (a trailing newline, a spreadsheet's empty rows)
        where = f"line {line_no}"
        if len(cells) < len(names):
            raise PriceListError(
                f"{where} has {len(cells)} values where the header names {len(names)}"
            )
        start = _parse_time(cells[index["start"]], where, cols["start"], tz)
        end = None
        if "end" in index and cells[index["end"]].strip():
            end = _parse_time(cells[index["end"]], where, cols["end"], tz)
        price = _parse_price(cells[index["price"]], where, cols["price"], unit, minor_per_major)
        parsed.append((where, start, end, price))
    if "end" not in cols and parsed:
        return _close_by_step(parsed, slot)
    return _close_open_ends(parsed)


def _close_open_ends(
    parsed: list[tuple[str, datetime, datetime | None, Decimal]],
) -> tuple[PriceInterval, ...]:
    ordered = sorted(parsed, key=lambda r: r[1])
    out = []
    for k, (where, start, given_end, price) in enumerate(ordered):
        end = given_end
        if end is None:
            end = ordered[k + 1][1] if k + 1 < len(ordered) else OPEN_END
        if end <= start:
            raise PriceListError(
                f"{where}: valid_to ({_iso(end)}) is not after valid_from ({_iso(start)})"
            )
        out.append(PriceInterval(start, end, price))
    _refuse_overlaps(out, [r[0] for r in ordered])
    return tuple(out)


def _close_by_step(
    parsed: list[tuple[str, datetime, datetime | None, Decimal]], slot: timedelta | None
) -> tuple[PriceInterval, ...]:
    ordered = sorted(parsed, key=lambda r: r[1])
    for (w1, s1, _, _), (w2, s2, _, _) in itertools.pairwise(ordered):
        if s1 == s2:
            raise PriceListError(f"{w2} starts at {_iso(s2)}, as {w1} does")
    if slot is None:
        steps = Counter(b[1] - a[1] for a, b in itertools.pairwise(ordered))
        if not steps:
            raise PriceListError(
                "a start,price list of one row needs the length of its slot to be given"
            )
        slot = steps.most_common(1)[0][0]
    ends = [b[1] for b in ordered[1:]] + [ordered[-1][1] + slot]
    return tuple(PriceInterval(r[1], e, r[3]) for r, e in zip(ordered, ends, strict=True))


def _refuse_overlaps(rows: list[PriceInterval], wheres: list[str]) -> None:
    for k in range(1, len(rows)):
        a, b = rows[k - 1], rows[k]
        if b.start < a.end and (a.start, a.end, a.per_kwh) != (b.start, b.end, b.per_kwh):
            raise PriceListError(
                f"{wheres[k]} (from {_iso(b.start)}) overlaps {wheres[k - 1]} (until {_iso(a.end)})"
            )


def _parse_time(raw: object, where: str, column: str, tz: tzinfo | None) -> datetime:
    if not isinstance(raw, str) or not raw.strip():
        raise PriceListError(f"{where} has no {column}")
    text = raw.strip()
    try:
        # fromisoformat takes "Z" from Python 3.11 on.
        value = datetime.fromisoformat(text)
    except ValueError:
        raise PriceListError(
            f"{where}: {column} {text!r} is not a date and time (ISO 8601, e.g. 2026-03-29T01:00Z)"
        ) from None
    if value.utcoffset() is not None:
        return value.astimezone(UTC)
    if tz is None:
        raise PriceListError(
            f"{where}: {column} {text!r} has no UTC offset; add Z or one such as +01:00"
        )
    instants = {value.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1)}
    real = [i for i in instants if i.astimezone(tz).replace(tzinfo=None) == value]
    if len(real) != 1:
        what = "happens twice" if real else "does not exist"
        raise PriceListError(
            f"{where}: {column} {text!r} {what} in local time (the clocks change); "
            "give it with its UTC offset"
        )
    return real[0]


def _parse_price(
    raw: object, where: str, column: str, unit: PriceUnit, minor_per_major: int
) -> Decimal:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise PriceListError(f"{where} has no {column}")
    if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
        raise PriceListError(f"{where}: {column} {raw!r} is not a number")
    try:
        value = Decimal(raw.strip()) if isinstance(raw, str) else Decimal(raw)
    except InvalidOperation:
        hint = " (use a point for decimals)" if isinstance(raw, str) and "," in raw else ""
        raise PriceListError(f"{where}: {column} {raw!r} is not a number{hint}") from None
    if not value.is_finite():
        raise PriceListError(f"{where}: {column} {raw!r} is not a finite number")
    return value / minor_per_major if unit is PriceUnit.MINOR else value


# -- helpers --------------------------------------------------------------------------------------


def _require_aware(when: datetime) -> None:
    if when.utcoffset() is None:
        raise ValueError("a tariff needs an aware datetime (with its time zone)")


def _check_interval(start: datetime, end: datetime) -> None:
    _require_aware(start)
    _require_aware(end)
    if _utc(end) < _utc(start):
        raise ValueError(f"an interval must not end ({_iso(end)}) before it starts ({_iso(start)})")


def _check_price(value: Decimal, what: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{what} must be a finite Decimal amount, not {value!r}")


def _energy(energy_j: float) -> Fraction:
    try:
        energy = Fraction(energy_j)
    except (ValueError, OverflowError):
        raise ValueError(
            f"energy must be a finite number of joules >= 0, not {energy_j!r}"
        ) from None
    if energy < 0:
        raise ValueError(f"energy must be a finite number of joules >= 0, not {energy_j!r}")
    return energy


def _us(delta: timedelta) -> int:
    """A duration in whole microseconds (exact: timedelta counts microseconds)."""
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _minutes(t: time) -> float:
    return t.hour * 60 + t.minute + (t.second + t.microsecond / 1e6) / 60


def _hhmm(minute: float) -> str:
    return f"{int(minute) // 60:02d}:{int(minute) % 60:02d}"


def _to_decimal(value: Fraction) -> Decimal:
    # Exact whenever the mean terminates (the usual case: halves, quarters of an hour);
    # otherwise 28 significant digits, far finer than any price.
    return Decimal(value.numerator) / Decimal(value.denominator)


def _merged(spans: Sequence[PriceSpan]) -> list[PriceSpan]:
    """Adjacent spans at the same price joined; empty ones dropped."""
    out: list[PriceSpan] = []
    for s in spans:
        if s.end <= s.start and out:
            continue
        if out and out[-1].price == s.price and out[-1].end == s.start:
            out[-1] = PriceSpan(out[-1].start, s.end, s.price)
        else:
            out.append(s)
    return out


def _offset_stretches(
    start: datetime, end: datetime, tz: tzinfo
) -> list[tuple[datetime, datetime, timedelta]]:
    """``[start, end)`` cut where the zone's UTC offset changes: (from, to, offset) in UTC."""
    out: list[tuple[datetime, datetime, timedelta]] = []
    s, offset = start, _offset(start, tz)
    probe = start
    while probe < end:
        nxt = min(probe + _OFFSET_SCAN, end)
        if _offset(nxt, tz) == offset:
            probe = nxt
            continue
        change = _first_change(probe, nxt, tz, offset)
        out.append((s, change, offset))
        s, offset, probe = change, _offset(change, tz), change
    out.append((s, end, offset))
    return [x for x in out if x[0] < x[1]]


def _offset(when: datetime, tz: tzinfo) -> timedelta:
    off = when.astimezone(tz).utcoffset()
    if off is None:
        raise ValueError("the household's time zone gives no UTC offset")
    return off


def _first_change(lo: datetime, hi: datetime, tz: tzinfo, before: timedelta) -> datetime:
    """The first instant in (lo, hi] whose offset is not ``before`` (clock changes fall on whole
    seconds, so the answer is the whole second the bisection closes on)."""
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if _offset(mid, tz) == before:
            lo = mid
        else:
            hi = mid
    whole = hi.replace(microsecond=0)
    if whole > lo and _offset(whole, tz) != before:
        return whole
    return hi


def local_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """The first instant (UTC) at which the wall clock of ``tz`` shows ``wall`` (naive) or later.

    A wall time the clocks repeat gives its first instant; one they skip gives the instant of the
    jump (a day whose midnight is skipped begins when the clocks jump past it).
    """
    if wall.tzinfo is not None:
        raise ValueError("a wall-clock time is naive (without a zone)")
    instants = sorted({wall.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1)})
    for instant in instants:
        if instant.astimezone(tz).replace(tzinfo=None) == wall:
            return instant
    # Skipped: the jump lies between the two readings of the wall time.
    lo, hi = instants[0], instants[-1]
    return _first_change(lo, hi, tz, _offset(lo, tz))
