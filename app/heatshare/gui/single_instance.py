"""One instance per user (and per profile): a second launch raises the first one's window.

The first instance listens on a local socket (a Unix socket in the user's runtime folder, a
named pipe on Windows) whose name holds the user name and, with ``--profile-dir``, a hash of
the profile folder, so side-by-side profiles each get their own instance. A second launch
connects, says ``activate`` and exits; the first emits ``activate_requested``.

A lock file held for the instance's life decides who is first, so two launches at the same
moment cannot both win, and a crashed instance's socket is recognised as stale (its lock's
process is gone) and removed.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import re
import sys
import time
from pathlib import Path

from PySide6.QtCore import QDir, QLockFile, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

ACTIVATE = b"activate"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# sockaddr_un holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
_MAX_SOCKET_PATH = 100


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password database
        getuid = getattr(os, "getuid", None)
        return str(getuid()) if getuid else "user"


def server_name(key: str, profile_dir: str | os.PathLike[str] | None = None) -> str:
    """The socket name for ``key``, this user and (optionally) a profile folder.

    On Unix it is a full path in ``$XDG_RUNTIME_DIR`` where that exists (a folder only this
    user can enter); elsewhere a bare name, which Qt puts in the user's temp folder (Unix)
    or the named-pipe namespace (Windows).
    """
    name = f"{key}-{_user_name()}"
    if profile_dir is not None:
        resolved = str(Path(profile_dir).expanduser().resolve())
        name += "-" + hashlib.sha256(resolved.encode()).hexdigest()[:12]
    name = _UNSAFE.sub("_", name)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if sys.platform != "win32" and runtime and Path(runtime).is_dir():
        path = str(Path(runtime) / name)
        if len(path.encode()) > _MAX_SOCKET_PATH:
            # Too long for sockaddr_un: keep the folder, shorten the name to a digest of it.
            path = str(Path(runtime) / f"hs-{hashlib.sha256(name.encode()).hexdigest()[:16]}")
        return path
    return name


def _lock_path(name: str) -> str:
    if Path(name).is_absolute():
        return name + ".lock"
    return str(Path(QDir.tempPath()) / f"{name}.lock")


class SingleInstance(QObject):
    """Claims this user's (and profile's) single instance.

    Signals:
        activate_requested: A second launch asked this instance to show its window.
    """

    activate_requested = Signal()

    def __init__(
        self,
        key: str,
        parent: QObject | None = None,
        *,
        profile_dir: str | os.PathLike[str] | None = None,
        timeout_ms: int = 1000,
    ) -> None:
        """Set up; nothing is claimed until :meth:`claim`.

        Args:
            key: The application's id (``heatshare.__about__.__app_id__``).
            parent: The Qt parent.
            profile_dir: The ``--profile-dir`` in use, if any.
            timeout_ms: How long a second launch waits for the first to answer.
        """
        super().__init__(parent)
        self.setObjectName("single-instance")
        self.name = server_name(key, profile_dir)
        self._timeout_ms = timeout_ms
        self._lock = QLockFile(_lock_path(self.name))
        # 0: a lock is stale only when its process is gone, never merely because it is old.
        self._lock.setStaleLockTime(0)
        self._server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytes] = {}

    def claim(self) -> bool:
        """Become the instance, or hand over to the running one.

        Returns:
            True when this process is now the instance; False when another one runs (it has
            been asked to show its window, and this process should exit).
        """
        if self._server is not None:
            return True
        if self._send_activate():
            return False
        if self._lock.tryLock(0):
            # Nothing answered and nobody holds the lock: a socket left there is a crashed
            # instance's, and would make listen() fail.
            QLocalServer.removeServer(self.name)
            self._listen()
            return True
        # Another live process holds the lock: it is starting up and not listening yet.
        deadline = time.monotonic() + 3 * self._timeout_ms / 1000
        while time.monotonic() < deadline:
            if self._send_activate():
                return False
            time.sleep(0.05)
        log.warning(
            "Another Heatshare instance is running (lock %s) but does not answer on %s",
            self._lock.fileName(),
            self.name,
        )
        return False

    def close(self) -> None:
        """Stop listening and release the claim (the next launch becomes the instance)."""
        if self._server is not None:
            self._server.close()  # also removes the socket file
            self._server.deleteLater()
            self._server = None
        for socket in list(self._buffers):
            socket.abort()
            socket.deleteLater()
        self._buffers.clear()
        if self._lock.isLocked():
            self._lock.unlock()

    @property
    def is_claimed(self) -> bool:
        return self._server is not None

    @property
    def lock_file_name(self) -> str:
        """The lock file that says which process is the instance."""
        return self._lock.fileName()

    # -- the second launch's side ---------------------------------------------------------

    def _send_activate(self) -> bool:
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(self._timeout_ms):
            return False
        socket.write(ACTIVATE + b"\n")
        sent = socket.waitForBytesWritten(self._timeout_ms)
        socket.disconnectFromServer()
        if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            socket.waitForDisconnected(self._timeout_ms)
        return sent

    # -- the instance's side --------------------------------------------------------------

    def _listen(self) -> None:
        server = QLocalServer(self)
        server.setObjectName("single-instance-server")
        # Only this user may connect where the platform can say so (socket file mode, pipe ACL).
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        server.newConnection.connect(self._on_new_connection)
        if not server.listen(self.name):
            # We still hold the lock, so we are the instance; a second launch will wait
            # for an answer in vain and say so in its log.
            log.warning(
                "Cannot listen on %s for second launches: %s", self.name, server.errorString()
            )
        self._server = server

    def _on_new_connection(self) -> None:
        assert self._server is not None
        while (socket := self._server.nextPendingConnection()) is not None:
            self._buffers[socket] = b""
            socket.readyRead.connect(lambda s=socket: self._on_ready_read(s))
            socket.disconnected.connect(lambda s=socket: self._on_disconnected(s))
            if socket.bytesAvailable():
                self._on_ready_read(socket)

    def _on_ready_read(self, socket: QLocalSocket) -> None:
        if socket not in self._buffers:
            return
        data = self._buffers[socket] + bytes(socket.readAll().data())
        *lines, rest = data.split(b"\n")
        self._buffers[socket] = rest[:1024]  # a line longer than this is not ours
        for line in lines:
            if line.strip() == ACTIVATE:
                self.activate_requested.emit()
            else:
                log.info("Ignored a message on the instance socket: %r", line[:80])

    def _on_disconnected(self, socket: QLocalSocket) -> None:
        self._on_ready_read(socket)
        if self._buffers.pop(socket, None) is not None:
            socket.deleteLater()
