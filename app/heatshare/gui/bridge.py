"""The app's one way to the agent: typed results on the UI thread, never a blocking call there.

The bridge polls the agent's status (every second while the window shows, every five while
only the tray does), notices when the agent stops answering, retries with back-off and
reconnects by itself; in local mode it re-reads the runtime file on every try, because a
restarted agent may listen on a new port with a new token. If no agent answers when the
app starts (local mode only), it starts one, detached, and waits for it.
"""

from __future__ import annotations

import enum
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from PySide6.QtCore import QObject, QTimer, Signal

from heatshare.gui.tasks import TaskRunner
from heatshare.protocol.client import AgentClient, AgentError, AgentUnreachable
from heatshare.protocol.discovery import Paths, read_runtime, read_token
from heatshare.protocol.energy import (
    CostsResponse,
    EnergySettings,
    PlugProbeRequest,
    PlugProbeResponse,
    PriceListImport,
    PriceListInfo,
    StatementResponse,
)
from heatshare.protocol.heating import (
    HeatingSettings,
    HeatingStatus,
    HeatMode,
    RoomProbeRequest,
    RoomProbeResponse,
    SetpointRequest,
)
from heatshare.protocol.local_api import (
    AgentStatus,
    EarningsResponse,
    HistoryResponse,
    JobsResponse,
    NetworkStatus,
    Settings,
    SettingsPatch,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL_POOL = "agent-poll"  # status polls only, so a slow query never delays them
QUERY_POOL = "agent-query"  # history, settings, pause/resume: serialised on one thread
PAGES_POOL = "agent-pages"  # the Jobs and Network pages' polls
FILES_POOL = "agent-files"  # a job's log and result files: big answers never delay a poll
# Joining waits on the network (up to 30 s, the demo up to 60 s): never ahead of the rest.
ENROL_POOL = "agent-enrol"
HEATING_POOL = "agent-heating"  # the Heating page's polls, and mode/boost/setpoint changes
# A room thermometer's test waits on Home Assistant or a broker (up to 10 s): a pool of its own.
PROBE_POOL = "agent-probe"
# The cost figures, energy settings and statements; a plug's test (up to 10 s) and a price
# list's import share it, so a save never overtakes a test the user is waiting on.
ENERGY_POOL = "agent-energy"

VISIBLE_POLL_S = 1.0
HIDDEN_POLL_S = 5.0
STARTING_POLL_S = 0.25  # while a just-started agent comes up
STARTING_PATIENCE_S = 20.0  # how long a started agent may take before it counts as failed
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)  # waits between tries after a failure; the last repeats


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where an agent listens and the token it wants."""

    base_url: str
    token: str | None


class EndpointSource(Protocol):
    """Finds the agent's address; called on a worker thread before each try."""

    def resolve(self) -> Endpoint | None: ...

    def describe(self) -> str: ...


class LocalEndpoints:
    """The agent of this user (or of ``--profile-dir``), found through its runtime file."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def resolve(self) -> Endpoint | None:
        info = read_runtime(self.paths)
        if info is None:
            return None
        return Endpoint(info.base_url, read_token(self.paths))

    def describe(self) -> str:
        return "the local agent"


class FixedEndpoint:
    """An agent on another machine (``--connect HOST:PORT``)."""

    def __init__(self, host_port: str, token: str | None) -> None:
        self.endpoint = Endpoint(parse_host_port(host_port), token)

    def resolve(self) -> Endpoint | None:
        return self.endpoint

    def describe(self) -> str:
        return self.endpoint.base_url


def parse_host_port(text: str) -> str:
    """``"shed.local:47821"`` → ``"http://shed.local:47821"``; IPv6 in brackets.

    Raises:
        ValueError: with a sentence fit to show, when the text is not HOST:PORT.
    """
    text = text.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (for example shed.local:47821)")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{int(port)}"


class AgentLauncher:
    """Starts a detached agent for the local profile, its output going to a log file."""

    def __init__(self, paths: Paths, profile_dir: str | None) -> None:
        self.paths = paths
        self.profile_dir = profile_dir
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if getattr(sys, "frozen", False):
            # A bundle has no interpreter to take -m: its agent is a program beside the app.
            cmd = [str(Path(sys.executable).with_name("heatshare-agent")), "run"]
        else:
            cmd = [sys.executable, "-m", "heatshare.agent", "run"]
        if self.profile_dir is not None:
            cmd += ["--profile-dir", self.profile_dir]
        return cmd

    def launch(self) -> None:
        self.paths.ensure()
        out = self.paths.log_dir / "agent-console.log"
        log.info("Starting the agent: %s (output in %s)", " ".join(self.command()), out)
        with Path(out).open("ab") as sink:
            # A session of its own: closing the app (or its terminal) must not stop heating.
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )

    def exited(self) -> int | None:
        """The started agent's exit code, or None while it runs (or none was started)."""
        return None if self.process is None else self.process.poll()


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"  # first try not answered yet
    STARTING_AGENT = "starting agent"  # we started an agent and wait for it
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"


ClientFactory = Callable[[Endpoint], AgentClient]


def _http_client(endpoint: Endpoint) -> AgentClient:
    return AgentClient(endpoint.base_url, endpoint.token, timeout_s=5.0)


class _ClientCache:
    """One ``AgentClient`` per worker thread and endpoint (a requests.Session is per-thread)."""

    def __init__(self, factory: ClientFactory = _http_client) -> None:
        self._local = threading.local()
        self._factory = factory

    def get(self, endpoint: Endpoint) -> AgentClient:
        cached: tuple[Endpoint, AgentClient] | None = getattr(self._local, "client", None)
        if cached is not None and cached[0] == endpoint:
            return cached[1]
        if cached is not None:
            cached[1].close()
        client = self._factory(endpoint)
        self._local.client = (endpoint, client)
        return client


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """A history answer and the request it answers (the charts drop stale ones)."""

    request_id: int
    response: HistoryResponse


class AgentBridge(QObject):
    """Polls the agent and relays its answers as typed objects on the UI thread.

    Signals:
        status_received(AgentStatus): each successful status poll.
        connection_changed(ConnectionState, str): state and a sentence about it.
        history_received(HistoryResult): an answer to ``request_history``.
        history_failed(int, str): request id and a sentence fit to show.
        settings_received(Settings): after ``load_settings`` or a successful save.
        settings_failed(str): the agent refused a save; its message, fit to show.
        action_failed(str): pause/resume/shutdown did not go through.
        network_received(NetworkStatus): an answer to ``load_network``, ``enrol``,
            ``start_demo`` or ``leave_network``.
        network_failed(str): ``load_network`` failed; a sentence fit to show.
        enrol_failed(str): ``enrol``/``start_demo``/``leave_network`` failed; the agent's
            sentence (wrong or expired code, server unreachable or untrusted).
        jobs_received(JobsResponse), jobs_failed(str): answers to ``load_jobs``.
        earnings_received(EarningsResponse), earnings_failed(str): to ``load_earnings``.
        job_log_received(int, str): attempt id and its log text.
        job_file_received(int, str, bytes): attempt id, file name and its bytes.
        job_detail_failed(int, str): attempt id and why its log or a file did not come.
        heating_received(HeatingStatus): an answer to ``load_heating``, ``set_mode``,
            ``boost`` or ``setpoint``.
        heating_failed(str): ``load_heating`` failed; a sentence fit to show.
        heating_action_failed(str): a mode, boost or setpoint change was refused.
        heating_settings_received(HeatingSettings): after ``load_heating_settings`` or a save
            (tokens and passwords come back as None).
        heating_settings_failed(str): a load or save failed; the agent's sentence.
        room_probe_received(RoomProbeResponse), room_probe_failed(str): to ``room_probe``.
        costs_received(CostsResponse), costs_failed(str): to ``load_costs``.
        energy_settings_received(EnergySettings): after ``load_energy_settings`` or a save
            (the plug's password comes back as None).
        energy_settings_failed(str): a load or save failed; the agent's sentence.
        plug_probe_received(PlugProbeResponse), plug_probe_failed(str): to ``plug_probe``.
        price_list_received(PriceListInfo): to ``load_price_list`` or ``import_prices``.
        price_list_failed(str): an import was refused (the sentence names the row).
        statement_received(StatementResponse), statement_csv_received(str, str): a month's
            statement, or the month and its CSV text.
        statement_failed(str): either was refused.
    """

    status_received = Signal(AgentStatus)
    connection_changed = Signal(ConnectionState, str)
    history_received = Signal(HistoryResult)
    history_failed = Signal(int, str)
    settings_received = Signal(Settings)
    settings_failed = Signal(str)
    action_failed = Signal(str)
    network_received = Signal(NetworkStatus)
    network_failed = Signal(str)
    enrol_failed = Signal(str)
    jobs_received = Signal(JobsResponse)
    jobs_failed = Signal(str)
    earnings_received = Signal(EarningsResponse)
    earnings_failed = Signal(str)
    job_log_received = Signal(int, str)
    job_file_received = Signal(int, str, bytes)
    job_detail_failed = Signal(int, str)
    heating_received = Signal(HeatingStatus)
    heating_failed = Signal(str)
    heating_action_failed = Signal(str)
    heating_settings_received = Signal(HeatingSettings)
    heating_settings_failed = Signal(str)
    room_probe_received = Signal(RoomProbeResponse)
    room_probe_failed = Signal(str)
    costs_received = Signal(CostsResponse)
    costs_failed = Signal(str)
    energy_settings_received = Signal(EnergySettings)
    energy_settings_failed = Signal(str)
    plug_probe_received = Signal(PlugProbeResponse)
    plug_probe_failed = Signal(str)
    price_list_received = Signal(PriceListInfo)
    price_list_failed = Signal(str)
    statement_received = Signal(StatementResponse)
    statement_csv_received = Signal(str, str)
    statement_failed = Signal(str)

    def __init__(
        self,
        source: EndpointSource,
        tasks: TaskRunner,
        *,
        launcher: AgentLauncher | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_factory: ClientFactory = _http_client,
        parent: QObject | None = None,
    ) -> None:
        """Args:
        source: Where the agent listens.
        tasks: The pools the calls run on.
        launcher: Starts a local agent when none answers at start (local mode only).
        clock: Monotonic seconds (tests pass their own).
        client_factory: Builds the client for an endpoint (the HTTP client; tests pass a
            fake that replays the agent's answers).
        parent: The Qt parent.
        """
        super().__init__(parent)
        self.setObjectName("agent-bridge")
        self._source = source
        self._tasks = tasks
        self._launcher = launcher
        self._clock = clock
        self._clients = _ClientCache(client_factory)
        self._endpoint: Endpoint | None = None
        self._state = ConnectionState.CONNECTING
        self._message = ""
        self._visible = True
        self._in_flight = False
        self._failures = 0
        self._launched_at: float | None = None
        self._next_request = 0
        self._stopped = False
        self.last_status: AgentStatus | None = None
        self.settings: Settings | None = None
        self.network: NetworkStatus | None = None
        self._timer = QTimer(self)
        self._timer.setObjectName("status-poll")
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.poll_now)

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def message(self) -> str:
        return self._message

    @property
    def reachable(self) -> bool:
        return self._state is ConnectionState.CONNECTED

    def start(self) -> None:
        """Begin polling now."""
        self._stopped = False
        self.poll_now()

    def stop(self) -> None:
        """Stop polling (the worker threads are the TaskRunner's to stop)."""
        self._stopped = True
        self._timer.stop()

    def set_visible(self, visible: bool) -> None:
        """The window shows (poll each second) or only the tray does (every five)."""
        if visible == self._visible:
            return
        self._visible = visible
        if visible and self._state is ConnectionState.CONNECTED and not self._in_flight:
            self._schedule(0.0)  # a window just opened wants fresh figures at once

    # -- polling -------------------------------------------------------------------------

    def poll_now(self) -> None:
        if self._stopped or self._in_flight:
            return
        self._in_flight = True
        known = self._endpoint if self._state is ConnectionState.CONNECTED else None
        self._tasks.run(
            POLL_POOL, lambda: self._fetch_status(known), self._on_status, self._on_poll_error
        )

    def _fetch_status(self, known: Endpoint | None) -> tuple[Endpoint, AgentStatus]:
        # Runs on the poll thread. Re-resolve on every try while not connected: a restarted
        # agent writes a new runtime file (new port, maybe a new token).
        endpoint = known or self._source.resolve()
        if endpoint is None:
            raise AgentUnreachable("No agent is running (no runtime file).")
        return endpoint, self._clients.get(endpoint).status()

    def _on_status(self, result: tuple[Endpoint, AgentStatus]) -> None:
        self._in_flight = False
        endpoint, status = result
        first = self._state is not ConnectionState.CONNECTED
        self._endpoint = endpoint
        self._failures = 0
        self._launched_at = None
        self.last_status = status
        if first:
            self._set_state(ConnectionState.CONNECTED, f"Connected to {endpoint.base_url}")
            self.load_settings()
        self.status_received.emit(status)
        self._schedule(VISIBLE_POLL_S if self._visible else HIDDEN_POLL_S)

    def _on_poll_error(self, exc: BaseException) -> None:
        self._in_flight = False
        if self._stopped:
            return
        reason = str(exc) if isinstance(exc, AgentUnreachable | AgentError) else repr(exc)
        if not isinstance(exc, AgentUnreachable | AgentError):
            log.error("Status poll failed unexpectedly", exc_info=exc)
        was_connected = self._state is ConnectionState.CONNECTED
        self._endpoint = None
        if was_connected:
            log.warning("The agent stopped answering: %s", reason)
        if self._maybe_launch():
            return
        if self._launched_at is not None:
            code = self._launcher.exited() if self._launcher else None
            waited = self._clock() - self._launched_at
            if code is None and waited < STARTING_PATIENCE_S:
                self._schedule(STARTING_POLL_S)
                return
            why = f"it exited with code {code}" if code is not None else "it did not answer"
            self._launched_at = None
            self._set_state(
                ConnectionState.UNREACHABLE,
                f"The agent was started but {why}. Its output is in "
                f"{self._launcher.paths.log_dir if self._launcher else 'the log folder'}.",
            )
        else:
            self._set_state(ConnectionState.UNREACHABLE, self._unreachable_text(exc))
        self._failures += 1
        wait = BACKOFF_S[min(self._failures - 1, len(BACKOFF_S) - 1)]
        if not self._visible:
            wait = max(wait, HIDDEN_POLL_S)
        self._schedule(wait)

    def _unreachable_text(self, exc: BaseException) -> str:
        if isinstance(exc, AgentError) and exc.status == 401:
            return "The agent refused the token. Check --token or HEATSHARE_TOKEN."
        return f"No answer from {self._source.describe()}."

    def _maybe_launch(self) -> bool:
        """At start, in local mode, with no agent answering: start one. True if started now."""
        if self._launcher is None or self._launcher.process is not None:
            return False
        if self._state is not ConnectionState.CONNECTING:
            return False  # only at start: an agent that went away later is the user's call
        try:
            self._launcher.launch()
        except OSError as exc:
            log.error("Could not start the agent: %s", exc)
            self._set_state(ConnectionState.UNREACHABLE, f"Could not start the agent: {exc}")
            self._schedule(BACKOFF_S[-1])
            return True
        self._launched_at = self._clock()
        self._set_state(ConnectionState.STARTING_AGENT, "Starting the agent…")
        self._schedule(STARTING_POLL_S)
        return True

    def _schedule(self, seconds: float) -> None:
        if not self._stopped:
            self._timer.start(round(seconds * 1000))

    def _set_state(self, state: ConnectionState, message: str) -> None:
        if state is self._state and message == self._message:
            return
        self._state = state
        self._message = message
        self.connection_changed.emit(state, message)

    # -- queries and actions -------------------------------------------------------------

    def _query(
        self,
        call: Callable[[AgentClient], T],
        on_result: Callable[[T], None],
        on_error: Callable[[str], None],
        pool: str = QUERY_POOL,
    ) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            on_error("The agent is not connected.")
            return

        def work() -> T:
            return call(self._clients.get(endpoint))

        def failed(exc: BaseException) -> None:
            if not isinstance(exc, AgentUnreachable | AgentError):
                log.error("Agent call failed unexpectedly", exc_info=exc)
            on_error(str(exc))

        self._tasks.run(pool, work, on_result, failed)

    def request_history(
        self, series: Sequence[str], start: float, end: float, *, max_points: int | None = None
    ) -> int:
        """Ask for history; the answer comes as ``history_received`` with the returned id."""
        self._next_request += 1
        request_id = self._next_request
        names = list(series)
        self._query(
            lambda c: c.history(names, start, end, max_points=max_points),
            lambda r: self.history_received.emit(HistoryResult(request_id, r)),
            lambda msg: self.history_failed.emit(request_id, msg),
        )
        return request_id

    def load_settings(self) -> None:
        self._query(lambda c: c.settings(), self._got_settings, self.settings_failed.emit)

    def save_settings(self, patch: SettingsPatch) -> None:
        self._query(
            lambda c: c.update_settings(patch), self._got_settings, self.settings_failed.emit
        )

    def _got_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.settings_received.emit(settings)

    def pause(self, seconds: int | None) -> None:
        self._query(lambda c: c.pause(seconds), self._after_action, self.action_failed.emit)

    def resume(self) -> None:
        self._query(lambda c: c.resume(), self._after_action, self.action_failed.emit)

    def shutdown_agent(self, on_done: Callable[[], None] | None = None) -> None:
        """Ask the agent to stop; ``on_done`` runs on the UI thread either way."""

        def done(_: object) -> None:
            if on_done is not None:
                on_done()

        def failed(msg: str) -> None:
            self.action_failed.emit(msg)
            done(None)

        self._query(lambda c: c.shutdown(), done, failed)

    def _after_action(self, status: AgentStatus) -> None:
        self.last_status = status
        self.status_received.emit(status)

    # -- the compute network -------------------------------------------------------------

    def load_network(self) -> None:
        self._query(lambda c: c.network(), self._got_network, self.network_failed.emit, PAGES_POOL)

    def enrol(self, url: str, code: str) -> None:
        """Join a network; the agent checks the code with the network before it answers."""
        self._query(
            lambda c: c.enrol(url, code), self._got_network, self.enrol_failed.emit, ENROL_POOL
        )

    def start_demo(self) -> None:
        """Start the embedded demo network and join it."""
        self._query(lambda c: c.start_demo(), self._got_network, self.enrol_failed.emit, ENROL_POOL)

    def leave_network(self) -> None:
        self._query(
            lambda c: c.leave_network(), self._got_network, self.enrol_failed.emit, ENROL_POOL
        )

    def _got_network(self, network: NetworkStatus) -> None:
        self.network = network
        self.network_received.emit(network)

    def load_jobs(self) -> None:
        self._query(lambda c: c.jobs(), self.jobs_received.emit, self.jobs_failed.emit, PAGES_POOL)

    def load_earnings(self) -> None:
        self._query(
            lambda c: c.earnings(),
            self.earnings_received.emit,
            self.earnings_failed.emit,
            PAGES_POOL,
        )

    def load_job_log(self, attempt_id: int) -> None:
        self._query(
            lambda c: c.job_log(attempt_id),
            lambda text: self.job_log_received.emit(attempt_id, text),
            lambda msg: self.job_detail_failed.emit(attempt_id, msg),
            FILES_POOL,
        )

    def load_job_file(self, attempt_id: int, name: str) -> None:
        self._query(
            lambda c: c.job_file(attempt_id, name),
            lambda data: self.job_file_received.emit(attempt_id, name, data),
            lambda msg: self.job_detail_failed.emit(attempt_id, msg),
            FILES_POOL,
        )

    # -- heating -------------------------------------------------------------------------

    def load_heating(self) -> None:
        self._query(
            lambda c: c.heating(),
            self.heating_received.emit,
            self.heating_failed.emit,
            HEATING_POOL,
        )

    def set_mode(self, mode: HeatMode) -> None:
        self._query(
            lambda c: c.set_mode(mode),
            self._after_heating_action,
            self.heating_action_failed.emit,
            HEATING_POOL,
        )

    def boost(self, minutes: int) -> None:
        """Full heat for ``minutes`` (0 ends a boost)."""
        self._query(
            lambda c: c.boost(minutes),
            self._after_heating_action,
            self.heating_action_failed.emit,
            HEATING_POOL,
        )

    def setpoint(self, request: SetpointRequest) -> None:
        self._query(
            lambda c: c.setpoint(request),
            self._after_heating_action,
            self.heating_action_failed.emit,
            HEATING_POOL,
        )

    def _after_heating_action(self, status: HeatingStatus) -> None:
        self.heating_received.emit(status)
        # The tray and the dashboard read the heating line of the status: fetch it now
        # rather than at the next poll, so a click shows its effect at once.
        if not self._in_flight:
            self._timer.stop()
            self.poll_now()

    def load_heating_settings(self) -> None:
        self._query(
            lambda c: c.heating_settings(),
            self.heating_settings_received.emit,
            self.heating_settings_failed.emit,
            HEATING_POOL,
        )

    def save_heating_settings(self, settings: HeatingSettings) -> None:
        self._query(
            lambda c: c.put_heating_settings(settings),
            self.heating_settings_received.emit,
            self.heating_settings_failed.emit,
            HEATING_POOL,
        )

    def room_probe(self, request: RoomProbeRequest) -> None:
        self._query(
            lambda c: c.room_probe(request),
            self.room_probe_received.emit,
            self.room_probe_failed.emit,
            PROBE_POOL,
        )

    # -- energy: costs, plug, tariff, statements -----------------------------------------

    def load_costs(self) -> None:
        self._query(
            lambda c: c.costs(), self.costs_received.emit, self.costs_failed.emit, ENERGY_POOL
        )

    def load_energy_settings(self) -> None:
        self._query(
            lambda c: c.energy_settings(),
            self.energy_settings_received.emit,
            self.energy_settings_failed.emit,
            ENERGY_POOL,
        )

    def save_energy_settings(self, settings: EnergySettings) -> None:
        self._query(
            lambda c: c.put_energy_settings(settings),
            self._after_energy_save,
            self.energy_settings_failed.emit,
            ENERGY_POOL,
        )

    def _after_energy_save(self, settings: EnergySettings) -> None:
        self.energy_settings_received.emit(settings)
        # The flat price is the settings' tariff too: read it back for the dashboard.
        self.load_settings()

    def plug_probe(self, request: PlugProbeRequest) -> None:
        self._query(
            lambda c: c.plug_probe(request),
            self.plug_probe_received.emit,
            self.plug_probe_failed.emit,
            ENERGY_POOL,
        )

    def load_price_list(self) -> None:
        self._query(
            lambda c: c.price_list(),
            self.price_list_received.emit,
            self.price_list_failed.emit,
            ENERGY_POOL,
        )

    def import_prices(self, request: PriceListImport) -> None:
        self._query(
            lambda c: c.import_prices(request),
            self.price_list_received.emit,
            self.price_list_failed.emit,
            ENERGY_POOL,
        )

    def load_statement(self, month: str) -> None:
        self._query(
            lambda c: c.statement(month),
            self.statement_received.emit,
            self.statement_failed.emit,
            ENERGY_POOL,
        )

    def load_statement_csv(self, month: str) -> None:
        self._query(
            lambda c: c.statement_csv(month),
            lambda text: self.statement_csv_received.emit(month, text),
            self.statement_failed.emit,
            ENERGY_POOL,
        )
