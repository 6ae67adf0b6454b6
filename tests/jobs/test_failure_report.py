"""The runner's failure reports against a real coordinator process on loopback, with a real
job in the real sandbox that exits with code 3: reported once, waiting while the network
is down, sent again after a lost answer without a second record, and dropped (not retried)
when the network no longer wants it.

A coordinator "down" is a client aimed at a closed port on loopback; the bundle is fetched
beforehand (the runner reuses a cached bundle), as it would be before an outage mid-job.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from test_client import INVENTORY, Script, make_handler

from coordinator_process import CoordinatorProcess
from heatshare.jobs.bundle import pack_outputs
from heatshare.jobs.runner import JobRunner, Report, Step
from heatshare.jobs.sandbox import find_sandbox
from heatshare.network.client import CoordinatorClient
from heatshare.protocol.coordinator_api import Failure, Lease
from heatshare.protocol.local_api import JobPhase
from heatshare.store.jobs import JobJournal

_PROBLEM = find_sandbox().problem()
needs_sandbox = pytest.mark.skipif(_PROBLEM is not None, reason=f"no sandbox here: {_PROBLEM}")

FAILING_JOB = 'import sys\nprint("boom: no such tile", flush=True)\nsys.exit(3)\n'
NETWORK = "n"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Net:
    coordinator: CoordinatorProcess
    api_key: str
    bundle: Path

    def submit(self, **opts: int) -> int:
        return self.coordinator.submit(
            self.api_key, self.bundle, "python3 fail.py", price=100, label="fails", **opts
        )

    def node(self) -> tuple[CoordinatorClient, str]:
        """A newly enrolled node: its client and its token."""
        with CoordinatorClient(self.coordinator.url) as newcomer:
            answer = newcomer.enrol(self.coordinator.pairing_code("home"), INVENTORY)
        return CoordinatorClient(self.coordinator.url, answer.node_token), answer.node_token

    def attempt_state(self, token: str, attempt_id: int) -> str:
        found = [a for a in self.coordinator.attempts(token) if a["attempt_id"] == attempt_id]
        assert len(found) == 1, found
        return str(found[0]["state"])

    def job(self, job_id: int) -> dict[str, object]:
        return self.coordinator.job(self.api_key, job_id)


def start_net(tmp_path: Path, *extra: str) -> Net:
    work = tmp_path / "coordinator"
    work.mkdir()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "fail.py").write_text(FAILING_JOB)
    coordinator = CoordinatorProcess(db=work / "c.sqlite", workdir=work, extra=extra)
    coordinator.account("home")
    api_key = coordinator.requester("tests")
    coordinator.start()
    return Net(coordinator, api_key, bundle)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    n = start_net(tmp_path)
    try:
        yield n
    finally:
        n.coordinator.stop()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[JobRunner]:
    journal = JobJournal.open(tmp_path / "agent" / "heatshare.sqlite3")
    r = JobRunner(tmp_path / "agent", find_sandbox(), journal)
    try:
        yield r
    finally:
        journal.close()


def lease_one(runner: JobRunner, client: CoordinatorClient) -> Lease:
    """Lease a job and journal it, its bundle already in the runner's cache."""
    leases = client.lease(1).leases
    assert len(leases) == 1, leases
    lease = leases[0]
    runner.journal.add_lease(lease, network=NETWORK, now=time.time())
    runner.bundles_dir.mkdir(parents=True, exist_ok=True)
    client.download_bundle(lease, runner.bundles_dir / f"{lease.bundle_sha256}.tar.gz")
    return lease


def down(token: str) -> CoordinatorClient:
    return CoordinatorClient(f"http://127.0.0.1:{closed_port()}", token, attempts=1)


@needs_sandbox
def test_a_failed_job_is_reported_once_and_the_network_queues_it_again(
    net: Net, runner: JobRunner
) -> None:
    client, token = net.node()
    job_id = net.submit(max_attempts=3)
    lease = lease_one(runner, client)
    with client:
        step = runner.process(lease.attempt_id, client, lambda _: None)
        assert step is Step.FAILED
        assert runner.journal.failure_outbox() == []
        rec = runner.journal.get(lease.attempt_id)
        assert rec is not None and rec.phase is JobPhase.FAILED and rec.exit_code == 3
        assert [e.note for e in runner.journal.events(lease.attempt_id)][-1] == "failure reported"
        assert net.attempt_state(token, lease.attempt_id) == "failed"
        job = net.job(job_id)
        assert (job["state"], job["attempts"]) == ("queued", 1), job
        # The same report again (an answer lost on the way) changes nothing there.
        again = client.failure(lease.attempt_id, Failure(reason="The job exited with code 3."))
        assert again.state == "failed"
        assert (net.job(job_id)["state"], net.job(job_id)["attempts"]) == ("queued", 1)
        assert runner.report_failure(lease.attempt_id, client) is Report.SENT  # nothing waits


@needs_sandbox
def test_a_report_waits_while_the_network_is_down_and_is_recorded_once_when_it_answers(
    net: Net, runner: JobRunner, caplog: pytest.LogCaptureFixture
) -> None:
    client, token = net.node()
    job_id = net.submit(max_attempts=1)
    lease = lease_one(runner, client)
    offline = down(token)
    with caplog.at_level(logging.INFO, logger="heatshare.jobs.runner"), client, offline:
        assert runner.process(lease.attempt_id, offline, lambda _: None) is Step.FAILED
        assert "waits in the outbox" in caplog.text
        pending = runner.journal.pending_failure(lease.attempt_id)
        assert pending is not None and pending.tries == 1 and pending.report.exit_code == 3
        assert "boom: no such tile" in pending.report.log_tail  # the job's log, kept for it
        assert runner.report_failure(lease.attempt_id, offline) is Report.WAITING
        assert runner.journal.pending_failure(lease.attempt_id).tries == 2  # type: ignore[union-attr]
        assert net.attempt_state(token, lease.attempt_id) == "leased"  # the network has not heard
        # The network answers again.
        assert runner.report_failure(lease.attempt_id, client) is Report.SENT
        assert runner.journal.failure_outbox() == []
        assert net.attempt_state(token, lease.attempt_id) == "failed"
        job = net.job(job_id)
        assert job["state"] == "failed" and "exit status 3" in str(job["failure"]), job  # none left
        notes = [e.note for e in runner.journal.events(lease.attempt_id)]
        assert notes.count("failure reported") == 1


@needs_sandbox
def test_a_report_sent_again_after_a_lost_answer_is_recorded_once(
    net: Net, runner: JobRunner
) -> None:
    client, token = net.node()
    job_id = net.submit(max_attempts=3)
    lease = lease_one(runner, client)
    with client:
        offline = down(token)
        assert runner.process(lease.attempt_id, offline, lambda _: None) is Step.FAILED
        offline.close()
        pending = runner.journal.pending_failure(lease.attempt_id)
        assert pending is not None
        # The network took it, but the agent never heard (killed before it could note it).
        client.failure(lease.attempt_id, pending.report)
        assert runner.report_failure(lease.attempt_id, client) is Report.SENT
        assert runner.journal.failure_outbox() == []
        assert net.attempt_state(token, lease.attempt_id) == "failed"
        job = net.job(job_id)
        assert (job["state"], job["attempts"]) == ("queued", 1), job


@needs_sandbox
def test_a_stale_report_is_dropped_with_a_note_and_not_retried(
    tmp_path: Path, runner: JobRunner, caplog: pytest.LogCaptureFixture
) -> None:
    net = start_net(tmp_path, "--lease-s", "2")
    try:
        client, token = net.node()
        other, other_token = net.node()
        job_id = net.submit(max_attempts=3)
        lease = lease_one(runner, client)
        with caplog.at_level(logging.INFO, logger="heatshare.jobs.runner"), client, other:
            offline = down(token)
            assert runner.process(lease.attempt_id, offline, lambda _: None) is Step.FAILED
            offline.close()
            time.sleep(2.5)  # the lease runs out; the job goes to the other machine
            taken = other.lease(1).leases
            assert [t.job_id for t in taken] == [job_id]
            assert net.attempt_state(token, lease.attempt_id) == "expired"
            assert runner.report_failure(lease.attempt_id, client) is Report.STALE
            assert "was dropped: the network has the attempt as expired" in caplog.text
            assert runner.journal.failure_outbox() == []
            notes = [e.note for e in runner.journal.events(lease.attempt_id)]
            assert notes[-1] == "failure report not needed: the network has the attempt as expired"
            # The other machine's attempt is untouched by the late report.
            assert net.attempt_state(other_token, taken[0].attempt_id) == "leased"
            assert net.job(job_id)["state"] == "running"
            assert runner.report_failure(lease.attempt_id, client) is Report.SENT  # gone: no call
    finally:
        net.coordinator.stop()


@needs_sandbox
def test_a_report_the_network_refuses_is_dropped_not_retried(
    net: Net, runner: JobRunner, tmp_path: Path
) -> None:
    client, token = net.node()
    other, _ = net.node()
    net.submit()
    net.submit()
    lease = lease_one(runner, client)
    theirs = other.lease(1).leases[0]
    with client, other:
        # 409: this attempt has a result there already (uploaded before the agent broke).
        out = tmp_path / "out"
        out.mkdir()
        (out / "r.txt").write_text("done")
        sha, _ = pack_outputs(out, tmp_path / "r.tar.gz")
        client.upload_result(lease.attempt_id, tmp_path / "r.tar.gz", sha)
        runner.journal.fail(lease.attempt_id, Failure(reason="lost"), now=time.time(), note="lost")
        assert runner.report_failure(lease.attempt_id, client) is Report.STALE
        assert net.attempt_state(token, lease.attempt_id) == "accepted"
        # 404: an attempt this machine does not hold.
        runner.journal.add_lease(theirs, network=NETWORK, now=time.time())
        runner.journal.fail(theirs.attempt_id, Failure(reason="x"), now=time.time(), note="x")
        assert runner.report_failure(theirs.attempt_id, client) is Report.STALE
        assert runner.journal.failure_outbox() == []
        notes = [e.note for e in runner.journal.events(theirs.attempt_id)]
        assert notes[-1].startswith("failure report refused:")


def test_the_networks_own_trouble_keeps_the_report_waiting(runner: JobRunner) -> None:
    """5xx answers (replayed, as the coordinator sends them behind a proxy) are retried later."""
    script = Script()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client = CoordinatorClient(url, "hsn_x", attempts=1)
        from test_journal import make_lease

        runner.journal.add_lease(make_lease(5), network=NETWORK, now=1.0)
        runner.journal.fail(5, Failure(reason="exit 3", exit_code=3), now=2.0, note="exit 3")
        script.add(503, {"error": "The network is busy; try again shortly."})
        assert runner.report_failure(5, client) is Report.WAITING
        script.add(429, {"error": "Too many requests."})
        assert runner.report_failure(5, client) is Report.WAITING
        pending = runner.journal.pending_failure(5)
        assert pending is not None and pending.tries == 2
        assert pending.last_error == "Too many requests."
        answer = {
            "attempt_id": 5, "job_id": 7, "state": "failed", "leased_at": "2030-01-01T00:00:00Z",
            "finished_at": "2030-01-01T00:01:00Z", "price_minor": 250, "credited_minor": 0,
        }  # fmt: skip
        script.add(200, answer)
        assert runner.report_failure(5, client) is Report.SENT
        assert runner.journal.failure_outbox() == []
        sent = [json.loads(body) for method, path, _, body in script.seen if method == "POST"]
        assert len(sent) == 3
        assert all(s == {"reason": "exit 3", "exit_code": 3, "log_tail": ""} for s in sent)
        assert {path for _, path, _, _ in script.seen} == {"/v1/attempts/5/failure"}
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
