"""The API tests run on SQLite and PostgreSQL, with the queue tests' database fixtures."""

from tests.queues.conftest import db, db_url  # noqa: F401
