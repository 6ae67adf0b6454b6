"""The demo tests' helpers; the coordinator process itself is tests/coordinator_process.py."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import requests

from coordinator_process import CoordinatorProcess
from heatshare.protocol.coordinator_api import EnrolResponse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def Coordinator(db: Path, port: int = 0) -> CoordinatorProcess:
    """A coordinator on ``db``; its runtime file and logs in a folder of its own beside it."""
    workdir = db.parent / f"{db.stem}-coordinator"
    workdir.mkdir(exist_ok=True)
    return CoordinatorProcess(db=db, workdir=workdir, port=port)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jobs(url: str, key: str) -> list[dict[str, Any]]:
    response = requests.get(f"{url}/v1/jobs", headers=bearer(key), timeout=10)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["jobs"]
    return sorted(found, key=lambda j: j["job_id"])


def enrol(url: str, code: str) -> EnrolResponse:
    inventory = {
        "hostname": "test-node",
        "os": "linux",
        "arch": "x86_64",
        "cpu_cores": 2,
        "memory_bytes": 4 * 1024**3,
        "sandbox": "bubblewrap",
        "agent_version": "0.0.0",
    }
    response = requests.post(
        f"{url}/v1/enrol", json={"pairing_code": code, "inventory": inventory}, timeout=10
    )
    assert response.status_code in (200, 201), response.text
    return EnrolResponse.model_validate_json(response.content)


def wait_for(predicate: Any, timeout_s: float = 20.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not come within {timeout_s} s")
