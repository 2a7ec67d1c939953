"""Databases for the history tests (SQLite and PostgreSQL, as the queue tests) and the real
API server of the security tests."""

from __future__ import annotations

from tests.queues.conftest import db, db_url
from tests.security.conftest import serve

__all__ = ["db", "db_url", "serve"]
