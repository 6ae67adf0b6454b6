"""The agent's link to a compute network: enrolment, heartbeats, leases and the job thread.

Two threads:

- ``heatshare-net`` sends heartbeats (with telemetry) at the interval the network asks for,
  carries out the network's commands (cancel an attempt, pause, resume) and refreshes the
  earnings; a demo enrolment restarts the embedded demo coordinator first;
- ``heatshare-jobs`` is long-lived and is the only thread that starts sandboxes (a job dies
  with the thread that started it: ``PR_SET_PDEATHSIG`` is per thread). It resumes journaled
  attempts, flushes the outbox oldest first (failure reports before new work, results when
  no job runs) and leases new work, one job at a time.

Files: the enrolment, the job journal and cached earnings are in the agent's SQLite file
(:mod:`heatshare.store.jobs`); the node token is ``node-token`` (0600) in the config folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from heatshare.jobs.runner import LOG_NAME, JobRunner, LiveJob, Report, Step, StopReason, tail
from heatshare.network.client import (
    AuthLost,
    CoordinatorClient,
    CoordinatorError,
    Rejected,
    Unreachable,
)
from heatshare.protocol.coordinator_api import (
    AttemptState,
    Command,
    Earnings,
    Failure,
    Heartbeat,
    Inventory,
    NodeState,
    Telemetry,
)
from heatshare.protocol.local_api import (
    EarningEntry,
    EarningsResponse,
    JobInfo,
    JobPhase,
    JobsResponse,
    NetworkStatus,
)
from heatshare.store.jobs import AttemptRecord, CachedEarnings, Enrolment, JobJournal, lease_label

if TYPE_CHECKING:
    from heatshare.agent.demo_network import DemoNetwork
    from heatshare.jobs.sandbox import Sandbox
    from heatshare.protocol.discovery import Paths

log = logging.getLogger(__name__)

NODE_TOKEN_FILE: Final = "node-token"  # noqa: S105 - a file name, not a secret
LOG_VIEW_BYTES: Final = 256 * 1024
EARNINGS_EVERY_S: Final = 60.0
_OUTBOX_BACKOFF_S: Final = (2.0, 120.0)
_CANCELLABLE: Final = (JobPhase.LEASED, JobPhase.DOWNLOADING, JobPhase.RUNNING)


class NetworkError(Exception):
    """A failure the local API shows as it is: ``str(exc)`` is a sentence, ``status`` its code."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class WorkSummary:
    """The network side of ``/v1/status``; built from memory only."""

    job_label: str | None
    job_progress: float | None
    earned_today_minor: int | None
    currency: str | None


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def _network_key(e: Enrolment) -> str:
    # The demo coordinator gets a new port each time it starts: name it by its node alone.
    return f"demo/node/{e.node_id}" if e.demo else f"{e.coordinator_url}/node/{e.node_id}"


def _today_minor(earnings: Earnings, now: float) -> int:
    today = datetime.fromtimestamp(now).astimezone().date()
    return sum(
        e.amount_minor
        for e in earnings.entries
        if e.kind == "credit" and e.at.astimezone().date() == today
    )


def _as_error(exc: CoordinatorError) -> NetworkError:
    if isinstance(exc, Rejected):
        status = exc.status if exc.status in (400, 404, 409, 410, 413, 422) else 502
        return NetworkError(str(exc), 400 if status == 422 else status)
    return NetworkError(str(exc), 502)


class NetworkWorker:
    """See the module's docstring; the interface is the wiring's (``agent/service.py``)."""

    def __init__(
        self,
        *,
        paths: Paths,
        db_file: Path,
        sandbox: Sandbox,
        inventory: Callable[[], Inventory],
        energy_j: Callable[[], float | None],
        telemetry: Callable[[], Telemetry],
        paused: Callable[[], bool],
        lease_poll_s: float = 10.0,
        progress_every_s: float = 10.0,
    ) -> None:
        self._paths = paths
        self._db_file = db_file
        self._sandbox = sandbox
        self._inventory = inventory
        self._energy_j = energy_j
        self._telemetry = telemetry
        self._paused = paused
        self._lease_poll_s = lease_poll_s
        self._progress_every_s = progress_every_s

        self._lock = threading.RLock()
        self._journal: JobJournal | None = None
        self._runner: JobRunner | None = None
        self._enrolment: Enrolment | None = None
        self._client: CoordinatorClient | None = None
        self._demo: DemoNetwork | None = None
        self._demo_ready = False
        self._sandbox_problem: str | None = None
        self._reachable: bool | None = None
        self._last_contact: float | None = None
        self._last_error: str | None = None
        self._remote_paused = False
        self._cancel: set[int] = set()
        self._halt: StopReason | None = None
        self._earnings: CachedEarnings | None = None
        self._earnings_due = True
        self._outbox_pending = 0
        self._failures_pending = 0

        self._stopping = threading.Event()
        self._wake_jobs = threading.Event()
        self._wake_net = threading.Event()
        self._job_idle = threading.Event()
        self._job_idle.set()
        # The heating controller's word (its thread calls hold() several times a second):
        # whether to compute at all, and how to hold a running job when not.
        self._compute = True
        self._hold = "none"
        self._cpu_cores: int | None = None
        self._threads: list[threading.Thread] = []

    # --- life ----------------------------------------------------------------------------

    @property
    def token_file(self) -> Path:
        return self._paths.config_dir / NODE_TOKEN_FILE

    def start(self) -> None:
        journal = JobJournal.open(self._db_file)
        self._journal = journal
        self._sandbox_problem = self._sandbox.problem()
        self._runner = JobRunner(
            self._paths.data_dir,
            self._sandbox,
            journal,
            energy_j=self._energy_j,
            progress_every_s=self._progress_every_s,
        )
        enrolment = journal.enrolment()
        token = self._read_token()
        if enrolment is not None and token is None:
            journal.clear_enrolment()
            enrolment = None
            self._last_error = (
                "This machine's node token is missing from its config folder; "
                "join the network again with a new pairing code."
            )
        if enrolment is not None:
            self._enrolment = enrolment
            self._client = CoordinatorClient(enrolment.coordinator_url, token)
            self._earnings = journal.cached_earnings()
            self._outbox_pending = len(journal.outbox(_network_key(enrolment)))
            self._failures_pending = len(journal.failure_outbox(_network_key(enrolment)))
        self._runner.prune()
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._net_loop, name="heatshare-net", daemon=True),
            threading.Thread(target=self._job_loop, name="heatshare-jobs", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, grace_s: float = 5.0) -> None:
        if self._runner is not None:
            self._runner.stop_grace_s = grace_s
        self._stopping.set()
        self._wake_jobs.set()
        self._wake_net.set()
        for t in self._threads:
            t.join(timeout=grace_s + 10.0)
        self._threads = []
        with self._lock:
            if self._client is not None:
                self._client.close()
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            demo, self._demo = self._demo, None
        if demo is not None:
            demo.stop()

    # --- the local API's calls -----------------------------------------------------------

    def network_status(self) -> NetworkStatus:
        with self._lock:
            e = self._enrolment
            cached = self._earnings
            problem = self._sandbox_problem
            return NetworkStatus(
                enrolled=e is not None,
                coordinator_url=e.coordinator_url if e else None,
                node_id=e.node_id if e else None,
                account_name=e.account_name if e else None,
                currency=e.currency if e else None,
                demo=e.demo if e else False,
                reachable=self._reachable if e else None,
                last_contact=_utc(self._last_contact) if e else None,
                last_error=self._last_error,
                sandbox=self._sandbox.kind if problem is None else None,
                sandbox_problem=problem,
                accepting_jobs=self._accepting(),
                outbox_pending=self._outbox_pending,
                failures_pending=self._failures_pending if e else 0,
                balance_minor=cached.earnings.node_balance_minor if e and cached else None,
                account_balance_minor=(
                    cached.earnings.account_balance_minor if e and cached else None
                ),
            )

    def enrol(self, url: str, code: str) -> NetworkStatus:
        return self._enrol(url.strip(), code.strip(), demo=False)

    def start_demo(self) -> NetworkStatus:
        from heatshare.agent.demo_network import DemoNetwork  # demo only: imported when used

        with self._lock:
            demo = self._demo
            if demo is None:
                demo = self._demo = DemoNetwork(self._paths.data_dir)
        try:
            url, code = demo.start()
        except Exception as exc:
            raise NetworkError(f"The demo network did not start: {exc}", 503) from exc
        self._demo_ready = True
        return self._enrol(url, code, demo=True)

    def leave(self) -> NetworkStatus:
        with self._lock:
            e, client, journal = self._enrolment, self._client, self._journal
        if e is None or journal is None:
            return self.network_status()
        active = [r.attempt_id for r in journal.active(_network_key(e))]
        self._halt_jobs(StopReason.LEAVE)
        try:
            if client is not None and self._runner is not None:
                # One last try for waiting failure reports: the node token goes with the
                # enrolment, and with it any way to send them.
                for pending in journal.failure_outbox(_network_key(e)):
                    with contextlib.suppress(CoordinatorError):
                        self._runner.report_failure(pending.attempt_id, client)
            for attempt_id in active:
                if client is not None:
                    with contextlib.suppress(CoordinatorError):
                        client.failure(attempt_id, Failure(reason="The machine left the network."))
                if self._runner is not None:
                    self._runner.drop(attempt_id, "This machine left the network.")
            self._forget(None)
        finally:
            self._release_jobs()
        with self._lock:
            demo, self._demo = self._demo, None
            self._demo_ready = False
        if demo is not None:
            demo.stop()
        return self.network_status()

    def jobs(self, limit: int = 50) -> JobsResponse:
        journal, runner = self._journal, self._runner
        if journal is None or runner is None:
            return JobsResponse(current=[], history=[])
        live = runner.live
        current = [self._info(r, live) for r in journal.active()]
        history = [self._info(r, None) for r in journal.recent(max(0, min(limit, 500)))]
        # Two reads: an attempt that finished between them is in both; the later read wins.
        finished = {info.attempt_id for info in history}
        current = [info for info in current if info.attempt_id not in finished]
        return JobsResponse(current=current, history=history)

    def job_log(self, attempt_id: int) -> str:
        rec, runner = self._record(attempt_id)
        path = runner.slot(attempt_id) / LOG_NAME
        journal = self._journal
        events = journal.events(attempt_id) if journal is not None else []
        lines = [
            f"{datetime.fromtimestamp(ev.at, tz=UTC):%Y-%m-%d %H:%M:%S} UTC  {ev.phase.value}"
            + (f": {ev.note}" if ev.note else "")
            for ev in events
        ]
        text = tail(path, LOG_VIEW_BYTES) if path.is_file() else ""
        if rec.error and not text:
            text = rec.error + "\n"
        return text + ("\n--- heatshare ---\n" + "\n".join(lines) + "\n" if lines else "")

    def job_file(self, attempt_id: int, name: str) -> bytes:
        _, runner = self._record(attempt_id)
        return runner.read_output(attempt_id, name)

    def earnings(self) -> EarningsResponse:
        with self._lock:
            e, client, cached = self._enrolment, self._client, self._earnings
        if e is None or client is None:
            raise NetworkError("This machine has not joined a network.", 404)
        if cached is None or time.time() - cached.as_of > 5.0:
            one_shot = CoordinatorClient(e.coordinator_url, self._read_token(), attempts=1)
            try:
                cached = self._store_earnings(one_shot.earnings())
            except AuthLost as exc:
                self._forget(str(exc))
                raise NetworkError(str(exc), 404) from exc
            except CoordinatorError as exc:
                self._note_failure(exc)
                if cached is None:
                    raise _as_error(exc) from exc
            finally:
                one_shot.close()
        ern = cached.earnings
        return EarningsResponse(
            currency=ern.currency,
            balance_minor=ern.node_balance_minor,
            account_balance_minor=ern.account_balance_minor,
            today_minor=_today_minor(ern, time.time()),
            entries=[
                EarningEntry(
                    at=x.at, amount_minor=x.amount_minor, kind=x.kind, job_id=x.job_id, memo=x.memo
                )
                for x in ern.entries
            ],
            as_of=_utc(cached.as_of),
        )

    # --- the heating controller's calls (its thread, several times a second) -------------

    def hold(self, *, compute: bool, hold: str, cpu_cores: int | None) -> None:
        """Obey the thermostat and the safety limits.

        ``compute`` False: no new job starts and no lease is taken; a running job is frozen
        at once (``hold="freeze"``: a safety stop, a duty cycle's off time) or stopped the
        way a pause stops it, its checkpoint kept (``hold="stop"``). ``cpu_cores`` limits a
        CPU job's cores (None: what its lease allows).
        """
        stop = not compute and hold == "stop"
        with self._lock:
            was_stop = not self._compute and self._hold == "stop"
            resumed = not self._compute and compute
            self._compute, self._hold, self._cpu_cores = compute, hold, cpu_cores
        runner = self._runner
        if runner is not None:
            runner.hold(frozen=not compute and hold == "freeze", cpu_cores=cpu_cores)
        if stop != was_stop or resumed:
            self._wake_jobs.set()  # a stop is seen by the job's watch; a resume starts one

    def job_running(self) -> bool:
        """Whether a job is in the sandbox now (frozen or not)."""
        runner = self._runner
        live = runner.live if runner is not None else None
        return live is not None and live.run_started is not None

    def job_frozen(self) -> bool:
        runner = self._runner
        return runner is not None and runner.frozen

    def checkpoint_eta_s(self) -> float | None:
        """The running job's seconds to its next checkpoint, where it wrote them."""
        runner = self._runner
        return runner.checkpoint_eta_s() if runner is not None else None

    def _heating_holds(self) -> bool:
        return not self._compute

    def summary(self) -> WorkSummary:
        runner = self._runner
        live = runner.live if runner is not None else None
        e, cached = self._enrolment, self._earnings
        today = _today_minor(cached.earnings, time.time()) if e and cached else None
        return WorkSummary(
            job_label=live.label if live else None,
            job_progress=live.progress if live else None,
            earned_today_minor=today,
            currency=e.currency if e else None,
        )

    # --- enrolment -----------------------------------------------------------------------

    def _enrol(self, url: str, code: str, *, demo: bool) -> NetworkStatus:
        if self._journal is None:
            raise NetworkError("The agent's job engine has not started.", 503)
        client = CoordinatorClient(url)
        try:
            answer = client.enrol(code, self._inventory())
        except CoordinatorError as exc:
            raise _as_error(exc) from exc
        finally:
            client.close()
        enrolment = Enrolment(
            coordinator_url=url.rstrip("/"),
            node_id=answer.node_id,
            account_id=answer.account_id,
            account_name=answer.account_name,
            currency=answer.currency,
            demo=demo,
            heartbeat_interval_s=answer.heartbeat_interval_s,
            enrolled_at=time.time(),
        )
        with self._lock:
            previous = self._enrolment
        if previous is not None and _network_key(previous) != _network_key(enrolment):
            # A new node: what the old one was leased is not worth finishing here.
            self._halt_jobs(StopReason.LEAVE)
            try:
                if self._runner is not None:
                    for r in self._journal.active(_network_key(previous)):
                        self._runner.drop(r.attempt_id, "This machine joined the network anew.")
            finally:
                self._release_jobs()
        self._write_token(answer.node_token)
        self._journal.set_enrolment(enrolment)
        log.info("Joined the network at %s as node %d", url, answer.node_id)
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._enrolment = enrolment
            self._client = CoordinatorClient(enrolment.coordinator_url, answer.node_token)
            self._earnings = self._journal.cached_earnings()
            self._reachable = True
            self._last_contact = time.time()
            self._last_error = None
            self._remote_paused = False
            self._earnings_due = True
        self._wake_net.set()
        self._wake_jobs.set()
        return self.network_status()

    def _forget(self, reason: str | None) -> None:
        """Drop the enrolment (the node token too); ``reason`` is shown as the last error."""
        journal = self._journal
        if journal is not None:
            journal.clear_enrolment()
        self.token_file.unlink(missing_ok=True)
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None
            self._enrolment = None
            self._earnings = None
            self._reachable = None
            self._last_error = reason
            self._outbox_pending = 0
            self._failures_pending = 0
        if reason:
            log.warning("Left the network: %s", reason)

    def _read_token(self) -> str | None:
        try:
            return self.token_file.read_text("ascii").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def _write_token(self, token: str) -> None:
        self._paths.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.token_file.with_name(NODE_TOKEN_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.token_file)

    # --- state helpers -------------------------------------------------------------------

    def _accepting(self) -> bool:
        return (
            self._enrolment is not None
            and self._sandbox_problem is None
            and not self._remote_paused
            and not self._paused_now()
        )

    def _paused_now(self) -> bool:
        try:
            return bool(self._paused())
        except Exception:  # the pause switch's trouble must not end the job thread
            log.exception("Reading the pause state failed")
            return False

    def _note_contact(self) -> None:
        with self._lock:
            was = self._reachable
            self._reachable = True
            self._last_contact = time.time()
            self._last_error = None
        if was is False:
            log.info("The network answers again")
            self._wake_jobs.set()  # the outbox can go out now

    def _note_failure(self, exc: CoordinatorError) -> None:
        with self._lock:
            if self._reachable is not False:
                log.info("The network is unreachable: %s", exc)
            if isinstance(exc, Unreachable):
                self._reachable = False
            self._last_error = str(exc)

    def _store_earnings(self, earnings: Earnings) -> CachedEarnings:
        now = time.time()
        journal = self._journal
        if journal is not None:
            journal.cache_earnings(earnings, as_of=now)
        cached = CachedEarnings(earnings, now)
        with self._lock:
            self._earnings = cached
        self._note_contact()
        return cached

    def _record(self, attempt_id: int) -> tuple[AttemptRecord, JobRunner]:
        journal, runner = self._journal, self._runner
        if journal is None or runner is None:
            raise KeyError(attempt_id)
        rec = journal.get(attempt_id)
        if rec is None:
            raise KeyError(attempt_id)
        return rec, runner

    def _info(self, rec: AttemptRecord, live: LiveJob | None) -> JobInfo:
        elapsed = rec.elapsed_s
        progress, message = rec.progress, rec.progress_message
        if live is not None and live.attempt_id == rec.attempt_id:
            if live.run_started is not None:
                elapsed += max(0.0, time.monotonic() - live.run_started)
            progress, message = live.progress, live.message
        runner = self._runner
        files = runner.output_names(rec) if runner is not None else []
        return JobInfo(
            attempt_id=rec.attempt_id,
            job_id=rec.job_id,
            label=rec.label,
            phase=rec.phase,
            progress=progress,
            progress_message=message,
            leased_at=_utc(rec.leased_at) or datetime.now(UTC),
            started_at=_utc(rec.started_at),
            finished_at=_utc(rec.finished_at),
            elapsed_s=round(elapsed, 3),
            energy_j=rec.energy_j,
            price_minor=rec.lease.price_minor,
            credited_minor=rec.credited_minor,
            currency=rec.lease.currency,
            result_status=rec.result_status,
            error=rec.error,
            files=files,
        )

    # --- halting the job thread (leave, switch networks) -------------------------------

    def _halt_jobs(self, reason: StopReason, timeout_s: float = 30.0) -> None:
        with self._lock:
            self._halt = reason
        self._wake_jobs.set()
        if threading.current_thread().name != "heatshare-jobs":
            self._job_idle.wait(timeout_s)

    def _release_jobs(self) -> None:
        with self._lock:
            self._halt = None
        self._wake_jobs.set()

    def _should_stop(self, attempt_id: int) -> StopReason | None:
        if self._stopping.is_set():
            return StopReason.SHUTDOWN
        halt = self._halt
        if halt is not None:
            return halt
        if attempt_id in self._cancel:
            return StopReason.CANCEL
        if self._remote_paused or self._paused_now():
            return StopReason.PAUSE
        if not self._compute and self._hold == "stop":
            return StopReason.HEATING
        return None

    # --- the network thread --------------------------------------------------------------

    def _net_loop(self) -> None:
        next_beat = 0.0
        next_earnings = 0.0
        # This thread's own session (a requests.Session is not meant to be shared across
        # threads); made again whenever the enrolment changes.
        mine: tuple[Enrolment, CoordinatorClient] | None = None
        while not self._stopping.is_set():
            with self._lock:
                e, shared = self._enrolment, self._client
            if e is None or shared is None:
                self._wake_net.wait(5.0)
                self._wake_net.clear()
                continue
            if e.demo and not self._demo_ready:
                self._restart_demo(e)
                continue
            if mine is None or mine[0] is not e:
                if mine is not None:
                    mine[1].close()
                mine = (e, CoordinatorClient(e.coordinator_url, self._read_token()))
                next_beat = 0.0
            client = mine[1]
            now = time.monotonic()
            try:
                if now >= next_beat:
                    next_beat = now + self._heartbeat(client, e)
                if self._earnings_due or now >= next_earnings:
                    self._earnings_due = False
                    self._store_earnings(client.earnings())
                    self._settle_pending(client, e)
                    next_earnings = now + EARNINGS_EVERY_S
            except AuthLost as exc:
                self._lost(exc)
                continue
            except CoordinatorError as exc:
                self._note_failure(exc)
                next_beat = min(next_beat, now + 5.0)
                next_earnings = max(next_earnings, now + 10.0)
            except Exception:
                log.exception("The network thread's step failed")
                next_beat = now + 5.0
            self._wake_net.wait(max(0.1, min(next_beat, next_earnings) - time.monotonic()))
            self._wake_net.clear()
        if mine is not None:
            mine[1].close()

    def _heartbeat(self, client: CoordinatorClient, e: Enrolment) -> float:
        runner, journal = self._runner, self._journal
        live = runner.live if runner is not None else None
        paused = self._remote_paused or self._paused_now() or self._heating_holds()
        state = NodeState.PAUSED if paused else NodeState.WORKING if live else NodeState.IDLE
        running = []
        if journal is not None:
            running = [
                r.attempt_id
                for r in journal.active(_network_key(e))
                if r.phase is not JobPhase.OUTBOX
            ][:256]
        answer = client.heartbeat(
            Heartbeat(state=state, telemetry=self._telemetry(), running_attempts=running)
        )
        self._note_contact()
        for command in answer.commands:
            self._obey(command)
        return float(max(1, answer.heartbeat_interval_s))

    def _settle_pending(self, client: CoordinatorClient, e: Enrolment) -> None:
        """Results that waited for a second opinion: what the network decided, and paid."""
        journal = self._journal
        if journal is None:
            return
        key = _network_key(e)
        pending = [
            r
            for r in journal.recent(100)
            if r.network == key and r.result_status == "pending_validation"
        ]
        if not pending:
            return
        settled = {
            a.attempt_id: a
            for a in client.attempts().attempts
            if a.state in (AttemptState.ACCEPTED, AttemptState.REJECTED)
        }
        for r in pending:
            a = settled.get(r.attempt_id)
            if a is not None:
                journal.update(
                    r.attempt_id,
                    now=time.time(),
                    result_status=a.state.value,
                    credited_minor=a.credited_minor,
                )

    def _obey(self, command: Command) -> None:
        log.info(
            "The network asks: %s %s %s", command.kind, command.attempt_id or "", command.reason
        )
        if command.kind == "cancel_attempt" and command.attempt_id is not None:
            with self._lock:
                self._cancel.add(command.attempt_id)
        elif command.kind == "pause":
            self._remote_paused = True
        elif command.kind == "resume":
            self._remote_paused = False
        self._wake_jobs.set()

    def _restart_demo(self, e: Enrolment) -> None:
        """The demo coordinator lives as long as the agent: start it again, on a new port."""
        from heatshare.agent.demo_network import DemoNetwork  # demo only: imported when used

        with self._lock:
            demo = self._demo
            if demo is None:
                demo = self._demo = DemoNetwork(self._paths.data_dir)
        try:
            url, _code = demo.start()
        except Exception as exc:
            with self._lock:
                self._reachable = False
                self._last_error = f"The demo network did not start: {exc}"
            log.warning("The demo network did not start: %s", exc)
            self._wake_net.wait(30.0)
            return
        moved = dataclasses.replace(e, coordinator_url=url.rstrip("/"))
        journal = self._journal
        if journal is not None:
            journal.set_enrolment(moved)
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._enrolment = moved
            self._client = CoordinatorClient(moved.coordinator_url, self._read_token())
            self._demo_ready = True
        self._wake_jobs.set()

    def _lost(self, exc: AuthLost) -> None:
        """The network no longer knows this machine: stop, forget, say why."""
        with self._lock:
            e = self._enrolment
        journal, runner = self._journal, self._runner
        if e is not None and journal is not None and runner is not None:
            if threading.current_thread().name != "heatshare-jobs":
                self._halt_jobs(StopReason.LEAVE)
            try:
                for r in journal.active(_network_key(e)):
                    runner.drop(r.attempt_id, "The network no longer knows this machine.")
            finally:
                self._release_jobs()
        self._forget(str(exc))

    # --- the job thread ------------------------------------------------------------------

    def _job_loop(self) -> None:
        next_outbox = 0.0
        outbox_wait = _OUTBOX_BACKOFF_S[0]
        was_reachable = self._reachable
        while not self._stopping.is_set():
            self._wake_jobs.clear()
            wait_s = 5.0
            try:
                with self._lock:
                    e, client, halt = self._enrolment, self._client, self._halt
                    if halt is None:
                        self._job_idle.clear()  # under the lock: see _halt_jobs
                ready = e is not None and client is not None and halt is None
                if e is not None and e.demo and not self._demo_ready:
                    ready = False
                if not ready or client is None or e is None:
                    self._wake_jobs.wait(wait_s)
                    continue
                if self._reachable and not was_reachable:
                    next_outbox, outbox_wait = 0.0, _OUTBOX_BACKOFF_S[0]
                was_reachable = self._reachable
                wait_s = self._job_step(e, client, next_outbox)
                now = time.monotonic()
                if wait_s < 0:  # the outbox did not go out
                    next_outbox = now + outbox_wait
                    outbox_wait = min(outbox_wait * 2, _OUTBOX_BACKOFF_S[1])
                    wait_s = 1.0
                elif wait_s == 0:
                    continue
            except AuthLost as exc:
                self._lost(exc)
            except Exception:
                log.exception("The job thread's step failed")
                wait_s = 10.0
            finally:
                self._job_idle.set()
            self._wake_jobs.wait(max(0.05, wait_s))

    def _job_step(self, e: Enrolment, client: CoordinatorClient, next_outbox: float) -> float:
        """One step of work; returns how long to wait (0: go on now, <0: outbox failed)."""
        journal, runner = self._journal, self._runner
        assert journal is not None and runner is not None
        key = _network_key(e)
        active = journal.active(key)
        self._outbox_pending = sum(1 for r in active if r.phase is JobPhase.OUTBOX)
        # Failure reports go before new work: each is one small request, and the network
        # re-queues the job only once it hears of the failure.
        if time.monotonic() >= next_outbox and not self._send_failures(key, runner, client):
            return -1.0
        with self._lock:
            # A finished job's result still goes out: the upload's answer settles it (the
            # network may yet credit a result that was late).
            cancelled = [
                r.attempt_id
                for r in active
                if r.attempt_id in self._cancel and r.phase in _CANCELLABLE
            ]
            self._cancel.clear()
        for attempt_id in cancelled:
            runner.drop(attempt_id, "The network cancelled this job.")
        work = [
            r for r in active if r.phase is not JobPhase.OUTBOX and r.attempt_id not in cancelled
        ]
        paused = self._remote_paused or self._paused_now() or self._heating_holds()
        if work and not paused and self._sandbox_problem is None:
            step = runner.process(work[0].attempt_id, client, self._should_stop)
            self._after(step, work[0].attempt_id)
            return self._wait_after(step, work[0].attempt_id)
        outbox = [r for r in active if r.phase is JobPhase.OUTBOX]
        if outbox and time.monotonic() >= next_outbox:
            for r in outbox:
                step = runner.process(r.attempt_id, client, self._should_stop)
                self._after(step, r.attempt_id)
                if step is Step.OUTBOX:
                    return -1.0
            return 0.0
        if work or paused or not self._accepting():
            return 1.0  # paused (or no sandbox): look again soon, so a resume is quick
        return self._lease(e, client)

    def _wait_after(self, step: Step, attempt_id: int) -> float:
        """How long to wait after a step of work (as :meth:`_job_step` returns it)."""
        journal = self._journal
        if step is Step.FAILED and journal and journal.pending_failure(attempt_id) is not None:
            self._failures_pending += 1
            self._outbox_waits()
            return -1.0  # its report waits: retried with the outbox's back-off
        return 0.0 if step not in (Step.STOPPED, Step.OUTBOX) else 1.0

    def _send_failures(self, key: str, runner: JobRunner, client: CoordinatorClient) -> bool:
        """Send the waiting failure reports, oldest first; False when one did not go out."""
        journal = self._journal
        assert journal is not None
        failures = journal.failure_outbox(key)
        self._failures_pending = len(failures)
        for pending in failures:
            if runner.report_failure(pending.attempt_id, client) is Report.WAITING:
                self._outbox_waits()
                return False
            self._failures_pending -= 1
        return True

    def _lease(self, e: Enrolment, client: CoordinatorClient) -> float:
        journal = self._journal
        assert journal is not None
        try:
            answer = client.lease(1)
        except Unreachable as exc:
            self._note_failure(exc)
            return self._lease_poll_s
        except Rejected as exc:
            if isinstance(exc, AuthLost):
                raise
            self._note_failure(exc)
            return self._lease_poll_s
        self._note_contact()
        for lease in answer.leases:
            journal.add_lease(
                lease, network=_network_key(e), label=lease_label(lease), now=time.time()
            )
            log.info("Leased job %d (attempt %d)", lease.job_id, lease.attempt_id)
        if answer.leases:
            return 0.0
        return float(min(self._lease_poll_s, max(1, answer.retry_after_s or self._lease_poll_s)))

    def _after(self, step: Step, attempt_id: int) -> None:
        if step is Step.DONE:
            self._earnings_due = True
            self._wake_net.set()
            self._note_contact()
        elif step is Step.OUTBOX:
            self._outbox_waits("results")
        log.info("Attempt %d: %s", attempt_id, step.value)

    def _outbox_waits(self, what: str = "failure reports") -> None:
        with self._lock:
            self._reachable = False
            self._last_error = f"The network cannot be reached; {what} wait in the outbox."
