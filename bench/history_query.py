"""Benchmark: history queries on a realistic 30-day database of 8 series.

Builds a temporary database the way the agent fills one:

* the last 48 h as 1 s samples, written through ``Store.write_samples`` one second at a time,
  with ``rollup`` every minute and ``prune`` every hour, as the agent's loops call them;
* the 28 days before as minute rollups inserted directly into ``rollup_1m`` (writing 30 days
  of 1 s samples through the real path would take tens of minutes on this machine, and the
  raw samples would be pruned anyway), the minute watermark set after them;
* hour rollups for all 30 days computed by the real ``Store.rollup``.

Then it reopens the database (timing ``Store.open``, which runs ``PRAGMA quick_check``), and
times ``query(8 series, now - 30 d, now)`` and ``query(8 series, now - 24 h, now)`` 20 times
each. Judged by: 30-day query median <= 50 ms.

Run: ``.venv/bin/python bench/history_query.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from heatshare.store import Store

SERIES = (
    "heat.power_w",
    "cpu.power_w",
    "cpu.temp_c",
    "cpu.util_pct",
    "mem.used_pct",
    "gpu0.power_w",
    "gpu0.temp_c",
    "gpu0.util_pct",
)
DAY = 86400
NOW = 1_700_000_000.0  # fixed, so runs compare; 2023-11-14 22:13:20 UTC
START = NOW - 30 * DAY
RAW_START = math.floor((NOW - 48 * 3600) / 60) * 60
TARGET_MS = 50.0
RUNS = 20


def level(i: int, t: float) -> float:
    """A plausible value of series ``i`` at ``t``: a daily cycle plus an offset per series."""
    return 40.0 + 10.0 * i + 20.0 * math.sin(2 * math.pi * (t / DAY) + i)


def build(path: Path) -> None:
    rng = random.Random(42)
    t0 = time.perf_counter()
    with Store.open(path, now=START) as store:
        store.write_samples(START, dict.fromkeys(SERIES, 0.0))  # creates the series rows
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("DELETE FROM sample")
    ids = dict(conn.execute("SELECT name, id FROM series").fetchall())
    rows = []
    for m in range(int(START // 60 * 60), RAW_START, 60):
        for i, name in enumerate(SERIES):
            mean = level(i, m)
            spread = rng.uniform(0.5, 5.0)
            rows.append((ids[name], m, 60, mean - spread, mean, mean + spread))
    conn.executemany(
        "INSERT INTO rollup_1m (series_id, ts, n, min, mean, max) VALUES (?,?,?,?,?,?)", rows
    )
    conn.execute(
        "INSERT INTO watermark (name, value) VALUES ('minute_rolled_until', ?)", (RAW_START,)
    )
    conn.execute("COMMIT")
    conn.close()
    t1 = time.perf_counter()
    print(f"  minute rollups inserted directly: {len(rows):,} rows in {t1 - t0:.1f} s")

    with Store.open(path, now=RAW_START) as store:
        t = RAW_START
        writes = 0
        while t <= NOW:
            values = {name: level(i, t) + rng.gauss(0.0, 1.0) for i, name in enumerate(SERIES)}
            store.write_samples(t, values)
            writes += 1
            if t % 60 == 0:
                store.rollup(t)
            if t % 3600 == 0:
                store.prune(t)
            t += 1
        store.rollup(NOW)
        store.prune(NOW)
    t2 = time.perf_counter()
    print(
        f"  1 s samples through write_samples: {writes:,} writes x {len(SERIES)} series in "
        f"{t2 - t1:.1f} s ({(t2 - t1) / writes * 1e6:.0f} µs a write, with rollup and prune)"
    )


def timed(store: Store, start: float) -> tuple[list[float], int, int]:
    times = []
    res = points = 0
    for _ in range(RUNS):
        t0 = time.perf_counter()
        result = store.query(SERIES, start, NOW)
        times.append((time.perf_counter() - t0) * 1000)
        res = result.resolution_s
        points = sum(len(s.t) for s in result.series)
    return times, res, points


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the database in DIR and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        path = folder / "history.sqlite3"
        if path.exists():
            raise SystemExit(f"{path} exists; give an empty folder")
        print(
            f"machine: {platform.node()} · {platform.processor() or platform.machine()} · "
            f"Python {platform.python_version()} · SQLite {sqlite3.sqlite_version}"
        )
        print("building a 30-day database of 8 series:")
        build(path)
        conn = sqlite3.connect(path)
        counts = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("sample", "rollup_1m", "rollup_1h")
        }
        conn.close()
        size = sum(p.stat().st_size for p in folder.glob("history.sqlite3*"))
        print(
            f"  rows: raw {counts['sample']:,} · minute {counts['rollup_1m']:,} · "
            f"hour {counts['rollup_1h']:,}"
        )
        print(f"database size: {size / 2**20:.1f} MiB")

        t0 = time.perf_counter()
        store = Store.open(path, now=NOW)
        print(f"Store.open with quick_check: {(time.perf_counter() - t0) * 1000:.0f} ms")
        try:
            for label, start, target in (
                ("30 days", NOW - 30 * DAY, TARGET_MS),
                ("24 hours", NOW - DAY, None),
            ):
                times, res, points = timed(store, start)
                verdict = ""
                if target is not None:
                    ok = statistics.median(times) <= target
                    verdict = f" · target ≤ {target:.0f} ms: {'met' if ok else 'NOT met'}"
                print(
                    f"query 8 series, {label}: resolution {res} s, {points:,} points · "
                    f"median {statistics.median(times):.2f} ms · p95 {p95(times):.2f} ms "
                    f"({RUNS} runs){verdict}"
                )
        finally:
            store.close()


if __name__ == "__main__":
    main()
