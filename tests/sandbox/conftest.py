"""The real sandbox for the sandbox tests: bubblewrap must be here, as it is in CI.

A machine without it fails these tests rather than skipping them, so CI cannot pass
with the sandbox untested; ``HEATSHARE_SKIP_SANDBOX=1`` skips them on purpose.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from heatshare.jobs.bubblewrap import BubblewrapSandbox
from heatshare.jobs.sandbox import Limits, SandboxRequest, SandboxResult

MiB = 1 << 20
LIMITS = Limits(
    memory_bytes=128 * MiB, max_processes=64, disk_bytes=64 * MiB, wall_time_s=20.0, cpu_cores=1
)


def _sandbox(**kwargs: object) -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox(**kwargs)  # type: ignore[arg-type]
    problem = sandbox.problem()
    if problem is not None:
        if os.environ.get("HEATSHARE_SKIP_SANDBOX") == "1":
            pytest.skip(f"HEATSHARE_SKIP_SANDBOX=1 and no sandbox here: {problem}")
        pytest.fail(f"The real sandbox is needed for these tests: {problem}")
    return sandbox


@pytest.fixture(scope="session")
def sandbox() -> BubblewrapSandbox:
    return _sandbox()


@pytest.fixture(scope="session")
def cgroups() -> bool:
    """Whether the sandbox gets a cgroup per job here (root on cgroup v1, as in CI)."""
    from heatshare.jobs.limits import CgroupV1

    try:
        group = CgroupV1.create(f"job-{os.getpid()}-probe", LIMITS)
    except OSError:
        return False
    group.remove()
    return True


@pytest.fixture(scope="session")
def fallback_sandbox() -> BubblewrapSandbox:
    """The same sandbox without cgroups: limits by rlimits and the watch."""
    return _sandbox(use_cgroups=False)


@dataclass
class Ran:
    result: SandboxResult
    slot: Path
    log: str


@pytest.fixture
def slot(tmp_path: Path) -> Path:
    path = tmp_path / "slot" / "job"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def run_job(sandbox: BubblewrapSandbox, slot: Path) -> Callable[..., Ran]:
    """Runs a command in the sandbox to its end and returns what it left."""

    def run(
        command: Sequence[str],
        *,
        limits: Limits = LIMITS,
        gpu: bool = False,
        env: dict[str, str] | None = None,
        files: dict[str, str] | None = None,
        using: BubblewrapSandbox | None = None,
    ) -> Ran:
        for name, text in (files or {}).items():
            (slot / name).write_text(text)
        log_path = slot.parent / "job.log"
        request = SandboxRequest(
            slot=slot, command=command, limits=limits, log_path=log_path, env=env or {}, gpu=gpu
        )
        proc = (using or sandbox).start(request)
        result = proc.wait(limits.wall_time_s + 30)
        assert result is not None, "the sandbox did not end the job after its time limit"
        return Ran(result, slot, log_path.read_text(errors="replace"))

    return run


@pytest.fixture(autouse=True)
def _no_watch_left() -> Iterator[None]:
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("sandbox-")]
    assert not left, f"sandbox watch threads still running: {left}"


MakeSandbox = Callable[..., BubblewrapSandbox]
