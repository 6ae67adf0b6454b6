"""A real coordinator process on loopback for the demo's tests, and its operator commands."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from heatshare.protocol.coordinator_api import EnrolResponse

START_TIMEOUT_S = 30.0


def coordinator_cli(db: Path, *args: str) -> str:
    """``heatshare-coordinator ARGS --db DB``; its last line (a key, a code)."""
    done = subprocess.run(
        [sys.executable, "-m", "heatshare.coordinator", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stderr}{done.stdout}"
    return done.stdout.strip().splitlines()[-1].strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Coordinator:
    db: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    @property
    def runtime_file(self) -> Path:
        return self.db.with_suffix(".json")

    @property
    def log_file(self) -> Path:
        return self.db.with_suffix(".log")

    def start(self) -> str:
        self.runtime_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "heatshare.coordinator",
                    "serve",
                    "--db",
                    str(self.db),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--runtime-file",
                    str(self.runtime_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_file.read_text()
            try:
                self.url = json.loads(self.runtime_file.read_text())["url"]
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            return self.url
        raise AssertionError(f"the coordinator did not start: {self.log_file.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


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
