"""Opening the database file: connections, the health check, and setting a bad file aside."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from heatshare.store.errors import NewerSchemaError, StoreError
from heatshare.store.schema import user_version

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
# Primary result codes (the low byte of an extended code) that mean "this file is damaged or
# not a database", as opposed to "it cannot be opened now" (locked, permission, disk full).
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SIDE_FILES = ("-wal", "-shm", "-journal")


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), shareable across threads.

    ``check_same_thread=False``: the write connection is used under the store's lock from the
    sampler and other threads, and read connections move between request threads through the
    store's pool; neither is ever used by two threads at once.
    """
    conn = sqlite3.connect(
        path,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        if read_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def check_existing(path: Path, known_version: int) -> str | None:
    """Check a file before anything writes to it.

    Returns ``None`` when the file is absent or healthy, else a description of the damage.
    The check opens the file read-only, so a damaged file (and its WAL) is never changed.

    Raises:
        NewerSchemaError: the file's schema is newer than ``known_version``.
        StoreError: the file cannot be opened for a reason other than damage.
    """
    if not path.exists():
        return None
    # A read-only connection to a WAL-mode file creates -wal/-shm when they are missing, and
    # (being read-only) leaves them behind; those it made are removed again below, so a file
    # that is refused (newer schema) is left exactly as it was found.
    wal, shm = path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
    made = [p for p in (wal, shm) if not p.exists()]
    try:
        return _check(path, known_version)
    finally:
        if wal in made and wal.exists() and wal.stat().st_size == 0:
            for p in made:
                p.unlink(missing_ok=True)


def _check(path: Path, known_version: int) -> str | None:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"Could not open the history database {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        version = user_version(conn)
        if version > known_version:
            raise NewerSchemaError(path, version, known_version)
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        if is_corruption(exc):
            return str(exc)
        raise StoreError(f"Could not check the history database {path}: {exc}") from exc
    finally:
        conn.close()
    messages = [str(row[0]) for row in rows]
    if messages == ["ok"]:
        return None
    # quick_check can list thousands of faults, a row holding many lines: keep the log short.
    lines = [line for m in messages for line in m.splitlines() if not line.startswith("***")]
    summary = "; ".join(lines[:3])
    if len(lines) > 3:
        summary += f"; and {len(lines) - 3} more faults"
    return summary[:500]


def set_aside(path: Path, now: float) -> Path:
    """Rename ``path`` (and its -wal/-shm/-journal) with a timestamp suffix; return the new name.

    Nothing is deleted or overwritten: if the name is taken, a counter is added. The side
    files keep their suffix after the new name, so SQLite pairs them again if someone opens
    the set-aside copy to recover data.
    """
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{path.name}.corrupt-{stamp}"
    target = path.with_name(base)
    n = 1
    while any(target.with_name(target.name + s).exists() for s in ("", *_SIDE_FILES)):
        n += 1
        target = path.with_name(f"{base}-{n}")
    path.rename(target)
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    return target
