"""The coordinator client's transport rules on real sockets: retries with back-off only where
a call may be repeated, TLS verified, streamed transfers checked, errors as sentences.

The server here is a small stdlib HTTP server on loopback whose answers each test scripts
(the coordinator's own answers are exercised in tests/e2e against the real coordinator).
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from heatshare.network.client import (
    AuthLost,
    Conflict,
    CoordinatorClient,
    Gone,
    Rejected,
    Unreachable,
    Untrusted,
)
from heatshare.protocol.coordinator_api import (
    Heartbeat,
    Inventory,
    Lease,
    NodeState,
    Resources,
    SandboxKind,
)

INVENTORY = Inventory(
    hostname="h", os="linux", arch="x86_64", cpu_cores=2, memory_bytes=1 << 30,
    sandbox=SandboxKind.BUBBLEWRAP, agent_version="t",
)  # fmt: skip
BEAT = Heartbeat(state=NodeState.IDLE)
BEAT_ANSWER = {"server_time": "2030-01-01T00:00:00Z", "heartbeat_interval_s": 30, "commands": []}


class Script:
    """What the server answers, in order; the requests it saw."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes]] = []
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def add(self, status: int, body: object) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers.append((status, data))


def make_handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else b""
            script.seen.append((self.command, self.path, dict(self.headers), body))
            status, data = script.answers.pop(0) if script.answers else (500, b"{}")
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(5)


def client(url: str, delays: list[float] | None = None, **kw: object) -> CoordinatorClient:
    sleeps = delays if delays is not None else []
    return CoordinatorClient(url, "hsn_test", sleep=sleeps.append, **kw)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_idempotent_call_is_retried_with_growing_jittered_back_off(server) -> None:
    url, script = server
    script.add(503, {"error": "busy"})
    script.add(502, b"<html>proxy</html>")
    script.add(200, BEAT_ANSWER)
    delays: list[float] = []
    answer = client(url, delays, attempts=3, backoff_s=0.5).heartbeat(BEAT)
    assert answer.heartbeat_interval_s == 30
    assert len(script.seen) == 3
    assert all(h["Authorization"] == "Bearer hsn_test" for _, _, h, _ in script.seen)
    assert len(delays) == 2 and 0 <= delays[0] <= 0.5 and 0 <= delays[1] <= 1.0


def test_a_lease_is_not_repeated_once_it_may_have_reached_the_server(server) -> None:
    url, script = server
    script.add(503, {"error": "The network is busy."})
    with pytest.raises(Rejected, match=r"The network is busy\.") as err:
        client(url).lease()
    assert err.value.status == 503
    assert len(script.seen) == 1


def test_a_refused_connection_is_retried_then_unreachable_is_a_sentence() -> None:
    delays: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable) as err:
        client(url, delays, attempts=4).enrol("CODE-1234", INVENTORY)  # never sent: safe to retry
    assert str(err.value) == f"The network at {url}/ cannot be reached: connection refused."
    assert len(delays) == 3


@pytest.mark.parametrize(
    ("status", "kind"), [(401, AuthLost), (409, Conflict), (410, Gone), (404, Rejected)]
)
def test_error_statuses_become_typed_errors_with_the_servers_sentence(server, status, kind) -> None:
    url, script = server
    script.add(status, {"error": "The server says no."})
    with pytest.raises(kind) as err:
        client(url).heartbeat(BEAT)
    assert err.value.status == status
    assert "The server says no" in str(err.value)
    if status == 401:
        assert "no longer valid" in str(err.value)


def test_an_answer_that_is_not_the_api_is_said_so(server) -> None:
    url, script = server
    script.add(200, b"<html>captive portal</html>")
    with pytest.raises(Unreachable, match="not a Heatshare network's answer"):
        client(url).heartbeat(BEAT)
    script.add(418, b"teapot")
    with pytest.raises(Rejected, match="answered 418"):
        client(url).heartbeat(BEAT)


def lease_for(data: bytes, size: int | None = None) -> Lease:
    sha = hashlib.sha256(data).hexdigest()
    return Lease(
        attempt_id=5, job_id=9, bundle_sha256=sha, bundle_size=len(data) if size is None else size,
        bundle_url=f"/v1/bundles/{sha}", command=["true"], resources=Resources(), price_minor=1,
        currency="CRD", lease_expires_at=datetime.now(UTC), lease_s=60,
    )  # fmt: skip


def test_a_bundle_is_streamed_to_a_part_file_and_checked(server, tmp_path: Path) -> None:
    url, script = server
    data = bytes(range(256)) * 1000
    dest = tmp_path / "b.tar.gz"
    script.add(200, data)
    assert client(url).download_bundle(lease_for(data), dest) == hashlib.sha256(data).hexdigest()
    assert dest.read_bytes() == data
    assert script.seen[0][1] == f"/v1/bundles/{hashlib.sha256(data).hexdigest()}"
    dest.unlink()
    script.add(200, data[:-1] + b"x")  # damaged on the way
    with pytest.raises(Rejected, match="does not match its checksum"):
        client(url).download_bundle(lease_for(data), dest)
    script.add(200, data)  # bigger than announced
    with pytest.raises(Rejected, match="bigger than announced"):
        client(url).download_bundle(lease_for(data, size=100), dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no half file left behind


def test_a_result_is_streamed_with_its_checksum(server, tmp_path: Path) -> None:
    url, script = server
    archive = tmp_path / "result.tar.gz"
    archive.write_bytes(b"r" * 70_000)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    answer = {
        "attempt_id": 5, "job_id": 9, "result_sha256": sha, "status": "accepted",
        "credited_minor": 12, "currency": "CRD",
    }  # fmt: skip
    script.add(503, {"error": "busy"})
    script.add(200, answer)
    accepted = client(url).upload_result(5, archive, sha)
    assert accepted.credited_minor == 12
    # Retried with the whole file again, not a half-read stream.
    for method, path, headers, body in script.seen:
        assert (method, path) == ("PUT", "/v1/attempts/5/result")
        assert headers["X-Heatshare-Sha256"] == sha
        assert body == archive.read_bytes()


def test_a_certificate_nobody_trusts_is_untrusted(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(Untrusted) as err:
            CoordinatorClient(url).enrol("CODE-1234", INVENTORY)
        assert str(err.value).startswith("The server's certificate is not trusted")
        assert script.seen == []  # nothing was sent to it
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(5)
