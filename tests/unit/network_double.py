"""A hand-written stand-in for the job engine (``agent/work.py`` ``NetworkWorker``).

The one seam of the local API's network routes and the CLI's network commands: it answers
what a test sets and records what it was asked. The real engine, against a real coordinator,
is exercised by ``tests/integration/test_agent_network.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from heatshare.protocol.local_api import (
    EarningEntry,
    EarningsResponse,
    JobInfo,
    JobPhase,
    JobsResponse,
    NetworkStatus,
)

T0 = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Summary:
    job_label: str | None = None
    job_progress: float | None = None
    earned_today_minor: int | None = None
    currency: str | None = None


def enrolled(url: str = "https://network.example") -> NetworkStatus:
    return NetworkStatus(
        enrolled=True,
        coordinator_url=url,
        node_id=7,
        account_name="Ada",
        currency="EUR",
        reachable=True,
        sandbox="bubblewrap",
        accepting_jobs=True,
        balance_minor=0,
        account_balance_minor=0,
    )


def a_job(attempt_id: int = 11, phase: JobPhase = JobPhase.RUNNING, **kw: object) -> JobInfo:
    data: dict[str, object] = {
        "attempt_id": attempt_id,
        "job_id": 3,
        "label": "mandelbrot tile 3",
        "phase": phase,
        "progress": 0.42,
        "progress_message": "tile 5 of 12",
        "leased_at": T0,
        "started_at": T0,
        "elapsed_s": 75.0,
        "energy_j": 9000.0,
        "price_minor": 25,
        "currency": "CRD",
        "files": ["tile-3.png"],
        **kw,
    }
    return JobInfo.model_validate(data)


@dataclass
class NetworkDouble:
    """Answers set by the test; ``raises`` maps a method name to the exception it raises."""

    status: NetworkStatus = field(
        default_factory=lambda: NetworkStatus(enrolled=False, sandbox="bubblewrap")
    )
    jobs_answer: JobsResponse = field(default_factory=lambda: JobsResponse(current=[], history=[]))
    logs: dict[int, str] = field(default_factory=dict)
    files: dict[tuple[int, str], bytes] = field(default_factory=dict)
    earnings_answer: EarningsResponse | None = None
    work: Summary = field(default_factory=Summary)
    raises: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[object, ...]] = field(default_factory=list)
    on_stop: Callable[[], None] | None = None
    started: bool = False
    stopped: bool = False
    held: tuple[bool, str, int | None] | None = None

    def _call(self, name: str, *args: object) -> None:
        self.calls.append((name, *args))
        exc = self.raises.get(name)
        if exc is not None:
            raise exc

    def start(self) -> None:
        self._call("start")
        self.started = True

    def stop(self, grace_s: float = 5.0) -> None:
        self._call("stop")
        if self.on_stop is not None:
            self.on_stop()
        self.stopped = True

    def network_status(self) -> NetworkStatus:
        self._call("network_status")
        return self.status

    def enrol(self, url: str, code: str) -> NetworkStatus:
        self._call("enrol", url, code)
        self.status = enrolled(url)
        return self.status

    def start_demo(self) -> NetworkStatus:
        self._call("start_demo")
        self.status = enrolled("http://127.0.0.1:40001").model_copy(
            update={"demo": True, "currency": "CRD", "account_name": "demo"}
        )
        return self.status

    def leave(self) -> NetworkStatus:
        self._call("leave")
        self.status = NetworkStatus(enrolled=False, sandbox=self.status.sandbox)
        return self.status

    def jobs(self, limit: int = 50) -> JobsResponse:
        self._call("jobs", limit)
        return self.jobs_answer

    def job_log(self, attempt_id: int) -> str:
        self._call("job_log", attempt_id)
        return self.logs[attempt_id]

    def job_file(self, attempt_id: int, name: str) -> bytes:
        self._call("job_file", attempt_id, name)
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad name {name!r}")
        return self.files[(attempt_id, name)]

    def earnings(self) -> EarningsResponse:
        self._call("earnings")
        if self.earnings_answer is None:
            raise AssertionError("the test set no earnings")
        return self.earnings_answer

    def summary(self) -> Summary:
        return self.work

    # The heating thread's hold: recorded, no job to hold.
    def hold(self, *, compute: bool, hold: str, cpu_cores: int | None) -> None:
        self.held = (compute, hold, cpu_cores)

    def job_running(self) -> bool:
        return False

    def job_frozen(self) -> bool:
        return False

    def checkpoint_eta_s(self) -> float | None:
        return None


def some_earnings() -> EarningsResponse:
    return EarningsResponse(
        currency="CRD",
        balance_minor=1234,
        account_balance_minor=2000,
        today_minor=250,
        entries=[
            EarningEntry(at=T0, amount_minor=25, kind="credit", job_id=3, memo="attempt 11"),
        ],
        as_of=T0,
    )
