"""The sandbox contract: what the runner asks for and what it gets back.

Inside every sandbox a job sees the same layout, documented for job authors in
``docs/jobs.md``:

- ``/job``: the unpacked bundle, writable, the working directory;
- ``/job/out``: outputs; everything here is uploaded as the result;
- ``/job/checkpoint``: kept when the job is stopped and given back on resume;
- ``$HEATSHARE_PROGRESS`` (``/job/.progress``): the job writes ``<fraction> [message]``
  (for example ``0.42 tile 5 of 12``) to say how far it is; the runner reads the last line;
- ``$HEATSHARE_CHECKPOINT_ETA`` (``/job/.checkpoint-eta``): the job may write the seconds to
  its next checkpoint, so a stop the thermostat asks for can wait for it;
- ``/tmp``: private and size-capped; no network, no home folder, the system read-only.
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

JOB_ROOT = "/job"
OUTPUT_DIR = "out"
CHECKPOINT_DIR = "checkpoint"
PROGRESS_FILE = ".progress"
CHECKPOINT_ETA_FILE = ".checkpoint-eta"


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    max_processes: int
    disk_bytes: int  # the slot and /tmp together
    wall_time_s: float
    cpu_cores: int = 1


@dataclass(frozen=True)
class SandboxRequest:
    slot: Path  # host folder mounted at /job (writable); made by the runner
    command: Sequence[str]
    limits: Limits
    log_path: Path  # stdout and stderr, appended; outside the slot
    env: Mapping[str, str] = field(default_factory=dict)
    gpu: bool = False  # GPU device nodes only when the job asked for a GPU


class Outcome(StrEnum):
    EXITED = "exited"  # the job ended by itself; see exit_code
    TIMED_OUT = "timed_out"
    OUT_OF_MEMORY = "out_of_memory"
    DISK_FULL = "disk_full"
    KILLED = "killed"  # stopped by the runner (cancel, pause, shutdown)
    PROCESS_LIMIT = "process_limit"  # tried to run more processes than its limit


@dataclass(frozen=True)
class SandboxResult:
    outcome: Outcome
    exit_code: int | None
    wall_s: float
    message: str  # a sentence for the job's log and the app


class SandboxProcess(abc.ABC):
    """A started job. Every method is safe to call from the thread that started it."""

    @property
    @abc.abstractmethod
    def pid(self) -> int: ...

    @abc.abstractmethod
    def poll(self) -> SandboxResult | None:
        """The result once the job and everything it started have ended; else None."""

    @abc.abstractmethod
    def wait(self, timeout_s: float | None = None) -> SandboxResult | None: ...

    @abc.abstractmethod
    def stop(self, grace_s: float = 5.0) -> SandboxResult:
        """Ends the job and every process it started (SIGTERM, then SIGKILL after grace)."""

    # Holding a job for the heating controller. Unlike the methods above these may be called
    # from any thread: a safety stop freezes the job from the heating thread at once.

    def freeze(self) -> bool:
        """Stops every process of the job where it stands (no signal it can catch).

        Returns whether the job is frozen; a sandbox that cannot freeze says False, and the
        caller stops the job instead.
        """
        return False

    def thaw(self) -> None:  # noqa: B027 - a sandbox that cannot freeze has nothing to thaw
        """Lets a frozen job go on; a no-op when it is not frozen."""

    @property
    def frozen_s(self) -> float:
        """Seconds the job has spent frozen: they do not count against its time limit."""
        return 0.0

    def limit_cores(self, cores: int | None) -> bool:
        """Runs the job on at most ``cores`` CPU cores (None: as many as its lease allows).

        Returns whether the limit could be applied.
        """
        return False


class Sandbox(abc.ABC):
    kind: str

    @abc.abstractmethod
    def problem(self) -> str | None:
        """Why jobs cannot run safely here, as a sentence; None when the sandbox works."""

    @abc.abstractmethod
    def start(self, request: SandboxRequest) -> SandboxProcess: ...

    def limit_mechanism(self) -> str | None:
        """How jobs' limits are enforced here and why, in a sentence; None where jobs
        cannot run."""
        return None


class SandboxUnavailable(Exception):  # noqa: N818 - names a state the app shows
    """Raised by :meth:`Sandbox.start` where :meth:`Sandbox.problem` is not None."""


class NoSandbox(Sandbox):
    """Where no sandbox exists (no bubblewrap; Windows and macOS for now): jobs are refused."""

    kind = "none"

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def problem(self) -> str | None:
        return self._reason

    def start(self, request: SandboxRequest) -> SandboxProcess:
        raise SandboxUnavailable(self._reason)


def find_sandbox() -> Sandbox:
    """The sandbox of this machine: bubblewrap on Linux where it works, else a refusal."""
    if sys.platform.startswith("linux"):
        from heatshare.jobs.bubblewrap import BubblewrapSandbox

        sandbox = BubblewrapSandbox()
        problem = sandbox.problem()
        return sandbox if problem is None else NoSandbox(problem)
    if sys.platform == "win32":
        system = "Windows"
    elif sys.platform == "darwin":
        system = "macOS"
    else:
        system = sys.platform
    return NoSandbox(
        f"Jobs need a sandbox, and Heatshare has none for {system} yet: "
        "this machine does not take jobs."
    )
