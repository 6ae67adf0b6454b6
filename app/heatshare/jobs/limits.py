"""How a job's limits are enforced on Linux: a cgroup where the agent may make one, rlimits
and the agent's own watch otherwise.

cgroup v1 (what these build machines have, and older distributions): one group per job
and controller (memory, pids, cpu), nested under the agent's own group, so whatever
limits the agent also limits its jobs: ``<mount>/<agent's group>/heatshare/<job>``.

cgroup v2 (current desktops): one group per job in ``heatshare-jobs/`` under the nearest
group, from the agent's own upwards, that hands the memory and pids controllers to its
children and that the agent may write to: for a desktop user, the ``app.slice`` that
systemd delegates to them; for root, the slice of the agent's service. (A group that
holds processes cannot hand controllers down, so the agent's own group rarely serves.)

cgroup v2 where the agent has no such group (a desktop user whose agent runs in its login
session's scope): a transient systemd user scope per job, made by ``systemd-run --user
--scope`` with the job's limits as unit properties; the agent finds its group in
/proc/<pid>/cgroup and drives it as any v2 group (freeze, kill, events).

Where no group can be made (no user manager to ask, a read-only cgroupfs) the fallback is
rlimits set on the job's first process before it runs, plus the agent's
watch (every poll: memory in use, number of processes), which stops a job over a limit.
RLIMIT_NPROC counts every process of the real user id on the whole machine, not the
job's, and does not bind root at all; so it is set to what the user already runs plus
the job's allowance, and the watch does the rest.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import resource
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import psutil

from heatshare.jobs.sandbox import Limits

log = logging.getLogger(__name__)

CGROUP_MOUNT = Path("/sys/fs/cgroup")
_CONTROLLERS = ("memory", "pids", "cpu")
# Used where the machine has it: the heating controller freezes a job through it (else by
# SIGSTOP to each of its processes).
_OPTIONAL_CONTROLLERS = ("freezer",)
_GROUP_DIR = "heatshare"
_V2_GROUP_DIR = "heatshare-jobs"
_CPU_PERIOD_US = 100_000
NPROC_SLACK = 8
# A job's processes besides its own and bwrap's two: the wrapper, bwrap's parent, and its
# keeper, which ends the job when the agent's pipe closes (see bubblewrap.py). The group's
# process limit is raised by as much, so the job itself may still run its limit's worth.
KEEPER_PROCESSES = 2


def _own_v1_paths() -> dict[str, str]:
    """The agent's own group per v1 controller, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with Path("/proc/self/cgroup").open(encoding="ascii") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                if controller:
                    paths[controller] = path
    return paths


def _write(path: Path, value: str) -> None:
    with path.open("w", encoding="ascii") as f:
        f.write(value)


def _read(path: Path) -> str:
    with path.open(encoding="ascii") as f:
        return f.read()


class JobCgroup(Protocol):
    """A job's cgroup(s), v1 or v2: what the sandbox asks of them."""

    def add(self, pid: int) -> None: ...
    def pids(self) -> set[int]: ...
    def process_limit_hits(self) -> int: ...
    def oom_kills(self) -> int: ...
    def kill_all(self, timeout_s: float = 2.0) -> bool: ...
    def keeper_file(self) -> Path | None: ...
    def remove(self) -> None: ...
    def freeze(self, frozen: bool) -> bool: ...
    def set_cpu_cores(self, cores: int) -> bool: ...


def create_job_cgroup(
    name: str, limits: Limits, *, sweep: bool = False, mount: Path = CGROUP_MOUNT
) -> JobCgroup:
    """The job's cgroup on this machine's hierarchy; raises OSError where none may be made."""
    if (mount / "memory" / "cgroup.procs").exists():
        return CgroupV1.create(name, limits, sweep=sweep, mount=mount)
    if is_unified(mount):
        return CgroupV2.create(name, limits, sweep=sweep, base=CgroupV2.base(mount))
    raise OSError(errno.ENOENT, "no cgroup hierarchy with a memory controller")


def is_unified(mount: Path = CGROUP_MOUNT) -> bool:
    """Whether ``mount`` is a cgroup v2 hierarchy."""
    return (mount / "cgroup.controllers").exists()


class CgroupV1:
    """The per-controller groups of one job."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    @staticmethod
    def bases(root: Path = CGROUP_MOUNT) -> dict[str, Path]:
        """Where the job groups go, per controller; raises OSError where v1 is not here."""
        own = _own_v1_paths()
        bases: dict[str, Path] = {}
        for controller in _CONTROLLERS:
            mount = root / controller
            if controller not in own or not (mount / "cgroup.procs").exists():
                raise OSError(errno.ENOENT, f"no cgroup v1 {controller} controller")
            bases[controller] = mount / own[controller].lstrip("/") / _GROUP_DIR
        for controller in _OPTIONAL_CONTROLLERS:
            mount = root / controller
            if controller in own and (mount / "cgroup.procs").exists():
                bases[controller] = mount / own[controller].lstrip("/") / _GROUP_DIR
        return bases

    @classmethod
    def create(
        cls, name: str, limits: Limits, *, sweep: bool = False, mount: Path = CGROUP_MOUNT
    ) -> CgroupV1:
        """Makes the job's groups with its limits set; raises OSError where it may not.

        ``sweep`` first ends what still runs in the groups of agents that are gone, and
        removes those groups.
        """
        bases = cls.bases(mount)
        for base in bases.values():
            base.mkdir(exist_ok=True)
        if sweep:
            stale = {n for base in bases.values() for n in _stale_names(base)}
            for old in sorted(stale):
                dirs = {c: base / old for c, base in bases.items() if (base / old).is_dir()}
                _end_stale(cls(dirs))
        made: dict[str, Path] = {}
        group = cls(made)
        try:
            for controller, base in bases.items():
                path = base / name
                path.mkdir()
                made[controller] = path
            memory = made["memory"]
            _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                # Memory plus swap at the same figure: a job may not swap its way past it.
                with contextlib.suppress(OSError):
                    _write(swap, str(limits.memory_bytes))
            _write(made["pids"] / "pids.max", str(limits.max_processes + KEEPER_PROCESSES))
            _write(made["cpu"] / "cpu.cfs_period_us", str(_CPU_PERIOD_US))
            _write(made["cpu"] / "cpu.cfs_quota_us", str(limits.cpu_cores * _CPU_PERIOD_US))
        except OSError:
            group.remove()
            raise
        return group

    def add(self, pid: int) -> None:
        # The first move into a group after a quiet spell waits for an RCU grace period
        # (the kernel's cgroup_threadgroup_rwsem): about 10 ms, the cgroups' main cost.
        for path in self.dirs.values():
            _write(path / "cgroup.procs", str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.dirs.values():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in _read(path / "cgroup.procs").split())
        return found

    def process_limit_hits(self) -> int:
        """How many forks failed on the group's process limit."""
        with contextlib.suppress(OSError, KeyError, ValueError):
            for line in _read(self.dirs["pids"] / "pids.events").splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        return 0

    def oom_kills(self) -> int:
        """How many processes the kernel killed for want of memory in this group."""
        try:
            text = _read(self.dirs["memory"] / "memory.oom_control")
        except (OSError, KeyError):
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        # Kernels before 4.13 have no oom_kill count: a hit limit is the best sign left.
        with contextlib.suppress(OSError):
            return int(_read(self.dirs["memory"] / "memory.failcnt").strip()) and 1
        return 0

    def kill_all(self, timeout_s: float = 2.0) -> bool:
        """SIGKILLs every process in the groups until none is left; False if some stayed."""
        # A frozen v1 task takes its SIGKILL only once thawed: send, then thaw.
        _signal_all(self, signal.SIGKILL)
        self.freeze(False)
        return _kill_until_empty(self, timeout_s)

    def keeper_file(self) -> Path | None:
        """None: v1 has no cgroup.kill, and the keeper ends the job by its PID namespace.

        (Not the freezer's state: a frozen group's keeper is frozen with it. What a frozen
        job leaves when its agent dies is ended by the next agent's sweep.)"""
        return None

    def freeze(self, frozen: bool) -> bool:
        """Freezes (or thaws) the job's group; False where there is no freezer."""
        path = self.dirs.get("freezer")
        if path is None:
            return False
        try:
            _write(path / "freezer.state", "FROZEN" if frozen else "THAWED")
        except OSError as exc:
            log.info("The job's freezer did not take %s: %s", frozen, exc)
            return False
        return True

    def set_cpu_cores(self, cores: int) -> bool:
        """The job's CPU time quota: ``cores`` cores' worth."""
        path = self.dirs.get("cpu")
        if path is None:
            return False
        try:
            _write(path / "cpu.cfs_quota_us", str(max(1, cores) * _CPU_PERIOD_US))
        except OSError as exc:
            log.info("The job's CPU quota was not changed: %s", exc)
            return False
        return True

    def remove(self) -> None:
        for path in list(self.dirs.values()):
            _rmdir(path)
        self.dirs = {}


class CgroupV2:
    """The one group of a job on the unified hierarchy.

    Written from the kernel's cgroup v2 interface (memory.max, memory.swap.max, pids.max,
    cpu.max, memory.events, pids.events, cgroup.kill); the build machines run v1 for
    these controllers, so this class is exercised there only as far as a fake tree goes.
    """

    def __init__(self, path: Path) -> None:
        self.path: Path | None = path

    @staticmethod
    def base(mount: Path = CGROUP_MOUNT, own: str | None = None) -> Path:
        """The group that holds ``heatshare-jobs/``; raises OSError where none may."""
        if own is None:
            own = _own_v2_path()
        group = mount / own.lstrip("/")
        for candidate in (group, *group.parents):
            if candidate != mount and mount not in candidate.parents:
                break
            try:
                handed_down = set(_read(candidate / "cgroup.subtree_control").split())
            except OSError:
                continue
            # Moving a process needs write access to the groups' common ancestor.
            if {"memory", "pids"} <= handed_down and os.access(candidate / "cgroup.procs", os.W_OK):
                return candidate / _V2_GROUP_DIR
        raise OSError(errno.EACCES, "no writable cgroup v2 group hands down memory and pids")

    @classmethod
    def create(
        cls, name: str, limits: Limits, *, sweep: bool = False, base: Path | None = None
    ) -> CgroupV2:
        if base is None:
            base = cls.base()
        base.mkdir(exist_ok=True)
        available = set(_read(base / "cgroup.controllers").split())
        wanted = [c for c in _CONTROLLERS if c in available]
        if not {"memory", "pids"} <= set(wanted):
            raise OSError(errno.EACCES, f"{base} is not given the memory and pids controllers")
        enabled = set(_read(base / "cgroup.subtree_control").split())
        if not set(wanted) <= enabled:
            _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        if sweep:
            for old in _stale_names(base):
                _end_stale(cls(base / old))
        path = base / name
        path.mkdir()
        group = cls(path)
        try:
            _write(path / "memory.max", str(limits.memory_bytes))
            if (path / "memory.swap.max").exists():
                _write(path / "memory.swap.max", "0")
            _write(path / "pids.max", str(limits.max_processes + KEEPER_PROCESSES))
            if "cpu" in wanted:
                _write(path / "cpu.max", f"{limits.cpu_cores * _CPU_PERIOD_US} {_CPU_PERIOD_US}")
        except OSError:
            group.remove()
            raise
        return group

    @property
    def dirs(self) -> dict[str, Path]:
        return {} if self.path is None else {"unified": self.path}

    def add(self, pid: int) -> None:
        assert self.path is not None
        _write(self.path / "cgroup.procs", str(pid))

    def pids(self) -> set[int]:
        if self.path is None:
            return set()
        with contextlib.suppress(OSError):
            return {int(p) for p in _read(self.path / "cgroup.procs").split()}
        return set()

    def _event(self, file: str, key: str) -> int:
        if self.path is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in _read(self.path / file).splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        return 0

    def process_limit_hits(self) -> int:
        return self._event("pids.events", "max")

    def oom_kills(self) -> int:
        return self._event("memory.events", "oom_kill")

    def kill_all(self, timeout_s: float = 2.0) -> bool:
        if self.path is not None and (self.path / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.path / "cgroup.kill", "1")  # Linux 5.14: every process at once
        return _kill_until_empty(self, timeout_s)

    def keeper_file(self) -> Path | None:
        """What the keeper writes to once the agent is gone: ``cgroup.kill``, which ends
        every process of the group (the keeper too) at once; None before Linux 5.14."""
        if self.path is None or not (self.path / "cgroup.kill").exists():
            return None
        return self.path / "cgroup.kill"

    def freeze(self, frozen: bool) -> bool:
        """``cgroup.freeze`` (Linux 5.2); False where the group has none."""
        if self.path is None or not (self.path / "cgroup.freeze").exists():
            return False
        try:
            _write(self.path / "cgroup.freeze", "1" if frozen else "0")
        except OSError as exc:
            log.info("The job's group did not take freeze=%s: %s", frozen, exc)
            return False
        return True

    def set_cpu_cores(self, cores: int) -> bool:
        if self.path is None or not (self.path / "cpu.max").exists():
            return False
        try:
            _write(self.path / "cpu.max", f"{max(1, cores) * _CPU_PERIOD_US} {_CPU_PERIOD_US}")
        except OSError as exc:
            log.info("The job's CPU quota was not changed: %s", exc)
            return False
        return True

    def remove(self) -> None:
        if self.path is not None:
            _rmdir(self.path)
        self.path = None


# The user scope: what a desktop user's agent may ask of its systemd user manager.
# The controllers a scope must have for its limits to hold; systemd sets a property whose
# controller the user is not given without a word, so the agent checks for itself.
SCOPE_CONTROLLERS: tuple[str, ...] = ("memory", "pids")
SCOPE_PROBE_TIMEOUT_S = 5.0
SCOPE_FIND_TIMEOUT_S = 10.0
# A scope's keeper also holds the scope (and so its event counts) until the agent has read
# them (see bubblewrap.py).
SCOPE_EXTRA_PROCESSES = KEEPER_PROCESSES
# What systemd-run needs to reach the user manager; nothing else of the agent's
# environment goes along (bwrap clears the job's anyway).
_SCOPE_ENV = ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")
_UNIT_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def scope_unit(name: str, attempt: str | None = None) -> str:
    """A fresh unit name for a job's scope: ``heatshare-job-<attempt>-<random>``.

    The random part: a unit of a killed agent's job may still be unloading under its name.
    """
    label = _UNIT_SAFE.sub("_", attempt)[:64] if attempt else name
    return f"heatshare-job-{label}-{secrets.token_hex(4)}"


def systemd_run_argv(systemd_run: str, unit: str, limits: Limits) -> list[str]:
    """The command that runs what follows it in a new user scope with the job's limits."""
    return [
        systemd_run,
        "--user",
        "--scope",
        "--quiet",
        # Unloaded however it ends: a failed job's scope does not linger in the manager.
        "--collect",
        "--unit",
        unit,
        "-p",
        f"MemoryMax={limits.memory_bytes}",
        "-p",
        "MemorySwapMax=0",
        "-p",
        f"TasksMax={limits.max_processes + SCOPE_EXTRA_PROCESSES}",
        "-p",
        f"CPUQuota={limits.cpu_cores * 100}%",
        # The scope's group is handed to the user: systemd leaves its inside alone.
        "-p",
        "Delegate=yes",
        "--",
    ]


def scope_env() -> dict[str, str]:
    env = {"PATH": os.defpath}
    for key in _SCOPE_ENV:
        value = os.environ.get(key)
        if value:
            env[key] = value
    return env


def probe_user_scope(systemd_run: str, timeout_s: float = SCOPE_PROBE_TIMEOUT_S) -> str | None:
    """Why no user scope can be made here, as a clause; None where one can.

    Asked once, before any job depends on it: a job's start must not be the first to find
    out that there is no user manager to ask. Asked as a job's scope is, so a manager that
    refuses one of its properties says so here.
    """
    probe = Limits(memory_bytes=64 << 20, max_processes=16, disk_bytes=1 << 20, wall_time_s=1)
    argv = [*systemd_run_argv(systemd_run, scope_unit("probe"), probe), "true"]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, check=False, env=scope_env()
        )
    except subprocess.TimeoutExpired:
        return f"systemd-run --user --scope did not answer within {timeout_s:g} s"
    except OSError as exc:
        return f"systemd-run could not be run ({exc})"
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return f"systemd-run --user --scope failed ({said[0]})"
    return None


def scope_path(proc_cgroup: str, unit: str) -> str | None:
    """The v2 group of ``unit``'s scope in a /proc/<pid>/cgroup text; None if not there yet."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            path = line[3:]
            if path.rsplit("/", 1)[-1] == f"{unit}.scope":
                return path
    return None


class ScopeCgroup(CgroupV2):
    """A job's transient systemd user scope, driven as a v2 group.

    systemd set its limits (memory.max, memory.swap.max, pids.max, cpu.max) from the unit's
    properties; the agent writes only what the kernel offers any owner of a group: a freeze,
    a kill, and a lower CPU quota for the heating controller (a ``daemon-reload`` of the
    user manager may put the unit's own quota back until the next one). systemd removes the
    group once it is empty, so the event counts are kept as last read.
    """

    def __init__(self, path: Path, unit: str) -> None:
        super().__init__(path)
        self.unit = unit
        self._seen: dict[tuple[str, str], int] = {}

    @classmethod
    def find(
        cls,
        pid: int,
        unit: str,
        *,
        mount: Path = CGROUP_MOUNT,
        running: Callable[[], bool],
        timeout_s: float = SCOPE_FIND_TIMEOUT_S,
    ) -> ScopeCgroup:
        """The scope ``pid`` was moved into by systemd-run; raises OSError where it was not."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                path = scope_path(_read(Path(f"/proc/{pid}/cgroup")), unit)
            except OSError:
                path = None
            if path is not None:
                group = mount / path.lstrip("/")
                available = set(_read(group / "cgroup.controllers").split())
                missing = [c for c in SCOPE_CONTROLLERS if c not in available]
                if missing:
                    raise OSError(
                        errno.EACCES,
                        f"the user manager does not give its scopes the {' and '.join(missing)} "
                        "controller, so the job's limits would not hold",
                    )
                return cls(group, unit)
            if not running():
                raise OSError(errno.ESRCH, "systemd-run ended without making the job's scope")
            if time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, f"no scope {unit} after {timeout_s:g} s")
            time.sleep(0.002)

    def add(self, pid: int) -> None:
        """Nothing to do: systemd-run put its own process, the job's first, in the scope."""

    def _event(self, file: str, key: str) -> int:
        value = max(super()._event(file, key), self._seen.get((file, key), 0))
        self._seen[(file, key)] = value
        return value

    def kill_all(self, timeout_s: float = 2.0) -> bool:
        # Read while the keeper still holds the group: once it is empty systemd removes it.
        self.oom_kills()
        self.process_limit_hits()
        return super().kill_all(timeout_s)

    def remove(self) -> None:
        # The group is systemd's to remove (--collect): the agent only lets go of it.
        self.path = None


def _own_v2_path() -> str:
    with Path("/proc/self/cgroup").open(encoding="ascii") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].rstrip("\n")
    raise OSError(errno.ENOENT, "this process is in no cgroup v2 group")


def _signal_all(group: JobCgroup, sig: signal.Signals) -> None:
    for pid in group.pids():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _kill_until_empty(group: JobCgroup, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        pids = group.pids()
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # Usually the sandbox's pid 1 finishing its exit: gone within a millisecond.
        time.sleep(0.001)


def _rmdir(path: Path) -> None:
    # A group whose last process has just exited can be busy for a moment.
    for _ in range(250):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                log.info("Could not remove the job's cgroup %s: %s", path, exc)
                return
            time.sleep(0.002)


def _stale_names(base: Path) -> list[str]:
    """The groups of agents that are gone (a job group's name holds its agent's pid)."""
    names = []
    for entry in base.iterdir():
        agent_pid = entry.name.split("-")[1] if entry.name.count("-") >= 2 else ""
        if entry.is_dir() and agent_pid.isdigit() and not psutil.pid_exists(int(agent_pid)):
            names.append(entry.name)
    return names


def _end_stale(group: JobCgroup) -> None:
    """Ends what still runs in a gone agent's group, then removes it: a job frozen when its
    agent died (which neither bwrap's --die-with-parent nor the keeper could end while it
    stayed frozen), or one whose keeper was killed too."""
    left = group.pids()
    if left:
        log.info("Ending %d processes left in the job group of an agent that is gone", len(left))
        if not group.kill_all():
            log.error("Processes left by a gone agent's job survived SIGKILL: %s", group.pids())
    group.remove()


def apply_rlimits(pid: int, limits: Limits, *, cgroup: bool) -> None:
    """Sets the job's rlimits on its first process (inherited by all it starts)."""
    _set(pid, resource.RLIMIT_CORE, 0)
    # A single file may not pass the disk limit; writing past it raises SIGXFSZ.
    _set(pid, resource.RLIMIT_FSIZE, limits.disk_bytes)
    if cgroup:
        return
    # RLIMIT_DATA, not RLIMIT_AS: GPU runtimes reserve huge address ranges they never use.
    # Twice the limit: the watch stops a job over its limit with a clear outcome; this only
    # stops a burst faster than one poll.
    _set(pid, resource.RLIMIT_DATA, 2 * limits.memory_bytes)
    if os.getuid() != 0:
        # bwrap's monitor, the sandbox's pid 1, the wrapper and the keeper are four more; a
        # little slack lets the watch see the job pass its limit (and stop it) rather than
        # leave a fork bomb spinning on refused forks until its time is up.
        allowance = limits.max_processes + 2 + KEEPER_PROCESSES + NPROC_SLACK
        _set(pid, resource.RLIMIT_NPROC, user_process_count() + allowance)


def _set(pid: int, which: int, value: int) -> None:
    _soft, hard = resource.prlimit(pid, which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.prlimit(pid, which, (value, value))


def user_process_count() -> int:
    """Tasks (threads, on Linux) of this real user id, as RLIMIT_NPROC counts them."""
    uid = os.getuid()
    count = 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        uids = proc.info["uids"]
        if uids is not None and uids.real == uid:
            count += proc.info["num_threads"] or 1
    return count
