"""Nodes can be revoked by the operator: when, or NULL while the node is in the network.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 11:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import heatshare.coordinator.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A nullable column with no default: a plain ALTER TABLE ADD COLUMN on both databases
    # (no table copy on SQLite, no rewrite on PostgreSQL).
    op.add_column(
        "nodes",
        sa.Column("revoked_at", heatshare.coordinator.db.UtcDateTime(), nullable=True),
    )


def downgrade() -> None:
    # The same statement on both (SQLite since 3.35): batch mode's copy of the table would
    # have to drop "nodes", which the foreign keys of attempts and the ledger refuse.
    op.execute("ALTER TABLE nodes DROP COLUMN revoked_at")
