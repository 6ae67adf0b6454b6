"""Failure reports through an outage, end to end: the real agent process, a real coordinator
process on loopback and a real job in the real sandbox that exits with code 3.

The coordinator runs with its access log, so the tests count the failure reports that reached
it; the agent's journal (its SQLite file, read beside it) says how it settled each report.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from conftest import Agent, Network, needs_sandbox, wait_for
from heatshare.protocol.client import AgentClient
from heatshare.protocol.local_api import JobInfo, JobPhase

pytestmark = [needs_sandbox, pytest.mark.slow]

FAILING_JOB = Path(__file__).with_name("failing_job")
ACCESS_LOG = pytest.mark.parametrize("network", [("--access-log",)], indirect=True)


def submit_failing(network: Network, seconds: float, max_attempts: int) -> int:
    return network.coordinator.submit(
        network.api_key,
        FAILING_JOB,
        f"python3 fail.py {seconds}",
        price=300,
        label="fails with code 3",
        max_attempts=max_attempts,
    )


def reports_received(network: Network, attempt_id: int) -> int:
    """Failure reports of an attempt the coordinator answered, from its access log."""
    pattern = re.compile(rf'"POST /v1/attempts/{attempt_id}/failure HTTP/1\.1" 200')
    return len(pattern.findall(network.coordinator.output()))


def attempt_states(network: Network, token: str) -> dict[int, str]:
    return {int(a["attempt_id"]): str(a["state"]) for a in network.coordinator.attempts(token)}  # type: ignore[call-overload]


def fail_while_down(network: Network, agent: Agent, job_id: int) -> tuple[AgentClient, JobInfo]:
    """Start the agent, let it lease the job, stop the coordinator; the job then fails."""
    api = agent.start()
    api.enrol(network.url, network.code())
    wait_for("the job to run", lambda: (j := agent.jobs()) and (j[0].progress or 0) > 0, 60)
    network.coordinator.stop()
    wait_for(
        "the failure report in the outbox",
        lambda: api.network().failures_pending == 1,
        60,
        describe=lambda: (api.network(), agent.jobs()),
    )
    (info,) = agent.jobs()
    assert info.phase is JobPhase.FAILED and info.job_id == job_id
    assert info.error and "exit status 3" in info.error, info
    status = api.network()
    assert status.reachable is False and status.outbox_pending == 0
    assert status.last_error and "outbox" in status.last_error
    assert reports_received(network, info.attempt_id) == 0  # it never got there
    return api, info


@ACCESS_LOG
def test_a_failure_while_the_coordinator_is_down_waits_and_is_recorded_when_it_is_back(
    network: Network, agent: Agent
) -> None:
    job_id = submit_failing(network, seconds=6, max_attempts=2)
    api, first = fail_while_down(network, agent, job_id)
    # The coordinator has not heard: the attempt still holds its lease there.
    network.coordinator.start()  # the same port and database
    wait_for("the outbox to empty", lambda: api.network().failures_pending == 0, 60)
    token = agent.node_token
    assert attempt_states(network, token)[first.attempt_id] == "failed"
    # One attempt left by the job's rules: queued again, leased again, failed again.
    wait_for(
        "the job to fail for good",
        lambda: network.job(job_id)["state"] == "failed",
        90,
        describe=lambda: (network.job(job_id), agent.jobs()),
    )
    job = network.job(job_id)
    assert job["attempts"] == 2 and "exit status 3" in str(job["failure"]), job
    states = attempt_states(network, token)
    assert sorted(states.values()) == ["failed", "failed"], states
    second = max(states)
    wait_for("the second report", lambda: api.network().failures_pending == 0, 30)
    assert reports_received(network, first.attempt_id) == 1
    assert reports_received(network, second) == 1
    assert agent.notes(first.attempt_id).count("failure reported") == 1
    assert api.network().reachable is True


@ACCESS_LOG
def test_a_pending_failure_report_survives_kill_9_and_is_sent_once_after_restart(
    network: Network, agent: Agent
) -> None:
    job_id = submit_failing(network, seconds=6, max_attempts=1)
    _, info = fail_while_down(network, agent, job_id)
    agent.kill9()
    api = agent.start()  # still offline: the report is in the journal, not in memory
    assert api.network().failures_pending == 1
    network.coordinator.start()
    wait_for("the outbox to empty", lambda: api.network().failures_pending == 0, 60)
    assert attempt_states(network, agent.node_token) == {info.attempt_id: "failed"}
    job = network.job(job_id)
    assert job["state"] == "failed" and job["attempts"] == 1, job
    assert reports_received(network, info.attempt_id) == 1
    notes = agent.notes(info.attempt_id)
    assert notes.count("failure reported") == 1, notes
    (after,) = agent.jobs()
    assert after.phase is JobPhase.FAILED and after.attempt_id == info.attempt_id


def test_leaving_the_network_while_it_is_down_lets_waiting_reports_go(
    network: Network, agent: Agent
) -> None:
    job_id = submit_failing(network, seconds=6, max_attempts=1)
    api, info = fail_while_down(network, agent, job_id)
    status = api.leave_network()  # one last try, which cannot reach it
    assert not status.enrolled and status.failures_pending == 0
    assert agent.notes(info.attempt_id)[-1].startswith("The job ended with exit status 3")
    assert agent.proc is not None
    conn = sqlite3.connect(f"file:{agent.proc.paths.db_file}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT COUNT(*) FROM failure_outbox").fetchone() == (0,)
    finally:
        conn.close()
    # Back on the same profile, nothing is left to send and no old network to send it to.
    agent.stop()
    assert agent.start().network().failures_pending == 0
