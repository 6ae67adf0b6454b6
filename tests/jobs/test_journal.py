"""The job journal on real SQLite files: phases, events, recovery lists, and what survives a
kill -9 in the middle of writing it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heatshare.protocol.coordinator_api import Earnings, Lease, LedgerEntry, Resources
from heatshare.protocol.local_api import JobPhase
from heatshare.store import Store, schema
from heatshare.store.jobs import Enrolment, JobJournal, lease_label

T0 = 1_800_000_000.0
SHA = "ab" * 32


def make_lease(attempt_id: int, job_id: int = 7, *, label: str = "") -> Lease:
    return Lease(
        attempt_id=attempt_id,
        job_id=job_id,
        bundle_sha256=SHA,
        bundle_size=100,
        bundle_url=f"/v1/bundles/{SHA}",
        command=["python3", "run.py"],
        resources=Resources(),
        price_minor=250,
        currency="CRD",
        lease_expires_at=datetime.fromtimestamp(T0, tz=UTC) + timedelta(minutes=5),
        lease_s=300,
        label=label,
    )


@pytest.fixture
def journal(tmp_path: Path):
    j = JobJournal.open(tmp_path / "heatshare.sqlite3")
    yield j
    j.close()


def test_a_lease_is_journaled_with_its_lease_and_an_event(journal: JobJournal) -> None:
    journal.add_lease(make_lease(1, label="tile 3"), network="n", label="tile 3", now=T0)
    rec = journal.get(1)
    assert rec is not None
    assert (rec.phase, rec.job_id, rec.label, rec.network) == (JobPhase.LEASED, 7, "tile 3", "n")
    assert rec.lease == make_lease(1, label="tile 3")
    assert [(e.phase, e.note) for e in journal.events(1)] == [(JobPhase.LEASED, "job 7")]
    # The same lease again adds nothing.
    journal.add_lease(make_lease(1), network="n", now=T0 + 1)
    assert len(journal.events(1)) == 1
    assert journal.get(1) == rec


def test_phases_runs_time_and_energy_add_up_over_resumes(journal: JobJournal) -> None:
    journal.add_lease(make_lease(1), network="n", now=T0)
    journal.set_phase(1, JobPhase.DOWNLOADING, now=T0 + 1)
    journal.start_run(1, now=T0 + 2)
    journal.update(1, now=T0 + 3, progress=0.25, progress_message="tile 1")
    journal.add_run_time(1, seconds=10.0, energy_j=500.0, now=T0 + 12)
    journal.start_run(1, now=T0 + 20)  # after a restart
    journal.add_run_time(1, seconds=5.0, energy_j=None, now=T0 + 25)  # energy unknown
    journal.add_run_time(1, seconds=1.0, energy_j=100.0, now=T0 + 26)
    rec = journal.get(1)
    assert rec is not None
    assert rec.phase is JobPhase.RUNNING
    assert rec.runs == 2
    assert rec.started_at == T0 + 2  # the first start
    assert rec.elapsed_s == 16.0
    assert rec.energy_j == 600.0
    assert (rec.progress, rec.progress_message) == (0.25, "tile 1")
    assert [e.note for e in journal.events(1)] == [
        "job 7",
        "",
        "started",
        "restarted (start 2)",
    ]


def test_unknown_columns_and_attempts_are_refused(journal: JobJournal) -> None:
    journal.add_lease(make_lease(1), network="n", now=T0)
    with pytest.raises(ValueError, match="not journal columns"):
        journal.set_phase(1, JobPhase.DONE, now=T0, network="x")
    with pytest.raises(ValueError, match="not journal columns"):
        journal.update(1, now=T0, lease_json="{}")
    with pytest.raises(KeyError):
        journal.set_phase(2, JobPhase.DONE, now=T0)


def test_active_outbox_and_recent_lists(journal: JobJournal) -> None:
    for i in range(1, 6):
        journal.add_lease(make_lease(i), network="n", now=T0 + i)
    journal.add_lease(make_lease(9), network="other", now=T0)
    journal.set_phase(1, JobPhase.OUTBOX, now=T0 + 50, finished_at=T0 + 40)
    journal.set_phase(2, JobPhase.OUTBOX, now=T0 + 50, finished_at=T0 + 30)
    journal.set_phase(3, JobPhase.DONE, now=T0 + 60, finished_at=T0 + 60, credited_minor=250)
    journal.set_phase(4, JobPhase.FAILED, now=T0 + 70, finished_at=T0 + 70, error="boom")
    assert [r.attempt_id for r in journal.active("n")] == [1, 2, 5]
    assert [r.attempt_id for r in journal.active()] == [9, 1, 2, 5]
    assert [r.attempt_id for r in journal.outbox("n")] == [2, 1]  # oldest result first
    assert [r.attempt_id for r in journal.recent(10)] == [4, 3]
    assert [r.attempt_id for r in journal.recent(1)] == [4]
    rec = journal.get(3)
    assert rec is not None and rec.credited_minor == 250 and not rec.active


def test_an_attempt_id_from_another_network_replaces_the_old_row(journal: JobJournal) -> None:
    journal.add_lease(make_lease(1, job_id=1), network="demo/node/1", now=T0)
    journal.set_phase(1, JobPhase.DONE, now=T0 + 1)
    journal.add_lease(make_lease(1, job_id=2), network="https://net/node/4", now=T0 + 2)
    rec = journal.get(1)
    assert rec is not None and rec.job_id == 2 and rec.phase is JobPhase.LEASED
    assert [e.note for e in journal.events(1)] == ["job 2"]


def test_everything_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "heatshare.sqlite3"
    j = JobJournal.open(path)
    j.add_lease(make_lease(1), network="n", now=T0)
    j.start_run(1, now=T0 + 1)
    e = Enrolment("http://127.0.0.1:9", 4, 2, "home", "EUR", False, 30, T0)
    j.set_enrolment(e)
    ern = Earnings(
        node_id=4,
        account_id=2,
        currency="EUR",
        node_balance_minor=250,
        account_balance_minor=900,
        entries=[
            LedgerEntry(
                entry_id=1, at=datetime.fromtimestamp(T0, tz=UTC), amount_minor=250, kind="credit"
            )
        ],
    )
    j.cache_earnings(ern, as_of=T0 + 5)
    j.close()
    j = JobJournal.open(path)
    try:
        rec = j.get(1)
        assert rec is not None and rec.phase is JobPhase.RUNNING and rec.runs == 1
        assert j.enrolment() == e
        cached = j.cached_earnings()
        assert cached is not None and cached.earnings == ern and cached.as_of == T0 + 5
        # Another node forgets the earnings of the old one; leaving forgets both.
        j.set_enrolment(Enrolment("http://127.0.0.1:9", 5, 2, "home", "EUR", False, 30, T0))
        assert j.cached_earnings() is None
        j.clear_enrolment()
        assert j.enrolment() is None
    finally:
        j.close()


def test_the_journal_shares_the_history_file_and_migrates_a_v1_file_with_a_copy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "heatshare.sqlite3"
    conn = sqlite3.connect(path)
    for statement in schema.MIGRATIONS[0].statements:
        conn.execute(statement)
    conn.execute("INSERT INTO state VALUES ('k', 'v')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store.open(path, now=T0) as store:  # the agent opens the store first
        assert store.get_state("k") == "v"
        j = JobJournal.open(path)
        j.add_lease(make_lease(1), network="n", now=T0)
        store.set_state("k", "w")
        j.close()
    bak = tmp_path / "heatshare.sqlite3.v1.bak"
    conn = sqlite3.connect(bak)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT value FROM state").fetchall() == [("v",)]
    finally:
        conn.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS) == 4
        assert conn.execute("SELECT phase FROM job_attempt").fetchall() == [("leased",)]
    finally:
        conn.close()


def test_labels_come_from_the_requester_else_the_command() -> None:
    assert lease_label(make_lease(1, label="  Mandelbrot tile 3 ")) == "Mandelbrot tile 3"
    assert lease_label(make_lease(1)) == "python3 run.py"


_WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime, timedelta
    from heatshare.protocol.coordinator_api import Lease, Resources
    from heatshare.protocol.local_api import JobPhase
    from heatshare.store.jobs import JobJournal

    j = JobJournal.open(sys.argv[1])
    phases = [JobPhase.DOWNLOADING, JobPhase.RUNNING, JobPhase.UPLOADING, JobPhase.OUTBOX,
              JobPhase.DONE]
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        lease = Lease(attempt_id=i, job_id=i, bundle_sha256="ab" * 32, bundle_size=1,
                      bundle_url="/b", command=["true"], resources=Resources(), price_minor=1,
                      currency="CRD", lease_expires_at=datetime.now(UTC), lease_s=60)
        j.add_lease(lease, network="n", now=time.time())
        for p in phases:
            j.set_phase(i, p, now=time.time(), note=p.value)
    """
)


def test_a_kill_9_mid_write_leaves_every_attempt_at_a_whole_step(tmp_path: Path) -> None:
    """A process journaling as fast as it can is killed; each row and its events agree."""
    path = tmp_path / "heatshare.sqlite3"
    JobJournal.open(path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    j = JobJournal.open(path)
    try:
        rows = j.active() + j.recent(100_000)
        assert len(rows) > 5  # it got somewhere
        for rec in rows:
            events = j.events(rec.attempt_id)
            # The row's phase is the last event's: a step and its event commit together.
            assert events[-1].phase is rec.phase
            assert len(events) == 1 + [
                JobPhase.LEASED,
                JobPhase.DOWNLOADING,
                JobPhase.RUNNING,
                JobPhase.UPLOADING,
                JobPhase.OUTBOX,
                JobPhase.DONE,
            ].index(rec.phase)
        # Every attempt but the last is finished.
        assert len(j.active()) <= 1
    finally:
        j.close()
