"""Energy records and the dynamic price list, in the agent's history database.

Records: one row per minute (UTC) and heat source. Each sampler tick adds its interval's
electricity, cost and heat to the row of the minute in which the interval began, in one small
transaction, so a crash loses at most the tick in flight. Figures for any period are sums of rows
(a row counts in the period in which its minute starts), which is why the dashboard, the costs and
the statements agree to the penny.

Prices: the published prices of a dynamic tariff, ``[start, end)`` in UTC microseconds (exact
keys), each an exact decimal string. An import replaces the prices its own span overlaps and keeps
the others, so a day-ahead list adds to what is held.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from heatshare.domain.heat_cost import EnergyRecord
from heatshare.domain.readings import Provenance
from heatshare.domain.tariffs import PriceInterval
from heatshare.store.history import Store

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(when: datetime) -> int:
    return (when.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def _us(when: datetime) -> int:
    return (when.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A minute's row: the domain's record, and whether any of it was priced at the fallback."""

    record: EnergyRecord
    fallback: bool


@dataclass(frozen=True, slots=True)
class SourceSums:
    """One source's sums over a period: joules drawn, heat, cost (micro-minor), any fallback."""

    source: Provenance
    energy_j: float
    heat_j: float
    cost_micro: int
    fallback: bool


class EnergyLedger:
    """The energy records and price list of one :class:`~heatshare.store.Store`.

    Uses the store's own connections (its locked writer and its pool of readers), so it is as
    safe to share across threads as the store is.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- records ------------------------------------------------------------------------------

    def book(
        self,
        start: datetime,
        end: datetime,
        source: Provenance,
        energy_j: float,
        cost_micro: int,
        *,
        heat_j: float | None = None,
        fallback: bool = False,
    ) -> None:
        """Add one interval ``[start, end)`` to the row of the minute ``start`` falls in."""
        if start.utcoffset() is None or end.utcoffset() is None:
            raise ValueError("an energy record's start and end need their time zone")
        heat = energy_j if heat_j is None else heat_j
        for name, value in (("energy_j", energy_j), ("heat_j", heat)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of joules >= 0, not {value!r}")
        start_ms, end_ms = _ms(start), _ms(end)
        if end_ms < start_ms:
            raise ValueError("an energy record must not end before it starts")
        minute_ms = start_ms - start_ms % 60_000
        with self._store._write("book energy") as conn:
            conn.execute(
                "INSERT INTO energy_record (minute_ms, source, start_ms, end_ms, energy_j, heat_j,"
                " cost_micro, fallback) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (minute_ms, source) DO UPDATE SET "
                "start_ms = MIN(start_ms, excluded.start_ms), "
                "end_ms = MAX(end_ms, excluded.end_ms), "
                "energy_j = energy_j + excluded.energy_j, heat_j = heat_j + excluded.heat_j, "
                "cost_micro = cost_micro + excluded.cost_micro, "
                "fallback = MAX(fallback, excluded.fallback)",
                (
                    minute_ms,
                    source.value,
                    start_ms,
                    end_ms,
                    float(energy_j),
                    float(heat),
                    int(cost_micro),
                    int(fallback),
                ),
            )

    def records(self, start: datetime, end: datetime) -> list[StoredRecord]:
        """The rows whose minute starts in ``[start, end)``, oldest first.

        A record's ``start`` is its minute's start (so it counts in the period that minute is
        in), its ``end`` the end of the last interval booked into it.
        """
        with self._store._read("read energy records") as conn:
            rows = conn.execute(
                "SELECT minute_ms, source, end_ms, energy_j, heat_j, cost_micro, fallback "
                "FROM energy_record WHERE minute_ms >= ? AND minute_ms < ? "
                "ORDER BY minute_ms, source",
                (_ms(start), _ms(end)),
            ).fetchall()
        out = []
        for minute_ms, source, end_ms, energy_j, heat_j, cost, fallback in rows:
            try:
                provenance = Provenance(source)
            except ValueError:
                continue  # a source a newer version named: not counted rather than misread
            minute = _from_ms(int(minute_ms))
            record = EnergyRecord(
                start=minute,
                end=max(minute, _from_ms(int(end_ms))),
                source=provenance,
                energy_j=float(energy_j),
                cost_micro_minor=int(cost),
                heat_j=float(heat_j),
            )
            out.append(StoredRecord(record, bool(fallback)))
        return out

    def sums(self, start: datetime, end: datetime) -> list[SourceSums]:
        """Per source, the sums of the rows whose minute starts in ``[start, end)``.

        For long periods (a season is some 300 000 rows): summed by SQLite, not in Python.
        """
        with self._store._read("sum energy records") as conn:
            rows = conn.execute(
                "SELECT source, SUM(energy_j), SUM(heat_j), SUM(cost_micro), MAX(fallback) "
                "FROM energy_record WHERE minute_ms >= ? AND minute_ms < ? "
                "GROUP BY source ORDER BY source",
                (_ms(start), _ms(end)),
            ).fetchall()
        out = []
        for source, energy_j, heat_j, cost, fallback in rows:
            try:
                provenance = Provenance(source)
            except ValueError:
                continue
            out.append(
                SourceSums(provenance, float(energy_j), float(heat_j), int(cost), bool(fallback))
            )
        return out

    def cost_micro(self, start: datetime, end: datetime) -> int:
        """The sum of the costs of the rows whose minute starts in ``[start, end)``."""
        with self._store._read("read energy costs") as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(cost_micro), 0) FROM energy_record "
                "WHERE minute_ms >= ? AND minute_ms < ?",
                (_ms(start), _ms(end)),
            ).fetchone()
        return int(row[0])

    # -- prices -------------------------------------------------------------------------------

    def replace_prices(self, intervals: Sequence[PriceInterval]) -> None:
        """Store a published list: the prices held over its span are replaced, the rest kept.

        A held price that overlaps the new list's span only in part goes as a whole: a price
        list never holds two prices for one instant.
        """
        if not intervals:
            return
        first = min(i.start for i in intervals)
        last = max(i.end for i in intervals)
        with self._store._write("store the price list") as conn:
            conn.execute(
                "DELETE FROM price_slot WHERE start_us < ? AND end_us > ?",
                (_us(last), _us(first)),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO price_slot (start_us, end_us, price) VALUES (?, ?, ?)",
                [(_us(i.start), _us(i.end), str(i.per_kwh)) for i in intervals],
            )

    def prices(self) -> tuple[PriceInterval, ...]:
        """Every price held, in order."""
        with self._store._read("read the price list") as conn:
            rows = conn.execute(
                "SELECT start_us, end_us, price FROM price_slot ORDER BY start_us"
            ).fetchall()
        return tuple(
            PriceInterval(_from_us(int(s)), _from_us(int(e)), Decimal(str(p))) for s, e, p in rows
        )

    def prune_prices(self, before: datetime) -> None:
        """Forget prices that ended before ``before`` (their costs are in the records)."""
        with self._store._write("prune the price list") as conn:
            conn.execute("DELETE FROM price_slot WHERE end_us <= ?", (_us(before),))
