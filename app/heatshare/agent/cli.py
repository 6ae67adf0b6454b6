"""``heatshare-agent``: run the service, ask it how it is, stop it.

``run`` is the composition root of the agent program: it builds the store, the sensors, the
service, the job engine and the local API, and passes them in. Every other command is a
client of the running agent's local API, like the app: ``status`` and ``stop``, and for the
compute network ``enrol``, ``demo``, ``leave``, ``jobs`` and ``earnings``, ``heating`` for the
thermostat and ``energy`` for the cost of heat, statements and price lists. Imports are lazy so
``--help`` and ``status`` stay quick.

Exit codes: 0 done; 1 an error (another agent runs on the profile, the port is taken, the
database cannot be opened, the agent or the network refused the request); 2 a usage error;
3 no agent answers.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from heatshare.__about__ import __version__

if TYPE_CHECKING:
    from heatshare.agent.service import AgentService
    from heatshare.protocol.client import AgentClient
    from heatshare.protocol.discovery import Paths
    from heatshare.protocol.energy import CostFigures, CostsResponse
    from heatshare.protocol.heating import HeatingStatus
    from heatshare.protocol.local_api import (
        AgentStatus,
        EarningsResponse,
        JobInfo,
        JobsResponse,
        NetworkStatus,
    )
    from heatshare.sensors import SensorSuite

log = logging.getLogger("heatshare.agent")
T = TypeVar("T")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
LOG_FILE = "agent.log"
LOCK_FILE = "agent.lock"
# How long a command waits for an agent that is starting to publish its address.
START_WAIT_S = 20.0


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
        description="The Heatshare agent: the service that reads this computer's sensors, "
        "keeps its history, heats the room and runs the compute network's jobs. `run` is the "
        "service itself; every other command asks the running agent. "
        "`heatshare-agent COMMAND --help` explains each command.",
        epilog="Exit codes: 0 done; 1 an error (said on stderr); 2 a usage error; "
        "3 no agent answers.",
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

    # Commands that ask the running agent through its local API: (name, help, description).
    clients = (
        ("status", "print the agent's current state", "Print the agent's current state."),
        ("stop", "stop the agent", "Stop the agent."),
        (
            "enrol",
            "join a compute network with a pairing code",
            "Join the compute network at URL with the pairing code CODE that its operator "
            "gave you. The running agent checks the code with the network at once, and says "
            "why when the network refuses it (a wrong or expired code, a server that does "
            "not answer or whose certificate is not trusted). Once enrolled, the agent takes "
            "the network's jobs whenever it is not paused.",
        ),
        (
            "demo",
            "join the demo network on this machine",
            "Start the demo network (a small network on this machine whose requester keeps "
            "submitting example jobs, paid in demo credits) and join it: jobs start within "
            "a minute.",
        ),
        (
            "leave",
            "leave the compute network",
            "Leave the compute network: jobs in progress are stopped and the enrolment is "
            "forgotten. Join again with `heatshare-agent enrol` and a new pairing code.",
        ),
        (
            "jobs",
            "list the jobs in progress and the recent ones",
            "List the jobs in progress, then the most recent ones: phase, progress, time "
            "run, energy used and what each earned.",
        ),
        (
            "earnings",
            "print this machine's earnings",
            "Print this machine's earnings as the network last reported them: its balance, "
            "its account's balance, today's credits and the latest entries.",
        ),
        (
            "heating",
            "show the thermostat, or change its mode, boost or setpoint",
            "Without an action: what the thermostat sees and decides (room and target "
            "temperature, mode, why it computes or not, safety stops). "
            "`heating mode MODE` (heat_first, earn_first, quiet, off); "
            "`heating boost [MINUTES]` (full heat for a while, 60 by default, 0 ends it); "
            "`heating setpoint C|+0.5|-0.5|clear` (a temporary target until the schedule's "
            "next change, a nudge of it, or back to the schedule).",
        ),
        (
            "energy",
            "show what heat costs, export a statement, import prices",
            "Without an action: the cost of heat today, this month and this season "
            "(electricity, earnings, heat delivered, cost per kWh of heat beside the usual "
            "heating's, the saving) and where the heat figure comes from. "
            "`energy statement YYYY-MM [--csv]` prints a month's statement; "
            "`energy prices` shows the dynamic price list held; "
            "`energy prices import FILE` imports one (CSV or JSON, as published).",
        ),
    )
    for name, text, description in clients:
        cmd = sub.add_parser(name, parents=[common], help=text, description=description)
        if name == "enrol":
            cmd.add_argument("url", metavar="URL", help="the network's address (https://…)")
            cmd.add_argument("code", metavar="CODE", help="the pairing code from its operator")
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
        if name in ("status", "jobs", "earnings", "heating", "energy"):
            cmd.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "energy":
            cmd.add_argument(
                "action",
                nargs="?",
                choices=["statement", "prices"],
                metavar="ACTION",
                help="statement or prices (none: the cost of heat)",
            )
            cmd.add_argument("values", nargs="*", metavar="VALUE", help="the action's values")
            cmd.add_argument("--csv", action="store_true", help="a statement as CSV")
        if name == "heating":
            cmd.add_argument(
                "action",
                nargs="?",
                choices=["mode", "boost", "setpoint"],
                metavar="ACTION",
                help="mode, boost or setpoint (none: show the thermostat)",
            )
            cmd.add_argument("value", nargs="?", metavar="VALUE", help="the action's value")
        if name == "jobs":
            cmd.add_argument(
                "--limit",
                type=_limit,
                default=50,
                metavar="N",
                help="at most N past jobs (default 50)",
            )
    return parser


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "enrol":
        problem = _enrol_problem(args.url, args.code)
        if problem is not None:
            parser.error(problem)  # exits 2
    if args.command == "heating":
        problem = _heating_problem(args)
        if problem is not None:
            parser.error(problem)
    if args.command == "energy":
        problem = _energy_problem(args)
        if problem is not None:
            parser.error(problem)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": run_agent,
        "status": status_command,
        "stop": stop_command,
        "enrol": enrol_command,
        "demo": demo_command,
        "leave": leave_command,
        "jobs": jobs_command,
        "earnings": earnings_command,
        "heating": heating_command,
        "energy": energy_command,
    }
    return commands[args.command](args)


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


def run_agent(args: argparse.Namespace, *, sensors: SensorSuite | None = None) -> int:
    """``heatshare-agent run``: the composition root of the agent program.

    ``sensors``: this machine's own by default; the fault-injection tests pass theirs.
    """
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
        return _serve(paths, args.listen, sensors)
    finally:
        lock.release()


def _serve(paths: Paths, listen: tuple[str, int] | None, sensors: SensorSuite | None = None) -> int:
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
        service = AgentService.open(paths.db_file, paths=paths, sensors=sensors)
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
            # The service (and its job engine, which reads its journal) starts before the
            # API publishes its address: the first client must see the enrolment and outbox.
            service.start()
            api.start()
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
        *_network_lines(service),
        "Stop it with Ctrl+C or `heatshare-agent stop`; see it with `heatshare-agent status`.",
    ]
    _out("\n".join(lines))
    sys.stdout.flush()


def _network_lines(service: AgentService) -> list[str]:
    """The banner's network lines: enrolled or not, and whether jobs can run here."""
    if not service.has_network:
        return []
    try:
        net = service.network().network_status()
    except Exception:
        log.exception("The network's state could not be read for the banner")
        return ["  Network     its state could not be read (see the log)"]
    return [f"  Network     {describe_enrolment(net)}", f"  Jobs        {describe_jobs(net)}"]


def describe_enrolment(net: NetworkStatus) -> str:
    """Whether this machine is enrolled, in a line."""
    if not net.enrolled:
        return (
            "not enrolled; join with `heatshare-agent enrol URL CODE`, "
            "or try `heatshare-agent demo`"
        )
    where = "the demo network" if net.demo else f"the network at {net.coordinator_url}"
    who = f" as node {net.node_id}" if net.node_id is not None else ""
    account = f" (account {net.account_name})" if net.account_name else ""
    return f"enrolled in {where}{who}{account}"


def describe_jobs(net: NetworkStatus) -> str:
    """Whether jobs can run here, and in which sandbox or why not, in a line."""
    if net.sandbox_problem:
        return f"cannot run here: {net.sandbox_problem}"
    if net.sandbox:
        return f"run here in the {net.sandbox} sandbox"
    return "cannot run here: no sandbox was found"


# -- status and stop --------------------------------------------------------------------------


class _NoAgentError(Exception):
    pass


def _agent_starting(paths: Paths) -> bool:
    """Whether an agent holds the profile's lock but has not published its address yet.

    A script that starts ``heatshare-agent run`` in the background and enrols next asks
    before the agent listens; the lock file names the agent's pid from its first moment.
    The lock itself is not tried: taking it, even briefly, could turn that agent away.
    """
    import psutil

    from heatshare.agent.lock import ProfileLock

    pid = ProfileLock(paths.config_dir / LOCK_FILE).holder_pid()
    return pid is not None and pid != os.getpid() and psutil.pid_exists(pid)


def _client(args: argparse.Namespace) -> AgentClient:
    from heatshare.protocol.client import AgentClient
    from heatshare.protocol.discovery import Paths, RuntimeInfo, read_runtime, read_token

    paths = Paths.for_profile(args.profile_dir)
    if args.connect is not None:
        host, port = args.connect
        base_url = RuntimeInfo(host=host, port=port, pid=0, version="").base_url
    else:
        info = read_runtime(paths)
        if info is None and _agent_starting(paths):
            deadline = time.monotonic() + START_WAIT_S
            while info is None and time.monotonic() < deadline and _agent_starting(paths):
                time.sleep(0.1)
                info = read_runtime(paths)
        if info is None:
            raise _NoAgentError(
                f"No agent is running for this profile (no {paths.runtime_file}). "
                "Start one with: heatshare-agent run"
            )
        base_url = info.base_url
    return AgentClient(base_url, args.token or read_token(paths), timeout_s=5.0)


JOIN_HINT = " Join one with `heatshare-agent enrol URL CODE`, or try `heatshare-agent demo`."


def _call(
    args: argparse.Namespace, call: Callable[[AgentClient], T], *, hint_404: str = ""
) -> tuple[int, T | None]:
    """``call`` on a client of the agent: the exit code, and the answer where there is one.

    ``hint_404`` follows the agent's sentence when it answers 404 (for example: not enrolled).
    """
    from heatshare.protocol.client import AgentError, AgentUnreachable

    try:
        client = _client(args)
    except _NoAgentError as exc:
        _err(str(exc))
        return EXIT_UNREACHABLE, None
    try:
        return EXIT_OK, call(client)
    except AgentUnreachable:
        _err(
            f"no agent answers at {client.base_url}; it is not running "
            "(or it stopped without tidying up)."
        )
        return EXIT_UNREACHABLE, None
    except AgentError as exc:
        hint = {401: " Is this the agent's profile (--profile-dir)?", 404: hint_404}.get(
            exc.status, ""
        )
        _err(f"{exc}{hint}")
        return EXIT_ERROR, None
    finally:
        client.close()


def status_command(args: argparse.Namespace) -> int:
    """``heatshare-agent status [--json]``."""
    code, result = _call(args, lambda c: c.status())
    if result is None:
        return code
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
    if status.job_label is not None:
        progress = "" if status.job_progress is None else f", {status.job_progress * 100:.0f} %"
        lines.append(f"  Job            {status.job_label}{progress}")
    if status.earned_today_minor is not None and status.earnings_currency:
        earned = format_money(status.earned_today_minor, status.earnings_currency)
        lines.append(f"  Earned today   {earned}")
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

    code, _ = _call(args, lambda c: c.shutdown())
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


# -- the compute network ----------------------------------------------------------------------


def _enrol_problem(url: str, code: str) -> str | None:
    """Why ``URL CODE`` cannot be a network's address and pairing code; None when they can."""
    from pydantic import ValidationError

    from heatshare.agent.api import enrol_url_problem
    from heatshare.protocol.local_api import EnrolLocal

    try:
        EnrolLocal(url=url, code=code)
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        if "url" in fields:
            return f"{url!r} is not a network address: give one like https://network.example"
        return f"{code!r} is not a pairing code: it is 4 to 32 letters, digits and dashes"
    return enrol_url_problem(url)


def _print_network(net: NetworkStatus) -> None:
    _out(f"Network: {describe_enrolment(net)}.")
    _out(f"Jobs: {describe_jobs(net)}.")


def enrol_command(args: argparse.Namespace) -> int:
    """``heatshare-agent enrol URL CODE``: join a network through the running agent."""
    code, net = _call(args, lambda c: c.enrol(args.url, args.code))
    if net is None:
        return code
    _print_network(net)
    return EXIT_OK


def demo_command(args: argparse.Namespace) -> int:
    """``heatshare-agent demo``: start the demo network and join it."""
    code, net = _call(args, lambda c: c.start_demo())
    if net is None:
        return code
    _print_network(net)
    _out("See its jobs with `heatshare-agent jobs`, its credits with `heatshare-agent earnings`.")
    return EXIT_OK


def leave_command(args: argparse.Namespace) -> int:
    """``heatshare-agent leave``."""
    code, net = _call(args, lambda c: c.leave_network())
    if net is None:
        return code
    _out("This machine is not enrolled in any network now.")
    return EXIT_OK


def jobs_command(args: argparse.Namespace) -> int:
    """``heatshare-agent jobs [--json]``."""
    code, jobs = _call(args, lambda c: c.jobs(args.limit))
    if jobs is None:
        return code
    _out(jobs.model_dump_json() if args.json else format_jobs(jobs))
    return EXIT_OK


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _job_row(job: JobInfo) -> list[str]:
    from heatshare.domain.money import format_money
    from heatshare.domain.units import J_PER_KWH

    progress = "" if job.progress is None else f"{job.progress * 100:.0f} %"
    what = job.error or job.result_status or job.progress_message
    if not job.currency:
        money = ""
    elif job.credited_minor is not None:
        money = format_money(job.credited_minor, job.currency)
    else:
        money = f"({format_money(job.price_minor, job.currency)})"
    return [
        str(job.attempt_id),
        str(job.job_id),
        job.label or "—",
        job.phase.value,
        progress,
        _duration(job.elapsed_s),
        "—" if job.energy_j is None else f"{job.energy_j / J_PER_KWH:.4f} kWh",
        money,
        what,
    ]


def format_jobs(jobs: JobsResponse) -> str:
    """The jobs as a table people read: in progress first, then the recent ones."""
    if not jobs.current and not jobs.history:
        return "No jobs yet."
    head = ["attempt", "job", "label", "phase", "progress", "ran", "energy", "earned", "note"]
    blocks: list[str] = []
    for title, items in (("In progress", jobs.current), ("Recent", jobs.history)):
        if not items:
            continue
        rows = [head, *(_job_row(j) for j in items)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        lines = [
            "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip()
            for r in rows
        ]
        blocks.append("\n".join([f"{title}:", *(f"  {ln}" for ln in lines)]))
    blocks.append(
        "Earned: credited so far; (price): what the job pays once its result is accepted."
    )
    return "\n\n".join(blocks)


def earnings_command(args: argparse.Namespace) -> int:
    """``heatshare-agent earnings [--json]``."""
    code, earnings = _call(args, lambda c: c.earnings(), hint_404=JOIN_HINT)
    if earnings is None:
        return code
    _out(earnings.model_dump_json() if args.json else format_earnings(earnings))
    return EXIT_OK


def format_earnings(earnings: EarningsResponse) -> str:
    """The earnings as a few lines people read."""
    from heatshare.domain.money import format_money

    def money(minor: int) -> str:
        return format_money(minor, earnings.currency)

    lines = [
        f"This machine   {money(earnings.balance_minor)}",
        f"Its account    {money(earnings.account_balance_minor)}",
        f"Today          {money(earnings.today_minor)}",
    ]
    if earnings.as_of is not None:
        local = earnings.as_of.astimezone().strftime("%Y-%m-%d %H:%M")
        lines.append(f"As of          {local} (the network's last word)")
    if earnings.entries:
        lines.append("Latest:")
        for e in earnings.entries[:20]:
            at = e.at.astimezone().strftime("%Y-%m-%d %H:%M")
            job = f" job {e.job_id}" if e.job_id is not None else ""
            memo = f" {e.memo}" if e.memo else ""
            lines.append(f"  {at}  {money(e.amount_minor):>12}  {e.kind}{job}{memo}")
    return "\n".join(lines)


# -- heating ----------------------------------------------------------------------------------

_MODES = ("heat_first", "earn_first", "quiet", "off")


def _heating_problem(args: argparse.Namespace) -> str | None:  # noqa: PLR0911 - one per mistake
    """Why ``heating ACTION VALUE`` cannot be carried out, as a sentence; None when it can.

    Checked here so a typo says what is accepted; also sets ``args.request``.
    """
    from pydantic import ValidationError

    from heatshare.protocol.heating import BoostRequest, HeatMode, ModeRequest

    action, value = args.action, args.value
    args.request = None
    if action is None:
        if value is not None:
            return "give an action before a value: mode, boost or setpoint"
        return None
    try:
        if action == "mode":
            mode = (value or "").strip().lower().replace("-", "_")
            if mode not in _MODES:
                return f"the mode is one of {', '.join(_MODES)}, not {value!r}"
            args.request = ModeRequest(mode=HeatMode(mode))
        elif action == "boost":
            minutes = 60 if value is None else int(value) if value.strip().isdigit() else -1
            if not 0 <= minutes <= 240:
                return f"a boost lasts 0 to 240 minutes (0 ends one), not {value!r}"
            args.request = BoostRequest(minutes=minutes)
        else:
            args.request = _setpoint_request(value)
            if args.request is None:
                return (
                    "give the setpoint as degrees Celsius (20.5), a nudge (+0.5, -0.5) or "
                    f"clear, not {value!r}"
                )
    except ValidationError as exc:
        from heatshare.agent.service import validation_lines

        return f"{value!r} is not accepted: {'; '.join(validation_lines(exc))}"
    return None


def _setpoint_request(value: str | None) -> Any:
    import math

    from heatshare.protocol.heating import SetpointRequest

    text = (value or "").strip().lower()
    if text == "clear":
        return SetpointRequest(clear=True)
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if text.startswith(("+", "-")):
        return SetpointRequest(delta_c=number)
    return SetpointRequest(setpoint_c=number)


def heating_command(args: argparse.Namespace) -> int:
    """``heatshare-agent heating [mode MODE | boost [MINUTES] | setpoint C|+0.5|-0.5|clear]``."""
    from heatshare.protocol.heating import BoostRequest, ModeRequest

    request = args.request

    def call(c: AgentClient) -> HeatingStatus:
        if isinstance(request, ModeRequest):
            return c.set_mode(request.mode)
        if isinstance(request, BoostRequest):
            return c.boost(request.minutes)
        if request is not None:
            return c.setpoint(request)
        return c.heating()

    code, status = _call(args, call)
    if status is None:
        return code
    _out(status.model_dump_json() if args.json else format_heating(status))
    return EXIT_OK


def _local(value: Any) -> str:
    return value.astimezone().strftime("%a %H:%M") if value is not None else "—"


def format_heating(status: HeatingStatus) -> str:
    """What the thermostat sees and decides, as a few lines people read."""
    mode = status.mode.value.replace("_", " ")
    if status.boost_until is not None:
        mode += f", boost until {_local(status.boost_until)}"
    lines = [f"Heating: {mode}; {'computing' if status.computing else 'not computing'}"]
    if status.reason:
        lines.append(f"  Why            {status.reason}")
    room = _num(status.room_c, "°C", 1)
    if status.room_problem:
        room += f" ({status.room_problem})"
    lines.append(f"  Room           {room} (source: {status.room_source.value.replace('_', ' ')})")
    target = _num(status.setpoint_c, "°C", 1)
    if status.setpoint_c is not None:
        target += f" ({status.setpoint_source}"
        if status.override_until is not None:
            target += f" until {_local(status.override_until)}"
        elif status.next_change_at is not None:
            target += f", next change {_local(status.next_change_at)}"
        target += ")"
    lines.append(f"  Target         {target}")
    if status.outdoor_c is not None:
        lines.append(f"  Outdoor        {_num(status.outdoor_c, '°C', 1)}")
    if status.summer:
        lines.append("  Summer         no heat is wanted now")
    actuation = status.actuation.value.replace("_", " ")
    if status.gpu_power_limit_w is not None:
        actuation += f", GPU capped at {status.gpu_power_limit_w:.0f} W"
    lines.append(f"  Demand         {status.demand_pct:.0f} % ({actuation})")
    for event in status.events:
        lines.append(f"  Safety         {event.message}")
    lines.extend(f"  Advice         {a}" for a in status.alerts)
    if status.home_assistant != "off":
        ha: str = status.home_assistant
        if status.home_assistant_error:
            ha += f": {status.home_assistant_error}"
        lines.append(f"  Home Assistant {ha}")
    return "\n".join(lines)


# -- energy -----------------------------------------------------------------------------------


def _energy_problem(args: argparse.Namespace) -> str | None:  # noqa: PLR0911 - one per mistake
    """Why ``energy ACTION VALUES`` cannot be carried out, as a sentence; None when it can."""
    import re

    action, values = args.action, list(args.values)
    if args.csv and action != "statement":
        return "--csv is for `energy statement YYYY-MM`"
    if action is None:
        return "give an action before a value: statement or prices" if values else None
    if action == "statement":
        if len(values) != 1 or not re.fullmatch(r"\d{4}-\d{2}", values[0]):
            return "give the month as YYYY-MM, for example: energy statement 2026-11"
        if args.csv and args.json:
            return "choose --csv or --json, not both"
        return None
    if not values:
        return None
    if values[0] != "import" or len(values) != 2:
        return "the prices action is `energy prices` or `energy prices import FILE`"
    path = Path(values[1])
    if not path.is_file():
        return f"there is no file {values[1]!r}"
    return None


def energy_command(args: argparse.Namespace) -> int:
    """``heatshare-agent energy [statement YYYY-MM [--csv] | prices [import FILE]]``."""
    if args.action == "statement":
        return _statement_command(args)
    if args.action == "prices":
        return _prices_command(args)
    code, costs = _call(args, lambda c: c.costs())
    if costs is None:
        return code
    _out(costs.model_dump_json() if args.json else format_costs(costs))
    return EXIT_OK


def _statement_command(args: argparse.Namespace) -> int:
    month = args.values[0]
    if args.csv:
        code, text = _call(args, lambda c: c.statement_csv(month))
        if text is None:
            return code
        sys.stdout.write(text)
        return EXIT_OK
    code, statement = _call(args, lambda c: c.statement(month))
    if statement is None:
        return code
    _out(statement.model_dump_json() if args.json else format_statement(statement))
    return EXIT_OK


def _prices_command(args: argparse.Namespace) -> int:
    from heatshare.protocol.energy import PriceListImport

    request = None
    if args.values:
        path = Path(args.values[1])
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            _err(f"the price list {path} could not be read: {exc}")
            return EXIT_ERROR
        is_json = path.suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "[")
        if not text.strip():
            _err(f"the price list {path} is empty")
            return EXIT_ERROR
        request = PriceListImport(format="json" if is_json else "csv", text=text[:5_000_001])
    code, info = _call(
        args, lambda c: c.import_prices(request) if request is not None else c.price_list()
    )
    if info is None:
        return code
    if args.json:
        _out(info.model_dump_json())
        return EXIT_OK
    if info.count == 0:
        _out("No dynamic prices are held.")
    else:
        verb = "Imported" if request is not None else "Held"
        _out(f"{verb}: {info.count} prices, from {_local(info.first)} to {_local(info.last)}")
    if info.error:
        _out(f"  Last fetch     {info.error}")
    return EXIT_OK


def _money(minor: int | None, currency: str) -> str:
    from heatshare.domain.money import format_money

    return "—" if minor is None else format_money(minor, currency)


def _per_kwh(micro: int | None, currency: str) -> str:
    from decimal import Decimal

    from heatshare.domain.money import minor_per_major

    if micro is None:
        return "—"
    per_major = minor_per_major(currency)
    return f"{Decimal(micro) / 1_000_000 / per_major:.4f} {currency}/kWh"


def _figures(f: CostFigures, currency: str) -> list[str]:
    lines = [
        f"  {f.period.capitalize():<14} heat {f.heat_kwh} kWh, electricity "
        f"{_money(f.electricity_cost_minor, currency)}, earnings "
        f"{_money(f.earnings_minor, currency)}, net {_money(f.net_cost_minor, currency)}",
        f"  {'':<14} per kWh of heat {_per_kwh(f.effective_micro_per_kwh, currency)}; usual "
        f"heating {_per_kwh(f.usual_micro_per_kwh, currency)}, "
        f"{_money(f.usual_cost_minor, currency)} for the same heat; saving "
        f"{_money(f.saving_minor, currency)}",
    ]
    for note in (f.effective_note, f.usual_note, f.earnings_note):
        if note:
            lines.append(f"  {'':<14} {note}")
    return lines


def format_costs(costs: CostsResponse) -> str:
    """The cost of heat as a few lines people read."""
    source = costs.heat_source.label if costs.heat_source is not None else "not known yet"
    lines = [f"Cost of heat ({costs.currency}); heat {source}"]
    if costs.plug_error:
        lines.append(f"  Plug           {costs.plug_error}")
    if costs.price_now_per_kwh is not None:
        price = f"{costs.price_now_per_kwh} {costs.currency}/kWh"
        if costs.price_now_fallback:
            price += " (no published price: the flat price)"
        lines.append(f"  Price now      {price}")
    for figures in (costs.today, costs.month, costs.season):
        lines.extend(_figures(figures, costs.currency))
    return "\n".join(lines)


def format_statement(statement: Any) -> str:
    """A month's statement as a table: a line a day with energy, then the total."""
    cur = statement.currency
    lines = [f"Statement {statement.month} for {statement.hostname} ({cur})"]
    lines.append(f"  {'day':<10} {'kWh':>9} {'cost':>10} {'earnings':>10} {'saving':>10}")
    for line in [*(x for x in statement.lines if x.electricity_kwh > 0), statement.total]:
        lines.append(
            f"  {line.day:<10} {line.electricity_kwh:>9} "
            f"{_money(line.electricity_cost_minor, cur):>10} "
            f"{_money(line.earnings_minor, cur):>10} {_money(line.saving_minor, cur):>10}"
        )
    return "\n".join(lines)
