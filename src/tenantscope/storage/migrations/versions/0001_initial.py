"""Tenant configuration and price overrides.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(1024), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("tier", sa.String(200), nullable=False, server_default=""),
        sa.Column("sla_p95_ms", sa.Integer(), nullable=True),
        sa.Column("rate_limit_rpm", sa.Integer(), nullable=True),
        # Money as decimal text: exact on every backend (SQLite has no exact numeric).
        sa.Column("monthly_budget_usd", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "price_overrides",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(200), nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_mtok", sa.String(64), nullable=True),
        sa.Column("output_mtok", sa.String(64), nullable=True),
        sa.Column("cache_read_mtok", sa.String(64), nullable=True),
        sa.Column("cache_write_mtok", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("extra", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_price_overrides_model_effective", "price_overrides", ["model", "effective_from"]
    )


def downgrade() -> None:
    op.drop_index("ix_price_overrides_model_effective", table_name="price_overrides")
    op.drop_table("price_overrides")
    op.drop_table("tenants")
