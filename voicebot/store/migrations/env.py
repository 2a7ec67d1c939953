"""Alembic environment: runs on the connection the application hands over (see db.upgrade),
so migrations use the same URL, driver and SQLite settings as the app."""

from __future__ import annotations

from alembic import context

from voicebot.store.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `voicebot db upgrade` (it supplies the connection)")
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
