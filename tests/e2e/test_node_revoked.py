"""The operator revokes a machine while it runs a job: the real agent process stops leasing,
says why, and keeps its history; the job goes back to the queue; what it earned stays.

A real coordinator process, the real agent process and the real sandbox, on loopback; the
revocation comes from the operator's command line, as an operator would do it, so the
coordinator learns of it through the database (its revocation marker), not its own API.
"""

from __future__ import annotations

import httpx
import pytest

from conftest import Agent, Network, needs_sandbox, wait_for
from heatshare.protocol.coordinator_api import NODE_REVOKED
from heatshare.protocol.local_api import JobPhase
from processes import marked_processes

pytestmark = [needs_sandbox, pytest.mark.slow]


def test_a_revoked_machine_stops_says_why_and_keeps_its_history(
    network: Network, agent: Agent
) -> None:
    first = network.submit(2, 0.1, price=40, label="before")
    api = agent.start()
    status = api.enrol(network.url, network.code())
    assert status.enrolled and status.node_id is not None
    node_id = status.node_id
    token = agent.node_token
    wait_for("the first job's credit", lambda: network.job(first)["state"] == "done", 90)
    held = network.submit(400, 0.5, price=99, label="revoke me")
    info = wait_for(
        "the second job to run",
        lambda: [j for j in api.jobs().current if j.job_id == held and (j.progress or 0) > 0],
        90,
    )[0]  # type: ignore[index]
    markers = (f"slots/{info.attempt_id}/", "run.py 400 0.5")
    assert marked_processes(*markers), "the job should be running"

    said = network.coordinator.cli("node", "revoke", str(node_id))
    assert said.endswith("stays in the ledger.")

    # The agent hears it on its next call (progress, within ~10 s), stops, and says why.
    gone = wait_for(
        "the agent to leave the network",
        lambda: (s := api.network()).enrolled is False and s,
        60,
        describe=api.network,
    )
    assert gone.last_error is not None and gone.last_error.startswith(NODE_REVOKED), gone
    assert not gone.accepting_jobs
    wait_for("the job's processes to end", lambda: not marked_processes(*markers), 20)
    # Its history stays: the job it was paid for, and the one it was running, stopped.
    jobs = api.jobs()
    assert jobs.current == []
    by_job = {j.job_id: j for j in jobs.history}
    assert by_job[first].phase is JobPhase.DONE and by_job[first].credited_minor == 40
    assert by_job[held].phase in (JobPhase.CANCELLED, JobPhase.FAILED)
    assert not by_job[held].credited_minor

    # The job is queued again for other machines; the revoked token is refused.
    assert network.job(held)["state"] == "queued"
    listed = network.coordinator.cli("node", "list")
    assert listed.startswith(f"{node_id}\t") and "\t40 earned\trevoked " in listed, listed
    r = httpx.post(
        f"{network.url}/v1/leases",
        json={"max_jobs": 1},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 401 and r.json()["error"].startswith(NODE_REVOKED)
