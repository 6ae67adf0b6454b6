"""A systemd user scope per job: the choice, the command line, the group found and driven.

Three parts, each as real as this machine allows:

- the real ``systemd-run`` here (systemd 252, no user manager): its refusal is found once,
  before any job depends on it, and jobs run on rlimits and the watch, limited;
- a fake ``systemd-run`` that does what systemd does for a scope (makes the scope's group
  on the machine's real cgroup v2 hierarchy, moves itself in, runs the command after
  ``--``): the command line, the group found from /proc/<pid>/cgroup, freeze, thaw and kill
  by the kernel's cgroup.freeze and cgroup.kill, nothing left behind;
- a fake tree for what this machine's v2 hierarchy lacks (its memory and pids controllers
  are bound to v1): the event counts, kept once systemd has removed the group.

No test here runs against a real systemd user manager.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import LIMITS, MiB, Ran
from heatshare.jobs import limits as job_limits
from heatshare.jobs.bubblewrap import BubblewrapSandbox
from heatshare.jobs.limits import ScopeCgroup, scope_path, scope_unit, systemd_run_argv
from heatshare.jobs.sandbox import Outcome, SandboxRequest

RunJob = Callable[..., Ran]
UNIFIED = Path("/sys/fs/cgroup/unified")


def _writable_unified() -> bool:
    return (UNIFIED / "cgroup.controllers").exists() and os.access(
        UNIFIED / "cgroup.procs", os.W_OK
    )


needs_unified = pytest.mark.skipif(
    not _writable_unified(),
    reason="needs a cgroup v2 hierarchy at /sys/fs/cgroup/unified that this user may write",
)


# The real systemd-run of this machine.


def test_a_user_scope_that_cannot_be_made_is_found_before_any_job_and_rlimits_limit(
    run_job: RunJob, caplog: pytest.LogCaptureFixture
) -> None:
    systemd_run = shutil.which("systemd-run")
    if systemd_run is None:
        pytest.skip("no systemd-run on this machine")
    if not (UNIFIED / "cgroup.controllers").exists():
        pytest.skip("no cgroup v2 hierarchy at /sys/fs/cgroup/unified")
    # A v2 hierarchy without a writable group handing down memory and pids: a desktop
    # whose agent runs in its login session. Here there is no user manager to ask.
    sandbox = BubblewrapSandbox(cgroup_mount=UNIFIED)
    with caplog.at_level(logging.INFO, logger="heatshare.jobs.bubblewrap"):
        assert sandbox.problem() is None
        assert sandbox.problem() is None
        said = sandbox.limit_mechanism()
        ran = run_job(
            ["python3", "-c", "b = bytearray(512 << 20); print('allocated')"],
            limits=replace(LIMITS, memory_bytes=64 * MiB),
            using=sandbox,
        )
        fine = run_job(["sh", "-c", "echo fine > out/done"], using=sandbox)
    assert said is not None
    assert said.startswith("rlimits and the watch: no cgroup the agent may make"), said
    assert "systemd-run --user --scope failed (" in said, said
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Job limits")]
    assert chosen == [f"Job limits here: {said}"]
    assert all(r.levelno == logging.INFO for r in caplog.records)
    # The job never went near systemd-run: its log holds only what the job said.
    assert "bus" not in ran.log
    assert "allocated" not in ran.log
    assert ran.result.outcome is Outcome.OUT_OF_MEMORY, ran.log
    assert fine.result.outcome is Outcome.EXITED
    assert fine.result.exit_code == 0
    assert (fine.slot / "out" / "done").read_text() == "fine\n"


# A fake systemd-run on the machine's real cgroup v2 hierarchy.

FAKE_SYSTEMD_RUN = """#!/bin/sh
# What systemd does for `systemd-run --user --scope --unit U ... -- CMD`: a group for the
# scope, this process moved into it, then CMD in its place. Each call's arguments are kept,
# each followed by a line "---".
{{ printf '%s\\n' "$@"; echo ---; }} >> "{record}"
unit=
while [ $# -gt 0 ]; do
    case "$1" in
        --unit) unit=$2; shift 2 ;;
        --) shift; break ;;
        *) shift ;;
    esac
done
if [ -n "$unit" ]; then
    mkdir -p "{slice}/$unit.scope"
    echo $$ > "{slice}/$unit.scope/cgroup.procs"
fi
exec "$@"
"""


class FakeSystemdRun:
    def __init__(self, tmp_path: Path, slice_dir: Path) -> None:
        self.record = tmp_path / "systemd-run-calls"
        self.slice = slice_dir
        self.path = tmp_path / "bin" / "systemd-run"
        self.path.parent.mkdir()
        self.path.write_text(
            FAKE_SYSTEMD_RUN.format(
                record=self.record,
                slice=slice_dir,
            )
        )
        self.path.chmod(0o755)

    def calls(self) -> list[list[str]]:
        """Each call's arguments, in the order of the calls."""
        if not self.record.exists():
            return []
        text = self.record.read_text()
        return [call.splitlines() for call in text.split("---\n")[:-1]]

    def scopes(self) -> list[Path]:
        """The jobs' scopes (systemd would have removed the probe's already)."""
        return sorted(p for p in self.slice.glob("*.scope") if "-job-probe-" not in p.name)


@pytest.fixture
def fake_systemd_run(tmp_path: Path) -> Iterator[FakeSystemdRun]:
    slice_dir = UNIFIED / f"heatshare-test-{os.getpid()}.slice"
    slice_dir.mkdir()
    try:
        yield FakeSystemdRun(tmp_path, slice_dir)
    finally:
        # No systemd here to remove the scopes once empty (--collect): the test does.
        for scope in slice_dir.glob("*.scope"):
            _rmdir_soon(scope)
        _rmdir_soon(slice_dir)


def _rmdir_soon(path: Path) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            path.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.fixture
def scope_sandbox(
    fake_systemd_run: FakeSystemdRun, monkeypatch: pytest.MonkeyPatch
) -> BubblewrapSandbox:
    # This machine's v2 hierarchy has no memory or pids controller (v1 holds them); the
    # check that a scope has them is tested below, on its own.
    monkeypatch.setattr(job_limits, "SCOPE_CONTROLLERS", ())
    return BubblewrapSandbox(cgroup_mount=UNIFIED, systemd_run=os.fspath(fake_systemd_run.path))


def _procs(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def _request(slot: Path, command: list[str], **env: str) -> SandboxRequest:
    return SandboxRequest(
        slot=slot, command=command, limits=LIMITS, log_path=slot.parent / "job.log", env=env
    )


@needs_unified
def test_a_job_runs_in_its_own_user_scope_with_its_limits_on_the_command_line(
    scope_sandbox: BubblewrapSandbox, fake_systemd_run: FakeSystemdRun, run_job: RunJob
) -> None:
    said = scope_sandbox.limit_mechanism()
    assert said is not None
    assert said.startswith("a systemd user scope per job (systemd-run --user --scope)"), said
    # The probe: one call, `true` in a scope asked for as a job's is.
    (probe,) = fake_systemd_run.calls()
    probe_unit = probe[probe.index("--unit") + 1]
    assert probe_unit.startswith("heatshare-job-probe-")
    assert probe[:6] == ["--user", "--scope", "--quiet", "--collect", "--unit", probe_unit]
    assert "Delegate=yes" in probe
    assert probe[-2:] == ["--", "true"]
    ran = run_job(
        ["sh", "-c", "echo made > out/made"],
        env={"HEATSHARE_ATTEMPT_ID": "att-42"},
        using=scope_sandbox,
    )
    assert ran.result.outcome is Outcome.EXITED, ran.log
    assert ran.result.exit_code == 0
    assert (ran.slot / "out" / "made").read_text() == "made\n"
    job_call = fake_systemd_run.calls()[1]
    dash = job_call.index("--")
    unit = job_call[job_call.index("--unit") + 1]
    assert unit.startswith("heatshare-job-att-42-")
    expected = systemd_run_argv("systemd-run", unit, LIMITS)[1:-1]
    assert job_call[:dash] == expected
    assert f"MemoryMax={LIMITS.memory_bytes}" in expected
    # The job's, and the wrapper and its keeper.
    assert f"TasksMax={LIMITS.max_processes + 2}" in expected
    assert "CPUQuota=100%" in expected
    assert job_call[dash + 1 : dash + 3] == ["/bin/sh", "-c"]
    assert job_call[-4:] == ["--", "sh", "-c", "echo made > out/made"]
    # The job ended and so did its keeper: the scope is empty, for systemd to collect.
    (scope,) = fake_systemd_run.scopes()
    assert scope.name == f"{unit}.scope"
    assert _procs(scope) == []


@needs_unified
def test_a_scoped_job_is_frozen_thawed_and_killed_through_its_group(
    scope_sandbox: BubblewrapSandbox, fake_systemd_run: FakeSystemdRun, slot: Path
) -> None:
    # Counts forever in a child that left its session: only the group (or the PID
    # namespace) can end it.
    count = "i=0; while :; do i=$((i+1)); echo $i > out/count; sleep 0.02; done"
    command = ["sh", "-c", f"setsid sh -c '{count}' & wait"]
    proc = scope_sandbox.start(_request(slot, command))
    try:
        (scope,) = fake_systemd_run.scopes()
        assert proc.pid in _procs(scope)
        deadline = time.monotonic() + 10
        while not (slot / "out" / "count").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.freeze()
        deadline = time.monotonic() + 5
        while "frozen 1" not in (scope / "cgroup.events").read_text():
            assert time.monotonic() < deadline, (scope / "cgroup.events").read_text()
            time.sleep(0.01)
        # The kernel's freezer, not SIGSTOP: each process is frozen where it stands.
        assert (scope / "cgroup.freeze").read_text().strip() == "1"
        frozen_at = (slot / "out" / "count").read_text()
        time.sleep(0.3)
        assert (slot / "out" / "count").read_text() == frozen_at
        proc.thaw()
        assert (scope / "cgroup.freeze").read_text().strip() == "0"
        deadline = time.monotonic() + 5
        while (slot / "out" / "count").read_text() == frozen_at:
            assert time.monotonic() < deadline, "the job did not go on after a thaw"
            time.sleep(0.02)
        # The wrapper, bwrap, the sandbox's pid 1, the job, the keeper.
        assert len(_procs(scope)) >= 5
        result = proc.stop(grace_s=1.0)
    finally:
        proc.stop(grace_s=0.1)
    assert result.outcome is Outcome.KILLED
    assert _procs(scope) == []


@needs_unified
def test_a_scope_without_the_needed_controllers_is_given_up_before_the_job_runs(
    fake_systemd_run: FakeSystemdRun, run_job: RunJob, caplog: pytest.LogCaptureFixture
) -> None:
    # This machine's v2 groups have neither memory nor pids: as on a desktop whose user
    # manager is not given them, where systemd would take MemoryMax and enforce nothing.
    sandbox = BubblewrapSandbox(cgroup_mount=UNIFIED, systemd_run=os.fspath(fake_systemd_run.path))
    with caplog.at_level(logging.INFO, logger="heatshare.jobs.bubblewrap"):
        assert sandbox.problem() is None
        first = run_job(["sh", "-c", "echo once >> out/runs"], using=sandbox)
        second = run_job(["sh", "-c", "echo twice >> out/runs"], using=sandbox)
    assert first.result.outcome is Outcome.EXITED, first.log
    assert second.result.outcome is Outcome.EXITED, second.log
    # Run once each: the job waiting in the first scope never started.
    assert (first.slot / "out" / "runs").read_text() == "once\ntwice\n"
    said = sandbox.limit_mechanism()
    assert said is not None
    assert said.startswith("rlimits and the watch: the job's systemd user scope failed"), said
    assert "does not give its scopes the memory and pids controller" in said
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Job limits")]
    assert chosen == [
        "Job limits here: a systemd user scope per job (systemd-run --user --scope): no "
        "cgroup the agent may make (no writable cgroup v2 group hands down memory and pids), "
        "and the user manager makes scopes.",
        f"Job limits here from now on: {said}",
    ]
    # The probe, the first job's scope, then no more calls.
    assert len(fake_systemd_run.calls()) == 2
    assert [_procs(s) for s in fake_systemd_run.scopes()] == [[]]


AGENT = """
import sys
from pathlib import Path
from heatshare.jobs import limits
from heatshare.jobs.bubblewrap import BubblewrapSandbox
from heatshare.jobs.sandbox import Limits, SandboxRequest

limits.SCOPE_CONTROLLERS = ()  # as in scope_sandbox: this machine's v2 has neither
slot = Path(sys.argv[1])
sandbox = BubblewrapSandbox(cgroup_mount=Path(sys.argv[2]), systemd_run=sys.argv[3])
job = "setsid sleep 300 & sleep 300"
proc = sandbox.start(SandboxRequest(
    slot=slot, command=["sh", "-c", job], log_path=slot.parent / "job.log",
    limits=Limits(memory_bytes=128 << 20, max_processes=32, disk_bytes=64 << 20,
                  wall_time_s=120)))
print("started", proc.pid, flush=True)
proc.wait()
"""


@needs_unified
@pytest.mark.parametrize("at_once", [False, True], ids=["running", "just-released"])
def test_nothing_is_left_in_the_scope_when_the_agent_is_killed(
    fake_systemd_run: FakeSystemdRun, slot: Path, at_once: bool
) -> None:
    # just-released: killed the moment the job is let go, before bwrap can have asked the
    # kernel to end it with its parent (--die-with-parent): the keeper ends the scope.
    agent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            AGENT,
            os.fspath(slot),
            os.fspath(UNIFIED),
            os.fspath(fake_systemd_run.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().startswith("started")
        if at_once:
            agent.send_signal(signal.SIGKILL)
        (scope,) = fake_systemd_run.scopes()
        deadline = time.monotonic() + 10
        # The wrapper, bwrap, the sandbox's pid 1, the keeper, the shell and its two sleeps.
        while not at_once and len(_procs(scope)) < 7 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert at_once or len(_procs(scope)) == 7, (slot.parent / "job.log").read_text()
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        deadline = time.monotonic() + 2
        while _procs(scope) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _procs(scope) == []
    finally:
        agent.kill()
        agent.wait()
        agent.stdout.close()  # type: ignore[union-attr]


# What the fake tree shows and this machine's v2 hierarchy cannot.


def test_the_scope_is_found_in_the_processs_cgroup_lines() -> None:
    unit = scope_unit("job-1-1", "att/../9")
    assert unit.startswith("heatshare-job-att____9-")
    lines = (
        "12:memory:/user.slice\n"
        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
        f"{unit}.scope\n"
    )
    assert scope_path(lines, unit) == (
        f"/user.slice/user-1000.slice/user@1000.service/app.slice/{unit}.scope"
    )
    # Before systemd has moved it: still in the agent's own group.
    assert scope_path("0::/user.slice/user-1000.slice/session-2.scope\n", unit) is None
    assert scope_path(f"0::/app.slice/{unit}.scope.d\n", unit) is None


def test_a_scope_keeps_its_counts_once_systemd_has_removed_it(tmp_path: Path) -> None:
    group = tmp_path / "app.slice" / "heatshare-job-a-1.scope"
    group.mkdir(parents=True)
    (group / "cgroup.procs").write_text("")
    (group / "cgroup.kill").write_text("")
    (group / "cgroup.freeze").write_text("0\n")
    (group / "cpu.max").write_text("100000 100000\n")
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    (group / "pids.events").write_text("max 2\n")
    scope = ScopeCgroup(group, "heatshare-job-a-1")
    assert scope.freeze(True)
    assert (group / "cgroup.freeze").read_text() == "1"
    assert scope.set_cpu_cores(1)
    assert (group / "cpu.max").read_text() == "100000 100000"
    assert scope.kill_all(timeout_s=0.1)
    assert (group / "cgroup.kill").read_text() == "1"
    for entry in group.iterdir():
        entry.unlink()
    group.rmdir()  # what systemd does to an empty scope
    assert scope.oom_kills() == 1
    assert scope.process_limit_hits() == 2
    scope.remove()
    assert scope.oom_kills() == 1
    assert not group.exists()
