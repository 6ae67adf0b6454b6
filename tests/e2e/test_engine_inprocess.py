"""The job engine (``NetworkWorker``) in this process against a real coordinator process and
the real sandbox: pairing → enrol → lease → run → upload → credited, the outbox across an
outage, the network's cancel, and leaving."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Network, needs_sandbox, wait_for
from heatshare.agent.work import NODE_TOKEN_FILE, NetworkError, NetworkWorker
from heatshare.jobs.sandbox import NoSandbox, Sandbox, find_sandbox
from heatshare.protocol.coordinator_api import Inventory, SandboxKind, Telemetry
from heatshare.protocol.discovery import Paths
from heatshare.protocol.local_api import JobPhase

pytestmark = [needs_sandbox, pytest.mark.slow]


def inventory() -> Inventory:
    return Inventory(
        hostname="test-node",
        os="linux",
        arch=platform.machine().lower(),
        cpu_cores=os.cpu_count() or 1,
        memory_bytes=4 * 1024**3,
        sandbox=SandboxKind.BUBBLEWRAP,
        agent_version="test",
    )


class Engine:
    def __init__(self, profile: Path, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox
        self.paths = Paths.for_profile(profile)
        self.paths.ensure()
        self.paused = False
        self.energy = 1000.0
        self.worker = self._make()

    def _make(self) -> NetworkWorker:
        return NetworkWorker(
            paths=self.paths,
            db_file=self.paths.db_file,
            sandbox=self.sandbox or find_sandbox(),
            inventory=inventory,
            energy_j=self._energy,
            telemetry=Telemetry,
            paused=lambda: self.paused,
            lease_poll_s=0.5,
            progress_every_s=1.0,
        )

    def _energy(self) -> float:
        self.energy += 10.0  # a real counter only grows
        return self.energy

    def restart(self) -> None:
        self.worker.stop()
        self.worker = self._make()
        self.worker.start()

    def phase(self, attempt_id: int) -> JobPhase | None:
        jobs = self.worker.jobs()
        for info in [*jobs.current, *jobs.history]:
            if info.attempt_id == attempt_id:
                return info.phase
        return None

    def only_job(self):
        jobs = self.worker.jobs()
        infos = [*jobs.current, *jobs.history]
        return infos[0] if len(infos) == 1 else None


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "agent")
    e.worker.start()
    try:
        yield e
    finally:
        e.worker.stop()


def test_pair_enrol_lease_run_upload_credited(network: Network, engine: Engine) -> None:
    w = engine.worker
    with pytest.raises(NetworkError, match="not known") as err:
        w.enrol(network.url, "WRONG-CODE-1")
    assert err.value.status == 404
    status = w.enrol(network.url, network.code())
    assert status.enrolled and status.reachable and status.accepting_jobs
    assert status.sandbox == "bubblewrap" and status.sandbox_problem is None
    assert (engine.paths.config_dir / NODE_TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    job_id = network.submit(5, 0.2, price=275, label="five steps")
    wait_for("the job to be done", lambda: network.job(job_id)["state"] == "done")
    info = wait_for(
        "the agent to record the credit",
        lambda: (j := engine.only_job()) is not None and j.phase is JobPhase.DONE and j,
    )
    assert info.job_id == job_id and info.label == "five steps"
    assert info.credited_minor == 275 and info.result_status == "accepted"
    assert info.files == ["result.txt"]
    assert w.job_file(info.attempt_id, "result.txt") == b"steps=5 total=10\n"
    assert info.progress == 1.0
    assert info.elapsed_s >= 1.0
    assert info.energy_j is not None and info.energy_j > 0
    assert "starts at step 0 of 5" in w.job_log(info.attempt_id)
    earnings = wait_for("the earnings", lambda: (e := w.earnings()).balance_minor == 275 and e)
    assert earnings.currency == "EUR" and earnings.today_minor == 275
    assert [(x.kind, x.amount_minor, x.job_id) for x in earnings.entries] == [
        ("credit", 275, job_id)
    ]
    with pytest.raises(ValueError):
        w.job_file(info.attempt_id, "../etc/passwd")
    with pytest.raises(KeyError):
        w.job_file(info.attempt_id, "absent.txt")
    with pytest.raises(KeyError):
        w.job_log(99_999)
    assert w.summary().earned_today_minor == 275


def test_results_wait_in_the_outbox_while_the_coordinator_is_down(
    network: Network, engine: Engine
) -> None:
    w = engine.worker
    w.enrol(network.url, network.code())
    job_id = network.submit(12, 0.25, price=400)
    wait_for("the job to run", lambda: (j := engine.only_job()) and (j.progress or 0) > 0.1)
    network.coordinator.stop()
    wait_for("the result in the outbox", lambda: w.network_status().outbox_pending == 1, 60)
    info = engine.only_job()
    assert info is not None and info.phase is JobPhase.OUTBOX
    assert w.network_status().reachable is False
    # Offline, the earnings are the last figures the network confirmed.
    network.coordinator.start()
    wait_for("the result to arrive", lambda: engine.phase(info.attempt_id) is JobPhase.DONE, 60)
    assert network.job(job_id)["state"] == "done"
    wait_for("the credit", lambda: w.earnings().balance_minor == 400)
    earnings = w.earnings()
    assert [x.amount_minor for x in earnings.entries] == [400]  # credited exactly once
    assert w.network_status().outbox_pending == 0


def test_a_restarted_engine_resumes_the_job_from_its_checkpoint(
    network: Network, engine: Engine
) -> None:
    w = engine.worker
    w.enrol(network.url, network.code())
    network.submit(10, 0.3, price=300)
    wait_for("progress", lambda: (j := engine.only_job()) and (j.progress or 0) >= 0.3)
    engine.restart()
    info = wait_for(
        "done",
        lambda: (j := engine.only_job()) and j.phase is JobPhase.DONE and j,
        describe=engine.worker.jobs,
    )
    log = engine.worker.job_log(info.attempt_id)
    assert "starts at step 0 of 10" in log
    assert "restarted (start 2)" in log
    resumed = [ln for ln in log.splitlines() if "starts at step" in ln]
    assert len(resumed) == 2 and not resumed[1].endswith("step 0 of 10")
    assert info.credited_minor == 300


def test_pause_stops_the_job_and_resume_restarts_it(network: Network, engine: Engine) -> None:
    w = engine.worker
    w.enrol(network.url, network.code())
    network.submit(10, 0.3, price=100)
    wait_for("progress", lambda: (j := engine.only_job()) and (j.progress or 0) >= 0.2)
    engine.paused = True
    wait_for("the job to stop", lambda: w.summary().job_label is None)
    assert not w.network_status().accepting_jobs
    time.sleep(1.0)
    info = engine.only_job()
    assert info is not None and info.phase is JobPhase.RUNNING
    progress = info.progress
    time.sleep(1.0)
    assert engine.only_job().progress == progress  # nothing runs while paused
    engine.paused = False
    info = wait_for(
        "done",
        lambda: (j := engine.only_job()) and j.phase is JobPhase.DONE and j,
        describe=engine.worker.jobs,
    )
    assert info.credited_minor == 100


def test_leaving_forgets_the_network_and_the_token(network: Network, engine: Engine) -> None:
    w = engine.worker
    w.enrol(network.url, network.code())
    network.submit(40, 0.25, price=100)
    wait_for("the job to run", lambda: (j := engine.only_job()) and (j.progress or 0) > 0)
    status = w.leave()
    assert not status.enrolled and status.coordinator_url is None
    assert not (engine.paths.config_dir / NODE_TOKEN_FILE).exists()
    info = engine.only_job()
    assert info is not None and info.phase is JobPhase.CANCELLED
    with pytest.raises(NetworkError) as err:
        w.earnings()
    assert err.value.status == 404
    # A used code is refused with 409.
    code = network.code()
    w.enrol(network.url, code)
    with pytest.raises(NetworkError) as err:
        w.enrol(network.url, code)
    assert err.value.status == 409


@pytest.mark.parametrize("network", [("--lease-s", "4")], indirect=True)
def test_a_job_whose_lease_ran_out_while_paused_is_dropped_and_leased_anew(
    network: Network, engine: Engine
) -> None:
    w = engine.worker
    w.enrol(network.url, network.code())
    job_id = network.submit(12, 0.25, price=90)
    first = wait_for("progress", lambda: (j := engine.only_job()) and (j.progress or 0) > 0 and j)
    engine.paused = True  # no progress goes out: the short lease runs out
    wait_for("the lease to run out", lambda: network.job(job_id)["state"] == "queued", 30)
    engine.paused = False
    wait_for(
        "the first attempt dropped", lambda: engine.phase(first.attempt_id) is JobPhase.CANCELLED
    )
    wait_for("the job done anew", lambda: network.job(job_id)["state"] == "done", 60)
    done = [j for j in w.jobs().history if j.phase is JobPhase.DONE]
    assert len(done) == 1 and done[0].attempt_id != first.attempt_id
    assert done[0].credited_minor == 90
    wait_for("the credit", lambda: w.earnings().balance_minor == 90)
    assert [x.amount_minor for x in w.earnings().entries] == [90]


def test_two_machines_agree_on_a_replicated_job_and_both_are_paid(
    network: Network, engine: Engine, tmp_path: Path
) -> None:
    other = Engine(tmp_path / "agent2")
    other.worker.start()
    try:
        engine.worker.enrol(network.url, network.code())
        other.worker.enrol(network.url, network.code())
        job_id = network.submit(4, 0.1, price=60, replication=2)
        wait_for("the job done", lambda: network.job(job_id)["state"] == "done", 90)
        for e in (engine, other):
            info = wait_for(
                "the verdict",
                lambda e=e: (j := e.only_job()) and j.result_status == "accepted" and j,
                90,
            )
            assert info.credited_minor == 60
        assert network.job(job_id)["result_sha256"] is not None
    finally:
        other.worker.stop()


def test_the_demo_network_runs_jobs_and_comes_back_with_the_agent(engine: Engine) -> None:
    w = engine.worker
    status = w.start_demo()
    assert status.enrolled and status.demo and status.currency == "CRD"
    wait_for("demo credits", lambda: (w.earnings().balance_minor or 0) > 0, 120)
    engine.restart()  # the demo coordinator stops with the agent and starts with it again
    w = engine.worker
    wait_for("the demo back", lambda: (s := w.network_status()).reachable and s.enrolled, 60)
    status = w.network_status()
    assert status.demo and status.node_id is not None
    before = w.earnings().balance_minor
    wait_for("more demo credits", lambda: w.earnings().balance_minor > before, 120)


def test_a_token_the_network_no_longer_knows_ends_the_enrolment_with_a_reason(
    network: Network, engine: Engine, expect_log
) -> None:
    expect_log(r"Left the network: .*no longer valid")
    engine.worker.enrol(network.url, network.code())
    engine.worker.stop()
    (engine.paths.config_dir / NODE_TOKEN_FILE).write_text("hsn_revoked")
    engine.restart()
    w = engine.worker
    status = wait_for("the enrolment to end", lambda: not (s := w.network_status()).enrolled and s)
    assert status.last_error is not None and "no longer valid" in status.last_error
    assert not (engine.paths.config_dir / NODE_TOKEN_FILE).exists()


def test_without_a_sandbox_the_machine_enrols_but_never_asks_for_work(
    network: Network, tmp_path: Path
) -> None:
    e = Engine(tmp_path / "nosandbox", NoSandbox("No sandbox here, for this test."))
    e.worker.start()
    try:
        job_id = network.submit(2, 0.1, price=10)
        status = e.worker.enrol(network.url, network.code())
        assert status.enrolled and not status.accepting_jobs
        assert status.sandbox is None
        assert status.sandbox_problem == "No sandbox here, for this test."
        time.sleep(3.0)
        assert network.job(job_id)["state"] == "queued"
        assert e.only_job() is None
    finally:
        e.worker.stop()
