"""The .rpm, installed and removed by rpm itself, and its programs run from where it put them.

This machine is Debian, so rpm keeps its database in a folder of the test's own (``--dbpath``)
and is told not to look for the Fedora names of the libraries the package requires
(``--nodeps``: Debian has them under other names). Everything else is real: rpmbuild builds
the package from the same staged tree as the .deb (the same PyInstaller bundle where the .deb
test built it from this commit), rpm installs its files into ``/`` and runs its scriptlets,
the installed agent joins the demo network it starts from the package and earns a credit,
and ``rpm -e`` takes every file away and leaves the user's profile as it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from installed import (
    ICON_SIZES,
    LIB,
    PACKAGE,
    PROGRAMS,
    bundle_processes,
    credited,
    needs,
    run,
    session_env,
    snapshot,
    verify_unit,
    wait_until,
)

from heatshare.__about__ import __app_id__, __version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

ROOT = Path(__file__).resolve().parents[2]
CREDIT_S = 150.0
# What the package may leave on removal: folders other packages share.
SHARED_DIRS = {"/usr", "/usr/bin", "/usr/lib", "/usr/share", "/usr/share/applications"}


@pytest.fixture(scope="module")
def rpm_file() -> Path:
    needs(sys.platform.startswith("linux"), "the .rpm is built and installed on Linux only")
    needs(os.geteuid() == 0, "installing a package needs root (run as root, as CI does)")
    for tool in ("rpm", "rpmbuild", "systemd-analyze", "desktop-file-validate", "appstreamcli"):
        needs(shutil.which(tool) is not None, f"{tool} is not installed (scripts/system-deps.sh)")
    needs(
        (ROOT / ".venv" / "bin" / "pyinstaller").is_file()
        or shutil.which("pyinstaller") is not None,
        "pyinstaller is not installed (the test extras: pip install -e '.[test]')",
    )
    assert not LIB.exists(), f"{LIB} exists: a Heatshare package is installed already"
    said = run(str(ROOT / "packaging" / "linux" / "build-rpm.sh"), timeout=400,
               HEATSHARE_REUSE_BUNDLE="1")  # fmt: skip
    found = [Path(line) for line in said.splitlines() if line.endswith(".rpm")]
    assert len(found) == 1 and found[0].is_file(), said
    return found[0]


@pytest.fixture
def rpmdb(tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "rpmdb"
    run("rpm", "--dbpath", str(db), "--initdb")
    try:
        yield db
    finally:
        for proc in bundle_processes():
            proc.kill()
        subprocess.run(
            ["rpm", "--dbpath", str(db), "-e", "--nodeps", PACKAGE],
            capture_output=True, check=False, timeout=120,
        )  # fmt: skip


def test_the_rpm_says_what_it_is(rpm_file: Path) -> None:
    query = run("rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}\n", str(rpm_file)).split()
    assert query == [PACKAGE, __version__, run("uname", "-m").strip()]
    requires = run("rpm", "-qp", "--requires", str(rpm_file))
    for library in ("libxcb", "xcb-util-cursor", "libxkbcommon-x11", "fontconfig"):
        assert library in requires, requires


def test_rpm_installs_runs_and_removes_the_package(
    rpm_file: Path, rpmdb: Path, tmp_path: Path
) -> None:
    rpm = ("rpm", "--dbpath", str(rpmdb))
    run(*rpm, "-i", "--nodeps", str(rpm_file), timeout=180)
    arch = run("uname", "-m").strip()
    assert run(*rpm, "-q", PACKAGE).strip() == f"{PACKAGE}-{__version__}-1.{arch}"
    files = [Path(line) for line in run(*rpm, "-ql", PACKAGE).splitlines() if line]
    assert all(f.exists() or f.is_symlink() for f in files), [f for f in files if not f.exists()]
    run(*rpm, "-V", "--nodeps", PACKAGE)  # every file as the package says: size, digest, mode

    for program in PROGRAMS:
        assert Path("/usr/bin", program).resolve() == LIB / "heatshare"
        assert run(f"/usr/bin/{program}", "--version").strip() == f"{program} {__version__}"
    run("desktop-file-validate", f"/usr/share/applications/{__app_id__}.desktop")
    run("appstreamcli", "validate", "--no-net", f"/usr/share/metainfo/{__app_id__}.metainfo.xml")
    for size in ICON_SIZES:
        assert Path(f"/usr/share/icons/hicolor/{size}/apps/{__app_id__}.png").is_file(), size
    verify_unit()

    # The installed agent, headless as on a server in the shed, on the demo network.
    profile = tmp_path / "profile"
    env = session_env(dict(os.environ))
    with (tmp_path / "agent-output.txt").open("wb") as output:
        agent = subprocess.Popen(
            ["/usr/bin/heatshare-agent", "run", "--profile-dir", str(profile)],
            env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(
                ["/usr/bin/heatshare-agent", "demo", "--profile-dir", str(profile)],
                capture_output=True, text=True, env=env, timeout=120, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                break
            assert done.returncode == 3 and time.monotonic() < deadline, done.stderr
            time.sleep(1)
        started = time.monotonic()

        def credit() -> dict[str, object] | None:
            assert agent.poll() is None, (tmp_path / "agent-output.txt").read_text()
            return credited(profile, env)

        earnings = wait_until(credit, "a demo credit", CREDIT_S, 2.0)
        assert earnings["currency"] == "CRD", earnings
        names = {Path(p.cmdline()[0]).name for p in bundle_processes() if p.cmdline()}
        assert {"heatshare-agent", "heatshare-coordinator"} <= names, names
        print(f"first demo credit {time.monotonic() - started:.1f} s after joining")
    finally:
        run("/usr/bin/heatshare-agent", "stop", "--profile-dir", str(profile), timeout=60)
        agent.wait(30)
    said = (tmp_path / "agent-output.txt").read_text(errors="replace")
    assert "Traceback" not in said, said
    wait_until(lambda: not bundle_processes(), "the agent and the demo network to end", 30, 0.2)

    before = snapshot(profile)
    assert before, "the profile folder is empty"
    run(*rpm, "-e", PACKAGE, timeout=120)
    assert subprocess.run([*rpm, "-q", PACKAGE], capture_output=True, check=False).returncode
    left = [str(f) for f in files if (f.exists() or f.is_symlink()) and str(f) not in SHARED_DIRS]
    assert left == [], f"removing the package left: {left[:10]}"
    assert not Path("/usr/share/doc/heatshare").exists()
    assert snapshot(profile) == before, "removing the package changed the user's profile"
