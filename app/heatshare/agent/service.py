"""The agent service: sampling, heat accounting, history and the state its local API reports.

One :class:`AgentService` owns the store, the sensors and the heat accountant. The sampler
calls :meth:`AgentService.tick` once a second on its own named thread (``sampler``); the
once-a-minute rollup and pruning run on another (``store-maintenance``) so a slow rollup never
delays a sample. The store is safe to share across threads (one locked writer, a pool of WAL
readers), so the local API's handler threads read history beside the sampler's writes.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import ValidationError

from heatshare.__about__ import __version__
from heatshare.domain import series as names
from heatshare.domain.heat import ComponentPower, EstimateModel, HeatAccountant, HeatTick
from heatshare.domain.money import local_day, micro_to_minor
from heatshare.domain.readings import GpuReading, Provenance, Snapshot
from heatshare.domain.units import J_PER_KWH, w_to_btu_h
from heatshare.protocol import PROTOCOL_VERSION
from heatshare.protocol.coordinator_api import Inventory, Telemetry
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
    BoostRequest,
    HeatingSettings,
    HeatingStatus,
    ModeRequest,
    RoomProbeRequest,
    RoomProbeResponse,
    SetpointRequest,
)
from heatshare.protocol.local_api import (
    AgentState,
    AgentStatus,
    EarningsResponse,
    GpuStatus,
    HistoryResponse,
    HostStatus,
    JobsResponse,
    NetworkStatus,
    SeriesData,
    SeriesInfo,
    SeriesList,
    Settings,
    SettingsPatch,
)
from heatshare.store import Store, StoreError

if TYPE_CHECKING:
    from heatshare.agent.energy import EnergyControl
    from heatshare.agent.heating_control import HeatingControl, PresenceReader, SampleFacts
    from heatshare.agent.sampler import Sampler
    from heatshare.jobs.sandbox import Sandbox
    from heatshare.protocol.discovery import Paths
    from heatshare.sensors import SensorSuite

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SETTINGS_KEY = "agent.settings"
PAUSE_KEY = "agent.pause"
DEFAULT_HISTORY_S = 3600.0
DEFAULT_MAX_POINTS = 4000
ESTIMATE_NOTE = (
    "Heat output is estimated from utilisation: no power meter or energy counter "
    "can be read on this machine."
)


def _component_name(name: str) -> str:
    if name.startswith("gpu"):
        return f"GPU {name[3:]}"
    return {"cpu": "the CPU", "rest": "the rest of the system (a figure from the settings)"}.get(
        name, name
    )


def estimate_note(
    components: Sequence[ComponentPower], heat_source: Provenance | None = None
) -> str | None:
    """A sentence for the user when any part of the heat figure is not measured.

    A GPU measured by its energy counter beside an estimated CPU is mostly measured heat: the
    note names which parts are which, so the "estimate" label does not hide that. While a wall
    plug is the source (``heat_source``), it measures the whole machine: nothing is estimated.
    """
    if heat_source is Provenance.PLUG:
        return None
    estimated = [
        c.name for c in components if c.provenance is Provenance.ESTIMATE and c.power_w is not None
    ]
    if not estimated:
        return None
    measured = [
        c.name
        for c in components
        if c.provenance is not None and c.provenance.is_measured and c.power_w is not None
    ]
    if not measured:
        return ESTIMATE_NOTE
    parts = ", ".join(_component_name(n) for n in estimated)
    sure = ", ".join(_component_name(n) for n in measured)
    return f"Heat output is partly estimated: {parts} (estimated); {sure} (measured)."


# What the heat figure comes from while the plug does not answer, for the status's sentence.
_FALLBACK_SOURCE = {
    Provenance.ENERGY_COUNTER: "the energy counters",
    Provenance.POWER_READING: "the power readings",
    Provenance.ESTIMATE: "an estimate from utilisation",
}


# How long the inventory waits for the first sample (the sampler reads at once when started).
FIRST_SAMPLE_WAIT_S = 3.0
# How often the rollups and pruning run: off the 1 s path, on the store thread.
MAINTENANCE_EVERY_S = 60.0

_GPU_SERIES = re.compile(r"^gpu\d+\.(" + "|".join(names.GPU_FIELDS) + r")$")
_HOST_SERIES = frozenset(
    {
        names.ROOM_TEMP,
        names.SETPOINT,
        names.HEAT_DEMAND,
        names.HEAT_POWER,
        names.HEAT_ENERGY,
        names.CPU_POWER,
        names.CPU_TEMP,
        names.CPU_UTIL,
        names.CPU_FREQ,
        names.MEM_USED,
    }
)


class RequestError(Exception):
    """A request the agent will not carry out; ``str(exc)`` is a sentence fit to show."""

    def __init__(self, message: str, *, status: int = 400, detail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.detail = list(detail)


NO_NETWORK = (
    "This agent was started without the compute network, so it cannot join one or run jobs."
)


class WorkSummaryView(Protocol):
    """What the status reads of the job engine each second (``work.WorkSummary``)."""

    @property
    def job_label(self) -> str | None: ...
    @property
    def job_progress(self) -> float | None: ...
    @property
    def earned_today_minor(self) -> int | None: ...
    @property
    def currency(self) -> str | None: ...


class NetworkPort(Protocol):
    """The job engine as the service, its API and its CLI use it (``work.NetworkWorker``).

    Methods that talk to the network raise ``work.NetworkError``, whose ``status`` the local
    API answers with and whose text is a sentence fit to show.
    """

    def start(self) -> None: ...
    def stop(self, grace_s: float = 5.0) -> None: ...
    def network_status(self) -> NetworkStatus: ...
    def enrol(self, url: str, code: str) -> NetworkStatus: ...
    def start_demo(self) -> NetworkStatus: ...
    def leave(self) -> NetworkStatus: ...
    def jobs(self, limit: int = 50) -> JobsResponse: ...
    def job_log(self, attempt_id: int) -> str: ...
    def job_file(self, attempt_id: int, name: str) -> bytes: ...
    def earnings(self) -> EarningsResponse: ...
    def summary(self) -> WorkSummaryView: ...
    # The heating thread's hold on the jobs (``heating_control.JobHold``).
    def hold(self, *, compute: bool, hold: str, cpu_cores: int | None) -> None: ...
    def job_running(self) -> bool: ...
    def job_frozen(self) -> bool: ...
    def checkpoint_eta_s(self) -> float | None: ...


def _in_range(value: float | None, low: float, high: float) -> float | None:
    """``value`` where the wire model takes it; a reading outside its range is not sent."""
    return value if value is not None and low <= value <= high else None


def is_known_series(name: str) -> bool:
    """Whether ``name`` belongs to the series vocabulary this agent records."""
    return name in _HOST_SERIES or _GPU_SERIES.match(name) is not None


def _pct(used: int | None, total: int | None) -> float | None:
    if used is None or not total:
        return None
    return used * 100.0 / total


def sample_values(snap: Snapshot, tick: HeatTick, energy_kwh: float) -> dict[str, float | None]:
    """The stored series of one tick, by name (``domain/series.py``); None where unread."""
    cpu = next((c for c in tick.components if c.name == "cpu"), None)
    host = snap.host
    values: dict[str, float | None] = {
        names.HEAT_POWER: tick.heat_w,
        names.HEAT_ENERGY: energy_kwh,
        names.CPU_POWER: cpu.power_w if cpu is not None else None,
        names.CPU_TEMP: host.cpu_temp_c,
        names.CPU_UTIL: host.cpu_pct,
        names.CPU_FREQ: host.cpu_freq_mhz,
        names.MEM_USED: host.mem_pct,
    }
    for gpu in snap.gpus:
        i = gpu.index
        values[names.gpu_series(i, "power_w")] = gpu.power_w
        values[names.gpu_series(i, "temp_c")] = gpu.temp_c
        values[names.gpu_series(i, "util_pct")] = gpu.util_gpu_pct
        values[names.gpu_series(i, "fan_pct")] = gpu.fan_pct
        values[names.gpu_series(i, "clock_sm_mhz")] = gpu.clock_sm_mhz
        values[names.gpu_series(i, "mem_used_pct")] = _pct(gpu.mem_used_bytes, gpu.mem_total_bytes)
    return values


def _gpu_status(gpu: GpuReading, provenance: Provenance | None) -> GpuStatus:
    return GpuStatus(
        index=gpu.index,
        name=gpu.name,
        power_w=gpu.power_w,
        power_provenance=provenance if gpu.power_w is not None else None,
        temp_c=gpu.temp_c,
        fan_pct=gpu.fan_pct,
        util_gpu_pct=gpu.util_gpu_pct,
        util_mem_pct=gpu.util_mem_pct,
        clock_sm_mhz=gpu.clock_sm_mhz,
        clock_mem_mhz=gpu.clock_mem_mhz,
        mem_used_bytes=gpu.mem_used_bytes,
        mem_total_bytes=gpu.mem_total_bytes,
        power_limit_w=gpu.power_limit_w,
        power_limit_min_w=gpu.power_limit_min_w,
        power_limit_max_w=gpu.power_limit_max_w,
        temp_slowdown_c=gpu.temp_slowdown_c,
        temp_shutdown_c=gpu.temp_shutdown_c,
    )


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _local_utc_offset(wall_ts: float) -> int:
    return time.localtime(wall_ts).tm_gmtoff


def validation_lines(exc: ValidationError) -> list[str]:
    """A pydantic error as lines people can read: ``field: what is wrong``."""
    lines = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        lines.append(f"{where}: {err['msg']}" if where else err["msg"])
    return lines


def _resolution_for(span_s: float, max_points: int) -> int:
    """The resolution the store would pick, for a request whose series have no rows yet."""
    for res in (1, 60, 3600):
        if span_s / res <= max_points:
            return res
    return 3600


class Worker:
    """One named background thread that runs queued calls in order (a pool of one)."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closing = False

    def post(self, fn: Callable[..., object], *args: Any) -> None:
        """Queue ``fn`` without waiting; a failure is logged with its traceback."""
        self._pool.submit(fn, *args).add_done_callback(self._log_failure)

    def _log_failure(self, fut: Future[object]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            return
        if self._closing and isinstance(exc, StoreError):
            log.debug("Background history work cut short by the shutdown: %s", exc)
        else:
            log.error("Background history work failed", exc_info=exc)

    def close(self) -> None:
        """Drop queued work and return at once; work in progress ends at its next step.

        A long first rollup after days switched off must not hold up a shutdown: the store,
        closed next, ends it between two of its transactions.
        """
        self._closing = True
        self._pool.shutdown(wait=False, cancel_futures=True)


class AgentService:
    """Sampling, accounting and the agent's state: what the local API serves.

    Args:
        store: the history store; the service closes it in :meth:`stop`.
        sensors: the sensor suite read each tick.
        accountant: integrates power into heat; configured from the stored settings.
        wall_clock: UTC seconds since the epoch (injected for tests).
        utc_offset: local offset from UTC in seconds at a wall time, for "today".
        period_s: the sampling period.
        mono_clock: the monotonic clock the heating thread measures a sample's age on.
        heating: the heating control (tests pass their own); else one on this store.
        presence: what the heating control reads for battery and exclusive programs.
        tz: the household's time zone (the energy figures' days, months and seasons).
        energy: the plug, tariff and energy records (tests pass their own); else one here.
        plug_reader, fetch_prices: the energy control's plug and price list seams (tests).
    """

    def __init__(
        self,
        store: Store,
        sensors: SensorSuite,
        accountant: HeatAccountant,
        *,
        wall_clock: Callable[[], float] = time.time,
        utc_offset: Callable[[float], int] = _local_utc_offset,
        period_s: float = 1.0,
        hostname: str | None = None,
        mono_clock: Callable[[], float] = time.monotonic,
        heating: HeatingControl | None = None,
        presence: PresenceReader | None = None,
        tz: tzinfo | None = None,
        energy: EnergyControl | None = None,
        plug_reader: Callable[[str, str, str | None], Any] | None = None,
        fetch_prices: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        self._wall = wall_clock
        self._mono = mono_clock
        self._utc_offset = utc_offset
        self._period_s = period_s
        self._hostname = hostname or socket.gethostname()
        self._sensors = sensors
        self._accountant = accountant
        self._acct_lock = threading.Lock()  # the sampler updates, a PATCH configures
        self._lock = threading.Lock()  # guards the mutable state below
        self._settings_write = threading.Lock()  # one settings writer at a time
        self._sampler: Sampler | None = None
        self._sampler_thread: threading.Thread | None = None
        self._closed = False

        self._store = store
        self._maintenance = Worker("store-maintenance")
        self._load_warnings: list[str] = []
        self._settings = self._load_settings()
        self._paused, self._paused_until = self._load_pause()
        latest = self._store.latest(names.HEAT_ENERGY)
        self._energy_kwh = float(latest[1]) if latest is not None and latest[1] is not None else 0.0
        self._configure_accountant(self._settings)

        self._last_snap: Snapshot | None = None
        self._last_tick: HeatTick | None = None
        self._day: str | None = None
        self._day_heat_j = 0.0
        self._day_cost_micro = 0
        self._last_maintenance = float("-inf")
        self._sample_error: str | None = None
        self._network: NetworkPort | None = None
        self._network_started = False
        self._telemetry_kwh: float | None = None  # the energy total at the last heartbeat
        self._sampled = threading.Event()  # set by the first sample
        self._sample_mono: float | None = None  # when the last good sample was read
        self._heating = heating if heating is not None else self._build_heating(presence)
        self._heating_started = False
        self._energy = (
            energy if energy is not None else self._build_energy(tz, plug_reader, fetch_prices)
        )
        self._load_warnings.extend(self._energy.load_warnings)
        self._plug_generation = self._energy.plug_generation
        # Price-aware heating: the loop reads the prices each step, the costs show its plan.
        self._heating.attach_prices(self._energy)
        self._heating.configure_prices(
            self._energy.settings_stored().price_aware, self._settings.currency
        )
        self._energy.set_planner(self._heating.plan)
        self._energy_started = False

    def _build_energy(
        self,
        tz: tzinfo | None,
        plug_reader: Callable[[str, str, str | None], Any] | None,
        fetch: Callable[[str], tuple[str, str]] | None,
    ) -> EnergyControl:
        from heatshare.agent.energy import EnergyControl
        from heatshare.agent.heating_control import local_zone

        return EnergyControl(
            self._store,
            base_settings=self.settings,
            set_flat_price=self._set_flat_price,
            wall=self._wall,
            mono=self._mono,
            tz=tz if tz is not None else local_zone(),
            hostname=self._hostname,
            earnings=self._network_earnings,
            plug_reader=plug_reader,
            fetch=fetch,
        )

    def _network_earnings(self) -> EarningsResponse | None:
        network = self._network
        return network.earnings() if network is not None else None

    def _set_flat_price(self, price: Decimal) -> None:
        try:
            patch = SettingsPatch(tariff_per_kwh=price)
        except ValidationError as exc:
            lines = validation_lines(exc)
            raise RequestError(
                f"The tariff was not accepted: {'; '.join(lines)}.", status=422, detail=lines
            ) from exc
        self.update_settings(patch)

    def _build_heating(self, presence: PresenceReader | None) -> HeatingControl:
        from heatshare.agent.heating_control import HeatingControl, read_presence

        sensors: Any = self._sensors
        nvml = getattr(sensors, "nvml", None)
        if presence is None:
            presence = read_presence(nvml.module if nvml is not None else None)
        control = HeatingControl(
            self._store,
            facts=self.heating_facts,
            power=sensors if hasattr(sensors, "set_gpu_power_limits") else None,
            presence=presence,
            hostname=self._hostname,
            wall=self._wall,
            mono=self._mono,
            advice=self.dust_advice,
        )
        self._load_warnings.extend(control.load_warnings)
        return control

    # -- composition ---------------------------------------------------------------------

    @classmethod
    def open(
        cls, db_file: Path, *, sensors: SensorSuite | None = None, paths: Paths | None = None
    ) -> AgentService:
        """The real service: the store at ``db_file`` and this machine's sensors.

        With ``paths`` (the profile's folders) it also joins the compute network: the job
        engine is built here and started and stopped with the service.
        """
        from heatshare.sensors import default_sensors

        suite = sensors if sensors is not None else default_sensors()
        try:
            for line in suite.describe():
                log.info("Sensor: %s", line)
            defaults = Settings()
            accountant = HeatAccountant(
                estimate=EstimateModel(
                    cpu_idle_w=defaults.estimate_cpu_idle_w, cpu_max_w=defaults.estimate_cpu_max_w
                ),
                rest_of_system_w=defaults.rest_of_system_w,
            )
            store = Store.open(db_file, now=time.time())
        except BaseException:
            suite.close()
            raise
        try:
            service = cls(store, suite, accountant)
            if paths is not None:
                service.attach_network(service.build_network(paths, db_file))
        except BaseException:
            store.close()
            suite.close()
            raise
        return service

    def build_network(self, paths: Paths, db_file: Path) -> NetworkPort:
        """The job engine of this agent, fed by this service's sensors and pause state."""
        from heatshare.agent.work import NetworkWorker
        from heatshare.jobs.sandbox import find_sandbox

        sandbox = find_sandbox()
        problem = sandbox.problem()
        if problem is None:
            log.info("Jobs run here in the %s sandbox", sandbox.kind)
        else:
            log.info("Jobs cannot run here: %s", problem)
        return NetworkWorker(
            paths=paths,
            db_file=db_file,
            sandbox=sandbox,
            inventory=lambda: self.inventory(sandbox),
            energy_j=self.energy_total_j,
            telemetry=self.telemetry,
            paused=self.is_paused,
        )

    def attach_network(self, network: NetworkPort) -> None:
        """Give the service its job engine (before :meth:`start`); it starts and stops it."""
        self._network = network
        self._heating.attach_network(network)

    def describe_sensors(self) -> list[str]:
        """What this machine offers, a line a source (for the log and the console)."""
        return self._sensors.describe()

    def start(self) -> None:
        """Start sampling on the ``sampler`` thread."""
        from heatshare.agent.sampler import Sampler

        self._sampler = Sampler(self.tick, period_s=self._period_s, name="sampler")
        self._sampler_thread = self._sampler.start()
        self._energy.start()
        self._energy_started = True
        self._heating.start()
        self._heating_started = True
        if self._network is not None:
            self._network.start()
            self._network_started = True

    def stop(self) -> None:
        """Stop the jobs and sampling, then close the store and the sensors. Safe to call twice.

        The job engine stops first: its jobs keep their checkpoints and its journal says where
        they were, while the store and the sensors its callbacks read are still open.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._network is not None and self._network_started:
                self._network.stop()
        except Exception:
            log.exception("Stopping the job engine failed; the agent stops anyway")
        if self._heating_started:
            try:
                self._heating.stop()
            except Exception:
                log.exception("Stopping the heating control failed; the agent stops anyway")
        if self._sampler is not None:
            self._sampler.stop()
        if self._sampler_thread is not None:
            self._sampler_thread.join(timeout=3.0)
            if self._sampler_thread.is_alive():
                log.warning("The sampler did not stop within 3 s; closing the store anyway")
        if self._energy_started:
            try:
                self._energy.stop()
            except Exception:
                log.exception("Stopping the plug and price threads failed; the agent stops anyway")
        try:
            self._maintenance.close()
            self._store.close()
        finally:
            self._sensors.close()

    # -- the 1 s path ----------------------------------------------------------------------

    def tick(self) -> None:
        """One sample: read, account, record.

        A failure is kept for the status's warnings and re-raised for the sampler, which logs
        it (once, then rarely while it repeats) and goes on.
        """
        try:
            self._tick()
        except StoreError as exc:
            self._set_sample_error(str(exc))  # the environment's fault: its message says why
            raise
        except Exception as exc:
            self._set_sample_error(f"Sampling failed: {exc}")
            raise
        if self._sample_error is not None:
            log.info("Sampling works again")
            self._set_sample_error(None)

    def _set_sample_error(self, message: str | None) -> None:
        with self._lock:
            self._sample_error = message

    def _tick(self) -> None:
        snap = self._sensors.read()
        read_at = self._mono()
        plug = self._energy.plug_reading()
        with self._acct_lock:
            generation = self._energy.plug_generation
            if generation != self._plug_generation:
                # Another plug (or none): its counter is no baseline for the new one's.
                self._accountant.forget_plug()
                self._plug_generation = generation
            heat = self._accountant.update(snap, plug=plug)
        now = snap.wall_ts
        day = local_day(now, self._utc_offset(now))
        energy_j = heat.energy_j if heat.energy_j > 0 else 0.0
        # The minute's record, priced at the tariff (split across a price change in the tick).
        cost_micro = self._energy.book(heat.provenance, energy_j, heat.dt_s, now)
        if day != self._day:
            # A new day (or the first tick): start from what the store holds for it.
            day_heat_j, day_cost = self._store.day_energy(day)
        else:
            day_heat_j, day_cost = self._day_heat_j, self._day_cost_micro
        energy_kwh = self._energy_kwh + energy_j / J_PER_KWH
        values = sample_values(snap, heat, energy_kwh)
        values.update(self._heating.series_values())

        self._store.write_samples(now, values)
        if energy_j > 0 or cost_micro:
            self._store.add_energy(day, energy_j, cost_micro)
        if snap.mono_s - self._last_maintenance >= MAINTENANCE_EVERY_S:
            self._last_maintenance = snap.mono_s
            self._maintenance.post(self._maintain, now)

        with self._lock:
            self._energy_kwh = energy_kwh
            self._day = day
            self._day_heat_j = day_heat_j + energy_j
            self._day_cost_micro = day_cost + cost_micro
            self._last_snap = snap
            self._last_tick = heat
            self._sample_mono = read_at
        self._sampled.set()
        self._expire_pause(now)

    def _maintain(self, now: float) -> None:
        started = time.perf_counter()
        self._store.rollup(now)
        self._store.prune(now)
        log.debug("Rollup and prune took %.1f ms", (time.perf_counter() - started) * 1000)

    # -- state -----------------------------------------------------------------------------

    def _expire_pause(self, now: float) -> None:
        with self._lock:
            expired = self._paused and self._paused_until is not None and now >= self._paused_until
            if expired:
                self._paused, self._paused_until = False, None
        if expired:
            log.info("The timed pause ended; heating resumes")
            self._store.set_state(PAUSE_KEY, "")

    def status(self) -> AgentStatus:
        """The heater now, as ``GET /v1/status`` reports it."""
        self._expire_pause(self._wall())
        with self._lock:
            snap, heat = self._last_snap, self._last_tick
            settings = self._settings
            paused, paused_until = self._paused, self._paused_until
            day_heat_j = self._day_heat_j
            sample_error = self._sample_error
        warnings = [*self._store.warnings, *self._load_warnings]
        if sample_error:
            warnings.append(sample_error)
        base: dict[str, Any] = {
            "protocol_version": PROTOCOL_VERSION,
            "agent_version": __version__,
            "hostname": self._hostname,
            "paused_until": _utc(paused_until) if paused else None,
            "heat_today_kwh": day_heat_j / J_PER_KWH,
            # From the energy records, as GET /v1/energy/costs sums them: the same penny.
            "cost_today_minor": micro_to_minor(self._energy.cost_today_micro()),
            "currency": settings.currency,
            **self._work_summary(),
        }
        base["heating"] = self._heating.summary()
        if snap is None or heat is None:
            state = AgentState.PAUSED if paused else AgentState.STARTING
            return AgentStatus(state=state, warnings=warnings, **base)

        provenance = {c.name: c.provenance for c in heat.components}
        cpu_power = next((c for c in heat.components if c.name == "cpu"), None)
        temperatures: dict[str, float | None] = {"cpu": snap.host.cpu_temp_c}
        for gpu in snap.gpus:
            temperatures[f"gpu{gpu.index}"] = gpu.temp_c
        known = {k: v for k, v in temperatures.items() if v is not None}
        hottest = max(known, key=lambda k: known[k]) if known else None
        utils = [snap.host.cpu_pct, *(g.util_gpu_pct for g in snap.gpus)]
        peak = max((u for u in utils if u is not None), default=None)
        if paused:
            state = AgentState.PAUSED
        elif peak is not None and peak >= settings.heating_threshold_pct:
            state = AgentState.HEATING
        else:
            state = AgentState.IDLE
        # While the plug measures the whole machine, no part of the heat figure is estimated.
        note = estimate_note(heat.components, heat.provenance)
        if heat.plug_error is not None:
            source = (
                _FALLBACK_SOURCE.get(heat.provenance, "nothing") if heat.provenance else "nothing"
            )
            warnings.append(
                f"{heat.plug_error.rstrip('.')}; the heat figure comes from {source} meanwhile."
            )
        if note is not None:
            warnings.append(note)
        host = snap.host
        return AgentStatus(
            state=state,
            sample_time=_utc(snap.wall_ts),
            heat_w=heat.heat_w,
            heat_btu_h=w_to_btu_h(heat.heat_w) if heat.heat_w is not None else None,
            heat_provenance=heat.provenance if heat.heat_w is not None else None,
            temperatures=temperatures,
            hottest_name=hottest,
            hottest_c=known[hottest] if hottest is not None else None,
            gpus=[_gpu_status(g, provenance.get(f"gpu{g.index}")) for g in snap.gpus],
            host=HostStatus(
                cpu_pct=host.cpu_pct,
                per_core_pct=list(host.per_core_pct),
                mem_used_bytes=host.mem_used_bytes,
                mem_total_bytes=host.mem_total_bytes,
                mem_pct=host.mem_pct,
                cpu_temp_c=host.cpu_temp_c,
                cpu_freq_mhz=host.cpu_freq_mhz,
                cpu_power_w=cpu_power.power_w if cpu_power is not None else None,
                cpu_power_provenance=(
                    cpu_power.provenance
                    if cpu_power is not None and cpu_power.power_w is not None
                    else None
                ),
            ),
            warnings=warnings,
            **base,
        )

    def _work_summary(self) -> dict[str, Any]:
        if self._network is None:
            return {}
        work = self._network.summary()  # no I/O: read every second
        return {
            "job_label": work.job_label,
            "job_progress": work.job_progress,
            "earned_today_minor": work.earned_today_minor,
            "earnings_currency": work.currency,
        }

    # -- what the job engine reads ---------------------------------------------------------

    def network(self) -> NetworkPort:
        """The job engine; a :class:`RequestError` (503) where this agent runs without one."""
        if self._network is None:
            raise RequestError(NO_NETWORK, status=503)
        return self._network

    @property
    def has_network(self) -> bool:
        return self._network is not None

    def is_paused(self) -> bool:
        """Whether the householder paused the heater (then no job runs)."""
        self._expire_pause(self._wall())
        with self._lock:
            return self._paused

    def energy_total_j(self) -> float | None:
        """The machine's energy so far (J), as the heat accountant integrated it.

        None before the first sample, and while no part of the machine can be measured or
        estimated: a job's energy is the difference of two of these.
        """
        with self._lock:
            if self._last_tick is None or self._last_tick.heat_w is None:
                return None
            return self._energy_kwh * J_PER_KWH

    def telemetry(self) -> Telemetry:
        """The heartbeat's summary: power and temperatures now, energy since the last call."""
        with self._lock:
            snap, heat, energy_kwh = self._last_snap, self._last_tick, self._energy_kwh
            since_kwh = energy_kwh - self._telemetry_kwh if self._telemetry_kwh is not None else 0.0
            self._telemetry_kwh = energy_kwh
        if snap is None or heat is None:
            return Telemetry()
        gpu_temps = [t for g in snap.gpus if (t := _in_range(g.temp_c, -100, 250)) is not None]
        return Telemetry(
            power_w=_in_range(heat.heat_w, 0, 100_000),
            gpu_temp_c=max(gpu_temps) if gpu_temps else None,
            cpu_temp_c=_in_range(snap.host.cpu_temp_c, -100, 250),
            energy_j=min(max(since_kwh * J_PER_KWH, 0.0), 1e12),
        )

    def inventory(self, sandbox: Sandbox) -> Inventory:
        """What this machine offers the network, from the latest sample."""
        from heatshare.agent.inventory import build_inventory, cuda_present, sandbox_kind

        # An enrolment in the agent's first second must still list the GPUs.
        self._sampled.wait(FIRST_SAMPLE_WAIT_S)
        with self._lock:
            snap = self._last_snap
        gpus = snap.gpus if snap is not None else ()
        return build_inventory(
            hostname=self._hostname,
            host=snap.host if snap is not None else None,
            gpus=gpus,
            sandbox=sandbox_kind(sandbox.kind, sandbox.problem()),
            cuda=bool(gpus) and cuda_present(),
        )

    # -- pause -----------------------------------------------------------------------------

    def pause(self, duration_s: int | None) -> AgentStatus:
        """Pause heating, for ``duration_s`` or until resumed; kept across a restart."""
        until = self._wall() + duration_s if duration_s is not None else None
        self._store.set_state(PAUSE_KEY, json.dumps({"paused": True, "until": until}))
        with self._lock:
            self._paused, self._paused_until = True, until
        log.info("Paused %s", f"for {duration_s} s" if duration_s else "until resumed")
        return self.status()

    def resume(self) -> AgentStatus:
        """End a pause (no-op when not paused)."""
        self._store.set_state(PAUSE_KEY, "")
        with self._lock:
            was_paused = self._paused
            self._paused, self._paused_until = False, None
        if was_paused:
            log.info("Resumed")
        return self.status()

    def _load_pause(self) -> tuple[bool, float | None]:
        raw = self._store.get_state(PAUSE_KEY)
        if not raw:
            return False, None
        try:
            data = json.loads(raw)
            until = data.get("until")
            paused = bool(data.get("paused")) and (until is None or isinstance(until, int | float))
        except (ValueError, AttributeError):
            log.warning("The stored pause state was unreadable; the agent starts unpaused")
            return False, None
        if not paused:
            return False, None
        if until is not None and until <= self._wall():
            self._store.set_state(PAUSE_KEY, "")
            return False, None
        return True, until

    # -- settings --------------------------------------------------------------------------

    def settings(self) -> Settings:
        with self._lock:
            return self._settings

    def update_settings(self, patch: SettingsPatch) -> Settings:
        """Validate, store and apply a change; raises :class:`RequestError` with the reasons."""
        changes = patch.model_dump(exclude_unset=True)
        with self._settings_write:
            current = self.settings()
            try:
                merged = Settings.model_validate({**current.model_dump(), **changes})
            except ValidationError as exc:
                lines = validation_lines(exc)
                raise RequestError(
                    f"The settings change was not accepted: {'; '.join(lines)}.",
                    status=422,
                    detail=lines,
                ) from exc
            if merged.estimate_cpu_max_w < merged.estimate_cpu_idle_w:
                msg = (
                    "The settings change was not accepted: the estimated CPU power at full load "
                    "must not be below its power at idle."
                )
                raise RequestError(msg, status=422)
            self._store.set_state(SETTINGS_KEY, merged.model_dump_json())
            self._configure_accountant(merged)
            with self._lock:
                self._settings = merged
        if "currency" in changes:
            # The heating loop names prices in the tariff's currency.
            self._heating.configure_prices(
                self._energy.settings_stored().price_aware, merged.currency
            )
        if changes:
            log.info("Settings changed: %s", ", ".join(sorted(changes)))
        return merged

    def _configure_accountant(self, settings: Settings) -> None:
        with self._acct_lock:
            self._accountant.configure(
                estimate=EstimateModel(
                    cpu_idle_w=settings.estimate_cpu_idle_w, cpu_max_w=settings.estimate_cpu_max_w
                ),
                rest_of_system_w=settings.rest_of_system_w,
            )

    def _load_settings(self) -> Settings:
        raw = self._store.get_state(SETTINGS_KEY)
        if not raw:
            return Settings()
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not an object")
        except (ValueError, TypeError):
            self._settings_damaged("they could not be read")
            return Settings()
        # Keep every field that is still valid: a field added by a newer version, or one
        # value out of range, must not throw away the rest of the householder's settings.
        known = {k: v for k, v in data.items() if k in Settings.model_fields}
        dropped = sorted(set(data) - set(known))
        while True:
            try:
                settings = Settings.model_validate(known)
                break
            except ValidationError as exc:
                bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
                if not bad & set(known):
                    return Settings()
                dropped += sorted(bad & set(known))
                known = {k: v for k, v in known.items() if k not in bad}
        if dropped:
            self._settings_damaged(f"these were reset to their defaults: {', '.join(dropped)}")
        return settings

    def _settings_damaged(self, what: str) -> None:
        msg = f"Some stored settings were not usable; {what}."
        log.warning("%s", msg)
        self._load_warnings.append(msg)

    # -- heating ---------------------------------------------------------------------------

    def heating_facts(self) -> SampleFacts:
        """The sampler's latest work, for the heating thread (no I/O)."""
        from heatshare.agent.heating_control import SampleFacts

        with self._lock:
            heat = self._last_tick
            return SampleFacts(
                snap=self._last_snap,
                heat_w=heat.heat_w if heat is not None else None,
                sample_mono=self._sample_mono,
                sample_error=self._sample_error,
                heat_today_kwh=self._day_heat_j / J_PER_KWH if heat is not None else None,
            )

    def dust_advice(self, weeks: int = 8) -> list[str]:
        """A reminder per GPU that runs warmer at the same power than weeks ago (dust)."""
        from heatshare.domain.safety import dust_trend

        with self._lock:
            snap = self._last_snap
        if snap is None:
            return []
        now = self._wall()
        stored = set(self._store.series_names())
        out: list[str] = []
        for gpu in snap.gpus:
            wanted = [
                names.gpu_series(gpu.index, "power_w"),
                names.gpu_series(gpu.index, "temp_c"),
                names.ROOM_TEMP,
            ]
            if not set(wanted) <= stored:
                continue
            span = weeks * 7 * 86400.0
            result = self._store.query(wanted, now - span, now, max_points=weeks * 7 * 24 + 2)
            by_hour: dict[float, list[float | None]] = {}
            for i, series in enumerate(result.series):
                for t, mean in zip(series.t, series.mean, strict=True):
                    by_hour.setdefault(t, [None, None, None])[i] = mean
            rows = [(t, *values) for t, values in sorted(by_hour.items())]
            message = dust_trend(rows, component=f"GPU {gpu.index}")  # type: ignore[arg-type]
            if message is not None:
                out.append(message)
        return out

    @property
    def heating(self) -> HeatingControl:
        return self._heating

    def heating_status(self) -> HeatingStatus:
        return self._heating.status()

    def heating_settings(self) -> HeatingSettings:
        return self._heating.settings()

    def put_heating_settings(self, settings: HeatingSettings) -> HeatingSettings:
        return self._call_heating(lambda: self._heating.put_settings(settings))

    def heating_mode(self, req: ModeRequest) -> HeatingStatus:
        return self._call_heating(lambda: self._heating.set_mode(req))

    def heating_boost(self, req: BoostRequest) -> HeatingStatus:
        return self._call_heating(lambda: self._heating.boost(req))

    def heating_setpoint(self, req: SetpointRequest) -> HeatingStatus:
        return self._call_heating(lambda: self._heating.setpoint(req))

    def room_probe(self, req: RoomProbeRequest) -> RoomProbeResponse:
        return self._heating.room_probe(req)

    def _call_heating(self, call: Callable[[], _T]) -> _T:
        from heatshare.agent.heating_control import HeatingRequestError

        try:
            return call()
        except HeatingRequestError as exc:
            raise RequestError(str(exc), status=exc.status, detail=exc.detail) from exc

    # -- energy: plug, tariff, costs, statements --------------------------------------------

    @property
    def energy(self) -> EnergyControl:
        return self._energy

    def _call_energy(self, call: Callable[[], _T]) -> _T:
        from heatshare.agent.energy import EnergyRequestError

        try:
            return call()
        except EnergyRequestError as exc:
            raise RequestError(str(exc), status=exc.status) from exc

    def energy_settings(self) -> EnergySettings:
        return self._energy.settings()

    def put_energy_settings(self, settings: EnergySettings) -> EnergySettings:
        saved = self._call_energy(lambda: self._energy.put_settings(settings))
        self._heating.configure_prices(saved.price_aware, self.settings().currency)
        return saved

    def plug_probe(self, req: PlugProbeRequest) -> PlugProbeResponse:
        return self._energy.probe(req)

    def import_prices(self, req: PriceListImport) -> PriceListInfo:
        return self._call_energy(lambda: self._energy.import_prices(req))

    def price_list(self) -> PriceListInfo:
        return self._energy.price_info()

    def costs(self) -> CostsResponse:
        """The cost of heat (today, this month, this season) and where the heat comes from."""
        with self._lock:
            heat = self._last_tick
        source = heat.provenance if heat is not None and heat.heat_w is not None else None
        plug_error = heat.plug_error if heat is not None else None
        return self._energy.costs(source, plug_error)

    def statement(self, month: str) -> StatementResponse:
        return self._call_energy(lambda: self._energy.statement(month))

    def statement_csv(self, month: str) -> str:
        return self._call_energy(lambda: self._energy.statement_csv(month))

    # -- history ---------------------------------------------------------------------------

    def series(self) -> SeriesList:
        found = self._store.series_names()
        infos = []
        for name in sorted(found):
            spec = names.spec_for(name)
            infos.append(SeriesInfo(name=spec.name, unit=spec.unit, label=spec.label))
        return SeriesList(series=infos)

    def history(
        self,
        series: Sequence[str],
        start: float | None = None,
        end: float | None = None,
        max_points: int | None = None,
    ) -> HistoryResponse:
        """History of ``series`` over ``[start, end]``; the store picks the resolution."""
        if not series:
            raise RequestError("Name at least one series, for example ?series=heat.power_w.")
        end = self._wall() if end is None else end
        start = end - DEFAULT_HISTORY_S if start is None else start
        if start > end:
            raise RequestError("The start of the requested range is after its end.")
        max_points = DEFAULT_MAX_POINTS if max_points is None else max_points
        unknown = [n for n in series if not is_known_series(n)]
        if unknown:
            raise RequestError(
                f"Unknown series: {', '.join(unknown)}. "
                "GET /v1/series lists the series this agent records."
            )
        stored = set(self._store.series_names())
        present = list(dict.fromkeys(n for n in series if n in stored))
        by_name: dict[str, SeriesData] = {}
        resolution = _resolution_for(end - start, max_points)
        if present:
            try:
                result = self._store.query(present, start, end, max_points=max_points)
            except ValueError as exc:
                raise RequestError(f"The history request was not accepted: {exc}") from exc
            start, end, resolution = result.start, result.end, result.resolution_s
            for s in result.series:
                by_name[s.name] = SeriesData(
                    name=s.name,
                    unit=names.spec_for(s.name).unit,
                    t=list(s.t),
                    mean=list(s.mean),
                    min=list(s.min) if s.min is not None else None,
                    max=list(s.max) if s.max is not None else None,
                )
        out = [
            by_name.get(n) or SeriesData(name=n, unit=names.spec_for(n).unit, t=[], mean=[])
            for n in dict.fromkeys(series)
        ]
        return HistoryResponse(start=start, end=end, resolution_s=resolution, series=out)


__all__ = [
    "AgentService",
    "NetworkPort",
    "RequestError",
    "WorkSummaryView",
    "Worker",
    "is_known_series",
    "sample_values",
]
