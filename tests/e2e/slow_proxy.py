"""A TCP relay on loopback between the agent and the coordinator, for the tests' bad days.

- ``rate``: bytes per second from the agent to the coordinator (None: as fast as it goes), so
  an upload takes long enough to kill the agent in the middle of it;
- ``swallow_answers``: the coordinator's answers are dropped, so the coordinator has taken a
  result the agent never hears about.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class SlowProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rate: float | None = None
        self.swallow_answers = False
        self.sent_up = 0  # bytes relayed to the coordinator
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="slow-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)  # no connection is accepted after this
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()  # the coordinator is down: so is the proxy's far end
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
                # Ended connections are closed by their pumps; forget them.
                self._conns = [c for c in self._conns if c.fileno() != -1]
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, up), name="slow-proxy-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while not self._stop.is_set():
                rate = self.rate if up else None
                data = src.recv(4096 if rate else 65536)
                if not data:
                    break
                if not up and self.swallow_answers:
                    continue
                dst.sendall(data)
                if up:
                    self.sent_up += len(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
