"""``heatshare-agent``: run the service, ask it how it is, stop it.

``run`` is the composition root of the agent program: it builds the store, the sensors, the
service and the local API, and passes them in. ``status`` and ``stop`` are clients of the
local API, like the app. Imports are lazy so ``--help`` and ``status`` stay quick and ``run``
does not carry an HTTP client library in its memory.

Exit codes: 0 done; 1 an error (another agent runs on the profile, the port is taken, the
database cannot be opened, the agent refused the request); 2 a usage error; 3 no agent
answers.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from heatshare.__about__ import __version__

if TYPE_CHECKING:
    from heatshare.agent.service import AgentService
    from heatshare.protocol.client import AgentClient
    from heatshare.protocol.discovery import Paths
    from heatshare.protocol.local_api import AgentStatus

log = logging.getLogger("heatshare.agent")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNREACHABLE = 3
LOG_FILE = "agent.log"
LOCK_FILE = "agent.lock"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"heatshare-agent: {text}\n")


def parse_address(text: str, *, allow_zero: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:47821`` for IPv6) as a pair; raises ``ArgumentTypeError``."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (for example 127.0.0.1:47821)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port_text!r} is not a port number")
    return host, port


def _listen_address(text: str) -> tuple[str, int]:
    return parse_address(text, allow_zero=True)


def build_parser() -> argparse.ArgumentParser:
    version = f"heatshare-agent {__version__}"
    parser = argparse.ArgumentParser(
        prog="heatshare-agent",
        description="The Heatshare heater-server service and its command line.",
    )
    parser.add_argument("--version", action="version", version=version)
    # Options after the command name (a subparser's defaults would overwrite the same options
    # given before it).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--version", action="version", version=version)
    common.add_argument(
        "--profile-dir",
        metavar="DIR",
        help="keep data, settings, token and logs under DIR instead of the user's folders",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run the agent in the foreground",
        description="Run the agent in the foreground until SIGTERM, Ctrl+C or "
        "`heatshare-agent stop`.",
    )
    run.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=_listen_address,
        help="address of the local API (default 127.0.0.1, port 47821 or a free one; "
        "port 0 lets the OS pick)",
    )
    run.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of the log file (default INFO; stderr shows warnings and errors)",
    )

    for name, text in (("status", "print the agent's current state"), ("stop", "stop the agent")):
        cmd = sub.add_parser(name, parents=[common], help=text, description=text.capitalize() + ".")
        cmd.add_argument(
            "--connect",
            metavar="HOST:PORT",
            type=parse_address,
            help="ask the agent at HOST:PORT instead of the profile's own agent",
        )
        cmd.add_argument(
            "--token",
            metavar="TOKEN",
            default=os.environ.get("HEATSHARE_TOKEN"),
            help="that agent's token (its agent-token file; default $HEATSHARE_TOKEN, "
            "else the profile's own token)",
        )
        if name == "status":
            cmd.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run_agent(args)
    if args.command == "status":
        return status_command(args)
    return stop_command(args)


# -- run --------------------------------------------------------------------------------------


def setup_logging(log_dir: os.PathLike[str] | str, level: str) -> None:
    """A rotating file in the profile's log folder, and warnings and errors on stderr."""
    from logging.handlers import RotatingFileHandler

    root = logging.getLogger()
    root.setLevel(logging.DEBUG if level == "DEBUG" else logging.INFO)
    file_handler = RotatingFileHandler(
        Path(log_dir) / LOG_FILE, maxBytes=2 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    file_handler.setLevel(level)
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s")
    )
    root.addHandler(file_handler)
    if sys.stderr is not None:  # None when started detached without a console (pythonw)
        stderr_handler = logging.StreamHandler(sys.stderr)
        stderr_handler.setLevel(logging.WARNING)
        stderr_handler.setFormatter(
            logging.Formatter("heatshare-agent: %(levelname)s: %(message)s")
        )
        root.addHandler(stderr_handler)

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.critical("Uncaught exception", exc_info=(kind, exc, tb))

    def thread_excepthook(hook_args: threading.ExceptHookArgs) -> None:
        if hook_args.exc_type is SystemExit:
            return
        name = hook_args.thread.name if hook_args.thread is not None else "?"
        log.critical(
            "Uncaught exception in thread %s",
            name,
            exc_info=(
                hook_args.exc_type,
                hook_args.exc_value or hook_args.exc_type(),
                hook_args.exc_traceback,
            ),
        )

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def run_agent(args: argparse.Namespace) -> int:
    """``heatshare-agent run``: the composition root of the agent program."""
    from heatshare.agent.lock import ProfileLock
    from heatshare.protocol.discovery import Paths

    paths = Paths.for_profile(args.profile_dir)
    paths.ensure()
    lock = ProfileLock(paths.config_dir / LOCK_FILE)
    # The lock comes before the log file: two agents must not rotate one log between them.
    if not lock.acquire():
        pid = lock.holder_pid()
        _err(
            "another agent is already running for this profile "
            f"({paths.config_dir}{f', pid {pid}' if pid else ''}); this one exits."
        )
        return EXIT_ERROR
    try:
        setup_logging(paths.log_dir, args.log_level)
        return _serve(paths, args.listen)
    finally:
        lock.release()


def _serve(paths: Paths, listen: tuple[str, int] | None) -> int:
    from heatshare.agent.api import ApiServer
    from heatshare.agent.service import AgentService
    from heatshare.protocol.discovery import ensure_token
    from heatshare.store import StoreError

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("Signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    def on_shutdown() -> None:
        log.info("Shutdown requested through the local API")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    log.info(
        "heatshare-agent %s starting (pid %d, data in %s)", __version__, os.getpid(), paths.data_dir
    )
    try:
        service = AgentService.open(paths.db_file)
    except StoreError as exc:
        log.error("%s", exc)  # the environment's fault: its message says what to do
        return EXIT_ERROR
    try:
        token = ensure_token(paths)
        host, port = listen if listen is not None else ("127.0.0.1", None)
        try:
            api = ApiServer(
                service, token, host=host, port=port, paths=paths, on_shutdown=on_shutdown
            )
        except OSError as exc:
            log.error("The local API cannot listen on %s:%s: %s", host, port, exc.strerror or exc)
            return EXIT_ERROR
        try:
            api.start()
            service.start()
            log.info("Running; the local API is at %s", api.base_url)
            _banner(service, api.base_url, paths)
            stop.wait()
            log.info("Stopping")
        finally:
            api.stop()
    finally:
        service.stop()
    log.info("Stopped")
    return EXIT_OK


def _banner(service: AgentService, base_url: str, paths: Paths) -> None:
    """A few lines for a person who started the agent by hand (a headless heater)."""
    if sys.stdout is None:  # started detached without a console
        return
    lines = [
        f"Heatshare agent {__version__} is running (pid {os.getpid()}).",
        f"  Local API   {base_url} (token in {paths.token_file})",
        f"  History     {paths.db_file}",
        f"  Log         {paths.log_dir / 'agent.log'}",
        *(f"  Sensor      {line}" for line in service.describe_sensors()),
        "Stop it with Ctrl+C or `heatshare-agent stop`; see it with `heatshare-agent status`.",
    ]
    _out("\n".join(lines))
    sys.stdout.flush()


# -- status and stop --------------------------------------------------------------------------


class _NoAgentError(Exception):
    pass


def _client(args: argparse.Namespace) -> AgentClient:
    from heatshare.protocol.client import AgentClient
    from heatshare.protocol.discovery import Paths, RuntimeInfo, read_runtime, read_token

    paths = Paths.for_profile(args.profile_dir)
    if args.connect is not None:
        host, port = args.connect
        base_url = RuntimeInfo(host=host, port=port, pid=0, version="").base_url
    else:
        info = read_runtime(paths)
        if info is None:
            raise _NoAgentError(
                f"No agent is running for this profile (no {paths.runtime_file}). "
                "Start one with: heatshare-agent run"
            )
        base_url = info.base_url
    return AgentClient(base_url, args.token or read_token(paths), timeout_s=5.0)


def _call(args: argparse.Namespace, what: str) -> tuple[int, object]:
    from heatshare.protocol.client import AgentError, AgentUnreachable

    try:
        client = _client(args)
    except _NoAgentError as exc:
        _err(str(exc))
        return EXIT_UNREACHABLE, None
    try:
        return EXIT_OK, (client.status() if what == "status" else client.shutdown())
    except AgentUnreachable:
        _err(
            f"no agent answers at {client.base_url}; it is not running "
            "(or it stopped without tidying up)."
        )
        return EXIT_UNREACHABLE, None
    except AgentError as exc:
        hint = " Is this the agent's profile (--profile-dir)?" if exc.status == 401 else ""
        _err(f"{exc}{hint}")
        return EXIT_ERROR, None
    finally:
        client.close()


def status_command(args: argparse.Namespace) -> int:
    """``heatshare-agent status [--json]``."""
    code, result = _call(args, "status")
    if code != EXIT_OK:
        return code
    from heatshare.protocol.local_api import AgentStatus

    assert isinstance(result, AgentStatus)
    _out(result.model_dump_json() if args.json else format_status(result))
    return EXIT_OK


def _num(value: float | None, unit: str, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}".rstrip()


def format_status(status: AgentStatus) -> str:
    """The status as a few lines people read."""
    from heatshare.domain.money import format_money

    lines = [f"Heatshare agent {status.agent_version} on {status.hostname}: {status.state.value}"]
    if status.paused_until is not None:
        local = status.paused_until.astimezone().strftime("%Y-%m-%d %H:%M")
        lines.append(f"  Paused until   {local}")
    heat = _num(status.heat_w, "W", 1)
    if status.heat_w is not None:
        heat += f" ({status.heat_btu_h or 0:.0f} BTU/h)"
        if status.heat_provenance is not None:
            heat += f", {status.heat_provenance.label}"
    lines.append(f"  Heat output    {heat}")
    lines.append(
        f"  Today          {status.heat_today_kwh:.3f} kWh, "
        f"costing {format_money(status.cost_today_minor, status.currency)}"
    )
    temps = ", ".join(f"{name} {_num(t, '°C')}" for name, t in status.temperatures.items())
    lines.append(f"  Temperatures   {temps or 'none readable'}")
    host = status.host
    lines.append(f"  CPU            {_num(host.cpu_pct, '%')}, memory {_num(host.mem_pct, '%')}")
    for gpu in status.gpus:
        lines.append(
            f"  GPU {gpu.index}          {gpu.name}: {_num(gpu.power_w, 'W', 1)}, "
            f"{_num(gpu.util_gpu_pct, '%')}"
        )
    lines.extend(f"  Note: {w}" for w in status.warnings)
    return "\n".join(lines)


def stop_command(args: argparse.Namespace) -> int:
    """``heatshare-agent stop``: ask the agent to stop, and wait until it has."""
    from heatshare.protocol.discovery import Paths, read_runtime

    code, _ = _call(args, "stop")
    if code != EXIT_OK:
        return code
    if args.connect is None:
        paths = Paths.for_profile(args.profile_dir)
        deadline = time.monotonic() + 10.0
        while read_runtime(paths) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if read_runtime(paths) is not None:
            _err("the agent was asked to stop but has not stopped yet.")
            return EXIT_ERROR
    _out("The agent stopped.")
    return EXIT_OK
