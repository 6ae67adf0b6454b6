"""The local API's door: the bearer token, routes and methods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_api_support import Agent, error_of, start_agent


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(tmp_path)
    yield a
    a.close()


V1_ROUTES = [
    ("GET", "/v1/status"),
    ("GET", "/v1/series"),
    ("GET", "/v1/history?series=heat.power_w"),
    ("GET", "/v1/settings"),
    ("PATCH", "/v1/settings"),
    ("POST", "/v1/pause"),
    ("POST", "/v1/resume"),
    ("POST", "/v1/shutdown"),
    ("GET", "/v1/no-such-route"),
]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
def test_every_v1_route_needs_the_token(agent: Agent, method: str, path: str) -> None:
    resp = agent.request(method, path, token=None)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "token" in error_of(resp)
    assert not agent.shutdown.is_set()


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token",
        "Bearer ",
        "Bearer test-token-012345678",  # a prefix of the real one
        "Basic dGVzdDp0ZXN0",
        "test-token-0123456789",  # the token without its scheme
        "Bearer test-token-0123456789x",
    ],
)
def test_a_wrong_token_is_refused(agent: Agent, header: str) -> None:
    resp = agent.request("GET", "/v1/status", token=None, headers={"Authorization": header})
    assert resp.status_code == 401
    error_of(resp)


def test_the_right_token_is_let_in_whatever_the_scheme_case(agent: Agent) -> None:
    agent.tick()
    assert agent.request("GET", "/v1/status").status_code == 200
    resp = agent.request(
        "GET", "/v1/status", token=None, headers={"Authorization": "bearer test-token-0123456789"}
    )
    assert resp.status_code == 200


def test_the_openapi_document_needs_no_token(agent: Agent) -> None:
    resp = agent.request("GET", "/v1/openapi.json", token=None)
    assert resp.status_code == 200
    assert resp.json()["openapi"] == "3.1.0"


def test_unknown_routes_are_404_with_a_sentence(agent: Agent) -> None:
    resp = agent.request("GET", "/v1/nope")
    assert resp.status_code == 404
    assert "/v1/nope" in error_of(resp)
    assert agent.request("GET", "/", token=None).status_code == 404
    assert agent.request("GET", "/v2/status").status_code == 404


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "POST"])
def test_methods_a_route_does_not_take_are_405_with_allow(agent: Agent, method: str) -> None:
    resp = agent.request(method, "/v1/status")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET"
    assert "GET" in error_of(resp)


def test_head_is_405_without_a_body(agent: Agent) -> None:
    resp = agent.request("HEAD", "/v1/status")
    assert resp.status_code == 405
    assert resp.content == b""
    settings = agent.request("GET", "/v1/settings")  # a new connection still works
    assert settings.status_code == 200


def test_an_unknown_method_is_answered_in_json(agent: Agent) -> None:
    resp = agent.request("BREW", "/v1/status")
    assert resp.status_code == 501
    error_of(resp)


def test_keep_alive_serves_many_requests_on_one_connection(agent: Agent) -> None:
    agent.tick()
    for _ in range(20):
        assert agent.request("GET", "/v1/status").status_code == 200
