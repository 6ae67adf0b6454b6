"""Partial indexes for leasing (jobs wanting an attempt, in id order) and deadlines.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_WANTED = "wanted > 0"
_OPEN_DEADLINE = "finished_at IS NULL AND deadline IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_jobs_wanted_id",
        "jobs",
        ["id"],
        sqlite_where=sa.text(_WANTED),
        postgresql_where=sa.text(_WANTED),
    )
    op.create_index(
        "ix_jobs_open_deadline",
        "jobs",
        ["deadline"],
        sqlite_where=sa.text(_OPEN_DEADLINE),
        postgresql_where=sa.text(_OPEN_DEADLINE),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_open_deadline", table_name="jobs")
    op.drop_index("ix_jobs_wanted_id", table_name="jobs")
