"""The runner holds a job as the heating thread asks, from any thread: a hold asked before the
job is in the sandbox applies the moment it starts, a change applies at once, and time frozen
is not counted as the job's run time. The sandbox is the one double (the seam the runner
drives); the journal is a real SQLite file."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from test_journal import T0, make_lease

from heatshare.jobs.runner import JobRunner
from heatshare.jobs.sandbox import (
    Outcome,
    Sandbox,
    SandboxProcess,
    SandboxRequest,
    SandboxResult,
)
from heatshare.store.jobs import JobJournal


@dataclass
class HeldProcess(SandboxProcess):
    """A job that runs until ``end`` is set; records what the runner asked of it."""

    end: threading.Event = field(default_factory=threading.Event)
    asked: list[tuple[str, object]] = field(default_factory=list)
    frozen_for: float = 0.0

    @property
    def pid(self) -> int:
        return 1

    def poll(self) -> SandboxResult | None:
        return SandboxResult(Outcome.EXITED, 0, 1.0, "done") if self.end.is_set() else None

    def wait(self, timeout_s: float | None = None) -> SandboxResult | None:
        self.end.wait(timeout_s)
        return self.poll()

    def stop(self, grace_s: float = 5.0) -> SandboxResult:
        self.asked.append(("stop", grace_s))
        self.end.set()
        return SandboxResult(Outcome.KILLED, None, 1.0, "The job was stopped.")

    def freeze(self) -> bool:
        self.asked.append(("freeze", None))
        return True

    def thaw(self) -> None:
        self.asked.append(("thaw", None))

    @property
    def frozen_s(self) -> float:
        return self.frozen_for

    def limit_cores(self, cores: int | None) -> bool:
        self.asked.append(("cores", cores))
        return True


class OneJobSandbox(Sandbox):
    kind = "test"

    def __init__(self, proc: HeldProcess) -> None:
        self.proc = proc
        self.started = threading.Event()

    def problem(self) -> str | None:
        return None

    def start(self, request: SandboxRequest) -> SandboxProcess:
        assert request.env["HEATSHARE_CHECKPOINT_ETA"] == "/job/.checkpoint-eta"
        self.started.set()
        return self.proc


def test_a_hold_applies_at_start_at_once_and_frozen_time_is_not_run_time(tmp_path: Path) -> None:
    proc = HeldProcess()
    sandbox = OneJobSandbox(proc)
    journal = JobJournal.open(tmp_path / "h.sqlite3")
    runner = JobRunner(tmp_path, sandbox, journal, poll_s=0.01, progress_every_s=3600)
    try:
        journal.add_lease(make_lease(1), network="n", now=T0)
        (runner.slot(1) / "job").mkdir(parents=True)
        (runner.slot(1) / "job" / ".checkpoint-eta").write_text("5")  # an earlier run's
        runner.hold(frozen=True, cpu_cores=1)  # before the job is in the sandbox
        rec = journal.get(1)
        assert rec is not None
        thread = threading.Thread(
            target=runner._run,
            args=(rec, None, lambda _a: None),  # the client is not asked: no progress is due
            name="heatshare-jobs",
        )
        thread.start()
        assert sandbox.started.wait(5)
        deadline = time.monotonic() + 5
        while len(proc.asked) < 2:
            assert time.monotonic() < deadline, proc.asked
            time.sleep(0.01)
        assert proc.asked == [("freeze", None), ("cores", 1)]
        assert runner.frozen
        assert not (runner.slot(1) / "job" / ".checkpoint-eta").exists()  # not this run's
        runner.hold(frozen=True, cpu_cores=1)  # the same hold again: nothing to do
        assert len(proc.asked) == 2
        runner.hold(frozen=False, cpu_cores=None)
        assert proc.asked[2:] == [("thaw", None), ("cores", None)]
        assert not runner.frozen
        proc.frozen_for = 3600.0  # as if it had been frozen an hour
        proc.end.set()
        thread.join(5)
        assert not thread.is_alive()
        # Gone from the sandbox: a hold now asks nothing of it.
        runner.hold(frozen=True, cpu_cores=None)
        assert len(proc.asked) == 4
        after = journal.get(1)
        assert after is not None
        assert after.elapsed_s == 0.0  # an hour frozen is not an hour run
    finally:
        journal.close()
