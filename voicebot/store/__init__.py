"""The database: calls, turns, handoffs, queue entries, agents, callbacks, audit (SQLAlchemy 2,
async; SQLite by default, PostgreSQL for several nodes; Alembic migrations)."""

from voicebot.store.db import Database, DatabaseUnavailable, open_database

__all__ = ["Database", "DatabaseUnavailable", "open_database"]
