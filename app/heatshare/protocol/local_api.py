"""Models of the agent's local API (``/v1``), shared by the agent, its CLI and the app."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from heatshare.domain.readings import Provenance
from heatshare.protocol.heating import HeatingSummary

Celsius = Annotated[float, Field(ge=-100.0, le=250.0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentState(StrEnum):
    """What the heater is doing, as the tray icon shows it."""

    STARTING = "starting"  # no sample taken yet
    HEATING = "heating"  # the machine is working hard: its power is heat in the room
    IDLE = "idle"
    PAUSED = "paused"  # the householder paused it


class GpuStatus(_Model):
    index: int
    name: str
    power_w: float | None = None
    power_provenance: Provenance | None = None
    temp_c: float | None = None
    fan_pct: float | None = None
    util_gpu_pct: float | None = None
    util_mem_pct: float | None = None
    clock_sm_mhz: float | None = None
    clock_mem_mhz: float | None = None
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    power_limit_w: float | None = None
    power_limit_min_w: float | None = None
    power_limit_max_w: float | None = None
    temp_slowdown_c: float | None = None
    temp_shutdown_c: float | None = None


class HostStatus(_Model):
    cpu_pct: float | None = None
    per_core_pct: list[float] = Field(default_factory=list)
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    mem_pct: float | None = None
    cpu_temp_c: float | None = None
    cpu_freq_mhz: float | None = None
    cpu_power_w: float | None = None
    cpu_power_provenance: Provenance | None = None


class AgentStatus(_Model):
    """``GET /v1/status``: the heater now."""

    protocol_version: int
    agent_version: str
    hostname: str
    state: AgentState
    paused_until: datetime | None = None  # None while paused means until resumed
    sample_time: datetime | None = None
    heat_w: float | None = None  # None where nothing can be measured or estimated
    heat_btu_h: float | None = None
    heat_provenance: Provenance | None = None
    heat_today_kwh: float = 0.0
    cost_today_minor: int = 0  # integer minor units of ``currency``
    currency: str = "GBP"
    temperatures: dict[str, float | None] = Field(default_factory=dict)
    hottest_name: str | None = None
    hottest_c: float | None = None
    gpus: list[GpuStatus] = Field(default_factory=list)
    host: HostStatus = Field(default_factory=HostStatus)
    warnings: list[str] = Field(default_factory=list)  # shown to the user as they are
    # The network side, for the tray and the dashboard (None: not enrolled, or no job now).
    job_label: str | None = None
    job_progress: float | None = None  # 0..1 where the job reports it
    earned_today_minor: int | None = None
    earnings_currency: str | None = None
    heating: HeatingSummary | None = None  # None until the heating loop has run once


class SeriesInfo(_Model):
    name: str
    unit: str
    label: str


class SeriesList(_Model):
    series: list[SeriesInfo]


class SeriesData(_Model):
    """One series at one resolution. Rollups carry min and max; raw samples do not."""

    name: str
    unit: str
    t: list[float]  # UTC seconds since the epoch
    mean: list[float | None]
    min: list[float | None] | None = None
    max: list[float | None] | None = None


class HistoryResponse(_Model):
    """``GET /v1/history?series=a,b&start=..&end=..``."""

    start: float
    end: float
    resolution_s: int  # 1 (raw), 60 or 3600: chosen by the agent from the range
    series: list[SeriesData]


class Settings(_Model):
    """The agent's settings, validated on every write."""

    tariff_per_kwh: Annotated[Decimal, Field(ge=0, le=100, max_digits=10, decimal_places=5)] = (
        Decimal("0.245")
    )
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "GBP"
    temperature_unit: Literal["C", "F"] = "C"
    # Heat the sensors cannot see (motherboard, drives, fans, PSU losses), added to every total.
    rest_of_system_w: Annotated[float, Field(ge=0, le=2000)] = 0.0
    # The utilisation model used only where no power is measured; its figures say "estimate".
    estimate_cpu_idle_w: Annotated[float, Field(ge=0, le=1000)] = 10.0
    estimate_cpu_max_w: Annotated[float, Field(ge=0, le=1000)] = 65.0
    # Utilisation at or above which the machine counts as heating.
    heating_threshold_pct: Annotated[float, Field(ge=1, le=100)] = 25.0


class SettingsPatch(_Model):
    """``PATCH /v1/settings``: any subset of the settings."""

    tariff_per_kwh: (
        Annotated[Decimal, Field(ge=0, le=100, max_digits=10, decimal_places=5)] | None
    ) = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    temperature_unit: Literal["C", "F"] | None = None
    rest_of_system_w: Annotated[float, Field(ge=0, le=2000)] | None = None
    estimate_cpu_idle_w: Annotated[float, Field(ge=0, le=1000)] | None = None
    estimate_cpu_max_w: Annotated[float, Field(ge=0, le=1000)] | None = None
    heating_threshold_pct: Annotated[float, Field(ge=1, le=100)] | None = None


class PauseRequest(_Model):
    """``POST /v1/pause``: for a while, or until resumed when ``duration_s`` is None."""

    duration_s: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] | None = None


class ErrorResponse(_Model):
    """Every 4xx/5xx body: ``error`` is a sentence the app can show as it is."""

    error: str
    detail: list[str] = Field(default_factory=list)


class Ok(_Model):
    ok: bool = True


# --- the compute network, as the agent sees it ----------------------------------------------


class NetworkStatus(_Model):
    """``GET /v1/network``: whether this machine is enrolled, and how the link is."""

    enrolled: bool
    coordinator_url: str | None = None
    node_id: int | None = None
    account_name: str | None = None
    currency: str | None = None
    demo: bool = False  # the embedded demo network, paid in demo credits
    reachable: bool | None = None  # None: not tried yet
    last_contact: datetime | None = None
    last_error: str | None = None  # a sentence, while the network is unreachable
    sandbox: str | None = None  # "bubblewrap", or None where jobs cannot run safely
    sandbox_problem: str | None = None  # why jobs are refused here, in a sentence
    accepting_jobs: bool = False
    outbox_pending: int = 0  # results waiting for the network
    failures_pending: int = 0  # failure reports waiting for the network
    balance_minor: int | None = None
    account_balance_minor: int | None = None


class EnrolLocal(_Model):
    """``POST /v1/network/enrol``: the wizard's "join a network"."""

    url: Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://")]
    code: Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]


class JobPhase(StrEnum):
    """A job's life in the agent; each step is journaled before it is taken."""

    LEASED = "leased"
    DOWNLOADING = "downloading"
    RUNNING = "running"
    UPLOADING = "uploading"
    OUTBOX = "outbox"  # finished; the result waits for the network
    DONE = "done"  # the network has the result
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobInfo(_Model):
    attempt_id: int
    job_id: int
    label: str = ""
    phase: JobPhase
    progress: float | None = None
    progress_message: str = ""
    leased_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    elapsed_s: float = 0.0  # time spent running, over every resume
    energy_j: float | None = None  # the machine's energy while it ran; None where unmeasured
    price_minor: int = 0
    credited_minor: int | None = None  # None until the network says
    currency: str = ""
    result_status: str | None = None  # "accepted", "pending_validation", "rejected"
    error: str | None = None
    files: list[str] = Field(default_factory=list)  # output files, fetchable one by one


class JobsResponse(_Model):
    """``GET /v1/jobs``: jobs in progress first, then the most recent ones."""

    current: list[JobInfo]
    history: list[JobInfo]


class EarningEntry(_Model):
    at: datetime
    amount_minor: int
    kind: str
    job_id: int | None = None
    memo: str = ""


class EarningsResponse(_Model):
    """``GET /v1/earnings``: this node's earnings, from the network (cached when offline)."""

    currency: str
    balance_minor: int
    account_balance_minor: int
    today_minor: int
    entries: list[EarningEntry]
    as_of: datetime | None = None  # when the network last confirmed these figures
