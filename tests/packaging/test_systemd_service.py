"""The installed agent unit under a real systemd: enabled, started, restarted, removed.

PID 1 of this machine is not systemd, so the test boots one: the Debian ``systemd`` binary
as PID 1 of a new PID and mount namespace, with a private ``/run`` and a unit search path
of its own (``SYSTEMD_UNIT_PATH``) that holds the INSTALLED ``heatshare-agent@.service`` (a
link to the package's file), a drop-in that gives the agent a home folder of the test's
own (so root's real profile is never touched), and empty stand-ins for the targets the unit
names. Nothing else of the machine's boot runs (no udev, sysctl, swap or mounts). Commands
run inside with ``nsenter``, exactly as the app's switch runs them (as root, no pkexec), and
the package is removed inside too, so its maintainer scripts see a running systemd.

What it shows: ``systemctl enable --now heatshare-agent@root.service`` starts the agent as
that user, in the unit's own cgroup, where the same user's ``heatshare-agent status``
finds it; it is enabled for the next boot (the ``multi-user.target.wants`` link); killed,
it is started again (``Restart=always``); ``apt-get remove`` stops and disables it, and
the user's data stays.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from installed import (
    PACKAGE,
    bundle_processes,
    needs,
    package_status,
    run,
    session_env,
    snapshot,
    the_deb,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

UNIT = "/usr/lib/systemd/system/heatshare-agent@.service"
INSTANCE = "heatshare-agent@root.service"
WANTS_LINK = Path("/etc/systemd/system/multi-user.target.wants") / INSTANCE
CGROUPS = Path("/sys/fs/cgroup")

# Stand-ins for what the unit and its default dependencies name: empty, so that starting
# the agent pulls in nothing of this machine's own boot.
STUBS = {
    "hs-boot.target": "[Unit]\nDescription=Boot for the Heatshare unit test\n"
    "DefaultDependencies=no\n",
    "sysinit.target": "[Unit]\nDescription=System initialisation (stand-in)\n",
    "basic.target": "[Unit]\nDescription=Basic system (stand-in)\n",
    "multi-user.target": "[Unit]\nDescription=Multi-user system (stand-in)\n",
    "network-online.target": "[Unit]\nDescription=Network is online (stand-in)\n",
    "shutdown.target": "[Unit]\nDescription=Shutdown (stand-in)\nDefaultDependencies=no\n",
    "system.slice": "[Unit]\nDescription=System slice\nDefaultDependencies=no\n",
}

BOOT = r"""
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/hs-units
cp -a "$HS_UNITS"/. /run/hs-units/
exec /lib/systemd/systemd --system --unit=hs-boot.target --log-target=console \
    --log-level=notice --show-status=no
"""


def cgroup_dirs() -> set[Path]:
    """The cgroups under the roots of this machine's hierarchies, two levels deep."""
    found: set[Path] = set()
    for hierarchy in CGROUPS.iterdir():
        if hierarchy.is_dir():
            for child in hierarchy.iterdir():
                if child.is_dir():
                    found.add(child)
                    found.update(p for p in child.rglob("*") if p.is_dir())
    return found


class Systemd:
    """systemd as PID 1 of its own PID and mount namespaces."""

    def __init__(self, units: Path, log: Path) -> None:
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--mount-proc", "sh", "-c", BOOT],
            env={
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "HS_UNITS": str(units),
                # Only the stand-ins and the installed unit; no trailing ':' (no defaults).
                "SYSTEMD_UNIT_PATH": "/run/hs-units",
            },
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = wait_until(self._find_pid, "systemd to start", 30, 0.2)
        wait_until(self._booted, "systemd to finish booting", 30, 0.2)

    def _find_pid(self) -> int | None:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            if child.name() == "systemd":
                return child.pid
        return None

    def _booted(self) -> bool:
        done = self.run("systemctl", "is-system-running", check=False)
        return done.stdout.strip() in {"running", "degraded"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "-p", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_UNIT_PATH": "/run/hs-units"},
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done

    def kill(self) -> None:
        # SIGKILL to a namespace's PID 1 ends every process in it, with no shutdown steps
        # (no swapoff or unmounting that could reach the host).
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    needs(sys.platform.startswith("linux"), "systemd runs on Linux only")
    needs(os.geteuid() == 0, "booting systemd in a namespace needs root (as CI runs)")
    for tool in ("unshare", "nsenter", "systemctl", "apt-get"):
        needs(shutil.which(tool) is not None, f"{tool} is not installed")
    needs(Path("/lib/systemd/systemd").is_file(), "systemd is not installed")
    assert "installed" not in package_status().split(), "heatshare is installed already"
    assert not WANTS_LINK.exists() and not WANTS_LINK.is_symlink(), WANTS_LINK
    deb = the_deb()
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", str(deb),
        timeout=180, DEBIAN_FRONTEND="noninteractive")  # fmt: skip

    units = tmp_path / "units"
    units.mkdir()
    for name, text in STUBS.items():
        (units / name).write_text(text)
    (units / "heatshare-agent@.service").symlink_to(UNIT)  # the package's own file
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    dropin = units / f"{INSTANCE}.d"
    dropin.mkdir()
    (dropin / "home.conf").write_text(f"[Service]\nEnvironment=HOME={home}\n")

    cgroups_before = cgroup_dirs()
    booted = Systemd(units, tmp_path / "systemd.log")
    try:
        yield booted
    finally:
        booted.kill()
        for proc in bundle_processes():
            proc.kill()
        if package_status():
            subprocess.run(["dpkg", "--purge", PACKAGE], capture_output=True, check=False)
        WANTS_LINK.unlink(missing_ok=True)
        # The groups this systemd made in the machine's hierarchies, deepest first.
        for path in sorted(cgroup_dirs() - cgroups_before, key=lambda p: -len(p.parts)):
            with_retry(path.rmdir)


def with_retry(action: Callable[[], object]) -> None:
    for _ in range(50):
        try:
            action()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)  # a killed process still leaving its group


def agent_pid(home: Path) -> int | None:
    """The pid of the agent that answers for the user with this home, else None."""
    done = subprocess.run(
        ["/usr/bin/heatshare-agent", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**session_env(dict(os.environ)), "HOME": str(home)},
    )
    if done.returncode != 0:
        return None
    for proc in bundle_processes():
        if Path(proc.cmdline()[0]).name == "heatshare-agent" and "run" in proc.cmdline():
            return proc.pid
    return None


def enabled_on_disk() -> str:
    done = subprocess.run(
        ["systemctl", "--root=/", "is-enabled", INSTANCE],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return (done.stdout + done.stderr).strip()


def test_the_agent_unit_runs_under_systemd_and_goes_with_the_package(
    systemd: Systemd, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    systemd.run("systemctl", "enable", "--now", INSTANCE)
    # Enabled for the next boot: what a boot with the machine's own unit folders would see
    # (this systemd searches only the test's folder, so it is asked offline, with --root).
    assert enabled_on_disk() == "enabled"
    assert WANTS_LINK.resolve() == Path(UNIT).resolve()
    first = wait_until(lambda: agent_pid(home), "the agent started by systemd to answer", 60, 0.2)
    cgroup = Path(f"/proc/{first}/cgroup").read_text()
    assert f"/{INSTANCE}" in cgroup, cgroup  # systemd's, not a child of this test
    assert psutil.Process(first).username() == "root"
    assert systemd.run("systemctl", "is-active", INSTANCE).stdout.strip() == "active"

    os.kill(first, signal.SIGKILL)  # Restart=always, RestartSec=10
    again = wait_until(lambda: agent_pid(home), "systemd to start the agent again", 60, 0.2)
    assert again != first

    # The running agent still writes; what must stay is every file it keeps (not its
    # runtime file and SQLite's journal, which a clean stop folds in and removes).
    kept = {n for n in snapshot(home) if not n.endswith(("-wal", "-shm", "/agent.json"))}
    assert any(name.endswith("heatshare.sqlite3") for name in kept), kept
    said = systemd.run(
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "remove", "-y", "-qq", PACKAGE
    )
    assert "installed" not in package_status().split(), said.stdout
    wait_until(lambda: not bundle_processes(), "the agent to stop", 30, 0.2)
    assert not WANTS_LINK.is_symlink(), "removing the package left the unit enabled"
    assert enabled_on_disk().endswith("No such file or directory")  # the unit is gone
    state = systemd.run("systemctl", "is-active", INSTANCE, check=False).stdout.strip()
    assert state in {"inactive", "failed"}, state
    assert kept <= set(snapshot(home)), "removing the package took the user's data"
