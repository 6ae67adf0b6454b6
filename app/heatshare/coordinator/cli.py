"""``heatshare-coordinator``: serve the network, and the operator's commands beside it.

``serve`` is the composition root of the coordinator program: settings → app (which
migrates the database) → uvicorn on a socket it binds itself (so ``--port 0`` can say which
port it got). The other commands work on the same database directly, except ``submit``,
which is a requester's client of the HTTP API.

Exit codes: 0 done; 1 an error (the database cannot be opened, a name exists already, the
server refused); 2 a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import importlib
import io
import json
import logging
import os
import shlex
import signal
import socket
import sys
import tarfile
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heatshare.__about__ import __version__

if TYPE_CHECKING:
    from heatshare.coordinator.app import Coordinator

log = logging.getLogger("heatshare.coordinator")

EXIT_OK = 0
EXIT_ERROR = 1
DEMO_NAME = "demo"
DEMO_CURRENCY = "CRD"
DEMO_HEARTBEAT_S = 5
DEMO_LEASE_S = 60
DEMO_SWEEP_S = 5.0
ENV_URL = "HEATSHARE_COORDINATOR_URL"
ENV_API_KEY = "HEATSHARE_API_KEY"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(f"heatshare-coordinator: {text}\n")


def default_db_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("heatshare", appauthor=False)) / "coordinator.sqlite"


def db_url(value: str | None) -> str:
    """A database URL from ``--db``: a URL as it is, a plain path as an SQLite file."""
    if value is None:
        return f"sqlite:///{default_db_path()}"
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().absolute()}"


def blob_dir(url: str, value: str | None) -> Path:
    """Where blobs go: ``--blob-dir``, else beside the SQLite file, else the user data folder."""
    if value:
        return Path(value).expanduser().absolute()
    from heatshare.coordinator.db import sqlite_path

    path = sqlite_path(url)
    if path is not None:
        return path.with_name(path.stem + "-blobs")
    return default_db_path().with_name("coordinator-blobs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heatshare-coordinator",
        description="The Heatshare compute network's server and its operator commands: "
        "`serve` runs the network; `account`, `pair-code` and `requester` admit householders' "
        "machines and those who submit jobs; `node` lists the machines and removes one; "
        "`submit` sends a job. "
        "`heatshare-coordinator COMMAND --help` explains each command.",
        epilog="Exit codes: 0 done; 1 an error (said on stderr); 2 a usage error.",
    )
    parser.add_argument(
        "--version", action="version", version=f"heatshare-coordinator {__version__}"
    )
    db_help = (
        "the database: an SQLite file path or URL (default: coordinator.sqlite in the user "
        "data folder), or postgresql+psycopg://user:password@host/name"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", help=db_help)
    common.add_argument(
        "--verbose", "-v", action="store_true", help="log more: debug messages on stderr too"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="run the coordinator's HTTP API (migrates the database first)",
        description="Run the coordinator's HTTP API. The database is brought to the newest "
        "schema first. SIGTERM or Ctrl+C stops it cleanly.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8470, help="port; 0 picks a free one (default %(default)s)"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="the demo network: account and requester 'demo', currency CRD, a requester "
        "that keeps example jobs queued, short intervals",
    )
    serve.add_argument(
        "--runtime-file",
        metavar="PATH",
        help='write {"url": …, "pid": …} here (mode 0600) once listening; removed on exit',
    )
    serve.add_argument(
        "--blob-dir",
        metavar="DIR",
        help="folder of bundles and results (default: beside the SQLite file)",
    )
    serve.add_argument(
        "--currency",
        help="the network's currency, fixed when first set (default EUR; CRD with --demo)",
    )
    serve.add_argument(
        "--lease-s", type=int, metavar="S", help="lease length in seconds (default 120)"
    )
    serve.add_argument(
        "--max-jobs-per-node",
        type=int,
        metavar="N",
        help="leases one node may hold at once (default 2)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")

    sub.add_parser(
        "migrate",
        parents=[common],
        help="bring the database to the newest schema",
        description="Bring the database to the newest schema and print its revision (serve "
        "does this too; run it alone before an upgrade, after a backup).",
    )

    account = sub.add_parser(
        "account",
        help="householder accounts",
        description="Householder accounts: each householder's machines join under one, "
        "and their earnings are credited to it.",
    )
    account_sub = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    create = account_sub.add_parser(
        "create",
        parents=[common],
        help="create an account NAME",
        description="Create the account NAME; then `pair-code NAME` gives its machines "
        "codes to join with.",
    )
    create.add_argument("name", metavar="NAME", help="the account's name, unique in the network")
    create.add_argument("--currency", help="the network's currency if not yet set (default EUR)")
    account_sub.add_parser(
        "list",
        parents=[common],
        help="list the accounts",
        description="List the accounts: id, name and currency, one a line.",
    )

    pair = sub.add_parser(
        "pair-code",
        parents=[common],
        help="a one-time pairing code for account NAME (the code alone on the last line)",
        description="Make a one-time pairing code for account NAME. The householder types it "
        "into the app (Join a network) or runs `heatshare-agent enrol URL CODE`; it joins one "
        "machine, once, before it expires.",
    )
    pair.add_argument("name", metavar="NAME", help="the account the machine joins")
    pair.add_argument(
        "--ttl",
        type=int,
        default=24 * 3600,
        metavar="S",
        help="valid for S seconds (default one day)",
    )

    _add_node_parser(sub, common)

    requester = sub.add_parser(
        "requester",
        help="requesters (who submit jobs)",
        description="Requesters: those who submit jobs to the network and pay for them.",
    )
    requester_sub = requester.add_subparsers(
        dest="requester_command", required=True, metavar="ACTION"
    )
    rcreate = requester_sub.add_parser(
        "create",
        parents=[common],
        help="create requester NAME; prints its API key on the last line",
        description="Create requester NAME and print its API key on the last line (shown "
        "once: keep it; `submit --api-key` uses it).",
    )
    rcreate.add_argument("name", metavar="NAME", help="the requester's name, unique")

    sub.add_parser(
        "admin-token",
        parents=[common],
        help="a new operator token (the old one stops working); printed on the last line",
        description="Make a new operator token for the /v1 operator API and print it on the "
        "last line (shown once); any earlier token stops working.",
    )

    submit = sub.add_parser(
        "submit",
        help="submit a job as a requester, over the HTTP API",
        description="Upload BUNDLE (a folder, packed deterministically, or a .tar.gz) and "
        "submit a job that runs COMMAND in it. Prints the job as JSON; its id on the last line.",
    )
    submit.add_argument("bundle", metavar="BUNDLE", help="a folder or a .tar.gz")
    submit.add_argument(
        "--command",
        dest="job_command",
        metavar="COMMAND",
        required=True,
        help='the command, e.g. "python3 render.py --tile 3"',
    )
    submit.add_argument(
        "--price", type=int, default=100, help="price in minor units (default %(default)s)"
    )
    submit.add_argument("--label", default="", help="a short description")
    submit.add_argument(
        "--replication", type=int, choices=(1, 2), default=1, help="2: two machines must agree"
    )
    submit.add_argument(
        "--cpu-cores", type=int, default=1, help="CPU cores the job needs (default %(default)s)"
    )
    submit.add_argument(
        "--memory-mb",
        type=int,
        default=512,
        help="memory the job may use, in MB (default %(default)s)",
    )
    submit.add_argument(
        "--gpus", type=int, default=0, help="GPUs the job needs (default %(default)s)"
    )
    submit.add_argument(
        "--wall-time-s",
        type=int,
        default=3600,
        help="the longest the job may run, in seconds, before it is stopped (default %(default)s)",
    )
    submit.add_argument("--max-attempts", type=int, default=5, help="attempts before it fails")
    submit.add_argument("--deadline-s", type=int, help="expire the job this many seconds from now")
    submit.add_argument(
        "--url", default=os.environ.get(ENV_URL), help=f"the coordinator (default ${ENV_URL})"
    )
    submit.add_argument(
        "--api-key",
        default=os.environ.get(ENV_API_KEY),
        help=f"the requester's API key (default ${ENV_API_KEY})",
    )
    return parser


def _add_node_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    node = sub.add_parser(
        "node",
        help="enrolled machines (list, revoke)",
        description="The machines enrolled in the network: list them, or revoke one (a "
        "stolen or misbehaving machine).",
    )
    node_sub = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    node_sub.add_parser(
        "list",
        parents=[common],
        help="list the machines",
        description="List the machines, one a line: id, account, host name, state, last "
        "heartbeat, leased jobs, earned (minor units), and when revoked, if they were.",
    )
    revoke = node_sub.add_parser(
        "revoke",
        parents=[common],
        help="remove machine NODE_ID from the network",
        description="Remove machine NODE_ID from the network: its token is refused from now "
        "on (every app server stops taking it within about a second), its leased jobs go "
        "back to the queue, and what it earned stays in the ledger. Revoking it again "
        "changes nothing.",
    )
    revoke.add_argument("node_id", metavar="NODE_ID", type=int, help="the node's id (node list)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if args.command != "serve":
        # Alembic and the service log every step at INFO; one-shot commands print results.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("heatshare.coordinator").setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    except _CliError as exc:
        _err(str(exc))
        return EXIT_ERROR


class _CliError(Exception):
    """A refusal to report in one line, without a traceback."""


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return serve(args)
    if args.command == "submit":
        return submit(args)
    if args.command == "node":
        return _node_command(args)
    return _database_command(args)


def _open(url: str) -> Any:
    from heatshare.coordinator import db

    try:
        engine = db.make_engine(url)
        db.migrate(engine)
    except Exception as exc:
        raise _database_error(url, exc) from exc
    return engine


def _database_error(url: str, exc: Exception) -> Exception:
    """A one-line reason for a database that cannot be opened; anything else as it is."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    where = f"cannot open the database {_safe(url)}"
    if isinstance(exc, ModuleNotFoundError) and "psycopg" in str(exc):
        return _CliError(f"{where}: PostgreSQL needs psycopg (pip install 'heatshare[postgres]')")
    if isinstance(exc, CommandError):
        return _CliError(f"{where}: its schema is not one this version knows ({exc}); a newer "
                         "Heatshare made it")  # fmt: skip
    if isinstance(exc, (SQLAlchemyError, OSError, ValueError)):
        return _CliError(f"{where}: {exc}")
    return exc


def _safe(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def _database_command(args: argparse.Namespace) -> int:
    from heatshare.coordinator import db, service

    url = db_url(args.db)
    engine = _open(url)
    now = datetime.now(UTC)
    try:
        with db.transaction(db.session_factory(engine)) as s:
            if args.command == "migrate":
                pass
            elif args.command == "account" and args.account_command == "create":
                row = service.create_account(s, args.name, now, args.currency)
                _out(f"Account {row.id} {row.name!r} created ({row.currency}).")
            elif args.command == "account":
                for account in service.list_accounts(s):
                    _out(f"{account.account_id}\t{account.name}\t{account.currency}")
            elif args.command == "pair-code":
                found = service.account_by_name(s, args.name)
                if found is None:
                    raise _CliError(
                        f"no account named {args.name!r}; create it with "
                        f"'heatshare-coordinator account create {shlex.quote(args.name)}'"
                    )
                if not 60 <= args.ttl <= 7 * 24 * 3600:
                    raise _CliError("--ttl must be between 60 seconds and 7 days")
                code, pc = service.create_pairing_code(s, found.id, args.ttl, now)
                until = f"{pc.expires_at:%Y-%m-%d %H:%M} UTC"
                _out(f"Pairing code for account {found.name!r}, for one machine, until {until}:")
                _out(code)
            elif args.command == "requester":
                key, requester = service.create_requester(s, args.name, now)
                _out(f"Requester {requester.id} {requester.name!r} created. API key (shown once):")
                _out(key)
            elif args.command == "admin-token":
                token = service.rotate_admin_token(s, now)
                _out("The operator token (shown once; any earlier one no longer works):")
                _out(token)
        if args.command == "migrate":
            _out(f"The database {_safe(url)} is at revision {db.current_revision(engine)}.")
    except service.RefusedError as exc:
        raise _CliError(exc.message) from exc
    finally:
        engine.dispose()
    return EXIT_OK


def _node_command(args: argparse.Namespace) -> int:
    from heatshare.coordinator import service

    engine = _open(db_url(args.db))
    try:
        _node_action(args, engine, datetime.now(UTC))
    except service.RefusedError as exc:
        if exc.status == 404:
            raise _CliError(
                f"no node with id {args.node_id}; 'heatshare-coordinator node list' lists them"
            ) from exc
        raise _CliError(exc.message) from exc
    finally:
        engine.dispose()
    return EXIT_OK


def _node_action(args: argparse.Namespace, engine: Any, now: datetime) -> None:
    from heatshare.coordinator import db, service

    sessions = db.session_factory(engine)
    if args.node_command == "list":
        with db.transaction(sessions) as s:
            nodes = service.list_nodes(s)
        for n in nodes:
            beat = "never" if n.last_heartbeat_at is None else _when(n.last_heartbeat_at)
            revoked = "" if n.revoked_at is None else f"\trevoked {_when(n.revoked_at)}"
            _out(
                f"{n.node_id}\t{n.account_name}\t{n.hostname}\t{n.state}\t{beat}"
                f"\t{n.leased_attempts} leased\t{n.earned_minor} earned{revoked}"
            )
        return
    # Two transactions, as the API does (service.revoke_node says why); the app servers
    # notice the revocation marker within about a second.
    with db.transaction(sessions) as s:
        already = service.revoke_node(s, args.node_id, now)
    with engine.begin() as conn:
        released = service.release_node_attempts(conn, args.node_id, now)
    with db.transaction(sessions) as s:
        node = service.node_out(s, args.node_id)
    assert node.revoked_at is not None
    what = f"Node {node.node_id} ({node.hostname}, account {node.account_name!r})"
    if already:
        _out(f"{what} was revoked already, at {_when(node.revoked_at)}.")
    else:
        _out(f"{what} is removed from the network from {_when(node.revoked_at)}.")
    if released:
        _out(f"{len(released)} leased job(s) went back to the queue.")
    _out(f"What it earned ({node.earned_minor} minor units) stays in the ledger.")


def _when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


# --- serve ---------------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # noqa: S104
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _write_runtime(path: Path, url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": url, "pid": os.getpid()}, f)
    tmp.chmod(0o600)  # an older file of that name kept its own mode
    tmp.replace(path)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from heatshare.coordinator.app import create_app
    from heatshare.coordinator.service import RefusedError
    from heatshare.coordinator.settings import Settings

    if not 0 <= args.port <= 65535:
        raise _CliError(f"{args.port} is not a port number")
    url = db_url(args.db)
    overrides: dict[str, Any] = {}
    if args.lease_s is not None:
        overrides["lease_s"] = args.lease_s
    if args.max_jobs_per_node is not None:
        overrides["max_in_progress_per_node"] = args.max_jobs_per_node
    currency = args.currency
    if args.demo:
        currency = currency or DEMO_CURRENCY
        overrides.setdefault("lease_s", DEMO_LEASE_S)
        overrides.update(heartbeat_interval_s=DEMO_HEARTBEAT_S, sweep_interval_s=DEMO_SWEEP_S)
    settings = Settings(
        db_url=url, blob_dir=blob_dir(url, args.blob_dir), currency=currency, **overrides
    )
    try:
        app = create_app(settings)
    except RefusedError as exc:
        raise _CliError(exc.message) from exc
    except Exception as exc:
        raise _database_error(url, exc) from exc
    coordinator: Coordinator = app.state.coordinator
    demo_key = _prepare_demo(coordinator) if args.demo else None
    sock = _bind(args.host, args.port)
    base_url = _url(sock)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=args.access_log,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    stop = threading.Event()
    server = _Server(config, stop)
    runtime = Path(args.runtime_file).expanduser().absolute() if args.runtime_file else None
    watcher = threading.Thread(
        target=_when_listening,
        args=(server, stop, base_url, runtime, demo_key),
        name="coordinator-started",
        daemon=True,
    )
    watcher.start()
    log.info("Coordinator %s on %s, database %s", __version__, base_url, _safe(url))
    # uvicorn handles SIGINT and SIGTERM (finishes requests, then returns) and afterwards
    # raises the signal again for the handler it found; with these, that ends in exit 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stopped_by)
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        watcher.join(timeout=15)
        sock.close()
        if runtime is not None:
            with contextlib.suppress(FileNotFoundError):
                runtime.unlink()
    log.info("Coordinator stopped")
    return EXIT_OK


def _stopped_by(signum: int, _frame: Any) -> None:
    log.info("Stopped by %s", signal.Signals(signum).name)


def _server_class() -> Any:
    import uvicorn

    class StoppingServer(uvicorn.Server):
        """Tells the demo requester to stop as soon as a signal asks the server to."""

        def __init__(self, config: uvicorn.Config, stop: threading.Event) -> None:
            super().__init__(config)
            self.stop_event = stop

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.stop_event.set()
            super().handle_exit(sig, frame)

    return StoppingServer


def _Server(config: Any, stop: threading.Event) -> Any:  # noqa: N802 - reads as a class
    return _server_class()(config, stop)


def _when_listening(
    server: Any, stop: threading.Event, base_url: str, runtime: Path | None, demo_key: str | None
) -> None:
    while not server.started:
        if stop.wait(0.05):
            return
    log.info("Listening on %s (API under %s/v1, docs at %s/v1/docs)", base_url, base_url, base_url)
    if runtime is not None:
        _write_runtime(runtime, base_url)
    if demo_key is None:
        return
    try:
        # Imported by name: the demo is optional to the server, and found only when needed.
        demo_module = importlib.import_module("heatshare.coordinator.demo")
        requester = demo_module.DemoRequester(base_url, demo_key, stop)
    except (ImportError, AttributeError) as exc:
        log.error("The demo requester is not available (%s); the demo network has no jobs", exc)
        return
    demo = threading.Thread(target=requester.run, name="demo-requester", daemon=True)
    demo.start()
    stop.wait()
    demo.join(timeout=10)


def _prepare_demo(coordinator: Coordinator) -> str:
    """Create the demo account and requester if absent; a fresh key for this run."""
    from heatshare.coordinator import service

    with coordinator.transaction() as s:
        now = coordinator.now()
        if service.account_by_name(s, DEMO_NAME) is None:
            service.create_account(s, DEMO_NAME, now)
        try:
            key, _row = service.create_requester(s, DEMO_NAME, now)
        except service.RefusedError:
            key = service.rotate_requester_key(s, DEMO_NAME)
    return key


# --- submit --------------------------------------------------------------------------------


def pack_folder(folder: Path) -> bytes:
    """A deterministic tar.gz of ``folder``: sorted names, mtime 0, owner 0, normalised modes."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise _CliError(
                    f"{path} is a symbolic link; bundles hold plain files and folders only"
                )
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif path.is_file():
                info.size = path.stat().st_size
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                raise _CliError(f"{path} is not a plain file or folder")
    return buf.getvalue()


def submit(args: argparse.Namespace) -> int:
    import requests

    if not args.url or not args.api_key:
        raise _CliError(f"submit needs --url and --api-key (or ${ENV_URL} and ${ENV_API_KEY})")
    source = Path(args.bundle).expanduser()
    if source.is_dir():
        data = pack_folder(source)
    elif source.is_file() and source.name.endswith((".tar.gz", ".tgz")):
        data = source.read_bytes()
    else:
        raise _CliError(f"{source} is neither a folder nor a .tar.gz file")
    command = shlex.split(args.job_command)
    if not command:
        raise _CliError("--command is empty")
    digest = hashlib.sha256(data).hexdigest()
    base = args.url.rstrip("/")
    headers = {"Authorization": f"Bearer {args.api_key}"}
    with requests.Session() as http:
        try:
            r = http.post(
                f"{base}/v1/bundles",
                data=data,
                headers={
                    **headers,
                    "X-Heatshare-Sha256": digest,
                    "Content-Type": "application/octet-stream",
                },
                timeout=120,
            )
            _check(r)
            job = {
                "bundle_sha256": digest,
                "command": command,
                "price_minor": args.price,
                "label": args.label,
                "replication": args.replication,
                "max_attempts": args.max_attempts,
                "resources": {
                    "cpu_cores": args.cpu_cores,
                    "memory_bytes": args.memory_mb * 1024 * 1024,
                    "gpus": args.gpus,
                    "wall_time_s": args.wall_time_s,
                },
            }
            if args.deadline_s is not None:
                deadline = datetime.now(UTC) + timedelta(seconds=args.deadline_s)
                job["deadline"] = deadline.isoformat()
            r = http.post(f"{base}/v1/jobs", json=job, headers=headers, timeout=30)
            _check(r)
        except requests.RequestException as exc:
            raise _CliError(f"cannot reach the coordinator at {base}: {exc}") from exc
    body = r.json()
    _out(json.dumps(body, indent=2, sort_keys=True))
    _out(str(body["job_id"]))
    return EXIT_OK


def _check(r: Any) -> None:
    if r.status_code < 400:
        return
    try:
        message = r.json()["error"]
        detail = r.json().get("detail") or []
    except (ValueError, KeyError, TypeError):
        message, detail = r.text[:200], []
    raise _CliError("; ".join([f"the coordinator refused ({r.status_code}): {message}", *detail]))
