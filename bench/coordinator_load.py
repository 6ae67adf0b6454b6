"""Benchmark: the coordinator under 10,000 simulated nodes, on loopback, bounded in time.

Starts a real coordinator process (``python -m heatshare.coordinator serve``) on an SQLite file
in a temporary folder, or on PostgreSQL (``--db postgresql+psycopg://…``, or ``--pg`` to start
a private PostgreSQL cluster in a temporary folder and remove it afterwards). Set-up, not
measured: an operator token from the CLI (``admin-token``), one account, one pairing code per
node from the operator API, and each node enrolled through ``POST /v1/enrol``.

Then, measured, each phase bounded in time:

1. heartbeats (``POST /v1/nodes/me/heartbeat``, each from its own node's token):
   a. every node at its real rate (one every 30 s each, spread out: 10,000 nodes ⇒ ~333/s);
   b. an open loop at a fixed 1,000/s: p50 and p99 latency, counted from when each
      heartbeat was due (so a server that falls behind cannot hide it);
   c. a closed loop of ``--concurrency`` connections as fast as answers come: heartbeats/s.
2. lease + complete: a requester uploads one tiny bundle and submits small jobs; then 16
   nodes, each on its own keep-alive connection, loop ``POST /v1/leases`` → ``PUT
   /v1/attempts/{id}/result`` (a small deterministic tar.gz with its sha256) until the time or
   the jobs run out: lease+complete/s. Afterwards the database is asked whether any job was
   leased to two nodes at once (attempts of one job whose lease times overlap) or credited
   more than its replication allows (ledger), and the nodes' balances from the API are
   compared with what the 16 clients were told.

Goals (issue 3): >= 3,000 heartbeats/s and p99 <= 25 ms at 1,000/s on SQLite; lease+complete
>= 500/s on SQLite and >= 2,000/s on PostgreSQL; zero double leases.

The load generator is ``bench/_loadgen.py`` (raw HTTP/1.1 on asyncio streams, keep-alive);
each phase prints its own CPU share beside the coordinator's (and PostgreSQL's), so it is seen
when the generator, not the server, is the limit. The last line printed is one JSON object.

Run: ``.venv/bin/python bench/coordinator_load.py [--quick] [--nodes N] [--pg | --db URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from _loadgen import Connection, LoopResult, Pool, closed_loop, header_lines, open_loop

HEARTBEAT_GOAL_PER_S = 3000.0
HEARTBEAT_P99_GOAL_MS = 25.0
FIXED_RATE_PER_S = 1000.0
LEASE_GOAL_PER_S = {"sqlite": 500.0, "postgresql": 2000.0}
PRICE_MINOR = 7
JSON_TYPE = {"Content-Type": "application/json"}
HEARTBEAT_BODY = json.dumps(
    {
        "state": "working",
        "telemetry": {"power_w": 231.5, "gpu_temp_c": 64.0, "cpu_temp_c": 58.5, "energy_j": 6945.0},
        "running_attempts": [],
    }
).encode()


@dataclass(frozen=True, slots=True)
class Durations:
    real_rate_s: float
    fixed_rate_s: float
    closed_s: float
    lease_s: float
    drain_s: float


FULL = Durations(real_rate_s=20, fixed_rate_s=20, closed_s=15, lease_s=15, drain_s=10)
QUICK = Durations(real_rate_s=3, fixed_rate_s=4, closed_s=3, lease_s=3, drain_s=5)


# --- processes: PostgreSQL, the coordinator ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A private PostgreSQL cluster in a temporary folder, on a free loopback port.

    Run as the ``postgres`` user when we are root (PostgreSQL refuses to run as root), trust
    authentication on loopback only, and removed with its folder on exit. Default settings
    (fsync on, synchronous commit), as a real deployment starts.
    """

    def __init__(self) -> None:
        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
            key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        )
        if not found:
            raise SystemExit("--pg needs PostgreSQL's server (no /usr/lib/postgresql/*/bin/pg_ctl)")
        self.bin = found[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="heatshare-bench-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.postmaster_pid: int | None = None

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, check=False, timeout=120
        )
        if proc.returncode != 0:
            raise SystemExit(f"{Path(args[0]).name} failed:\n{proc.stdout}{proc.stderr}")

    def __enter__(self) -> PgCluster:
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        try:
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                "-A", "trust", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c max_connections=200"
            )
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                "-o", options, "-w", "-t", "60", "start",
            )  # fmt: skip
            pid_line = (self.data / "postmaster.pid").read_text().splitlines()[0]
            self.postmaster_pid = int(pid_line)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                 "-w", "stop"],
                capture_output=True, check=False, timeout=60,
            )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

    def processes(self) -> list[psutil.Process]:
        if self.postmaster_pid is None:
            return []
        with contextlib.suppress(psutil.Error):
            main = psutil.Process(self.postmaster_pid)
            return [main, *main.children(recursive=True)]
        return []


def code_version() -> str:
    """The commit measured, and whether the coordinator's files differ from it."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app/heatshare/coordinator"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {head}" + (" with uncommitted coordinator changes" if dirty else "")


def coordinator_cli(db_url: str, *args: str) -> str:
    """``python -m heatshare.coordinator ARGS --db URL``; returns its last line of output."""
    proc = subprocess.run(
        [sys.executable, "-m", "heatshare.coordinator", *args, "--db", db_url],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise SystemExit(f"coordinator {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"coordinator {' '.join(args)} printed nothing")
    return lines[-1].strip()


class Coordinator:
    """One ``serve`` process; its log goes to a file, shown when something fails."""

    def __init__(self, db_url: str, workdir: Path, index: int) -> None:
        self.runtime = workdir / f"coordinator-{index}.json"
        self.log_path = workdir / f"coordinator-{index}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "heatshare.coordinator", "serve", "--db", db_url,
                "--host", "127.0.0.1", "--port", "0", "--runtime-file", str(self.runtime),
                "--blob-dir", str(workdir / "blobs"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )  # fmt: skip
        self.host = ""
        self.port = 0

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"the coordinator exited with {self.proc.returncode} before it served:\n"
                    + self.log_tail()
                )
            with contextlib.suppress(OSError, ValueError, KeyError):
                info = json.loads(self.runtime.read_text())
                if info["pid"] == self.proc.pid:
                    url = urlsplit(info["url"])
                    assert url.hostname is not None and url.port is not None
                    self.host, self.port = url.hostname, url.port
                    return
            time.sleep(0.05)
        raise SystemExit(
            "the coordinator did not write its runtime file in time:\n" + self.log_tail()
        )

    def log_tail(self, n: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class CpuMeter:
    """CPU seconds used by this process, the coordinators and PostgreSQL over a phase."""

    def __init__(self, servers: list[int], pg: PgCluster | None) -> None:
        self.servers = [psutil.Process(pid) for pid in servers]
        self.pg = pg

    def _server_s(self) -> float:
        total = 0.0
        for p in self.servers:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def _server_sys_s(self) -> float:
        total = 0.0
        for p in self.servers:
            with contextlib.suppress(psutil.Error):
                total += p.cpu_times().system
        return total

    def _pg_s(self) -> float:
        total = 0.0
        for p in self.pg.processes() if self.pg else []:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        out: dict[str, float] = {}
        t0, g0, s0, p0 = time.perf_counter(), time.process_time(), self._server_s(), self._pg_s()
        k0 = self._server_sys_s()
        yield out
        out["server_sys_s"] = self._server_sys_s() - k0
        wall = time.perf_counter() - t0
        out["generator_pct"] = 100 * (time.process_time() - g0) / wall
        out["server_pct"] = 100 * (self._server_s() - s0) / wall
        out["server_cpu_s"] = self._server_s() - s0
        if self.pg is not None:
            # Backends that ended during the phase are not counted: a lower bound.
            out["pg_pct"] = 100 * (self._pg_s() - p0) / wall


@contextlib.contextmanager
def profiled(out: str | None, servers: list[psutil.Process]) -> Iterator[None]:
    """Sample the first app server with py-spy (collapsed stacks to ``out``) while inside."""
    if not out:
        yield
        return
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        raise SystemExit("--profile needs py-spy in the same environment (pip install py-spy)")
    proc = subprocess.Popen(
        [str(py_spy), "record", "--pid", str(servers[0].pid), "--format", "raw",
         "--rate", "200", "--output", out, "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)  # let it attach
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_line(cpu: dict[str, float], answered: int, what: str = "an answer") -> str:
    parts = [f"generator {cpu['generator_pct']:.0f} %", f"coordinator {cpu['server_pct']:.0f} %"]
    if "pg_pct" in cpu:
        parts.append(f"PostgreSQL ≥ {cpu['pg_pct']:.0f} %")
    line = "CPU (% of one core; 2 cores = 200 %): " + ", ".join(parts)
    if answered:
        # Less disturbed by other work on the machine than a rate: what one answer cost.
        line += (
            f"; coordinator CPU {1000 * cpu['server_cpu_s'] / answered:.2f} ms {what} "
            f"({100 * cpu['server_sys_s'] / max(cpu['server_cpu_s'], 1e-9):.0f} % in the kernel)"
        )
    return line


# --- the network as clients see it ---------------------------------------------------------


@dataclass(slots=True)
class Network:
    targets: list[tuple[str, int]]
    admin: bytes = b""  # header lines
    account_id: int = 0
    node_ids: list[int] = field(default_factory=list)
    node_headers: list[bytes] = field(default_factory=list)  # auth + JSON type, per node


def inventory(i: int) -> dict[str, Any]:
    return {
        "hostname": f"bench-node-{i:05d}",
        "os": "linux",
        "arch": "x86_64",
        "cpu_cores": 8,
        "memory_bytes": 16 * 1024**3,
        "gpus": [{"name": "NVIDIA GeForce RTX 3060", "memory_bytes": 12 * 1024**3, "cuda": True}]
        if i % 3 == 0
        else [],
        "sandbox": "bubblewrap",
        "agent_version": "0.3.0",
    }


def expect(status: int, want: int, what: str, body: bytes) -> None:
    if status != want:
        raise SystemExit(f"{what}: HTTP {status}, expected {want}: {body[:500]!r}")


async def enrol(net: Network, n: int, workers: int = 16) -> None:
    """One pairing code per node from the operator API, then ``POST /v1/enrol``; not timed."""
    pool = Pool(net.targets, size=workers)
    headers = net.admin + header_lines(JSON_TYPE)
    plain = header_lines(JSON_TYPE)
    code_path = f"/v1/accounts/{net.account_id}/pairing-codes"
    results: list[tuple[int, str] | None] = [None] * n
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            r = await pool.request("POST", code_path, b'{"ttl_s": 3600}', headers)
            expect(r.status, 201, "a pairing code", r.body)
            body = json.dumps({"pairing_code": r.json()["code"], "inventory": inventory(i)})
            r = await pool.request("POST", "/v1/enrol", body.encode(), plain)
            expect(r.status, 201, "enrolment", r.body)
            answer = r.json()
            results[i] = (answer["node_id"], answer["node_token"])

    await asyncio.gather(*(worker() for _ in range(workers)))
    await pool.close()
    for item in results:
        assert item is not None
        net.node_ids.append(item[0])
        net.node_headers.append(header_lines({"Authorization": f"Bearer {item[1]}", **JSON_TYPE}))


def heartbeat_sender(net: Network, pool: Pool) -> Any:
    n = len(net.node_headers)

    async def send(seq: int) -> str | None:
        # Node seq % n: consecutive heartbeats come from different nodes, as they would.
        r = await pool.request(
            "POST", "/v1/nodes/me/heartbeat", HEARTBEAT_BODY, net.node_headers[seq % n]
        )
        return None if r.status == 200 else f"HTTP {r.status}"

    return send


def print_loop(name: str, r: LoopResult, cpu: dict[str, float], open_loop_: bool) -> None:
    print(f"  {name}: {r.ok:,} answered in {r.wall_s:.1f} s = {r.rate:,.0f}/s", end="")
    if open_loop_:
        print(f" (planned {r.planned:,} at {r.target_rate:,.0f}/s)", end="")
    print()
    if r.latencies_ns:
        print(
            f"    latency ms: p50 {r.latency_ms(0.5):.2f}, p90 {r.latency_ms(0.9):.2f}, "
            f"p99 {r.latency_ms(0.99):.2f}, max {r.latency_ms(1.0):.2f}"
        )
    if r.lags_ns:
        print(
            f"    generator's own lag (due → sent) ms: p50 {r.lag_ms(0.5):.2f}, "
            f"p99 {r.lag_ms(0.99):.2f}, max {r.lag_ms(1.0):.2f}"
        )
    if r.errors or r.unfinished:
        print(f"    errors: {dict(r.errors)}, unanswered at the end: {r.unfinished}")
    print(f"    {cpu_line(cpu, r.ok)}")


# --- phase 2: jobs -------------------------------------------------------------------------


def tiny_targz(files: dict[str, bytes]) -> bytes:
    """A deterministic tar.gz, as nodes make results: sorted names, mtime 0, uid/gid 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


@dataclass(slots=True)
class LeaseLog:
    leases: list[tuple[int, int, int]] = field(default_factory=list)  # job, attempt, client
    accepted: Counter[int] = field(default_factory=Counter)  # job → answers crediting it
    credited_minor: int = 0
    completed: int = 0
    empty_answers: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ns: list[int] = field(default_factory=list)  # lease sent → result answered


async def submit_jobs(net: Network, n_jobs: int, workers: int = 16) -> tuple[bytes, list[int]]:
    """A requester, one bundle, ``n_jobs`` small jobs; returns the key's headers and job ids."""
    pool = Pool(net.targets, size=workers)
    admin = net.admin + header_lines(JSON_TYPE)
    r = await pool.request("POST", "/v1/requesters", b'{"name": "bench requester"}', admin)
    expect(r.status, 201, "a requester", r.body)
    key = header_lines({"Authorization": f"Bearer {r.json()['api_key']}"})
    bundle = tiny_targz({"run.py": b"print('heat')\n"})
    sha = hashlib.sha256(bundle).hexdigest()
    r = await pool.request(
        "POST",
        "/v1/bundles",
        bundle,
        key + header_lines({"Content-Type": "application/octet-stream", "X-Heatshare-Sha256": sha}),
    )
    expect(r.status, 201, "the bundle", r.body)
    submit = key + header_lines(JSON_TYPE)
    ids: list[int] = []
    counter = iter(range(n_jobs))

    async def worker() -> None:
        for i in counter:
            body = {
                "bundle_sha256": sha,
                "command": ["python3", "run.py"],
                "resources": {"cpu_cores": 1, "memory_bytes": 64 * 1024 * 1024},
                "price_minor": PRICE_MINOR,
                "label": f"bench {i}",
            }
            r = await pool.request("POST", "/v1/jobs", json.dumps(body).encode(), submit)
            expect(r.status, 201, "a job", r.body)
            ids.append(r.json()["job_id"])

    await asyncio.gather(*(worker() for _ in range(workers)))
    await pool.close()
    return submit, sorted(ids)


async def lease_and_complete(
    net: Network, clients: int, n_jobs: int, duration_s: float, results: dict[int, bytes]
) -> tuple[LeaseLog, float]:
    """``clients`` nodes loop lease → result until ``duration_s`` or the jobs run out."""
    log = LeaseLog()
    perf = time.perf_counter_ns
    t0 = perf()
    end_ns = t0 + int(duration_s * 1e9)
    holding = 0
    last = t0
    octet = header_lines({"Content-Type": "application/octet-stream"})

    async def client(c: int) -> None:
        nonlocal holding, last
        host, port = net.targets[c % len(net.targets)]
        conn = Connection(host, port)
        auth = net.node_headers[c]
        upload = auth.replace(header_lines(JSON_TYPE), octet)
        try:
            while perf() < end_ns:
                start = perf()
                r = await conn.request("POST", "/v1/leases", b'{"max_jobs": 1}', auth)
                if r.status != 200:
                    log.errors[f"lease HTTP {r.status}"] += 1
                    await asyncio.sleep(0.01)
                    continue
                leases = r.json()["leases"]
                if not leases:
                    log.empty_answers += 1
                    if log.completed + holding >= n_jobs:
                        return  # the queue is empty
                    await asyncio.sleep(0.002)
                    continue
                lease = leases[0]
                job_id, attempt_id = lease["job_id"], lease["attempt_id"]
                log.leases.append((job_id, attempt_id, c))
                holding += 1
                body = results[job_id]
                sha = hashlib.sha256(body).hexdigest()
                r = await conn.request(
                    "PUT",
                    f"/v1/attempts/{attempt_id}/result",
                    body,
                    upload + f"X-Heatshare-Sha256: {sha}\r\n".encode(),
                )
                holding -= 1
                now = perf()
                if r.status != 200:
                    log.errors[f"result HTTP {r.status}"] += 1
                    continue
                answer = r.json()
                if answer["credited_minor"] > 0:
                    log.accepted[job_id] += 1
                    log.credited_minor += answer["credited_minor"]
                log.completed += 1
                log.latencies_ns.append(now - start)
                last = max(last, now)
        finally:
            await conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    log.latencies_ns.sort()
    return log, (last - t0) / 1e9


def database_checks(db_url: str, job_ids: list[int]) -> dict[str, int]:
    """Ask the database itself: double leases, double credits, and what was credited."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    lo, hi = job_ids[0], job_ids[-1]
    try:
        with engine.connect() as conn:
            overlapping = conn.execute(
                text(
                    "SELECT COUNT(*) FROM attempts a JOIN attempts b "
                    "ON a.job_id = b.job_id AND a.id < b.id "
                    "WHERE a.job_id BETWEEN :lo AND :hi "
                    "AND b.leased_at < COALESCE(a.finished_at, a.lease_expires_at) "
                    "AND a.leased_at < COALESCE(b.finished_at, b.lease_expires_at)"
                ),
                {"lo": lo, "hi": hi},
            ).scalar_one()
            over_credited = conn.execute(
                text(
                    "SELECT COUNT(*) FROM (SELECT l.job_id FROM ledger l "
                    "JOIN jobs j ON j.id = l.job_id "
                    "WHERE l.kind = 'credit' AND l.job_id BETWEEN :lo AND :hi "
                    "GROUP BY l.job_id, j.replication HAVING COUNT(*) > j.replication) x"
                ),
                {"lo": lo, "hi": hi},
            ).scalar_one()
            credited = conn.execute(
                text(
                    "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM ledger "
                    "WHERE kind = 'credit' AND job_id BETWEEN :lo AND :hi"
                ),
                {"lo": lo, "hi": hi},
            ).one()
            done = conn.execute(
                text("SELECT COUNT(*) FROM jobs WHERE state = 'done' AND id BETWEEN :lo AND :hi"),
                {"lo": lo, "hi": hi},
            ).scalar_one()
    finally:
        engine.dispose()
    return {
        "overlapping_leases": int(overlapping),
        "over_credited_jobs": int(over_credited),
        "credits": int(credited[0]),
        "credited_minor": int(credited[1]),
        "jobs_done": int(done),
    }


async def api_balances(net: Network, clients: int) -> int:
    """The sum of the 16 nodes' balances, as ``GET /v1/nodes/me/earnings`` says."""
    total = 0
    pool = Pool(net.targets, size=4)
    for c in range(clients):
        r = await pool.request("GET", "/v1/nodes/me/earnings", b"", net.node_headers[c])
        expect(r.status, 200, "earnings", r.body)
        total += r.json()["node_balance_minor"]
    await pool.close()
    return total


# --- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace, net: Network, meter: CpuMeter) -> dict[str, Any]:
    d = QUICK if args.quick else FULL
    n = args.nodes
    figures: dict[str, Any] = {}

    t = time.perf_counter()
    await enrol(net, n)
    print(f"set-up: {n:,} nodes enrolled in {time.perf_counter() - t:.1f} s (not measured)")

    if args.lease_only:
        print("phase 1: heartbeats skipped (--lease-only)")
        figures.update(
            heartbeat_p50_ms_at_1000=float("nan"),
            heartbeat_p99_ms_at_1000=float("nan"),
            heartbeat_errors_at_1000=0,
            heartbeats_per_s_max=float("nan"),
            heartbeat_errors_max=0,
        )
    else:
        await heartbeats(args, net, meter, d, figures)
    if args.heartbeats_only:
        print("phase 2: lease + complete skipped (--heartbeats-only)")
        figures.update(lease_complete_per_s=float("nan"), double_leases=0, double_credits=0)
    else:
        await leasing(args, net, meter, d, figures)
    return figures


async def heartbeats(
    args: argparse.Namespace, net: Network, meter: CpuMeter, d: Durations, figures: dict[str, Any]
) -> None:
    n = args.nodes
    interval_s = 30.0
    print("phase 1: heartbeats")
    pool = Pool(net.targets, size=args.pool)
    send = heartbeat_sender(net, pool)
    with meter.measure() as cpu:
        real = await open_loop(n / interval_s, d.real_rate_s, send, d.drain_s)
    print_loop(f"a. {n:,} nodes every {interval_s:g} s", real, cpu, open_loop_=True)

    with meter.measure() as cpu:
        fixed = await open_loop(FIXED_RATE_PER_S, d.fixed_rate_s, send, d.drain_s)
    print_loop(f"b. open loop at {FIXED_RATE_PER_S:,.0f}/s", fixed, cpu, open_loop_=True)
    figures["heartbeat_p50_ms_at_1000"] = round(fixed.latency_ms(0.5), 2)
    figures["heartbeat_p99_ms_at_1000"] = round(fixed.latency_ms(0.99), 2)
    figures["heartbeat_errors_at_1000"] = sum(fixed.errors.values()) + fixed.unfinished
    await pool.close()

    pool = Pool(net.targets, size=args.concurrency)
    send = heartbeat_sender(net, pool)
    with meter.measure() as cpu:
        closed = await closed_loop(args.concurrency, d.closed_s, send)
    print_loop(f"c. closed loop, {args.concurrency} connections", closed, cpu, open_loop_=False)
    figures["heartbeats_per_s_max"] = round(closed.rate, 1)
    figures["heartbeat_errors_max"] = sum(closed.errors.values())
    await pool.close()


async def leasing(
    args: argparse.Namespace, net: Network, meter: CpuMeter, d: Durations, figures: dict[str, Any]
) -> None:
    n = args.nodes
    print("phase 2: lease + complete")
    goal = LEASE_GOAL_PER_S[args.db_kind]
    # Enough to hold the goal's rate for 4 s: when they run out sooner the goal is met, and
    # the rate over the shorter window is as valid (submitting is set-up, and slow).
    n_jobs = args.jobs or int(150 * d.lease_s if args.quick else goal * 4)
    t = time.perf_counter()
    _submit, job_ids = await submit_jobs(net, n_jobs)
    print(f"  set-up: {n_jobs:,} jobs submitted in {time.perf_counter() - t:.1f} s (not measured)")
    results = {j: tiny_targz({"out/result.txt": f"job {j}: 42\n".encode()}) for j in job_ids}
    clients = min(args.clients, n)
    with profiled(args.profile, meter.servers), meter.measure() as cpu:
        log, wall = await lease_and_complete(net, clients, n_jobs, d.lease_s, results)
    rate = log.completed / wall if wall > 0 else 0.0
    ran_out = log.completed >= n_jobs
    print(
        f"  {clients} clients: {log.completed:,} leased and completed in {wall:.1f} s "
        f"= {rate:,.0f}/s"
        + (" (all submitted jobs done before the time was up)" if ran_out else "")
    )
    if log.latencies_ns:
        lat = LoopResult(latencies_ns=log.latencies_ns)
        print(
            f"    lease+result ms: p50 {lat.latency_ms(0.5):.2f}, p99 {lat.latency_ms(0.99):.2f},"
            f" max {lat.latency_ms(1.0):.2f}; empty lease answers {log.empty_answers}"
        )
    if log.errors:
        print(f"    errors: {dict(log.errors)}")
    print(f"    {cpu_line(cpu, log.completed, 'a lease+complete')}")
    figures["lease_complete_per_s"] = round(rate, 1)

    checks = database_checks(args.db_url, job_ids)
    leased = Counter(job for job, _attempt, _client in log.leases)
    client_double_leases = sum(1 for k in leased.values() if k > 1)
    client_double_credits = sum(1 for k in log.accepted.values() if k > 1)
    balances = await api_balances(net, clients)
    print(
        f"  checks: database — {checks['overlapping_leases']} overlapping leases of one job, "
        f"{checks['over_credited_jobs']} jobs credited more than once, {checks['jobs_done']:,} "
        f"jobs done, {checks['credits']:,} credits = {checks['credited_minor']:,} minor units"
    )
    print(
        f"          clients — {client_double_leases} jobs leased twice, {client_double_credits} "
        f"credited twice, told {log.credited_minor:,} minor units; the API's node balances "
        f"sum to {balances:,}"
    )
    consistent = checks["credited_minor"] == log.credited_minor == balances and checks[
        "credits"
    ] == sum(log.accepted.values())
    if not consistent:
        print("  !! the database, the clients and the API disagree on what was credited")
    figures["double_leases"] = max(checks["overlapping_leases"], client_double_leases)
    figures["double_credits"] = max(checks["over_credited_jobs"], client_double_credits) + (
        0 if consistent else 1
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument("--nodes", type=int, default=10_000, help="simulated nodes (10,000)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", help="a database URL (default: an SQLite file in a temp folder)")
    where.add_argument("--pg", action="store_true", help="start a private PostgreSQL cluster")
    parser.add_argument("--servers", type=int, default=1, help="coordinator app servers (1)")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop connections")
    parser.add_argument("--pool", type=int, default=64, help="open-loop connections at most")
    parser.add_argument("--clients", type=int, default=16, help="leasing nodes (16)")
    parser.add_argument("--jobs", type=int, default=0, help="jobs to submit (default: enough)")
    parser.add_argument(
        "--profile", metavar="FILE", help="py-spy the first app server while leasing (raw stacks)"
    )
    parser.add_argument(
        "--heartbeats-only", action="store_true", help="skip the lease+complete phase"
    )
    parser.add_argument(
        "--lease-only",
        action="store_true",
        help="skip the heartbeat phase (for working on leasing; no heartbeat figures)",
    )
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="heatshare-bench-")))
        pg: PgCluster | None = None
        if args.pg:
            pg = stack.enter_context(PgCluster())
            args.db_url = pg.url
        elif args.db:
            args.db_url = args.db
        else:
            args.db_url = f"sqlite:///{workdir / 'coordinator.sqlite'}"
        args.db_kind = "postgresql" if args.db_url.startswith("postgresql") else "sqlite"

        print(
            f"coordinator load, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.db_kind}, "
            f"{args.nodes:,} nodes, {args.servers} app server(s), "
            f"{'quick' if args.quick else 'full'} run; {os.cpu_count()} CPUs, "
            f"{platform.machine()}, Python {platform.python_version()}; load average "
            f"{os.getloadavg()[0]:.2f} (other work on the machine slows every figure); "
            f"{code_version()}"
        )
        servers = []
        for i in range(args.servers):
            server = Coordinator(args.db_url, workdir, i)
            stack.callback(server.stop)
            servers.append(server)
            server.wait_ready()  # one at a time: the first one migrates the database
        admin_token = coordinator_cli(args.db_url, "admin-token")
        net = Network(targets=[(s.host, s.port) for s in servers])
        net.admin = header_lines({"Authorization": f"Bearer {admin_token}"})

        async def go() -> dict[str, Any]:
            pool = Pool(net.targets, size=1)
            r = await pool.request(
                "POST", "/v1/accounts", b'{"name": "bench"}', net.admin + header_lines(JSON_TYPE)
            )
            await pool.close()
            expect(r.status, 201, "the account", r.body)
            net.account_id = r.json()["account_id"]
            return await run(args, net, CpuMeter([s.proc.pid for s in servers], pg))

        try:
            figures = asyncio.run(go())
        except BaseException:
            for s in servers:
                print(f"--- coordinator log (tail):\n{s.log_tail()}", file=sys.stderr)
            raise
        for s in servers:
            if s.proc.poll() is not None:
                raise SystemExit(f"a coordinator died during the run:\n{s.log_tail()}")

    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    max_ok = figures["heartbeats_per_s_max"] >= HEARTBEAT_GOAL_PER_S
    p99_ok = figures["heartbeat_p99_ms_at_1000"] <= HEARTBEAT_P99_GOAL_MS
    lease_goal = LEASE_GOAL_PER_S[args.db_kind]
    print("goals:")
    hb_max = figures["heartbeats_per_s_max"]
    print(
        f"  heartbeats/s max {hb_max:,.0f} (goal ≥ {HEARTBEAT_GOAL_PER_S:,.0f}, ratio "
        f"{HEARTBEAT_GOAL_PER_S / max(hb_max, 1e-9):.2f}) {'met' if max_ok else 'NOT met'}"
    )
    print(
        f"  heartbeat p99 at 1,000/s {figures['heartbeat_p99_ms_at_1000']:.1f} ms (goal ≤ "
        f"{HEARTBEAT_P99_GOAL_MS:g} ms, ratio "
        f"{figures['heartbeat_p99_ms_at_1000'] / HEARTBEAT_P99_GOAL_MS:.2f}) "
        f"{'met' if p99_ok else 'NOT met'}"
    )
    print(
        f"  lease+complete/s {figures['lease_complete_per_s']:,.0f} (goal ≥ {lease_goal:,.0f}, "
        f"ratio {lease_goal / max(figures['lease_complete_per_s'], 1e-9):.2f}) "
        f"{'met' if figures['lease_complete_per_s'] >= lease_goal else 'NOT met'}"
    )
    print(
        f"  double leases {figures['double_leases']}, double credits "
        f"{figures['double_credits']} (goal 0)"
    )
    print(
        json.dumps(
            {
                "db": args.db_kind,
                "nodes": args.nodes,
                "heartbeats_per_s_max": figures["heartbeats_per_s_max"],
                "heartbeat_p50_ms_at_1000": figures["heartbeat_p50_ms_at_1000"],
                "heartbeat_p99_ms_at_1000": figures["heartbeat_p99_ms_at_1000"],
                "lease_complete_per_s": figures["lease_complete_per_s"],
                "double_leases": figures["double_leases"],
                "double_credits": figures["double_credits"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
