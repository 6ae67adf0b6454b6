"""Models of the coordinator's API (``/v1``), shared by the coordinator and the agent.

Who calls what, and with which bearer token (``Authorization: Bearer <token>``):

- operator (``hsa_…`` admin token): accounts and pairing codes, nodes (list, revoke);
- node (``hsn_…`` node token, returned once by ``POST /v1/enrol``): heartbeat, lease,
  progress, result, failure, its own jobs and earnings, bundles of jobs it holds;
- requester (``hsr_…`` API key): bundles, jobs, results of its own jobs.

Money is integer minor units of the network's currency (cents, pence, demo credits).
Every error body is :class:`ApiError`: ``error`` is a sentence fit to show a householder.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

COORDINATOR_PROTOCOL_VERSION = 1

#: Largest job bundle and largest result the reference coordinator takes (bytes).
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_RESULT_BYTES = 64 * 1024 * 1024

#: Header names of the raw-body uploads (bundles, results).
SHA256_HEADER = "X-Heatshare-Sha256"

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[\w .@'-]+$")]
PairingCode = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]
Minor = Annotated[int, Field(ge=0, le=10**12)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiError(_Model):
    error: str
    detail: list[str] = Field(default_factory=list)


# --- operator: accounts and pairing ---------------------------------------------------------


class AccountCreate(_Model):
    name: Name


class Account(_Model):
    account_id: int
    name: str
    currency: str
    created_at: datetime


class PairingCodeCreate(_Model):
    ttl_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 24 * 3600


class PairingCodeOut(_Model):
    code: str
    account_id: int
    expires_at: datetime


class RequesterCreate(_Model):
    name: Name


class RequesterOut(_Model):
    requester_id: int
    name: str
    api_key: str  # shown once; stored hashed


#: How a revoked node's every call is refused (401); the agent shows the sentence as it is.
NODE_REVOKED = "This machine was removed from the network by its operator"


class NodeOut(_Model):
    """A machine in the network, as the operator sees it (``GET /v1/nodes``)."""

    node_id: int
    account_id: int
    account_name: str
    hostname: str
    os: str
    arch: str
    sandbox: str
    agent_version: str
    enrolled_at: datetime
    last_heartbeat_at: datetime | None = None
    state: str
    trust: int
    leased_attempts: int  # attempts it holds now
    earned_minor: int  # all it was credited, kept after it is revoked
    revoked_at: datetime | None = None


class NodeList(_Model):
    nodes: list[NodeOut]


class NodeRevoked(_Model):
    """Answer to ``POST /v1/nodes/{id}/revoke``; revoking again answers the same node."""

    node: NodeOut
    released_attempts: list[int]  # leases given back to the queue by this call
    already_revoked: bool


# --- node: enrolment ------------------------------------------------------------------------


class SandboxKind(StrEnum):
    BUBBLEWRAP = "bubblewrap"
    NONE = "none"  # the node cannot run jobs safely; it is never leased work


class GpuInventory(_Model):
    name: Annotated[str, Field(max_length=200)]
    memory_bytes: Annotated[int, Field(ge=0)] | None = None
    cuda: bool = False


class Inventory(_Model):
    """What the machine has, as the agent finds it; leases are matched against it."""

    hostname: Annotated[str, Field(min_length=1, max_length=255)]
    os: Annotated[str, Field(max_length=40)]  # "linux", "windows", "darwin"
    arch: Annotated[str, Field(max_length=40)]  # "x86_64", "aarch64"
    cpu_cores: Annotated[int, Field(ge=1, le=4096)]
    memory_bytes: Annotated[int, Field(ge=0)]
    gpus: Annotated[list[GpuInventory], Field(max_length=64)] = Field(default_factory=list)
    sandbox: SandboxKind
    agent_version: Annotated[str, Field(max_length=40)]


class EnrolRequest(_Model):
    pairing_code: PairingCode
    inventory: Inventory


class EnrolResponse(_Model):
    node_id: int
    node_token: str  # shown once; the coordinator keeps only its hash
    account_id: int
    account_name: str
    currency: str
    heartbeat_interval_s: int
    protocol_version: int = COORDINATOR_PROTOCOL_VERSION


# --- node: heartbeat ------------------------------------------------------------------------


class NodeState(StrEnum):
    IDLE = "idle"
    WORKING = "working"
    PAUSED = "paused"


class Telemetry(_Model):
    power_w: Annotated[float, Field(ge=0, le=100_000)] | None = None
    gpu_temp_c: Annotated[float, Field(ge=-100, le=250)] | None = None
    cpu_temp_c: Annotated[float, Field(ge=-100, le=250)] | None = None
    energy_j: Annotated[float, Field(ge=0, le=1e12)] = 0.0  # since the last heartbeat


class Heartbeat(_Model):
    state: NodeState
    telemetry: Telemetry = Field(default_factory=Telemetry)
    running_attempts: Annotated[list[int], Field(max_length=256)] = Field(default_factory=list)


class Command(_Model):
    """An instruction from the network, carried by the heartbeat's answer."""

    kind: Literal["cancel_attempt", "pause", "resume"]
    attempt_id: int | None = None
    reason: str = ""


class HeartbeatResponse(_Model):
    server_time: datetime
    heartbeat_interval_s: int
    commands: list[Command] = Field(default_factory=list)


# --- node: leases, progress, results --------------------------------------------------------


class Resources(_Model):
    """What a job needs; also the limits its sandbox enforces."""

    cpu_cores: Annotated[int, Field(ge=1, le=256)] = 1
    memory_bytes: Annotated[int, Field(ge=16 * 1024 * 1024, le=1024**4)] = 512 * 1024 * 1024
    disk_bytes: Annotated[int, Field(ge=1024 * 1024, le=1024**4)] = 256 * 1024 * 1024
    gpus: Annotated[int, Field(ge=0, le=16)] = 0
    gpu_memory_bytes: Annotated[int, Field(ge=0, le=1024**4)] = 0
    max_processes: Annotated[int, Field(ge=1, le=4096)] = 64
    wall_time_s: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 3600
    os: Annotated[str, Field(max_length=40)] = "linux"
    arch: Annotated[str, Field(max_length=40)] | None = None  # None: any


class LeaseRequest(_Model):
    max_jobs: Annotated[int, Field(ge=1, le=64)] = 1


class Lease(_Model):
    attempt_id: int
    job_id: int
    bundle_sha256: Sha256Hex
    bundle_size: int
    bundle_url: str  # relative to the coordinator's base URL
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources
    price_minor: Minor
    currency: str
    lease_expires_at: datetime
    deadline: datetime | None = None
    lease_s: int
    label: Annotated[str, Field(max_length=200)] = ""  # the requester's label, for the app


class LeaseResponse(_Model):
    leases: list[Lease] = Field(default_factory=list)
    retry_after_s: int = 0  # when no lease: how long before asking again is worthwhile


class Progress(_Model):
    fraction: Annotated[float, Field(ge=0.0, le=1.0)]
    message: Annotated[str, Field(max_length=500)] = ""


class ProgressResponse(_Model):
    lease_expires_at: datetime
    cancel: bool = False  # the job was cancelled or its lease went to another node


class ResultAccepted(_Model):
    """Answer to ``PUT /v1/attempts/{id}/result``; the same upload again gets the same."""

    attempt_id: int
    job_id: int
    result_sha256: Sha256Hex
    status: Literal["accepted", "pending_validation", "rejected"]
    credited_minor: int  # what this attempt earned (0 until validated, 0 when rejected)
    currency: str


class Failure(_Model):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    exit_code: int | None = None
    log_tail: Annotated[str, Field(max_length=20_000)] = ""


class AttemptState(StrEnum):
    LEASED = "leased"
    UPLOADED = "uploaded"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"


class NodeAttempt(_Model):
    attempt_id: int
    job_id: int
    state: AttemptState
    leased_at: datetime
    finished_at: datetime | None = None
    price_minor: int
    credited_minor: int


class NodeAttempts(_Model):
    attempts: list[NodeAttempt]


class LedgerEntry(_Model):
    entry_id: int
    at: datetime
    amount_minor: int
    kind: Literal["credit", "payout", "adjustment"]
    job_id: int | None = None
    attempt_id: int | None = None
    node_id: int | None = None
    memo: str = ""


class Earnings(_Model):
    """``GET /v1/nodes/me/earnings``: this node's and its account's balance."""

    node_id: int
    account_id: int
    currency: str
    node_balance_minor: int
    account_balance_minor: int
    entries: list[LedgerEntry]


# --- requester: jobs ------------------------------------------------------------------------


class BundleOut(_Model):
    sha256: Sha256Hex
    size: int


class JobSubmit(_Model):
    bundle_sha256: Sha256Hex
    command: Annotated[
        list[Annotated[str, Field(max_length=4096)]], Field(min_length=1, max_length=256)
    ]
    env: dict[
        Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")],
        Annotated[str, Field(max_length=4096)],
    ] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    price_minor: Minor
    deadline: datetime | None = None
    replication: Annotated[int, Field(ge=1, le=2)] = 1  # 2: a quorum of two matching results
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    label: Annotated[str, Field(max_length=200)] = ""


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    VALIDATING = "validating"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"  # the deadline passed


class JobOut(_Model):
    job_id: int
    state: JobState
    label: str
    bundle_sha256: str
    command: list[str]
    resources: Resources
    price_minor: int
    currency: str
    replication: int
    created_at: datetime
    deadline: datetime | None = None
    finished_at: datetime | None = None
    result_sha256: str | None = None
    attempts: int = 0
    failure: str | None = None


class JobList(_Model):
    jobs: list[JobOut]
