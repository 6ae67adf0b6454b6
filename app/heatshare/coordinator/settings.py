"""The coordinator's settings: one frozen object the composition root builds and passes in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from heatshare.protocol.coordinator_api import MAX_BUNDLE_BYTES, MAX_RESULT_BYTES


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Settings:
    """How one coordinator app server behaves; all state lives in the database and blob store.

    Attributes:
        db_url: SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://…``).
        blob_dir: folder of content-addressed bundles and results (shared by all app servers).
        currency: the network's currency: fixed in the database the first time; None takes
            the database's (EUR for a new one); another than the database's is refused.
        lease_s: how long a lease lasts without progress.
        max_in_progress_per_node: leases one node may hold at once.
        heartbeat_interval_s: what nodes are told to use.
        sweep_interval_s: how often expired leases and deadlines are settled in the background.
        clock: the time source (tests pass a settable one).
    """

    db_url: str
    blob_dir: Path
    currency: str | None = None
    lease_s: int = 120
    max_in_progress_per_node: int = 2
    heartbeat_interval_s: int = 30
    sweep_interval_s: float = 15.0
    retry_after_s: int = 10
    max_bundle_bytes: int = MAX_BUNDLE_BYTES
    max_result_bytes: int = MAX_RESULT_BYTES
    clock: Callable[[], datetime] = field(default=utc_now)
