"""Channels and languages: a customer identity on calls (one history across phone, chat and
messaging), the medium and language of a queue entry, and an agent's chat capacity.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_calls_customer_id"), ["customer_id"], unique=False)
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        # Entries queued before this revision were all voice calls.
        batch_op.add_column(
            sa.Column("media", sa.String(length=16), nullable=False, server_default="voice")
        )
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_chats", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("max_chats")
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("media")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_customer_id"))
        batch_op.drop_column("customer_id")
