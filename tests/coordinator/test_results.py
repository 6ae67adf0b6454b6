"""Where a result's bytes go, and writes taken in batches: SQLite and PostgreSQL alike.

Results up to ``SMALL_BLOB_BYTES`` are kept in the database with their record; larger ones
are files in the blob folder. Leases, results, failures and progress are written in batches
(one transaction for whatever is queued); a refused or failing item fails alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest
from coordinator_net import Net, sha
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from heatshare.coordinator import service
from heatshare.coordinator.app import SMALL_BLOB_BYTES
from heatshare.coordinator.models import SmallBlobRow
from heatshare.coordinator.service import RefusedError


def _small_blobs(net: Net) -> int:
    with net.coordinator.reading() as s:
        return int(s.scalar(select(func.count()).select_from(SmallBlobRow)) or 0)


def _blob_files(net: Net) -> list[str]:
    root = net.coordinator.blobs.root
    return sorted(
        f.name for folder in root.iterdir() if folder.name != "tmp" for f in folder.iterdir()
    )


def test_a_small_result_is_kept_in_the_database_and_downloaded(net: Net) -> None:
    key = net.requester()
    job = net.submit(key)
    files_before = _blob_files(net)  # the bundle
    _, token = net.node()
    [lease] = net.lease(token)
    result = b"small result " * 10
    r = net.upload(token, lease["attempt_id"], result)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    assert _small_blobs(net) == 1
    assert _blob_files(net) == files_before  # no file for it
    got = net.client.get(f"/v1/jobs/{job['job_id']}/result", headers=net.auth(key))
    assert got.status_code == 200
    assert got.content == result
    assert got.headers["x-heatshare-sha256"] == sha(result)


def test_a_large_result_is_a_file_and_downloaded(net: Net) -> None:
    key = net.requester()
    job = net.submit(key)
    _, token = net.node()
    [lease] = net.lease(token)
    # Not compressible, larger than what the database keeps.
    result = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(3000))
    assert len(result) > SMALL_BLOB_BYTES
    r = net.upload(token, lease["attempt_id"], result)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    assert _small_blobs(net) == 0
    assert sha(result) in _blob_files(net)
    got = net.client.get(f"/v1/jobs/{job['job_id']}/result", headers=net.auth(key))
    assert got.status_code == 200
    assert got.content == result


@pytest.mark.parametrize("size", [100, SMALL_BLOB_BYTES + 1000])
def test_a_refused_result_keeps_nothing(net: Net, size: int) -> None:
    key = net.requester()
    net.submit(key)
    _, token = net.node()
    _, stranger = net.node()
    [lease] = net.lease(token)
    files_before = _blob_files(net)
    result = os.urandom(size)
    # Another node's attempt: 404, as for an unknown one.
    r = net.upload(stranger, lease["attempt_id"], result)
    assert r.status_code == 404, r.text
    # Damaged on the way: 400.
    r = net.client.put(
        f"/v1/attempts/{lease['attempt_id']}/result",
        content=result,
        headers={**net.auth(token), "X-Heatshare-Sha256": sha(b"something else")},
    )
    assert r.status_code == 400, r.text
    assert "sha256" in r.json()["error"]
    assert _small_blobs(net) == 0
    assert _blob_files(net) == files_before
    assert not list((net.coordinator.blobs.root / "tmp").iterdir())


def test_one_failing_write_in_a_batch_fails_alone(net: Net) -> None:
    """Three writes queued together: one refused, one crashing after it wrote, one fine."""
    now = net.clock()

    def fine(conn: Connection) -> str:
        service.keep_small_blob(conn, "a" * 64, b"kept", now)
        return "ok"

    def crashes(conn: Connection) -> str:
        service.keep_small_blob(conn, "b" * 64, b"rolled back", now)
        raise ValueError("a bug")

    def refused(conn: Connection) -> str:
        raise RefusedError(409, "No.")

    async def together() -> tuple[str | BaseException, ...]:
        writes = net.coordinator.writes
        return await asyncio.gather(
            writes.run(fine), writes.run(crashes), writes.run(refused), return_exceptions=True
        )

    ok, crashed, no = asyncio.run(together())
    assert ok == "ok"
    assert isinstance(crashed, ValueError)
    assert isinstance(no, RefusedError) and no.status == 409
    with net.coordinator.reading() as s:
        assert service.small_blob(s, "a" * 64) == b"kept"
        assert service.small_blob(s, "b" * 64) is None


def test_statistics_are_refreshed_after_a_burst_of_jobs(net: Net) -> None:
    """PostgreSQL: the lease query's tables are ANALYZEd once they changed much; SQLite: never.

    The server's own background check (every few seconds) may come first; either way the
    table is analysed (not by autovacuum: PostgreSQL's ``last_analyze``), and then is fresh.
    """
    key = net.requester()
    bundle = net.bundle(key)
    for _ in range(520):  # over the threshold of 500 changed rows
        net.submit(key, bundle)
    if net.coordinator.engine.dialect.name != "postgresql":
        with net.coordinator.connection() as conn:
            assert service.refresh_statistics(conn) == []
        return
    last_analyze = text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'jobs'")
    deadline = time.monotonic() + 15
    while True:
        with net.coordinator.connection() as conn:
            analyzed = service.refresh_statistics(conn)
            done = analyzed == ["jobs"] or conn.scalar(last_analyze) is not None
        # PostgreSQL counts changed rows a moment after they are committed.
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done
    with net.coordinator.connection() as conn:
        assert service.refresh_statistics(conn) == []
