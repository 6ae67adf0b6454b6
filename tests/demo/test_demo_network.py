"""The agent's demo network: a real ``heatshare-coordinator serve --demo`` child process."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from coordhelpers import bearer, enrol, wait_for
from jobhelpers import JOBS

from heatshare.agent.demo_network import DemoNetwork, DemoNetworkError
from heatshare.coordinator.demo import load_examples
from heatshare.protocol.coordinator_api import LeaseResponse


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent may not have reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


@pytest.fixture
def networks() -> Iterator[list[DemoNetwork]]:
    made: list[DemoNetwork] = []
    yield made
    for n in made:
        n.stop()


def _network(networks: list[DemoNetwork], data_dir: Path) -> DemoNetwork:
    n = DemoNetwork(data_dir)
    networks.append(n)
    return n


def test_start_gives_a_working_url_and_code_and_jobs_arrive(
    networks: list[DemoNetwork], tmp_path: Path
) -> None:
    demo = _network(networks, tmp_path / "data")
    assert not demo.running and demo.url() is None
    url, code = demo.start()
    assert demo.running and demo.url() == url
    assert url.startswith("http://127.0.0.1:")
    runtime = json.loads(demo.runtime_path.read_text())
    assert runtime["url"] == url
    assert stat.S_IMODE(demo.runtime_path.stat().st_mode) == 0o600
    assert demo.db_path.exists() and demo.log_path.exists()

    node = enrol(url, code)
    assert node.account_name == "demo" and node.currency == "CRD"

    # The demo requester inside the coordinator keeps example jobs queued: a node gets one.
    def lease() -> LeaseResponse | None:
        got = requests.post(
            f"{url}/v1/leases", json={"max_jobs": 1}, headers=bearer(node.node_token), timeout=10
        )
        assert got.status_code == 200, got.text
        answer = LeaseResponse.model_validate_json(got.content)
        return answer if answer.leases else None

    leased = wait_for(lease, what="a demo job").leases[0]
    examples = {e.sha256: e for e in load_examples(JOBS)}
    assert leased.bundle_sha256 in examples
    assert leased.currency == "CRD"
    assert leased.price_minor == examples[leased.bundle_sha256].price_minor
    bundle = requests.get(f"{url}{leased.bundle_url}", headers=bearer(node.node_token), timeout=10)
    assert bundle.content == examples[leased.bundle_sha256].bundle


def test_a_second_start_joins_the_running_one_and_stop_ends_it(
    networks: list[DemoNetwork], tmp_path: Path
) -> None:
    first = _network(networks, tmp_path / "data")
    url, code = first.start()
    pid = json.loads(first.runtime_path.read_text())["pid"]

    # An agent that restarted finds the same coordinator from its runtime file.
    again = _network(networks, tmp_path / "data")
    url2, code2 = again.start()
    assert url2 == url
    assert code2 != code
    assert json.loads(again.runtime_path.read_text())["pid"] == pid
    assert enrol(url, code2).account_name == "demo"

    again.stop()
    wait_for(lambda: not _alive(pid), timeout_s=15, what="the coordinator's end")
    assert not again.running and again.url() is None
    assert not first.running
    assert not again.runtime_path.exists()
    again.stop()  # stopping twice is harmless


def test_stop_ends_the_coordinator_and_a_new_start_uses_the_same_database(
    networks: list[DemoNetwork], tmp_path: Path
) -> None:
    demo = _network(networks, tmp_path / "data")
    url, code = demo.start()
    node = enrol(url, code)
    pid = json.loads(demo.runtime_path.read_text())["pid"]
    demo.stop()
    assert not _alive(pid)
    assert not demo.running and demo.url() is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v1/openapi.json", timeout=2)

    url2, _ = demo.start()
    assert json.loads(demo.runtime_path.read_text())["pid"] != pid
    # The node enrolled before the restart is still known to the network.
    beat = requests.post(
        f"{url2}/v1/nodes/me/heartbeat",
        json={"state": "idle"},
        headers=bearer(node.node_token),
        timeout=10,
    )
    assert beat.status_code == 200, beat.text


def test_a_coordinator_that_cannot_start_is_reported_with_its_log(
    networks: list[DemoNetwork], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "demo-network.sqlite").mkdir(parents=True)  # a folder where the database goes
    demo = _network(networks, data)
    with pytest.raises(DemoNetworkError, match="stopped at start with exit status") as caught:
        demo.start(timeout_s=60)
    assert "demo-network.sqlite" in str(caught.value)  # the log's own words are included
    assert not demo.running


def test_a_stale_runtime_file_is_not_trusted(networks: list[DemoNetwork], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # A pid that is alive but is no coordinator (this test's own), and a URL nobody serves.
    (data / "demo-network.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()})
    )
    demo = _network(networks, data)
    url, _ = demo.start()
    assert url != "http://127.0.0.1:9"
    assert json.loads(demo.runtime_path.read_text())["pid"] != os.getpid()


def test_stop_during_a_start_ends_it_and_the_start_says_so(
    networks: list[DemoNetwork], tmp_path: Path
) -> None:
    demo = _network(networks, tmp_path / "data")
    failures: list[BaseException] = []

    def start() -> None:
        try:
            demo.start()
        except DemoNetworkError as exc:
            failures.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    # The process is there at once; asking about it does not wait for the start to finish.
    wait_for(lambda: demo.running, what="the coordinator process")
    began = time.monotonic()
    assert demo.url() is None
    assert time.monotonic() - began < 0.5
    demo.stop()
    thread.join(timeout=30)
    assert not demo.running
    assert len(failures) == 1
    assert "stopped while it was starting" in str(failures[0])
