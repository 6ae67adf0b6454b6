"""The coordinator's rules through its HTTP API, each on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from coordinator_net import INVENTORY, Net, sha, targz

from heatshare.protocol.coordinator_api import SHA256_HEADER, ApiError

RESULT = targz({"out/answer.txt": b"42\n"})
OTHER = targz({"out/answer.txt": b"41\n"})


def _error(r: httpx.Response) -> str:
    body = ApiError.model_validate(r.json())
    assert body.error.endswith((".", ")")), body.error
    return body.error


# --- pairing -------------------------------------------------------------------------------


def test_pairing_code_unknown_used_and_expired(net: Net) -> None:
    account = net.account()
    enrol = {"inventory": INVENTORY}
    r = net.client.post("/v1/enrol", json={**enrol, "pairing_code": "AAAA-BBBB-CCCC"})
    assert r.status_code == 404
    assert "not known to the network" in _error(r)

    code = net.pairing_code(account)
    first = net.client.post("/v1/enrol", json={**enrol, "pairing_code": code.lower()})
    assert first.status_code == 201, first.text  # typed in lower case: still the code
    again = net.client.post("/v1/enrol", json={**enrol, "pairing_code": code})
    assert again.status_code == 409
    assert "used already" in _error(again)

    late = net.pairing_code(account, ttl_s=60)
    net.clock.advance(61)
    r = net.client.post("/v1/enrol", json={**enrol, "pairing_code": late})
    assert r.status_code == 410
    assert "expired" in _error(r)


def test_operator_calls_need_the_admin_token(net: Net) -> None:
    for headers in (
        {},
        net.auth("hsa_wrong"),
        net.auth(net.node()[1]),
        {"Authorization": "Basic x"},
    ):
        r = net.client.get("/v1/accounts", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "operator token" in _error(r)
    r = net.client.post("/v1/accounts/999/pairing-codes", json={}, headers=net.admin())
    assert r.status_code == 404
    dup = net.client.post("/v1/accounts", json={"name": "twice"}, headers=net.admin())
    assert dup.status_code == 201
    dup = net.client.post("/v1/accounts", json={"name": "twice"}, headers=net.admin())
    assert dup.status_code == 409


def test_validation_errors_are_sentences_with_detail(net: Net) -> None:
    r = net.client.post("/v1/enrol", json={"pairing_code": "x", "inventory": {"os": "linux"}})
    assert r.status_code == 422
    body = ApiError.model_validate(r.json())
    assert body.error.startswith("The request is not valid: ")
    assert any(line.startswith("body.pairing_code:") for line in body.detail)
    assert any("inventory.cpu_cores" in line for line in body.detail)
    bad_json = net.client.post(
        "/v1/enrol", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 422
    _error(bad_json)
    nowhere = net.client.get("/v1/nowhere")
    assert nowhere.status_code == 404
    assert _error(nowhere) == "There is nothing at this address."
    wrong_method = net.client.delete("/v1/enrol")
    assert wrong_method.status_code == 405
    _error(wrong_method)


# --- authorisation between nodes and requesters --------------------------------------------


def test_a_node_sees_only_its_own_attempts_and_bundles(net: Net) -> None:
    _, alice = net.node()
    _, bob = net.node()
    key = net.requester()
    job = net.submit(key)
    [lease] = net.lease(alice)
    attempt = lease["attempt_id"]

    # Bob may not see, extend, finish or fail Alice's attempt, nor fetch its bundle.
    assert net.upload(bob, attempt, RESULT).status_code == 404
    p = net.client.post(
        f"/v1/attempts/{attempt}/progress", json={"fraction": 0.5}, headers=net.auth(bob)
    )
    assert p.status_code == 404
    f = net.client.post(
        f"/v1/attempts/{attempt}/failure", json={"reason": "x"}, headers=net.auth(bob)
    )
    assert f.status_code == 404
    assert net.client.get(lease["bundle_url"], headers=net.auth(bob)).status_code == 404
    assert net.client.get("/v1/nodes/me/attempts", headers=net.auth(bob)).json() == {"attempts": []}
    # A requester's key is not a node token, and the other way round.
    assert net.upload(key, attempt, RESULT).status_code == 401
    assert net.client.get(f"/v1/jobs/{job['job_id']}", headers=net.auth(alice)).status_code == 401
    # Another requester sees nothing of this job.
    other = net.requester()
    assert net.client.get(f"/v1/jobs/{job['job_id']}", headers=net.auth(other)).status_code == 404
    assert (
        net.client.get(f"/v1/jobs/{job['job_id']}/result", headers=net.auth(other)).status_code
        == 404
    )
    assert net.client.get(lease["bundle_url"], headers=net.auth(other)).status_code == 404
    assert net.client.get("/v1/jobs", headers=net.auth(other)).json() == {"jobs": []}
    # The owner may.
    assert net.client.get(lease["bundle_url"], headers=net.auth(key)).status_code == 200
    mine = net.client.get("/v1/nodes/me/attempts", headers=net.auth(alice)).json()["attempts"]
    assert [a["attempt_id"] for a in mine] == [attempt]
    assert mine[0]["price_minor"] == 250 and mine[0]["state"] == "leased"


def test_submitting_needs_an_uploaded_bundle_of_ones_own(net: Net) -> None:
    key = net.requester()
    other = net.requester()
    bundle = net.bundle(other)
    r = net.client.post(
        "/v1/jobs",
        json={"bundle_sha256": bundle, "command": ["true"], "price_minor": 1},
        headers=net.auth(key),
    )
    assert r.status_code == 404
    assert "upload it first" in _error(r)


# --- uploads: idempotent, size-limited, checksummed ----------------------------------------


def test_result_upload_rules(net: Net) -> None:
    _, token = net.node()
    key = net.requester()
    net.submit(key)
    [lease] = net.lease(token)
    attempt = lease["attempt_id"]

    wrong = net.client.put(
        f"/v1/attempts/{attempt}/result",
        content=RESULT,
        headers={**net.auth(token), SHA256_HEADER: sha(OTHER)},
    )
    assert wrong.status_code == 400
    assert "sha256" in _error(wrong)
    missing = net.client.put(
        f"/v1/attempts/{attempt}/result", content=RESULT, headers=net.auth(token)
    )
    assert missing.status_code == 422

    first = net.upload(token, attempt, RESULT)
    assert first.status_code == 200
    assert net.upload(token, attempt, RESULT).json() == first.json()
    different = net.upload(token, attempt, OTHER)
    assert different.status_code == 409
    assert "different result" in _error(different)
    assert net.earnings(token)["node_balance_minor"] == 250


@pytest.mark.settings(max_result_bytes=1000)
def test_too_big_is_413_by_header_and_while_streaming(net: Net, tmp_path: Path) -> None:
    _, token = net.node()
    net.submit(net.requester())
    [lease] = net.lease(token)
    big = b"x" * 5000
    r = net.upload(token, lease["attempt_id"], big)
    assert r.status_code == 413
    assert "1000 bytes" in _error(r)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit bites while streaming
        for _ in range(5):
            yield b"x" * 1000

    r = net.client.put(
        f"/v1/attempts/{lease['attempt_id']}/result",
        content=chunks(),
        headers={**net.auth(token), SHA256_HEADER: sha(big)},
    )
    assert r.status_code == 413
    # Nothing was kept, and the right result still goes in.
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert net.upload(token, lease["attempt_id"], b"small").json()["status"] == "accepted"


# --- leasing -------------------------------------------------------------------------------


def test_leases_match_capabilities(net: Net) -> None:
    key = net.requester()
    gpu_job = net.submit(key, resources={"gpus": 1, "gpu_memory_bytes": 8 * 1024**3})
    big_job = net.submit(key, resources={"cpu_cores": 16})
    arm_job = net.submit(key, resources={"arch": "aarch64"})
    mac_job = net.submit(key, resources={"os": "darwin"})
    plain = net.submit(key)

    _, small = net.node()
    assert [lease["job_id"] for lease in net.lease(small, max_jobs=5)] == [plain["job_id"]]
    _, gpu_small = net.node(gpus=[{"name": "RTX 3060", "memory_bytes": 6 * 1024**3, "cuda": True}])
    assert net.lease(gpu_small) == []
    _, gpu = net.node(gpus=[{"name": "RTX 4090", "memory_bytes": 24 * 1024**3, "cuda": True}])
    assert [lease["job_id"] for lease in net.lease(gpu)] == [gpu_job["job_id"]]
    _, arm = net.node(arch="aarch64", cpu_cores=32)
    got = sorted(lease["job_id"] for lease in net.lease(arm, max_jobs=5))
    assert got == sorted([big_job["job_id"], arm_job["job_id"]])
    _, unsafe = net.node(sandbox="none")
    r = net.client.post("/v1/leases", json={}, headers=net.auth(unsafe))
    assert r.status_code == 403
    assert "sandbox" in _error(r)
    assert net.job(key, mac_job["job_id"])["state"] == "queued"


def test_limit_of_jobs_in_progress_per_node(net: Net) -> None:
    key = net.requester()
    for _ in range(4):
        net.submit(key)
    _, token = net.node()
    r = net.client.post("/v1/leases", json={"max_jobs": 4}, headers=net.auth(token))
    assert len(r.json()["leases"]) == 2  # the default limit
    again = net.client.post("/v1/leases", json={"max_jobs": 4}, headers=net.auth(token)).json()
    assert again["leases"] == [] and again["retry_after_s"] > 0
    first = r.json()["leases"][0]
    net.upload(token, first["attempt_id"], RESULT)
    assert len(net.lease(token, max_jobs=4)) == 1


def test_expired_lease_is_leased_again_and_progress_extends(net: Net) -> None:
    key = net.requester()
    job = net.submit(key)
    _, slow = net.node()
    _, fast = net.node()
    [lease] = net.lease(slow)
    net.clock.advance(100)
    p = net.client.post(
        f"/v1/attempts/{lease['attempt_id']}/progress",
        json={"fraction": 0.4, "message": "tile 2 of 5"},
        headers=net.auth(slow),
    )
    assert p.status_code == 200 and p.json()["cancel"] is False
    net.clock.advance(100)  # 200 s after the lease, 100 s after progress: still held
    assert net.lease(fast) == []
    net.clock.advance(21)
    [again] = net.lease(fast)
    assert again["job_id"] == job["job_id"]
    assert again["attempt_id"] != lease["attempt_id"]
    # The slow node is told to stop, by progress and by heartbeat.
    p = net.client.post(
        f"/v1/attempts/{lease['attempt_id']}/progress",
        json={"fraction": 0.5},
        headers=net.auth(slow),
    )
    assert p.json()["cancel"] is True
    hb = net.client.post(
        "/v1/nodes/me/heartbeat",
        json={"state": "working", "running_attempts": [lease["attempt_id"]]},
        headers=net.auth(slow),
    ).json()
    assert [(c["kind"], c["attempt_id"]) for c in hb["commands"]] == [
        ("cancel_attempt", lease["attempt_id"])
    ]
    # The fast node finishes; the slow node's late result earns nothing.
    assert net.upload(fast, again["attempt_id"], RESULT).json()["status"] == "accepted"
    late = net.upload(slow, lease["attempt_id"], RESULT).json()
    assert late["status"] == "rejected" and late["credited_minor"] == 0
    assert net.earnings(slow)["node_balance_minor"] == 0
    assert net.earnings(fast)["node_balance_minor"] == 250


def test_background_sweep_reopens_expired_leases(net: Net) -> None:
    key = net.requester()
    job = net.submit(key)
    _, token = net.node()
    net.lease(token)
    net.clock.advance(121)
    assert net.coordinator.sweep() == 1
    assert net.job(key, job["job_id"])["state"] == "queued"


def test_deadline_expires_the_job(net: Net) -> None:
    key = net.requester()
    deadline = (net.clock.now.replace(microsecond=0)).isoformat()
    r = net.client.post(
        "/v1/jobs",
        json={
            "bundle_sha256": net.bundle(key),
            "command": ["true"],
            "price_minor": 5,
            "deadline": deadline,
        },
        headers=net.auth(key),
    )
    assert r.status_code == 400
    assert "past" in _error(r)
    soon = (net.clock.now.replace(microsecond=0) + timedelta(seconds=300)).isoformat()
    job = net.submit(key, deadline=soon)
    _, token = net.node()
    [lease] = net.lease(token)
    net.clock.advance(301)
    net.coordinator.sweep()
    expired = net.job(key, job["job_id"])
    assert expired["state"] == "expired"
    assert "deadline" in expired["failure"]
    late = net.upload(token, lease["attempt_id"], RESULT).json()
    assert late["status"] == "rejected" and late["credited_minor"] == 0
    assert (
        net.client.get(f"/v1/jobs/{job['job_id']}/result", headers=net.auth(key)).status_code == 404
    )


def test_max_attempts_fails_the_job(net: Net) -> None:
    key = net.requester()
    job = net.submit(key, max_attempts=2)
    _, a = net.node()
    _, b = net.node()
    for token in (a, b):
        [lease] = net.lease(token)
        r = net.client.post(
            f"/v1/attempts/{lease['attempt_id']}/failure",
            json={"reason": "MemoryError in render.py", "exit_code": 1, "log_tail": "Traceback…"},
            headers=net.auth(token),
        )
        assert r.status_code == 200 and r.json()["state"] == "failed"
        # Reporting it again changes nothing (the agent retries).
        again = net.client.post(
            f"/v1/attempts/{lease['attempt_id']}/failure",
            json={"reason": "x"},
            headers=net.auth(token),
        )
        assert again.status_code == 200
    failed = net.job(key, job["job_id"])
    assert failed["state"] == "failed"
    assert failed["attempts"] == 2
    assert "MemoryError" in failed["failure"]
    _, c = net.node()
    assert net.lease(c) == []


# --- replication ---------------------------------------------------------------------------


def _trust(net: Net, node_id: int) -> int:
    from heatshare.coordinator.models import NodeRow

    with net.coordinator.transaction() as s:
        node = s.get(NodeRow, node_id)
        assert node is not None
        return node.trust


def test_replication_two_matching_results_both_credited(net: Net) -> None:
    key = net.requester()
    job = net.submit(key, replication=2, price_minor=100)
    (a_id, a), (b_id, b) = net.node(), net.node()
    [la] = net.lease(a)
    assert net.lease(a) == []  # one attempt per machine
    [lb] = net.lease(b)
    assert la["job_id"] == lb["job_id"] == job["job_id"]
    first = net.upload(a, la["attempt_id"], RESULT).json()
    assert first["status"] == "pending_validation" and first["credited_minor"] == 0
    assert net.job(key, job["job_id"])["state"] == "validating"
    second = net.upload(b, lb["attempt_id"], RESULT).json()
    assert second["status"] == "accepted" and second["credited_minor"] == 100
    # The first upload, repeated, now gets the settled answer.
    assert net.upload(a, la["attempt_id"], RESULT).json()["status"] == "accepted"
    assert net.earnings(a)["node_balance_minor"] == 100
    assert net.earnings(b)["node_balance_minor"] == 100
    assert (_trust(net, a_id), _trust(net, b_id)) == (1, 1)
    assert net.job(key, job["job_id"])["state"] == "done"


def test_replication_mismatch_is_broken_by_a_third_machine(net: Net) -> None:
    key = net.requester()
    job = net.submit(key, replication=2, price_minor=100)
    (a_id, a), (b_id, b), (c_id, c) = net.node(), net.node(), net.node()
    [la], [lb] = net.lease(a), net.lease(b)
    assert net.lease(c) == []  # two attempts at a time
    net.upload(a, la["attempt_id"], RESULT)
    mismatch = net.upload(b, lb["attempt_id"], OTHER).json()
    assert mismatch["status"] == "pending_validation"
    [lc] = net.lease(c)
    assert lc["job_id"] == job["job_id"]
    assert net.upload(c, lc["attempt_id"], RESULT).json()["status"] == "accepted"
    wrong = net.upload(b, lb["attempt_id"], OTHER).json()
    assert wrong["status"] == "rejected" and wrong["credited_minor"] == 0
    balances = [net.earnings(t)["node_balance_minor"] for t in (a, b, c)]
    assert balances == [100, 0, 100]
    assert [_trust(net, n) for n in (a_id, b_id, c_id)] == [1, -5, 1]
    done = net.job(key, job["job_id"])
    assert done["state"] == "done" and done["result_sha256"] == sha(RESULT)


def test_account_balance_sums_its_nodes(net: Net) -> None:
    account = net.account()
    _, a = net.node(account)
    _, b = net.node(account)
    key = net.requester()
    net.submit(key, price_minor=70)
    net.submit(key, price_minor=30)
    [la], [lb] = net.lease(a), net.lease(b)
    net.upload(a, la["attempt_id"], RESULT)
    net.upload(b, lb["attempt_id"], OTHER)
    ea, eb = net.earnings(a), net.earnings(b)
    assert (ea["node_balance_minor"], eb["node_balance_minor"]) == (70, 30)
    assert ea["account_balance_minor"] == eb["account_balance_minor"] == 100
    assert ea["currency"] == "EUR"


@pytest.mark.parametrize("path", ["/v1/jobs/0", "/v1/jobs/abc", "/v1/jobs/99999999999999999999999"])
def test_bad_ids_are_4xx(net: Net, path: str) -> None:
    r = net.client.get(path, headers=net.auth(net.requester()))
    assert r.status_code in (404, 422)
    _error(r)


def test_odd_but_valid_input_is_taken_not_a_crash(net: Net) -> None:
    """Values the protocol allows but a database column cannot hold as they are."""
    huge = 2**70
    _, token = net.node(
        hostname="nul\x00host",
        memory_bytes=huge,
        gpus=[{"name": "big", "memory_bytes": huge}],
    )
    key = net.requester()
    job = net.submit(key, label="with\x00nul", command=["echo", "a\x00b"])
    assert job["label"] == "withnul"
    for deadline in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        r = net.client.post(
            "/v1/jobs",
            json={"bundle_sha256": job["bundle_sha256"], "command": ["x"], "price_minor": 1,
                  "deadline": deadline},
            headers=net.auth(key),
        )  # fmt: skip
        assert r.status_code == 400, r.text
        _error(r)
    hb = net.client.post(
        "/v1/nodes/me/heartbeat",
        json={"state": "working", "running_attempts": [huge, -1]},
        headers=net.auth(token),
    )
    assert hb.status_code == 200
    assert {c["attempt_id"] for c in hb.json()["commands"]} == {huge, -1}
    [lease] = net.lease(token)
    r = net.client.post(
        f"/v1/attempts/{lease['attempt_id']}/failure",
        json={"reason": "odd\x00", "exit_code": -(2**80)},
        headers=net.auth(token),
    )
    assert r.status_code == 200, r.text
