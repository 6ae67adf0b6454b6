"""The history store's everyday API: samples, queries, energy, state, threads, close."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from heatshare.store import QueryResult, SeriesResult, Store, StoreError, schema

T0 = 1_699_999_200.0  # a whole hour, UTC


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "history.sqlite3", now=T0)
    yield s
    s.close()


def test_open_creates_folders_in_wal_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "history.sqlite3"
    with Store.open(path, now=T0) as s:
        assert s.warnings == []
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    assert {"series", "sample", "rollup_1m", "rollup_1h", "energy_day", "state"} <= tables
    assert not list(path.parent.glob("*.bak"))


def test_none_and_nan_are_not_stored_and_create_no_series(store: Store) -> None:
    store.write_samples(T0, {"cpu.temp_c": 41.5, "gpu0.fan_pct": None, "x.nan": float("nan")})
    assert store.series_names() == ["cpu.temp_c"]
    assert store.latest("cpu.temp_c") == (T0, 41.5)
    assert store.latest("gpu0.fan_pct") is None
    assert store.latest("never.seen") is None


def test_latest_is_the_newest_sample_whatever_the_write_order(store: Store) -> None:
    store.write_samples(T0 + 2, {"a": 2.0})
    store.write_samples(T0 + 1, {"a": 1.0})
    store.write_samples(T0 + 0.25, {"a": 0.5})
    assert store.latest("a") == (T0 + 2, 2.0)


def test_raw_query_is_exact_inclusive_and_in_the_order_asked(store: Store) -> None:
    for i in range(10):
        store.write_samples(T0 + i, {"a": float(i), "b": 100.0 + i})
    store.write_samples(T0 + 3.5, {"b": -1.0})  # b only
    result = store.query(["b", "a"], T0 + 2, T0 + 4)
    assert result == QueryResult(
        start=T0 + 2,
        end=T0 + 4,
        resolution_s=1,
        series=[
            SeriesResult(
                "b", [T0 + 2, T0 + 3, T0 + 3.5, T0 + 4], [102.0, 103.0, -1.0, 104.0], None, None
            ),
            SeriesResult("a", [T0 + 2, T0 + 3, T0 + 4], [2.0, 3.0, 4.0], None, None),
        ],
    )
    assert store.query(["a"], T0 + 20, T0 + 30).series[0].t == []


def test_same_millisecond_replaces(store: Store) -> None:
    store.write_samples(T0, {"a": 1.0})
    store.write_samples(T0 + 0.0001, {"a": 2.0})
    assert store.query(["a"], T0, T0 + 1).series[0].mean == [2.0]


def test_query_rejects_unknown_names_and_bad_ranges(store: Store) -> None:
    store.write_samples(T0, {"cpu.temp_c": 40.0})
    with pytest.raises(
        ValueError, match=r"Unknown series: 'gpu9\.temp_c'\. Known series: cpu\.temp_c"
    ):
        store.query(["cpu.temp_c", "gpu9.temp_c"], T0, T0 + 1)
    with pytest.raises(ValueError, match="before start"):
        store.query(["cpu.temp_c"], T0 + 1, T0)
    with pytest.raises(ValueError, match="max_points"):
        store.query(["cpu.temp_c"], T0, T0 + 1, max_points=0)
    with pytest.raises(ValueError, match="finite"):
        store.query(["cpu.temp_c"], float("nan"), T0)
    # The store still works after a refused query (the read connection went back clean).
    assert store.query(["cpu.temp_c"], T0, T0).series[0].mean == [40.0]


def test_energy_adds_up_per_day(store: Store) -> None:
    assert store.day_energy("2024-03-01") == (0.0, 0)
    store.add_energy("2024-03-01", 1000.5, 12)
    store.add_energy("2024-03-01", 0.5, 30)
    store.add_energy("2024-03-02", 7.0, 1)
    assert store.day_energy("2024-03-01") == (1001.0, 42)
    assert store.day_energy("2024-03-02") == (7.0, 1)
    for bad in ("2024-3-1", "2024-02-30", "today", "2024-03-01T00:00"):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            store.add_energy(bad, 1.0, 1)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        store.day_energy("x")


def test_state_round_trip(store: Store) -> None:
    assert store.get_state("settings") is None
    store.set_state("settings", '{"currency": "GBP"}')
    store.set_state("settings", '{"currency": "EUR"}')
    store.set_state("pause", "")
    assert store.get_state("settings") == '{"currency": "EUR"}'
    assert store.get_state("pause") == ""


def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with Store.open(path, now=T0) as s:
        s.write_samples(T0, {"a": 1.0})
        s.add_energy("2024-01-01", 5.0, 6)
        s.set_state("k", "v")
    with Store.open(path, now=T0 + 10) as s:
        assert s.warnings == []
        assert s.latest("a") == (T0, 1.0)
        assert s.day_energy("2024-01-01") == (5.0, 6)
        assert s.get_state("k") == "v"
    assert not list(tmp_path.glob("*.bak"))  # same version: no migration, no copy


def test_close_is_idempotent_and_later_calls_raise_store_error(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "h.sqlite3", now=T0)
    s.write_samples(T0, {"a": 1.0})
    s.latest("a")  # leaves a pooled read connection to close
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.write_samples(T0 + 1, {"a": 1.0})
    with pytest.raises(StoreError, match="closed"):
        s.latest("a")
    # Every connection is closed: the WAL was checkpointed away by the last one.
    assert not (tmp_path / "h.sqlite3-wal").exists()


def test_unwritable_database_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with Store.open(path, now=T0) as s:
        s.write_samples(T0, {"a": 1.0})
        # Another connection holds the write lock past the busy timeout: an environment
        # failure the agent reports, not a crash with a raw sqlite3 exception.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        s._writer.execute("PRAGMA busy_timeout = 50")  # keep the test fast
        try:
            with pytest.raises(StoreError, match=r"Could not store samples.*locked"):
                s.write_samples(T0 + 1, {"a": 2.0, "new.series": 3.0})
        finally:
            other.execute("ROLLBACK")
            other.close()
        # The failed write created nothing; the next one works.
        s.write_samples(T0 + 2, {"new.series": 4.0})
        assert s.series_names() == ["a", "new.series"]
        assert s.latest("a") == (T0, 1.0)


def test_writer_and_readers_run_concurrently(store: Store) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()
    counts: list[int] = []

    def writer() -> None:
        try:
            for i in range(300):
                store.write_samples(T0 + i, {"a": float(i), "b": 2.0 * i})
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def reader() -> None:
        try:
            last = 0
            while not stop.is_set():
                if "a" not in store.series_names():
                    continue
                res = store.query(["a", "b"], T0, T0 + 299)
                a, b = res.series
                # One snapshot per query: both series have the same samples.
                assert len(a.t) == len(b.t) >= last
                assert b.mean == [2.0 * v for v in a.mean]
                last = len(a.t)
                store.latest("a")
            counts.append(last)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, name="sampler")]
    threads += [threading.Thread(target=reader, name=f"http-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(store.query(["a"], T0, T0 + 299).series[0].t) == 300
    assert len(counts) == 4


def test_read_connections_do_not_pile_up_with_a_thread_per_request(store: Store) -> None:
    store.write_samples(T0, {"a": 1.0})
    for _ in range(30):  # ThreadingHTTPServer: one short-lived thread per request
        t = threading.Thread(target=store.latest, args=("a",))
        t.start()
        t.join()
    assert len(store._idle_readers) <= 4
