"""Encryption at rest: handoffs.packet and call_reviews.failures become text columns, which
hold the JSON document clear or, with VOICEBOT_ENCRYPTION_KEYS, encrypted
(voicebot/store/encryption.py). Clear documents written before read as they were.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (("handoffs", "packet"), ("call_reviews", "failures"))


def upgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.JSON(),
                type_=sa.Text(),
                existing_nullable=False,
                postgresql_using=f"{column}::text",
            )


def downgrade() -> None:
    # Only clear documents can go back to a JSON column: decrypt first (rotate-key --decrypt
    # is not offered; run with the keys removed only on a database written without them).
    for table, column in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.Text(),
                type_=sa.JSON(),
                existing_nullable=False,
                postgresql_using=f"{column}::json",
            )
