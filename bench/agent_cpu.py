"""Benchmark: the real agent's CPU use and memory at 1 Hz sampling.

Starts ``python -m heatshare.agent run`` on a temporary profile (``--listen 127.0.0.1:0``, so
it runs beside a real agent), waits until it samples, lets it settle for a few seconds (start-up
imports are not the steady state), then measures with psutil over a window:

* CPU: user + system time of the agent process over the window, as % of one core;
* RSS: resident memory at the end of the window (and the peak seen, sampled once a second).

By default nothing polls the agent's API during the window: the figure judged is the agent on
its own. ``--poll`` adds a client that asks ``GET /v1/status`` once a second over one
keep-alive connection, as the app's dashboard does, to show what an open app adds. Judged by:
CPU <= 0.5 % of one core, RSS <= 60 MiB.

Run: ``.venv/bin/python bench/agent_cpu.py [--seconds 300] [--settle 5] [--poll]``.
"""

from __future__ import annotations

import argparse
import platform
import signal
import tempfile
import time
from pathlib import Path

import psutil

from _agent import start_agent

CPU_TARGET_PCT = 0.5
RSS_TARGET_MIB = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="measuring window (300)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds ignored after start")
    parser.add_argument("--poll", action="store_true", help="poll /v1/status at 1 Hz, as the app")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="heatshare-bench-") as tmp:
        profile = Path(tmp)
        proc = start_agent(profile)
        try:
            client = None
            if args.poll:
                from heatshare.protocol.client import AgentClient
                from heatshare.protocol.discovery import Paths, read_runtime, read_token

                paths = Paths.for_profile(profile)
                info = read_runtime(paths)
                assert info is not None
                client = AgentClient(info.base_url, read_token(paths))
            agent = psutil.Process(proc.pid)
            time.sleep(args.settle)
            before = agent.cpu_times()
            t0 = time.monotonic()
            peak_rss = 0
            deadline = t0 + args.seconds
            while (now := time.monotonic()) < deadline:
                peak_rss = max(peak_rss, agent.memory_info().rss)
                if client is not None:
                    client.status()
                time.sleep(min(1.0, deadline - now))
            after = agent.cpu_times()
            wall = time.monotonic() - t0
            rss = agent.memory_info().rss
            peak_rss = max(peak_rss, rss)
            threads = agent.num_threads()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
        samples = _count_samples(profile / "data" / "heatshare.sqlite3")

    cpu_s = (after.user - before.user) + (after.system - before.system)
    cpu_pct = 100.0 * cpu_s / wall
    rss_mib = rss / 2**20
    print(
        f"machine: {platform.node()} {platform.machine()} {psutil.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )
    polled = "polled /v1/status at 1 Hz" if args.poll else "not polled"
    print(
        f"window: {wall:.1f} s after {args.settle:.0f} s settling, {polled}; threads: {threads}; "
        f"cpu.util_pct samples recorded: {samples}"
    )
    print(
        f"agent CPU: {cpu_pct:.3f} % of one core ({cpu_s * 1000:.0f} ms CPU "
        f"= user {1000 * (after.user - before.user):.0f} + "
        f"system {1000 * (after.system - before.system):.0f}); target <= {CPU_TARGET_PCT} %: "
        f"{'OK' if cpu_pct <= CPU_TARGET_PCT else 'OVER'} (ratio {cpu_pct / CPU_TARGET_PCT:.2f})"
    )
    print(
        f"agent RSS: {rss_mib:.1f} MiB (peak {peak_rss / 2**20:.1f} MiB); "
        f"target <= {RSS_TARGET_MIB:.0f} MiB: "
        f"{'OK' if peak_rss / 2**20 <= RSS_TARGET_MIB else 'OVER'} "
        f"(ratio {peak_rss / 2**20 / RSS_TARGET_MIB:.2f})"
    )
    print(f"agent exit code after SIGTERM: {code}")
    ok = cpu_pct <= CPU_TARGET_PCT and peak_rss / 2**20 <= RSS_TARGET_MIB and code == 0
    return 0 if ok else 1


def _count_samples(db: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM sample JOIN series ON series.id = sample.series_id "
            "WHERE series.name = 'cpu.util_pct'"
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


if __name__ == "__main__":
    raise SystemExit(main())
