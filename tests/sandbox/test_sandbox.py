"""Ordinary jobs in the real sandbox: outputs, progress, exit status, environment, stop."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import LIMITS, Ran
from heatshare.jobs.bubblewrap import BubblewrapSandbox
from heatshare.jobs.sandbox import (
    NoSandbox,
    Outcome,
    SandboxRequest,
    SandboxUnavailable,
    find_sandbox,
)
from processes import marked_processes

RunJob = Callable[..., Ran]


def test_find_sandbox_gives_bubblewrap_here(sandbox: BubblewrapSandbox) -> None:
    found = find_sandbox()
    assert isinstance(found, BubblewrapSandbox)
    assert found.kind == "bubblewrap"
    assert found.problem() is None


def test_a_job_writes_outputs_checkpoints_and_progress(run_job: RunJob, slot: Path) -> None:
    job = textwrap.dedent(
        """
        import os, pathlib
        out = pathlib.Path(os.environ["HEATSHARE_OUTPUT"])
        (out / "tiles").mkdir()
        for i in range(3):
            (out / "tiles" / f"tile-{i}.txt").write_text(f"tile {i}")
            with open(os.environ["HEATSHARE_PROGRESS"], "a") as f:
                f.write(f"{(i + 1) / 3:.2f} tile {i + 1} of 3\\n")
        pathlib.Path(os.environ["HEATSHARE_CHECKPOINT"], "state").write_text("3")
        print("cwd", os.getcwd(), "input", open("input.txt").read())
        """
    )
    ran = run_job(["python3", "job.py"], files={"job.py": job, "input.txt": "42"})
    assert ran.result.outcome is Outcome.EXITED
    assert ran.result.exit_code == 0
    assert ran.result.message == "The job ended with exit status 0."
    assert sorted(p.name for p in (slot / "out" / "tiles").iterdir()) == [
        "tile-0.txt",
        "tile-1.txt",
        "tile-2.txt",
    ]
    assert (slot / ".progress").read_text().splitlines()[-1] == "1.00 tile 3 of 3"
    assert (slot / "checkpoint" / "state").read_text() == "3"
    assert "cwd /job input 42" in ran.log


@pytest.mark.parametrize(
    ("command", "code", "message"),
    [
        ("exit 3", 3, "The job ended with exit status 3."),
        ("kill -TERM $$", 143, "The job was ended by SIGTERM."),
    ],
)
def test_exit_status_is_reported(run_job: RunJob, command: str, code: int, message: str) -> None:
    ran = run_job(["sh", "-c", command])
    assert ran.result.outcome is Outcome.EXITED
    assert (ran.result.exit_code, ran.result.message) == (code, message)


def test_a_missing_program_is_a_failed_job_with_a_logged_reason(run_job: RunJob) -> None:
    ran = run_job(["no-such-program-here"])
    assert ran.result.outcome is Outcome.EXITED
    assert ran.result.exit_code != 0
    assert "no-such-program-here" in ran.log


def test_the_environment_is_only_the_agreed_one(
    run_job: RunJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEATSHARE_LEAK_TEST", "host value")
    ran = run_job(
        ["python3", "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        env={"HEATSHARE_JOB_ID": "7", "HEATSHARE_ATTEMPT_ID": "9", "HEATSHARE_OUTPUT": "/x"},
    )
    env = json.loads(ran.log.splitlines()[-1])
    env.pop("PWD", None)  # set by bwrap's --chdir
    assert env == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/job",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "HEATSHARE_JOB_ID": "7",
        "HEATSHARE_ATTEMPT_ID": "9",
        # The layout's variables are the sandbox's to set, whatever a request says.
        "HEATSHARE_OUTPUT": "/job/out",
        "HEATSHARE_CHECKPOINT": "/job/checkpoint",
        "HEATSHARE_PROGRESS": "/job/.progress",
        "HEATSHARE_CHECKPOINT_ETA": "/job/.checkpoint-eta",
    }


def test_identity_and_namespaces(run_job: RunJob) -> None:
    ran = run_job(
        [
            "sh",
            "-c",
            "hostname; echo $$; ls /proc | grep -c '^[0-9]'; grep CapEff /proc/self/status",
        ]
    )
    host, pid, count, caps = ran.log.split("\n")[:4]
    assert host == "heatshare-job"
    assert int(pid) <= 3  # a PID namespace: bwrap's pid 1, then the job
    assert int(count) <= 4
    assert caps.split() == ["CapEff:", "0000000000000000"]


def test_without_a_gpu_the_job_sees_only_the_basic_devices(run_job: RunJob) -> None:
    ran = run_job(["ls", "-A", "/dev"], gpu=False)
    assert set(ran.log.split()) == {
        "core",
        "fd",
        "full",
        "null",
        "ptmx",
        "pts",
        "random",
        "shm",
        "stderr",
        "stdin",
        "stdout",
        "tty",
        "urandom",
        "zero",
    }


def test_with_a_gpu_the_job_sees_the_hosts_gpu_devices(run_job: RunJob) -> None:
    ran = run_job(["ls", "-A", "/dev"], gpu=True)
    host_gpu = {
        p.name for p in Path("/dev").iterdir() if p.name.startswith(("nvidia", "dri", "kfd"))
    }
    assert host_gpu <= set(ran.log.split())
    assert "kvm" not in ran.log.split()


def test_stop_gives_the_job_its_grace_then_ends_it(sandbox: BubblewrapSandbox, slot: Path) -> None:
    marker = f"hs-stop-{uuid.uuid4().hex}"
    job = textwrap.dedent(
        f"""
        import signal, sys, time, pathlib
        def on_term(*_):
            pathlib.Path("/job/checkpoint/saved").write_text("yes")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        time.sleep(60)  # {marker}
        """
    )
    (slot / "job.py").write_text(job)
    log = slot.parent / "job.log"
    proc = sandbox.start(
        SandboxRequest(
            slot=slot, command=["python3", "job.py", marker], limits=LIMITS, log_path=log
        )
    )
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None
    result = proc.stop(grace_s=5)
    assert result.outcome is Outcome.KILLED
    assert result.message == "The job was stopped."
    assert (slot / "checkpoint" / "saved").read_text() == "yes"
    assert result.wall_s < 5
    assert proc.poll() == result
    assert proc.stop() == result
    assert marked_processes(marker) == []


def test_stop_kills_a_job_that_ignores_sigterm(sandbox: BubblewrapSandbox, slot: Path) -> None:
    marker = f"hs-stubborn-{uuid.uuid4().hex}"
    log = slot.parent / "job.log"
    proc = sandbox.start(
        SandboxRequest(
            slot=slot,
            command=["sh", "-c", f"trap '' TERM; echo ready; while :; do sleep 1; done # {marker}"],
            limits=LIMITS,
            log_path=log,
        )
    )
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    result = proc.stop(grace_s=0.5)
    assert result.outcome is Outcome.KILLED
    assert 0.5 <= time.monotonic() - started < 3
    assert marked_processes(marker) == []


def test_bad_requests_are_refused_with_a_sentence(sandbox: BubblewrapSandbox, slot: Path) -> None:
    log = slot.parent / "job.log"
    with pytest.raises(ValueError, match="no command"):
        sandbox.start(SandboxRequest(slot=slot, command=[], limits=LIMITS, log_path=log))
    with pytest.raises(ValueError, match="does not exist"):
        sandbox.start(
            SandboxRequest(slot=slot / "absent", command=["true"], limits=LIMITS, log_path=log)
        )
    with pytest.raises(ValueError, match="not a usable name"):
        sandbox.start(
            SandboxRequest(
                slot=slot, command=["true"], limits=LIMITS, log_path=log, env={"A=B": "1"}
            )
        )
    with pytest.raises(ValueError, match="above zero"):
        sandbox.start(
            SandboxRequest(
                slot=slot, command=["true"], limits=replace(LIMITS, memory_bytes=0), log_path=log
            )
        )


def test_no_bubblewrap_is_a_refusal_that_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = BubblewrapSandbox(bwrap=str(tmp_path / "bwrap"))
    assert "could not be run here" in (missing.problem() or "")
    with pytest.raises(SandboxUnavailable, match="could not be run here"):
        missing.start(
            SandboxRequest(
                slot=tmp_path, command=["true"], limits=LIMITS, log_path=tmp_path / "log"
            )
        )
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "'bubblewrap' package" in (BubblewrapSandbox().problem() or "")


def test_a_bubblewrap_that_cannot_make_namespaces_is_a_refusal(tmp_path: Path) -> None:
    # What bwrap says where unprivileged user namespaces are turned off.
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in --help) echo "--size --json-status-fd --disable-userns";; '
        '*) echo "bwrap: No permissions to create new namespace" >&2; exit 1;; esac\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    problem = BubblewrapSandbox(bwrap=str(fake)).problem()
    assert problem is not None
    assert "No permissions to create new namespace" in problem
    old = tmp_path / "old-bwrap"
    old.write_text("#!/bin/sh\necho '--bind --tmpfs'\n")
    old.chmod(0o755)
    assert "0.8 or newer" in (BubblewrapSandbox(bwrap=str(old)).problem() or "")


@pytest.mark.parametrize(
    ("platform", "words"),
    [("win32", "none for Windows yet"), ("darwin", "none for macOS yet")],
)
def test_other_systems_refuse_jobs(
    monkeypatch: pytest.MonkeyPatch, platform: str, words: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    found = find_sandbox()
    assert isinstance(found, NoSandbox)
    assert words in (found.problem() or "")
    assert "does not take jobs" in (found.problem() or "")


def test_no_cgroup_is_left_behind(run_job: RunJob, cgroups: bool) -> None:
    from heatshare.jobs.limits import CgroupV1

    if not cgroups:
        pytest.skip("no cgroup per job here")

    run_job(["true"])
    for base in CgroupV1.bases().values():
        leftovers = [
            p.name
            for p in base.iterdir()
            if p.is_dir() and p.name.startswith(f"job-{os.getpid()}-")
        ]
        assert leftovers == []


def test_a_start_that_fails_on_the_host_is_a_refusal_with_nothing_left(
    sandbox: BubblewrapSandbox, slot: Path, cgroups: bool
) -> None:
    log = slot.parent / "no-such-folder" / "job.log"
    with pytest.raises(SandboxUnavailable, match="could not be started"):
        sandbox.start(SandboxRequest(slot=slot, command=["true"], limits=LIMITS, log_path=log))
    if cgroups:
        from heatshare.jobs.limits import CgroupV1

        for base in CgroupV1.bases().values():
            assert not [p for p in base.iterdir() if p.name.startswith(f"job-{os.getpid()}-")]
