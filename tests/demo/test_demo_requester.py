"""The demo requester against a real coordinator process on loopback."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from coordhelpers import Coordinator, bearer, enrol, free_port, jobs, wait_for
from jobhelpers import JOBS

from coordinator_process import coordinator_cli
from heatshare.coordinator.demo import (
    DemoJobError,
    DemoRequester,
    load_examples,
    pack_bundle,
    plan,
)
from heatshare.protocol.coordinator_api import SHA256_HEADER, Lease, RequesterOut

FAST = {"poll_s": 0.1, "max_backoff_s": 0.3}


class Running:
    """A DemoRequester on its own thread, stopped at the end of the test."""

    def __init__(self, requester: DemoRequester, stop: threading.Event) -> None:
        self.requester = requester
        self.stop_event = stop
        self.thread = threading.Thread(target=requester.run, name="demo-requester-test")
        self.thread.start()

    def stop(self) -> float:
        """Stops it; how long ``run`` took to return."""
        began = time.monotonic()
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the demo requester did not stop"
        return time.monotonic() - began


@pytest.fixture
def run_requester() -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(url: str, key: str, **kwargs: object) -> Running:
        stop = threading.Event()
        r = Running(DemoRequester(url, key, stop, **{**FAST, **kwargs}), stop)  # type: ignore[arg-type]
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Coordinator, str]]:
    """One coordinator for the module's tests (each gets its own requester): its admin token."""
    db = tmp_path_factory.mktemp("network") / "net.sqlite"
    admin = coordinator_cli(db, "admin-token")
    c = Coordinator(db)
    c.start()
    yield c, admin
    c.stop()


@pytest.fixture
def coordinator(
    network: tuple[Coordinator, str], request: pytest.FixtureRequest
) -> tuple[Coordinator, str]:
    """The shared coordinator and a new requester's key; its job list starts empty."""
    c, admin = network
    name = f"demo {request.node.name[-60:]}".replace("[", " ").replace("]", " ")
    made = requests.post(
        f"{c.url}/v1/requesters", json={"name": name}, headers=bearer(admin), timeout=10
    )
    assert made.status_code == 201, made.text
    return c, RequesterOut.model_validate_json(made.content).api_key


@pytest.fixture
def own_coordinator(tmp_path: Path) -> Iterator[tuple[Coordinator, str]]:
    """A coordinator of this test alone (its node must see no other test's jobs)."""
    db = tmp_path / "net.sqlite"
    key = coordinator_cli(db, "requester", "create", "demo")
    c = Coordinator(db)
    c.start()
    yield c, key
    c.stop()


# --- bundles and plans ----------------------------------------------------------------------


def test_bundles_are_deterministic_and_hold_the_job_files(tmp_path: Path) -> None:
    copy = tmp_path / "fractal"
    shutil.copytree(JOBS / "fractal", copy)
    first = pack_bundle(copy)
    # Other times, a byte-compiled cache, other modes: none of it changes the bundle.
    for path in copy.iterdir():
        os.utime(path, (1_000_000, 1_000_000))
        path.chmod(0o600)
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "render.cpython-311.pyc").write_bytes(b"\0")
    assert pack_bundle(copy) == first
    assert pack_bundle(JOBS / "fractal") == first

    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["README.md", "job.json", "render.py"]
        assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in members)
        extracted = tar.extractfile("render.py")
        assert extracted is not None
        assert extracted.read() == (JOBS / "fractal" / "render.py").read_bytes()
    assert gzip.decompress(first)  # a plain gzip stream
    assert first[4:8] == b"\0\0\0\0"  # gzip header without a time


def test_examples_come_from_job_json() -> None:
    examples = load_examples(JOBS)
    assert [e.name for e in examples] == ["fractal", "matrix"]
    for e in examples:
        spec = json.loads((JOBS / e.name / "job.json").read_text())
        assert e.price_minor == spec["price_minor"]
        assert list(e.command) == spec["command"]
        assert e.resources.memory_bytes == spec["resources"]["memory_bytes"]
        assert e.sha256 == hashlib.sha256(e.bundle).hexdigest()
    assert [e.price_minor for e in load_examples(JOBS, price_scale=3)] == [
        3 * e.price_minor for e in examples
    ]


def test_a_bad_job_json_is_refused_with_a_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "jobs" / "broken"
    bad.mkdir(parents=True)
    (bad / "job.json").write_text(
        '{"command": ["python3", "x.py"], "price_minor": 5, "resources": {"cpu_cores": 0}}'
    )
    with pytest.raises(DemoJobError, match=r"job\.json of the example job 'broken' is not valid"):
        load_examples(tmp_path / "jobs")
    (bad / "job.json").unlink()
    with pytest.raises(DemoJobError, match=r"'broken' has no job\.json"):
        load_examples(tmp_path / "jobs")


def test_fractal_jobs_walk_the_zoom_tile_by_tile() -> None:
    fractal = load_examples(JOBS)[0]

    def options(n: int) -> dict[str, str]:
        command, _ = plan(fractal, n)
        return dict(zip(command[2::2], command[3::2], strict=True))

    first, label = plan(fractal, 0)
    assert label == "fractal #0: frame 0, tile 1 of 16"
    assert options(0)["--frame"] == "0" and options(0)["--tile"] == "0"
    assert options(0)["--samples"] == "6"  # shallow frames get more samples per pixel
    assert (options(17)["--frame"], options(17)["--tile"]) == ("1", "1")
    assert options(16 * 8)["--samples"] == "4"  # the job.json default from frame 8 on
    assert options(16 * 25)["--frame"] == "0"  # the zoom starts again
    assert first[:2] == ["python3", "render.py"]

    matrix = load_examples(JOBS)[1]
    command, label = plan(matrix, 4)
    assert label == "matrix #4: 700x700 product, seed 5"
    assert command[command.index("--seed") + 1] == "5"


# --- against the real coordinator -----------------------------------------------------------


def test_requester_fills_the_queue_and_tops_it_up(
    own_coordinator: tuple[Coordinator, str], run_requester: Callable[..., Running]
) -> None:
    c, key = own_coordinator
    r = run_requester(c.url, key, queue_depth=3)
    queued = wait_for(lambda: len(jobs(c.url, key)) == 3 and jobs(c.url, key), what="3 jobs")
    time.sleep(0.5)  # several more looks at the queue: it must not submit more
    assert len(jobs(c.url, key)) == 3
    assert [j["label"] for j in queued] == [
        "fractal #0: frame 0, tile 1 of 16",
        "matrix #0: 700x700 product, seed 1",
        "fractal #1: frame 0, tile 2 of 16",
    ]
    examples = {e.name: e for e in load_examples(JOBS)}
    assert queued[0]["price_minor"] == examples["fractal"].price_minor
    assert queued[1]["price_minor"] == examples["matrix"].price_minor
    assert queued[0]["bundle_sha256"] == examples["fractal"].sha256
    assert queued[1]["resources"]["memory_bytes"] == examples["matrix"].resources.memory_bytes
    # The coordinator holds the very bundle, and gives it back to its requester.
    got = requests.get(
        f"{c.url}/v1/bundles/{examples['matrix'].sha256}", headers=bearer(key), timeout=10
    )
    assert got.status_code == 200 and got.content == examples["matrix"].bundle

    # A node takes the first job and finishes it: the requester submits one more.
    coordinator_cli(c.db, "account", "create", "home")
    node = enrol(c.url, coordinator_cli(c.db, "pair-code", "home"))
    leased = requests.post(
        f"{c.url}/v1/leases", json={"max_jobs": 1}, headers=bearer(node.node_token), timeout=10
    )
    lease = Lease.model_validate(leased.json()["leases"][0])
    assert lease.job_id == queued[0]["job_id"]
    result = gzip.compress(b"result", mtime=0)
    put = requests.put(
        f"{c.url}/v1/attempts/{lease.attempt_id}/result",
        data=result,
        headers={**bearer(node.node_token), SHA256_HEADER: hashlib.sha256(result).hexdigest()},
        timeout=10,
    )
    assert put.status_code == 200, put.text
    after = wait_for(lambda: len(jobs(c.url, key)) == 4 and jobs(c.url, key), what="a 4th job")
    assert after[-1]["label"] == "matrix #1: 700x700 product, seed 2"
    assert after[0]["state"] == "done"
    assert r.stop() < 2.0
    assert r.requester.submitted == 4


def test_a_new_requester_goes_on_where_the_last_stopped(
    coordinator: tuple[Coordinator, str], run_requester: Callable[..., Running]
) -> None:
    c, key = coordinator
    first = run_requester(c.url, key, queue_depth=3)
    wait_for(lambda: len(jobs(c.url, key)) == 3, what="3 jobs")
    first.stop()
    second = run_requester(c.url, key, queue_depth=5)
    found = wait_for(lambda: len(jobs(c.url, key)) == 5 and jobs(c.url, key), what="5 jobs")
    assert [j["label"].split(":")[0] for j in found[3:]] == ["fractal #2", "matrix #1"]
    second.stop()


def test_requester_waits_out_an_outage_and_says_so_once(
    tmp_path: Path,
    run_requester: Callable[..., Running],
    expect_log: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    expect_log(r"The demo requester cannot reach the coordinator")
    db = tmp_path / "net.sqlite"
    key = coordinator_cli(db, "requester", "create", "demo")
    c = Coordinator(db, port=free_port())
    caplog.set_level(logging.INFO, logger="heatshare.coordinator.demo")
    r = run_requester(f"http://127.0.0.1:{c.port}", key, queue_depth=2)
    time.sleep(1.2)  # several tries, at back-off of at most 0.3 s
    warnings = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(warnings) == 1, [rec.getMessage() for rec in warnings]
    assert f"http://127.0.0.1:{c.port}" in warnings[0].getMessage()
    try:
        c.start()
        wait_for(lambda: len(jobs(c.url, key)) == 2, what="2 jobs after the outage")
        wait_for(
            lambda: any("reaches the coordinator again" in m.getMessage() for m in caplog.records),
            what="the requester's note that the coordinator is back",
        )
        assert r.stop() < 2.0
    finally:
        c.stop()
    assert len([rec for rec in caplog.records if rec.levelno >= logging.WARNING]) == 1


def test_requester_stops_promptly_while_the_coordinator_is_away(
    tmp_path: Path, run_requester: Callable[..., Running], expect_log: Callable[[str], None]
) -> None:
    expect_log(r"The demo requester cannot reach the coordinator")
    r = run_requester(f"http://127.0.0.1:{free_port()}", "hsr_x", max_backoff_s=30.0)
    time.sleep(1.7)  # tries at 0, 0.5 and 1.5 s; now it waits 2 s before the next
    assert r.stop() < 0.5


def test_a_wrong_key_is_reported_once_and_submits_nothing(
    coordinator: tuple[Coordinator, str],
    run_requester: Callable[..., Running],
    expect_log: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    expect_log(r"The coordinator refused the demo requester: POST /v1/bundles: HTTP 401")
    c, key = coordinator
    r = run_requester(c.url, "hsr_not-a-key", max_backoff_s=0.2)
    time.sleep(1.0)
    assert r.stop() < 2.0
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert jobs(c.url, key) == []
