"""Small blobs (most results) kept in the database, not as files.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import heatshare.coordinator.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "small_blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", heatshare.coordinator.db.UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("small_blobs")
