"""The real agent process (``heatshare-agent run``), killed with SIGKILL mid-job and
mid-upload, and left alone through a coordinator outage: every job ends credited exactly once.

The agent reaches the coordinator through :class:`SlowProxy`, so an upload can be slowed down
(to kill the agent in the middle of it) or its answer lost (the coordinator took the result,
the agent never heard).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from slow_proxy import SlowProxy

from conftest import Agent, Network, needs_sandbox, wait_for
from heatshare.protocol.local_api import JobPhase
from processes import marked_processes

pytestmark = [needs_sandbox, pytest.mark.slow]


@pytest.fixture
def proxy(network: Network) -> Iterator[SlowProxy]:
    p = SlowProxy(network.coordinator.port)
    try:
        yield p
    finally:
        p.close()


def credits_for(network: Network, token: str, job_id: int) -> list[int]:
    earnings = network.coordinator.earnings(token)
    return [
        int(e["amount_minor"])
        for e in earnings["entries"]  # type: ignore[union-attr]
        if e["kind"] == "credit" and e["job_id"] == job_id
    ]


def test_kill_9_mid_job_resumes_from_the_checkpoint_and_is_credited_once(
    network: Network, agent: Agent
) -> None:
    job_id = network.submit(24, 0.5, price=321, label="kill me")
    api = agent.start()
    status = api.enrol(network.url, network.code())
    assert status.enrolled and status.accepting_jobs, status
    info = wait_for(
        "the job to be a third done", lambda: (j := agent.job()) and (j.progress or 0) >= 0.3 and j
    )
    markers = (f"slots/{info.attempt_id}/", "run.py 24 0.5")
    assert len(marked_processes(*markers)) >= 2, "the sandbox and the job should be running"
    agent.kill9()
    # Nothing of the job outlives the agent that started it.
    wait_for("the job's processes to end", lambda: not marked_processes(*markers), 10)
    api = agent.start()
    done = wait_for(
        "the job to be done",
        lambda: (j := agent.job()) and j.phase is JobPhase.DONE and j,
        90,
        describe=lambda: agent.api and agent.api.jobs(),
    )
    assert done.attempt_id == info.attempt_id  # resumed, not leased again
    assert done.credited_minor == 321
    log = api.job_log(done.attempt_id)
    starts = [ln for ln in log.splitlines() if "starts at step" in ln]
    assert starts[0].endswith("starts at step 0 of 24")
    assert len(starts) == 2 and not starts[1].endswith("step 0 of 24"), starts
    assert network.job(job_id)["state"] == "done"
    assert credits_for(network, agent.node_token, job_id) == [321]
    assert api.job_file(done.attempt_id, "result.txt") == b"steps=24 total=276\n"


def test_kill_9_mid_upload_sends_the_result_again_and_is_credited_once(
    network: Network, agent: Agent, proxy: SlowProxy
) -> None:
    size = 3 * 1024 * 1024
    job_id = network.submit(8, 0.25, price=654, size=size)
    api = agent.start()
    api.enrol(proxy.url, network.code())
    # Slowed while the job runs, so the whole upload goes through the slow link. (No progress
    # call goes out during a job this short: the first is due after 10 s.)
    wait_for("the job to run", lambda: (j := agent.job()) and (j.progress or 0) > 0)
    proxy.rate = 256 * 1024  # about 12 s for the result
    wait_for(
        "the upload to be under way",
        lambda: (j := agent.job()) and j.phase is JobPhase.UPLOADING and proxy.sent_up > size / 4,
    )
    agent.kill9()
    assert network.job(job_id)["state"] == "running"  # the coordinator has no result yet
    proxy.rate = None
    agent.start()
    done = wait_for(
        "the job to be done",
        lambda: (j := agent.job()) and j.phase is JobPhase.DONE and j,
        90,
        describe=lambda: agent.api and agent.api.jobs(),
    )
    assert done.credited_minor == 654
    assert network.job(job_id)["state"] == "done"
    assert credits_for(network, agent.node_token, job_id) == [654]


def test_a_result_taken_but_never_answered_is_sent_again_and_credited_once(
    network: Network, agent: Agent, proxy: SlowProxy
) -> None:
    job_id = network.submit(8, 0.25, price=777)
    api = agent.start()
    api.enrol(proxy.url, network.code())
    wait_for("the job to run", lambda: (j := agent.job()) and (j.progress or 0) > 0)
    proxy.swallow_answers = True
    wait_for("the coordinator to take the result", lambda: network.job(job_id)["state"] == "done")
    info = agent.job()
    assert info is not None and info.phase is JobPhase.UPLOADING  # it never heard back
    agent.kill9()
    proxy.swallow_answers = False
    agent.start()
    done = wait_for(
        "the agent to hear", lambda: (j := agent.job()) and j.phase is JobPhase.DONE and j, 90
    )
    assert done.credited_minor == 777 and done.result_status == "accepted"
    assert credits_for(network, agent.node_token, job_id) == [777]


def test_the_coordinator_down_for_a_while_results_wait_in_the_outbox(
    network: Network, agent: Agent
) -> None:
    job_id = network.submit(16, 0.25, price=500)
    api = agent.start()
    api.enrol(network.url, network.code())
    wait_for("the job to run", lambda: (j := agent.job()) and (j.progress or 0) > 0)
    network.coordinator.stop()
    down_since = time.monotonic()
    wait_for("the result in the outbox", lambda: api.network().outbox_pending == 1, 60)
    status = api.network()
    assert status.reachable is False and status.last_error
    info = agent.job()
    assert info is not None and info.phase is JobPhase.OUTBOX
    # The agent restarted while offline keeps its outbox.
    agent.stop()
    api = agent.start()
    assert api.network().outbox_pending == 1
    time.sleep(max(0.0, 3.0 - (time.monotonic() - down_since)))
    network.coordinator.start()  # the same port and database
    done = wait_for(
        "the result to arrive", lambda: (j := agent.job()) and j.phase is JobPhase.DONE and j, 90
    )
    assert done.credited_minor == 500
    assert network.job(job_id)["state"] == "done"
    assert credits_for(network, agent.node_token, job_id) == [500]
    wait_for("the outbox to empty", lambda: api.network().outbox_pending == 0, 30)
    assert api.earnings().balance_minor == 500
