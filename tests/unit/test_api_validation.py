"""Malformed requests get a 4xx and a sentence the app can show; never a traceback."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_api_support import T0, Agent, error_of, start_agent

from heatshare.protocol.local_api import Settings


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(tmp_path)
    a.tick(3)
    yield a
    a.close()


def patch(agent: Agent, body: str | bytes, content_type: str = "application/json"):
    return agent.request("PATCH", "/v1/settings", data=body, headers={"Content-Type": content_type})


def test_settings_that_are_not_json_are_400(agent: Agent) -> None:
    resp = patch(agent, "{tariff_per_kwh: 0.3")
    assert resp.status_code == 400
    assert "not valid JSON" in error_of(resp)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tariff_per_kwh": -0.1}, "tariff_per_kwh"),
        ({"tariff_per_kwh": "cheap"}, "tariff_per_kwh"),
        ({"currency": "pounds"}, "currency"),
        ({"temperature_unit": "K"}, "temperature_unit"),
        ({"heating_threshold_pct": 0}, "heating_threshold_pct"),
        ({"rest_of_system_w": [1]}, "rest_of_system_w"),
        ({"currency": None}, "currency"),
        ({"colour": "red"}, "colour"),  # extra fields are refused
    ],
)
def test_invalid_settings_are_422_naming_the_field(agent: Agent, body: dict, field: str) -> None:
    before = agent.request("GET", "/v1/settings").json()
    resp = patch(agent, json.dumps(body))
    assert resp.status_code == 422
    message = error_of(resp)
    assert message.startswith("The settings change was not accepted")
    assert field in message
    assert any(line.startswith(field) for line in resp.json()["detail"])
    assert agent.request("GET", "/v1/settings").json() == before


def test_a_json_array_is_not_a_settings_change(agent: Agent) -> None:
    resp = patch(agent, "[1, 2]")
    assert resp.status_code == 422
    error_of(resp)


def test_an_estimate_whose_maximum_is_below_idle_is_refused(agent: Agent) -> None:
    resp = patch(agent, json.dumps({"estimate_cpu_idle_w": 80}))
    assert resp.status_code == 422
    assert "idle" in error_of(resp)


def test_a_settings_change_needs_a_body(agent: Agent) -> None:
    resp = patch(agent, b"")
    assert resp.status_code == 400
    assert "needs a JSON body" in error_of(resp)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_is_415(agent: Agent, content_type: str) -> None:
    resp = patch(agent, json.dumps({"currency": "EUR"}), content_type)
    assert resp.status_code == 415
    assert "Content-Type: application/json" in error_of(resp)
    assert Settings.model_validate(agent.request("GET", "/v1/settings").json()).currency == "GBP"


def test_json_with_a_charset_is_json(agent: Agent) -> None:
    resp = patch(agent, json.dumps({"currency": "EUR"}), "application/json; charset=utf-8")
    assert resp.status_code == 200
    assert resp.json()["currency"] == "EUR"


def test_a_body_over_64_kib_is_413_and_the_server_goes_on(agent: Agent) -> None:
    resp = patch(agent, json.dumps({"currency": "EUR", "pad": "x" * 70_000}))
    assert resp.status_code == 413
    assert "64 KiB" in error_of(resp)
    assert agent.request("GET", "/v1/status").status_code == 200


def test_a_chunked_body_is_411(agent: Agent) -> None:
    resp = agent.request(
        "PATCH",
        "/v1/settings",
        data=iter([b'{"currency": "EUR"}']),  # a generator body goes out chunked
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 411
    error_of(resp)


@pytest.mark.parametrize(
    ("body", "status"),
    [({"duration_s": 0}, 422), ({"duration_s": "soon"}, 422), ({"until": 5}, 422), ("[", 400)],
)
def test_invalid_pause_requests_are_refused(agent: Agent, body: object, status: int) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
    resp = agent.request(
        "POST", "/v1/pause", data=data, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == status
    assert "pause request" in error_of(resp)
    assert agent.request("GET", "/v1/status").json()["state"] != "paused"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("", "at least one series"),
        ("series=", "at least one series"),
        ("series=heat.power_w&start=20&end=10", "after its end"),
        ("series=heat.power_w&start=yesterday", "start must be a time"),
        ("series=heat.power_w&end=nan", "end must be a time"),
        ("series=heat.power_w&start=inf", "start must be a time"),
        ("series=heat.power_w&max_points=0", "max_points must be a whole number"),
        ("series=heat.power_w&max_points=many", "max_points must be a whole number"),
        ("series=heat.power_w&max_points=1000000", "max_points must be a whole number"),
        ("series=heat.power_w&series=cpu.util_pct", "more than once"),
        ("series=heat.power_w&resolution=60", "does not take the query parameter"),
        ("series=heat.power_w,no.such_series", "Unknown series: no.such_series"),
        ("series=gpu0.voltage_v", "Unknown series"),
    ],
)
def test_bad_history_requests_are_400(agent: Agent, query: str, words: str) -> None:
    resp = agent.request("GET", f"/v1/history?{query}")
    assert resp.status_code == 400
    assert words in error_of(resp)


def test_query_parameters_on_other_routes_are_refused(agent: Agent) -> None:
    resp = agent.request("GET", "/v1/status?verbose=1")
    assert resp.status_code == 400
    assert "verbose" in error_of(resp)


def test_a_request_the_http_parser_refuses_is_answered_in_json(agent: Agent) -> None:
    headers = "".join(f"X-Header-{i}: {i}\r\n" for i in range(120))
    with socket.create_connection(("127.0.0.1", agent.api.port), timeout=5) as sock:
        sock.sendall(f"GET /v1/status HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["error"].startswith("The request was not understood")


def test_an_unexpected_error_is_a_500_with_a_generic_sentence_and_a_logged_traceback(
    agent: Agent, monkeypatch: pytest.MonkeyPatch, expect_log: Callable[[str], None]
) -> None:
    def broken() -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(agent.service, "status", broken)
    expect_log(r"Unexpected error answering GET /v1/status")
    resp = agent.request("GET", "/v1/status")
    assert resp.status_code == 500
    message = error_of(resp)
    assert "internal error" in message
    assert "secret" not in resp.text
    assert agent.request("GET", "/v1/settings").status_code == 200


def test_history_range_defaults_to_the_last_hour(agent: Agent) -> None:
    body = agent.request("GET", "/v1/history?series=heat.power_w").json()
    now = agent.sensors.wall
    assert body["end"] == pytest.approx(now)
    assert body["start"] == pytest.approx(now - 3600)
    assert body["resolution_s"] == 1
    assert T0 < body["series"][0]["t"][0] <= now
