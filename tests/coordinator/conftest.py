"""Fixtures of the coordinator's tests: a real SQLite file and a real PostgreSQL server.

``db_url`` is parametrised over both databases, so every API test runs on each. PostgreSQL
is a private cluster (initdb + pg_ctl from /usr/lib/postgresql/*/bin) started once per
session in a temporary folder, listening only on a unix socket there; each test gets a
fresh database in it. Without PostgreSQL these tests fail, unless HEATSHARE_SKIP_POSTGRES=1.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from heatshare.coordinator import db, service
from heatshare.coordinator.app import Coordinator, create_app
from heatshare.coordinator.settings import Settings
from heatshare.protocol.coordinator_api import SHA256_HEADER

SKIP_ENV = "HEATSHARE_SKIP_POSTGRES"


# --- PostgreSQL ----------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    return found[-1].parent if found else None


@dataclass
class PgCluster:
    bin_dir: Path
    root: Path
    port: int
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}&port={self.port}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_as_owner(), *args], check=True, capture_output=True, text=True, timeout=60
        )

    def create_database(self, template: str | None = None) -> str:
        import psycopg

        name = f"hs_test_{next(self._names)}"
        with psycopg.connect(
            host=str(self.root), port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name


def _as_owner() -> list[str]:
    # initdb refuses to run as root; root runs the cluster as the postgres system user.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        message = (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): install the "
            "'postgresql' package (scripts/system-deps.sh test does), or set "
            f"{SKIP_ENV}=1 to skip the PostgreSQL runs of the coordinator tests."
        )
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="heatshare-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    cluster = PgCluster(bin_dir, root, port)
    data = root / "data"
    try:
        cluster.run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = f"-p {port} -k {root} -c listen_addresses='' -c fsync=off -c max_connections=200"
        cluster.run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "start",
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr or exc.stdout}", pytrace=False)
    try:
        yield cluster
    finally:
        subprocess.run(
            [*_as_owner(), str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A database migrated once; each test's database is a copy (much quicker than migrating)."""
    name = pg_cluster.create_database()
    _migrate(pg_cluster.url(name))
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "coordinator.sqlite"
    _migrate(f"sqlite:///{path}")
    return path


def _migrate(url: str) -> None:
    engine = db.make_engine(url)
    try:
        db.migrate(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database at the newest schema, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "coordinator.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.url(cluster.create_database(template=request.getfixturevalue("pg_template")))


# --- the network under test ----------------------------------------------------------------


class Clock:
    """A settable UTC clock, so leases and deadlines expire when the test says."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def targz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


INVENTORY: dict[str, Any] = {
    "hostname": "study-pc",
    "os": "linux",
    "arch": "x86_64",
    "cpu_cores": 8,
    "memory_bytes": 16 * 1024**3,
    "gpus": [],
    "sandbox": "bubblewrap",
    "agent_version": "0.3.0",
}


class Net:
    """A coordinator under test, driven through its HTTP API like the agent and requesters."""

    def __init__(self, client: httpx.Client, coordinator: Coordinator, clock: Clock) -> None:
        self.client = client
        self.coordinator = coordinator
        self.clock = clock
        with coordinator.transaction() as s:
            self.admin_token = service.rotate_admin_token(s, clock())
        self._names = itertools.count(1)

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def admin(self) -> dict[str, str]:
        return self.auth(self.admin_token)

    def account(self, name: str | None = None) -> int:
        name = name or f"home {next(self._names)}"
        r = self.client.post("/v1/accounts", json={"name": name}, headers=self.admin())
        assert r.status_code == 201, r.text
        return int(r.json()["account_id"])

    def pairing_code(self, account_id: int, ttl_s: int = 3600) -> str:
        r = self.client.post(
            f"/v1/accounts/{account_id}/pairing-codes", json={"ttl_s": ttl_s}, headers=self.admin()
        )
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    def node(self, account_id: int | None = None, **inventory: Any) -> tuple[int, str]:
        code = self.pairing_code(account_id or self.account())
        r = self.client.post(
            "/v1/enrol", json={"pairing_code": code, "inventory": {**INVENTORY, **inventory}}
        )
        assert r.status_code == 201, r.text
        body = r.json()
        return int(body["node_id"]), str(body["node_token"])

    def requester(self) -> str:
        r = self.client.post(
            "/v1/requesters", json={"name": f"lab {next(self._names)}"}, headers=self.admin()
        )
        assert r.status_code == 201, r.text
        return str(r.json()["api_key"])

    def bundle(self, key: str, data: bytes | None = None) -> str:
        data = data if data is not None else targz({"run.py": b"print('hi')\n"})
        r = self.client.post(
            "/v1/bundles",
            content=data,
            headers={**self.auth(key), SHA256_HEADER: sha(data)},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["sha256"])

    def submit(self, key: str, bundle: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {
            "bundle_sha256": bundle or self.bundle(key),
            "command": ["python3", "run.py"],
            "price_minor": 250,
            **fields,
        }
        r = self.client.post("/v1/jobs", json=body, headers=self.auth(key))
        assert r.status_code == 201, r.text
        return dict(r.json())

    def lease(self, token: str, max_jobs: int = 1) -> list[dict[str, Any]]:
        r = self.client.post("/v1/leases", json={"max_jobs": max_jobs}, headers=self.auth(token))
        assert r.status_code == 200, r.text
        return list(r.json()["leases"])

    def upload(self, token: str, attempt_id: int, data: bytes) -> Any:
        return self.client.put(
            f"/v1/attempts/{attempt_id}/result",
            content=data,
            headers={**self.auth(token), SHA256_HEADER: sha(data)},
        )

    def job(self, key: str, job_id: int) -> dict[str, Any]:
        r = self.client.get(f"/v1/jobs/{job_id}", headers=self.auth(key))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def earnings(self, token: str) -> dict[str, Any]:
        r = self.client.get("/v1/nodes/me/earnings", headers=self.auth(token))
        assert r.status_code == 200, r.text
        return dict(r.json())


def make_settings(db_url: str, blob_dir: Path, clock: Clock, **overrides: Any) -> Settings:
    return Settings(db_url=db_url, blob_dir=blob_dir, currency="EUR", clock=clock, **overrides)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class LiveServer:
    """The app served by a real uvicorn on loopback, in a thread of the test process."""

    def __init__(self, app: FastAPI) -> None:
        # IPPROTO_TCP so asyncio sets TCP_NODELAY (see heatshare.coordinator.cli._bind).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="test-uvicorn"
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the coordinator did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self._sock.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**overrides): coordinator Settings fields for the `net` fixture"
    )


@pytest.fixture
def net(request: pytest.FixtureRequest, db_url: str, tmp_path: Path, clock: Clock) -> Iterator[Net]:
    marker = request.node.get_closest_marker("settings")
    overrides = marker.kwargs if marker else {}
    app = create_app(make_settings(db_url, tmp_path / "blobs", clock, **overrides), sweeper=False)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield Net(client, app.state.coordinator, clock)
