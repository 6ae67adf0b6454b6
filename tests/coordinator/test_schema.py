"""Migrations: they build exactly the tables of models.py, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from coordinator_net import PgCluster
from sqlalchemy import inspect

from heatshare.coordinator import db
from heatshare.coordinator.app import Coordinator
from heatshare.coordinator.models import Base
from heatshare.coordinator.service import RefusedError
from heatshare.coordinator.settings import Settings


def _head() -> str | None:
    return ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def test_migrations_match_the_models_and_rerun_as_no_ops(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        db.migrate(engine)  # the fixture's database is at head already: nothing to do
        assert db.current_revision(engine) == _head()
        with engine.connect() as connection:
            diff = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
            )
            tables = set(inspect(connection).get_table_names())
        assert diff == []
        assert {"accounts", "nodes", "jobs", "attempts", "ledger"} <= tables
        uniques = inspect(engine).get_unique_constraints("ledger")
        assert ["attempt_id", "kind"] in [u["column_names"] for u in uniques]
    finally:
        engine.dispose()


def test_servers_starting_together_migrate_once(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url(pg_cluster.create_database())
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def migrate() -> None:
        engine = db.make_engine(url)
        try:
            start.wait()
            db.migrate(engine)
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    engine = db.make_engine(url)
    try:
        assert db.current_revision(engine) == _head()
    finally:
        engine.dispose()


def test_the_network_currency_is_fixed_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"

    def start(currency: str | None) -> str:
        coordinator = Coordinator(Settings(db_url=url, blob_dir=tmp_path / "b", currency=currency))
        coordinator.close()
        return coordinator.currency

    assert start("crd") == "CRD"
    assert start(None) == "CRD"
    with pytest.raises(RefusedError, match="currency is CRD; it cannot change to EUR"):
        start("EUR")


def test_sqlite_url_without_a_file_is_refused() -> None:
    with pytest.raises(ValueError, match="SQLite file"):
        db.make_engine("sqlite://")


def test_an_older_database_is_upgraded_in_place(tmp_path: Path) -> None:
    from alembic import command

    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        with engine.begin() as connection:
            command.upgrade(db.alembic_config(connection), "0001")
        assert db.current_revision(engine) == "0001"
        db.migrate(engine)
        assert db.current_revision(engine) == _head()
        indexes = {i["name"] for i in inspect(engine).get_indexes("jobs")}
        assert {"ix_jobs_wanted_id", "ix_jobs_open_deadline"} <= indexes
    finally:
        engine.dispose()
