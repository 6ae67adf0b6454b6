"""The heating thread in the real agent process, with faults injected into its sensors.

A real coordinator process leases one long job (``heat_job/beat.py``, writing the time every
50 ms) to a real agent (``fault_agent.py``: the agent's own composition root, the host's real
sensors and a GPU replayed by the fake ``pynvml``) that runs it in the real sandbox. Each test
breaks something (the sampler stops sampling, the sensors start failing, the GPU gets hot) and
measures, from the moment the fault took effect to the job's last heartbeat, how long the job
went on: a safety stop must freeze it within 2 s. Lifting the fault lets it go on, in place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_process import AgentProcess
from coordinator_process import CoordinatorProcess
from heatshare.jobs.sandbox import find_sandbox
from heatshare.protocol.client import AgentClient
from heatshare.protocol.heating import HeatingSettings, HeatMode, SafetyLimits, SafetyRule
from heatshare.protocol.local_api import JobInfo, JobPhase

pytestmark = pytest.mark.skipif(
    find_sandbox().problem() is not None, reason="no working sandbox here"
)

HERE = Path(__file__).resolve().parent
JOB_DIR = HERE / "heat_job"
FAULT_AGENT = HERE / "fault_agent.py"
SAFETY_STOP_S = 2.0  # the bound: a fault to the job frozen
# The job beats every 50 ms; a sandbox write and a busy 2-core machine add a little.
BEAT_SLACK_S = 0.3


def wait_for(what: str, check: Callable[[], object], timeout_s: float = 60.0) -> object:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@dataclass
class Heater:
    agent: AgentProcess
    api: AgentClient
    coordinator: CoordinatorProcess
    api_key: str

    @property
    def profile(self) -> Path:
        return self.agent.profile

    def faults(self, **faults: object) -> None:
        """Set the faults the agent's sensors show from their next read (a whole-file write)."""
        tmp = self.profile / "faults.tmp"
        tmp.write_text(json.dumps(faults))
        tmp.replace(self.profile / "faults.json")

    def fault_began(self) -> float:
        path = self.profile / "fault-began"
        return float(path.read_text()) if path.exists() else 0.0

    def job(self) -> JobInfo | None:
        jobs = self.api.jobs()
        return next(iter(jobs.current), None)

    def slot(self, attempt_id: int) -> Path:
        return self.profile / "data" / "slots" / str(attempt_id) / "job"

    def beat(self, attempt_id: int) -> float:
        try:
            return float((self.slot(attempt_id) / "beat").read_text())
        except (OSError, ValueError):
            return 0.0

    def starts(self, attempt_id: int) -> int:
        path = self.slot(attempt_id) / "checkpoint" / "starts"
        return len(path.read_text().splitlines()) if path.exists() else 0


def spawn_fault_agent(profile: Path) -> AgentProcess:
    profile.mkdir(parents=True, exist_ok=True)
    stderr_file = profile / f"stderr-{time.monotonic_ns()}.txt"
    stdout_file = stderr_file.with_name(stderr_file.name.replace("stderr-", "stdout-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with stderr_file.open("wb") as err, stdout_file.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(FAULT_AGENT),
                "run",
                "--profile-dir",
                str(profile),
                "--listen",
                "127.0.0.1:0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
        )
    return AgentProcess(profile, proc, stderr_file)


@pytest.fixture(scope="module")
def heater(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Heater]:
    root = tmp_path_factory.mktemp("heating")
    work = root / "coordinator"
    work.mkdir()
    coordinator = CoordinatorProcess(db=work / "coordinator.sqlite", workdir=work)
    coordinator.account("home")
    api_key = coordinator.requester("tests")
    coordinator.start()
    agent = spawn_fault_agent(root / "agent")
    try:
        api = agent.client()
        # No grace and no dwell: a hot GPU stops at once and resumes once cool, so the
        # tests time the stop itself.
        api.put_heating_settings(
            HeatingSettings(mode=HeatMode.EARN_FIRST, limits=SafetyLimits(grace_s=0, dwell_s=0))
        )
        heater = Heater(agent, api, coordinator, api_key)
        coordinator.submit(
            api_key,
            JOB_DIR,
            "python3 beat.py 600 4",
            price=100,
            label="beat",
            wall_time_s=3600,
        )
        status = api.enrol(coordinator.url, coordinator.pairing_code("home"))
        assert status.enrolled, status
        yield heater
    finally:
        agent.kill()
        coordinator.stop()


def running_job(heater: Heater) -> JobInfo:
    """The job, beating now (not frozen, not stopped)."""

    def beating() -> JobInfo | None:
        job = heater.job()
        if job is None or job.phase is not JobPhase.RUNNING:
            return None
        return job if time.time() - heater.beat(job.attempt_id) < 0.5 else None

    found = wait_for("the job to be running", beating, 90)
    assert isinstance(found, JobInfo)
    return found


def frozen_since(heater: Heater, attempt_id: int, quiet_s: float = 1.0) -> float:
    """Once the job has not beaten for ``quiet_s``: the time of its last beat."""

    def still() -> float | None:
        last = heater.beat(attempt_id)
        return last if last and time.time() - last >= quiet_s else None

    found = wait_for("the job to stand still", still, 15)
    assert isinstance(found, float)
    return found


def assert_stopped_in_time(heater: Heater, attempt_id: int, rule: SafetyRule) -> float:
    last_beat = frozen_since(heater, attempt_id)
    began = heater.fault_began()
    assert began, "the fault never took effect"
    took = last_beat - began
    assert took <= SAFETY_STOP_S + BEAT_SLACK_S, f"the job ran on {took:.2f} s after the fault"
    status = heater.api.heating()
    assert status.safety_stop and not status.computing, status
    assert any(e.rule is rule for e in status.events), status.events
    # Frozen, not stopped: still the same run of the same attempt.
    job = heater.job()
    assert job is not None and job.attempt_id == attempt_id and job.phase is JobPhase.RUNNING
    return took


def heating_warnings(heater: Heater, words: str) -> list[str]:
    return [
        ln
        for ln in heater.agent.log_problems()
        if " WARNING " in ln and "heatshare.agent.heating:" in ln and words in ln.lower()
    ]


def assert_logged(heater: Heater, words: str, before: int) -> None:
    """The stop is in the agent's log, a new WARNING of the heating with its reason, and
    nothing else went wrong there (but the sampler saying the sensor failed)."""
    wait_for(
        f"a WARNING about {words!r} in the agent's log",
        lambda: len(heating_warnings(heater, words)) > before,
        5,
    )
    others = [
        ln
        for ln in heater.agent.log_problems()
        if "heatshare.agent.heating:" not in ln and "sampler: tick failed" not in ln
    ]
    assert not others, others


def assert_goes_on(heater: Heater, attempt_id: int, starts: int) -> None:
    heater.faults()
    wait_for(
        "the job to go on",
        lambda: time.time() - heater.beat(attempt_id) < 0.3,
        30,
    )
    assert heater.starts(attempt_id) == starts  # thawed where it stood, not started again


def test_a_sampler_that_stops_sampling_freezes_the_job_within_2_s(heater: Heater) -> None:
    job = running_job(heater)
    starts = heater.starts(job.attempt_id)
    logged = len(heating_warnings(heater, "sensor"))
    heater.faults(stall=True)
    took = assert_stopped_in_time(heater, job.attempt_id, SafetyRule.SENSOR_ERROR)
    print(f"stalled sampler: job frozen {took:.2f} s after the last sample")
    assert_logged(heater, "sensor", logged)
    assert_goes_on(heater, job.attempt_id, starts)


def test_a_failing_sensor_freezes_the_job_within_2_s(heater: Heater) -> None:
    job = running_job(heater)
    starts = heater.starts(job.attempt_id)
    logged = len(heating_warnings(heater, "sensor"))
    heater.faults(fail="the hwmon file vanished")
    took = assert_stopped_in_time(heater, job.attempt_id, SafetyRule.SENSOR_ERROR)
    print(f"failing sensor: job frozen {took:.2f} s after the first failed read")
    assert "the hwmon file vanished" in " ".join(heater.api.status().warnings)
    assert_logged(heater, "sensor", logged)
    assert_goes_on(heater, job.attempt_id, starts)


def test_a_hot_gpu_freezes_the_job_within_2_s(heater: Heater) -> None:
    job = running_job(heater)
    starts = heater.starts(job.attempt_id)
    logged = len(heating_warnings(heater, "gpu"))
    heater.faults(gpu_temp_c=95)
    took = assert_stopped_in_time(heater, job.attempt_id, SafetyRule.GPU_HOT)
    print(f"hot GPU: job frozen {took:.2f} s after the hot reading")
    assert_logged(heater, "gpu", logged)
    assert_goes_on(heater, job.attempt_id, starts)


def test_mode_off_lets_the_job_reach_its_checkpoint_then_stops_it(heater: Heater) -> None:
    job = running_job(heater)
    starts = heater.starts(job.attempt_id)
    eta_file = heater.slot(job.attempt_id) / ".checkpoint-eta"
    # Ask for off early in a checkpoint period, so the wait is seen.
    wait_for("early in a checkpoint period", lambda: float(eta_file.read_text() or 0) > 2.5, 10)
    asked = time.time()
    eta = float(eta_file.read_text())
    heater.api.set_mode(HeatMode.OFF)
    last = frozen_since(heater, job.attempt_id)
    ran_on = last - asked
    assert ran_on >= min(eta, 2.0) - 0.5, f"stopped {ran_on:.2f} s after off, checkpoint {eta} s"
    assert ran_on <= eta + SAFETY_STOP_S, f"ran on {ran_on:.2f} s after off, checkpoint {eta} s"
    wait_for(
        "the job to be stopped, not frozen",
        lambda: (j := heater.job()) is not None and j.elapsed_s > 0 and heater.api.jobs(),
        10,
    )
    status = heater.api.heating()
    assert not status.computing and not status.safety_stop
    heater.api.set_mode(HeatMode.EARN_FIRST)
    wait_for(
        "the job to start again from its checkpoint",
        lambda: (
            heater.starts(job.attempt_id) == starts + 1
            and time.time() - heater.beat(job.attempt_id) < 0.5
        ),
        60,
    )


def test_the_householders_pause_wins_over_the_thermostat(heater: Heater) -> None:
    job = running_job(heater)
    starts = heater.starts(job.attempt_id)
    heater.api.boost(30)  # the thermostat wants full heat
    status = heater.api.pause(None)
    assert status.state.value == "paused"
    frozen_since(heater, job.attempt_id)
    time.sleep(1.0)
    assert heater.starts(job.attempt_id) == starts  # not started again while paused
    assert heater.api.heating().computing  # the thermostat would compute; the pause wins
    heater.api.resume()
    heater.api.boost(0)
    wait_for(
        "the job to start again after the pause",
        lambda: (
            heater.starts(job.attempt_id) == starts + 1
            and time.time() - heater.beat(job.attempt_id) < 0.5
        ),
        60,
    )
