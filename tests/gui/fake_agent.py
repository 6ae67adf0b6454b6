"""A fake agent at one seam: the client the bridge calls, replaying the agent's protocol models.

Everything above it is real: the bridge, its worker threads, the pages, the wizard. The
answers are the local API's own pydantic models, shaped as the demo network gives them; the
PNGs are real tiles from the demo's fractal job (``resources/jobs/fractal/render.py``).
The errors are ``AgentError``/``AgentUnreachable`` with the sentences the coordinator API
agreed on (see docs/architecture.md and the preamble of issue 3).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from heatshare.protocol.client import AgentClient, AgentError, AgentUnreachable
from heatshare.protocol.local_api import (
    AgentStatus,
    EarningEntry,
    EarningsResponse,
    HistoryResponse,
    JobInfo,
    JobPhase,
    JobsResponse,
    NetworkStatus,
    Settings,
)

RENDER = (
    Path(__file__).parents[2] / "app" / "heatshare" / "resources" / "jobs" / "fractal" / "render.py"
)

# What the agent says when the coordinator refuses or cannot be reached (issue 3's design:
# 404 unknown code, 410 expired; the agent passes the sentence on with a 4xx of its own).
WRONG_CODE = AgentError(
    400, "This pairing code is not known to the network. Check it, or ask for a new one."
)
EXPIRED_CODE = AgentError(
    400, "This pairing code has expired. Ask the network's operator for a new one."
)
UNREACHABLE = AgentError(
    502,
    "The network at https://heat.example.org did not answer: connection refused. "
    "Check the address and this machine's internet connection.",
)
UNTRUSTED = AgentError(
    502,
    "The network at https://heat.example.org presented a certificate this machine does "
    "not trust (self-signed certificate). Check the address with the network's operator.",
)


@cache
def fractal_tile(tile: int, size: int = 96, max_iter: int = 100) -> bytes:
    """A real tile from the demo's job, rendered by the job itself (few iterations: quick)."""
    with tempfile.TemporaryDirectory() as tmp:
        out, ck = Path(tmp, "out"), Path(tmp, "ck")
        out.mkdir()
        ck.mkdir()
        env = {
            **os.environ,
            "HEATSHARE_OUTPUT": str(out),
            "HEATSHARE_CHECKPOINT": str(ck),
            "HEATSHARE_PROGRESS": str(Path(tmp, "progress")),
        }
        subprocess.run(
            [
                sys.executable,
                str(RENDER),
                "--tile",
                str(tile),
                "--size",
                str(size),
                "--max-iter",
                str(max_iter),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        return (out / "tile.png").read_bytes()


def agent_status(**kw: Any) -> AgentStatus:
    base: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "study-pc",
        "state": "heating",
        "sample_time": datetime.now(UTC),
        "heat_w": 182.0,
        "heat_provenance": "energy_counter",
        "heat_today_kwh": 0.42,
        "currency": "GBP",
        "hottest_name": "cpu",
        "hottest_c": 64.0,
        "job_label": "fractal #14: frame 0, tile 15 of 16",
        "job_progress": 0.42,
        "earned_today_minor": 550,
        "earnings_currency": "CRD",
    }
    return AgentStatus.model_validate(base | kw)


def demo_network(now: datetime, **kw: Any) -> NetworkStatus:
    base: dict[str, Any] = {
        "enrolled": True,
        "coordinator_url": "http://127.0.0.1:41873",
        "node_id": 1,
        "account_name": "demo",
        "currency": "CRD",
        "demo": True,
        "reachable": True,
        "last_contact": now - timedelta(seconds=4),
        "sandbox": "bubblewrap",
        "accepting_jobs": True,
        "outbox_pending": 0,
        "balance_minor": None,  # the network's figures come with the earnings
        "account_balance_minor": None,
    }
    return NetworkStatus.model_validate(base | kw)


def job(attempt: int, tile: int, phase: JobPhase, now: datetime, **kw: Any) -> JobInfo:
    finished = phase in (JobPhase.DONE, JobPhase.FAILED, JobPhase.OUTBOX)
    leased = now - timedelta(minutes=3 * (20 - attempt))
    base: dict[str, Any] = {
        "attempt_id": attempt,
        "job_id": attempt + 100,
        "label": f"fractal #{attempt - 1}: frame 0, tile {tile + 1} of 16",
        "phase": phase,
        "leased_at": leased,
        "started_at": leased + timedelta(seconds=1),
        "finished_at": leased + timedelta(seconds=38) if finished else None,
        "elapsed_s": 37.0 if finished else 12.5,
        "energy_j": 6_740.0 if finished else 2_275.0,
        "price_minor": 50,
        "currency": "CRD",
        "progress": 1.0 if finished else 0.42,
        "progress_message": "" if finished else "rows 104 of 256",
        "credited_minor": 50 if phase is JobPhase.DONE else None,
        "result_status": "accepted" if phase is JobPhase.DONE else None,
        "files": ["tile.json", "tile.png"] if finished and phase is not JobPhase.FAILED else [],
    }
    return JobInfo.model_validate(base | kw)


def demo_jobs(now: datetime) -> JobsResponse:
    history = [job(a, a - 1, JobPhase.DONE, now) for a in range(13, 6, -1)]
    history.insert(
        2,
        job(
            6,
            3,
            JobPhase.FAILED,
            now,
            label="matrix #5: 700x700 product, seed 6",
            error="Stopped: the job went over its memory limit (512 MiB).",
            energy_j=1_204.0,
            elapsed_s=9.2,
        ),
    )
    history.insert(0, job(14, 13, JobPhase.OUTBOX, now))
    return JobsResponse(current=[job(15, 14, JobPhase.RUNNING, now)], history=history)


def demo_earnings(now: datetime) -> EarningsResponse:
    entries = [
        EarningEntry(
            at=now - timedelta(minutes=7 * i + 2),
            amount_minor=50,
            kind="credit",
            job_id=113 - i,
            memo=f"Job {113 - i} (fractal #{12 - i}: frame 0, tile {13 - i} of 16): "
            "result accepted",
        )
        for i in range(7)
    ]
    entries += [
        EarningEntry(
            at=now - timedelta(hours=2, minutes=10 + 6 * i),
            amount_minor=40,
            kind="credit",
            job_id=90 + i,
            memo=f"Job {90 + i} (matrix #{i}: 700x700 product, seed {i + 1}): result accepted",
        )
        for i in range(5)
    ]
    entries.append(
        EarningEntry(
            at=now - timedelta(hours=1, minutes=30),
            amount_minor=-300,
            kind="payout",
            memo="Paid out",
        )
    )
    total = sum(e.amount_minor for e in entries)
    return EarningsResponse(
        currency="CRD",
        balance_minor=total,
        account_balance_minor=total,
        today_minor=sum(e.amount_minor for e in entries if e.kind == "credit"),
        entries=entries,
        as_of=now - timedelta(seconds=4),
    )


class FakeAgentClient(AgentClient):
    """Answers as the agent would; a test sets what comes next and reads what was asked.

    Calls arrive on the bridge's worker threads; the record of them is guarded by a lock.
    """

    def __init__(self, now: datetime | None = None) -> None:
        super().__init__("http://127.0.0.1:1", None)
        self.now = now or datetime.now(UTC)
        self.status_model = agent_status()
        self.network_model = NetworkStatus(enrolled=False, sandbox="bubblewrap")
        self.jobs_model = demo_jobs(self.now)
        self.earnings_model = demo_earnings(self.now)
        self.enrol_outcome: BaseException | NetworkStatus = demo_network(self.now, demo=False)
        self.demo_outcome: BaseException | NetworkStatus = demo_network(self.now)
        self.enrol_gate: threading.Event | None = None  # set: enrol waits for it (busy state)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def _record(self, name: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((name, args))

    def called(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for n, args in self.calls if n == name]

    def status(self) -> AgentStatus:
        self._record("status")
        return self.status_model

    def settings(self) -> Settings:
        self._record("settings")
        return Settings(currency="GBP")

    def history(
        self, series: Sequence[str], start: float, end: float, *, max_points: int | None = None
    ) -> HistoryResponse:
        self._record("history")
        return HistoryResponse(start=start, end=end, resolution_s=1, series=[])

    def network(self) -> NetworkStatus:
        self._record("network")
        return self.network_model

    def _outcome(self, outcome: BaseException | NetworkStatus) -> NetworkStatus:
        if self.enrol_gate is not None:
            self.enrol_gate.wait(10)
        if isinstance(outcome, BaseException):
            raise outcome
        self.network_model = outcome
        return outcome

    def enrol(self, url: str, code: str) -> NetworkStatus:
        self._record("enrol", url, code)
        return self._outcome(self.enrol_outcome)

    def start_demo(self) -> NetworkStatus:
        self._record("start_demo")
        return self._outcome(self.demo_outcome)

    def leave_network(self) -> NetworkStatus:
        self._record("leave_network")
        self.network_model = NetworkStatus(enrolled=False, sandbox="bubblewrap")
        return self.network_model

    def jobs(self, limit: int = 50) -> JobsResponse:
        self._record("jobs")
        return self.jobs_model

    def job_log(self, attempt_id: int) -> str:
        self._record("job_log", attempt_id)
        return (
            f"fractal: frame 0 tile {attempt_id - 1}/16, 256x256 px, 0 rows from a checkpoint\n"
            "rows 0-7 done\nrows 8-15 done\n"
        )

    def job_file(self, attempt_id: int, name: str) -> bytes:
        self._record("job_file", attempt_id, name)
        if name.endswith(".png"):
            # The top row's tiles: quick to render (the set's inside costs every iteration).
            return fractal_tile(attempt_id % 4)
        raise AgentError(404, f"This job has no output file named {name!r}.")

    def earnings(self) -> EarningsResponse:
        self._record("earnings")
        return self.earnings_model


__all__ = ["UNREACHABLE", "AgentUnreachable", "FakeAgentClient"]
