"""An agent killed the moment it releases a job: nothing of the job may keep running.

bubblewrap asks the kernel to end it with its parent (``--die-with-parent``) only a few
milliseconds after it starts; an agent killed before that must still leave nothing
behind. Each try is a real agent process that starts a real job and SIGKILLs itself as
soon as ``start()`` returns, on each path this machine has.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import LIMITS
from heatshare.jobs.bubblewrap import BubblewrapSandbox
from heatshare.jobs.limits import CgroupV1
from processes import marked_processes

TRIES = 10

AGENT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from heatshare.jobs.bubblewrap import BubblewrapSandbox
    from heatshare.jobs.sandbox import Limits, SandboxRequest

    slot = Path(sys.argv[1])
    sandbox = BubblewrapSandbox(use_cgroups=sys.argv[3] == "cgroup")
    assert sandbox.problem() is None, sandbox.problem()
    print(sandbox.limit_mechanism(), flush=True)
    sys.stdin.readline()  # everything imported and probed: kill at the release, not before
    proc = sandbox.start(SandboxRequest(
        slot=slot, command=["python3", "-c", "import time; time.sleep(300)", sys.argv[2]],
        log_path=slot.parent / "job.log",
        limits=Limits(memory_bytes=128 << 20, max_processes=32, disk_bytes=64 << 20,
                      wall_time_s=120)))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("mode", ["cgroup", "rlimits"])
def test_nothing_of_a_job_runs_on_once_its_agent_is_killed_as_it_releases_it(
    tmp_path: Path, mode: str, cgroups: bool
) -> None:
    if mode == "cgroup" and not cgroups:
        pytest.skip("no cgroup the agent may make here")
    leaked: list[int] = []
    for n in range(TRIES):
        slot = tmp_path / f"try-{n}" / "job"
        slot.mkdir(parents=True)
        marker = f"hs-released-{uuid.uuid4().hex}"
        agent = subprocess.Popen(
            [sys.executable, "-c", AGENT, os.fspath(slot), marker, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert agent.stdin is not None
            assert agent.stdout is not None
            said = agent.stdout.readline()
            assert said.startswith("a cgroup" if mode == "cgroup" else "rlimits"), said
            agent.stdin.write("go\n")
            agent.stdin.close()
            assert agent.wait(30) == -signal.SIGKILL
        finally:
            agent.kill()
            agent.wait()
            agent.stdout.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + 2
        while marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = marked_processes(marker)
        if left:
            leaked.append(n)
            _kill_all(left)
    assert leaked == [], f"{len(leaked)} of {TRIES} jobs ran on after their agent was killed"


def test_a_new_agent_ends_what_a_gone_agents_frozen_job_left(cgroups: bool) -> None:
    # A job frozen when its agent died: a frozen task takes its SIGKILL only once thawed,
    # and its keeper is frozen with it. The next agent's sandbox check, at its start, sweeps
    # the group, before any job.
    if not cgroups:
        pytest.skip("no cgroup the agent may make here")
    gone = subprocess.Popen(["true"])
    gone.wait()
    group = CgroupV1.create(f"job-{gone.pid}-1", LIMITS)
    dirs = list(group.dirs.values())
    marker = f"hs-frozen-{uuid.uuid4().hex}"
    # Not this test's child (init reaps it), as a gone agent's job is not the new agent's.
    started = subprocess.run(
        ["sh", "-c", f'python3 -c "import time; time.sleep(300)" {marker} >&- 2>&- & echo $!'],
        capture_output=True,
        text=True,
        check=True,
    )
    left = int(started.stdout)
    try:
        group.add(left)
        assert group.freeze(True) or "freezer" not in group.dirs
        assert BubblewrapSandbox().problem() is None  # what the agent asks as it starts
        deadline = time.monotonic() + 2
        while marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marked_processes(marker) == []
        assert not any(path.exists() for path in dirs)
    finally:
        _kill_all([left])
        group.freeze(False)
        group.remove()
