"""PostgreSQL connections are not pinged on every use, yet a dropped idle one is never used."""

from __future__ import annotations

import pytest
from coordinator_net import PgCluster
from sqlalchemy import text

from heatshare.coordinator import db


def test_a_connection_dropped_while_idle_is_replaced_unseen(
    pg_cluster: PgCluster, pg_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_cluster.url(pg_cluster.create_database(template=pg_template))
    engine = db.make_engine(url)
    admin = db.make_engine(url)
    try:
        with engine.connect() as connection:
            pid = connection.scalar(text("SELECT pg_backend_pid()"))
        with admin.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        # Used again at once, it would not be tried; as if it had been idle long, it is.
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        engine.dispose()
        admin.dispose()
