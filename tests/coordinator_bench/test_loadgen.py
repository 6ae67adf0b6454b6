"""The coordinator bench's raw HTTP client against a real local server, and the bench itself.

The client (``bench/_loadgen.py``) is tested against the standard library's HTTP/1.1 server on
loopback: keep-alive reuse, ``Content-Length`` and chunked bodies, ``Connection: close``, a
server that drops an idle connection, a server that does not answer. The bench is run whole
against a real coordinator process (``--quick --nodes 200``) and must end with its JSON line.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"


def _load_loadgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_loadgen", BENCH / "_loadgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_loadgen"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


lg = _load_loadgen()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: list[tuple[str, int]]  # set per server

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean

    def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.peers.append(self.client_address)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        answer = {
            "path": self.path,
            "length": len(body),
            "auth": self.headers.get("Authorization"),
            "echo": body.decode(),
        }
        self._send(201, json.dumps(answer).encode())

    def do_GET(self) -> None:
        self.peers.append(self.client_address)
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self._send(200, b'{"bye": true}', {"Connection": "close"})
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200, b"{}")
        elif self.path == "/empty":
            self.send_response(204)
            self.end_headers()
        else:
            self._send(404, b'{"error": "Nothing here."}')


class _Server:
    def __init__(self, idle_timeout_s: float | None = None) -> None:
        handler = type("Handler", (_Handler,), {"peers": [], "timeout": idle_timeout_s})
        self.peers: list[tuple[str, int]] = handler.peers
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="test-http-server")
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def test_requests_share_one_keep_alive_connection(server: _Server) -> None:
    async def go() -> list[object]:
        conn = lg.Connection("127.0.0.1", server.port)
        auth = lg.header_lines({"Authorization": "Bearer hsn_x"})
        answers = [await conn.request("POST", "/v1/a", b'{"n": %d}' % i, auth) for i in range(3)]
        await conn.close()
        assert conn.opened == 1
        return answers

    answers = asyncio.run(go())
    assert [a.status for a in answers] == [201, 201, 201]
    assert [a.json()["echo"] for a in answers] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert answers[0].json()["auth"] == "Bearer hsn_x"
    assert answers[0].headers["content-type"] == "application/json"
    assert len(set(server.peers)) == 1  # one client port: the connection was kept


def test_bodies_by_chunks_by_close_and_none(server: _Server) -> None:
    async def go() -> tuple[object, ...]:
        conn = lg.Connection("127.0.0.1", server.port)
        chunked = await conn.request("GET", "/chunked")
        empty = await conn.request("GET", "/empty")
        closing = await conn.request("GET", "/close")
        was_open = conn.is_open
        after = await conn.request("POST", "/v1/b", b"x")
        missing = await conn.request("GET", "/nothing")
        await conn.close()
        return chunked, empty, closing, was_open, after, missing, conn.opened

    chunked, empty, closing, was_open, after, missing, opened = asyncio.run(go())
    assert chunked.status == 200 and chunked.body == b"hello chunked world"
    assert empty.status == 204 and empty.body == b""
    assert closing.json() == {"bye": True}
    assert was_open is False  # "Connection: close" was honoured
    assert after.json()["length"] == 1
    assert missing.status == 404 and missing.json()["error"] == "Nothing here."
    assert opened == 2


def test_a_connection_the_server_dropped_while_idle_is_opened_again() -> None:
    server = _Server(idle_timeout_s=0.2)
    try:

        async def go() -> tuple[int, int, int]:
            conn = lg.Connection("127.0.0.1", server.port)
            first = await conn.request("POST", "/v1/c", b"1")
            await asyncio.sleep(0.6)  # the server's handler times out and closes the socket
            second = await conn.request("POST", "/v1/c", b"2")
            await conn.close()
            return first.status, second.status, conn.opened

        assert asyncio.run(go()) == (201, 201, 2)
        assert len(server.peers) == 2  # each request reached the server exactly once
    finally:
        server.close()


def test_no_answer_in_time_is_an_http_error(server: _Server) -> None:
    async def go() -> None:
        conn = lg.Connection("127.0.0.1", server.port, timeout_s=0.2)
        with pytest.raises(lg.HttpError, match="no answer"):
            await conn.request("GET", "/slow")
        assert not conn.is_open

    asyncio.run(go())


def test_a_closed_port_is_an_http_error() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as s:
        port = s.server_address[1]  # bound, then closed: nothing listens there

    async def go() -> None:
        with pytest.raises(lg.HttpError, match="ConnectionRefusedError"):
            await lg.Connection("127.0.0.1", port).request("GET", "/")

    asyncio.run(go())


def test_open_loop_keeps_its_rate_and_closed_loop_its_concurrency(server: _Server) -> None:
    async def go() -> tuple[object, object, int]:
        pool = lg.Pool([("127.0.0.1", server.port)], size=4)

        async def send(seq: int) -> str | None:
            r = await pool.request("POST", f"/v1/n/{seq}", b"{}")
            return None if r.status == 201 else f"HTTP {r.status}"

        opened = await lg.open_loop(200.0, 0.5, send)
        closed = await lg.closed_loop(3, 0.3, send)
        n = pool.connections_opened
        await pool.close()
        return opened, closed, n

    opened, closed, n = asyncio.run(go())
    assert opened.planned == 100 and opened.ok == 100 and not opened.errors
    assert 0.45 <= opened.wall_s < 2.0
    assert len(opened.latencies_ns) == 100 and opened.latency_ms(0.5) > 0
    assert opened.latencies_ns == sorted(opened.latencies_ns)
    assert closed.ok > 10 and not closed.errors and closed.rate > 0
    assert n <= 4  # the pool never held more connections than its size


def test_loops_count_errors_by_label(server: _Server) -> None:
    async def go() -> object:
        pool = lg.Pool([("127.0.0.1", server.port)], size=2)

        async def send(seq: int) -> str | None:
            r = await pool.request("GET", "/nothing" if seq % 2 else "/empty")
            return None if r.status == 204 else f"HTTP {r.status}"

        result = await lg.open_loop(100.0, 0.2, send)
        await pool.close()
        return result

    result = asyncio.run(go())
    assert result.ok == 10 and result.errors == {"HTTP 404": 10}


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert lg.percentile(values, 0.5) == 50
    assert lg.percentile(values, 0.99) == 99
    assert lg.percentile(values, 1.0) == 100
    assert lg.percentile([7], 0.99) == 7


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_the_bench_runs_quick_against_a_real_coordinator(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(BENCH / "coordinator_load.py"), "--quick", "--nodes", "200"],
        capture_output=True,
        text=True,
        timeout=85,
        cwd=tmp_path,
        check=False,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert figures["db"] == "sqlite"
    assert figures["nodes"] == 200
    assert figures["heartbeats_per_s_max"] > 0
    assert 0 < figures["heartbeat_p50_ms_at_1000"] <= figures["heartbeat_p99_ms_at_1000"]
    assert figures["lease_complete_per_s"] > 0
    assert figures["double_leases"] == 0
    assert figures["double_credits"] == 0
    assert elapsed < 60
