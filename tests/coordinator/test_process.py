"""The real program: ``heatshare-coordinator serve`` as a process, driven by its CLI and HTTP."""

from __future__ import annotations

import io
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from coordinator_net import INVENTORY, sha, targz

from heatshare.protocol.coordinator_api import SHA256_HEADER

pytestmark = pytest.mark.slow

EXE = Path(sys.executable).with_name("heatshare-coordinator")


def cli(*args: str) -> str:
    """Run a one-shot command; its output's last line."""
    done = subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


class Served:
    def __init__(self, tmp: Path, *extra: str) -> None:
        self.db = tmp / "net.sqlite"
        self.runtime = tmp / "net.json"
        self.log = (tmp / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [
                str(EXE),
                "serve",
                "--db",
                str(self.db),
                "--port",
                "0",
                "--runtime-file",
                str(self.runtime),
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not self.runtime.exists():
            assert self.proc.poll() is None, (tmp / "serve.log").read_text()
            assert time.monotonic() < deadline, "the coordinator wrote no runtime file"
            time.sleep(0.05)
        info = json.loads(self.runtime.read_text())
        self.url = str(info["url"])
        assert info["pid"] == self.proc.pid
        assert self.runtime.stat().st_mode & 0o777 == 0o600

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        s.stop()


def test_serve_pair_enrol_lease_upload_credit(tmp_path: Path, served: list[Served]) -> None:
    server = Served(tmp_path)
    served.append(server)
    db = ["--db", str(server.db)]
    cli("account", "create", "Ada", *db)
    code = cli("pair-code", "Ada", *db)
    key = cli("requester", "create", "render farm", *db)
    assert key.startswith("hsr_")

    job_dir = tmp_path / "job"
    (job_dir / "data").mkdir(parents=True)
    (job_dir / "run.py").write_text("print('tile')\n")
    (job_dir / "data" / "in.txt").write_text("x\n")
    job_id = cli("submit", str(job_dir), "--command", "python3 run.py --tile 3", "--price", "120",
                 "--url", server.url, "--api-key", key)  # fmt: skip
    assert job_id == "1"
    os.utime(job_dir / "run.py", (0, 1_000_000))  # another mtime: still the same bundle
    again = cli("submit", str(job_dir), "--command", "true", "--url", server.url, "--api-key", key)
    assert again == "2"
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        jobs = client.get("/v1/jobs").json()["jobs"]
    assert len({j["bundle_sha256"] for j in jobs}) == 1

    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/v1/enrol", json={"pairing_code": code, "inventory": INVENTORY})
        assert r.status_code == 201, r.text
        assert r.json()["currency"] == "EUR"
        auth = {"Authorization": f"Bearer {r.json()['node_token']}"}
        # The code is spent.
        assert (
            client.post(
                "/v1/enrol", json={"pairing_code": code, "inventory": INVENTORY}
            ).status_code
            == 409
        )

        [lease] = client.post("/v1/leases", json={}, headers=auth).json()["leases"]
        assert lease["command"] == ["python3", "run.py", "--tile", "3"]
        bundle = client.get(lease["bundle_url"], headers=auth).content
        assert sha(bundle) == lease["bundle_sha256"]
        with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
            members = tar.getmembers()
        assert [m.name for m in members] == ["data", "data/in.txt", "run.py"]
        assert {(m.mtime, m.uid, m.gid) for m in members} == {(0, 0, 0)}

        result = targz({"out/tile-3.png": b"\x89PNG"})
        headers = {**auth, SHA256_HEADER: sha(result)}
        url = f"/v1/attempts/{lease['attempt_id']}/result"
        first = client.put(url, content=result, headers=headers).json()
        again = client.put(url, content=result, headers=headers).json()
        assert first == again
        assert first["status"] == "accepted" and first["credited_minor"] == 120
        earned = client.get("/v1/nodes/me/earnings", headers=auth).json()
        assert earned["node_balance_minor"] == 120
        assert len(earned["entries"]) == 1

    assert server.stop() == 0
    assert not server.runtime.exists()
    assert "Listening on http://127.0.0.1:" in (tmp_path / "serve.log").read_text()


def test_demo_network(tmp_path: Path, served: list[Served]) -> None:
    server = Served(tmp_path, "--demo")
    served.append(server)
    code = cli("pair-code", "demo", "--db", str(server.db))
    inventory = {
        **INVENTORY,
        "os": platform.system().lower(),
        "arch": platform.machine().lower(),
        "cpu_cores": os.cpu_count() or 1,
        "memory_bytes": 8 * 1024**3,
    }
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/v1/enrol", json={"pairing_code": code, "inventory": inventory})
        assert r.status_code == 201, r.text
        assert r.json()["account_name"] == "demo"
        assert r.json()["currency"] == "CRD"
        assert r.json()["heartbeat_interval_s"] == 5
        auth = {"Authorization": f"Bearer {r.json()['node_token']}"}
        # The demo requester keeps example jobs queued.
        deadline = time.monotonic() + 30
        leases: list[dict[str, object]] = []
        while not leases and time.monotonic() < deadline:
            leases = client.post("/v1/leases", json={}, headers=auth).json()["leases"]
            time.sleep(0.2)
        assert leases, (tmp_path / "serve.log").read_text()
        assert leases[0]["currency"] == "CRD"
    assert server.stop() == 0


def test_bad_use_is_one_clear_line(tmp_path: Path) -> None:
    db = str(tmp_path / "x.sqlite")
    missing = subprocess.run(
        [str(EXE), "pair-code", "nobody", "--db", db],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "heatshare-coordinator: no account named 'nobody'; create it with "
        "'heatshare-coordinator account create nobody'"
    ]
    with sqlite3.connect(db) as conn:  # as if a newer Heatshare had migrated it
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    newer = subprocess.run(
        [str(EXE), "migrate", "--db", db], check=False, capture_output=True, text=True, timeout=60
    )
    assert newer.returncode == 1
    assert "a newer Heatshare made it" in newer.stderr
    taken = subprocess.run(
        [str(EXE), "serve", "--db", db, "--port", "-1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert taken.returncode == 1
    assert "not a port number" in taken.stderr
    helped = subprocess.run(
        [str(EXE), "serve", "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert "--runtime-file" in helped.stdout and "--demo" in helped.stdout
