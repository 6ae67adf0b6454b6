"""The real agent process joining a real coordinator process, over loopback.

Enrolment is checked on the spot, so every way it can go wrong reaches the householder as a
sentence: a wrong code, an expired one, a server that does not answer, and one whose
certificate is not trusted. Then a good code, and the earnings of a new node.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from agent_process import AgentProcess, run_cli, spawn_agent
from coordinator_process import CoordinatorProcess
from heatshare.agent.demo_network import RUNTIME_FILE as DEMO_RUNTIME_FILE
from heatshare.protocol.client import AgentClient, AgentError


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[CoordinatorProcess]:
    c = CoordinatorProcess(db=tmp_path / "network.sqlite", workdir=tmp_path)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on loopback whose certificate nobody trusts (openssl, self-signed)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    openssl = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
    subprocess.run(
        [
            *openssl.split(),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            asked.append(self.path)  # only a client that trusted the certificate gets here
            self.send_response(500)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # A refused handshake is the point of this server: not news on stderr.
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, name="tls-server", daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert asked == []


def refusal(client: AgentClient, url: str, code: str) -> AgentError:
    with pytest.raises(AgentError) as exc:
        client.enrol(url, code)
    return exc.value


# -- the agent alone ---------------------------------------------------------------------------


def test_a_new_agent_is_not_enrolled_and_says_whether_jobs_can_run(agent: AgentProcess) -> None:
    status = agent.client().network()
    assert not status.enrolled
    assert status.coordinator_url is None and status.node_id is None
    # Either a working sandbox, or a sentence saying why jobs are refused here.
    assert (status.sandbox is not None) != (status.sandbox_problem is not None)
    deadline = time.monotonic() + 5.0
    while "Stop it with" not in agent.stdout_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    out = agent.stdout_file.read_text()
    assert "Network     not enrolled" in out
    assert "Jobs        " in out
    assert "heatshare-agent enrol URL CODE" in out


def test_earnings_before_enrolling_say_so(agent: AgentProcess) -> None:
    out = run_cli("earnings", "--json", "--profile-dir", str(agent.profile))
    assert out.returncode == 1
    assert out.stdout == ""
    assert "not joined a network" in out.stderr
    assert "heatshare-agent enrol URL CODE" in out.stderr


def test_an_unreachable_network(agent: AgentProcess) -> None:
    exc = refusal(agent.client(), f"http://127.0.0.1:{closed_port()}", "ABCD-2345")
    assert exc.status == 502
    assert "127.0.0.1" in str(exc)
    assert not agent.client().network().enrolled


def test_an_untrusted_certificate(agent: AgentProcess, self_signed_server: str) -> None:
    exc = refusal(agent.client(), self_signed_server, "ABCD-2345")
    assert exc.status == 502
    assert "certificate" in str(exc) and "not trusted" in str(exc)
    out = run_cli("enrol", self_signed_server, "ABCD-2345", "--profile-dir", str(agent.profile))
    assert out.returncode == 1
    assert "not trusted" in out.stderr


# -- against a real coordinator ----------------------------------------------------------------


def test_a_wrong_code(agent: AgentProcess, coordinator: CoordinatorProcess) -> None:
    exc = refusal(agent.client(), coordinator.url, "WRONG-0000")
    assert exc.status == 404
    assert "not known" in str(exc)
    out = run_cli("enrol", coordinator.url, "WRONG-0000", "--profile-dir", str(agent.profile))
    assert out.returncode == 1
    assert "not known" in out.stderr


def test_an_expired_code(agent: AgentProcess, coordinator: CoordinatorProcess) -> None:
    coordinator.cli("account", "create", "Ada")
    code = coordinator.pairing_code("Ada")
    # The shortest life a code can be given is a minute: age this one in the database.
    with sqlite3.connect(coordinator.db) as db:
        db.execute("UPDATE pairing_codes SET expires_at = '2000-01-01 00:00:00.000000'")
    exc = refusal(agent.client(), coordinator.url, code)
    assert exc.status == 410
    assert "expired" in str(exc)


def test_a_good_code_enrols_and_a_new_node_has_earned_nothing(
    agent: AgentProcess, coordinator: CoordinatorProcess, spawn: list[AgentProcess]
) -> None:
    coordinator.cli("account", "create", "Ada")
    code = coordinator.pairing_code("Ada")
    out = run_cli("enrol", coordinator.url, code, "--profile-dir", str(agent.profile))
    assert out.returncode == 0, out.stderr
    assert f"enrolled in the network at {coordinator.url}" in out.stdout
    status = agent.client().network()
    assert status.enrolled
    assert status.coordinator_url == coordinator.url
    assert status.node_id is not None
    assert status.account_name == "Ada"

    earnings = run_cli("earnings", "--json", "--profile-dir", str(agent.profile))
    assert earnings.returncode == 0, earnings.stderr
    data = json.loads(earnings.stdout)
    assert data["balance_minor"] == 0 and type(data["balance_minor"]) is int
    assert isinstance(data["currency"], str) and data["currency"]

    again = refusal(agent.client(), coordinator.url, code)
    assert again.status == 409  # a code is good once

    jobs = run_cli("jobs", "--json", "--profile-dir", str(agent.profile))
    assert jobs.returncode == 0, jobs.stderr
    assert set(json.loads(jobs.stdout)) == {"current", "history"}

    # Restarted, the agent is enrolled from the first answer it gives: the job engine has
    # read its journal before the local API publishes its address.
    assert agent.terminate(timeout_s=15) == 0
    again_agent = spawn_agent(agent.profile)
    spawn.append(again_agent)
    assert again_agent.client().network().node_id == status.node_id

    left = run_cli("leave", "--profile-dir", str(agent.profile))
    assert left.returncode == 0, left.stderr
    assert not again_agent.client().network().enrolled
    assert agent.log_problems() == []


def test_the_demo_network_from_the_command_line(agent: AgentProcess) -> None:
    out = run_cli("demo", "--profile-dir", str(agent.profile), timeout_s=90)
    assert out.returncode == 0, out.stderr
    assert "enrolled in the demo network" in out.stdout
    status = agent.client().network()
    assert status.enrolled and status.demo and status.currency == "CRD"
    runtime = json.loads((agent.paths.data_dir / DEMO_RUNTIME_FILE).read_text())
    earnings = run_cli("earnings", "--json", "--profile-dir", str(agent.profile))
    assert earnings.returncode == 0, earnings.stderr
    assert json.loads(earnings.stdout)["currency"] == "CRD"

    left = run_cli("leave", "--profile-dir", str(agent.profile), timeout_s=60)
    assert left.returncode == 0, left.stderr
    assert not agent.client().network().enrolled
    # Leaving the demo network stops its coordinator.
    deadline = time.monotonic() + 10
    while psutil.pid_exists(runtime["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(runtime["pid"])
    assert agent.log_problems() == []
