"""Databases for the queue tests: every store test runs on SQLite and on PostgreSQL.

PostgreSQL is the machine's server (127.0.0.1:5432, trust auth; `.ci/run` starts it). Each test
gets a database of its own, created from `test` and dropped afterwards, so tests never see each
other's rows and a failed run leaves nothing behind that a later one trips over. The databases
are made by tests/queues/servers.py, which the screen-pop benchmark uses too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.queues.servers import pg_database
from voicebot.store.db import Database, open_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}"
        return
    async with pg_database() as url:
        yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL database only: for what SQLite cannot do (several nodes, LISTEN/NOTIFY)."""
    async with pg_database() as url:
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await open_database(db_url)
    try:
        yield database
    finally:
        await database.aclose()
