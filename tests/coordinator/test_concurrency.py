"""Many machines leasing at once never get the same job: SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from coordinator_net import LiveServer, Net, make_settings, sha, targz
from sqlalchemy import func, select

from heatshare.coordinator import db, service
from heatshare.coordinator.app import create_app
from heatshare.coordinator.models import AttemptRow, LedgerRow, NodeRow
from heatshare.protocol.coordinator_api import SHA256_HEADER

NODES = 12
JOBS = 60
PRICE = 7


def test_concurrent_lease_and_complete_over_http(net: Net, db_url: str, tmp_path: Path) -> None:
    """Half the machines talk to a second app server on the same database and blob folder."""
    second = create_app(make_settings(db_url, tmp_path / "blobs", net.clock), sweeper=False)
    with LiveServer(second) as server:
        _lease_and_complete(net, [str(net.client.base_url), server.url])


def _lease_and_complete(net: Net, urls: list[str]) -> None:
    key = net.requester()
    bundle = net.bundle(key)
    for i in range(JOBS):
        net.submit(key, bundle, price_minor=PRICE, label=f"job {i}")
    tokens = [net.node()[1] for _ in range(NODES)]
    start = threading.Barrier(NODES)
    result = targz({"out/r": b"same"})

    def work(n: int) -> list[int]:
        leased: list[int] = []
        headers = net.auth(tokens[n])
        with httpx.Client(base_url=urls[n % len(urls)], timeout=60) as client:
            start.wait()
            while True:
                r = client.post("/v1/leases", json={"max_jobs": 2}, headers=headers)
                assert r.status_code == 200, r.text
                leases = r.json()["leases"]
                if not leases:
                    return leased
                for lease in leases:
                    leased.append(lease["job_id"])
                    up = client.put(
                        f"/v1/attempts/{lease['attempt_id']}/result",
                        content=result,
                        headers={**headers, SHA256_HEADER: sha(result)},
                    )
                    assert up.status_code == 200, up.text
                    assert up.json()["status"] == "accepted"

    with ThreadPoolExecutor(NODES) as pool:
        per_node = list(pool.map(work, range(NODES)))

    counts = Counter(job for jobs in per_node for job in jobs)
    assert len(counts) == JOBS
    assert max(counts.values()) == 1, "a job was leased twice"
    assert sum(net.earnings(t)["node_balance_minor"] for t in tokens) == JOBS * PRICE
    with net.coordinator.transaction() as s:
        assert s.scalar(select(func.count(LedgerRow.id))) == JOBS


def test_a_burst_of_simultaneous_leases_in_the_service(net: Net) -> None:
    """Every thread leases at the same instant, each in its own transaction."""
    key = net.requester()
    bundle = net.bundle(key)
    jobs = 30
    for _ in range(jobs):
        net.submit(key, bundle)
    threads = 24
    node_ids = [net.node()[0] for _ in range(threads)]
    coordinator = net.coordinator
    start = threading.Barrier(threads)

    def lease(node_id: int) -> list[int]:
        start.wait()
        with db.transaction(coordinator.sessions) as s:
            got = service.lease(s, node_id, 2, coordinator.now(), coordinator.settings)
        return [lease.job_id for lease in got.leases]

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lease, node_ids))
    counts = Counter(job for got in results for job in got)
    assert max(counts.values()) == 1, "a job was leased twice"
    assert sum(counts.values()) == jobs  # 24 nodes x 2 > 30 jobs: all leased, none twice
    with coordinator.transaction() as s:
        per_node = s.execute(
            select(AttemptRow.node_id, func.count(AttemptRow.id)).group_by(AttemptRow.node_id)
        ).all()
        assert all(n <= 2 for _, n in per_node)
        assert s.scalar(select(func.count(NodeRow.id))) == threads
