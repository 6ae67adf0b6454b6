"""Fixtures of the coordinator's tests: a real SQLite file and a real PostgreSQL server.

``db_url`` is parametrised over both databases, so every API test runs on each. PostgreSQL
is a private cluster (initdb + pg_ctl from /usr/lib/postgresql/*/bin) started once per
session in a temporary folder, listening only on a unix socket there; each test gets a
fresh database in it. Without PostgreSQL these tests fail, unless HEATSHARE_SKIP_POSTGRES=1.

Helpers live in ``coordinator_net`` (not here), so test modules import them by a name no
other test folder uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from coordinator_net import (
    SKIP_ENV,
    Clock,
    LiveServer,
    Net,
    PgCluster,
    as_owner,
    free_port,
    make_settings,
    pg_bin,
)

from heatshare.coordinator import db
from heatshare.coordinator.app import create_app


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = pg_bin()
    if bin_dir is None:
        message = (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): install the "
            "'postgresql' package (scripts/system-deps.sh test does), or set "
            f"{SKIP_ENV}=1 to skip the PostgreSQL runs of the coordinator tests."
        )
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="heatshare-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    cluster = PgCluster(bin_dir, root, port)
    data = root / "data"
    try:
        cluster.run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = f"-p {port} -k {root} -c listen_addresses='' -c fsync=off -c max_connections=200"
        cluster.run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "start",
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr or exc.stdout}", pytrace=False)
    try:
        yield cluster
    finally:
        subprocess.run(
            [*as_owner(), str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A database migrated once; each test's database is a copy (much quicker than migrating)."""
    name = pg_cluster.create_database()
    _migrate(pg_cluster.url(name))
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "coordinator.sqlite"
    _migrate(f"sqlite:///{path}")
    return path


def _migrate(url: str) -> None:
    engine = db.make_engine(url)
    try:
        db.migrate(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database at the newest schema, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "coordinator.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.url(cluster.create_database(template=request.getfixturevalue("pg_template")))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**overrides): coordinator Settings fields for the `net` fixture"
    )


@pytest.fixture
def net(request: pytest.FixtureRequest, db_url: str, tmp_path: Path, clock: Clock) -> Iterator[Net]:
    marker = request.node.get_closest_marker("settings")
    overrides = marker.kwargs if marker else {}
    app = create_app(make_settings(db_url, tmp_path / "blobs", clock, **overrides), sweeper=False)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield Net(client, app.state.coordinator, clock)
