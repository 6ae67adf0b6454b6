"""The job life through the HTTP API, on SQLite and PostgreSQL: enrol, lease, result, credit."""

from __future__ import annotations

from coordinator_net import Net, sha, targz


def test_enrol_lease_upload_credit_once(net: Net) -> None:
    account = net.account("Ada's house")
    _, token = net.node(account)
    key = net.requester()
    job = net.submit(key, price_minor=300, label="tile 3")
    assert job["state"] == "queued"

    [lease] = net.lease(token)
    assert lease["job_id"] == job["job_id"]
    assert lease["price_minor"] == 300 and lease["currency"] == "EUR"
    bundle = net.client.get(lease["bundle_url"], headers=net.auth(token))
    assert bundle.status_code == 200
    assert sha(bundle.content) == lease["bundle_sha256"]
    assert net.job(key, job["job_id"])["state"] == "running"

    result = targz({"out/tile.png": b"\x89PNG..."})
    r = net.upload(token, lease["attempt_id"], result)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    assert r.json()["credited_minor"] == 300
    again = net.upload(token, lease["attempt_id"], result)
    assert again.status_code == 200
    assert again.json() == r.json()

    earned = net.earnings(token)
    assert earned["node_balance_minor"] == 300
    assert earned["account_balance_minor"] == 300
    assert [e["amount_minor"] for e in earned["entries"]] == [300]
    assert earned["entries"][0]["attempt_id"] == lease["attempt_id"]

    done = net.job(key, job["job_id"])
    assert done["state"] == "done"
    assert done["result_sha256"] == sha(result)
    fetched = net.client.get(f"/v1/jobs/{job['job_id']}/result", headers=net.auth(key))
    assert fetched.status_code == 200
    assert fetched.content == result
