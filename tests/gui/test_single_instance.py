"""One instance per user and profile, across real processes and real local sockets."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from heatshare.gui.single_instance import SingleInstance, server_name

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# A second launch, as a real process: claims, says what happened, then behaves as told.
LAUNCH = """
import os, signal, sys
from PySide6.QtCore import QCoreApplication, QLockFile
from heatshare.gui.single_instance import SingleInstance

app = QCoreApplication([])
key, profile, mode = sys.argv[1], sys.argv[2] or None, sys.argv[3]
instance = SingleInstance(key, profile_dir=profile, timeout_ms=300)
if mode == "lock-only":  # an instance caught between taking the lock and listening
    lock = QLockFile(instance.lock_file_name)
    assert lock.tryLock(0)
    print("locked", flush=True)
    sys.stdin.read()
    sys.exit(0)
print("claimed" if instance.claim() else "deferred", flush=True)
if mode == "crash":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "hold":
    sys.stdin.read()  # until the test closes our stdin
instance.close()
"""


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short on purpose: a Unix socket path must fit in 108 bytes, and pytest's tmp_path is long.
    with tempfile.TemporaryDirectory(prefix="hs-si-") as tmp:
        Path(tmp).chmod(0o700)
        monkeypatch.setenv("XDG_RUNTIME_DIR", tmp)
        yield Path(tmp)


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    return f"hs-test-{request.node.name[:20]}"


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    script = tmp_path / "launch.py"
    script.write_text(LAUNCH)
    procs: list[subprocess.Popen[str]] = []

    def start(key: str, mode: str = "exit", profile: str = "") -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(script), key, profile, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def finish(qtbot: QtBot, proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for the process while this process's event loop runs (to answer it)."""
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=10_000)
    _out, err = proc.communicate(timeout=5)
    return proc.returncode, err


@pytest.fixture
def instance(key: str, runtime_dir: Path, qapp: Any) -> Iterator[SingleInstance]:
    inst = SingleInstance(key, timeout_ms=300)
    yield inst
    inst.close()


def test_name_is_per_user_and_per_profile(
    runtime_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    plain = server_name("org.heatshare.Heatshare")
    assert plain == str(runtime_dir / "org.heatshare.Heatshare-alice")
    a = server_name("org.heatshare.Heatshare", tmp_path / "a")
    b = server_name("org.heatshare.Heatshare", tmp_path / "b")
    assert len({plain, a, b}) == 3
    assert a.startswith(plain + "-")
    # The same folder spelled differently is the same profile.
    monkeypatch.chdir(tmp_path)
    assert server_name("org.heatshare.Heatshare", "a/../a/") == a
    monkeypatch.setenv("USER", "bob")
    monkeypatch.setenv("LOGNAME", "bob")
    assert server_name("org.heatshare.Heatshare") != plain


def test_name_without_runtime_dir_is_a_bare_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    # Qt puts a bare name in the user's temp folder (or the pipe namespace on Windows).
    assert server_name("org.heatshare.Heatshare") == "org.heatshare.Heatshare-alice"


def test_name_too_long_for_a_socket_is_shortened(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deep = tmp_path / ("x" * 60)
    deep.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    name = server_name("org.heatshare.Heatshare", tmp_path / "profile")
    assert len(name.encode()) <= 100 or Path(name).parent == deep
    assert Path(name).parent == deep


def test_second_launch_defers_and_activates_the_first(
    instance: SingleInstance, launch: Callable[..., subprocess.Popen[str]], key: str, qtbot: QtBot
) -> None:
    assert instance.claim()
    assert instance.claim()  # claiming again is harmless
    assert Path(instance.name).exists()
    with qtbot.waitSignal(instance.activate_requested, timeout=5000):
        second = launch(key)
        assert first_line(second) == "deferred"
    code, err = finish(qtbot, second)
    assert (code, err) == (0, "")


def test_every_launch_activates_again(
    instance: SingleInstance, launch: Callable[..., subprocess.Popen[str]], key: str, qtbot: QtBot
) -> None:
    assert instance.claim()
    activations: list[None] = []
    instance.activate_requested.connect(lambda: activations.append(None))
    for _ in range(3):
        proc = launch(key)
        assert first_line(proc) == "deferred"
        finish(qtbot, proc)
    qtbot.waitUntil(lambda: len(activations) == 3, timeout=5000)


def test_other_profiles_run_side_by_side(
    instance: SingleInstance,
    launch: Callable[..., subprocess.Popen[str]],
    key: str,
    tmp_path: Path,
    qtbot: QtBot,
) -> None:
    assert instance.claim()
    with qtbot.assertNotEmitted(instance.activate_requested, wait=200):
        other = launch(key, "exit", str(tmp_path / "dev-profile"))
        assert first_line(other) == "claimed"
        finish(qtbot, other)


def test_first_launch_elsewhere_makes_this_one_defer(
    launch: Callable[..., subprocess.Popen[str]], key: str, runtime_dir: Path, qapp: Any
) -> None:
    first = launch(key, "hold")
    assert first_line(first) == "claimed"
    inst = SingleInstance(key, timeout_ms=300)
    try:
        assert not inst.claim()
        assert not inst.is_claimed
    finally:
        inst.close()
    assert first.stdin is not None
    first.stdin.close()
    assert first.wait(5) == 0
    # Once the first has gone, this one becomes the instance.
    inst = SingleInstance(key, timeout_ms=300)
    try:
        assert inst.claim()
    finally:
        inst.close()


def test_stale_socket_after_a_crash_is_removed(
    launch: Callable[..., subprocess.Popen[str]], key: str, runtime_dir: Path, qtbot: QtBot
) -> None:
    crashed = launch(key, "crash")
    assert first_line(crashed) == "claimed"
    code, _ = finish(qtbot, crashed)
    assert code == -9
    inst = SingleInstance(key, timeout_ms=300)
    try:
        assert Path(inst.name).exists(), "the crash should have left its socket behind"
        assert Path(inst.lock_file_name).exists(), "and its lock file"
        assert inst.claim()
        # It is a live server now: the next launch is sent to it.
        with qtbot.waitSignal(inst.activate_requested, timeout=5000):
            again = launch(key)
            assert first_line(again) == "deferred"
        finish(qtbot, again)
    finally:
        inst.close()
    assert not Path(inst.name).exists()


def test_a_holder_that_never_answers_is_not_pushed_aside(
    launch: Callable[..., subprocess.Popen[str]],
    key: str,
    runtime_dir: Path,
    qapp: Any,
    expect_log: Callable[[str], None],
) -> None:
    expect_log(r"Another Heatshare instance is running .* but does not answer")
    holder = launch(key, "lock-only")
    assert first_line(holder) == "locked"
    inst = SingleInstance(key, timeout_ms=100)
    try:
        assert not inst.claim()
    finally:
        inst.close()


def test_close_lets_the_next_launch_claim(
    instance: SingleInstance, launch: Callable[..., subprocess.Popen[str]], key: str, qtbot: QtBot
) -> None:
    assert instance.claim()
    instance.close()
    assert not instance.is_claimed
    nxt = launch(key)
    assert first_line(nxt) == "claimed"
    finish(qtbot, nxt)
