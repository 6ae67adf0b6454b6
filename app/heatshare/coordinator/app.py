"""The coordinator's HTTP API (``/v1``): routes, authorisation and error bodies.

Every route opens one transaction and asks ``service`` to do the work. App servers keep no
state of their own (everything is in the database and the blob folder), so several can
run behind a load balancer. Errors are always :class:`ApiError` bodies: a sentence, and for
a request that does not validate, one line per problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from heatshare.__about__ import __version__
from heatshare.coordinator import db, service, tokens
from heatshare.coordinator.blobs import BlobStore, BlobWriter
from heatshare.coordinator.models import NodeRow, RequesterRow
from heatshare.coordinator.service import RefusedError
from heatshare.coordinator.settings import Settings
from heatshare.protocol.coordinator_api import (
    SHA256_HEADER,
    Account,
    AccountCreate,
    ApiError,
    BundleOut,
    Command,
    EnrolRequest,
    EnrolResponse,
    Failure,
    Heartbeat,
    HeartbeatResponse,
    JobList,
    JobOut,
    JobSubmit,
    LeaseRequest,
    LeaseResponse,
    NodeAttempt,
    NodeAttempts,
    NodeList,
    NodeRevoked,
    PairingCodeCreate,
    PairingCodeOut,
    Progress,
    ProgressResponse,
    RequesterCreate,
    RequesterOut,
    ResultAccepted,
)
from heatshare.protocol.coordinator_api import Earnings as EarningsOut

log = logging.getLogger("heatshare.coordinator.api")

_Id = Annotated[int, Path(ge=1, le=2**62)]
_Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
_ShaHeader = Annotated[
    str,
    Header(
        alias=SHA256_HEADER,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the body, lower-case hex",
    ),
]
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_RAW_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": _BINARY}}
_SWEEP_CHECK_EVERY = timedelta(seconds=1)
# A node's token never changes: its id is taken from memory for at most this long before the
# database is asked again. Longer than the heartbeat interval (30 s), or a node's every
# heartbeat would ask. A revoked node is not waited out: the server that revokes it forgets
# it at once, and every server looks at the revocation marker (one read by primary key)
# with each heartbeat flush, so within about a second (Coordinator.check_revocations).
_NODE_ID_TTL_S = 90.0
# Heartbeats are written together this often (they only say a node is alive and how warm).
_HEARTBEAT_FLUSH_S = 0.5
# How often the leasing tables' statistics are looked at (service.refresh_statistics).
_STATISTICS_CHECK_S = 5.0


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    # 400: a body that is not even text (not UTF-8); 422: one that is not valid JSON or data.
    return {code: {"model": ApiError} for code in sorted({400, 401, 422, *codes})}


# One bearer scheme per kind of caller, so the OpenAPI document says who may call what.
_admin_bearer = HTTPBearer(
    scheme_name="admin", auto_error=False, description="The operator's token (hsa_…)"
)
_node_bearer = HTTPBearer(
    scheme_name="node", auto_error=False, description="A node's token from enrolment (hsn_…)"
)
_requester_bearer = HTTPBearer(
    scheme_name="requester", auto_error=False, description="A requester's API key (hsr_…)"
)
_Credentials = HTTPAuthorizationCredentials | None


_T = TypeVar("_T")
# A batch's transaction takes at most this many requests (the rest wait for the next one).
_MAX_BATCH = 64


@dataclass(slots=True)
class _Work:
    do: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    # Leasing for this node (expired leases are settled first), or None.
    lease_node: int | None


class WriteBatcher:
    """Runs the writes of many requests together, one transaction a batch.

    Leases, results, failures and progress reports are queued here by the event loop and
    run in one transaction, one item after another, at most ``_MAX_BATCH`` at a time; then
    all are answered. A busy server thus commits once for many requests: SQLite has one
    writer anyway, and PostgreSQL pays for every commit.

    On SQLite the batch runs on the event loop itself, once the loop has read every request
    that arrived together: its statements take microseconds and wait for no network, and
    handing work to another thread cost more than the work (each SQLite call lets go of the
    GIL, and two busy threads then pass it back and forth through the kernel). On PostgreSQL
    every statement waits for a round trip, so batches run on two threads of their own, each
    in its own transaction (row locks and ``SKIP LOCKED`` keep them apart), while the loop
    goes on serving. (Measured on 2 cores: one thread leaves the server waiting on round
    trips, four spend more CPU handing the GIL around; docs/benchmarks.md.)

    Each item sees the ones before it (a node's limit and a job's attempts hold across a
    batch). An item refused with :class:`RefusedError` has written nothing (the service's
    functions check before they write), so the others are committed; any other error rolls
    the batch back and every item is run again alone, so only the one at fault fails.
    """

    def __init__(self, coordinator: Coordinator, *, inline: bool, threads: int = 2) -> None:
        self._c = coordinator
        self._inline = inline
        self._n_threads = threads
        self._pending: list[_Work] = []  # inline: queued in this turn of the loop
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    async def run(self, do: Callable[[Connection], _T], *, lease_node: int | None = None) -> _T:
        """``do(connection)`` in the next batch's transaction, once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        work = _Work(do, loop, future, lease_node)
        if self._inline:
            self._pending.append(work)
            if len(self._pending) == 1:
                loop.call_soon(self._run_pending, loop)
        else:
            if not self._threads:
                self._start()
            self._queue.put(work)
        return await future

    def _run_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
        if self._pending:
            loop.call_soon(self._run_pending, loop)
        _set_outcomes(self._run(batch))

    def _start(self) -> None:
        with self._start_lock:
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._loop, name=f"coordinator-writes-{i}", daemon=True)
                    for i in range(self._n_threads)
                ]
                for thread in self._threads:
                    thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the threads."""
        with self._start_lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)  # one each
        for thread in threads:
            thread.join(timeout=30)

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                outcomes = self._run(batch)
            except BaseException as exc:  # never leave a request waiting
                log.exception("A batch of writes failed")
                outcomes = [(work, exc, False) for work in batch]
            self._answer(outcomes)

    def _run(self, batch: list[_Work]) -> list[tuple[_Work, Any, bool]]:
        if any(work.lease_node is not None for work in batch):
            try:
                self._c.sweep_if_due()
            except Exception:
                log.exception("Sweeping expired leases and deadlines failed")
        # Leases last, in node id order: each locks its node's row, and the heartbeat writer
        # locks node rows in id order too, so the two never wait on each other in a circle.
        batch = sorted(batch, key=_lease_order)
        outcomes: list[tuple[_Work, Any, bool]] = []
        try:
            with self._c.connection() as conn:
                for work in batch:
                    try:
                        outcomes.append((work, work.do(conn), True))
                    except RefusedError as exc:
                        outcomes.append((work, exc, False))
        except Exception as exc:
            if len(batch) == 1:
                return [(batch[0], exc, False)]
            # Rolled back: each alone, so one bad item (or a deadlock) fails only itself.
            return [self._run_alone(work) for work in batch]
        return outcomes

    def _run_alone(self, work: _Work) -> tuple[_Work, Any, bool]:
        try:
            with self._c.connection() as conn:
                return work, work.do(conn), True
        except Exception as exc:
            return work, exc, False

    @staticmethod
    def _answer(outcomes: list[tuple[_Work, Any, bool]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Work, Any, bool]]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, answers in by_loop.items():
            # One wake-up of the event loop for the whole batch.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_set_outcomes, answers)


class DiskBatcher:
    """Makes uploads durable (fsync) off the event loop, all that came together in one go.

    One hand-off to a thread per turn of the loop, not one per upload: each hand-off and
    each answer is a trip of the GIL between threads, which cost more CPU than the fsync.
    A few threads, so batches overlap while the disk is slow.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="coordinator-disk")
        self._pending: list[tuple[BlobWriter, asyncio.Future[None]]] = []

    async def finish(self, writer: BlobWriter) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((writer, future))
        if len(self._pending) == 1:
            loop.call_soon(self._hand_off, loop)
        await future

    def _hand_off(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        self._pool.submit(self._finish_all, loop, batch)

    @staticmethod
    def _finish_all(
        loop: asyncio.AbstractEventLoop, batch: list[tuple[BlobWriter, asyncio.Future[None]]]
    ) -> None:
        answers: list[tuple[_Work | asyncio.Future[None], Any, bool]] = []
        for writer, future in batch:
            try:
                writer.finish()
                answers.append((future, None, True))
            except BaseException as exc:
                answers.append((future, exc, False))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_set_outcomes, answers)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _lease_order(work: _Work) -> tuple[bool, int]:
    return work.lease_node is not None, work.lease_node or 0


def _set_outcomes(answers: Sequence[tuple[_Work | asyncio.Future[Any], Any, bool]]) -> None:
    for work, value, ok in answers:
        future = work.future if isinstance(work, _Work) else work
        if future.done():  # the request was cancelled (its client went away)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _json(model: BaseModel, status: int = 200) -> Response:
    """A model as a JSON answer, serialised once (not validated again on the way out)."""
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


class Coordinator:
    """What one app server holds: settings, the database engine and the blob store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: Engine = db.make_engine(settings.db_url)
        db.migrate(self.engine)
        self.sessions: sessionmaker[Session] = db.session_factory(self.engine)
        self._write_turn: AbstractContextManager[Any] = (
            threading.Lock() if db.is_sqlite(self.engine) else nullcontext()
        )
        # SQLite: reads on their own engine, so they do not queue behind the writer's lock.
        self.read_engine = (
            db.make_engine(settings.db_url, writer=False)
            if db.is_sqlite(self.engine)
            else self.engine
        )
        self.read_sessions: sessionmaker[Session] = db.session_factory(self.read_engine)
        self.blobs = BlobStore(settings.blob_dir)
        with self.transaction() as s:
            self.currency = service.settle_currency(s, settings.currency)
        self._sweep_checked_at: datetime | None = None
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self._node_ids: dict[str, tuple[int, float]] = {}  # token digest → (node id, until)
        # Guards adding to and dropping from _node_ids against each other (reads need no
        # lock); the generation changes on every drop, so a lookup that read the database
        # before a revocation does not remember its answer after the drop.
        self._node_ids_lock = threading.Lock()
        self._node_ids_generation = 0
        with self.read_engine.connect() as connection:
            self._revocations_seen = service.revocation_marker(connection)
        self._beats: dict[int, service.Beat] = {}  # node id → heartbeat not yet written
        self._beats_lock = threading.Lock()
        self._inline_writes = db.is_sqlite(self.engine)
        self.writes = WriteBatcher(self, inline=self._inline_writes)
        self.disk = DiskBatcher()

    def now(self) -> datetime:
        return self.settings.clock()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A transaction that may write. On SQLite, this server's writers take turns here
        first: SQLite's busy handler polls with sleeps of up to 100 ms, so writers left to it
        wait seconds under load; a lock hands over at once. (Other processes on the same
        file still meet the busy timeout.)"""
        with self._write_turn, db.transaction(self.sessions) as s:
            yield s

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A transaction that may write, on a plain connection (no ORM session)."""
        with self._write_turn, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A transaction that only reads (it must not write: on SQLite it holds no lock)."""
        with db.transaction(self.read_sessions) as s:
            yield s

    def sweep(self) -> int:
        with self.transaction() as s:
            return service.sweep(s, self.now())

    def sweep_if_due(self) -> int:
        """Sweep when a lease ran out or a deadline passed; looked at most once a second.

        Before every lease this costs nothing most of the time; an expired lease is then
        leasable again within a second of its expiry (the check itself is a mere read).
        """
        now = self.now()
        last = self._sweep_checked_at
        if last is not None and timedelta(0) <= now - last < _SWEEP_CHECK_EVERY:
            return 0
        self._sweep_checked_at = now
        with self.reading() as s:
            due = service.sweep_due(s, now)
        return self.sweep() if due else 0

    def cached_node_id(self, token: str) -> int | None:
        """The node of a token when it was looked up in the last few seconds (no I/O)."""
        if not token.startswith(tokens.NODE_PREFIX):
            return None
        found = self._node_ids.get(tokens.digest(token))
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def node_id(self, token: str) -> int:
        """The node of a token, from memory or the database; 401 when there is none."""
        node_id = self.cached_node_id(token)
        if node_id is not None:
            return node_id
        generation = self._node_ids_generation
        # A plain connection, not a session: this runs for every node not in memory.
        with self.read_engine.connect() as connection:
            node_id = service.node_id_for_token(connection, token)  # raises when revoked
        if node_id is None:
            raise _unauthorised("node")
        self.remember_node(token, node_id, generation)
        return node_id

    def remember_node(self, token: str, node_id: int, generation: int | None = None) -> None:
        """Remember a token's node, unless nodes were forgotten since ``generation`` was read
        (before the database was asked)."""
        with self._node_ids_lock:
            if generation is None or generation == self._node_ids_generation:
                self._node_ids[tokens.digest(token)] = (
                    node_id,
                    time.monotonic() + _NODE_ID_TTL_S,
                )

    @property
    def node_ids_generation(self) -> int:
        return self._node_ids_generation

    def forget_nodes(self, node_ids: set[int]) -> None:
        """Drop these nodes' tokens from memory: their next call asks the database."""
        with self._node_ids_lock:
            self._node_ids_generation += 1
            for digest, (node_id, _until) in list(self._node_ids.items()):
                if node_id in node_ids:
                    del self._node_ids[digest]

    def check_revocations(self) -> bool:
        """Forget revoked nodes when the revocation marker changed (another app server, or
        the command line, revoked one); True when it had."""
        with self.read_engine.connect() as connection:
            marker = service.revocation_marker(connection)
            if marker == self._revocations_seen:
                return False
            revoked = service.revoked_node_ids(connection)
        self.forget_nodes(revoked)
        self._revocations_seen = marker
        return True

    def revoke_node(self, node_id: int, authorise: Callable[[Session], None]) -> NodeRevoked:
        """Revoke a node: refused from now on here, within a second on the other servers."""
        with self.transaction() as s:
            authorise(s)
            already = service.revoke_node(s, node_id, self.now())
        self.forget_nodes({node_id})
        with self.connection() as conn:
            released = service.release_node_attempts(conn, node_id, self.now())
        with self.reading() as s:
            node = service.node_out(s, node_id)
        return NodeRevoked(node=node, released_attempts=released, already_revoked=already)

    async def node_id_async(self, token: str) -> int:
        """:meth:`node_id` for the event loop: the database only on a miss, in a thread."""
        node_id = self.cached_node_id(token)
        if node_id is None:
            node_id = await run_in_threadpool(self.node_id, token)
        return node_id

    def note_heartbeat(self, node_id: int, beat: service.Beat) -> None:
        """Keep a heartbeat to be written with the others within ``_HEARTBEAT_FLUSH_S``."""
        with self._beats_lock:
            earlier = self._beats.get(node_id)
            self._beats[node_id] = beat if earlier is None else earlier.then(beat)

    def flush_heartbeats(self) -> None:
        with self._beats_lock:
            beats, self._beats = self._beats, {}
        if not beats:
            return
        try:
            with self.transaction() as s:
                service.write_heartbeats(s, beats)
        except BaseException:
            # Kept for the next flush, in front of the beats that came in meanwhile.
            with self._beats_lock:
                for node_id, later in self._beats.items():
                    earlier = beats.get(node_id)
                    beats[node_id] = later if earlier is None else earlier.then(later)
                self._beats = beats
            raise

    def heartbeat_commands(self, node_id: int, running_attempts: list[int]) -> list[Command]:
        with self.reading() as s:
            return service.heartbeat_commands(s, node_id, running_attempts)

    def start_background(self, *, sweeper: bool) -> None:
        self._stop.clear()
        if sweeper:
            self._sweeper = threading.Thread(
                target=self._sweep_loop, name="coordinator-sweep", daemon=True
            )
            self._sweeper.start()
        self._flusher = threading.Thread(
            target=self._flush_loop, name="coordinator-heartbeats", daemon=True
        )
        self._flusher.start()

    def _flush_loop(self) -> None:
        statistics_at = time.monotonic()
        while not self._stop.wait(_HEARTBEAT_FLUSH_S):
            try:
                self.flush_heartbeats()
            except Exception:
                log.exception("Writing heartbeats failed; trying again")
            if not self._inline_writes and time.monotonic() - statistics_at >= _STATISTICS_CHECK_S:
                statistics_at = time.monotonic()
                try:
                    with self.connection() as conn:
                        if analyzed := service.refresh_statistics(conn):
                            log.debug("Statistics of %s refreshed", ", ".join(analyzed))
                except Exception:
                    log.exception("Refreshing the database's statistics failed")
            try:
                self.check_revocations()
            except Exception:
                log.exception("Looking for revoked nodes failed; trying again")
            now = time.monotonic()
            for digest, (_node_id, until) in list(self._node_ids.items()):
                if until < now:
                    self._node_ids.pop(digest, None)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.sweep_interval_s):
            try:
                self.sweep_if_due()
            except Exception:
                # The next round tries again; a database hiccup must not end the sweeps.
                log.exception("Sweeping expired leases and deadlines failed")

    def close(self) -> None:
        self.writes.stop()
        self.disk.close()
        self._stop.set()
        for thread in (self._sweeper, self._flusher):
            if thread is not None:
                thread.join(timeout=10)
        self._sweeper = self._flusher = None
        try:
            self.flush_heartbeats()
        finally:
            self.engine.dispose()
        self.read_engine.dispose()


def _unauthorised(who: str) -> RefusedError:
    return RefusedError(401, f"This call needs a valid {who} token (Authorization: Bearer …).")


def create_app(settings: Settings, *, sweeper: bool = True) -> FastAPI:
    """The ASGI app of one coordinator app server; migrates the database to the newest schema.

    ``sweeper`` runs the background sweep of expired leases and deadlines while the app is
    served (leases are also settled lazily before each lease, so tests may turn it off).
    """
    coordinator = Coordinator(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        coordinator.start_background(sweeper=sweeper)
        try:
            yield
        finally:
            coordinator.close()

    app = FastAPI(
        title="Heatshare coordinator",
        version=__version__,
        summary="The compute network's server: nodes, leases, results, earnings, requesters.",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.coordinator = coordinator
    _install_error_handlers(app)
    _operator_routes(app, coordinator)
    _node_routes(app, coordinator)
    _requester_routes(app, coordinator)
    return app


# --- errors --------------------------------------------------------------------------------


def _error(
    status: int,
    message: str,
    detail: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ApiError(error=message, detail=detail or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


_STATUS_SENTENCES = {
    404: "There is nothing at this address.",
    405: "This address does not take this method.",
}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RefusedError)
    async def refused(_request: Request, exc: RefusedError) -> JSONResponse:
        if exc.status == 401:
            return _error(401, exc.message, headers={"WWW-Authenticate": "Bearer"})
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else ""
        if not message or message in ("Not Found", "Method Not Allowed"):
            message = _STATUS_SENTENCES.get(
                exc.status_code, f"The request failed ({exc.status_code})."
            )
        return _error(exc.status_code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        lines = []
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem.get("loc", ()))
            lines.append(f"{where}: {problem.get('msg', 'not valid')}")
        first = lines[0] if lines else "the request could not be read"
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        return _error(422, f"The request is not valid: {first}{more}.", jsonable_encoder(lines))

    @app.exception_handler(Exception)
    async def crashed(_request: Request, exc: Exception) -> JSONResponse:
        log.error("Unhandled error in a request", exc_info=exc)
        return _error(
            500,
            "The coordinator failed to handle this request; the operator can see why in its log.",
        )


# --- who is asking -------------------------------------------------------------------------


def _token(credentials: _Credentials) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        return ""
    return credentials.credentials


def _require_admin(s: Session, credentials: _Credentials) -> None:
    if not service.is_admin(s, _token(credentials)):
        raise _unauthorised("operator")


def _require_node(s: Session, credentials: _Credentials) -> NodeRow:
    node = service.node_for_token(s, _token(credentials))
    if node is None:
        raise _unauthorised("node")
    return node


def _require_requester(s: Session, credentials: _Credentials) -> RequesterRow:
    requester = service.requester_for_token(s, _token(credentials))
    if requester is None:
        raise _unauthorised("requester")
    return requester


AdminAuth = Annotated[_Credentials, Depends(_admin_bearer)]
NodeAuth = Annotated[_Credentials, Depends(_node_bearer)]
RequesterAuth = Annotated[_Credentials, Depends(_requester_bearer)]


# --- operator ------------------------------------------------------------------------------


def _operator_routes(app: FastAPI, c: Coordinator) -> None:
    @app.post(
        "/v1/accounts",
        response_model=Account,
        status_code=201,
        responses=_errors(409),
        tags=["operator"],
    )
    def create_account(body: AccountCreate, auth: AdminAuth) -> Account:
        with c.transaction() as s:
            _require_admin(s, auth)
            return service.account_out(service.create_account(s, body.name, c.now(), c.currency))

    @app.get("/v1/accounts", response_model=list[Account], responses=_errors(), tags=["operator"])
    def list_accounts(auth: AdminAuth) -> list[Account]:
        with c.reading() as s:
            _require_admin(s, auth)
            return service.list_accounts(s)

    @app.post(
        "/v1/accounts/{account_id}/pairing-codes",
        response_model=PairingCodeOut,
        status_code=201,
        responses=_errors(404),
        tags=["operator"],
    )
    def create_pairing_code(
        account_id: _Id, body: PairingCodeCreate, auth: AdminAuth
    ) -> PairingCodeOut:
        with c.transaction() as s:
            _require_admin(s, auth)
            code, row = service.create_pairing_code(s, account_id, body.ttl_s, c.now())
            return PairingCodeOut(code=code, account_id=row.account_id, expires_at=row.expires_at)

    @app.post(
        "/v1/requesters",
        response_model=RequesterOut,
        status_code=201,
        responses=_errors(409),
        tags=["operator"],
    )
    def create_requester(body: RequesterCreate, auth: AdminAuth) -> RequesterOut:
        with c.transaction() as s:
            _require_admin(s, auth)
            key, row = service.create_requester(s, body.name, c.now())
            return RequesterOut(requester_id=row.id, name=row.name, api_key=key)

    @app.get("/v1/nodes", response_model=NodeList, responses=_errors(), tags=["operator"])
    def list_nodes(auth: AdminAuth) -> NodeList:
        with c.reading() as s:
            _require_admin(s, auth)
            return NodeList(nodes=service.list_nodes(s))

    @app.post(
        "/v1/nodes/{node_id}/revoke",
        response_model=NodeRevoked,
        responses=_errors(404),
        tags=["operator"],
        summary="Remove a machine from the network",
        description="Its token is refused from now on (at once on this app server, within "
        "about a second on the others); its leased jobs go back to the queue; what it earned "
        "stays in the ledger. Revoking it again changes nothing and answers the same node.",
    )
    def revoke_node(node_id: _Id, auth: AdminAuth) -> NodeRevoked:
        return c.revoke_node(node_id, lambda s: _require_admin(s, auth))


# --- node ----------------------------------------------------------------------------------


def _node_routes(app: FastAPI, c: Coordinator) -> None:
    @app.post(
        "/v1/enrol",
        response_model=EnrolResponse,
        status_code=201,
        responses={code: {"model": ApiError} for code in (400, 404, 409, 410, 422)},
        tags=["node"],
    )
    def enrol(body: EnrolRequest) -> EnrolResponse:
        generation = c.node_ids_generation
        with c.transaction() as s:
            enrolled = service.enrol(s, body, c.now(), c.settings)
        # Committed: the new node's first heartbeats need not ask the database who it is.
        c.remember_node(enrolled.node_token, enrolled.node_id, generation)
        return enrolled

    @app.post(
        "/v1/nodes/me/heartbeat",
        response_model=HeartbeatResponse,
        responses=_errors(),
        tags=["node"],
    )
    async def heartbeat(body: Heartbeat, auth: NodeAuth) -> HeartbeatResponse:
        # Served on the event loop: the node's id is mostly in memory and the beat is
        # written later with others; only a miss, or attempts to check, go to the database.
        node_id = await c.node_id_async(_token(auth))
        now = c.now()
        c.note_heartbeat(node_id, service.Beat.of(body, now))
        commands: list[Command] = []
        if body.running_attempts:
            commands = await run_in_threadpool(c.heartbeat_commands, node_id, body.running_attempts)
        return HeartbeatResponse(
            server_time=now, heartbeat_interval_s=c.settings.heartbeat_interval_s, commands=commands
        )

    @app.post("/v1/leases", response_model=LeaseResponse, responses=_errors(403), tags=["node"])
    async def lease(body: LeaseRequest, auth: NodeAuth) -> Response:
        # In a batch of writes; expired leases and passed deadlines are settled before it, in
        # their own transaction (which keeps the lock order of service.py), so a job whose
        # lease ran out is leasable again at once.
        node_id = await c.node_id_async(_token(auth))
        leased = await c.writes.run(
            lambda conn: service.lease(conn, node_id, body.max_jobs, c.now(), c.settings),
            lease_node=node_id,
        )
        return _json(leased)

    @app.get(
        "/v1/bundles/{sha256}",
        response_class=FileResponse,
        responses={200: {"content": _BINARY}, **_errors(404)},
        tags=["node", "requester"],
    )
    def bundle(sha256: _Sha, node_auth: NodeAuth, requester_auth: RequesterAuth) -> FileResponse:
        # Both schemes read the same header; a token's prefix says which kind it is.
        token = _token(node_auth or requester_auth)
        with c.reading() as s:
            node = service.node_for_token(s, token)
            requester = None if node is not None else service.requester_for_token(s, token)
            if node is None and requester is None:
                raise _unauthorised("node or requester")
            if node is not None:
                allowed = service.node_may_read_bundle(s, node, sha256)
            else:
                assert requester is not None
                allowed = service.requester_bundle(s, requester, sha256) is not None
        if not allowed or not c.blobs.has(sha256):
            raise RefusedError(404, "No bundle with this sha256 is available to you.")
        return FileResponse(c.blobs.path(sha256), media_type="application/octet-stream")

    @app.post(
        "/v1/attempts/{attempt_id}/progress",
        response_model=ProgressResponse,
        responses=_errors(404),
        tags=["node"],
    )
    async def progress(attempt_id: _Id, body: Progress, auth: NodeAuth) -> Response:
        node_id = await c.node_id_async(_token(auth))
        answer = await c.writes.run(
            lambda conn: service.progress(
                conn, node_id, attempt_id, body, now=c.now(), settings=c.settings
            )
        )
        return _json(answer)

    @app.put(
        "/v1/attempts/{attempt_id}/result",
        response_model=ResultAccepted,
        responses=_errors(400, 404, 409, 413),
        openapi_extra=_RAW_BODY,
        tags=["node"],
    )
    async def result(
        attempt_id: _Id, request: Request, sha256: _ShaHeader, auth: NodeAuth
    ) -> Response:
        node_id = await c.node_id_async(_token(auth))
        return _json(await _take_result(c, request, node_id, attempt_id, sha256))

    @app.post(
        "/v1/attempts/{attempt_id}/failure",
        response_model=NodeAttempt,
        responses=_errors(404, 409),
        tags=["node"],
    )
    async def failure(attempt_id: _Id, body: Failure, auth: NodeAuth) -> Response:
        node_id = await c.node_id_async(_token(auth))
        answer = await c.writes.run(
            lambda conn: service.record_failure(conn, node_id, attempt_id, body, c.now())
        )
        return _json(answer)

    @app.get(
        "/v1/nodes/me/attempts", response_model=NodeAttempts, responses=_errors(), tags=["node"]
    )
    def attempts(auth: NodeAuth) -> NodeAttempts:
        with c.reading() as s:
            return service.node_attempts(s, _require_node(s, auth))

    @app.get(
        "/v1/nodes/me/earnings", response_model=EarningsOut, responses=_errors(), tags=["node"]
    )
    def earnings(auth: NodeAuth) -> EarningsOut:
        with c.reading() as s:
            return service.earnings(s, _require_node(s, auth))


# A result up to this size is kept in the database rather than as a file (SmallBlobRow).
SMALL_BLOB_BYTES = 64 * 1024
# A larger result up to this size is taken without asking the database first (see the route).
_CHECK_BEFORE_BYTES = 1024 * 1024


def _declared_length(request: Request) -> int:
    """The body's Content-Length; none (streamed) counts as large, a bad one is refused."""
    declared = request.headers.get("content-length")
    if declared is None:
        return 2**63
    try:
        return int(declared)
    except ValueError:
        raise RefusedError(400, "The Content-Length header is not a number.") from None


async def _take_result(
    c: Coordinator, request: Request, node_id: int, attempt_id: int, sha256: str
) -> ResultAccepted:
    """Receive a result's bytes and record it (in a batch of writes)."""
    length = _declared_length(request)
    if length <= min(SMALL_BLOB_BYTES, c.settings.max_result_bytes):
        # Most results: kept in the database, committed with their record.
        data = await request.body()
        _check_sha256(hashlib.sha256(data).hexdigest(), sha256, "result")

        def record_small(conn: Connection) -> ResultAccepted:
            now = c.now()
            return service.record_result(
                conn,
                node_id,
                attempt_id,
                sha256,
                size=len(data),
                now=now,
                keep=lambda: service.keep_small_blob(conn, sha256, data, now),
            )

        return await c.writes.run(record_small)
    if length > _CHECK_BEFORE_BYTES:
        # A large body is read only for the node the attempt is leased to; a small one
        # is checked with the record, in the batch, before its bytes are kept.

        def check() -> None:
            with c.read_engine.connect() as connection:
                service.own_attempt(connection, node_id, attempt_id)

        await run_in_threadpool(check)
    with c.blobs.writer() as blob:
        size = await _receive(
            request, blob, c.disk, sha256, limit=c.settings.max_result_bytes, what="result"
        )

        def record(conn: Connection) -> ResultAccepted:
            return service.record_result(
                conn, node_id, attempt_id, sha256, size=size, now=c.now(), keep=blob.adopt
            )

        return await c.writes.run(record)


def _check_sha256(actual: str, declared: str, what: str) -> None:
    if actual != declared:
        raise RefusedError(
            400,
            f"The {what}'s sha256 is {actual}, not {declared} as the {SHA256_HEADER} "
            "header says; it was damaged on the way or the header is wrong.",
        )


async def _receive(
    request: Request, writer: BlobWriter, disk: DiskBatcher, sha256: str, *, limit: int, what: str
) -> int:
    """Stream a raw body to a durable temporary file, refusing it early when too big or wrong.

    The caller adopts it into the blob store (``writer.adopt()``) or, leaving the writer's
    block without, discards it.
    """
    length = _declared_length(request)
    if request.headers.get("content-length") is not None and length > limit:
        raise RefusedError(
            413, f"The {what} is {length} bytes; the most this network takes is {limit} bytes."
        )
    async for chunk in request.stream():
        writer.write(chunk)
        if writer.size > limit:
            raise RefusedError(
                413, f"The {what} is larger than the {limit} bytes this network takes."
            )
    _check_sha256(writer.sha256, sha256, what)
    await disk.finish(writer)
    return writer.size


# --- requester -----------------------------------------------------------------------------


def _requester_routes(app: FastAPI, c: Coordinator) -> None:
    @app.post(
        "/v1/bundles",
        response_model=BundleOut,
        status_code=201,
        responses=_errors(400, 413),
        openapi_extra=_RAW_BODY,
        tags=["requester"],
    )
    async def upload_bundle(request: Request, sha256: _ShaHeader, auth: RequesterAuth) -> BundleOut:
        def check() -> None:
            with c.reading() as s:
                _require_requester(s, auth)

        await run_in_threadpool(check)
        with c.blobs.writer() as blob:
            size = await _receive(
                request, blob, c.disk, sha256, limit=c.settings.max_bundle_bytes, what="bundle"
            )
            await run_in_threadpool(blob.adopt)

        def record() -> BundleOut:
            with c.transaction() as s:
                return service.add_bundle(s, _require_requester(s, auth), sha256, size, c.now())

        return await run_in_threadpool(record)

    @app.post(
        "/v1/jobs",
        response_model=JobOut,
        status_code=201,
        responses=_errors(400, 404),
        tags=["requester"],
    )
    def submit(body: JobSubmit, auth: RequesterAuth) -> JobOut:
        with c.transaction() as s:
            requester = _require_requester(s, auth)
            return service.submit_job(s, requester, body, c.now(), c.currency)

    @app.get("/v1/jobs", response_model=JobList, responses=_errors(), tags=["requester"])
    def jobs(auth: RequesterAuth, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> JobList:
        with c.reading() as s:
            return JobList(jobs=service.list_jobs(s, _require_requester(s, auth), limit))

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, responses=_errors(404), tags=["requester"])
    def job(job_id: _Id, auth: RequesterAuth) -> JobOut:
        with c.reading() as s:
            return service.job_out(service.own_job(s, _require_requester(s, auth), job_id))

    @app.get(
        "/v1/jobs/{job_id}/result",
        response_class=FileResponse,
        responses={200: {"content": _BINARY}, **_errors(404)},
        tags=["requester"],
    )
    def job_result(job_id: _Id, auth: RequesterAuth) -> Response:
        with c.reading() as s:
            found = service.own_job(s, _require_requester(s, auth), job_id)
            sha = found.result_sha256 if found.state == "done" else None
            data = None if sha is None else service.small_blob(s, sha)
        if sha is not None and data is not None:
            return Response(
                data, media_type="application/octet-stream", headers={SHA256_HEADER: sha}
            )
        if sha is None or not c.blobs.has(sha):
            raise RefusedError(404, "This job has no result yet.")
        return FileResponse(
            c.blobs.path(sha),
            media_type="application/octet-stream",
            headers={SHA256_HEADER: sha},
        )
