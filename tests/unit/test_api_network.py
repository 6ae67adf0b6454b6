"""The local API's network and job routes, and what the service gives the job engine.

The job engine is the one stand-in (``network_double.NetworkDouble``); the service, its
store, the HTTP server and the protocol client are real.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from network_double import NetworkDouble, Summary, a_job, enrolled, some_earnings
from test_api_support import TOKEN, Agent, error_of, start_agent

from heatshare.agent.api import MAX_LOG_BYTES
from heatshare.agent.inventory import build_inventory, sandbox_kind
from heatshare.agent.service import NO_NETWORK
from heatshare.agent.work import NetworkError
from heatshare.domain.readings import GpuReading
from heatshare.domain.units import J_PER_KWH
from heatshare.jobs.sandbox import NoSandbox
from heatshare.protocol.client import AgentClient, AgentError
from heatshare.protocol.coordinator_api import SandboxKind
from heatshare.protocol.local_api import (
    EarningsResponse,
    JobPhase,
    JobsResponse,
    NetworkStatus,
)
from heatshare.store import StoreError


def refusal(status: int, message: str) -> NetworkError:
    return NetworkError(message, status=status)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(tmp_path)
    yield a
    a.close()


@pytest.fixture
def net(agent: Agent) -> NetworkDouble:
    double = NetworkDouble()
    agent.service.attach_network(double)
    return double


@pytest.fixture
def client(agent: Agent, net: NetworkDouble) -> Iterator[AgentClient]:
    c = AgentClient(agent.url, TOKEN)
    yield c
    c.close()


# -- the network ---------------------------------------------------------------------------------


def test_not_enrolled_says_so(client: AgentClient, net: NetworkDouble) -> None:
    status = client.network()
    assert status == NetworkStatus(enrolled=False, sandbox="bubblewrap")


def test_enrol_passes_the_url_and_code_and_answers_the_new_state(
    client: AgentClient, net: NetworkDouble
) -> None:
    status = client.enrol("https://network.example", "ABCD-1234")
    assert ("enrol", "https://network.example", "ABCD-1234") in net.calls
    assert status.enrolled
    assert status.node_id == 7
    assert client.network() == status


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "This pairing code is not known to the network; check it with its operator."),
        (410, "This pairing code has expired; ask the network's operator for a new one."),
        (409, "This pairing code was already used; ask the network's operator for a new one."),
        (502, "The network at https://network.example does not answer: connection refused."),
        (502, "The certificate of https://network.example is not trusted, so nothing was sent."),
    ],
)
def test_the_network_refusal_reaches_the_client_as_it_is(
    client: AgentClient, net: NetworkDouble, status: int, message: str
) -> None:
    net.raises["enrol"] = refusal(status, message)
    with pytest.raises(AgentError) as exc:
        client.enrol("https://network.example", "ABCD-1234")
    assert exc.value.status == status
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"url": "ftp://network.example", "code": "ABCD-1234"}, 422, "url"),
        ({"url": "https://network.example", "code": "AB CD"}, 422, "code"),
        ({"url": "https://network.example"}, 422, "code"),
        ({"url": "https://network.example", "code": "ABCD", "extra": 1}, 422, "extra"),
        (None, 400, "needs a JSON body"),
    ],
)
def test_a_bad_enrolment_request_is_refused_before_the_network_is_asked(
    agent: Agent, net: NetworkDouble, body: object, status: int, words: str
) -> None:
    resp = agent.request("POST", "/v1/network/enrol", json=body)
    assert resp.status_code == status
    assert words in error_of(resp)
    assert not any(c[0] == "enrol" for c in net.calls)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://P\U000c1d2b)", "is not a host name"),
        ("https://'h", "is not a host name"),
        ("https://a..b", "is not a host name"),
        ("https://:443", "names no host"),
        ("https://network.example:99999", "port"),
        ("https://network.example:http", "port"),
        ("https://ada:secret@network.example", "user name or password"),
        ("https://network .example", "contains spaces"),
        ("https://[::1", "not a valid web address"),
    ],
)
def test_a_malformed_network_address_is_the_request_s_fault(
    agent: Agent, net: NetworkDouble, url: str, words: str
) -> None:
    resp = agent.request("POST", "/v1/network/enrol", json={"url": url, "code": "ABCD-1234"})
    assert resp.status_code == 422
    message = error_of(resp)
    assert words in message
    assert not any(c[0] == "enrol" for c in net.calls)


@pytest.mark.parametrize(
    "url",
    [
        "https://network.example",
        "https://network.example:8443/base/",
        "http://127.0.0.1:47900",
        "http://[::1]:47900",
        "https://bücher.example",
        "https://node_7.lan.",
    ],
)
def test_good_network_addresses_reach_the_engine(
    client: AgentClient, net: NetworkDouble, url: str
) -> None:
    assert client.enrol(url, "ABCD-1234").enrolled
    assert ("enrol", url, "ABCD-1234") in net.calls


def test_enrol_body_that_is_not_json(agent: Agent, net: NetworkDouble) -> None:
    resp = agent.request(
        "POST",
        "/v1/network/enrol",
        data=b"{url",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert "not valid JSON" in error_of(resp)


def test_demo_and_leave(client: AgentClient, net: NetworkDouble) -> None:
    demo = client.start_demo()
    assert demo.demo and demo.enrolled and demo.currency == "CRD"
    left = client.leave_network()
    assert not left.enrolled
    assert [c[0] for c in net.calls] == ["start_demo", "leave"]


def test_a_demo_that_cannot_start_says_why(client: AgentClient, net: NetworkDouble) -> None:
    net.raises["start_demo"] = refusal(503, "The demo network did not start: see the log.")
    with pytest.raises(AgentError) as exc:
        client.start_demo()
    assert (exc.value.status, str(exc.value)) == (
        503,
        "The demo network did not start: see the log.",
    )


def test_the_demo_takes_no_body_but_drains_one(agent: Agent, net: NetworkDouble) -> None:
    resp = agent.request("POST", "/v1/network/demo", json={"ok": True})
    assert resp.status_code == 200
    assert NetworkStatus.model_validate_json(resp.content).demo
    resp = agent.request("POST", "/v1/network/leave", json={"surprise": 1})
    assert resp.status_code == 422
    error_of(resp)


def test_a_fault_in_the_engine_is_a_500_sentence_and_logged(
    agent: Agent, net: NetworkDouble, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"Unexpected error answering GET /v1/network")
    net.raises["network_status"] = RuntimeError("boom")
    resp = agent.request("GET", "/v1/network")
    assert resp.status_code == 500
    assert "internal error" in error_of(resp)
    assert "boom" not in resp.text


# -- jobs ----------------------------------------------------------------------------------------


def test_jobs_with_and_without_a_limit(client: AgentClient, net: NetworkDouble) -> None:
    net.jobs_answer = JobsResponse(
        current=[a_job(12)],
        history=[
            a_job(11, JobPhase.DONE, progress=1.0, credited_minor=25, result_status="accepted")
        ],
    )
    assert client.jobs(limit=5) == net.jobs_answer
    assert client.jobs() == net.jobs_answer
    assert [c for c in net.calls if c[0] == "jobs"] == [("jobs", 5), ("jobs", 50)]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=1001", "limit=", "page=2"])
def test_a_bad_jobs_query_is_refused(agent: Agent, net: NetworkDouble, query: str) -> None:
    resp = agent.request("GET", f"/v1/jobs?{query}")
    if query == "limit=":
        assert resp.status_code == 200  # an empty value is the default
        return
    assert resp.status_code == 400
    assert ("limit" in error_of(resp)) or ("page" in error_of(resp))


def test_a_job_log_is_plain_text(agent: Agent, client: AgentClient, net: NetworkDouble) -> None:
    net.logs[11] = "rendering tile 3\nélan: done\n"
    assert client.job_log(11) == "rendering tile 3\nélan: done\n"
    resp = agent.request("GET", "/v1/jobs/11/log")
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_long_log_is_served_from_its_end(client: AgentClient, net: NetworkDouble) -> None:
    # Three-byte characters, so the cut falls inside one: it must not reach the client.
    net.logs[11] = "first line\n" + "€" * MAX_LOG_BYTES + "\nlast line\n"
    text = client.job_log(11)
    assert text.endswith("€\nlast line\n")
    assert "first line" not in text
    assert len(text.encode()) <= MAX_LOG_BYTES
    assert "\ufffd" not in text


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/v1/jobs/99/log", 404, "no job attempt 99"),
        ("/v1/jobs/abc/log", 400, "whole number"),
        ("/v1/jobs/-1/log", 400, "whole number"),
        ("/v1/jobs//log", 400, "whole number"),
        ("/v1/jobs/11/log?tail=5", 400, "tail"),
        ("/v1/jobs/11/logs", 404, "no API route"),
    ],
)
def test_a_bad_log_request(
    agent: Agent, net: NetworkDouble, path: str, status: int, words: str
) -> None:
    net.logs[11] = "x"
    resp = agent.request("GET", path)
    assert resp.status_code == status
    assert words in error_of(resp)


def test_an_output_file_comes_with_its_content_type(
    agent: Agent, client: AgentClient, net: NetworkDouble
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    net.files[(11, "tile-3.png")] = png
    net.files[(11, "summary.txt")] = b"ok\n"
    net.files[(11, "matrix.bin")] = b"\x00\x01"
    assert client.job_file(11, "tile-3.png") == png
    resp = agent.request("GET", "/v1/jobs/11/files", params={"name": "tile-3.png"})
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    resp = agent.request("GET", "/v1/jobs/11/files", params={"name": "summary.txt"})
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    resp = agent.request("GET", "/v1/jobs/11/files", params={"name": "matrix.bin"})
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.content == b"\x00\x01"


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({}, 400, "Name the output file"),
        ({"name": ""}, 400, "Name the output file"),
        ({"name": "missing.png"}, 404, "no output file 'missing.png'"),
        ({"name": "../agent-token"}, 400, "not an output file name"),
        ({"name": "a.png", "x": "1"}, 400, "x"),
    ],
)
def test_a_bad_file_request(
    agent: Agent, net: NetworkDouble, query: dict[str, str], status: int, words: str
) -> None:
    net.files[(11, "a.png")] = b"png"
    resp = agent.request("GET", "/v1/jobs/11/files", params=query)
    assert resp.status_code == status
    assert words in error_of(resp)


def test_a_file_the_client_cannot_have(client: AgentClient, net: NetworkDouble) -> None:
    with pytest.raises(AgentError) as exc:
        client.job_file(11, "nothing.png")
    assert exc.value.status == 404


# -- earnings ------------------------------------------------------------------------------------


def test_earnings(client: AgentClient, net: NetworkDouble) -> None:
    net.earnings_answer = some_earnings()
    assert client.earnings() == some_earnings()


def test_earnings_before_enrolling(client: AgentClient, net: NetworkDouble) -> None:
    net.raises["earnings"] = refusal(404, "This machine is not enrolled in a network.")
    with pytest.raises(AgentError) as exc:
        client.earnings()
    assert exc.value.status == 404
    assert str(exc.value) == "This machine is not enrolled in a network."


# -- the door ------------------------------------------------------------------------------------


NETWORK_ROUTES = [
    ("GET", "/v1/network"),
    ("POST", "/v1/network/enrol"),
    ("POST", "/v1/network/demo"),
    ("POST", "/v1/network/leave"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/1/log"),
    ("GET", "/v1/jobs/1/files?name=a.png"),
    ("GET", "/v1/earnings"),
]


@pytest.mark.parametrize(("method", "path"), NETWORK_ROUTES)
def test_every_network_route_needs_the_token(
    agent: Agent, net: NetworkDouble, method: str, path: str
) -> None:
    resp = agent.request(method, path, token=None)
    assert resp.status_code == 401
    assert "token" in error_of(resp)
    assert net.calls == []


@pytest.mark.parametrize(("method", "path"), NETWORK_ROUTES)
def test_the_wrong_method_is_a_405(
    agent: Agent, net: NetworkDouble, method: str, path: str
) -> None:
    other = "DELETE"
    resp = agent.request(other, path)
    assert resp.status_code == 405
    assert method in resp.headers["Allow"]
    assert "does not take DELETE" in error_of(resp)


@pytest.mark.parametrize("method", ["TRACE", "PUT", "OPTIONS"])
def test_methods_no_route_takes_are_a_json_405(
    agent: Agent, net: NetworkDouble, method: str
) -> None:
    resp = agent.request(method, "/v1/network")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET"
    error_of(resp)


@pytest.mark.parametrize(("method", "path"), NETWORK_ROUTES)
def test_an_agent_without_the_network_says_so(agent: Agent, method: str, path: str) -> None:
    body = {"url": "https://network.example", "code": "ABCD"} if "enrol" in path else None
    resp = agent.request(method, path, json=body)
    assert resp.status_code == 503
    assert error_of(resp) == NO_NETWORK


def test_the_openapi_document_describes_the_network(agent: Agent) -> None:
    doc = agent.request("GET", "/v1/openapi.json", token=None).json()
    paths = doc["paths"]
    assert paths["/v1/network/enrol"]["post"]["requestBody"]["required"] is True
    files = paths["/v1/jobs/{attempt_id}/files"]["get"]
    assert {(p["name"], p["in"]) for p in files["parameters"]} == {
        ("attempt_id", "path"),
        ("name", "query"),
    }
    assert "image/png" in files["responses"]["200"]["content"]
    assert "text/plain" in paths["/v1/jobs/{attempt_id}/log"]["get"]["responses"]["200"]["content"]
    assert {"NetworkStatus", "EnrolLocal", "JobsResponse", "EarningsResponse", "JobInfo"} <= set(
        doc["components"]["schemas"]
    )
    text = json.dumps(doc)
    for ref in {r.split('"')[0] for r in text.split('"$ref": "')[1:]}:
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"]


# -- the status and the service's side of the engine --------------------------------------------


def test_the_status_carries_the_current_job_and_todays_earnings(
    agent: Agent, client: AgentClient, net: NetworkDouble
) -> None:
    assert client.status().job_label is None
    net.work = Summary("mandelbrot tile 3", 0.42, 250, "CRD")
    status = client.status()
    assert (status.job_label, status.job_progress) == ("mandelbrot tile 3", 0.42)
    assert (status.earned_today_minor, status.earnings_currency) == (250, "CRD")
    agent.tick()
    assert client.status().job_label == "mandelbrot tile 3"


def test_energy_is_the_accountants_running_total(agent: Agent) -> None:
    assert agent.service.energy_total_j() is None  # nothing sampled yet
    agent.tick(4)
    total = agent.service.energy_total_j()
    status = agent.service.status()
    # Three integrated seconds of about 195.5 W: the same figure as the heat today.
    assert total == pytest.approx(3 * 195.5)
    assert total == pytest.approx(status.heat_today_kwh * J_PER_KWH)


def test_telemetry_is_the_energy_since_the_last_heartbeat(agent: Agent) -> None:
    first = agent.service.telemetry()
    assert first.power_w is None and first.energy_j == 0.0
    agent.tick(3)
    beat = agent.service.telemetry()
    assert beat.power_w == pytest.approx(195.5)
    assert (beat.gpu_temp_c, beat.cpu_temp_c) == (66.0, 48.0)
    assert beat.energy_j == pytest.approx(2 * 195.5)
    assert agent.service.telemetry().energy_j == 0.0  # nothing new since
    agent.tick()
    assert agent.service.telemetry().energy_j == pytest.approx(195.5)


def test_the_inventory_is_the_machine_the_sensors_see(agent: Agent) -> None:
    agent.tick()
    inv = agent.service.inventory(NoSandbox("bubblewrap is not installed."))
    assert inv.hostname == "testhost"
    assert (inv.cpu_cores, inv.memory_bytes) == (2, 16 * 2**30)
    assert [(g.name, g.memory_bytes) for g in inv.gpus] == [("NVIDIA GeForce RTX 3080", 10 * 2**30)]
    assert inv.sandbox is SandboxKind.NONE  # a sandbox with a problem runs nothing
    assert inv.os and inv.arch and inv.agent_version


def test_pause_reaches_the_engine(agent: Agent, client: AgentClient) -> None:
    assert not agent.service.is_paused()
    client.pause(60)
    assert agent.service.is_paused()
    agent.sensors.wall += 61  # the pause ran out
    assert not agent.service.is_paused()
    client.pause()
    client.resume()
    assert not agent.service.is_paused()


def test_the_engine_starts_with_the_service_and_stops_before_the_store_closes(
    tmp_path: Path,
) -> None:
    a = start_agent(tmp_path)
    double = NetworkDouble()
    seen: list[str] = []

    def on_stop() -> None:
        # The engine's last journal writes and heartbeat read the store and the sensors.
        try:
            a.service.history(["heat.power_w"])
            seen.append("store open")
        except StoreError:
            seen.append("store closed")

    double.on_stop = on_stop
    a.service.attach_network(double)
    a.service.start()
    assert double.started
    a.close()
    assert double.stopped
    assert seen == ["store open"]


def test_an_engine_that_fails_to_stop_does_not_keep_the_store_open(
    tmp_path: Path, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"Stopping the job engine failed")
    a = start_agent(tmp_path)
    double = NetworkDouble(raises={"stop": RuntimeError("stuck")})
    a.service.attach_network(double)
    a.service.start()
    a.close()
    with pytest.raises(StoreError):
        a.service.history(["heat.power_w"])


def test_the_client_and_server_agree_on_every_network_call(
    client: AgentClient, net: NetworkDouble
) -> None:
    """Each AgentClient network method against the real server, answer parsed by its model."""
    net.earnings_answer = some_earnings()
    net.logs[11] = "log"
    net.files[(11, "tile-3.png")] = b"png"
    net.jobs_answer = JobsResponse(current=[a_job()], history=[])
    assert isinstance(client.network(), NetworkStatus)
    assert client.enrol("http://127.0.0.1:9", "ABCD") == enrolled("http://127.0.0.1:9")
    assert isinstance(client.start_demo(), NetworkStatus)
    assert isinstance(client.leave_network(), NetworkStatus)
    assert client.jobs(3).current[0].attempt_id == 11
    assert client.job_log(11) == "log"
    assert client.job_file(11, "tile-3.png") == b"png"
    assert isinstance(client.earnings(), EarningsResponse)


def test_no_route_leaks_a_traceback_on_a_bad_attempt(agent: Agent, net: NetworkDouble) -> None:
    with requests.Session() as s:
        s.trust_env = False
        resp = s.get(
            f"{agent.url}/v1/jobs/{'9' * 40}/log",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
    assert resp.status_code == 400
    error_of(resp)


def test_the_inventory_before_the_first_sample_asks_the_os(tmp_path: Path) -> None:
    inv = build_inventory(
        hostname="shed", host=None, gpus=(), sandbox=SandboxKind.BUBBLEWRAP, cuda=False
    )
    assert inv.cpu_cores >= 1 and inv.memory_bytes > 0
    assert inv.gpus == [] and inv.sandbox is SandboxKind.BUBBLEWRAP


def test_a_gpu_counts_as_cuda_only_where_the_driver_library_loads() -> None:
    gpu = GpuReading(index=0, name="NVIDIA H100 80GB HBM3", mem_total_bytes=80 * 10**9)
    with_cuda = build_inventory(
        hostname="h", host=None, gpus=(gpu,), sandbox=SandboxKind.BUBBLEWRAP, cuda=True
    )
    assert [(g.name, g.memory_bytes, g.cuda) for g in with_cuda.gpus] == [
        ("NVIDIA H100 80GB HBM3", 80 * 10**9, True)
    ]
    unknown_memory = GpuReading(index=0, name="NVIDIA GPU 0")
    without = build_inventory(
        hostname="h", host=None, gpus=(unknown_memory,), sandbox=SandboxKind.NONE, cuda=False
    )
    assert [(g.memory_bytes, g.cuda) for g in without.gpus] == [(None, False)]


@pytest.mark.parametrize(
    ("kind", "problem", "expected"),
    [
        ("bubblewrap", None, SandboxKind.BUBBLEWRAP),
        ("bubblewrap", "Unprivileged user namespaces are disabled.", SandboxKind.NONE),
        ("none", "No sandbox on Windows yet.", SandboxKind.NONE),
        ("something-new", None, SandboxKind.NONE),
    ],
)
def test_the_sandbox_the_network_may_count_on(
    kind: str, problem: str | None, expected: SandboxKind
) -> None:
    assert sandbox_kind(kind, problem) is expected
