"""Opening the database: engine, sessions, migrations, and a clear error when it is unreachable.

SQLite (the default, in the data directory) runs in WAL mode with a busy timeout, so the API
and a `voicebot users` command can use it at once. PostgreSQL is the choice for more than one
node: the queue's claims rely on its row locks (``FOR UPDATE SKIP LOCKED``), which SQLite
does not need because it has one writer at a time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

logger = logging.getLogger("voicebot.store")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Serialises `upgrade` between nodes starting at once on PostgreSQL (any constant works).
_MIGRATION_LOCK_ID = 7_419_283


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or used; the message is meant for the operator."""


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise DatabaseUnavailable(
                f"VOICEBOT_DATABASE_URL is not a database URL: {exc}"
            ) from exc
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+asyncpg")
            self.url = parsed
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        elif self.dialect == "postgresql":
            kwargs.update(pool_size=10, max_overflow=20)
        else:
            raise DatabaseUnavailable(
                f"unsupported database '{self.dialect}': use sqlite+aiosqlite:///path "
                "or postgresql+asyncpg://user@host/db"
            )
        self.engine: AsyncEngine = create_async_engine(parsed, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Writes go through connections marked as writers: on SQLite they take the write lock
        # up front (BEGIN IMMEDIATE); reads begin deferred and go on beside the writer (WAL).
        self._writer = self.engine.execution_options(voicebot_writer=True)
        self.write_sessions = async_sessionmaker(self._writer, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed at the end (rolled back on an exception)."""
        async with self.write_sessions() as session, session.begin():
            yield session

    async def check(self) -> None:
        """One round trip, turned into :class:`DatabaseUnavailable` with a readable reason."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (TimeoutError, OSError, DBAPIError, OperationalError) as exc:
            raise DatabaseUnavailable(
                f"cannot reach the database at {self.describe()}: {_reason(exc)}"
            ) from exc

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration (Alembic), once even with several nodes."""
        await self.check()
        async with self._writer.connect() as connection:
            if self.is_postgres:
                await connection.execute(
                    text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
            try:
                await connection.run_sync(_run_upgrade)
                await connection.commit()
            finally:
                if self.is_postgres:
                    await connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
                    await connection.commit()

    async def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        async with self.engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    async def aclose(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run_upgrade(connection: Any) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while one writer writes; the busy timeout makes a second writer
    # wait instead of failing with "database is locked".
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # aiosqlite's own transaction handling would start transactions lazily (after the first
    # read), which lets two writers both read and then one fail to upgrade its lock. A writer
    # takes the write lock up front (BEGIN IMMEDIATE) and waits its turn instead; a reader's
    # deferred BEGIN never takes it, so reads are not queued behind writes.
    writer = connection.get_execution_options().get("voicebot_writer", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached right now (down, restarting, a
    dropped connection), as opposed to a query that is wrong: worth a 503 and a retry."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, TimeoutError, OperationalError, InterfaceError)):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        module = type(current).__module__
        if module.startswith("asyncpg") and type(current).__name__ in _ASYNCPG_UNAVAILABLE:
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


# asyncpg's errors for a server that is down, starting or stopping, or a lost connection.
_ASYNCPG_UNAVAILABLE = frozenset(
    {
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "AdminShutdownError",
        "CrashShutdownError",
        "InterfaceError",
        "PostgresConnectionError",
        "TooManyConnectionsError",
    }
)


def _reason(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text_ = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return text_ or type(original).__name__


async def open_database(url: str, *, migrate: bool = True) -> Database:
    """The database, checked (and migrated when asked); raises DatabaseUnavailable."""
    database = Database(url)
    try:
        if migrate:
            await database.upgrade()
        else:
            await database.check()
    except DatabaseUnavailable:
        await database.aclose()
        raise
    except (OSError, DBAPIError) as exc:
        await database.aclose()
        raise DatabaseUnavailable(
            f"cannot use the database at {database.describe()}: {_reason(exc)}"
        ) from exc
    return database
