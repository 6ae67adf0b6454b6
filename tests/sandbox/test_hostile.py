"""Hostile jobs in the real sandbox: each is stopped, and the host is unharmed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import LIMITS, MiB, Ran
from heatshare.jobs.bubblewrap import BubblewrapSandbox
from heatshare.jobs.limits import CgroupV1
from heatshare.jobs.sandbox import Outcome
from processes import marked_processes

RunJob = Callable[..., Ran]

# A job that looks everywhere it can for files whose names hold a marker, and reports
# what it found and which well-known places it could see.
SEARCH = textwrap.dedent(
    """
    import json, os, sys
    marker = sys.argv[1]
    paths = [a for a in sys.argv[2:]]
    found = []
    for top in ("/",):
        for root, dirs, files in os.walk(top):
            if root in ("/proc", "/sys", "/usr"):
                dirs[:] = []
                continue
            found += [os.path.join(root, f) for f in files + dirs if marker in f]
    readable = {}
    for p in paths:
        try:
            with open(p) as f:
                readable[p] = f.read()
        except OSError as exc:
            readable[p] = None
    seen = {p: os.path.exists(p) for p in (
        "/run", "/var", "/root", "/home", "/work", "/run/dbus/system_bus_socket",
        "/var/run/dbus/system_bus_socket", "/tmp/.X11-unix", "/dev/kvm", "/dev/fuse",
    )}
    print(json.dumps({"found": found, "readable": readable, "seen": seen,
                      "dbus": os.environ.get("DBUS_SESSION_BUS_ADDRESS")}))
    """
)


def _last_json(ran: Ran) -> dict[str, object]:
    line = [ln for ln in ran.log.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)  # type: ignore[no-any-return]


def test_the_home_folder_and_the_agents_data_are_out_of_sight(
    run_job: RunJob, tmp_path: Path
) -> None:
    marker = f"hs-secret-{uuid.uuid4().hex}"
    home_secret = Path.home() / f".{marker}"
    data = Path.home() / ".local" / "share" / f"heatshare-{marker}"
    data.mkdir(parents=True)
    token = data / f"agent-token-{marker}"
    other = tmp_path / f"agent-data-{marker}" / "token"
    other.parent.mkdir()
    try:
        for path in (home_secret, token, other):
            path.write_text("hsn_secret")
        ran = run_job(["python3", "-c", SEARCH, marker, str(home_secret), str(token), str(other)])
    finally:
        home_secret.unlink()
        shutil.rmtree(data)
    assert ran.result.outcome is Outcome.EXITED, ran.log
    report = _last_json(ran)
    assert report["found"] == []
    assert report["readable"] == {str(p): None for p in (home_secret, token, other)}
    assert report["seen"] == {
        "/run": False,
        "/var": False,
        "/root": False,
        "/home": False,
        "/work": False,
        "/run/dbus/system_bus_socket": False,
        "/var/run/dbus/system_bus_socket": False,
        "/tmp/.X11-unix": False,
        "/dev/kvm": False,
        "/dev/fuse": False,
    }
    assert report["dbus"] is None


def test_secrets_in_etc_are_hidden_even_from_a_root_agent(run_job: RunJob) -> None:
    ran = run_job(["sh", "-c", "cat /etc/shadow; echo rc=$?; ls -A /etc/ssh | wc -l"])
    assert "rc=1" in ran.log
    assert "root:" not in ran.log
    assert ran.log.strip().endswith("0")


def test_no_network_not_even_the_hosts_loopback(run_job: RunJob) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    abstract = socket.socket(socket.AF_UNIX)
    name = f"\0hs-test-{uuid.uuid4().hex}"
    abstract.bind(name)
    abstract.listen()
    server.settimeout(0.5)
    abstract.settimeout(0.2)
    port = server.getsockname()[1]
    probe = textwrap.dedent(
        f"""
        import socket
        for family, address in ((socket.AF_INET, ("127.0.0.1", {port})),
                                (socket.AF_INET, ("1.1.1.1", 53)),
                                (socket.AF_UNIX, {name!r})):
            s = socket.socket(family)
            s.settimeout(2)
            try:
                s.connect(address)
                print("connected", address)
            except OSError as exc:
                print("refused", type(exc).__name__)
            s.close()
        """
    )
    with server, abstract:
        ran = run_job(["python3", "-c", probe])
        for listener in (server, abstract):
            with pytest.raises(TimeoutError):
                listener.accept()
    assert ran.result.exit_code == 0, ran.log
    assert "connected" not in ran.log
    assert ran.log.count("refused") == 3


def test_a_fork_bomb_is_stopped_by_the_process_limit(run_job: RunJob, cgroups: bool) -> None:
    marker = f"hs-bomb-{uuid.uuid4().hex}"
    started = time.monotonic()
    ran = run_job(
        ["sh", "-c", f"f(){{ f | f & }}; f; wait # {marker}"],
        limits=replace(LIMITS, max_processes=32),
    )
    # A cgroup counts refused forks; without one (see the fallback test) a bomb that
    # burns out on RLIMIT_NPROC before the watch counts past the limit just ends.
    expected = {Outcome.PROCESS_LIMIT} if cgroups else {Outcome.PROCESS_LIMIT, Outcome.EXITED}
    assert ran.result.outcome in expected
    if ran.result.outcome is Outcome.PROCESS_LIMIT:
        assert "limit of 32 processes" in ran.result.message
    assert time.monotonic() - started < 5
    assert marked_processes(marker) == []
    # The host still forks.
    assert subprocess.run(["true"], check=False).returncode == 0


def test_memory_past_the_limit_is_out_of_memory(run_job: RunJob) -> None:
    ran = run_job(
        ["python3", "-c", "b = bytearray(512 << 20); print('allocated')"],
        limits=replace(LIMITS, memory_bytes=64 * MiB),
    )
    assert ran.result.outcome is Outcome.OUT_OF_MEMORY, ran.log
    assert "memory limit of 64 MiB" in ran.result.message
    assert "allocated" not in ran.log


@pytest.mark.parametrize(
    "command",
    [
        # Many files, none alone past the limit: the watch of the slot's size.
        "i=0; while :; do head -c 1048576 /dev/zero > /job/fill$i || exit 9; i=$((i+1)); done",
        # One big file: RLIMIT_FSIZE.
        "cat /dev/zero > /job/big; exit 9",
        # The private /tmp: its size cap and the watch.
        "i=0; while :; do head -c 1048576 /dev/zero > /tmp/fill$i || exit 9; i=$((i+1)); done",
    ],
    ids=["many-files", "one-file", "tmp"],
)
def test_filling_the_disk_is_disk_full_and_the_host_keeps_its_space(
    run_job: RunJob, slot: Path, command: str
) -> None:
    free_before = shutil.disk_usage(slot).free
    ran = run_job(["sh", "-c", command], limits=replace(LIMITS, disk_bytes=32 * MiB))
    assert ran.result.outcome is Outcome.DISK_FULL, (ran.result, ran.log)
    assert "disk limit of 32 MiB" in ran.result.message
    used = sum(p.stat().st_blocks * 512 for p in slot.rglob("*") if p.is_file())
    # One poll of the watch may pass the limit; not more than that.
    assert used < 32 * MiB + 256 * MiB
    # Others share this disk and write too: a wide margin, far below a filled disk.
    assert shutil.disk_usage(slot).free > free_before - 512 * MiB


def test_writes_outside_the_slot_fail_or_stay_in_the_sandbox(run_job: RunJob, slot: Path) -> None:
    marker = f"hs-escape-{uuid.uuid4().hex}"
    targets = [
        f"/usr/{marker}",
        f"/etc/{marker}",
        f"/{marker}",
        f"/job/../{marker}",
        f"/dev/{marker}",
        f"/proc/{marker}",
        f"/tmp/{marker}",
        f"/job/{marker}",
    ]
    script = "; ".join(
        f"(echo x > {t}) 2>/dev/null && echo wrote {t} || echo failed {t}" for t in targets
    )
    ran = run_job(["sh", "-c", script])
    wrote = {ln.split()[1] for ln in ran.log.splitlines() if ln.startswith("wrote")}
    # /tmp is the sandbox's own, /job is the slot; everything else is read-only.
    assert wrote == {f"/tmp/{marker}", f"/job/{marker}"}, ran.log
    assert not Path(f"/tmp/{marker}").exists()
    assert (slot / marker).read_text() == "x\n"
    assert not (slot.parent / marker).exists()
    assert marked_processes(marker) == []


AGENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from heatshare.jobs.bubblewrap import BubblewrapSandbox
    from heatshare.jobs.sandbox import Limits, SandboxRequest

    slot = Path(sys.argv[1])
    job = Path(sys.argv[2])
    limits = Limits(memory_bytes=128 << 20, max_processes=32, disk_bytes=64 << 20,
                    wall_time_s=120)
    proc = BubblewrapSandbox().start(
        SandboxRequest(slot=slot, command=["python3", "/job/daemon.py", sys.argv[3]],
                       limits=limits, log_path=slot.parent / "job.log"))
    print("started", proc.pid, flush=True)
    proc.wait()
    """
)

DAEMON = textwrap.dedent(
    """
    import os, sys, time
    marker = sys.argv[1]
    sleeper = ["python3", "-c", "import time; time.sleep(300)", marker]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("python3", sleeper)  # double-forked, its own session
        os._exit(0)
    os.execvp("python3", sleeper)
    """
)


def test_nothing_of_the_job_survives_the_agent_killed(
    slot: Path, run_job: RunJob, cgroups: bool
) -> None:
    marker = f"hs-orphan-{uuid.uuid4().hex}"
    (slot / "daemon.py").write_text(DAEMON)
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(slot), "daemon.py", marker],
        stdout=subprocess.PIPE,
        text=True,
    )

    def job_processes() -> list[int]:
        return [pid for pid in marked_processes(marker) if pid != agent.pid]

    def sleepers() -> list[int]:
        return [
            pid
            for pid in job_processes()
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"python3\0-c")
        ]

    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().startswith("started")
        deadline = time.monotonic() + 10
        while len(sleepers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sleepers()) == 2, (slot.parent / "job.log").read_text()
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        deadline = time.monotonic() + 2
        while job_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job_processes() == []
    finally:
        agent.kill()
        agent.wait()
        agent.stdout.close()  # type: ignore[union-attr]
    if cgroups:
        # The dead agent's (empty) groups stay until the next agent's first job sweeps them.
        left = [b / f"job-{agent.pid}-1" for b in CgroupV1.bases().values()]
        assert all(path.is_dir() for path in left)

        def in_groups() -> list[str]:
            return [pid for path in left for pid in (path / "cgroup.procs").read_text().split()]

        # A killed process leaves /proc's command lines at once but its group only once its
        # parent reaps it: wait for that within the same bound as above.
        while in_groups() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert in_groups() == []
        run_job(["true"], using=BubblewrapSandbox())
        assert not any(path.exists() for path in left)


def test_a_job_past_its_time_is_timed_out(run_job: RunJob) -> None:
    marker = f"hs-slow-{uuid.uuid4().hex}"
    started = time.monotonic()
    ran = run_job(["sh", "-c", f"sleep 30; : {marker}"], limits=replace(LIMITS, wall_time_s=1.0))
    assert ran.result.outcome is Outcome.TIMED_OUT
    assert ran.result.message == "The job ran past its time limit of 1 s and was stopped."
    assert 1.0 <= time.monotonic() - started < 3
    assert marked_processes(marker) == []


# Without cgroups (a desktop on cgroup v2 with no delegation): rlimits and the watch.


def test_fallback_memory_past_the_limit_is_out_of_memory(
    run_job: RunJob, fallback_sandbox: BubblewrapSandbox
) -> None:
    grow = (
        "import time\nkeep = []\n"
        "while True:\n    keep.append(b'x' * (4 << 20))\n    time.sleep(0.01)"
    )
    ran = run_job(
        ["python3", "-c", grow],
        limits=replace(LIMITS, memory_bytes=64 * MiB),
        using=fallback_sandbox,
    )
    assert ran.result.outcome is Outcome.OUT_OF_MEMORY, ran.log


def test_fallback_single_allocation_past_the_limit_is_out_of_memory(
    run_job: RunJob, fallback_sandbox: BubblewrapSandbox
) -> None:
    # RLIMIT_DATA refuses the allocation at once: the job fails, saying so itself.
    ran = run_job(
        ["python3", "-c", "b = bytearray(512 << 20); print('allocated')"],
        limits=replace(LIMITS, memory_bytes=64 * MiB),
        using=fallback_sandbox,
    )
    assert "allocated" not in ran.log
    assert "MemoryError" in ran.log
    assert ran.result.outcome is Outcome.OUT_OF_MEMORY


def test_fallback_time_and_disk_limits_hold(
    run_job: RunJob, fallback_sandbox: BubblewrapSandbox
) -> None:
    slow = run_job(["sleep", "30"], limits=replace(LIMITS, wall_time_s=1.0), using=fallback_sandbox)
    assert slow.result.outcome is Outcome.TIMED_OUT
    full = run_job(
        ["sh", "-c", "cat /dev/zero > /tmp/big"],
        limits=replace(LIMITS, disk_bytes=16 * MiB),
        using=fallback_sandbox,
    )
    assert full.result.outcome is Outcome.DISK_FULL, full.log


@pytest.mark.skipif(
    os.getuid() == 0, reason="RLIMIT_NPROC does not bind root; as root the cgroup does it"
)
def test_fallback_fork_bomb_is_contained(
    run_job: RunJob, fallback_sandbox: BubblewrapSandbox
) -> None:
    # Without a cgroup a refused fork is not seen from outside: the bomb either passes
    # the watch's count (PROCESS_LIMIT) or burns out on RLIMIT_NPROC and the job ends.
    started = time.monotonic()
    ran = run_job(
        ["sh", "-c", "f(){ f | f & }; f; wait"],
        limits=replace(LIMITS, max_processes=32, wall_time_s=20),
        using=fallback_sandbox,
    )
    assert ran.result.outcome in {Outcome.PROCESS_LIMIT, Outcome.EXITED}
    assert time.monotonic() - started < 10
    assert subprocess.run(["true"], check=False).returncode == 0
