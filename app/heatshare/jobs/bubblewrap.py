"""The Linux sandbox: bubblewrap, with limits from a cgroup or rlimits and a watch.

What a job sees is in ``docs/jobs.md``; what it may not see or do is what this module
leaves out: the home folder, /root, /run (and so D-Bus and every socket there), /var,
/work, the agent's data and configuration, the network (a fresh network namespace with
only a loopback of its own), the host's processes (a PID namespace), and write access
anywhere but /job, a private size-capped /tmp and /dev/shm.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from heatshare.jobs.limits import (
    CGROUP_MOUNT,
    JobCgroup,
    ScopeCgroup,
    apply_rlimits,
    create_job_cgroup,
    is_unified,
    probe_user_scope,
    scope_env,
    scope_unit,
    systemd_run_argv,
)
from heatshare.jobs.sandbox import (
    CHECKPOINT_DIR,
    CHECKPOINT_ETA_FILE,
    JOB_ROOT,
    OUTPUT_DIR,
    PROGRESS_FILE,
    Limits,
    Outcome,
    Sandbox,
    SandboxProcess,
    SandboxRequest,
    SandboxResult,
    SandboxUnavailable,
)

log = logging.getLogger(__name__)

# The host's system, read-only. A symbolic link (/bin -> usr/bin on merged-/usr systems)
# is recreated as a link, a folder is bound.
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Secrets in /etc that root may read: hidden even where the agent runs as root.
_ETC_SECRET_FILES = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/machine-id",
    "/etc/security/opasswd",
)
_ETC_SECRET_DIRS = (
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/sudoers.d",
    "/etc/NetworkManager/system-connections",
    "/etc/wireguard",
    "/etc/heatshare",
    "/etc/openvpn",
    "/etc/ipsec.d",
)
_GPU_DEVICES = re.compile(r"nvidia.*|dri|kfd")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
# bwrap's exit status: 128 + the signal that ended the job's command.
_SIGNAL_BASE = 128
# The wrapper waits for one line on stdin: by then the agent has put it in its cgroups
# and set its rlimits, so bwrap and the job start inside them. The line names the file
# the keeper writes to if the agent dies (``JobCgroup.keeper_file``), or is empty; after
# "hold " in a user scope (below).
#
# Then the wrapper runs bwrap as its child and waits for it (its exit status is bwrap's),
# beside a keeper that waits for the agent's end of the pipe to close. bwrap sets
# --die-with-parent a few milliseconds after its exec, first in itself, then in the
# sandbox's pid 1: an agent that was bwrap's parent could die in between and leave the
# job running. The wrapper, bwrap's parent instead, outlives the agent, and when the pipe
# closes while bwrap runs, the keeper ends the job: by cgroup.kill where the group has
# one; else it stops the wrapper (so that it starts no bwrap) and bwrap (so that it
# makes no more processes), then SIGKILLs bwrap's children (the sandbox's pid 1, whose end
# ends every process in the job's PID namespace), bwrap and the wrapper. The agent lets go
# of the pipe only once the wrapper is reaped, and the keeper then just ends. The two are
# processes of the job's group (``KEEPER_PROCESSES``), not the job's. The wrapper also
# holds a read end of bwrap's status pipe (bwrap may not: the job would inherit it):
# bwrap writing its status to a pipe nobody holds would die of SIGPIPE before the
# sandbox's pid 1 had set its own --die-with-parent.
_KEEPER = (
    # s PID: waits until PID is stopped (or gone); c PID: its children, in $k.
    's() { i=0; while [ $i -lt 100000 ] && read -r _ _ t _ <"/proc/$1/stat"; do '
    "case $t in T|t|Z|X) return;; esac; i=$((i+1)); done; }; "
    'c() { k=; if [ -r "/proc/$1/task/$1/children" ]; then '
    'read -r k <"/proc/$1/task/$1/children"; else for f in /proc/[0-9]*/stat; do '
    'read -r x _ _ p _ <"$f" && [ "$p" = "$1" ] && k="$k $x"; done; fi; }; '
    "trap '' TERM INT HUP; read _; "
    'case $1 in */cgroup.kill) echo 1 >"$1" && exit;; esac; '
    # The wrapper is gone only once bwrap is: nothing left to end.
    'read -r me _ _ pp _ </proc/self/stat; [ "$pp" = "$2" ] || exit 0; '
    # The wrapper stopped starts no bwrap; bwrap stopped starts no pid 1.
    'kill -STOP "$2"; s "$2"; c "$2"; '
    'for b in $k; do [ "$b" = "$me" ] && continue; kill -STOP "$b"; s "$b"; c "$b"; '
    'for x in $k; do kill -KILL "$x"; done; kill -KILL "$b"; done; kill -KILL "$2"'
)


def _wrapper(status_fd: int) -> str:
    """The wrapper's script; ``status_fd`` is bwrap's status pipe (any number)."""
    # dash redirects only descriptors 0-9: two of them that are not the status pipe's,
    # for the go pipe (the keeper's) and the status pipe's read end held.
    go, held = [fd for fd in range(3, 10) if fd != status_fd][:2]
    return (
        f"IFS= read -r g || exit 125; k=$1; shift; h=; "
        f'case $g in "hold "*) h=1 g=${{g#hold }};; esac; '
        f"exec {go}<&0 0</dev/null {held}</proc/self/fd/{status_fd}; "
        # The keeper first: a job's fork bomb cannot take its place in the group.
        f'/bin/sh -c "$k" heatshare-keeper "$g" $$ <&{go} >/dev/null 2>&1 {held}<&- & '
        f'q=$!; exec {go}<&-; "$@" {held}<&- & wait $!; e=$?; '
        # Once bwrap has ended the keeper has nothing to end: the wrapper ends and reaps it,
        # so that nothing of the job outlives it (and the group is empty at once). Not in
        # a scope, which it holds until the agent has read the scope's counts.
        f'[ -n "$h" ] || {{ kill -KILL $q; wait $q; }} 2>/dev/null; exit $e'
    )


_WRAPPER_NOT_RELEASED = 125
_TMP_LOOKS = 6  # after 5, 10, 20, 40, 80 and 160 ms
_BWRAP_PROCESSES = 2  # bwrap's monitor outside, the sandbox's pid 1 inside
_names = itertools.count(1)
# SIGSTOP by process (no freezer): scans for processes forked while the others were being
# stopped, until a scan finds none new.
_STOP_SCANS = 20


class BubblewrapSandbox(Sandbox):
    """Runs each job in a bubblewrap sandbox (Linux, bubblewrap 0.8 or newer).

    ``start()`` must be called from a long-lived thread (the runner's work thread, or the
    main thread): bubblewrap's ``--die-with-parent`` is PR_SET_PDEATHSIG, which fires when
    the *thread* that forked it ends, not the process; the job would be killed with it.
    That same tie is what ends every job when the agent dies, however it dies.

    Args:
        bwrap: the bubblewrap program; found on PATH when None.
        use_cgroups: make a cgroup per job where the agent may (False forces the rlimit
            and watch fallback, for tests).
        poll_s: how often the watch looks at the job's time, disk and (fallback) memory.
        cgroup_mount: where the cgroup hierarchies are mounted.
        systemd_run: the systemd-run program for a user scope per job; found on PATH when
            None; "" for none.
    """

    kind = "bubblewrap"

    def __init__(
        self,
        *,
        bwrap: str | None = None,
        use_cgroups: bool = True,
        poll_s: float = 0.25,
        cgroup_mount: Path = CGROUP_MOUNT,
        systemd_run: str | None = None,
    ) -> None:
        self._bwrap = bwrap if bwrap is not None else shutil.which("bwrap")
        self._use_cgroups = use_cgroups
        self._poll_s = poll_s
        self._mount = cgroup_mount
        self._systemd_run = systemd_run if systemd_run is not None else shutil.which("systemd-run")
        # How jobs are limited here ("cgroup", "scope" or "rlimits") and why, in a sentence:
        # chosen once, with the probe.
        self._limits_mode = "rlimits"
        self._limits_said = ""
        self._problem: str | None = None
        self._probed = False
        self._supports_disable_userns = False
        self._swept = False  # the cgroups of killed agents, once per sandbox
        self._said_no_cgroup = False
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        with self._lock:
            if not self._probed:
                self._problem = self._probe()
                if self._problem is None:
                    self._limits_mode, self._limits_said = self._choose_limits()
                    log.info("Job limits here: %s", self._limits_said)
                self._probed = True
            return self._problem

    def limit_mechanism(self) -> str | None:
        """How jobs are limited here and why, in a sentence; None where jobs cannot run."""
        if self.problem() is not None:
            return None
        with self._lock:
            return self._limits_said

    def _choose_limits(self) -> tuple[str, str]:
        """In this order: a cgroup the agent makes itself (v1, or a writable delegated v2
        group), a systemd user scope per job (v2), rlimits and the watch."""
        if not self._use_cgroups:
            return "rlimits", "rlimits and the watch (this sandbox is set to use no cgroups)."
        try:
            # The probe runs when the agent starts: it also ends what a gone agent's jobs left
            # (a job frozen when its agent died holds its memory until then).
            group = create_job_cgroup(
                f"job-{os.getpid()}-probe", _PROBE_LIMITS, sweep=True, mount=self._mount
            )
            self._swept = True
        except OSError as exc:
            no_group = f"no cgroup the agent may make ({exc.strerror or exc})"
        else:
            group.remove()
            if is_unified(self._mount):
                return "cgroup", "a cgroup v2 group per job, under a group delegated to the agent."
            return "cgroup", "a cgroup v1 group per job and controller, under the agent's own."
        return self._scope_or_rlimits(no_group)

    def _scope_or_rlimits(self, no_group: str) -> tuple[str, str]:
        if not is_unified(self._mount):
            return "rlimits", f"rlimits and the watch: {no_group}."
        if not self._systemd_run:
            return "rlimits", f"rlimits and the watch: {no_group}, and no systemd-run."
        scope_problem = probe_user_scope(self._systemd_run)
        if scope_problem is not None:
            return "rlimits", f"rlimits and the watch: {no_group}, and {scope_problem}."
        return "scope", (
            f"a systemd user scope per job (systemd-run --user --scope): {no_group}, "
            "and the user manager makes scopes."
        )

    def _probe(self) -> str | None:
        if not sys.platform.startswith("linux"):
            return "Jobs need a sandbox, and bubblewrap runs only on Linux."
        if self._bwrap is None:
            return (
                "Jobs need a sandbox, and bubblewrap (bwrap) is not installed: install the "
                "'bubblewrap' package to take jobs."
            )
        try:
            usage = subprocess.run(
                [self._bwrap, "--help"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
            if "--size" not in usage or "--json-status-fd" not in usage:
                return (
                    "Jobs need bubblewrap 0.8 or newer, and this one is older: update the "
                    "'bubblewrap' package to take jobs."
                )
            probe = subprocess.run(
                [self._bwrap, *_namespace_args(usage), *_system_args(), "--", "true"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"Jobs need a sandbox, and bubblewrap could not be run here ({exc})."
        if probe.returncode != 0:
            detail = probe.stderr.strip().splitlines()[-1:] or [f"exit status {probe.returncode}"]
            return (
                "Jobs need a sandbox, and bubblewrap cannot make one on this machine "
                f"({detail[0]}); user namespaces may be turned off."
            )
        self._supports_disable_userns = "--disable-userns" in usage
        return None

    def start(self, request: SandboxRequest) -> BubblewrapProcess:
        problem = self.problem()
        if problem is not None:
            raise SandboxUnavailable(problem)
        assert self._bwrap is not None
        _check_request(request)
        for sub in (OUTPUT_DIR, CHECKPOINT_DIR):
            (request.slot / sub).mkdir(exist_ok=True)
        name = f"job-{os.getpid()}-{next(_names)}"
        with self._lock:
            mode = self._limits_mode
        cgroup = self._make_cgroup(name, request) if mode == "cgroup" else None
        unit = (
            scope_unit(name, request.env.get("HEATSHARE_ATTEMPT_ID")) if mode == "scope" else None
        )
        status_r, status_w = os.pipe()
        go_r, go_w = os.pipe()
        args, env = self._launch_args(request, status_w, unit)
        try:
            with request.log_path.open("ab") as log_file:
                popen = subprocess.Popen(
                    args,
                    stdin=go_r,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(status_w,),
                    env=env,
                )
        except BaseException as exc:
            for fd in (status_r, status_w, go_r, go_w):
                os.close(fd)
            if cgroup is not None:
                cgroup.remove()
            if isinstance(exc, OSError):
                raise SandboxUnavailable(f"The sandbox could not be started ({exc}).") from exc
            raise
        os.close(go_r)
        os.close(status_w)
        try:
            if unit is not None:
                cgroup = self._find_scope(popen, unit)
            cgroup = self._release(popen.pid, go_w, cgroup, request)
        except BaseException as exc:
            popen.kill()
            popen.wait()
            os.close(status_r)
            os.close(go_w)
            if cgroup is not None:
                cgroup.remove()
            if isinstance(exc, _NoScope):
                # Nothing of the job ran: it waited in the wrapper for its go.
                return self.start(request)
            if isinstance(exc, OSError):
                message = f"The sandbox could not set the job's limits ({exc})."
                raise SandboxUnavailable(message) from exc
            raise
        # The go pipe stays open while the job runs: its keeper ends the job once it closes.
        return BubblewrapProcess(popen, status_r, cgroup, request, name, self._poll_s, go_w)

    def _launch_args(
        self, request: SandboxRequest, status_fd: int, unit: str | None
    ) -> tuple[list[str], dict[str, str]]:
        """The wrapper and bwrap's command line, in a new user scope where ``unit`` is set."""
        assert self._bwrap is not None
        prefix, env = [], {"PATH": os.defpath}
        if unit is not None:
            assert self._systemd_run
            prefix, env = systemd_run_argv(self._systemd_run, unit, request.limits), scope_env()
        wrapper = [_wrapper(status_fd), "heatshare-sandbox", _KEEPER]
        args = [*prefix, "/bin/sh", "-c", *wrapper, self._bwrap]
        return [*args, *self._args(request, status_fd)], env

    def _find_scope(self, popen: subprocess.Popen[bytes], unit: str) -> ScopeCgroup:
        try:
            return ScopeCgroup.find(
                popen.pid, unit, mount=self._mount, running=lambda: popen.poll() is None
            )
        except OSError as exc:
            # Said once, and no job is sent that way again: the probe said yes, so the
            # user manager went away or will not limit; rlimits from now on.
            with self._lock:
                if self._limits_mode == "scope":  # not again for a job started alongside
                    self._limits_mode = "rlimits"
                    self._limits_said = (
                        f"rlimits and the watch: the job's systemd user scope failed ({exc})."
                    )
                    log.info("Job limits here from now on: %s", self._limits_said)
            raise _NoScope from exc

    def _make_cgroup(self, name: str, request: SandboxRequest) -> JobCgroup | None:
        if not self._use_cgroups:
            return None
        try:
            cgroup = create_job_cgroup(
                name, request.limits, sweep=not self._swept, mount=self._mount
            )
        except OSError as exc:
            self._no_cgroup(exc)
            return None
        self._swept = True
        return cgroup

    def _release(
        self, pid: int, go_fd: int, cgroup: JobCgroup | None, request: SandboxRequest
    ) -> JobCgroup | None:
        """Puts the waiting wrapper in its cgroup, sets its rlimits, and lets it run bwrap."""
        if cgroup is not None:
            try:
                cgroup.add(pid)
            except OSError as exc:  # v2 may refuse the move (delegation rules)
                self._no_cgroup(exc)
                cgroup.remove()
                cgroup = None
        apply_rlimits(pid, request.limits, cgroup=cgroup is not None)
        keeper_file = cgroup.keeper_file() if cgroup is not None else None
        hold = b"hold " if isinstance(cgroup, ScopeCgroup) else b""
        os.write(go_fd, hold + os.fsencode(keeper_file or "") + b"\n")
        return cgroup

    def _no_cgroup(self, exc: OSError) -> None:
        # Said once: on a machine without a usable cgroup every job would say it again.
        if not self._said_no_cgroup:
            self._said_no_cgroup = True
            log.info("No cgroup for jobs here (%s): limits by rlimits and the watch.", exc)

    def bwrap_argv(self, request: SandboxRequest) -> list[str]:
        """The bubblewrap command line of a job, without limits or status: to show how a
        job runs, and for the start-cost benchmark's bare-bwrap figure."""
        if self.problem() is not None or self._bwrap is None:
            raise SandboxUnavailable(self.problem() or "no bubblewrap")
        return [self._bwrap, *self._args(request, None)]

    def _args(self, request: SandboxRequest, status_fd: int | None) -> list[str]:
        limits = request.limits
        status = [] if status_fd is None else ["--json-status-fd", str(status_fd)]
        args = [
            *_namespace_args("--disable-userns" if self._supports_disable_userns else ""),
            "--hostname",
            "heatshare-job",
            *status,
            *_system_args(),
            "--bind",
            os.fspath(request.slot),
            JOB_ROOT,
            "--chdir",
            JOB_ROOT,
            # The sandbox's own /tmp and /dev/shm, not the host's.
            "--size",
            str(limits.disk_bytes),
            "--tmpfs",
            "/tmp",  # noqa: S108
            "--size",
            str(limits.memory_bytes),
            "--tmpfs",
            "/dev/shm",  # noqa: S108
        ]
        if request.gpu:
            args += _gpu_args()
        # bwrap's /dev and / are tmpfs it made; read-only, they hold nothing a job wrote.
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--clearenv"]
        for key, value in _job_env(request).items():
            args += ["--setenv", key, value]
        return [*args, "--", *request.command]


class _NoScope(Exception):  # noqa: N818 - a state, caught in start()
    """The job's user scope could not be made or used; the job is started without it."""


# What the probe group is made with: it holds no process and is removed at once.
_PROBE_LIMITS = Limits(memory_bytes=64 << 20, max_processes=16, disk_bytes=1 << 20, wall_time_s=1)


def _namespace_args(usage: str) -> list[str]:
    # --cap-drop ALL: bwrap keeps every capability (inside the namespace) when started by
    # root, which would let a job remount or override file modes in its own namespaces.
    args = [
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    if "--disable-userns" in usage:
        # The job may not make user namespaces of its own (a kernel attack surface).
        args.append("--disable-userns")
    return args


def _system_args() -> list[str]:
    args: list[str] = []
    for name in _SYSTEM_PATHS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.fspath(path.readlink()), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    for name in _ETC_SECRET_FILES:
        path = Path(name)
        if path.is_file() and not path.is_symlink():
            args += ["--ro-bind", "/dev/null", name]
    for name in _ETC_SECRET_DIRS:
        path = Path(name)
        if path.is_dir() and not path.is_symlink():
            args += ["--tmpfs", name]
    return [*args, "--proc", "/proc", "--dev", "/dev"]


def _gpu_args() -> list[str]:
    args: list[str] = []
    with contextlib.suppress(OSError):
        for entry in sorted(Path("/dev").iterdir()):
            if _GPU_DEVICES.fullmatch(entry.name):
                args += ["--dev-bind", os.fspath(entry), os.fspath(entry)]
    # GPU runtimes read the PCI topology and driver parameters from /sys.
    return [*args, "--ro-bind", "/sys", "/sys"]


def _check_request(request: SandboxRequest) -> None:
    if not request.command:
        raise ValueError("The job has no command to run.")
    if not request.slot.is_dir():
        raise ValueError(f"The job's slot folder {request.slot} does not exist.")
    for key, value in request.env.items():
        if not _ENV_NAME.fullmatch(key) or "\x00" in value:
            raise ValueError(f"The job's environment variable {key!r} is not a usable name.")
    limits = request.limits
    if min(limits.memory_bytes, limits.max_processes, limits.disk_bytes, limits.cpu_cores) <= 0:
        raise ValueError("The job's limits must all be above zero.")
    if limits.wall_time_s <= 0:
        raise ValueError("The job's time limit must be above zero.")


def _job_env(request: SandboxRequest) -> dict[str, str]:
    return {
        "PATH": _JOB_PATH,
        "HOME": JOB_ROOT,
        "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's own private /tmp
        "LANG": "C.UTF-8",
        **request.env,
        "HEATSHARE_OUTPUT": f"{JOB_ROOT}/{OUTPUT_DIR}",
        "HEATSHARE_CHECKPOINT": f"{JOB_ROOT}/{CHECKPOINT_DIR}",
        "HEATSHARE_PROGRESS": f"{JOB_ROOT}/{PROGRESS_FILE}",
        "HEATSHARE_CHECKPOINT_ETA": f"{JOB_ROOT}/{CHECKPOINT_ETA_FILE}",
    }


class BubblewrapProcess(SandboxProcess):
    """A running job; a watch thread reaps it and enforces time, disk and (fallback) memory."""

    def __init__(  # noqa: PLR0917 - built in one place, by BubblewrapSandbox.start
        self,
        popen: subprocess.Popen[bytes],
        status_fd: int,
        cgroup: JobCgroup | None,
        request: SandboxRequest,
        name: str,
        poll_s: float,
        keeper_fd: int = -1,
    ) -> None:
        self._popen = popen
        self._keeper_fd = keeper_fd
        self._status_fd = status_fd
        fcntl.fcntl(status_fd, fcntl.F_SETFL, fcntl.fcntl(status_fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._status_buf = b""
        self._pidfd: int | None = None
        self._tmp_fd: int | None = None
        self._tmp_tries = 0
        with contextlib.suppress(OSError, AttributeError):  # Linux 5.3 and newer
            self._pidfd = os.pidfd_open(popen.pid)
        self._init_pid: int | None = None
        self._cgroup = cgroup
        self._request = request
        self._poll_s = poll_s
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._reason: tuple[Outcome, str] | None = None
        self._disk_used = 0
        self._result: SandboxResult | None = None
        self._done = threading.Event()
        self._known: dict[int, float] = {}  # fallback: pid -> start time of the job's processes
        # Held by the heating controller (any thread): frozen since (monotonic), time frozen
        # before, and how (the group's freezer, or SIGSTOP to the processes in ``_stopped``).
        self._hold_lock = threading.Lock()
        self._frozen_since: float | None = None
        self._frozen_before = 0.0
        self._frozen_by_cgroup = False
        self._stopped: set[int] = set()
        self._all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        # A daemon thread: an agent that exits while a job runs must not wait for the job,
        # and bwrap's --die-with-parent ends the job with it.
        self._watch = threading.Thread(target=self._run_watch, name=f"sandbox-{name}", daemon=True)
        self._watch.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> SandboxResult | None:
        return self._result if self._done.is_set() else None

    def wait(self, timeout_s: float | None = None) -> SandboxResult | None:
        if not self._done.wait(timeout_s):
            return None
        self._watch.join()
        return self._result

    def stop(self, grace_s: float = 5.0) -> SandboxResult:
        if not self._done.is_set():
            self._set_reason(Outcome.KILLED, "The job was stopped.")
            self._signal_job(signal.SIGTERM)
            self.thaw()  # after the SIGTERM: a stopped job takes it as it wakes
            if not self._done.wait(grace_s):
                self._kill()
        self._done.wait()
        self._watch.join()
        assert self._result is not None
        return self._result

    # Holding the job (the heating controller; any thread).

    def freeze(self) -> bool:
        with self._hold_lock:
            if self._done.is_set():
                return False
            if self._frozen_since is not None:
                return True
            if self._cgroup is not None and self._cgroup.freeze(True):
                self._frozen_by_cgroup = True
            else:
                self._frozen_by_cgroup = False
                self._stopped = self._stop_processes()
            self._frozen_since = time.monotonic()
            return True

    def _stop_processes(self) -> set[int]:
        stopped: set[int] = set()
        for _ in range(_STOP_SCANS):
            new = self._job_pids() - stopped
            if not new:
                break
            for pid in new:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGSTOP)
            stopped |= new
        return stopped

    def thaw(self) -> None:
        with self._hold_lock:
            if self._frozen_since is None:
                return
            if self._frozen_by_cgroup and self._cgroup is not None:
                self._cgroup.freeze(False)
            else:
                for pid in self._stopped | self._job_pids():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGCONT)
                self._stopped = set()
            self._frozen_before += time.monotonic() - self._frozen_since
            self._frozen_since = None

    @property
    def frozen(self) -> bool:
        return self._frozen_since is not None

    @property
    def frozen_s(self) -> float:
        with self._hold_lock:
            since = self._frozen_since
            return self._frozen_before + (time.monotonic() - since if since is not None else 0.0)

    def limit_cores(self, cores: int | None) -> bool:
        allowed = self._request.limits.cpu_cores
        n = allowed if cores is None else max(1, min(cores, allowed))
        with self._hold_lock:
            if self._done.is_set():
                return False
            if self._cgroup is not None and self._cgroup.set_cpu_cores(n):
                return True
            if self._all_cpus is None:
                return False
            # No CPU controller: pin the job's processes to fewer cores (its children inherit).
            cpus = self._all_cpus if cores is None else set(sorted(self._all_cpus)[:n])
            done = False
            for pid in self._job_pids():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(pid, cpus)
                    done = True
            return done

    # The watch thread.

    def _run_watch(self) -> None:
        limits = self._request.limits
        returncode: int | None = None
        try:
            while returncode is None:
                # Time frozen is not the job's: its time limit moves on by as much.
                deadline = self._started + limits.wall_time_s + self.frozen_s
                remaining = deadline - time.monotonic()
                returncode = self._wait_exit(max(0.0, min(self._poll_s, remaining)))
                if returncode is not None:
                    break
                self._read_status()
                if time.monotonic() >= deadline:
                    self._set_reason(
                        Outcome.TIMED_OUT,
                        f"The job ran past its time limit of {limits.wall_time_s:g} s "
                        "and was stopped.",
                    )
                    self._kill()
                    continue
                self._check_disk()
                if self._cgroup is None:
                    self._check_fallback_limits()
                elif self._cgroup.process_limit_hits() > 0:
                    self._stop_for_processes()
        finally:
            self._finish(returncode)

    def _wait_exit(self, timeout_s: float) -> int | None:
        if self._tmp_fd is None and self._tmp_tries < _TMP_LOOKS:
            # Until the sandbox's /tmp is held, look for it often at first, then less:
            # a job can fill it and end within its first poll. Not woken by bwrap's status
            # instead: waking at that moment slowed bwrap's own start measurably.
            timeout_s = min(timeout_s, 0.005 * 2**self._tmp_tries)
            self._tmp_tries += 1
        if self._pidfd is not None:
            # A pidfd wakes the watch the moment bwrap exits; Popen.wait(timeout) sleeps in
            # growing steps and would add up to tens of milliseconds to every short job.
            if select.select([self._pidfd], [], [], timeout_s)[0]:
                return self._popen.wait()
        else:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self._popen.wait(timeout=timeout_s)
        self._read_status()
        return None

    def _finish(self, returncode: int | None) -> None:
        if returncode is None:  # an exception in the watch: leave nothing running
            self._kill()
            returncode = self._popen.wait()
        self._read_status()
        self._end_leftovers()
        # The last word on disk use: the job may have filled it and ended between two polls.
        self._disk_used = max(self._disk_used, self._measure_disk())
        if self._tmp_fd is not None:
            os.close(self._tmp_fd)
        oom = forks_refused = False
        if self._cgroup is not None:
            oom = self._cgroup.oom_kills() > 0
            forks_refused = self._cgroup.process_limit_hits() > 0
            self._cgroup.remove()
        elif returncode != 0:
            # Without a cgroup, RLIMIT_DATA refuses an allocation instead of a kill: the
            # job reports it itself, in the words of its runtime.
            oom = _says_out_of_memory(self._request.log_path)
        os.close(self._status_fd)
        if self._keeper_fd >= 0:
            os.close(self._keeper_fd)  # the keeper ends (a scope, empty, is then removed)
        if self._pidfd is not None:
            os.close(self._pidfd)
        # As when the watch sees it while the job runs: a refused fork is the job's fault,
        # whatever it made of it (a fork bomb's first shell ends with status 0).
        if forks_refused:
            self._set_reason(Outcome.PROCESS_LIMIT, _process_message(self._request.limits))
        self._result = self._classify(returncode, oom)
        self._done.set()

    def _classify(self, returncode: int, oom: bool) -> SandboxResult:
        wall = time.monotonic() - self._started
        limits = self._request.limits
        with self._lock:
            reason = self._reason
        if reason is not None:
            return SandboxResult(reason[0], None, wall, reason[1])
        if oom and returncode != 0:
            return SandboxResult(
                Outcome.OUT_OF_MEMORY,
                None,
                wall,
                _memory_message(limits.memory_bytes),
            )
        if returncode == _SIGNAL_BASE + signal.SIGXFSZ or (
            returncode != 0 and self._disk_used >= limits.disk_bytes
        ):
            return SandboxResult(
                Outcome.DISK_FULL,
                None,
                wall,
                _disk_message(limits.disk_bytes),
            )
        if self._init_pid is None and returncode in (1, _WRAPPER_NOT_RELEASED):
            return SandboxResult(
                Outcome.EXITED,
                None,
                wall,
                "The sandbox could not start the job; bubblewrap's message is in the job's log.",
            )
        if returncode > _SIGNAL_BASE:
            name = _signal_name(returncode - _SIGNAL_BASE)
            return SandboxResult(Outcome.EXITED, returncode, wall, f"The job was ended by {name}.")
        return SandboxResult(
            Outcome.EXITED, returncode, wall, f"The job ended with exit status {returncode}."
        )

    def _set_reason(self, outcome: Outcome, message: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = (outcome, message)

    def _read_status(self) -> None:
        """bwrap's JSON status: the host pid of the sandbox's pid 1 once it exists."""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self._status_fd, 4096):
                self._status_buf += chunk
        if self._init_pid is None:
            # Documents are written one per line; a partial last one is read next time.
            for line in self._status_buf.split(b"\n")[:-1]:
                with contextlib.suppress(ValueError):
                    document = json.loads(line)
                    if isinstance(document, dict) and "child-pid" in document:
                        self._init_pid = int(document["child-pid"])
        if self._init_pid is not None and self._tmp_fd is None:
            self._open_tmp()

    def _open_tmp(self) -> None:
        """Holds the sandbox's /tmp open, so its use can be read even after the job ends."""
        try:
            fd = os.open(f"/proc/{self._init_pid}/root/tmp", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return  # the sandbox is ending, or this user may not look in
        # Until bwrap has made the sandbox's mounts, that path is the host's /tmp: only
        # a file system of exactly the size asked for is the sandbox's.
        st = os.fstatvfs(fd)
        page = os.sysconf("SC_PAGE_SIZE")
        expected = -(-self._request.limits.disk_bytes // page) * page
        if st.f_blocks * st.f_frsize == expected:
            self._tmp_fd = fd
        else:
            os.close(fd)

    def _job_pids(self) -> set[int]:
        """The job's processes, without the sandbox's own: the wrapper, its children (bwrap
        and the keeper) and bwrap's (the sandbox's pid 1).

        Not the keeper: a job frozen by SIGSTOP must leave it awake to end the job should
        the agent die meanwhile, and a stop's SIGTERM is not for it."""
        wrapper = self._popen.pid
        if self._cgroup is not None:
            pids = self._cgroup.pids()
            beside = _children(wrapper)
            ours = {wrapper, *beside, *(c for pid in beside for c in _children(pid))}
        else:
            children = _children_map()
            pids = _below(children, wrapper)
            beside = set(children.get(wrapper, ()))
            ours = {wrapper, *beside, *(c for pid in beside for c in children.get(pid, ()))}
        return pids - ours - {self._init_pid or -1}

    def _signal_job(self, sig: signal.Signals) -> None:
        # Not bwrap itself: it would die at once and take the job with it, with no grace.
        # (Only the watch thread reads bwrap's status; here the pid 1 may not be known yet,
        # and a signal to it is dropped anyway unless it handles it.)
        for pid in self._job_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _kill(self) -> None:
        # bwrap (and the keeper), whose end ends the sandbox's pid 1 (--die-with-parent),
        # and with it the kernel ends every process in the PID namespace; the wrapper,
        # once its children are known (they would go to init with it); the job's processes
        # too. The cgroup, or the watch without one, sweeps up afterwards.
        beside = _children(self._popen.pid)
        for pid in beside:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._popen.send_signal(signal.SIGKILL)
        self._signal_job(signal.SIGKILL)
        self.thaw()  # a frozen group takes its SIGKILLs only once thawed

    def _end_leftovers(self) -> None:
        if self._cgroup is not None:
            if not self._cgroup.kill_all():
                log.error(
                    "Processes of a job survived SIGKILL in its cgroup: %s", self._cgroup.pids()
                )
            return
        # Without a cgroup: the PID namespace's pid 1 is gone once bwrap is, and the kernel
        # ends the rest; wait until it has (seconds at most), so nothing outlives the job.
        deadline = time.monotonic() + 5.0
        watched = [*self._known, *([self._init_pid] if self._init_pid else [])]
        for pid in watched:
            while _alive(pid) and time.monotonic() < deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.01)

    def _measure_disk(self) -> int:
        return _folder_bytes(self._request.slot) + self._tmp_bytes()

    def _check_disk(self) -> None:
        used = self._measure_disk()
        self._disk_used = used
        limit = self._request.limits.disk_bytes
        if used >= limit:
            self._set_reason(
                Outcome.DISK_FULL,
                _disk_message(limit),
            )
            self._kill()

    def _tmp_bytes(self) -> int:
        if self._tmp_fd is None:
            return 0
        st = os.fstatvfs(self._tmp_fd)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def _check_fallback_limits(self) -> None:
        limits = self._request.limits
        rss = 0
        count = 0
        for pid in self._job_pids():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                self._known.setdefault(pid, proc.create_time())
                rss += proc.memory_info().rss
                count += 1
        if rss > limits.memory_bytes:
            self._set_reason(
                Outcome.OUT_OF_MEMORY,
                _memory_message(limits.memory_bytes),
            )
            self._kill()
        elif count + _BWRAP_PROCESSES > limits.max_processes:
            # As in a cgroup, where pids.max counts bwrap's own two processes too.
            self._stop_for_processes()

    def _stop_for_processes(self) -> None:
        # A job that runs into its process limit is stopped rather than left to spin on
        # failing forks (a fork bomb) until its time is up.
        self._set_reason(Outcome.PROCESS_LIMIT, _process_message(self._request.limits))
        self._kill()


def _children(pid: int) -> set[int]:
    """The children of a running ``pid``; from a pass over /proc where the kernel has no
    ``children`` file (CONFIG_PROC_CHILDREN) or the process is gone."""
    with contextlib.suppress(OSError, ValueError):
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    return set(_children_map().get(pid, ()))


def _children_map() -> dict[int, list[int]]:
    """Each process's children, from one pass over /proc.

    Made by hand rather than with psutil's children(): under a fork bomb processes come
    and go during the scan, and one that vanished must not lose the whole answer.
    """
    children: dict[int, list[int]] = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_bytes()
            except OSError:
                continue
            # The name in parentheses may hold spaces and parentheses: split after the last.
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _below(children: dict[int, list[int]], root: int) -> set[int]:
    """Every process below ``root``."""
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


_OUT_OF_MEMORY_WORDS = (
    b"MemoryError",
    b"Cannot allocate memory",
    b"std::bad_alloc",
    b"out of memory",
    b"Out of memory",
)


def _says_out_of_memory(log_path: Path) -> bool:
    try:
        with log_path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            tail = f.read()
    except OSError:
        return False
    return any(words in tail for words in _OUT_OF_MEMORY_WORDS)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _folder_bytes(folder: Path) -> int:
    """Disk space in use under ``folder`` (allocated blocks, so sparse files count as used)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(folder)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_nlink > 1:
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
    return total


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"


def _memory_message(limit: int) -> str:
    return f"The job used more than its memory limit of {_mib(limit)} and was stopped."


def _process_message(limits: Limits) -> str:
    return f"The job tried to run more than its limit of {limits.max_processes} processes."


def _disk_message(limit: int) -> str:
    return f"The job wrote more than its disk limit of {_mib(limit)} and was stopped."


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
