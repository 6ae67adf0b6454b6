"""Rollups, late samples, retention and the choice of resolution, against hand computations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from heatshare.store import Store
from heatshare.store.history import MINUTE_KEEP_S, RAW_KEEP_S

T0 = 1_699_999_200.0  # a whole hour, UTC
H = 3600
DAY = 86400


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "history.sqlite3", now=T0)
    yield s
    s.close()


def rows(store: Store, sql: str) -> list[tuple]:
    """Read the file as it is, on a connection of its own."""
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def minutes(store: Store) -> list[tuple]:
    return rows(store, "SELECT ts, n, min, mean, max FROM rollup_1m ORDER BY series_id, ts")


def hours(store: Store) -> list[tuple]:
    return rows(store, "SELECT ts, n, min, mean, max FROM rollup_1h ORDER BY series_id, ts")


def test_minute_rollup_is_exact_and_waits_for_complete_minutes(store: Store) -> None:
    for dt, v in [(0, 1.0), (15, 2.0), (30.5, 3.0), (59.999, 6.0), (60, 100.0), (61, 50.0)]:
        store.write_samples(T0 + dt, {"a": v})
    store.rollup(T0 + 59.9)  # the first minute is not over yet
    assert minutes(store) == []
    store.rollup(T0 + 60)
    assert minutes(store) == [(T0, 4, 1.0, 3.0, 6.0)]  # (1+2+3+6)/4
    store.rollup(T0 + 119.999)
    assert minutes(store) == [(T0, 4, 1.0, 3.0, 6.0)]
    store.rollup(T0 + 120)
    assert minutes(store) == [(T0, 4, 1.0, 3.0, 6.0), (T0 + 60, 2, 50.0, 75.0, 100.0)]


def test_hour_rollup_weights_minutes_by_count_and_waits_for_complete_hours(store: Store) -> None:
    store.write_samples(T0 + 1, {"a": 1.0})
    store.write_samples(T0 + 2, {"a": 3.0})
    store.write_samples(T0 + 61, {"a": 10.0})
    store.write_samples(T0 + H + 5, {"a": -4.0})
    store.rollup(T0 + H - 1)
    assert minutes(store) == [(T0, 2, 1.0, 2.0, 3.0), (T0 + 60, 1, 10.0, 10.0, 10.0)]
    assert hours(store) == []
    store.rollup(T0 + H)
    # Mean of the three samples, not of the two minute means: (1 + 3 + 10) / 3.
    assert hours(store) == [(T0, 3, 1.0, (2.0 * 2 + 10.0) / 3, 10.0)]
    store.rollup(T0 + 2 * H)
    assert hours(store)[1] == (T0 + H, 1, -4.0, -4.0, -4.0)


def test_rollup_keeps_series_apart(store: Store) -> None:
    store.write_samples(T0 + 1, {"a": 1.0, "b": 10.0})
    store.write_samples(T0 + 2, {"a": 2.0})
    store.rollup(T0 + H)
    got = rows(
        store,
        "SELECT s.name, m.n, m.mean FROM rollup_1m m JOIN series s ON s.id = m.series_id "
        "ORDER BY s.name",
    )
    assert got == [("a", 2, 1.5), ("b", 1, 10.0)]


def test_rollup_is_idempotent(store: Store) -> None:
    for i in range(0, 2 * H, 7):
        store.write_samples(T0 + i, {"a": float(i % 13), "b": float(i % 5)})
    store.rollup(T0 + 90 * 60 + 30)
    first = (minutes(store), hours(store))
    assert len(first[0]) == 2 * 90 and len(first[1]) == 2
    store.rollup(T0 + 90 * 60 + 30)
    store.rollup(T0 + 90 * 60 + 59)  # same complete minutes
    assert (minutes(store), hours(store)) == first


def test_a_long_gap_and_a_large_backlog_roll_up_in_chunks(store: Store) -> None:
    # Ten days with nothing, then a backlog longer than one chunk (3 h).
    store.write_samples(T0 + 10, {"a": 1.0})
    far = T0 + 10 * DAY
    for i in range(0, 7 * H, 60):
        store.write_samples(far + i, {"a": 2.0})
    store.rollup(far + 8 * H)
    assert len(minutes(store)) == 1 + 7 * 60
    assert len(hours(store)) == 1 + 7
    assert hours(store)[0] == (T0, 1, 1.0, 1.0, 1.0)


def test_a_late_sample_recomputes_its_minute_and_hour(store: Store) -> None:
    store.write_samples(T0 + 10, {"a": 2.0})
    store.write_samples(T0 + 20, {"a": 4.0})
    store.rollup(T0 + 2 * H)
    assert minutes(store) == [(T0, 2, 2.0, 3.0, 4.0)]
    assert hours(store) == [(T0, 2, 2.0, 3.0, 4.0)]
    store.write_samples(T0 + 30, {"a": 9.0})  # late: its minute and hour are rolled up
    store.rollup(T0 + 2 * H)
    assert minutes(store) == [(T0, 3, 2.0, 5.0, 9.0)]
    assert hours(store) == [(T0, 3, 2.0, 5.0, 9.0)]
    assert rows(store, "SELECT * FROM dirty_minute") == []


def test_a_late_sample_whose_raw_minute_is_pruned_leaves_the_rollup_as_it_was(
    store: Store,
) -> None:
    store.write_samples(T0 + 10, {"a": 2.0})
    now = T0 + 3 * DAY
    store.rollup(now)
    store.prune(now)
    assert rows(store, "SELECT COUNT(*) FROM sample") == [(0,)]
    store.write_samples(T0 + 20, {"a": 100.0})  # three days late
    store.rollup(now)
    assert minutes(store) == [(T0, 1, 2.0, 2.0, 2.0)]
    store.prune(now)
    assert rows(store, "SELECT COUNT(*) FROM sample") == [(0,)]


def test_prune_keeps_exactly_48h_raw_90d_minutes_and_every_hour(store: Store) -> None:
    start = T0
    now = T0 + 100 * DAY + 17 * 60 + 30  # 100 days on, mid-hour, mid-minute
    ts = [
        start + i * 1800 + 7
        for i in range(int((now - start) // 1800) + 1)
        if start + i * 1800 + 7 <= now
    ]
    for t in ts:
        store.write_samples(t, {"a": 1.0})
    store.rollup(now)
    store.prune(now)
    raw = [r[0] / 1000 for r in rows(store, "SELECT ts_ms FROM sample ORDER BY ts_ms")]
    assert raw == [t for t in ts if t >= now - RAW_KEEP_S]
    complete_minutes = [t - 7 for t in ts if t - 7 + 60 <= now]
    got_minutes = [r[0] for r in minutes(store)]
    assert got_minutes == [m for m in complete_minutes if m >= now - MINUTE_KEEP_S]
    assert got_minutes[0] > now - MINUTE_KEEP_S - 1800  # the limit is where it should be
    complete_hours = sorted({t - (t - T0) % H for t in ts if t - (t - T0) % H + H <= now})
    assert [r[0] for r in hours(store)] == complete_hours  # kept for ever
    assert len(complete_hours) == 100 * 24


def test_prune_never_deletes_what_is_not_rolled_up(store: Store) -> None:
    store.write_samples(T0, {"a": 1.0})
    store.prune(T0 + 5 * DAY)  # no rollup yet
    assert rows(store, "SELECT COUNT(*) FROM sample") == [(1,)]
    store.rollup(T0 + 5 * DAY)
    store.prune(T0 + 5 * DAY)
    assert rows(store, "SELECT COUNT(*) FROM sample") == [(0,)]
    assert len(minutes(store)) == 1


def _hand(samples: list[tuple[float, float]], res: int, lo: float, hi: float) -> list[tuple]:
    """(bucket, min, mean, max) of the samples in [lo, hi], buckets overlapping [lo, hi]."""
    buckets: dict[int, list[float]] = {}
    for t, v in samples:
        if int(lo // res * res) <= t <= hi:
            buckets.setdefault(int(t // res * res), []).append(v)
    return [(float(b), min(vs), sum(vs) / len(vs), max(vs)) for b, vs in sorted(buckets.items())]


def _as_rows(result, i: int = 0) -> list[tuple]:
    s = result.series[i]
    return list(zip(s.t, s.min, s.mean, s.max, strict=True))


@pytest.mark.parametrize("rolled_until", [0, 25 * 60 + 30, H + 10, 2 * H + 59 * 60])
def test_rollup_queries_include_what_is_not_rolled_up_yet(store: Store, rolled_until: int) -> None:
    # Whole numbers/quarters keep every sum exact, so the comparison can be ==.
    samples = [(T0 + i, float((i * 7) % 23) / 4) for i in range(0, 3 * H, 10)]
    for t, v in samples:
        store.write_samples(t, {"a": v})
    if rolled_until:
        store.rollup(T0 + rolled_until)
    now = T0 + 3 * H
    lo, hi = T0 + 125, T0 + 3 * H - 1
    by_minute = store.query(["a"], lo, hi, max_points=200, now=now)
    assert by_minute.resolution_s == 60
    assert _as_rows(by_minute) == _hand(samples, 60, lo, hi)
    by_hour = store.query(["a"], lo, hi, max_points=100, now=now)
    assert by_hour.resolution_s == 3600
    # An hour's mean goes through minute means (sum of mean * n): equal to rounding.
    flat = [x for row in _as_rows(by_hour) for x in row]
    assert flat == pytest.approx(
        [x for row in _hand(samples, 3600, lo, hi) for x in row], rel=1e-12
    )


def test_pick_resolution(store: Store) -> None:
    now = T0 + 200 * DAY
    pick = store.pick_resolution
    assert pick(now - H, now, now=now) == 1  # 3601 points
    assert pick(now - 2 * H, now, now=now) == 60  # 7201 raw points is too many
    assert pick(now - DAY, now, now=now) == 60
    assert pick(now - 7 * DAY, now, now=now) == 3600  # 10081 minutes is too many
    assert pick(now - 30 * DAY, now, now=now) == 3600
    assert pick(now - 3 * DAY, now - 3 * DAY + 600, now=now) == 60  # raw is gone there
    assert pick(now - 48 * H, now - 48 * H + 600, now=now) == 1  # just kept
    assert pick(now - 95 * DAY, now - 95 * DAY + 600, now=now) == 3600  # minutes are gone
    assert pick(now - 5 * 365 * DAY, now, now=now) == 3600  # coarsest, even past max_points
    assert pick(now - H, now, max_points=100, now=now) == 60
    # Without ``now``, the latest time the store has seen.
    store.write_samples(now, {"a": 1.0})
    assert pick(now - 3 * DAY, now - 3 * DAY + 600) == 60


def test_thirty_day_query_returns_hour_buckets(store: Store) -> None:
    now = T0 + 30 * DAY
    for i in range(0, 30 * DAY, 600):
        store.write_samples(T0 + i, {"a": 1.0, "b": 2.0})
    store.rollup(now)
    store.prune(now)
    result = store.query(["a", "b"], now - 30 * DAY, now)
    assert result.resolution_s == 3600
    assert [len(s.t) for s in result.series] == [720, 720]
    assert result.series[1].mean == [2.0] * 720
