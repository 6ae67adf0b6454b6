"""A real coordinator process on loopback, and its operator and requester command lines.

``python -m heatshare.coordinator serve --db FILE --port P --runtime-file F``: the tests stop
it, kill it and start it again on the same port and database, as an outage does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

START_TIMEOUT_S = 90.0  # two shared cores, busy with other tests: be patient


def coordinator_cli(db: Path, *args: str, timeout_s: float = 60.0) -> str:
    """Run ``heatshare-coordinator ARGS --db DB``; its last line (a code, a key, an id)."""
    proc = subprocess.run(
        [sys.executable, "-m", "heatshare.coordinator", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"heatshare-coordinator {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc.stdout.strip().splitlines()[-1].strip()


@dataclass
class CoordinatorProcess:
    db: Path
    workdir: Path
    port: int = 0
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    starts: list[float] = field(default_factory=list)

    @property
    def runtime_file(self) -> Path:
        return self.workdir / "coordinator.json"

    def start(self) -> str:
        """Start (or start again, on the same port and database); the base URL once it answers."""
        self.runtime_file.unlink(missing_ok=True)
        log = (self.workdir / f"coordinator-{len(self.starts)}.log").open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
                *self.extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self.starts.append(time.time())
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the coordinator exited with {self.proc.returncode}: {self.output()}")
            try:
                info = json.loads(self.runtime_file.read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            self.url = info["url"]
            self.port = int(self.url.rsplit(":", 1)[1])
            return self.url
        self.kill()
        pytest.fail(f"the coordinator did not start within {START_TIMEOUT_S} s: {self.output()}")

    def output(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("coordinator-*.log"))
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        # The port must be free again before a restart binds it.
        deadline = time.monotonic() + 10
        while self.port and time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    # --- operator and requester ----------------------------------------------------------

    def cli(self, *args: str) -> str:
        return coordinator_cli(self.db, *args)

    def account(self, name: str) -> None:
        self.cli("account", "create", name)

    def pairing_code(self, name: str) -> str:
        return self.cli("pair-code", name)

    def requester(self, name: str) -> str:
        return self.cli("requester", "create", name)

    def submit(
        self, api_key: str, bundle: Path, command: str, *, price: int, label: str = "", **opts: int
    ) -> int:
        args = ["submit", str(bundle), "--command", command, "--price", str(price)]
        args += ["--label", label, "--url", self.url, "--api-key", api_key]
        for name, value in opts.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        proc = subprocess.run(
            [sys.executable, "-m", "heatshare.coordinator", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"submit failed: {proc.stderr}{proc.stdout}")
        return int(proc.stdout.strip().splitlines()[-1])

    def job(self, api_key: str, job_id: int) -> dict[str, object]:
        r = requests.get(
            f"{self.url}/v1/jobs/{job_id}",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=10,
        )
        r.raise_for_status()
        return dict(r.json())

    def earnings(self, node_token: str) -> dict[str, object]:
        r = requests.get(
            f"{self.url}/v1/nodes/me/earnings",
            headers={"Authorization": f"Bearer {node_token}"},
            timeout=10,
        )
        r.raise_for_status()
        return dict(r.json())

    def attempts(self, node_token: str) -> list[dict[str, object]]:
        r = requests.get(
            f"{self.url}/v1/nodes/me/attempts",
            headers={"Authorization": f"Bearer {node_token}"},
            timeout=10,
        )
        r.raise_for_status()
        return list(r.json()["attempts"])
