"""Opening the history database: migrations with a copy first, newer files refused, damaged
files set aside (never overwritten or deleted)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from heatshare.store import NewerSchemaError, Store, StoreError, schema
from heatshare.store.schema import Migration

T0 = 1_699_999_200.0  # 2023-11-14 22:00:00 UTC
STAMP = "20231114T220000Z"
DAMAGED = r"History database .* is damaged"


def version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def make_v1(path: Path) -> None:
    with Store.open(path, now=T0) as s:
        s.write_samples(T0, {"a": 1.5})
        s.set_state("k", "v")


# -- migrations ----------------------------------------------------------------------------


def test_an_empty_file_is_migrated_without_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.touch()  # a version-0 file with nothing in it
    with Store.open(path, now=T0) as s:
        s.write_samples(T0, {"a": 1.0})
        assert s.warnings == []
    assert version_of(path) == len(schema.MIGRATIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.sqlite3"]


def test_a_version_0_file_with_content_is_copied_before_migrating(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    with Store.open(path, now=T0):
        pass
    bak = tmp_path / "h.sqlite3.v0.bak"
    conn = sqlite3.connect(bak)
    try:
        assert conn.execute("SELECT x FROM notes").fetchall() == [("keep me",)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        conn.close()
    assert version_of(path) == len(schema.MIGRATIONS)


V2 = Migration("test: a note on each state row", ("ALTER TABLE state ADD COLUMN note TEXT",))


def test_migrating_v1_to_a_v2_copies_v1_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])  # fakes a v2 after v1
    path = tmp_path / "h.sqlite3"
    make_v1(path)
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, V2])
    with Store.open(path, now=T0) as s:
        assert s.latest("a") == (T0, 1.5)
        assert s.get_state("k") == "v"
    assert version_of(path) == 2
    conn = sqlite3.connect(path)
    try:
        assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(state)")]
    finally:
        conn.close()
    bak = tmp_path / "h.sqlite3.v1.bak"
    assert version_of(bak) == 1
    conn = sqlite3.connect(bak)
    try:
        assert conn.execute("SELECT value FROM sample").fetchall() == [(1.5,)]
        assert "note" not in [r[1] for r in conn.execute("PRAGMA table_info(state)")]
    finally:
        conn.close()
    # The copy is never overwritten: a second migration from v1 gets a new name.
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    make_v1(tmp_path / "other.sqlite3")
    (tmp_path / "other.sqlite3").replace(path)
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, V2])
    Store.open(path, now=T0).close()
    assert (tmp_path / "h.sqlite3.v1.bak.2").exists()
    assert version_of(bak) == 1


def test_a_failed_step_leaves_the_file_at_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    path = tmp_path / "h.sqlite3"
    make_v1(path)
    broken = Migration("broken", ("ALTER TABLE state ADD COLUMN note TEXT", "SELECT nonsense("))
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    with pytest.raises(StoreError, match="Could not prepare"):
        Store.open(path, now=T0)
    monkeypatch.undo()
    assert version_of(path) == 1
    with Store.open(path, now=T0) as s:  # still a good v1 database
        assert s.latest("a") == (T0, 1.5)
        assert s.warnings == []
    assert (tmp_path / "h.sqlite3.v1.bak").exists()


def test_a_newer_file_is_refused_and_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    make_v1(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(schema.MIGRATIONS) + 1}")
    conn.close()
    before = path.read_bytes()
    newer = len(schema.MIGRATIONS) + 1
    with pytest.raises(
        NewerSchemaError, match=rf"newer version of Heatshare \(schema version {newer}"
    ):
        Store.open(path, now=T0)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.sqlite3"]


# -- damaged files -------------------------------------------------------------------------


def test_a_file_of_random_bytes_is_set_aside(tmp_path: Path, expect_log) -> None:
    expect_log(DAMAGED)
    path = tmp_path / "h.sqlite3"
    junk = random.Random(1).randbytes(20_000)
    path.write_bytes(junk)
    (tmp_path / "h.sqlite3-wal").write_bytes(b"not a wal either")
    with Store.open(path, now=T0) as s:
        assert s.warnings == [
            "The history database was damaged and has been set aside as "
            f"h.sqlite3.corrupt-{STAMP}; a new one was started."
        ]
        assert s.series_names() == []
        s.write_samples(T0, {"a": 1.0})
        assert s.latest("a") == (T0, 1.0)
    aside = tmp_path / f"h.sqlite3.corrupt-{STAMP}"
    assert aside.read_bytes() == junk
    assert (tmp_path / f"h.sqlite3.corrupt-{STAMP}-wal").read_bytes() == b"not a wal either"


@pytest.mark.parametrize(
    ("offset", "length", "found"),
    [
        (0, 3 * 4096, "database disk image is malformed"),  # SQLite raises as it reads the pages
        (200, 1000, r"On tree page \d+ cell \d+: .*more faults"),  # quick_check lists faults
    ],
)
def test_a_database_with_pages_overwritten_in_the_middle_is_set_aside(
    tmp_path: Path, expect_log, offset: int, length: int, found: str
) -> None:
    expect_log(DAMAGED + r" \(" + found)
    path = tmp_path / "h.sqlite3"
    with Store.open(path, now=T0) as s:
        for i in range(3000):
            s.write_samples(T0 + i, {"a": float(i), "b": float(-i)})
        s.rollup(T0 + 3000)
    data = bytearray(path.read_bytes())
    page = 4096
    pages = len(data) // page
    assert pages > 20
    mid = pages // 2
    at = mid * page + offset
    data[at : at + length] = random.Random(2).randbytes(length)
    path.write_bytes(bytes(data))
    with Store.open(path, now=T0) as s:
        assert len(s.warnings) == 1
        assert "set aside" in s.warnings[0]
        assert s.series_names() == []
    assert (tmp_path / f"h.sqlite3.corrupt-{STAMP}").read_bytes() == bytes(data)


def test_set_aside_never_overwrites_an_earlier_one(tmp_path: Path, expect_log) -> None:
    expect_log(DAMAGED)
    path = tmp_path / "h.sqlite3"
    for n in (1, 2, 3):
        path.write_bytes(bytes([n]) * 5000)
        Store.open(path, now=T0).close()
    assert (tmp_path / f"h.sqlite3.corrupt-{STAMP}").read_bytes() == b"\x01" * 5000
    assert (tmp_path / f"h.sqlite3.corrupt-{STAMP}-2").read_bytes() == b"\x02" * 5000
    assert (tmp_path / f"h.sqlite3.corrupt-{STAMP}-3").read_bytes() == b"\x03" * 5000


def test_a_file_that_cannot_be_read_is_an_error_not_damage(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.mkdir()  # a folder where the file should be
    with pytest.raises(StoreError):
        Store.open(path, now=T0)
    assert path.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.sqlite3"]
