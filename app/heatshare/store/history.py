"""The agent's history store: samples, rollups, daily energy and small state in one SQLite file.

Time: every timestamp in and out is UTC seconds since the epoch (a float). Raw samples are
kept as INTEGER milliseconds, rollup buckets as INTEGER seconds of the bucket's start.

Retention (applied by :meth:`Store.prune`): raw 1 s samples 48 h, 1-minute rollups 90 days,
1-hour rollups for ever. Nothing is pruned that has not been rolled up yet.

Threads: one write connection guarded by a lock serves :meth:`Store.write_samples` (the
sampler, once a second) and every other write. Reads use a small pool of read-only
connections, so HTTP handler threads read beside the writer (WAL lets them). A pool rather
than one connection per thread because ``ThreadingHTTPServer`` starts a thread per request:
per-thread connections would pile up until close.

Late samples: a sample whose minute has already been rolled up marks that minute dirty; the
next :meth:`Store.rollup` recomputes the minute from its raw samples, and the hour that holds
it when that hour was rolled up too. A minute whose raw samples have been (partly) pruned is
not recomputed: its rollup stays as it was.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Final, Self

from heatshare.store import schema
from heatshare.store.errors import StoreError
from heatshare.store.results import QueryResult, SeriesResult
from heatshare.store.sqlite_file import check_existing, connect, set_aside

log = logging.getLogger(__name__)

RAW_KEEP_S: Final = 48 * 3600
MINUTE_KEEP_S: Final = 90 * 86400
RESOLUTIONS: Final = (1, 60, 3600)
# A first rollup after a long time (or of a database full of raw samples) is done in chunks,
# each its own transaction, so the sampler's writes are not held up for seconds.
_ROLLUP_CHUNK_S: Final = 3 * 3600
_MAX_IDLE_READERS: Final = 4
_DAY_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")

# Watermark names (table ``watermark``); each an INTEGER.
_WM_MINUTE: Final = "minute_rolled_until"  # s: minutes starting before this are rolled up
_WM_HOUR: Final = "hour_rolled_until"  # s: hours starting before this are rolled up
_WM_RAW_CUT: Final = "raw_pruned_before_ms"  # ms: raw samples before this may be gone
_WM_MINUTE_CUT: Final = "minute_pruned_before"  # s: minute rollups before this may be gone

_MINUTE_SQL: Final = """
INSERT OR REPLACE INTO rollup_1m (series_id, ts, n, min, mean, max)
SELECT s.id, (r.ts_ms / 60000) * 60, COUNT(*), MIN(r.value), AVG(r.value), MAX(r.value)
FROM series AS s JOIN sample AS r ON r.series_id = s.id
WHERE r.ts_ms >= ? AND r.ts_ms < ?
GROUP BY s.id, r.ts_ms / 60000
"""
_HOUR_SQL: Final = """
INSERT OR REPLACE INTO rollup_1h (series_id, ts, n, min, mean, max)
SELECT s.id, (m.ts / 3600) * 3600, SUM(m.n), MIN(m.min), SUM(m.mean * m.n) / SUM(m.n), MAX(m.max)
FROM series AS s JOIN rollup_1m AS m ON m.series_id = s.id
WHERE m.ts >= ? AND m.ts < ?
GROUP BY s.id, m.ts / 3600
"""
# Raw samples grouped into minutes: (minute start s, n, sum, min, max).
_RAW_MINUTES_SQL: Final = """
SELECT (ts_ms / 60000) * 60, COUNT(*), SUM(value), MIN(value), MAX(value)
FROM sample WHERE series_id = ? AND ts_ms >= ? AND ts_ms <= ?
GROUP BY ts_ms / 60000 ORDER BY ts_ms / 60000
"""

# (bucket start s, n, sum, min, max): a partial aggregate that can be merged.
_Bucket = tuple[int, int, float, float, float]


def _floor_to(seconds: float, step: int) -> int:
    return math.floor(seconds / step) * step


def _check_day(day: str) -> None:
    try:
        ok = _DAY_RE.fullmatch(day) is not None and date.fromisoformat(day) is not None
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"day must be a date written YYYY-MM-DD, not {day!r}")


class Store:
    """The history database. Build it with :meth:`open`; it is safe to share across threads.

    Attributes:
        path: the database file.
        warnings: sentences for the user about what happened at open (a damaged file set
            aside); the agent passes them on to the app as they are.
    """

    def __init__(self, path: Path, writer: sqlite3.Connection, warnings: list[str], now: float):
        self.path = path
        self.warnings = warnings
        self._writer: sqlite3.Connection | None = writer
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle_readers: list[sqlite3.Connection] = []
        self._closed = False
        self._ids: dict[str, int] = {}  # series name -> id; written under the write lock
        self._minute_wm = self._watermark(writer, _WM_MINUTE)
        # The latest time seen (open, writes, rollup, prune): "now" for a query's retention.
        self._now = now

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, now: float) -> Self:
        """Open (or create) the database at ``path``.

        Creates missing folders; checks an existing file with ``PRAGMA quick_check`` and sets
        a damaged one aside (see :attr:`warnings`); copies the file before migrating it.

        Raises:
            NewerSchemaError: the file comes from a newer Heatshare; it is left untouched.
            StoreError: the file cannot be opened, checked or migrated.
        """
        path = Path(path)
        warnings: list[str] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Could not create the folder for {path}: {exc}") from exc
        known = len(schema.MIGRATIONS)
        damage = check_existing(path, known)
        if damage is not None:
            try:
                aside = set_aside(path, now)
            except OSError as exc:
                raise StoreError(
                    f"The history database {path} is damaged ({damage}) and could not be "
                    f"moved aside: {exc}"
                ) from exc
            log.warning("History database %s is damaged (%s); set aside as %s", path, damage, aside)
            warnings.append(
                f"The history database was damaged and has been set aside as {aside.name}; "
                "a new one was started."
            )
        try:
            writer = connect(path)
        except sqlite3.Error as exc:
            raise StoreError(f"Could not open the history database {path}: {exc}") from exc
        try:
            mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                # Some network file systems cannot share memory for WAL; the store still
                # works, only readers then wait for the writer.
                log.info("History database %s runs in %s mode, not WAL", path, mode)
            schema.migrate(writer, path, schema.MIGRATIONS)
            return cls(path, writer, warnings, now)
        except sqlite3.Error as exc:
            writer.close()
            raise StoreError(f"Could not prepare the history database {path}: {exc}") from exc
        except BaseException:
            writer.close()
            raise

    def close(self) -> None:
        """Close every connection. Idempotent; any later call raises :class:`StoreError`."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle_readers = self._idle_readers, []
        for conn in idle:
            conn.close()
        with self._write_lock:
            if self._writer is not None:
                try:
                    self._writer.execute("PRAGMA optimize")
                except sqlite3.Error as exc:  # closing must not fail on a best-effort tune-up
                    log.debug("PRAGMA optimize failed: %s", exc)
                self._writer.close()
                self._writer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction under the write lock; sqlite errors become StoreError."""
        with self._write_lock:
            conn = self._writer
            if conn is None:
                raise StoreError("The history database is closed.")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    # Ids of series created in the rolled-back transaction are void.
                    self._ids.clear()
                    self._minute_wm = self._watermark(conn, _WM_MINUTE)
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"Could not {action} in the history database: {exc}") from exc

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        """A read-only connection from the pool, in one read transaction (one snapshot)."""
        with self._pool_lock:
            if self._closed:
                raise StoreError("The history database is closed.")
            conn = self._idle_readers.pop() if self._idle_readers else None
        try:
            if conn is None:
                conn = connect(self.path, read_only=True)
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"Could not {action} from the history database: {exc}") from exc
        finally:
            if conn is not None:
                with self._pool_lock:
                    keep = not self._closed and len(self._idle_readers) < _MAX_IDLE_READERS
                    if keep:
                        self._idle_readers.append(conn)
                if not keep:
                    conn.close()

    @staticmethod
    def _watermark(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT value FROM watermark WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _set_watermark(conn: sqlite3.Connection, name: str, value: int) -> None:
        conn.execute(
            "INSERT INTO watermark (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def _series_id(self, conn: sqlite3.Connection, name: str) -> int:
        """The id of series ``name``, created on first use. Call under the write lock."""
        sid = self._ids.get(name)
        if sid is None:
            conn.execute("INSERT OR IGNORE INTO series (name) VALUES (?)", (name,))
            row = conn.execute("SELECT id FROM series WHERE name = ?", (name,)).fetchone()
            sid = int(row[0])
            self._ids[name] = sid
        return sid

    # -- samples ---------------------------------------------------------------------------

    def write_samples(self, ts: float, values: Mapping[str, float | None]) -> None:
        """Store one sample per series at ``ts`` (UTC s) in one transaction.

        ``None`` (a reading the hardware does not offer) and NaN are skipped; a series is
        created the first time it gets a value. A second write at the same millisecond
        replaces the first.
        """
        if not math.isfinite(ts):
            raise ValueError(f"ts must be a finite number of seconds, not {ts!r}")
        ts_ms = round(ts * 1000)
        with self._write("store samples") as conn:
            rows = [
                (self._series_id(conn, name), ts_ms, float(value))
                for name, value in values.items()
                if value is not None and not math.isnan(value)
            ]
            if rows:
                conn.executemany(
                    "INSERT OR REPLACE INTO sample (series_id, ts_ms, value) VALUES (?, ?, ?)",
                    rows,
                )
                minute = (ts_ms // 60000) * 60
                if minute < self._minute_wm:
                    conn.execute("INSERT OR IGNORE INTO dirty_minute (ts) VALUES (?)", (minute,))
        self._now = max(self._now, ts)

    def rollup(self, now: float) -> None:
        """Roll up every complete minute, then every complete hour, up to ``now``.

        Minute rollups (count, min, mean, max) come from the raw samples; hour rollups from
        the minute rollups, weighted by count, so an hour's mean is the mean of its samples.
        Incremental (watermarks) and idempotent: a second call with the same ``now`` changes
        nothing. Late samples are handled as the module docstring says.
        """
        self._now = max(self._now, now)
        minute_target = _floor_to(now, 60)
        hour_target = _floor_to(now, 3600)
        with self._write("recompute late minutes") as conn:
            self._redo_dirty(conn)
        while True:
            with self._write("roll up minutes") as conn:
                start = self._watermark(conn, _WM_MINUTE)
                if start >= minute_target:
                    break
                nxt = self._next_raw_ms(conn, start * 1000)
                if nxt is None or nxt >= minute_target * 1000:
                    stop = minute_target  # nothing left to roll up: jump to the target
                else:
                    start = max(start, (nxt // 60000) * 60)
                    stop = min(minute_target, start + _ROLLUP_CHUNK_S)
                    conn.execute(_MINUTE_SQL, (start * 1000, stop * 1000))
                self._set_watermark(conn, _WM_MINUTE, stop)
                self._minute_wm = stop
        with self._write("roll up hours") as conn:
            start = self._watermark(conn, _WM_HOUR)
            if start < hour_target:
                conn.execute(_HOUR_SQL, (start, hour_target))
                self._set_watermark(conn, _WM_HOUR, hour_target)

    @staticmethod
    def _next_raw_ms(conn: sqlite3.Connection, from_ms: int) -> int | None:
        """The earliest raw sample at or after ``from_ms`` over all series (index lookups)."""
        row = conn.execute(
            "SELECT MIN((SELECT MIN(ts_ms) FROM sample WHERE series_id = s.id AND ts_ms >= ?)) "
            "FROM series AS s",
            (from_ms,),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _redo_dirty(self, conn: sqlite3.Connection) -> None:
        minutes = [int(r[0]) for r in conn.execute("SELECT ts FROM dirty_minute ORDER BY ts")]
        if not minutes:
            return
        raw_cut_ms = self._watermark(conn, _WM_RAW_CUT)
        minute_cut = self._watermark(conn, _WM_MINUTE_CUT)
        hour_wm = self._watermark(conn, _WM_HOUR)
        hours: set[int] = set()
        for minute in minutes:
            if minute * 1000 < raw_cut_ms:
                log.debug(
                    "Late samples in minute %d: its raw samples are pruned; kept as is", minute
                )
                continue
            conn.execute(_MINUTE_SQL, (minute * 1000, (minute + 60) * 1000))
            hour = _floor_to(minute, 3600)
            if hour < hour_wm and hour >= minute_cut:
                hours.add(hour)
        for hour in sorted(hours):
            conn.execute(_HOUR_SQL, (hour, hour + 3600))
        conn.execute("DELETE FROM dirty_minute")
        log.debug("Recomputed %d late minute(s) and %d hour(s)", len(minutes), len(hours))

    def prune(self, now: float) -> None:
        """Delete raw samples older than 48 h and minute rollups older than 90 days.

        Only what has been rolled up is deleted, so call :meth:`rollup` first to prune
        exactly to those limits. Hour rollups are kept for ever.
        """
        self._now = max(self._now, now)
        with self._write("prune old history") as conn:
            raw_cut_ms = min(
                math.ceil((now - RAW_KEEP_S) * 1000), self._watermark(conn, _WM_MINUTE) * 1000
            )
            minute_cut = min(math.ceil(now - MINUTE_KEEP_S), self._watermark(conn, _WM_HOUR))
            # "series_id IN (...)" makes each delete a range scan of the key per series.
            conn.execute(
                "DELETE FROM sample WHERE series_id IN (SELECT id FROM series) AND ts_ms < ?",
                (raw_cut_ms,),
            )
            conn.execute(
                "DELETE FROM rollup_1m WHERE series_id IN (SELECT id FROM series) AND ts < ?",
                (minute_cut,),
            )
            if raw_cut_ms > self._watermark(conn, _WM_RAW_CUT):
                self._set_watermark(conn, _WM_RAW_CUT, raw_cut_ms)
            if minute_cut > self._watermark(conn, _WM_MINUTE_CUT):
                self._set_watermark(conn, _WM_MINUTE_CUT, minute_cut)

    # -- queries ---------------------------------------------------------------------------

    def pick_resolution(
        self, start: float, end: float, *, max_points: int = 4000, now: float | None = None
    ) -> int:
        """The finest resolution (1, 60 or 3600 s) with at most ``max_points`` points over
        ``[start, end]`` whose data is still kept for the whole range (raw samples 48 h,
        minute rollups 90 days, before ``now``). Hour rollups when nothing finer fits, even
        past ``max_points`` (8760 points a year)."""
        now = self._now if now is None else now
        keep: dict[int, float] = {1: RAW_KEEP_S, 60: MINUTE_KEEP_S, 3600: math.inf}
        for res in RESOLUTIONS:
            points = math.floor((end - start) / res) + 1
            if points <= max_points and start >= now - keep[res]:
                return res
        return RESOLUTIONS[-1]

    def query(
        self,
        names: Sequence[str],
        start: float,
        end: float,
        *,
        max_points: int = 4000,
        now: float | None = None,
    ) -> QueryResult:
        """Series ``names`` over ``[start, end]`` (UTC s), at the resolution of
        :meth:`pick_resolution`.

        Raw samples come with ``min``/``max`` ``None``. Rollup buckets are those that overlap
        the range (the first may start before ``start``); buckets not rolled up yet (the
        current minute or hour) are computed on the fly from finer data, so a chart always
        reaches the latest sample. ``now`` defaults to the latest time the store has seen.

        Raises:
            ValueError: an unknown series name, ``end < start``, or a bad ``max_points``.
        """
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError("start and end must be finite numbers of seconds")
        if end < start:
            raise ValueError(f"end ({end}) is before start ({start})")
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, not {max_points}")
        names = list(names)
        res = self.pick_resolution(start, end, max_points=max_points, now=now)
        with self._read("read history") as conn:
            ids: dict[str, int] = dict(conn.execute("SELECT name, id FROM series").fetchall())
            unknown = [n for n in names if n not in ids]
            if unknown:
                known = ", ".join(sorted(ids)) or "none yet"
                raise ValueError(
                    f"Unknown series: {', '.join(repr(n) for n in unknown)}. Known series: {known}."
                )
            if res == 1:
                series = [self._raw(conn, n, ids[n], start, end) for n in names]
            else:
                minute_wm = self._watermark(conn, _WM_MINUTE)
                hour_wm = self._watermark(conn, _WM_HOUR)
                series = [
                    self._rolled(
                        conn,
                        n,
                        ids[n],
                        res=res,
                        start=start,
                        end=end,
                        minute_wm=minute_wm,
                        hour_wm=hour_wm,
                    )
                    for n in names
                ]
        return QueryResult(start=start, end=end, resolution_s=res, series=series)

    @staticmethod
    def _raw(
        conn: sqlite3.Connection, name: str, sid: int, start: float, end: float
    ) -> SeriesResult:
        rows = conn.execute(
            "SELECT ts_ms, value FROM sample WHERE series_id = ? AND ts_ms >= ? AND ts_ms <= ? "
            "ORDER BY ts_ms",
            (sid, math.ceil(start * 1000), math.floor(end * 1000)),
        ).fetchall()
        t = [r[0] / 1000 for r in rows]
        mean: list[float | None] = [r[1] for r in rows]
        return SeriesResult(name=name, t=t, mean=mean, min=None, max=None)

    @staticmethod
    def _rolled(
        conn: sqlite3.Connection,
        name: str,
        sid: int,
        *,
        res: int,
        start: float,
        end: float,
        minute_wm: int,
        hour_wm: int,
    ) -> SeriesResult:
        first = _floor_to(start, res)
        table, rolled_until = ("rollup_1m", minute_wm) if res == 60 else ("rollup_1h", hour_wm)
        rows: list[tuple[float, float | None, float | None, float | None]] = conn.execute(
            f"SELECT ts, min, mean, max FROM {table} "  # noqa: S608 - table is one of two constants
            "WHERE series_id = ? AND ts >= ? AND ts <= ? AND ts < ? ORDER BY ts",
            (sid, first, end, rolled_until),
        ).fetchall()
        # The tail not rolled up yet: raw samples since the minute watermark, grouped by
        # minute, and for hours also the minute rollups since the hour watermark.
        tail: list[_Bucket] = []
        if res == 3600:
            tail += conn.execute(
                "SELECT ts, n, mean * n, min, max FROM rollup_1m "
                "WHERE series_id = ? AND ts >= ? AND ts <= ? AND ts < ? ORDER BY ts",
                (sid, max(first, hour_wm), end, minute_wm),
            ).fetchall()
        tail += conn.execute(
            _RAW_MINUTES_SQL, (sid, max(first, minute_wm) * 1000, math.floor(end * 1000))
        ).fetchall()
        merged: dict[int, list[float]] = {}
        for ts, n, total, lo, hi in tail:
            key = _floor_to(ts, res)
            acc = merged.get(key)
            if acc is None:
                merged[key] = [n, total, lo, hi]
            else:
                acc[0] += n
                acc[1] += total
                acc[2] = min(acc[2], lo)
                acc[3] = max(acc[3], hi)
        rows += [(k, a[2], a[1] / a[0], a[3]) for k, a in sorted(merged.items())]
        return SeriesResult(
            name=name,
            t=[float(r[0]) for r in rows],
            mean=[r[2] for r in rows],
            min=[r[1] for r in rows],
            max=[r[3] for r in rows],
        )

    def series_names(self) -> list[str]:
        """Every series that has ever had a value, sorted by name."""
        with self._read("list series") as conn:
            return [str(r[0]) for r in conn.execute("SELECT name FROM series ORDER BY name")]

    def latest(self, name: str) -> tuple[float, float] | None:
        """``(ts, value)`` of the newest raw sample of ``name``; ``None`` if there is none."""
        with self._read("read the latest sample") as conn:
            row = conn.execute(
                "SELECT r.ts_ms, r.value FROM series AS s JOIN sample AS r ON r.series_id = s.id "
                "WHERE s.name = ? ORDER BY r.ts_ms DESC LIMIT 1",
                (name,),
            ).fetchone()
        return None if row is None else (row[0] / 1000, float(row[1]))

    # -- energy and state ------------------------------------------------------------------

    def add_energy(self, day: str, heat_j: float, cost_micro: int) -> None:
        """Add heat (J) and cost (integer micro-units) to the total of local ``day``."""
        _check_day(day)
        if not math.isfinite(heat_j):
            raise ValueError(f"heat_j must be a finite number, not {heat_j!r}")
        with self._write("add to the day's energy") as conn:
            conn.execute(
                "INSERT INTO energy_day (day, heat_j, cost_micro) VALUES (?, ?, ?) "
                "ON CONFLICT (day) DO UPDATE SET heat_j = heat_j + excluded.heat_j, "
                "cost_micro = cost_micro + excluded.cost_micro",
                (day, float(heat_j), int(cost_micro)),
            )

    def day_energy(self, day: str) -> tuple[float, int]:
        """``(heat_j, cost_micro)`` of local ``day``; ``(0.0, 0)`` when nothing was added."""
        _check_day(day)
        with self._read("read the day's energy") as conn:
            row = conn.execute(
                "SELECT heat_j, cost_micro FROM energy_day WHERE day = ?", (day,)
            ).fetchone()
        return (0.0, 0) if row is None else (float(row[0]), int(row[1]))

    def get_state(self, key: str) -> str | None:
        with self._read("read a setting") as conn:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self._write("save a setting") as conn:
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
