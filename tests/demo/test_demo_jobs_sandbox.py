"""The demo's example jobs in the real sandbox: the same bytes as outside it, and a job
stopped midway resumes from its checkpoint when started again in the same slot."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobhelpers import JOBS, make_slot, read_png, run

from heatshare.jobs.sandbox import (
    Limits,
    Outcome,
    Sandbox,
    SandboxProcess,
    SandboxRequest,
    find_sandbox,
)
from heatshare.protocol.coordinator_api import Resources

TILE = ["--frame", "12", "--tile", "5", "--grid", "4", "--size", "24", "--samples", "2"]
SLOW_TILE = ["--frame", "24", "--tile", "9", "--size", "40", "--samples", "2"]


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    found = find_sandbox()
    problem = found.problem()
    if problem is not None:
        pytest.skip(f"no sandbox on this machine: {problem}")
    return found


@pytest.fixture
def started() -> Iterator[list[SandboxProcess]]:
    processes: list[SandboxProcess] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.stop(grace_s=0)


def _limits(job: str) -> Limits:
    """The limits the job's own job.json asks for, with a short time limit for a test."""
    spec = json.loads((JOBS / job / "job.json").read_text())
    r = Resources.model_validate(spec["resources"])
    return Limits(
        memory_bytes=r.memory_bytes,
        max_processes=r.max_processes,
        disk_bytes=r.disk_bytes,
        wall_time_s=60,
        cpu_cores=r.cpu_cores,
    )


def _start(
    sandbox: Sandbox, started: list[SandboxProcess], slot: Path, job: str, command: list[str]
) -> SandboxProcess:
    request = SandboxRequest(
        slot=slot,
        command=command,
        limits=_limits(job),
        log_path=slot.parent / f"{slot.name}.log",
        env={"HEATSHARE_JOB_ID": "1", "HEATSHARE_ATTEMPT_ID": "1"},
    )
    process = sandbox.start(request)
    started.append(process)
    return process


def test_fractal_in_the_sandbox_gives_the_same_png_as_outside(
    sandbox: Sandbox, started: list[SandboxProcess], tmp_path: Path
) -> None:
    plain = make_slot(tmp_path / "plain", "fractal")
    assert run(plain, "render.py", *TILE).returncode == 0

    slot = make_slot(tmp_path / "sandboxed", "fractal")
    process = _start(sandbox, started, slot.root, "fractal", ["python3", "render.py", *TILE])
    result = process.wait(60)
    log = (tmp_path / "sandboxed.log").read_text()
    assert result is not None and result.outcome is Outcome.EXITED, log
    assert result.exit_code == 0, log
    data = (slot.out / "tile.png").read_bytes()
    assert read_png(data).width == 24
    assert data == (plain.out / "tile.png").read_bytes()
    assert slot.progress.read_text() == "1.0000 tile 5 of frame 12 done\n"
    assert "fractal: frame 12 tile 5/16" in log


def test_matrix_in_the_sandbox_verifies(
    sandbox: Sandbox, started: list[SandboxProcess], tmp_path: Path
) -> None:
    slot = make_slot(tmp_path / "sandboxed", "matrix")
    command = ["python3", "matrix.py", "--n", "60", "--seed", "4", "--block", "8"]
    process = _start(sandbox, started, slot.root, "matrix", command)
    result = process.wait(60)
    log = (tmp_path / "sandboxed.log").read_text()
    assert result is not None and result.exit_code == 0, log
    report = json.loads((slot.out / "report.json").read_text())
    assert report["verified"] is True

    plain = make_slot(tmp_path / "plain", "matrix")
    assert run(plain, "matrix.py", *command[2:]).returncode == 0
    assert (slot.out / "report.json").read_bytes() == (plain.out / "report.json").read_bytes()


def test_fractal_stopped_in_the_sandbox_resumes_to_the_same_bytes(
    sandbox: Sandbox, started: list[SandboxProcess], tmp_path: Path
) -> None:
    plain = make_slot(tmp_path / "plain", "fractal")
    assert run(plain, "render.py", *SLOW_TILE).returncode == 0

    slot = make_slot(tmp_path / "sandboxed", "fractal")
    command = ["python3", "render.py", *SLOW_TILE]
    process = _start(sandbox, started, slot.root, "fractal", command)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if slot.progress.exists() and float(slot.progress.read_text().split()[0]) >= 0.1:
            break
        time.sleep(0.005)
    stopped = process.stop(grace_s=0)
    assert stopped.outcome is Outcome.KILLED, "the job ended before it could be stopped"
    kept = list(slot.checkpoint.glob("rows-*.bin"))
    assert 0 < len(kept) < 5
    assert not (slot.out / "tile.png").exists()

    again = _start(sandbox, started, slot.root, "fractal", command)
    result = again.wait(60)
    log = (tmp_path / "sandboxed.log").read_text()
    assert result is not None and result.exit_code == 0, log
    assert f"{8 * len(kept)} rows from a checkpoint" in log
    assert (slot.out / "tile.png").read_bytes() == (plain.out / "tile.png").read_bytes()
