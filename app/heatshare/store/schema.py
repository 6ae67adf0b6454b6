"""The schema of the history database and its migrations.

The schema version lives in ``PRAGMA user_version``: version *n* means the first *n* steps
of :data:`MIGRATIONS` have been applied. A new version appends a step; a step is never
edited once released. Before an existing file is migrated, a copy is taken with SQLite's
backup API as ``<name>.v<old>.bak`` beside it, so a failed or unwanted upgrade can be undone
by hand.

Time in the tables:

* ``sample.ts_ms``: INTEGER milliseconds since the epoch, UTC (exact keys, no float equality);
* ``rollup_1m.ts`` / ``rollup_1h.ts``: INTEGER seconds since the epoch, UTC, the start of the
  bucket (a multiple of 60 or 3600).

Data tables are ``WITHOUT ROWID`` and keyed ``(series_id, time)``, so a range query of one
series is a single index scan.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from heatshare.store.errors import NewerSchemaError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    """One step from version ``n`` to ``n + 1``: SQL statements run in one transaction."""

    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    "history: series, raw samples, minute and hour rollups, watermarks, energy, state",
    (
        """CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE
        )""",
        """CREATE TABLE sample (
            series_id INTEGER NOT NULL REFERENCES series (id),
            ts_ms INTEGER NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (series_id, ts_ms)
        ) WITHOUT ROWID""",
        """CREATE TABLE rollup_1m (
            series_id INTEGER NOT NULL REFERENCES series (id),
            ts INTEGER NOT NULL,
            n INTEGER NOT NULL,
            min REAL NOT NULL,
            mean REAL NOT NULL,
            max REAL NOT NULL,
            PRIMARY KEY (series_id, ts)
        ) WITHOUT ROWID""",
        """CREATE TABLE rollup_1h (
            series_id INTEGER NOT NULL REFERENCES series (id),
            ts INTEGER NOT NULL,
            n INTEGER NOT NULL,
            min REAL NOT NULL,
            mean REAL NOT NULL,
            max REAL NOT NULL,
            PRIMARY KEY (series_id, ts)
        ) WITHOUT ROWID""",
        # Minutes that received a sample after they had been rolled up: recomputed by the
        # next rollup (see Store.rollup).
        "CREATE TABLE dirty_minute (ts INTEGER PRIMARY KEY) WITHOUT ROWID",
        # The store's own bookkeeping (rollup watermarks, prune cuts), apart from the
        # caller's key/value state so no caller key can collide with it.
        "CREATE TABLE watermark (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        """CREATE TABLE energy_day (
            day TEXT PRIMARY KEY,
            heat_j REAL NOT NULL,
            cost_micro INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
)

_V2 = Migration(
    "network: job journal (attempts and their events), enrolment, cached earnings",
    (
        # One row per attempt the network leased to this machine. Each step of a job's life
        # is written here (committed) before it is taken, so after a crash the agent knows
        # where to resume. Times are REAL seconds since the epoch, UTC.
        """CREATE TABLE job_attempt (
            attempt_id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL,
            network TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            lease_json TEXT NOT NULL,
            phase TEXT NOT NULL,
            leased_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            progress REAL,
            progress_message TEXT NOT NULL DEFAULT '',
            elapsed_s REAL NOT NULL DEFAULT 0,
            energy_j REAL,
            runs INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER,
            result_sha256 TEXT,
            result_size INTEGER,
            result_status TEXT,
            credited_minor INTEGER,
            error TEXT
        )""",
        "CREATE INDEX job_attempt_phase ON job_attempt (phase, leased_at)",
        # Append-only: what happened to each attempt, in order (for the log and for audits).
        """CREATE TABLE job_event (
            id INTEGER PRIMARY KEY,
            attempt_id INTEGER NOT NULL,
            at REAL NOT NULL,
            phase TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX job_event_attempt ON job_event (attempt_id, id)",
        # The network this machine belongs to (at most one). The node token is not here: it
        # lives in a 0600 file in the config folder, like the agent's own token.
        """CREATE TABLE enrolment (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            coordinator_url TEXT NOT NULL,
            node_id INTEGER NOT NULL,
            account_id INTEGER NOT NULL,
            account_name TEXT NOT NULL,
            currency TEXT NOT NULL,
            demo INTEGER NOT NULL,
            heartbeat_interval_s INTEGER NOT NULL,
            enrolled_at REAL NOT NULL
        )""",
        # The network's last answer about this node's earnings, shown while it is offline.
        """CREATE TABLE earnings_cache (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            node_id INTEGER NOT NULL,
            earnings_json TEXT NOT NULL,
            as_of REAL NOT NULL
        )""",
    ),
)

_V3 = Migration(
    "energy: per-minute energy records with their cost, the dynamic price list",
    (
        # A row per minute and heat source: the electricity of the sampler's ticks that began in
        # the minute (UTC ms of the minute's start), what it cost at the tariff's prices (split
        # across price changes, micro-minor units) and the heat it gave. Costs, statements and
        # the dashboard's cost today are all sums of these rows, so they agree to the penny.
        """CREATE TABLE energy_record (
            minute_ms INTEGER NOT NULL,
            source TEXT NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            energy_j REAL NOT NULL,
            heat_j REAL NOT NULL,
            cost_micro INTEGER NOT NULL,
            fallback INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (minute_ms, source)
        ) WITHOUT ROWID""",
        # The dynamic tariff's published prices: [start, end) in UTC microseconds, the price
        # an exact decimal string of major units per kWh.
        """CREATE TABLE price_slot (
            start_us INTEGER PRIMARY KEY,
            end_us INTEGER NOT NULL,
            price TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
)

_V4 = Migration(
    "network: failure reports waiting for the network (the failure outbox)",
    (
        # A failure report is written here in the same commit that marks its attempt failed,
        # and the row goes once the network has answered it (taken, or no longer wanted), so
        # a report survives an outage and a kill -9 and is settled once. ``report_json`` is
        # the report as sent (protocol Failure); times are REAL seconds since the epoch, UTC.
        """CREATE TABLE failure_outbox (
            attempt_id INTEGER PRIMARY KEY,
            network TEXT NOT NULL,
            report_json TEXT NOT NULL,
            queued_at REAL NOT NULL,
            tries INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        )""",
    ),
)

MIGRATIONS: list[Migration] = [_V1, _V2, _V3, _V4]
"""Every step ever released, in order. ``len(MIGRATIONS)`` is the version this code writes."""


def user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def has_schema(conn: sqlite3.Connection) -> bool:
    """Whether the file holds any table, index or view (an empty new file holds none)."""
    return conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None


def backup_path(path: Path, version: int) -> Path:
    """``<name>.v<version>.bak`` beside ``path``; never an existing file."""
    candidate = path.with_name(f"{path.name}.v{version}.bak")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.v{version}.bak.{n}")
    return candidate


def migrate(conn: sqlite3.Connection, path: Path, steps: list[Migration]) -> Path | None:
    """Bring the database on ``conn`` to ``len(steps)``; return the backup taken, if any.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each step runs in its own
    transaction together with its ``user_version`` bump, so a failed step leaves the file at
    the last good version.

    Raises:
        NewerSchemaError: the file's version is newer than ``len(steps)``; nothing is written.
    """
    known = len(steps)
    old = user_version(conn)
    if old > known:
        raise NewerSchemaError(path, old, known)
    if old == known:
        return None
    backup: Path | None = None
    if old > 0 or has_schema(conn):
        backup = backup_path(path, old)
        dest = sqlite3.connect(backup)
        try:
            conn.backup(dest)
        finally:
            dest.close()
        log.info("Copied %s to %s before migrating from schema version %d", path, backup, old)
    for version in range(old, known):
        step = steps[version]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in step.statements:
                conn.execute(statement)
            # user_version lives in the file header, which is part of the transaction.
            conn.execute(f"PRAGMA user_version = {version + 1:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("Migrated %s to schema version %d: %s", path, version + 1, step.description)
    return backup
