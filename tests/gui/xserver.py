"""A real X server (Xvfb) with a real system tray host (trayer), for GUI tests that need them.

Qt's offscreen platform has no tray, so the tray icon is tested against the real thing: Xvfb
plus Debian's ``trayer``, a small XEmbed tray host. The program under test runs in a
subprocess with ``DISPLAY`` set, so the test process keeps its own (offscreen) QApplication,
and the test looks at the result from outside with ``xwininfo``, ``xprop`` and ``xdotool``.

In a test module (see test_tray_xserver.py)::

    from xserver import XServer, xserver_for_tests

    @pytest.fixture(scope="module")
    def x11(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
        yield from xserver_for_tests(tmp_path_factory)

    def test_app(x11: XServer) -> None:
        program = x11.start([sys.executable, "-m", "heatshare.gui.main"])
        program.wait_for_line("ready")
        ...

``running_xserver()`` is the same as a context manager, for scripts (screenshots, benches).

Missing binaries skip the test with the apt-get line that installs them; CI installs them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import queue
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

SCREEN = "1280x800x24"
TOOLS = ("Xvfb", "trayer", "xdotool", "xwininfo", "xprop", "xdpyinfo")
APT_LINE = "apt-get install xvfb trayer xdotool x11-utils"
XVFB_ARGS = (
    "-screen", "0", SCREEN, "-nolisten", "tcp",
    # No server reset when the last client leaves: a client connecting during the reset
    # (trayer right after the xdpyinfo probe) would be refused.
    "-noreset",
)  # fmt: skip
TRAYER_ARGS = (
    "--edge", "top", "--align", "right", "--widthtype", "request",
    "--height", "24", "--transparent", "false",
)  # fmt: skip
_WINDOW_LINE = re.compile(r"^\s*(0x[0-9a-f]+) ")

T = TypeVar("T")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def wait_until(
    probe: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Call ``probe`` until it returns something truthy, and return that.

    Raises:
        TimeoutError: ``what`` did not happen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Program:
    """A program running on the X server; its stdout is read line by line in a thread."""

    def __init__(self, args: Sequence[str], env: dict[str, str], cwd: Path | None) -> None:
        self.args = list(args)
        self.lines: list[str] = []
        self._eof = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            self.args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="xserver-program-out", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait for an output line matching ``pattern`` (a regex searched in each line).

        Raises:
            AssertionError: the program ended, or the time ran out; with all it printed.
        """
        regex = re.compile(pattern)
        for line in self.lines:  # a line that came before the wait started counts too
            if match := regex.search(line):
                self.lines.remove(line)
                return match
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            got: str | None = None
            if not self._eof and left > 0:
                with contextlib.suppress(queue.Empty):
                    got = self._queue.get(timeout=left)
                    self._eof = got is None
            if got is None:
                reason = "ended" if self.proc.poll() is not None else f"no line in {timeout} s"
                output = "\n".join(self.lines)
                raise AssertionError(f"{pattern!r} not printed ({reason}); output:\n{output}")
            if match := regex.search(got):
                return match
            self.lines.append(got)

    def output(self) -> str:
        """Everything printed so far that no wait consumed."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._eof = True
            else:
                self.lines.append(line)
        return "\n".join(self.lines)

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._reader.join(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class Geometry:
    x: int
    y: int
    width: int
    height: int

    @property
    def center(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2


@dataclass
class XServer:
    """A running Xvfb, maybe with trayer, and tools to look at it from outside."""

    display: str
    log_dir: Path
    xvfb: subprocess.Popen[bytes]
    trayer: subprocess.Popen[bytes] | None = None
    programs: list[Program] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for a Qt program on this server.

        ``DBUS_SESSION_BUS_ADDRESS`` is dropped so Qt uses the XEmbed tray (what trayer
        hosts) rather than a StatusNotifier on some session bus outside the test.
        """
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "QT_QPA_PLATFORM"}
        }
        env.update(DISPLAY=self.display, QT_QPA_PLATFORM="xcb", PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def tool(self, *args: str, timeout: float = 10.0, check: bool = True) -> str:
        """Run an X tool (xdotool, xwininfo, xprop, …) on this display; return its stdout."""
        done = subprocess.run(
            list(args), check=False, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def start(self, args: Sequence[str], cwd: Path | None = None, **env: str) -> Program:
        """Start a program on this display; it is stopped when the server goes."""
        program = Program(args, self.env(**env), cwd)
        self.programs.append(program)
        return program

    # -- looking from outside -------------------------------------------------------------

    def tray_owner(self) -> int:
        """The window owning ``_NET_SYSTEM_TRAY_S0`` (the tray host), 0 when none."""
        return _selection_owner(self.display, "_NET_SYSTEM_TRAY_S0")

    def windows_of(self, pid: int, *, visible: bool = False) -> list[int]:
        args = ["xdotool", "search"] + (["--onlyvisible"] if visible else []) + ["--pid", str(pid)]
        out = self.tool(*args, check=False)  # xdotool exits 1 when nothing matches
        return [int(w) for w in out.split()]

    def tray_panel(self) -> int:
        """trayer's visible panel window, into which icons are embedded."""
        out = self.tool("xdotool", "search", "--onlyvisible", "--class", "^trayer$", check=False)
        panels = [int(w) for w in out.split()]
        if len(panels) != 1:
            raise AssertionError(f"expected one visible trayer panel, found {panels}")
        return panels[0]

    def parent(self, window: int) -> int:
        out = self.tool("xwininfo", "-children", "-id", str(window))
        match = re.search(r"Parent window id: (0x[0-9a-f]+)", out)
        assert match, out
        return int(match.group(1), 16)

    def ancestors(self, window: int) -> list[int]:
        """The window's parents, nearest first, up to and including the root."""
        chain: list[int] = []
        while (parent := self.parent(window)) != 0:
            chain.append(parent)
            window = parent
        return chain

    def descendants(self, window: int) -> list[int]:
        out = self.tool("xwininfo", "-tree", "-id", str(window))
        matches = (_WINDOW_LINE.match(line) for line in out.splitlines())
        return [int(m.group(1), 16) for m in matches if m]

    def geometry(self, window: int) -> Geometry:
        out = self.tool("xwininfo", "-id", str(window))

        def value(label: str) -> int:
            match = re.search(rf"{label}:\s+(-?\d+)", out)
            assert match, out
            return int(match.group(1))

        return Geometry(
            value("Absolute upper-left X"),
            value("Absolute upper-left Y"),
            value("Width"),
            value("Height"),
        )

    def window_types(self, window: int) -> list[str]:
        out = self.tool("xprop", "-id", str(window), "_NET_WM_WINDOW_TYPE", check=False)
        return re.findall(r"_NET_WM_WINDOW_TYPE_[A-Z_]+", out)

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.tool("xdotool", "mousemove", str(x), str(y), "click", str(button))

    def key(self, *keys: str) -> None:
        self.tool("xdotool", "key", *keys)

    def screenshot(self, path: Path) -> None:
        """Save the screen as an XWD file (``convert`` or GIMP read it)."""
        with path.open("wb") as f:
            subprocess.run(
                ["xwd", "-root", "-silent"], env=self.env(), stdout=f, check=True, timeout=10
            )


def _selection_owner(display: str, selection: str) -> int:
    """The window owning ``selection`` on ``display``; 0 when none, or no display answers."""
    x11 = _libx11()
    try:
        with _open_display(x11, display) as dpy:
            atom = x11.XInternAtom(dpy, selection.encode(), 0)
            return int(x11.XGetSelectionOwner(dpy, atom))
    except _NoDisplayError:
        return 0


def _read_display_number(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Xvfb writes its display number to ``-displayfd`` once it accepts connections."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise RuntimeError(f"Xvfb did not start (exit code {proc.poll()})")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                raise RuntimeError(f"Xvfb closed -displayfd (exit code {proc.poll()})")
            data += chunk
    return ":" + data.decode().strip()


def _alive(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """True while ``proc`` runs; its log in the error once it has died."""
    if proc.poll() is None:
        return True
    raise RuntimeError(
        f"{proc.args[0]} exited with {proc.returncode}: {log.read_text(errors='replace')}"
    )


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def running_xserver(
    *, tray: bool = True, log_dir: Path | None = None, timeout: float = 15.0
) -> Iterator[XServer]:
    """Start Xvfb on a free display (and trayer), yield it, and stop everything after.

    Args:
        tray: Start trayer and wait until it owns the tray selection.
        log_dir: Where Xvfb's and trayer's output goes (a temporary folder by default).
        timeout: How long each part may take to come up.

    Raises:
        RuntimeError: a tool is missing, or the server or tray did not come up.
    """
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} ({APT_LINE})")
    with contextlib.ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xserver-")))
        xvfb_log = stack.enter_context((log_dir / "xvfb.log").open("wb"))
        read_fd, write_fd = os.pipe()
        try:
            xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write_fd), *XVFB_ARGS],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=xvfb_log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, xvfb)
            os.close(write_fd)
            write_fd = -1
            display = _read_display_number(read_fd, xvfb, timeout)
        finally:
            os.close(read_fd)
            if write_fd != -1:
                os.close(write_fd)
        server = XServer(display=display, log_dir=log_dir, xvfb=xvfb)
        wait_until(
            lambda: (
                _alive(xvfb, log_dir / "xvfb.log") and server.tool("xdpyinfo", check=False) != ""
            ),
            f"Xvfb {display}",
            timeout,
        )
        if tray:
            trayer_log = stack.enter_context((log_dir / "trayer.log").open("wb"))
            trayer = subprocess.Popen(
                ["trayer", *TRAYER_ARGS],
                env=server.env(),
                stdin=subprocess.DEVNULL,
                stdout=trayer_log,
                stderr=subprocess.STDOUT,
            )
            server.trayer = trayer
            stack.callback(_stop, trayer)
            wait_until(
                lambda: (
                    _alive(xvfb, log_dir / "xvfb.log")
                    and _alive(trayer, log_dir / "trayer.log")
                    and server.tray_owner()
                ),
                f"trayer to own _NET_SYSTEM_TRAY_S0 on {display}",
                timeout,
            )
        try:
            yield server
        finally:
            for program in server.programs:
                program.stop()


def xserver_for_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
    """The body of an X server fixture: skips where the tools are missing.

    Wrap it in a fixture of the scope you need (the name differs from the import, so ruff
    does not see a test argument redefining it)::

        @pytest.fixture(scope="module")
        def x11(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
            yield from xserver_for_tests(tmp_path_factory)
    """
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: {APT_LINE}")
    with running_xserver(log_dir=tmp_path_factory.mktemp("xserver")) as server:
        yield server


@pytest.fixture(scope="module")
def xserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XServer]:
    """Xvfb and trayer for the tests of one module (for a conftest to offer)."""
    yield from xserver_for_tests(tmp_path_factory)


def python_program(source: str, path: Path) -> list[str]:
    """Write ``source`` to ``path`` and return the command that runs it with this Python."""
    path.write_text(source, encoding="utf-8")
    return [sys.executable, str(path)]


# -- acting as a window manager would ---------------------------------------------------------
# Xvfb runs no window manager, so nothing turns "close this window" into the message a Qt
# program expects; ``xdotool windowclose`` destroys the window under the program instead. These
# speak the X protocol through libX11, as a window manager's close button does.

_CLIENT_MESSAGE = 33  # X.h: ClientMessage
_Z_PIXMAP = 2  # X.h: ZPixmap
_ALL_PLANES = ctypes.c_ulong(-1).value


class _XClientMessageEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class _XEvent(ctypes.Union):
    _fields_ = [
        ("xclient", _XClientMessageEvent),
        ("pad", ctypes.c_long * 24),  # Xlib.h: an XEvent is 24 longs whatever its kind
    ]


class _XImage(ctypes.Structure):
    # The leading fields of Xlib.h's XImage; only these are read.
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("xoffset", ctypes.c_int),
        ("format", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("byte_order", ctypes.c_int),
        ("bitmap_unit", ctypes.c_int),
        ("bitmap_bit_order", ctypes.c_int),
        ("bitmap_pad", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bytes_per_line", ctypes.c_int),
        ("bits_per_pixel", ctypes.c_int),
    ]


def _libx11() -> ctypes.CDLL:
    name = ctypes.util.find_library("X11")
    if name is None:
        raise RuntimeError("libX11 not found")
    x11 = ctypes.CDLL(name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.restype = ctypes.c_int
    x11.XSendEvent.argtypes = [
        ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.POINTER(_XEvent),
    ]  # fmt: skip
    x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XGetImage.restype = ctypes.POINTER(_XImage)
    x11.XGetImage.argtypes = [
        ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int,
    ]  # fmt: skip
    x11.XGetSelectionOwner.restype = ctypes.c_ulong
    x11.XGetSelectionOwner.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return x11


class _NoDisplayError(RuntimeError):
    """The X server does not answer (not started yet, or gone)."""


@contextlib.contextmanager
def _open_display(x11: ctypes.CDLL, display: str) -> Iterator[int]:
    dpy = x11.XOpenDisplay(display.encode())
    if not dpy:
        raise _NoDisplayError(f"cannot open display {display}")
    try:
        yield dpy
    finally:
        x11.XCloseDisplay(dpy)


def request_close(server: XServer, window: int) -> None:
    """Ask ``window`` to close the way a window manager's close button does.

    Sends ``WM_PROTOCOLS``/``WM_DELETE_WINDOW`` (ICCCM 4.2.8.1) to the window; a Qt program
    turns it into a ``closeEvent``, which it may refuse.
    """
    x11 = _libx11()
    with _open_display(x11, server.display) as dpy:
        event = _XEvent()
        event.xclient.type = _CLIENT_MESSAGE
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        event.xclient.data[1] = 0  # CurrentTime
        if not x11.XSendEvent(dpy, window, 0, 0, ctypes.byref(event)):
            raise AssertionError(f"XSendEvent to window {window:#x} failed")
        x11.XSync(dpy, 0)


def window_pixels(server: XServer, window: int) -> bytes:
    """What ``window`` shows now, as raw pixels (for comparing one moment with another)."""
    box = server.geometry(window)
    x11 = _libx11()
    with _open_display(x11, server.display) as dpy:
        image = x11.XGetImage(dpy, window, 0, 0, box.width, box.height, _ALL_PLANES, _Z_PIXMAP)
        if not image:
            raise AssertionError(f"XGetImage of window {window:#x} failed")
        try:
            size = image.contents.bytes_per_line * image.contents.height
            return ctypes.string_at(image.contents.data, size)
        finally:
            x11.XFree(image.contents.data)
            x11.XFree(image)
