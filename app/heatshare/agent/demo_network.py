"""The embedded demo network: a local coordinator the agent starts, joins and stops.

The demo coordinator is a child process (``python -m heatshare.coordinator serve --demo``)
on an SQLite file in the agent's data folder, listening on a free loopback port. It says
where it listens in a runtime file (``{"url": ..., "pid": ...}``, written once it listens),
so an agent that restarts finds the one already running and joins it again rather than
starting a second one. The agent never imports the coordinator: it only runs it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import requests

log = logging.getLogger(__name__)

DB_FILE = "demo-network.sqlite"
RUNTIME_FILE = "demo-network.json"
LOG_FILE = "demo-network.log"

_PROBE_TIMEOUT_S = 2.0
_STOP_GRACE_S = 10.0
_LOG_TAIL_BYTES = 4000


class DemoNetworkError(Exception):
    """The demo network could not be started or joined; the message says why."""


class DemoNetwork:
    """Starts, finds and stops the demo coordinator of one agent's data folder.

    Args:
        data_dir: the agent's data folder; the coordinator's database, runtime file and log
            live here.
        python: the interpreter that runs the coordinator.
    """

    def __init__(self, data_dir: Path, *, python: str = sys.executable) -> None:
        self._data_dir = data_dir
        self._python = python
        self.db_path = data_dir / DB_FILE
        self.runtime_path = data_dir / RUNTIME_FILE
        self.log_path = data_dir / LOG_FILE
        self._start_lock = threading.Lock()  # one start at a time
        self._lock = threading.Lock()  # the fields below; never held while waiting
        self._process: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None  # one a previous agent started
        self._url: str | None = None

    # --- public -----------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> tuple[str, str]:
        """Starts (or finds) the demo coordinator; returns its URL and a fresh pairing code."""
        with self._start_lock:
            url = self.url()
            if url is None:
                url = self._adopt() or self._spawn(timeout_s)
        return url, self._pair_code(timeout_s)

    def url(self) -> str | None:
        """The running demo coordinator's base URL, or None."""
        with self._lock:
            return self._url if self._is_running() else None

    @property
    def running(self) -> bool:
        with self._lock:
            return self._is_running()

    def stop(self) -> None:
        """Stops the demo coordinator (SIGTERM, then SIGKILL); does nothing if none runs.

        Safe while :meth:`start` is under way: that start then fails with a DemoNetworkError.
        """
        with self._lock:
            process, self._process = self._process, None
            adopted, self._adopted_pid = self._adopted_pid, None
            self._url = None
        if process is not None:
            _stop_child(process)
            self._forget_runtime(process.pid)
        elif adopted is not None:
            _stop_pid(adopted)
            self._forget_runtime(adopted)

    # --- internals --------------------------------------------------------------------------

    def _is_running(self) -> bool:
        if self._process is not None:
            return _child_running(self._process)
        if self._adopted_pid is not None:
            return _pid_alive(self._adopted_pid)
        return False

    def _read_runtime(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.runtime_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        if not isinstance(data.get("url"), str) or not isinstance(data.get("pid"), int):
            return None
        return data

    def _adopt(self) -> str | None:
        """The URL of a demo coordinator left running by an earlier agent, if it answers."""
        runtime = self._read_runtime()
        if runtime is None:
            return None
        pid, url = runtime["pid"], runtime["url"].rstrip("/")
        if not _pid_alive(pid) or not _is_coordinator(pid) or not _answers(url):
            return None
        log.info("Joining the demo network already running at %s (pid %d).", url, pid)
        with self._lock:
            self._process, self._adopted_pid, self._url = None, pid, str(url)
        return str(url)

    def _spawn(self, timeout_s: float) -> str:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        # A runtime file left by a coordinator that is gone would be mistaken for the new one.
        self.runtime_path.unlink(missing_ok=True)
        command = [
            *self._coordinator(),
            "serve",
            "--demo",
            "--db",
            str(self.db_path),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--runtime-file",
            str(self.runtime_path),
        ]
        with self.log_path.open("wb") as log_file:
            process = _popen(command, log_file)
        with self._lock:
            self._process, self._adopted_pid, self._url = process, None, None
        log.info("Starting the demo network (pid %d, log %s).", process.pid, self.log_path)
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                ours = self._process is process
            if not ours:
                raise DemoNetworkError("The demo network was stopped while it was starting.")
            if not _child_running(process):
                code = process.wait()
                self._drop(process)
                raise DemoNetworkError(
                    f"The demo network's coordinator stopped at start with exit status {code}. "
                    f"The end of its log ({self.log_path}):\n{self._log_tail()}"
                )
            runtime = self._read_runtime()
            if runtime is not None and runtime["pid"] == process.pid:
                url = str(runtime["url"]).rstrip("/")
                if _answers(url):
                    with self._lock:
                        if self._process is process:
                            self._url = url
                    log.info("The demo network listens at %s.", url)
                    return url
            if time.monotonic() > deadline:
                if self._drop(process):
                    _stop_child(process)
                raise DemoNetworkError(
                    f"The demo network's coordinator did not answer within {timeout_s:.0f} s. "
                    f"The end of its log ({self.log_path}):\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def _drop(self, process: subprocess.Popen[bytes]) -> bool:
        """Forgets the process if it is still the current one; whether it was."""
        with self._lock:
            if self._process is not process:
                return False
            self._process = None
            return True

    def _pair_code(self, timeout_s: float) -> str:
        command = [*self._coordinator(), "pair-code", "demo", "--db", str(self.db_path)]
        try:
            done = subprocess.run(
                command, capture_output=True, timeout=timeout_s, check=False, text=True
            )
        except subprocess.TimeoutExpired as exc:
            raise DemoNetworkError(
                f"The demo network gave no pairing code within {timeout_s:.0f} s."
            ) from exc
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            said = (done.stderr.strip() or done.stdout.strip())[-_LOG_TAIL_BYTES:]
            raise DemoNetworkError(
                "The demo network gave no pairing code "
                f"(exit status {done.returncode}): {said or 'it printed nothing'}"
            )
        return lines[-1]

    def _coordinator(self) -> list[str]:
        if getattr(sys, "frozen", False):
            # A bundle has no interpreter to take -m: the coordinator is a program beside it.
            return [str(Path(sys.executable).with_name("heatshare-coordinator"))]
        return [self._python, "-m", "heatshare.coordinator"]

    def _log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _LOG_TAIL_BYTES))
                return f.read().decode("utf-8", "replace").strip() or "(the log is empty)"
        except OSError as exc:
            return f"(its log cannot be read: {exc})"

    def _forget_runtime(self, pid: int) -> None:
        runtime = self._read_runtime()
        if runtime is not None and runtime["pid"] == pid:
            self.runtime_path.unlink(missing_ok=True)


def _popen(command: list[str], log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    # Its own process group: a Ctrl-C meant for the agent's terminal does not reach it, and
    # stop() can end the coordinator and anything it started together.
    if sys.platform == "win32":
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
        )
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _answers(url: str) -> bool:
    try:
        response = requests.get(f"{url}/v1/openapi.json", timeout=_PROBE_TIMEOUT_S)
    except requests.RequestException:
        return False
    return response.status_code == 200


def _pid_alive(pid: int) -> bool:
    """Whether the process runs; a zombie (ended, not yet reaped by its parent) does not."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # it exists, but is not ours to inspect


def _is_coordinator(pid: int) -> bool:
    """Whether the pid still runs a Heatshare coordinator, not a process that took its pid."""
    import psutil

    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:  # gone, or not ours to inspect: not one to adopt
        return False
    return any(
        "heatshare.coordinator" in part or "heatshare-coordinator" in part for part in cmdline
    )


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signals the process group led by ``pid``, or the process alone if it leads none."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass  # no such group: the process was not started as a group leader
        except PermissionError:
            return
        else:
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _exited(pid: int, timeout_s: float) -> bool:
    """Waits for the child to exit but leaves it unreaped, so its pid (and the group id)
    cannot be taken by another process while the group is cleaned up."""
    deadline = time.monotonic() + timeout_s
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _child_running(process: subprocess.Popen[bytes]) -> bool:
    """Whether the child runs, without reaping it (see :func:`_exited`)."""
    if process.returncode is not None:
        return False
    if not hasattr(os, "waitid"):
        return process.poll() is None
    try:
        return not _exited(process.pid, 0)
    except ChildProcessError:  # reaped already
        return False


def _stop_child(process: subprocess.Popen[bytes]) -> None:
    if not hasattr(os, "waitid"):  # Windows
        process.terminate()
        try:
            process.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log.warning("The demo network did not stop within %.0f s; killing it.", _STOP_GRACE_S)
            process.kill()
            process.wait()
        return
    try:
        if not _exited(process.pid, 0):
            _signal_group(process.pid, signal.SIGTERM)
            if not _exited(process.pid, _STOP_GRACE_S):
                log.warning(
                    "The demo network did not stop within %.0f s; killing it.", _STOP_GRACE_S
                )
        # Whatever is left of the group (the coordinator if it hung, anything it started)
        # goes now, while the unreaped leader still holds the group's id.
        _signal_group(process.pid, signal.SIGKILL)
    except ChildProcessError:
        pass  # reaped already: nothing of it is left to signal safely
    process.wait()


def _stop_pid(pid: int) -> None:
    """Stops a demo coordinator this agent did not start (so it cannot wait() for it)."""
    if sys.platform == "win32":
        import psutil

        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).terminate()
    else:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        log.warning("The demo network did not stop within %.0f s; killing it.", _STOP_GRACE_S)
        if sys.platform == "win32":
            import psutil

            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        else:
            _signal_group(pid, signal.SIGKILL)
