"""End to end on loopback: a real coordinator process, the real agent (a process, or its job
engine in this process), the real bubblewrap sandbox and real jobs (``job/run.py``)."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_process import AgentProcess, spawn_agent
from coordinator_process import CoordinatorProcess
from heatshare.agent.work import NODE_TOKEN_FILE
from heatshare.jobs.sandbox import find_sandbox
from heatshare.protocol.client import AgentClient
from heatshare.protocol.local_api import JobInfo

JOB_DIR = Path(__file__).with_name("job")
ACCOUNT = "home"


def _sandbox_problem() -> str | None:
    return find_sandbox().problem()


needs_sandbox = pytest.mark.skipif(
    _sandbox_problem() is not None, reason=f"no working sandbox here: {_sandbox_problem()}"
)


@dataclass
class Network:
    """A coordinator with an account and a requester, ready to take jobs."""

    coordinator: CoordinatorProcess
    api_key: str

    @property
    def url(self) -> str:
        return self.coordinator.url

    def code(self) -> str:
        return self.coordinator.pairing_code(ACCOUNT)

    def submit(
        self, steps: int, delay: float, *, price: int, size: int = 0, label: str = "", **opts: int
    ) -> int:
        command = f"python3 run.py {steps} {delay} {size}"
        return self.coordinator.submit(
            self.api_key, JOB_DIR, command, price=price, label=label or f"count to {steps}", **opts
        )

    def job(self, job_id: int) -> dict[str, object]:
        return self.coordinator.job(self.api_key, job_id)


@pytest.fixture
def network(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Network]:
    """A coordinator; ``indirect`` parametrisation passes extra ``serve`` arguments."""
    work = tmp_path / "coordinator"
    work.mkdir()
    extra = tuple(getattr(request, "param", ()))
    coordinator = CoordinatorProcess(db=work / "coordinator.sqlite", workdir=work, extra=extra)
    coordinator.account(ACCOUNT)
    api_key = coordinator.requester("tests")
    coordinator.start()
    try:
        yield Network(coordinator, api_key)
    finally:
        coordinator.stop()


def wait_for(
    what: str,
    check: Callable[[], object],
    timeout_s: float = 60.0,
    describe: Callable[[], object] | None = None,
) -> object:
    """Poll ``check`` until it returns something truthy; fail with ``what`` otherwise.

    ``describe``: what to show of the state when it times out.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    state = f"; state: {describe()!r}" if describe is not None else ""
    pytest.fail(f"timed out after {timeout_s} s waiting for {what} (last: {last!r}){state}")


class Agent:
    """One profile; the agent process on it can be killed and started again."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: AgentProcess | None = None
        self.api: AgentClient | None = None
        self.pids: list[int] = []

    def start(self) -> AgentClient:
        self.proc = spawn_agent(self.profile)
        self.api = self.proc.client()
        self.pids.append(self.proc.proc.pid)
        return self.api

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.proc.send_signal(signal.SIGKILL)
        self.proc.proc.wait(timeout=10)
        self.proc.kill()  # closes its clients

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.proc.poll() is None:
                self.proc.terminate(timeout_s=30)
            self.proc.kill()

    @property
    def node_token(self) -> str:
        return (self.profile / "config" / NODE_TOKEN_FILE).read_text().strip()

    def job(self) -> JobInfo | None:
        assert self.api is not None
        jobs = self.api.jobs()
        infos = [*jobs.current, *jobs.history]
        assert len(infos) <= 1, infos
        return infos[0] if infos else None

    def jobs(self) -> list[JobInfo]:
        assert self.api is not None
        jobs = self.api.jobs()
        return sorted([*jobs.current, *jobs.history], key=lambda j: j.attempt_id)

    def notes(self, attempt_id: int) -> list[str]:
        """The journal's events of an attempt, read from the agent's file as it runs."""
        assert self.proc is not None
        conn = sqlite3.connect(f"file:{self.proc.paths.db_file}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT note FROM job_event WHERE attempt_id = ? ORDER BY id", (attempt_id,)
            ).fetchall()
        finally:
            conn.close()
        return [r[0] for r in rows]


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path / "agent")
    try:
        yield a
    finally:
        a.stop()
