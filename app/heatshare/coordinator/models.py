"""The coordinator's tables (SQLAlchemy 2, typed). The Alembic revisions create exactly these.

Secrets (node tokens, API keys, the admin token, pairing codes) are stored as sha256 hex
digests only. Money is integer minor units. A job's needs are columns, so leasing matches
them in SQL; a node's inventory likewise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from heatshare.coordinator.db import UtcDateTime


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        int: BigInteger().with_variant(Integer, "sqlite"),
    }


class Meta(Base):
    """Network-wide facts that must not drift between app servers (the currency)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class AdminToken(Base):
    __tablename__ = "admin_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class AccountRow(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    currency: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]


class PairingCodeRow(Base):
    __tablename__ = "pairing_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"))


class NodeRow(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    os: Mapped[str] = mapped_column(String(40))
    arch: Mapped[str] = mapped_column(String(40))
    cpu_cores: Mapped[int]
    memory_bytes: Mapped[int]
    gpu_count: Mapped[int]
    # The smallest GPU's memory: a job asking for N GPUs of M bytes fits when N <= gpu_count
    # and M <= this (a GPU whose memory is unknown counts as 0).
    gpu_min_memory_bytes: Mapped[int]
    cuda: Mapped[bool]
    sandbox: Mapped[str] = mapped_column(String(20))
    agent_version: Mapped[str] = mapped_column(String(40))
    # Kept for the operator; not loaded with the row (every request loads its node).
    inventory: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    trust: Mapped[int] = mapped_column(default=0)
    enrolled_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20), default="idle")
    last_heartbeat_at: Mapped[datetime | None]
    power_w: Mapped[float | None]
    gpu_temp_c: Mapped[float | None]
    cpu_temp_c: Mapped[float | None]
    energy_j_total: Mapped[float] = mapped_column(default=0.0)
    # Set when the operator removes the machine: its token is refused from then on, but the
    # row stays, so its ledger entries and attempts keep their node.
    revoked_at: Mapped[datetime | None]


class RequesterRow(Base):
    __tablename__ = "requesters"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class BundleRow(Base):
    """A requester's bundle; the bytes are in the blob store under their sha256."""

    __tablename__ = "bundles"
    __table_args__ = (UniqueConstraint("requester_id", "sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("requesters.id"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int]
    created_at: Mapped[datetime]


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_leasable", "state", "wanted"),
        # Partial indexes (SQLite and PostgreSQL alike): leasing walks the jobs that want an
        # attempt in id order and stops at its limit, with no sort and no finished job in
        # the way; the sweep finds open jobs past their deadline without scanning the rest.
        Index(
            "ix_jobs_wanted_id",
            "id",
            sqlite_where=text("wanted > 0"),
            postgresql_where=text("wanted > 0"),
        ),
        Index(
            "ix_jobs_open_deadline",
            "deadline",
            sqlite_where=text("finished_at IS NULL AND deadline IS NOT NULL"),
            postgresql_where=text("finished_at IS NULL AND deadline IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("requesters.id"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    bundle_size: Mapped[int]
    command: Mapped[list[str]] = mapped_column(JSON)
    env: Mapped[dict[str, str]] = mapped_column(JSON)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The resources again as columns, for matching in SQL.
    need_cpu_cores: Mapped[int]
    need_memory_bytes: Mapped[int]
    need_gpus: Mapped[int]
    need_gpu_memory_bytes: Mapped[int]
    need_os: Mapped[str] = mapped_column(String(40))
    need_arch: Mapped[str | None] = mapped_column(String(40))
    price_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(8))
    replication: Mapped[int]
    max_attempts: Mapped[int]
    state: Mapped[str] = mapped_column(String(20))
    # How many more attempts may be leased now (recounted on every change of the job).
    wanted: Mapped[int]
    attempts_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    deadline: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result_sha256: Mapped[str | None] = mapped_column(String(64))
    failure: Mapped[str | None] = mapped_column(Text)


class AttemptRow(Base):
    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_node_state", "node_id", "state"),
        Index("ix_attempts_state_expiry", "state", "lease_expires_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    state: Mapped[str] = mapped_column(String(20))
    leased_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    progress: Mapped[float] = mapped_column(default=0.0)
    progress_message: Mapped[str] = mapped_column(String(500), default="")
    result_sha256: Mapped[str | None] = mapped_column(String(64))
    result_size: Mapped[int | None]
    # What the upload was answered; the same upload again is answered the same.
    credited_minor: Mapped[int] = mapped_column(default=0)
    failure: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None]


class LedgerRow(Base):
    """One movement of money; balances are sums. An attempt is credited at most once."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("attempt_id", "kind", name="uq_ledger_attempt_kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"))
    kind: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(8))
    memo: Mapped[str] = mapped_column(String(500), default="")


class SmallBlobRow(Base):
    """Bytes small enough to keep in the database (most results), named by their sha256.

    A file per result cost more than the rest of taking it: a new inode, an fsync, a
    rename. Kept here, a result's bytes are committed with its record, in one transaction.
    Larger ones stay files in the blob folder (see blobs.py).
    """

    __tablename__ = "small_blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
