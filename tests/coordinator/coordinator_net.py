"""Helpers of the coordinator's tests: the PostgreSQL cluster, a live server, the network client.

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
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from heatshare.coordinator import service
from heatshare.coordinator.app import Coordinator
from heatshare.coordinator.settings import Settings
from heatshare.protocol.coordinator_api import SHA256_HEADER

SKIP_ENV = "HEATSHARE_SKIP_POSTGRES"


# --- PostgreSQL ----------------------------------------------------------------------------


def pg_bin() -> Path | None:
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
            [*as_owner(), *args], check=True, capture_output=True, text=True, timeout=60
        )

    def create_database(self, template: str | None = None) -> str:
        import psycopg

        name = f"hs_test_{next(self._names)}"
        with psycopg.connect(
            host=str(self.root), port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name


def as_owner() -> list[str]:
    # initdb refuses to run as root; root runs the cluster as the postgres system user.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
