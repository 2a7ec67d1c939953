"""The quality tests use the queue tests' databases: each test runs on SQLite and PostgreSQL."""

from tests.queues.conftest import db, db_url, pg_url  # noqa: F401
