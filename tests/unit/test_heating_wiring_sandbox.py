"""Holding a job for the heating controller, in the real bubblewrap sandbox: freeze and thaw
(through the cgroup freezer, and by SIGSTOP where the job has no cgroup), fewer cores, and
the checkpoint ETA a job writes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from heatshare.jobs.bubblewrap import BubblewrapProcess, BubblewrapSandbox
from heatshare.jobs.runner import ETA_STALE_S, read_checkpoint_eta
from heatshare.jobs.sandbox import Limits, Outcome, SandboxRequest, find_sandbox

needs_sandbox = pytest.mark.skipif(
    find_sandbox().problem() is not None, reason="no working sandbox here"
)

# A job and a child it starts, each writing the time every 20 ms (whole, by a rename: a freeze
# may come between any two instructions): a frozen job writes nothing.
BEATING_JOB = """
import os, pathlib, subprocess, sys, time
def beat(name):
    while True:
        tmp = pathlib.Path(f"/job/{name}.tmp")
        tmp.write_text(repr(time.time()))
        os.replace(tmp, f"/job/{name}")
        time.sleep(0.02)
if len(sys.argv) > 1:
    beat("child")
subprocess.Popen(["python3", "beat.py", "child"])
beat("beat")
"""


def beats(slot: Path) -> tuple[float, float]:
    return float((slot / "beat").read_text()), float((slot / "child").read_text())


@pytest.fixture(params=[True, False], ids=["cgroup", "no-cgroup"])
def job(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BubblewrapProcess, Path]]:
    slot = tmp_path / "job"
    slot.mkdir()
    (slot / "beat.py").write_text(BEATING_JOB)
    sandbox = BubblewrapSandbox(use_cgroups=request.param)
    proc = sandbox.start(
        SandboxRequest(
            slot=slot,
            command=["python3", "beat.py"],
            limits=Limits(2**30, 64, 2**30, 60.0, cpu_cores=2),
            log_path=tmp_path / "log.txt",
        )
    )
    deadline = time.monotonic() + 10
    while not ((slot / "beat").exists() and (slot / "child").exists()):
        assert time.monotonic() < deadline, (tmp_path / "log.txt").read_text()
        time.sleep(0.02)
    try:
        yield proc, slot
    finally:
        proc.stop(1.0)


@needs_sandbox
def test_a_frozen_job_and_its_children_stand_still_until_thawed(
    job: tuple[BubblewrapProcess, Path],
) -> None:
    proc, slot = job
    t0 = time.time()
    assert proc.freeze()
    took = time.time() - t0
    assert took < 0.5, took
    time.sleep(0.2)
    first = beats(slot)
    assert max(first) <= t0 + 0.1  # nothing written after the freeze returned
    time.sleep(0.6)
    assert beats(slot) == first
    assert proc.frozen_s >= 0.7
    proc.thaw()
    time.sleep(0.3)
    after = beats(slot)
    assert after[0] > first[0] and after[1] > first[1]
    frozen = proc.frozen_s
    time.sleep(0.1)
    assert proc.frozen_s == frozen  # the clock stops with the thaw


@needs_sandbox
def test_a_frozen_job_still_stops_at_once(job: tuple[BubblewrapProcess, Path]) -> None:
    proc, _ = job
    assert proc.freeze()
    t0 = time.monotonic()
    result = proc.stop(2.0)
    assert result.outcome is Outcome.KILLED
    assert time.monotonic() - t0 < 1.5  # SIGTERM is taken as it wakes, no SIGKILL wait


@needs_sandbox
def test_fewer_cores_for_a_cpu_job(job: tuple[BubblewrapProcess, Path]) -> None:
    proc, _ = job
    cgroup = proc._cgroup  # what the kernel enforces, read back

    def quota() -> object:
        if cgroup is not None:
            return int((cgroup.dirs["cpu"] / "cpu.cfs_quota_us").read_text())
        return {frozenset(os.sched_getaffinity(pid)) for pid in proc._job_pids()}

    cpus = sorted(os.sched_getaffinity(0))
    assert proc.limit_cores(1)
    assert quota() == (100_000 if cgroup is not None else {frozenset(cpus[:1])})
    assert proc.limit_cores(None)  # back to the lease's two cores
    assert quota() == (200_000 if cgroup is not None else {frozenset(cpus)})


def test_the_checkpoint_eta_counts_down_from_when_it_was_written(tmp_path: Path) -> None:
    eta = tmp_path / ".checkpoint-eta"
    now = time.time()
    assert read_checkpoint_eta(eta, now) is None
    eta.write_text("45\n")
    os.utime(eta, (now - 10, now - 10))
    assert read_checkpoint_eta(eta, now) == pytest.approx(35.0)
    os.utime(eta, (now - 50, now - 50))
    assert read_checkpoint_eta(eta, now) == 0.0  # due now
    os.utime(eta, (now - 45 - ETA_STALE_S - 1, now - 45 - ETA_STALE_S - 1))
    assert read_checkpoint_eta(eta, now) is None  # long overdue: forgotten, not believed
    for junk in ("", "soon", "nan", "-5", "inf"):
        eta.write_text(junk)
        assert read_checkpoint_eta(eta, time.time()) is None, junk
    eta.unlink()
    eta.symlink_to("/etc/hostname")  # the job may not aim the agent at a host file
    assert read_checkpoint_eta(eta, time.time()) is None
