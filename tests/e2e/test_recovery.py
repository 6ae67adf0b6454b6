"""Recovery from each journaled phase, as a crash leaves it, against the real coordinator and
the real sandbox: the runner is handed the journal and the files exactly as they were."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Network, needs_sandbox
from heatshare.jobs.bundle import pack_outputs, unpack_bundle
from heatshare.jobs.runner import JobRunner, Step
from heatshare.jobs.sandbox import find_sandbox
from heatshare.network.client import CoordinatorClient
from heatshare.protocol.coordinator_api import Inventory, Lease, SandboxKind
from heatshare.protocol.local_api import JobPhase
from heatshare.store.jobs import JobJournal

pytestmark = [needs_sandbox, pytest.mark.slow]

INVENTORY = Inventory(
    hostname="recovery", os="linux", arch=platform.machine().lower(),
    cpu_cores=os.cpu_count() or 1, memory_bytes=4 << 30, sandbox=SandboxKind.BUBBLEWRAP,
    agent_version="test",
)  # fmt: skip


@dataclass
class Node:
    client: CoordinatorClient
    journal: JobJournal
    runner: JobRunner
    token: str

    def lease(self) -> Lease:
        leases = self.client.lease().leases
        assert len(leases) == 1
        self.journal.add_lease(leases[0], network="n", now=1.0)
        return leases[0]

    def process(self, attempt_id: int) -> Step:
        return self.runner.process(attempt_id, self.client, lambda _id: None)


@pytest.fixture
def node(network: Network, tmp_path: Path) -> Iterator[Node]:
    enrolled = CoordinatorClient(network.url).enrol(network.code(), INVENTORY)
    client = CoordinatorClient(network.url, enrolled.node_token)
    journal = JobJournal.open(tmp_path / "agent.sqlite3")
    runner = JobRunner(tmp_path / "data", find_sandbox(), journal, progress_every_s=1.0)
    try:
        yield Node(client, journal, runner, enrolled.node_token)
    finally:
        client.close()
        journal.close()


def credits(network: Network, node: Node) -> list[int]:
    entries = network.coordinator.earnings(node.token)["entries"]
    return [int(e["amount_minor"]) for e in entries if e["kind"] == "credit"]  # type: ignore[union-attr]


def test_a_crash_mid_download_fetches_the_bundle_again(network: Network, node: Node) -> None:
    job_id = network.submit(2, 0.05, price=11)
    lease = node.lease()
    node.journal.set_phase(lease.attempt_id, JobPhase.DOWNLOADING, now=2.0)
    node.runner.bundles_dir.mkdir(parents=True)
    cached = node.runner.bundles_dir / f"{lease.bundle_sha256}.tar.gz"
    cached.write_bytes(b"half a bundle")  # a damaged cache entry is never trusted
    (node.runner.bundles_dir / f"{lease.bundle_sha256}.tar.gz.part").write_bytes(b"half")
    half_slot = node.runner.slot(lease.attempt_id) / "job"
    half_slot.mkdir(parents=True)
    (half_slot / "leftover.txt").write_text("from the crash")
    assert node.process(lease.attempt_id) is Step.DONE
    assert network.job(job_id)["state"] == "done"
    assert credits(network, node) == [11]
    assert not list(node.runner.bundles_dir.glob("*.part"))


def test_a_job_that_had_exited_is_packed_not_run_again(
    network: Network, node: Node, tmp_path: Path
) -> None:
    job_id = network.submit(3, 0.05, price=12)
    lease = node.lease()
    # As a crash between the job's exit and the packing leaves it:
    job_dir = node.runner.slot(lease.attempt_id) / "job"
    node.journal.set_phase(lease.attempt_id, JobPhase.DOWNLOADING, now=2.0)
    bundle = tmp_path / "b.tar.gz"
    node.client.download_bundle(lease, bundle)
    unpack_bundle(bundle, job_dir, max_bytes=1 << 20)
    (job_dir / "out").mkdir()
    (job_dir / "out" / "result.txt").write_text("steps=3 total=3\n")
    node.journal.start_run(lease.attempt_id, now=3.0)
    node.journal.update(lease.attempt_id, now=4.0, exit_code=0)
    assert node.process(lease.attempt_id) is Step.DONE
    rec = node.journal.get(lease.attempt_id)
    assert rec is not None and rec.runs == 1  # not started again
    assert not (node.runner.slot(lease.attempt_id) / "log.txt").exists()
    assert network.job(job_id)["state"] == "done"
    assert credits(network, node) == [12]


def test_a_lost_result_archive_is_packed_again_to_the_same_bytes(
    network: Network, node: Node
) -> None:
    network.submit(2, 0.05, price=13)
    lease = node.lease()
    out = node.runner.slot(lease.attempt_id) / "job" / "out"
    out.mkdir(parents=True)
    (out / "result.txt").write_text("steps=2 total=1\n")
    sha, size = pack_outputs(out, node.runner.slot(lease.attempt_id) / "first.tar.gz")
    node.journal.start_run(lease.attempt_id, now=2.0)
    node.journal.set_phase(
        lease.attempt_id, JobPhase.UPLOADING, now=3.0, result_sha256=sha, result_size=size
    )
    assert not node.runner.result_path(lease.attempt_id).exists()  # lost in the crash
    assert node.process(lease.attempt_id) is Step.DONE
    rec = node.journal.get(lease.attempt_id)
    assert rec is not None and rec.result_sha256 == sha and rec.credited_minor == 13


def test_a_result_sent_twice_is_credited_once(network: Network, node: Node) -> None:
    job_id = network.submit(2, 0.05, price=14)
    lease = node.lease()
    assert node.process(lease.attempt_id) is Step.DONE
    rec = node.journal.get(lease.attempt_id)
    assert rec is not None and rec.result_sha256 is not None
    # As if the agent died before it journaled the answer: the same bytes again.
    archive = node.runner.result_path(lease.attempt_id)
    again = node.client.upload_result(lease.attempt_id, archive, rec.result_sha256)
    assert (again.status, again.credited_minor) == ("accepted", 14)
    assert network.job(job_id)["state"] == "done"
    assert credits(network, node) == [14]


def test_a_failing_job_is_reported_with_its_log(network: Network, node: Node) -> None:
    job_id = network.coordinator.submit(
        network.api_key, Path(__file__).with_name("job"), "python3 nonexistent.py", price=15
    )
    lease = node.lease()
    assert node.process(lease.attempt_id) is Step.FAILED
    rec = node.journal.get(lease.attempt_id)
    assert rec is not None and rec.exit_code not in (None, 0) and rec.error
    assert "nonexistent.py" in node.runner.log_path(lease.attempt_id).read_text()
    assert credits(network, node) == []
    assert network.job(job_id)["state"] in ("queued", "failed")
