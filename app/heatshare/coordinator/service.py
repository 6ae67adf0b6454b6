"""What the coordinator does, as functions on one database session at one instant.

Each function runs inside a transaction the caller opens (``db.transaction``) and is given
``now``; it raises :class:`RefusedError` for anything the caller did wrong. The HTTP layer
(``app.py``) and the command line (``cli.py``) both call these, so the rules live once.

Locks (PostgreSQL; SQLite serialises whole transactions instead) are always taken in the
order job → attempt → node, and leasing takes its node first and then only *skips* locked
jobs, so no two transactions wait on each other in a circle.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import cast as cast_sql
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from heatshare.coordinator import tokens
from heatshare.coordinator.db import UtcDateTime
from heatshare.coordinator.models import (
    AccountRow,
    AdminToken,
    AttemptRow,
    BundleRow,
    JobRow,
    LedgerRow,
    Meta,
    NodeRow,
    PairingCodeRow,
    RequesterRow,
    SmallBlobRow,
)
from heatshare.coordinator.settings import Settings
from heatshare.protocol.coordinator_api import (
    NODE_REVOKED,
    Account,
    AttemptState,
    BundleOut,
    Command,
    Earnings,
    EnrolRequest,
    EnrolResponse,
    Failure,
    Heartbeat,
    JobOut,
    JobState,
    JobSubmit,
    Lease,
    LeaseResponse,
    LedgerEntry,
    NodeAttempt,
    NodeAttempts,
    NodeOut,
    Progress,
    ProgressResponse,
    Resources,
    ResultAccepted,
    SandboxKind,
)

log = logging.getLogger("heatshare.coordinator")

DEFAULT_CURRENCY = "EUR"
TRUST_MATCH = 1  # a result confirmed by another node
TRUST_MISMATCH = (
    -5
)  # a result outvoted by two others: a wrong answer costs more than a right one earns
HISTORY_LIMIT = 500

_TERMINAL = {JobState.DONE.value, JobState.FAILED.value, JobState.EXPIRED.value}
_OPEN = [JobState.QUEUED.value, JobState.RUNNING.value, JobState.VALIDATING.value]
# A node never gets a job again while it works on it or once it gave a result for it (so
# a quorum is two different machines); after its lease expired or it failed, it may retry.
_HOLDS_OR_ANSWERED = [
    AttemptState.LEASED.value,
    AttemptState.UPLOADED.value,
    AttemptState.ACCEPTED.value,
    AttemptState.REJECTED.value,
]


class RefusedError(Exception):
    """A request the coordinator refuses: an HTTP status and a sentence for a person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: Integers are stored as signed 64-bit; sizes beyond this are clamped (no machine has 4 EiB).
_MAX_STORED_INT = 2**62


def _clamp(value: int) -> int:
    return max(-_MAX_STORED_INT, min(value, _MAX_STORED_INT))


def _text(value: str) -> str:
    """Text as stored: PostgreSQL refuses NUL characters in text, so they are dropped."""
    return value.replace("\x00", "")


def _not_found(what: str) -> RefusedError:
    return RefusedError(404, f"No {what} with this id is known to you.")


# --- the network --------------------------------------------------------------------------


def network_currency(s: Session) -> str | None:
    row = s.get(Meta, "currency")
    return None if row is None else row.value


def settle_currency(s: Session, wanted: str | None) -> str:
    """The network's one currency: fixed the first time it is set; never silently changed."""
    current = network_currency(s)
    if current is None:
        current = (wanted or DEFAULT_CURRENCY).upper()
        s.add(Meta(key="currency", value=current))
        s.flush()
    elif wanted is not None and wanted.upper() != current:
        raise RefusedError(
            409,
            f"This network's currency is {current}; it cannot change to {wanted.upper()} "
            "(balances would mix currencies).",
        )
    return current


def rotate_admin_token(s: Session, now: datetime) -> str:
    """A new operator token; every earlier one stops working."""
    s.execute(delete(AdminToken))
    token, digest = tokens.new_token(tokens.ADMIN_PREFIX)
    s.add(AdminToken(token_hash=digest, created_at=now))
    return token


# --- who is asking -----------------------------------------------------------------------


def is_admin(s: Session, token: str) -> bool:
    if not token.startswith(tokens.ADMIN_PREFIX):
        return False
    found = s.scalar(select(AdminToken.id).where(AdminToken.token_hash == tokens.digest(token)))
    return found is not None


def node_for_token(s: Session, token: str) -> NodeRow | None:
    """The node of a token, or None; a revoked node's token is refused (raises)."""
    if not token.startswith(tokens.NODE_PREFIX):
        return None
    node = s.scalar(select(NodeRow).where(NodeRow.token_hash == tokens.digest(token)))
    if node is not None and node.revoked_at is not None:
        raise revoked_error(node.revoked_at)
    return node


_NODE_ID_BY_TOKEN = select(NodeRow.id, NodeRow.revoked_at).where(
    NodeRow.token_hash == bindparam("token_hash")
)


def node_id_for_token(s: Session | Connection, token: str) -> int | None:
    """The node id of a token, or None; a revoked node's token is refused (raises)."""
    if not token.startswith(tokens.NODE_PREFIX):
        return None
    row = s.execute(_NODE_ID_BY_TOKEN, {"token_hash": tokens.digest(token)}).one_or_none()
    if row is None:
        return None
    if row.revoked_at is not None:
        raise revoked_error(row.revoked_at)
    return int(row.id)


def revoked_error(revoked_at: datetime) -> RefusedError:
    """The answer to every call of a revoked node: a 401 that says why, for the householder."""
    return RefusedError(
        401,
        f"{NODE_REVOKED} on {revoked_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, so it gets no "
        "more work. What it earned before stays in the ledger; to join again, enrol it with a "
        "new pairing code.",
    )


def requester_for_token(s: Session, token: str) -> RequesterRow | None:
    if not token.startswith(tokens.REQUESTER_PREFIX):
        return None
    return s.scalar(select(RequesterRow).where(RequesterRow.key_hash == tokens.digest(token)))


# --- operator: accounts, pairing codes, requesters ----------------------------------------


def account_out(row: AccountRow) -> Account:
    return Account(
        account_id=row.id, name=row.name, currency=row.currency, created_at=row.created_at
    )


def create_account(s: Session, name: str, now: datetime, currency: str | None = None) -> AccountRow:
    if s.scalar(select(AccountRow.id).where(AccountRow.name == name)) is not None:
        raise RefusedError(409, f"An account named {name!r} exists already.")
    row = AccountRow(name=name, currency=settle_currency(s, currency), created_at=now)
    s.add(row)
    s.flush()
    return row


def account_by_name(s: Session, name: str) -> AccountRow | None:
    return s.scalar(select(AccountRow).where(AccountRow.name == name))


def list_accounts(s: Session) -> list[Account]:
    return [account_out(r) for r in s.scalars(select(AccountRow).order_by(AccountRow.id))]


def create_pairing_code(
    s: Session, account_id: int, ttl_s: int, now: datetime
) -> tuple[str, PairingCodeRow]:
    if s.get(AccountRow, account_id) is None:
        raise _not_found("account")
    code, digest = tokens.new_pairing_code()
    row = PairingCodeRow(
        code_hash=digest,
        account_id=account_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    s.add(row)
    s.flush()
    return code, row


def create_requester(s: Session, name: str, now: datetime) -> tuple[str, RequesterRow]:
    if s.scalar(select(RequesterRow.id).where(RequesterRow.name == name)) is not None:
        raise RefusedError(409, f"A requester named {name!r} exists already.")
    key, digest = tokens.new_token(tokens.REQUESTER_PREFIX)
    row = RequesterRow(name=name, key_hash=digest, created_at=now)
    s.add(row)
    s.flush()
    return key, row


def rotate_requester_key(s: Session, name: str) -> str:
    row = s.scalar(select(RequesterRow).where(RequesterRow.name == name))
    if row is None:
        raise RefusedError(404, f"No requester named {name!r}.")
    key, row.key_hash = tokens.new_token(tokens.REQUESTER_PREFIX)
    return key


# --- operator: nodes -------------------------------------------------------------------------
#
# Revoking a node is two transactions: the first marks it revoked (and bumps the revocation
# marker), the second gives its leases back to their jobs. In this order, no lease can be
# made for the node in between (leasing reads revoked_at under the node's lock), and the
# second keeps the lock order job → attempt → node, which one transaction holding the node
# first would break. Should the second fail, revoking again finishes it.

_REVOCATIONS = "revocations"
_META = cast(Table, Meta.__table__)
_NEW_MARKER = {
    "sqlite": sqlite_insert(_META).on_conflict_do_nothing(),
    "postgresql": postgresql_insert(_META).on_conflict_do_nothing(),
}
_BUMP_MARKER = (
    update(_META)
    .where(_META.c.key == _REVOCATIONS)
    .values(value=cast_sql(cast_sql(_META.c.value, Integer) + 1, String(200)))
)
_MARKER = select(_META.c.value).where(_META.c.key == _REVOCATIONS)
_RELEASED = "Released: the machine was removed from the network by its operator."


def revocation_marker(s: Session | Connection) -> str:
    """A value that changes whenever a node is revoked (one read by primary key)."""
    found: str | None = _conn(s).scalar(_MARKER)
    return found or "0"


def revoked_node_ids(s: Session | Connection) -> set[int]:
    return set(_conn(s).scalars(select(NodeRow.id).where(NodeRow.revoked_at.is_not(None))))


def list_nodes(s: Session, node_id: int | None = None) -> list[NodeOut]:
    """Every node (or one), oldest first, with what it holds and what it earned."""
    leased = (
        select(func.count(AttemptRow.id))
        .where(AttemptRow.node_id == NodeRow.id, AttemptRow.state == AttemptState.LEASED.value)
        .correlate(NodeRow)
        .scalar_subquery()
    )
    earned = (
        select(func.coalesce(func.sum(LedgerRow.amount_minor), 0))
        .where(LedgerRow.node_id == NodeRow.id)
        .correlate(NodeRow)
        .scalar_subquery()
    )
    query = (
        select(NodeRow, AccountRow.name, leased, earned)
        .join(AccountRow, AccountRow.id == NodeRow.account_id)
        .order_by(NodeRow.id)
    )
    if node_id is not None:
        query = query.where(NodeRow.id == node_id)
    return [
        NodeOut(
            node_id=n.id,
            account_id=n.account_id,
            account_name=account_name,
            hostname=n.hostname,
            os=n.os,
            arch=n.arch,
            sandbox=n.sandbox,
            agent_version=n.agent_version,
            enrolled_at=n.enrolled_at,
            last_heartbeat_at=n.last_heartbeat_at,
            state=n.state,
            trust=n.trust,
            leased_attempts=int(n_leased or 0),
            earned_minor=int(n_earned or 0),
            revoked_at=n.revoked_at,
        )
        for n, account_name, n_leased, n_earned in s.execute(query)
    ]


def node_out(s: Session, node_id: int) -> NodeOut:
    found = list_nodes(s, node_id)
    if not found:
        raise _not_found("node")
    return found[0]


def revoke_node(s: Session, node_id: int, now: datetime) -> bool:
    """Mark a node revoked from ``now``; True when it was revoked already (nothing changes).

    Its ledger entries, attempts and row stay: money is never deleted. Once committed,
    :func:`release_node_attempts` gives its leases back, in a transaction of its own.
    """
    if not 0 < node_id <= _MAX_STORED_INT:
        raise _not_found("node")
    # FOR NO KEY UPDATE: inserting an attempt or a credit that names the node need not wait.
    node = s.get(NodeRow, node_id, with_for_update={"key_share": True})
    if node is None:
        raise _not_found("node")
    if node.revoked_at is not None:
        return True
    node.revoked_at = now
    s.flush()
    conn = s.connection()
    # Created first, then bumped: the UPDATE locks the row, so two revocations at once on
    # PostgreSQL both count, and the marker changes after each one commits.
    conn.execute(_NEW_MARKER[conn.dialect.name], {"key": _REVOCATIONS, "value": "0"})
    conn.execute(_BUMP_MARKER)
    log.info("Node %d (%s) was revoked by the operator", node.id, node.hostname)
    return False


_NODE_LEASED = (
    select(AttemptRow.id)
    .where(
        AttemptRow.node_id == bindparam("node_id"),
        AttemptRow.state == AttemptState.LEASED.value,
    )
    .order_by(AttemptRow.id)
)


def release_node_attempts(s: Session | Connection, node_id: int, now: datetime) -> list[int]:
    """Give a revoked node's leases back to their jobs (leasable again at once); their ids.

    Each attempt becomes failed, so nothing it uploads later is taken or credited, and it
    no longer counts against its job's attempts: the job did nothing wrong.
    """
    conn = _conn(s)
    released: list[int] = []
    for attempt_id in list(conn.scalars(_NODE_LEASED, {"node_id": node_id})):
        attempt, job = _lock_attempt_and_job(conn, node_id, attempt_id)
        if attempt.state != AttemptState.LEASED.value:
            continue  # settled meanwhile (a result, a failure, the sweep)
        # Read before the count changes: _with_attempts trusts it to say who else is there.
        attempts = _with_attempts(conn, job, attempt)
        attempt.set(state=AttemptState.FAILED.value, finished_at=now, failure=_RELEASED)
        job.attempts_count -= 1
        _settle_and_store(conn, job, attempts, now)
        released.append(attempt_id)
        log.info("Attempt %d (job %d) released: node %d was revoked", attempt_id, job.id, node_id)
    return released


# --- node: enrolment and heartbeat ---------------------------------------------------------


def enrol(s: Session, request: EnrolRequest, now: datetime, settings: Settings) -> EnrolResponse:
    code = s.scalar(
        select(PairingCodeRow)
        .where(PairingCodeRow.code_hash == tokens.pairing_digest(request.pairing_code))
        .with_for_update()
    )
    if code is None:
        raise RefusedError(
            404,
            "This pairing code is not known to the network. Check it for typing mistakes, "
            "or ask the network's operator for a new one.",
        )
    if code.used_at is not None:
        raise RefusedError(
            409, "This pairing code was used already. Ask the network's operator for a new one."
        )
    if code.expires_at <= now:
        raise RefusedError(
            410, "This pairing code has expired. Ask the network's operator for a new one."
        )
    account = s.get(AccountRow, code.account_id)
    assert account is not None  # a foreign key
    inv = request.inventory
    token, digest = tokens.new_token(tokens.NODE_PREFIX)
    node = NodeRow(
        account_id=account.id,
        token_hash=digest,
        hostname=_text(inv.hostname),
        os=_text(inv.os.lower()),
        arch=_text(inv.arch.lower()),
        cpu_cores=inv.cpu_cores,
        memory_bytes=_clamp(inv.memory_bytes),
        gpu_count=len(inv.gpus),
        gpu_min_memory_bytes=_clamp(min((g.memory_bytes or 0 for g in inv.gpus), default=0)),
        cuda=any(g.cuda for g in inv.gpus),
        sandbox=inv.sandbox.value,
        agent_version=_text(inv.agent_version),
        inventory=inv.model_dump(mode="json"),
        trust=0,
        enrolled_at=now,
        state="idle",
        energy_j_total=0.0,
    )
    s.add(node)
    s.flush()
    code.used_at = now
    code.node_id = node.id
    log.info("Node %d (%s) enrolled into account %r", node.id, inv.hostname, account.name)
    return EnrolResponse(
        node_id=node.id,
        node_token=token,
        account_id=account.id,
        account_name=account.name,
        currency=account.currency,
        heartbeat_interval_s=settings.heartbeat_interval_s,
    )


@dataclass
class Beat:
    """A node's last heartbeat not yet written, with the energy reported since the last write."""

    state: str
    at: datetime
    power_w: float | None
    gpu_temp_c: float | None
    cpu_temp_c: float | None
    energy_j: float

    @classmethod
    def of(cls, beat: Heartbeat, now: datetime) -> Beat:
        t = beat.telemetry
        return cls(beat.state.value, now, t.power_w, t.gpu_temp_c, t.cpu_temp_c, t.energy_j)

    def then(self, later: Beat) -> Beat:
        """This beat followed by ``later``: the later state, the energy of both."""
        later.energy_j += self.energy_j
        return later


_NODES = cast(Table, NodeRow.__table__)
# Built once: heartbeats are written many at a time in one executemany.
_WRITE_BEATS = (
    update(_NODES)
    # A revoked node's last beats (its id may be remembered for up to a second more on
    # other app servers) are not written: its row stays as it was when it was removed.
    .where(_NODES.c.id == bindparam("b_id"), _NODES.c.revoked_at.is_(None))
    .values(
        state=bindparam("b_state"),
        last_heartbeat_at=bindparam("b_at"),
        power_w=bindparam("b_power_w"),
        gpu_temp_c=bindparam("b_gpu_temp_c"),
        cpu_temp_c=bindparam("b_cpu_temp_c"),
        energy_j_total=_NODES.c.energy_j_total + bindparam("b_energy_j"),
    )
)


def write_heartbeats(s: Session, beats: dict[int, Beat]) -> None:
    """Store nodes' heartbeats (node id → beat) in one statement; ids in order (lock order)."""
    if not beats:
        return
    s.connection().execute(
        _WRITE_BEATS,
        [
            {
                "b_id": node_id,
                "b_state": b.state,
                "b_at": b.at,
                "b_power_w": b.power_w,
                "b_gpu_temp_c": b.gpu_temp_c,
                "b_cpu_temp_c": b.cpu_temp_c,
                "b_energy_j": b.energy_j,
            }
            for node_id, b in sorted(beats.items())
        ],
    )


def heartbeat_commands(s: Session, node_id: int, running_attempts: list[int]) -> list[Command]:
    """What a node must do about the attempts it says it runs (cancel those it no longer holds)."""
    commands: list[Command] = []
    if running_attempts:
        # An id beyond what is stored cannot be an attempt; it is answered as unknown.
        ids = set(running_attempts)
        storable = {i for i in ids if 0 < i <= _MAX_STORED_INT}
        rows = s.execute(
            select(AttemptRow.id, AttemptRow.state, JobRow.state)
            .join(JobRow, JobRow.id == AttemptRow.job_id)
            .where(AttemptRow.id.in_(storable), AttemptRow.node_id == node_id)
        ).all()
        found = {attempt_id: (a_state, j_state) for attempt_id, a_state, j_state in rows}
        for attempt_id in sorted(ids):
            reason = _stop_reason(*found.get(attempt_id, (None, None)))
            if reason:
                commands.append(
                    Command(kind="cancel_attempt", attempt_id=attempt_id, reason=reason)
                )
    return commands


def _stop_reason(attempt_state: str | None, job_state: str | None) -> str:
    """Why a node should stop running an attempt, or "" when it should go on."""
    if attempt_state is None:
        return "The network does not know this attempt."
    if attempt_state == AttemptState.EXPIRED.value:
        return "The lease ran out; the job went to another machine or was finished."
    if attempt_state == AttemptState.FAILED.value:
        return "This attempt was reported as failed."
    if attempt_state == AttemptState.LEASED.value and job_state in _TERMINAL:
        return f"The job is {job_state}."
    return ""


# --- leases --------------------------------------------------------------------------------
#
# Leasing, results, failures, progress and the sweep are SQLAlchemy Core statements, built
# once, on plain tuples: they run hundreds of times a second, and the ORM's unit of work
# (identity map, flush, reloading a job's attempts) cost several times the SQL itself.

_JOBS = cast(Table, JobRow.__table__)
_ATTEMPTS = cast(Table, AttemptRow.__table__)
_LEDGER = cast(Table, LedgerRow.__table__)


def _conn(s: Session | Connection) -> Connection:
    return s.connection() if isinstance(s, Session) else s


@dataclass(slots=True)
class _Job:
    """The columns of a job that settling reads or changes."""

    id: int
    state: str
    wanted: int
    attempts_count: int
    max_attempts: int
    replication: int
    deadline: datetime | None
    price_minor: int
    currency: str
    label: str
    result_sha256: str | None
    finished_at: datetime | None
    failure: str | None


_JOB_COLUMNS = [_JOBS.c[f] for f in _Job.__dataclass_fields__]
_LEASE_COLUMNS = [
    _JOBS.c.bundle_sha256,
    _JOBS.c.bundle_size,
    _JOBS.c.command,
    _JOBS.c.env,
    _JOBS.c.resources,
]


@dataclass(slots=True)
class _Attempt:
    """The columns of an attempt that settling reads or changes; ``dirty`` when changed."""

    id: int
    job_id: int
    node_id: int
    state: str
    leased_at: datetime
    lease_expires_at: datetime
    finished_at: datetime | None
    result_sha256: str | None
    result_size: int | None
    credited_minor: int
    failure: str | None
    exit_code: int | None
    dirty: bool = False

    def set(self, **changes: object) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        self.dirty = True


_ATTEMPT_COLUMNS = [_ATTEMPTS.c[f] for f in _Attempt.__dataclass_fields__ if f != "dirty"]

_JOB_ATTEMPTS = (
    select(*_ATTEMPT_COLUMNS)
    .where(_ATTEMPTS.c.job_id == bindparam("job_id"))
    .order_by(_ATTEMPTS.c.id)
    .with_for_update()
)
_WRITE_JOB = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("j_id"))
    .values(
        state=bindparam("j_state"),
        wanted=bindparam("j_wanted"),
        attempts_count=bindparam("j_attempts_count"),
        result_sha256=bindparam("j_result_sha256"),
        finished_at=bindparam("j_finished_at", type_=UtcDateTime),
        failure=bindparam("j_failure"),
    )
)
# Not the lease's expiry or progress: those belong to the progress route, which locks only
# the attempt; everything written here changes only under the job's lock.
_WRITE_ATTEMPT = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("a_id"))
    .values(
        state=bindparam("a_state"),
        finished_at=bindparam("a_finished_at", type_=UtcDateTime),
        result_sha256=bindparam("a_result_sha256"),
        result_size=bindparam("a_result_size"),
        credited_minor=bindparam("a_credited_minor"),
        failure=bindparam("a_failure"),
        exit_code=bindparam("a_exit_code"),
    )
)
# The node's account is read in the same statement: a credit is one INSERT.
_CREDIT = insert(_LEDGER).from_select(
    ["at", "account_id", "node_id", "job_id", "attempt_id", "kind", "amount_minor", "currency",
     "memo"],
    select(
        bindparam("at", type_=UtcDateTime),
        _NODES.c.account_id,
        _NODES.c.id,
        bindparam("job_id", type_=Integer),
        bindparam("attempt_id", type_=Integer),
        literal("credit", String),
        bindparam("amount_minor", type_=Integer),
        bindparam("currency", type_=String),
        bindparam("memo", type_=String),
    ).where(_NODES.c.id == bindparam("node_id")),
)  # fmt: skip
_ADJUST_TRUST = (
    update(_NODES)
    .where(_NODES.c.id == bindparam("t_id"))
    .values(trust=_NODES.c.trust + bindparam("t_delta"))
)


@dataclass(slots=True)
class _Changes:
    """What settling a job decided beyond its own row: credits and trust."""

    credits: list[_Attempt] = field(default_factory=list)
    trust: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _job_attempts(conn: Connection, job_id: int) -> list[_Attempt]:
    return [_Attempt(*row) for row in conn.execute(_JOB_ATTEMPTS, {"job_id": job_id})]


def _store(
    conn: Connection, job: _Job, attempts: list[_Attempt], changes: _Changes, now: datetime
) -> None:
    """Write a settled job back: its row, the attempts it changed, credits, then trust."""
    conn.execute(
        _WRITE_JOB,
        {
            "j_id": job.id,
            "j_state": job.state,
            "j_wanted": job.wanted,
            "j_attempts_count": job.attempts_count,
            "j_result_sha256": job.result_sha256,
            "j_finished_at": job.finished_at,
            "j_failure": job.failure,
        },
    )
    changed = [
        {
            "a_id": a.id,
            "a_state": a.state,
            "a_finished_at": a.finished_at,
            "a_result_sha256": a.result_sha256,
            "a_result_size": a.result_size,
            "a_credited_minor": a.credited_minor,
            "a_failure": a.failure,
            "a_exit_code": a.exit_code,
        }
        for a in attempts
        if a.dirty
    ]
    if changed:
        conn.execute(_WRITE_ATTEMPT, changed)
    if changes.credits:
        label = f" ({job.label})" if job.label else ""
        conn.execute(
            _CREDIT,
            [
                {
                    "at": now,
                    "node_id": a.node_id,
                    "job_id": job.id,
                    "attempt_id": a.id,
                    "amount_minor": a.credited_minor,
                    "currency": job.currency,
                    "memo": f"Job {job.id}{label}: result accepted",
                }
                for a in changes.credits
            ],
        )
    if changes.trust:
        # Node rows locked in id order, as the heartbeat writer locks them: no circular wait.
        conn.execute(
            _ADJUST_TRUST,
            [{"t_id": node_id, "t_delta": d} for node_id, d in sorted(changes.trust.items())],
        )


def _settle_and_store(conn: Connection, job: _Job, attempts: list[_Attempt], now: datetime) -> None:
    changes = _Changes()
    _settle(job, attempts, now, changes)
    _store(conn, job, attempts, changes, now)


_SWEEP_JOBS = (
    select(*_JOB_COLUMNS)
    .where(
        _JOBS.c.state.in_(_OPEN),
        or_(
            _JOBS.c.id.in_(
                select(_ATTEMPTS.c.job_id).where(
                    _ATTEMPTS.c.state == AttemptState.LEASED.value,
                    _ATTEMPTS.c.lease_expires_at <= bindparam("now", type_=UtcDateTime),
                )
            ),
            (_JOBS.c.deadline.is_not(None))
            & (_JOBS.c.deadline <= bindparam("now", type_=UtcDateTime)),
        ),
    )
    .order_by(_JOBS.c.id)
    .with_for_update(skip_locked=True)
)


def sweep(s: Session | Connection, now: datetime) -> int:
    """Settle jobs whose leases ran out or whose deadline passed; returns how many.

    Runs before leasing (so an expired lease is leasable at once) and in the background.
    Jobs another transaction holds are skipped: that one settles them, or the next sweep.
    """
    conn = _conn(s)
    jobs = [_Job(*row) for row in conn.execute(_SWEEP_JOBS, {"now": now})]
    for job in jobs:
        attempts = _job_attempts(conn, job.id)
        for attempt in attempts:
            if attempt.state == AttemptState.LEASED.value and attempt.lease_expires_at <= now:
                attempt.set(
                    state=AttemptState.EXPIRED.value,
                    finished_at=now,
                    failure="The lease ran out without progress.",
                )
                log.info("Lease of attempt %d (job %d) expired", attempt.id, job.id)
        _settle_and_store(conn, job, attempts, now)
    return len(jobs)


_EXPIRED_LEASE = (
    select(_ATTEMPTS.c.id)
    .where(
        _ATTEMPTS.c.state == AttemptState.LEASED.value,
        _ATTEMPTS.c.lease_expires_at <= bindparam("now", type_=UtcDateTime),
    )
    .limit(1)
)
_OVERDUE_JOB = (
    select(_JOBS.c.id)
    .where(
        _JOBS.c.finished_at.is_(None),  # open: _finish sets it, nothing else
        _JOBS.c.deadline.is_not(None),
        _JOBS.c.deadline <= bindparam("now", type_=UtcDateTime),
    )
    .limit(1)
)


def sweep_due(s: Session | Connection, now: datetime) -> bool:
    """Whether :func:`sweep` has anything to do (a read, for a quick answer before leasing)."""
    conn = _conn(s)
    if conn.scalar(_EXPIRED_LEASE, {"now": now}) is not None:
        return True
    return conn.scalar(_OVERDUE_JOB, {"now": now}) is not None


_IN_PROGRESS = select(func.count(_ATTEMPTS.c.id)).where(
    _ATTEMPTS.c.node_id == bindparam("node_id"), _ATTEMPTS.c.state == AttemptState.LEASED.value
)
_NODE_FOR_LEASE = (
    select(
        _IN_PROGRESS.scalar_subquery(),
        _NODES.c.sandbox,
        _NODES.c.cpu_cores,
        _NODES.c.memory_bytes,
        _NODES.c.gpu_count,
        _NODES.c.gpu_min_memory_bytes,
        _NODES.c.os,
        _NODES.c.arch,
        _NODES.c.revoked_at,
    )
    .where(_NODES.c.id == bindparam("node_id"))
    # FOR NO KEY UPDATE: a credit's foreign key to the node need not wait for it.
    .with_for_update(key_share=True, of=_NODES)
)
# Built once (building it on each lease was a visible part of a lease's CPU time).
_LEASABLE = (
    select(*_JOB_COLUMNS, *_LEASE_COLUMNS)
    .where(
        # Only open jobs want attempts (_settle zeroes it otherwise). A literal 0, not a bound
        # parameter: the planner then sees that the partial index ix_jobs_wanted_id applies
        # (PostgreSQL's generic plan of a prepared statement cannot know what $1 will be).
        _JOBS.c.wanted > literal_column("0"),
        _JOBS.c.attempts_count < _JOBS.c.max_attempts,
        or_(_JOBS.c.deadline.is_(None), _JOBS.c.deadline > bindparam("now", type_=UtcDateTime)),
        _JOBS.c.need_cpu_cores <= bindparam("cpu_cores"),
        _JOBS.c.need_memory_bytes <= bindparam("memory_bytes"),
        _JOBS.c.need_gpus <= bindparam("gpu_count"),
        or_(
            _JOBS.c.need_gpus == 0,
            _JOBS.c.need_gpu_memory_bytes <= bindparam("gpu_min_memory_bytes"),
        ),
        _JOBS.c.need_os == bindparam("os"),
        or_(_JOBS.c.need_arch.is_(None), _JOBS.c.need_arch == bindparam("arch")),
        # A job nobody tried yet needs no look at the attempts; written as OR, PostgreSQL
        # probes the attempts of each candidate job (a few index reads) instead of joining
        # against all attempts, which grows with every job ever leased.
        (_JOBS.c.attempts_count == literal_column("0"))
        | ~exists(
            select(_ATTEMPTS.c.id).where(
                _ATTEMPTS.c.job_id == _JOBS.c.id,
                _ATTEMPTS.c.node_id == bindparam("node_id"),
                # Equalities, not IN: an IN list is expanded anew on every execution.
                or_(*(_ATTEMPTS.c.state == state for state in _HOLDS_OR_ANSWERED)),
            )
        ),
    )
    .order_by(_JOBS.c.id)
    .limit(bindparam("room"))
    .with_for_update(skip_locked=True, of=_JOBS)
)
_NEW_ATTEMPT = insert(_ATTEMPTS).values(
    job_id=bindparam("job_id"),
    node_id=bindparam("node_id"),
    state=AttemptState.LEASED.value,
    leased_at=bindparam("now", type_=UtcDateTime),
    lease_expires_at=bindparam("expires", type_=UtcDateTime),
    progress=0.0,
    progress_message="",
    credited_minor=0,
)
_N_JOB = len(_JOB_COLUMNS)


def lease(
    s: Session | Connection, node_id: int, max_jobs: int, now: datetime, settings: Settings
) -> LeaseResponse:
    """Up to ``max_jobs`` jobs for a node; refuses (raises) before writing anything."""
    conn = _conn(s)
    # Locking the node serialises one node's own lease calls, so its limit holds.
    node = conn.execute(_NODE_FOR_LEASE, {"node_id": node_id}).one_or_none()
    if node is None:
        raise RefusedError(401, "This call needs a valid node token (Authorization: Bearer …).")
    if node.revoked_at is not None:
        # Read under the node's lock: no lease is made after the revocation is committed,
        # whatever an app server still remembers of the token.
        raise revoked_error(node.revoked_at)
    if node.sandbox == SandboxKind.NONE.value:
        raise RefusedError(
            403,
            "This machine has no job sandbox, so the network gives it no work. "
            "Install bubblewrap and enrol again.",
        )
    room = min(max_jobs, settings.max_in_progress_per_node - (node[0] or 0))
    if room <= 0:
        return LeaseResponse(retry_after_s=settings.retry_after_s)
    rows = conn.execute(
        _LEASABLE,
        {
            "node_id": node_id,
            "now": now,
            "cpu_cores": node.cpu_cores,
            "memory_bytes": node.memory_bytes,
            "gpu_count": node.gpu_count,
            "gpu_min_memory_bytes": node.gpu_min_memory_bytes,
            "os": node.os,
            "arch": node.arch,
            "room": room,
        },
    ).all()
    leases: list[Lease] = []
    expires = now + timedelta(seconds=settings.lease_s)
    for row in rows:
        job = _Job(*row[:_N_JOB])
        bundle_sha256, bundle_size, command, env, resources = row[_N_JOB:]
        inserted = conn.execute(
            _NEW_ATTEMPT, {"job_id": job.id, "node_id": node_id, "now": now, "expires": expires}
        )
        key = inserted.inserted_primary_key
        assert key is not None
        attempt_id = int(key[0])
        job.attempts_count += 1
        if job.attempts_count == 1:
            # Its first attempt: nothing else to read (the common case, and the cheap one).
            attempts = [
                _Attempt(attempt_id, job.id, node_id, AttemptState.LEASED.value, now, expires,
                         None, None, None, 0, None, None)
            ]  # fmt: skip
        else:
            attempts = _job_attempts(conn, job.id)
        _settle_and_store(conn, job, attempts, now)
        leases.append(
            Lease(
                attempt_id=attempt_id,
                job_id=job.id,
                bundle_sha256=bundle_sha256,
                bundle_size=bundle_size,
                bundle_url=f"/v1/bundles/{bundle_sha256}",
                command=command,
                env=env,
                resources=Resources.model_validate(resources),
                price_minor=job.price_minor,
                currency=job.currency,
                lease_expires_at=expires,
                deadline=job.deadline,
                lease_s=settings.lease_s,
                label=job.label,
            )
        )
        log.debug("Job %d leased to node %d as attempt %d", job.id, node_id, attempt_id)
    return LeaseResponse(leases=leases, retry_after_s=0 if leases else settings.retry_after_s)


_OWN_ATTEMPT_JOB = select(_ATTEMPTS.c.job_id).where(
    _ATTEMPTS.c.id == bindparam("attempt_id"), _ATTEMPTS.c.node_id == bindparam("node_id")
)


def own_attempt(s: Session | Connection, node_id: int, attempt_id: int) -> int:
    """The job of one of this node's attempts (404 for any other attempt)."""
    job_id: int | None = s.scalar(_OWN_ATTEMPT_JOB, {"attempt_id": attempt_id, "node_id": node_id})
    if job_id is None:
        raise _not_found("attempt")
    return job_id


# One statement for the job and the attempt; PostgreSQL locks a join's rows in the order of
# its FROM list, so job before attempt, the lock order.
_LOCK_JOB_AND_ATTEMPT = (
    select(*_JOB_COLUMNS, *_ATTEMPT_COLUMNS)
    .select_from(_JOBS.join(_ATTEMPTS, _ATTEMPTS.c.job_id == _JOBS.c.id))
    .where(_ATTEMPTS.c.id == bindparam("attempt_id"), _ATTEMPTS.c.node_id == bindparam("node_id"))
    .with_for_update()
)


def _lock_attempt_and_job(conn: Connection, node_id: int, attempt_id: int) -> tuple[_Attempt, _Job]:
    """One of this node's attempts and its job, locked (404 for any other attempt)."""
    row = conn.execute(
        _LOCK_JOB_AND_ATTEMPT, {"attempt_id": attempt_id, "node_id": node_id}
    ).one_or_none()
    if row is None:
        raise _not_found("attempt")
    return _Attempt(*row[_N_JOB:]), _Job(*row[:_N_JOB])


def _with_attempts(conn: Connection, job: _Job, attempt: _Attempt) -> list[_Attempt]:
    """The job's attempts, ``attempt`` being the changed one (read only when there are more)."""
    if job.attempts_count <= 1:
        return [attempt]
    return [attempt if a.id == attempt.id else a for a in _job_attempts(conn, job.id)]


_PROGRESS_ATTEMPT = (
    select(_ATTEMPTS.c.state, _ATTEMPTS.c.lease_expires_at)
    .where(_ATTEMPTS.c.id == bindparam("attempt_id"))
    .with_for_update()
)
_JOB_STATE = select(_JOBS.c.state).where(_JOBS.c.id == bindparam("job_id"))
_WRITE_PROGRESS = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("p_id"))
    .values(
        lease_expires_at=bindparam("p_expires", type_=UtcDateTime),
        progress=bindparam("p_fraction"),
        progress_message=bindparam("p_message"),
    )
)


def progress(
    s: Session | Connection,
    node_id: int,
    attempt_id: int,
    report: Progress,
    *,
    now: datetime,
    settings: Settings,
) -> ProgressResponse:
    conn = _conn(s)
    job_id = own_attempt(conn, node_id, attempt_id)
    state, expires = conn.execute(_PROGRESS_ATTEMPT, {"attempt_id": attempt_id}).one()
    job_state = conn.scalar(_JOB_STATE, {"job_id": job_id})
    holds = state == AttemptState.LEASED.value and job_state not in _TERMINAL
    if holds:
        expires = now + timedelta(seconds=settings.lease_s)
        conn.execute(
            _WRITE_PROGRESS,
            {
                "p_id": attempt_id,
                "p_expires": expires,
                "p_fraction": report.fraction,
                "p_message": _text(report.message),
            },
        )
    stop = state not in (
        AttemptState.LEASED.value,
        AttemptState.UPLOADED.value,
        AttemptState.ACCEPTED.value,
    ) or (state == AttemptState.LEASED.value and not holds)
    return ProgressResponse(lease_expires_at=expires, cancel=stop)


def record_result(
    s: Session | Connection,
    node_id: int,
    attempt_id: int,
    sha256: str,
    *,
    size: int,
    now: datetime,
    keep: Callable[[], object] | None = None,
) -> ResultAccepted:
    """Take a result whose bytes are in the blob store under ``sha256``, or will be once
    ``keep()`` returns: it is called after the checks, before the database names the bytes.

    Refuses (raises) before writing anything.
    """
    conn = _conn(s)
    attempt, job = _lock_attempt_and_job(conn, node_id, attempt_id)
    if attempt.result_sha256 is not None:
        if attempt.result_sha256 != sha256:
            raise RefusedError(
                409,
                "A different result was uploaded for this attempt already; "
                "an attempt has one result.",
            )
        return _result_answer(attempt, job)
    if attempt.state == AttemptState.FAILED.value and attempt.failure == _RELEASED:
        raise RefusedError(409, f"{_RELEASED[:-1]}, so this attempt takes no result now.")
    if attempt.state == AttemptState.FAILED.value:
        raise RefusedError(409, "This attempt was reported as failed; it cannot have a result now.")
    if keep is not None:
        keep()
    attempt.set(result_sha256=sha256, result_size=size, finished_at=now)
    if job.state in _TERMINAL:
        attempt.set(
            state=AttemptState.REJECTED.value,
            failure=f"Late: the job was {job.state} before this result arrived; no credit.",
        )
        log.info(
            "Attempt %d: result after job %d was %s; not credited", attempt.id, job.id, job.state
        )
        _store(conn, job, [attempt], _Changes(), now)
    else:
        attempt.set(state=AttemptState.UPLOADED.value)
        _settle_and_store(conn, job, _with_attempts(conn, job, attempt), now)
    return _result_answer(attempt, job)


def _result_answer(attempt: _Attempt, job: _Job) -> ResultAccepted:
    assert attempt.result_sha256 is not None
    status = {
        AttemptState.ACCEPTED.value: "accepted",
        AttemptState.UPLOADED.value: "pending_validation",
    }.get(attempt.state, "rejected")
    return ResultAccepted(
        attempt_id=attempt.id,
        job_id=job.id,
        result_sha256=attempt.result_sha256,
        status=status,
        credited_minor=attempt.credited_minor,
        currency=job.currency,
    )


def record_failure(
    s: Session | Connection, node_id: int, attempt_id: int, failure: Failure, now: datetime
) -> NodeAttempt:
    """The node says an attempt failed; refuses (raises) before writing anything."""
    conn = _conn(s)
    attempt, job = _lock_attempt_and_job(conn, node_id, attempt_id)
    if attempt.state == AttemptState.LEASED.value:
        tail = failure.log_tail[-4000:]
        attempt.set(
            state=AttemptState.FAILED.value,
            finished_at=now,
            exit_code=None if failure.exit_code is None else _clamp(failure.exit_code),
            failure=_text(failure.reason + (f"\n{tail}" if tail else "")),
        )
        log.info("Attempt %d (job %d) failed: %s", attempt.id, job.id, failure.reason)
        _settle_and_store(conn, job, _with_attempts(conn, job, attempt), now)
    elif attempt.state in (AttemptState.UPLOADED.value, AttemptState.ACCEPTED.value):
        raise RefusedError(409, "This attempt has a result already; it cannot fail now.")
    return _attempt_out(attempt, job.price_minor)


_SMALL_BLOBS = cast(Table, SmallBlobRow.__table__)
_SMALL_BLOB = select(_SMALL_BLOBS.c.data).where(_SMALL_BLOBS.c.sha256 == bindparam("sha256"))
_KEEP_SMALL_BLOB = {
    "sqlite": sqlite_insert(_SMALL_BLOBS).on_conflict_do_nothing(),
    "postgresql": postgresql_insert(_SMALL_BLOBS).on_conflict_do_nothing(),
}


def keep_small_blob(s: Session | Connection, sha256: str, data: bytes, now: datetime) -> None:
    """Keep bytes in the database under their sha256 (already there: nothing to do)."""
    conn = _conn(s)
    conn.execute(
        _KEEP_SMALL_BLOB[conn.dialect.name],
        {"sha256": sha256, "size": len(data), "data": data, "created_at": now},
    )


def small_blob(s: Session | Connection, sha256: str) -> bytes | None:
    found: bytes | None = _conn(s).scalar(_SMALL_BLOB, {"sha256": sha256})
    return found


_ANALYZED_TABLES = ("jobs", "attempts")
# Changed rows since the last ANALYZE beyond which the planner's picture is too old: a
# burst of submissions left it planning the lease query for a nearly empty table (tens of
# milliseconds a lease instead of a fraction of one). Autovacuum would catch up within a
# minute or so; leasing should not wait that long.
_STALE_STATISTICS = text(
    "SELECT relname FROM pg_stat_user_tables WHERE relname IN ('jobs', 'attempts') "
    "AND n_mod_since_analyze > GREATEST(500, n_live_tup / 5) ORDER BY relname"
)
_ANALYZE_LOCK_KEY = 0x4845_4155  # one app server at a time


def refresh_statistics(s: Session | Connection) -> list[str]:
    """PostgreSQL: ANALYZE the leasing tables when they changed much since; returns which."""
    conn = _conn(s)
    if conn.dialect.name != "postgresql":
        return []  # SQLite plans the lease query well without statistics
    if not conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _ANALYZE_LOCK_KEY}):
        return []  # another app server is at it
    stale = [name for name in conn.scalars(_STALE_STATISTICS) if name in _ANALYZED_TABLES]
    for name in stale:
        conn.exec_driver_sql(f"ANALYZE {name}")  # a name from the fixed tuple above
    return stale


# --- settling a job: the one place that decides its state -------------------------------


@dataclass
class _Tally:
    active: list[_Attempt]
    waiting: list[_Attempt]  # results not yet accepted or rejected
    accepted: list[_Attempt]


def _settle(job: _Job, attempts: list[_Attempt], now: datetime, changes: _Changes) -> None:
    """Recount a (locked) job after any change: validate results, expire, fail, or reopen.

    ``attempts`` are all of the job's attempts as they are now (changes not yet written);
    what is decided is left in ``job``, ``attempts`` and ``changes`` for :func:`_store`.
    """
    if job.state in _TERMINAL:
        job.wanted = 0
        return
    tally = _Tally(
        active=[a for a in attempts if a.state == AttemptState.LEASED.value],
        waiting=[a for a in attempts if a.state == AttemptState.UPLOADED.value],
        accepted=[a for a in attempts if a.state == AttemptState.ACCEPTED.value],
    )
    if job.deadline is not None and job.deadline <= now:
        _finish(job, tally, JobState.EXPIRED, now=now, why="The deadline passed before a result.")
        return
    winners = _winners(job, tally.waiting + tally.accepted)
    if winners:
        _conclude(job, tally, winners, now, changes)
        return
    results = len(tally.waiting)
    # Replication 2 needs two agreeing machines: two attempts while none has answered, then
    # one more at a time (a second opinion, or a tie-breaker after a disagreement).
    needed = 2 if job.replication > 1 and results == 0 else 1
    job.wanted = max(0, needed - len(tally.active))
    if job.wanted > 0 and job.attempts_count >= job.max_attempts:
        job.wanted = 0
        if not tally.active:
            why = (
                f"The results of {results} machines disagreed and no attempts are left."
                if results > 1
                else f"No valid result after {job.attempts_count} attempts."
            )
            _finish(job, tally, JobState.FAILED, now=now, why=_last_failure(attempts) or why)
            return
    if results:
        job.state = JobState.VALIDATING.value
    elif tally.active:
        job.state = JobState.RUNNING.value
    else:
        job.state = JobState.QUEUED.value


def _conclude(
    job: _Job, tally: _Tally, winners: list[_Attempt], now: datetime, changes: _Changes
) -> None:
    """The job is done: credit the winners once, reject the rest."""
    for attempt in winners:
        if attempt.state != AttemptState.ACCEPTED.value:
            _accept(job, attempt, changes)
    job.result_sha256 = winners[0].result_sha256
    for attempt in (a for a in tally.waiting if a not in winners):
        if job.replication > 1 and attempt.result_sha256 != job.result_sha256:
            attempt.set(
                state=AttemptState.REJECTED.value,
                failure="Outvoted: two other machines agreed on a different result.",
            )
            changes.trust[attempt.node_id] += TRUST_MISMATCH
            log.info("Attempt %d (job %d): result outvoted; no credit", attempt.id, job.id)
        else:
            attempt.set(
                state=AttemptState.REJECTED.value,
                failure="Another attempt's result was accepted first; no credit.",
            )
    if job.replication > 1:
        for attempt in winners:
            changes.trust[attempt.node_id] += TRUST_MATCH
    tally.waiting = []
    _finish(job, tally, JobState.DONE, now=now, why=None)


def _winners(job: _Job, results: list[_Attempt]) -> list[_Attempt]:
    """The attempts whose result wins: any one for replication 1, else two machines agreeing."""
    if not results:
        return []
    if job.replication <= 1:
        return [min(results, key=lambda a: a.id)]
    by_sha: dict[str, list[_Attempt]] = defaultdict(list)
    for attempt in sorted(results, key=lambda a: a.id):
        assert attempt.result_sha256 is not None
        by_sha[attempt.result_sha256].append(attempt)
    for group in by_sha.values():
        # One attempt per machine: the same machine twice is not a quorum, nor paid twice.
        first_per_node = {a.node_id: a for a in reversed(group)}
        if len(first_per_node) >= job.replication:
            return sorted(first_per_node.values(), key=lambda a: a.id)
    return []


def _last_failure(attempts: list[_Attempt]) -> str | None:
    failed = [a for a in attempts if a.state == AttemptState.FAILED.value and a.failure]
    if not failed:
        return None
    reason = (failed[-1].failure or "").splitlines()[0]
    return f"No attempt succeeded; the last said: {reason}"


def _finish(job: _Job, tally: _Tally, state: JobState, *, now: datetime, why: str | None) -> None:
    job.state = state.value
    job.wanted = 0
    job.finished_at = now
    job.failure = why
    for attempt in tally.active:
        attempt.set(
            state=AttemptState.EXPIRED.value,
            finished_at=now,
            failure=f"Stopped: the job is {state.value}.",
        )
    for attempt in tally.waiting:
        attempt.set(
            state=AttemptState.REJECTED.value, failure=f"Not validated: the job is {state.value}."
        )
    # Each job done is routine (hundreds a second); one that failed or expired is news.
    log.log(
        logging.DEBUG if state is JobState.DONE else logging.INFO,
        "Job %d is %s",
        job.id,
        state.value,
    )


def _accept(job: _Job, attempt: _Attempt, changes: _Changes) -> None:
    attempt.set(state=AttemptState.ACCEPTED.value, credited_minor=job.price_minor)
    changes.credits.append(attempt)
    log.debug(
        "Attempt %d (job %d) accepted; node %d credited %d",
        attempt.id,
        job.id,
        attempt.node_id,
        job.price_minor,
    )


# --- node: its own view --------------------------------------------------------------------


def _attempt_out(a: AttemptRow | _Attempt, price_minor: int) -> NodeAttempt:
    return NodeAttempt(
        attempt_id=a.id,
        job_id=a.job_id,
        state=AttemptState(a.state),
        leased_at=a.leased_at,
        finished_at=a.finished_at,
        price_minor=price_minor,
        credited_minor=a.credited_minor,
    )


def node_attempts(s: Session, node: NodeRow) -> NodeAttempts:
    rows = s.execute(
        select(AttemptRow, JobRow.price_minor)
        .join(JobRow, JobRow.id == AttemptRow.job_id)
        .where(AttemptRow.node_id == node.id)
        .order_by(AttemptRow.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    return NodeAttempts(attempts=[_attempt_out(a, price) for a, price in rows])


def earnings(s: Session, node: NodeRow) -> Earnings:
    account = s.get(AccountRow, node.account_id)
    assert account is not None
    node_balance = s.scalar(
        select(func.coalesce(func.sum(LedgerRow.amount_minor), 0)).where(
            LedgerRow.node_id == node.id
        )
    )
    account_balance = s.scalar(
        select(func.coalesce(func.sum(LedgerRow.amount_minor), 0)).where(
            LedgerRow.account_id == account.id
        )
    )
    rows = s.scalars(
        select(LedgerRow)
        .where(
            or_(
                LedgerRow.node_id == node.id,
                (LedgerRow.account_id == account.id) & LedgerRow.node_id.is_(None),
            )
        )
        .order_by(LedgerRow.id.desc())
        .limit(HISTORY_LIMIT)
    )
    return Earnings(
        node_id=node.id,
        account_id=account.id,
        currency=account.currency,
        node_balance_minor=int(node_balance or 0),
        account_balance_minor=int(account_balance or 0),
        entries=[
            LedgerEntry(
                entry_id=r.id,
                at=r.at,
                amount_minor=r.amount_minor,
                kind=r.kind,
                job_id=r.job_id,
                attempt_id=r.attempt_id,
                node_id=r.node_id,
                memo=r.memo,
            )
            for r in rows
        ],
    )


def node_may_read_bundle(s: Session, node: NodeRow, sha256: str) -> bool:
    found = s.scalar(
        select(AttemptRow.id)
        .join(JobRow, JobRow.id == AttemptRow.job_id)
        .where(
            AttemptRow.node_id == node.id,
            AttemptRow.state == AttemptState.LEASED.value,
            JobRow.bundle_sha256 == sha256,
        )
        .limit(1)
    )
    return found is not None


# --- requester -----------------------------------------------------------------------------


def add_bundle(
    s: Session, requester: RequesterRow, sha256: str, size: int, now: datetime
) -> BundleOut:
    row = s.scalar(
        select(BundleRow).where(BundleRow.requester_id == requester.id, BundleRow.sha256 == sha256)
    )
    if row is None:
        s.add(BundleRow(requester_id=requester.id, sha256=sha256, size=size, created_at=now))
    return BundleOut(sha256=sha256, size=size)


def requester_bundle(s: Session, requester: RequesterRow, sha256: str) -> BundleRow | None:
    return s.scalar(
        select(BundleRow).where(BundleRow.requester_id == requester.id, BundleRow.sha256 == sha256)
    )


def submit_job(
    s: Session, requester: RequesterRow, submit: JobSubmit, now: datetime, currency: str
) -> JobOut:
    bundle = requester_bundle(s, requester, submit.bundle_sha256)
    if bundle is None:
        raise RefusedError(
            404,
            "No bundle with this sha256 was uploaded by you; upload it first (POST /v1/bundles).",
        )
    deadline = submit.deadline
    if deadline is not None:
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)
        try:
            deadline = deadline.astimezone(UTC)
        except OverflowError:
            raise RefusedError(400, "The deadline is not a time this coordinator keeps.") from None
        if deadline <= now:
            raise RefusedError(400, "The deadline is in the past.")
    r = submit.resources
    job = JobRow(
        requester_id=requester.id,
        label=_text(submit.label),
        bundle_sha256=bundle.sha256,
        bundle_size=bundle.size,
        command=list(submit.command),
        env=dict(submit.env),
        resources=r.model_dump(mode="json"),
        need_cpu_cores=r.cpu_cores,
        need_memory_bytes=r.memory_bytes,
        need_gpus=r.gpus,
        need_gpu_memory_bytes=r.gpu_memory_bytes,
        need_os=_text(r.os.lower()),
        need_arch=_text(r.arch.lower()) if r.arch else None,
        price_minor=submit.price_minor,
        currency=currency,
        replication=submit.replication,
        max_attempts=max(submit.max_attempts, submit.replication),
        state=JobState.QUEUED.value,
        wanted=submit.replication,
        attempts_count=0,
        created_at=now,
        deadline=deadline,
    )
    s.add(job)
    s.flush()
    log.info("Job %d submitted by requester %r", job.id, requester.name)
    return job_out(job)


def job_out(job: JobRow) -> JobOut:
    return JobOut(
        job_id=job.id,
        state=JobState(job.state),
        label=job.label,
        bundle_sha256=job.bundle_sha256,
        command=job.command,
        resources=Resources.model_validate(job.resources),
        price_minor=job.price_minor,
        currency=job.currency,
        replication=job.replication,
        created_at=job.created_at,
        deadline=job.deadline,
        finished_at=job.finished_at,
        result_sha256=job.result_sha256,
        attempts=job.attempts_count,
        failure=job.failure,
    )


def own_job(s: Session, requester: RequesterRow, job_id: int) -> JobRow:
    job = s.get(JobRow, job_id)
    if job is None or job.requester_id != requester.id:
        raise _not_found("job")
    return job


def list_jobs(s: Session, requester: RequesterRow, limit: int) -> list[JobOut]:
    rows = s.scalars(
        select(JobRow)
        .where(JobRow.requester_id == requester.id)
        .order_by(JobRow.id.desc())
        .limit(limit)
    )
    return [job_out(j) for j in rows]
