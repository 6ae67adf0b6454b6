"""The job journal: every attempt the network leased to this machine, and its steps.

The rule that makes crashes harmless: a step is written (committed) *before* it is taken.
After a crash, ``kill -9`` or a power cut, the phase of each attempt says what to do:

- ``leased`` / ``downloading``: fetch the bundle again (its sha256 is checked);
- ``running``: start the job again in the same slot (its checkpoint folder is kept) while
  the lease holds; a job that had already exited 0 (``exit_code`` set) is packed instead;
- ``uploading`` / ``outbox``: send the result again. The coordinator answers the same bytes
  with the same answer, so a result is never credited twice;
- ``done``, ``failed``, ``cancelled``: history.

A failure is journaled together with its report to the network (the failure outbox, one row
per attempt) in one commit, before the report is sent; the row goes once the network has
answered it. After a crash the report is sent again: the coordinator answers a repeated
report as it answered the first, so the network records the failure once.

The journal lives in the agent's SQLite file (WAL) beside the history; the tables are made by
schema versions 2 and 4 (:mod:`heatshare.store.schema`). It also keeps the enrolment (not the node
token, which lives in a 0600 file) and the network's last answer about earnings.

Threads: one connection under a lock; every method is one short transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

from heatshare.protocol.coordinator_api import Earnings, Failure, Lease
from heatshare.protocol.local_api import JobPhase
from heatshare.store import schema
from heatshare.store.errors import StoreError
from heatshare.store.sqlite_file import connect

#: Phases in which an attempt still needs the agent's work.
ACTIVE_PHASES: Final = (
    JobPhase.LEASED,
    JobPhase.DOWNLOADING,
    JobPhase.RUNNING,
    JobPhase.UPLOADING,
    JobPhase.OUTBOX,
)
FINAL_PHASES: Final = (JobPhase.DONE, JobPhase.FAILED, JobPhase.CANCELLED)

_COLUMNS: Final = (
    "attempt_id, job_id, network, label, lease_json, phase, leased_at, updated_at, started_at, "
    "finished_at, progress, progress_message, elapsed_s, energy_j, runs, exit_code, "
    "result_sha256, result_size, result_status, credited_minor, error"
)
# Columns a caller may set through :meth:`JobJournal.update`. SQL is built only from these
# names and from placeholders (hence the S608 waivers below).
_UPDATABLE: Final = frozenset(
    {
        "started_at",
        "finished_at",
        "progress",
        "progress_message",
        "exit_code",
        "result_sha256",
        "result_size",
        "result_status",
        "credited_minor",
        "error",
    }
)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One row of the journal."""

    attempt_id: int
    job_id: int
    network: str
    label: str
    lease: Lease
    phase: JobPhase
    leased_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    progress: float | None
    progress_message: str
    elapsed_s: float
    energy_j: float | None
    runs: int
    exit_code: int | None
    result_sha256: str | None
    result_size: int | None
    result_status: str | None
    credited_minor: int | None
    error: str | None

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES


@dataclass(frozen=True, slots=True)
class JobEvent:
    attempt_id: int
    at: float
    phase: JobPhase
    note: str


@dataclass(frozen=True, slots=True)
class PendingFailure:
    """A failure report in the outbox: journaled, not yet answered by the network."""

    attempt_id: int
    network: str
    report: Failure
    queued_at: float
    tries: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Enrolment:
    coordinator_url: str
    node_id: int
    account_id: int
    account_name: str
    currency: str
    demo: bool
    heartbeat_interval_s: int
    enrolled_at: float


@dataclass(frozen=True, slots=True)
class CachedEarnings:
    earnings: Earnings
    as_of: float


def _record(row: tuple[Any, ...]) -> AttemptRecord:
    return AttemptRecord(
        attempt_id=row[0],
        job_id=row[1],
        network=row[2],
        label=row[3],
        lease=Lease.model_validate_json(row[4]),
        phase=JobPhase(row[5]),
        leased_at=row[6],
        updated_at=row[7],
        started_at=row[8],
        finished_at=row[9],
        progress=row[10],
        progress_message=row[11],
        elapsed_s=row[12],
        energy_j=row[13],
        runs=row[14],
        exit_code=row[15],
        result_sha256=row[16],
        result_size=row[17],
        result_status=row[18],
        credited_minor=row[19],
        error=row[20],
    )


_PENDING_COLUMNS: Final = "attempt_id, network, report_json, queued_at, tries, last_error"


def _pending(row: tuple[Any, ...]) -> PendingFailure:
    return PendingFailure(
        attempt_id=row[0],
        network=row[1],
        report=Failure.model_validate_json(row[2]),
        queued_at=row[3],
        tries=row[4],
        last_error=row[5],
    )


class JobJournal:
    """The journal on one SQLite connection; see the module's docstring for the rules."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Self:
        """Open the agent's database at ``path``, bringing its schema up to date if needed.

        The agent's :class:`~heatshare.store.Store` normally opened (and checked, and
        migrated) the file first; opening it alone is for tools and tests.

        Raises:
            NewerSchemaError: the file comes from a newer Heatshare.
            StoreError: the file cannot be opened or prepared.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"Could not open the job journal {path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a step must be on disk before it is taken, even across a power cut.
            conn.execute("PRAGMA synchronous = FULL")
            schema.migrate(conn, path, schema.MIGRATIONS)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"Could not prepare the job journal {path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"Could not {action} in the job journal: {exc}") from exc

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"Could not {action} from the job journal: {exc}") from exc

    @staticmethod
    def _event(conn: sqlite3.Connection, attempt_id: int, at: float, phase: str, note: str) -> None:
        conn.execute(
            "INSERT INTO job_event (attempt_id, at, phase, note) VALUES (?, ?, ?, ?)",
            (attempt_id, at, phase, note),
        )

    # --- attempts ------------------------------------------------------------------------

    def add_lease(self, lease: Lease, *, network: str, label: str = "", now: float) -> None:
        """Journal a new lease (phase ``leased``).

        An attempt id seen before from *another* network replaces that old row: ids are
        the coordinator's, and only the current network's history matters for its jobs.
        """
        with self._tx("record a lease") as conn:
            row = conn.execute(
                "SELECT network FROM job_attempt WHERE attempt_id = ?", (lease.attempt_id,)
            ).fetchone()
            if row is not None:
                if row[0] == network:
                    return  # the same lease again: nothing new
                conn.execute("DELETE FROM job_attempt WHERE attempt_id = ?", (lease.attempt_id,))
                conn.execute("DELETE FROM job_event WHERE attempt_id = ?", (lease.attempt_id,))
                conn.execute("DELETE FROM failure_outbox WHERE attempt_id = ?", (lease.attempt_id,))
            conn.execute(
                "INSERT INTO job_attempt (attempt_id, job_id, network, label, lease_json, phase,"
                " leased_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    lease.attempt_id,
                    lease.job_id,
                    network,
                    label,
                    lease.model_dump_json(),
                    JobPhase.LEASED.value,
                    now,
                    now,
                ),
            )
            self._event(conn, lease.attempt_id, now, JobPhase.LEASED.value, f"job {lease.job_id}")

    def set_phase(
        self,
        attempt_id: int,
        phase: JobPhase,
        *,
        now: float,
        note: str = "",
        **fields: object,
    ) -> None:
        """Move an attempt to ``phase`` (and set ``fields``), with an event, in one commit."""
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"not journal columns: {sorted(bad)}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self._tx(f"record the phase {phase.value}") as conn:
            cur = conn.execute(
                f"UPDATE job_attempt SET phase = ?, updated_at = ?{', ' if sets else ''}{sets}"  # noqa: S608
                " WHERE attempt_id = ?",
                (phase.value, now, *fields.values(), attempt_id),
            )
            if cur.rowcount != 1:
                raise KeyError(attempt_id)
            self._event(conn, attempt_id, now, phase.value, note)

    def update(self, attempt_id: int, *, now: float, **fields: object) -> None:
        """Set ``fields`` without a phase change (and without an event): progress and such."""
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"not journal columns: {sorted(bad)}")
        if not fields:
            return
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self._tx("record progress") as conn:
            conn.execute(
                f"UPDATE job_attempt SET updated_at = ?, {sets} WHERE attempt_id = ?",  # noqa: S608
                (now, *fields.values(), attempt_id),
            )

    def start_run(self, attempt_id: int, *, now: float) -> None:
        """Journal a start (or restart) of the job in its slot: phase ``running``, runs + 1."""
        with self._tx("record a start") as conn:
            cur = conn.execute(
                "UPDATE job_attempt SET phase = ?, updated_at = ?, runs = runs + 1,"
                " started_at = COALESCE(started_at, ?), exit_code = NULL WHERE attempt_id = ?",
                (JobPhase.RUNNING.value, now, now, attempt_id),
            )
            if cur.rowcount != 1:
                raise KeyError(attempt_id)
            runs = conn.execute(
                "SELECT runs FROM job_attempt WHERE attempt_id = ?", (attempt_id,)
            ).fetchone()[0]
            note = "started" if runs == 1 else f"restarted (start {runs})"
            self._event(conn, attempt_id, now, JobPhase.RUNNING.value, note)

    def add_run_time(
        self, attempt_id: int, *, seconds: float, energy_j: float | None, now: float
    ) -> None:
        """Add one run's time (and energy, where measured) to the attempt's totals."""
        with self._tx("record run time") as conn:
            conn.execute(
                "UPDATE job_attempt SET updated_at = ?, elapsed_s = elapsed_s + ?,"
                " energy_j = CASE WHEN ? IS NULL THEN energy_j ELSE COALESCE(energy_j, 0) + ? END"
                " WHERE attempt_id = ?",
                (now, max(0.0, seconds), energy_j, energy_j, attempt_id),
            )

    def note(self, attempt_id: int, note: str, *, now: float) -> None:
        """An event without a phase change (the current phase is repeated)."""
        with self._tx("record an event") as conn:
            row = conn.execute(
                "SELECT phase FROM job_attempt WHERE attempt_id = ?", (attempt_id,)
            ).fetchone()
            if row is None:
                raise KeyError(attempt_id)
            self._event(conn, attempt_id, now, row[0], note)

    def fail(
        self, attempt_id: int, report: Failure, *, now: float, note: str, network: str | None = None
    ) -> None:
        """Mark an attempt failed and put its report in the failure outbox, in one commit.

        ``network``: the network the report goes to; by default the attempt's own.
        """
        with self._tx("record a failure") as conn:
            row = conn.execute(
                "SELECT network FROM job_attempt WHERE attempt_id = ?", (attempt_id,)
            ).fetchone()
            if row is None:
                raise KeyError(attempt_id)
            conn.execute(
                "UPDATE job_attempt SET phase = ?, updated_at = ?, error = ?, finished_at = ?"
                " WHERE attempt_id = ?",
                (JobPhase.FAILED.value, now, note, now, attempt_id),
            )
            self._event(conn, attempt_id, now, JobPhase.FAILED.value, note)
            conn.execute(
                "INSERT OR REPLACE INTO failure_outbox (attempt_id, network, report_json,"
                " queued_at) VALUES (?, ?, ?, ?)",
                (attempt_id, network or row[0], report.model_dump_json(), now),
            )

    def failure_outbox(self, network: str | None = None) -> list[PendingFailure]:
        """Failure reports waiting for the network, oldest first."""
        sql = f"SELECT {_PENDING_COLUMNS} FROM failure_outbox"  # noqa: S608
        args: list[object] = []
        if network is not None:
            sql += " WHERE network = ?"
            args.append(network)
        with self._read("list failure reports") as conn:
            rows = conn.execute(sql + " ORDER BY queued_at, attempt_id", args).fetchall()
        return [_pending(r) for r in rows]

    def pending_failure(self, attempt_id: int) -> PendingFailure | None:
        """The attempt's failure report while it waits for the network, else None."""
        with self._read("read a failure report") as conn:
            row = conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM failure_outbox WHERE attempt_id = ?",  # noqa: S608
                (attempt_id,),
            ).fetchone()
        return None if row is None else _pending(row)

    def failure_not_sent(self, attempt_id: int, *, error: str) -> None:
        """Count a try that did not reach the network; the report stays in the outbox."""
        with self._tx("record a failure report's try") as conn:
            conn.execute(
                "UPDATE failure_outbox SET tries = tries + 1, last_error = ? WHERE attempt_id = ?",
                (error, attempt_id),
            )

    def failure_settled(self, attempt_id: int, *, now: float, note: str) -> bool:
        """Take a report out of the outbox (the network answered it), with an event.

        Returns whether it was there (False: settled before, nothing written).
        """
        with self._tx("record a failure report's answer") as conn:
            cur = conn.execute("DELETE FROM failure_outbox WHERE attempt_id = ?", (attempt_id,))
            if cur.rowcount != 1:
                return False
            row = conn.execute(
                "SELECT phase FROM job_attempt WHERE attempt_id = ?", (attempt_id,)
            ).fetchone()
            if row is not None:
                self._event(conn, attempt_id, now, row[0], note)
            return True

    def get(self, attempt_id: int) -> AttemptRecord | None:
        with self._read("read an attempt") as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM job_attempt WHERE attempt_id = ?",  # noqa: S608
                (attempt_id,),
            ).fetchone()
        return None if row is None else _record(row)

    def active(self, network: str | None = None) -> list[AttemptRecord]:
        """Attempts that still need work, oldest lease first (outbox ones included)."""
        marks = ", ".join("?" for _ in ACTIVE_PHASES)
        sql = f"SELECT {_COLUMNS} FROM job_attempt WHERE phase IN ({marks})"  # noqa: S608
        args: list[object] = [p.value for p in ACTIVE_PHASES]
        if network is not None:
            sql += " AND network = ?"
            args.append(network)
        with self._read("list active attempts") as conn:
            rows = conn.execute(sql + " ORDER BY leased_at, attempt_id", args).fetchall()
        return [_record(r) for r in rows]

    def outbox(self, network: str | None = None) -> list[AttemptRecord]:
        """Results waiting for the network, oldest first."""
        return sorted(
            (r for r in self.active(network) if r.phase is JobPhase.OUTBOX),
            key=lambda r: (r.finished_at or r.updated_at, r.attempt_id),
        )

    def recent(self, limit: int = 50) -> list[AttemptRecord]:
        """Finished attempts, the most recent first."""
        marks = ", ".join("?" for _ in FINAL_PHASES)
        with self._read("list finished attempts") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM job_attempt WHERE phase IN ({marks})"  # noqa: S608
                " ORDER BY COALESCE(finished_at, updated_at) DESC, attempt_id DESC LIMIT ?",
                (*(p.value for p in FINAL_PHASES), max(0, limit)),
            ).fetchall()
        return [_record(r) for r in rows]

    def events(self, attempt_id: int) -> list[JobEvent]:
        with self._read("read events") as conn:
            rows = conn.execute(
                "SELECT attempt_id, at, phase, note FROM job_event WHERE attempt_id = ?"
                " ORDER BY id",
                (attempt_id,),
            ).fetchall()
        return [JobEvent(r[0], r[1], JobPhase(r[2]), r[3]) for r in rows]

    # --- enrolment and earnings ----------------------------------------------------------

    def enrolment(self) -> Enrolment | None:
        with self._read("read the enrolment") as conn:
            row = conn.execute(
                "SELECT coordinator_url, node_id, account_id, account_name, currency, demo,"
                " heartbeat_interval_s, enrolled_at FROM enrolment WHERE id = 1"
            ).fetchone()
        if row is None:
            return None
        return Enrolment(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6], row[7])

    def set_enrolment(self, e: Enrolment) -> None:
        with self._tx("record the enrolment") as conn:
            old = conn.execute("SELECT node_id FROM enrolment WHERE id = 1").fetchone()
            if old is not None and old[0] != e.node_id:
                conn.execute("DELETE FROM earnings_cache")
                # Reports of the old node: only its token, now replaced, could send them.
                conn.execute("DELETE FROM failure_outbox")
            conn.execute(
                "INSERT OR REPLACE INTO enrolment (id, coordinator_url, node_id, account_id,"
                " account_name, currency, demo, heartbeat_interval_s, enrolled_at)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    e.coordinator_url,
                    e.node_id,
                    e.account_id,
                    e.account_name,
                    e.currency,
                    int(e.demo),
                    e.heartbeat_interval_s,
                    e.enrolled_at,
                ),
            )

    def clear_enrolment(self) -> None:
        """Forget the enrolment; failure reports to its network can no longer be sent."""
        with self._tx("forget the enrolment") as conn:
            conn.execute("DELETE FROM failure_outbox")
            conn.execute("DELETE FROM enrolment")
            conn.execute("DELETE FROM earnings_cache")

    def cached_earnings(self) -> CachedEarnings | None:
        with self._read("read cached earnings") as conn:
            row = conn.execute(
                "SELECT earnings_json, as_of FROM earnings_cache WHERE id = 1"
            ).fetchone()
        if row is None:
            return None
        return CachedEarnings(Earnings.model_validate_json(row[0]), row[1])

    def cache_earnings(self, earnings: Earnings, *, as_of: float) -> None:
        with self._tx("cache earnings") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO earnings_cache (id, node_id, earnings_json, as_of)"
                " VALUES (1, ?, ?, ?)",
                (earnings.node_id, earnings.model_dump_json(), as_of),
            )


def lease_label(lease: Lease) -> str:
    """A short name for a job: the requester's label, else its command."""
    label = lease.label.strip()
    if label:
        return label[:200]
    return " ".join(lease.command)[:200] or f"job {lease.job_id}"


__all__ = [
    "ACTIVE_PHASES",
    "FINAL_PHASES",
    "AttemptRecord",
    "CachedEarnings",
    "Enrolment",
    "JobEvent",
    "JobJournal",
    "PendingFailure",
    "lease_label",
]
