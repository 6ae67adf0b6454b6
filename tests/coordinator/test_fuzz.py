"""The API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, every error an ApiError.

Runs against a live coordinator on a real SQLite file, with an operator token, a node token
and a requester key, and a job leased so that the node and requester routes have something
to find. Each operation gets a bounded number of examples, so the run stays under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from coordinator_net import Clock, LiveServer, Net, make_settings
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from heatshare.coordinator.app import create_app
from heatshare.protocol.coordinator_api import ApiError

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 20


class Tokens:
    def __init__(self, net: Net) -> None:
        self.admin = net.admin_token
        _, self.node = net.node()
        self.requester = net.requester()
        net.submit(self.requester)
        net.submit(self.requester, replication=2)
        net.lease(self.node)


@pytest.fixture
def fuzz_target(tmp_path: Path) -> Iterator[tuple[Any, Tokens]]:
    clock = Clock()
    url = f"sqlite:///{tmp_path / 'fuzz.sqlite'}"
    app = create_app(make_settings(url, tmp_path / "blobs", clock), sweeper=False)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        tokens = Tokens(Net(client, app.state.coordinator, clock))
        schema = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json")
        yield schema, tokens


def _token_for(path: str, tokens: Tokens) -> str | None:
    if path == "/v1/enrol":
        return None
    if path.startswith(("/v1/accounts", "/v1/requesters")) or path == "/v1/nodes":
        return tokens.admin
    if path.endswith("/revoke"):
        return tokens.admin
    if path.startswith(("/v1/nodes", "/v1/leases", "/v1/attempts")):
        return tokens.node
    return tokens.requester  # bundles and jobs


def errors_are_api_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code >= 400:
        try:
            ApiError.model_validate(response.json())
        except ValueError as exc:
            raise Failure(
                operation=case.operation.label,
                title="Not an ApiError body",
                message=f"{response.status_code}: {response.text[:300]!r} ({exc})",
                code="not_api_error",
            ) from exc
    return None


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


# No 5xx; every status, content type and body is one the schema declares; errors are ApiError.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    errors_are_api_errors,
]


@pytest.mark.timeout(300)
def test_api_never_fails_on_any_input(fuzz_target: tuple[Any, Tokens]) -> None:
    schema, tokens = fuzz_target
    ran = []
    # Revoking last: it may well revoke the test's node (id 1), whose token the node
    # routes need to reach past the 401.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda operation: operation.path.endswith("/revoke"),
    )
    for operation in operations:
        token = _token_for(operation.path, tokens)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Valid data, then data the schema forbids.
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, headers)
            ran.append((operation.label, mode.value))
    assert len(ran) == 2 * 20
