"""The failure outbox in the job journal, on real SQLite files: a failure and its report are
one commit, the report waits until the network answers it, survives closing the file, and an
older database (schema version 3) gains the outbox without losing anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_journal import T0, make_lease

from heatshare.protocol.coordinator_api import Failure
from heatshare.protocol.local_api import JobPhase
from heatshare.store import schema
from heatshare.store.jobs import Enrolment, JobJournal

REPORT = Failure(reason="The job exited with code 3.", exit_code=3, log_tail="boom\n")


@pytest.fixture
def journal(tmp_path: Path):
    j = JobJournal.open(tmp_path / "heatshare.sqlite3")
    yield j
    j.close()


def test_a_failure_and_its_report_are_journaled_together(journal: JobJournal) -> None:
    journal.add_lease(make_lease(1), network="n", now=T0)
    journal.start_run(1, now=T0 + 1)
    journal.fail(1, REPORT, now=T0 + 5, note="The job exited with code 3.")
    rec = journal.get(1)
    assert rec is not None
    assert (rec.phase, rec.error, rec.finished_at) == (
        JobPhase.FAILED,
        "The job exited with code 3.",
        T0 + 5,
    )
    assert journal.events(1)[-1].phase is JobPhase.FAILED
    pending = journal.pending_failure(1)
    assert pending is not None
    assert (pending.report, pending.network, pending.queued_at, pending.tries) == (
        REPORT,
        "n",
        T0 + 5,
        0,
    )
    assert [p.attempt_id for p in journal.failure_outbox("n")] == [1]
    assert journal.active("n") == []  # a failed attempt is history; only its report waits
    with pytest.raises(KeyError):
        journal.fail(99, REPORT, now=T0, note="no such attempt")
    assert journal.pending_failure(99) is None


def test_reports_wait_oldest_first_per_network_until_settled(journal: JobJournal) -> None:
    for i, network in ((1, "n"), (2, "n"), (3, "other")):
        journal.add_lease(make_lease(i), network=network, now=T0)
    journal.fail(2, REPORT, now=T0 + 10, note="second")
    journal.fail(1, REPORT, now=T0 + 20, note="first")
    journal.fail(3, REPORT, now=T0 + 5, note="elsewhere")
    assert [p.attempt_id for p in journal.failure_outbox("n")] == [2, 1]
    assert [p.attempt_id for p in journal.failure_outbox()] == [3, 2, 1]
    journal.failure_not_sent(2, error="The network cannot be reached.")
    journal.failure_not_sent(2, error="still down")
    pending = journal.pending_failure(2)
    assert pending is not None and (pending.tries, pending.last_error) == (2, "still down")
    assert journal.failure_settled(2, now=T0 + 30, note="failure reported")
    assert not journal.failure_settled(2, now=T0 + 31, note="again")  # nothing left to settle
    assert [p.attempt_id for p in journal.failure_outbox("n")] == [1]
    notes = [e.note for e in journal.events(2)]
    assert notes[-1] == "failure reported" and notes.count("failure reported") == 1
    rec = journal.get(2)
    assert rec is not None and rec.phase is JobPhase.FAILED  # settling is no phase change


def test_a_waiting_report_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "heatshare.sqlite3"
    j = JobJournal.open(path)
    j.add_lease(make_lease(1), network="n", now=T0)
    j.fail(1, REPORT, now=T0 + 1, note="exit 3")
    j.failure_not_sent(1, error="down")
    j.close()
    j = JobJournal.open(path)
    try:
        pending = j.pending_failure(1)
        assert pending is not None and pending.report == REPORT and pending.tries == 1
    finally:
        j.close()


def test_reports_go_with_the_node_that_could_send_them(journal: JobJournal) -> None:
    journal.set_enrolment(Enrolment("http://127.0.0.1:9", 4, 2, "home", "EUR", False, 30, T0))
    journal.add_lease(make_lease(1), network="n", now=T0)
    journal.fail(1, REPORT, now=T0 + 1, note="exit 3")
    # The same node enrolled again (a new coordinator address): its reports stay.
    journal.set_enrolment(Enrolment("http://127.0.0.1:10", 4, 2, "home", "EUR", False, 30, T0))
    assert journal.pending_failure(1) is not None
    # Another node: only the old node's token could send them, and it is gone.
    journal.set_enrolment(Enrolment("http://127.0.0.1:10", 5, 2, "home", "EUR", False, 30, T0))
    assert journal.failure_outbox() == []
    journal.add_lease(make_lease(2), network="n", now=T0)
    journal.fail(2, REPORT, now=T0 + 1, note="exit 3")
    journal.clear_enrolment()  # leaving the network
    assert journal.failure_outbox() == []
    # An attempt id of another network replaces the old attempt and its report.
    journal.add_lease(make_lease(3), network="n", now=T0)
    journal.fail(3, REPORT, now=T0 + 1, note="exit 3")
    journal.add_lease(make_lease(3), network="https://net/node/9", now=T0 + 2)
    assert journal.pending_failure(3) is None


def test_a_version_3_file_gains_the_failure_outbox_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "heatshare.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, path, schema.MIGRATIONS[:3])
    conn.execute("INSERT INTO state (key, value) VALUES ('agent.settings', '{\"a\": 1}')")
    conn.execute(
        "INSERT INTO energy_record VALUES (60000, 'plug', 60000, 61000, 100.0, 100.0, 7, 0)"
    )
    conn.close()
    # Journal rows written by the version-3 code: a failed attempt (its report long gone)
    # and one in the result outbox, with their events, the enrolment and earnings.
    old = sqlite3.connect(path, isolation_level=None)
    j = JobJournal(path, old)  # the v3 tables, written through today's methods, unmigrated
    j.set_enrolment(Enrolment("http://127.0.0.1:9", 4, 2, "home", "EUR", False, 30, T0))
    j.add_lease(make_lease(1), network="n", now=T0)
    j.set_phase(1, JobPhase.FAILED, now=T0 + 1, error="exit 3", finished_at=T0 + 1)
    j.add_lease(make_lease(2), network="n", now=T0 + 2)
    j.set_phase(2, JobPhase.OUTBOX, now=T0 + 3, result_sha256="cd" * 32, result_size=10)
    before = {
        table: old.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("job_attempt", "job_event", "enrolment", "state", "energy_record")
    }
    assert old.execute("PRAGMA user_version").fetchone()[0] == 3
    old.close()

    j = JobJournal.open(path)
    try:
        check = sqlite3.connect(path)
        try:
            assert check.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
            assert len(schema.MIGRATIONS) == 4
            for table, rows in before.items():
                assert check.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() == rows
        finally:
            check.close()
        # Nothing is invented for the old failure (whether it was reported is unknown).
        assert j.failure_outbox() == []
        assert [r.attempt_id for r in j.outbox("n")] == [2]
        j.fail(2, REPORT, now=T0 + 9, note="The job's result was lost on this machine.")
        assert [p.attempt_id for p in j.failure_outbox("n")] == [2]
    finally:
        j.close()
    backup = tmp_path / "heatshare.sqlite3.v3.bak"
    conn = sqlite3.connect(backup)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("SELECT attempt_id, phase FROM job_attempt ORDER BY 1").fetchall() == [
            (1, "failed"),
            (2, "outbox"),
        ]
    finally:
        conn.close()
