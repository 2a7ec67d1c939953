"""Events between nodes: an offer made on one API node reaches the desktop connected to another.

Events are small JSON objects (ids and states, never a packet: the receiving node reads what it
shows from the database), so they fit PostgreSQL's 8000-byte NOTIFY payload. Every node,
including the one that published, receives every event once. Backends:

- ``LocalBus``: in-process, for one node (the SQLite default);
- ``PostgresBus``: LISTEN/NOTIFY on the database the nodes already share;
- ``RedisBus``: Redis pub/sub, when ``VOICEBOT_REDIS_URL`` is set.

A lost listener connection is reopened; events sent while it was down are not replayed, which
the queue service tolerates because its once-a-second sweep re-reads the state it acts on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger("voicebot.queues.events")

Event = dict[str, Any]
Handler = Callable[[Event], None]
CHANNEL = "voicebot_events"


class EventBus(Protocol):
    def subscribe(self, handler: Handler) -> None: ...

    async def start(self) -> None: ...

    async def publish(self, event: Event) -> None: ...

    async def aclose(self) -> None: ...

    def describe(self) -> str: ...


class _Handlers:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def _dispatch(self, event: Event) -> None:
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:
                logger.exception("event handler failed", extra={"detail": event.get("type")})


class LocalBus(_Handlers):
    async def start(self) -> None:
        return None

    async def publish(self, event: Event) -> None:
        # Delivered on the next loop iteration, like a remote event, so a handler never runs
        # in the middle of the publisher's own work.
        asyncio.get_running_loop().call_soon(self._dispatch, dict(event))

    async def aclose(self) -> None:
        return None

    def describe(self) -> str:
        return "in-process"


class PostgresBus(_Handlers):
    """LISTEN/NOTIFY over two dedicated asyncpg connections (one listens, one sends)."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self._listener: Any = None
        self._sender: Any = None
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._listen()
        self._watch = asyncio.create_task(self._keep_listening(), name="pg-events")

    async def _listen(self) -> None:
        import asyncpg

        self._listener = await asyncpg.connect(self.dsn)
        await self._listener.add_listener(CHANNEL, self._on_notify)

    async def _keep_listening(self) -> None:
        while not self._closed:
            await asyncio.sleep(0.5)
            if self._listening():
                continue
            try:
                await self._listen()
                logger.info("event listener reconnected")
            except Exception as exc:
                logger.warning("event listener still down", extra={"detail": str(exc)})

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            logger.warning("dropped an event that is not JSON")
            return
        self._dispatch(event)

    async def publish(self, event: Event) -> None:
        import asyncpg

        payload = json.dumps(event, separators=(",", ":"))
        if not self._listening():
            # This node would not hear its own NOTIFY (the database restarted and the listener
            # is not back yet): its desktops get the event from here.
            asyncio.get_running_loop().call_soon(self._dispatch, dict(event))
        async with self._send_lock:
            for attempt in range(2):
                try:
                    if self._sender is None or self._sender.is_closed():
                        self._sender = await asyncpg.connect(self.dsn)
                    await self._sender.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                    return
                except (OSError, asyncpg.PostgresError) as exc:
                    self._sender = None
                    if attempt:
                        logger.warning("event not sent", extra={"detail": str(exc)})

    def _listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def aclose(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
        for connection in (self._listener, self._sender):
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()

    def describe(self) -> str:
        return "PostgreSQL LISTEN/NOTIFY"


class RedisBus(_Handlers):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._client: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import redis.asyncio as redis

        self._client = redis.from_url(self.url)
        await self._client.ping()
        self._reader = asyncio.create_task(self._read(), name="redis-events")

    async def _read(self) -> None:
        while True:
            try:
                pubsub = self._client.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        event = json.loads(message["data"])
                    except ValueError:
                        continue
                    self._dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("redis event reader reconnecting", extra={"detail": str(exc)})
                await asyncio.sleep(1)

    async def publish(self, event: Event) -> None:
        try:
            await self._client.publish(CHANNEL, json.dumps(event, separators=(",", ":")))
        except Exception as exc:
            # Redis is away: this node's own desktops still get the event (an offer made here
            # reaches the agent connected here); other nodes miss it until Redis is back, and
            # their once-a-second sweep re-reads what they act on.
            logger.warning(
                "event not sent to Redis; delivered on this node only", extra={"detail": str(exc)}
            )
            asyncio.get_running_loop().call_soon(self._dispatch, dict(event))

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._client is not None:
            await self._client.aclose()

    def describe(self) -> str:
        return "Redis pub/sub"


def asyncpg_dsn(sqlalchemy_url: Any) -> str:
    """asyncpg's DSN from the SQLAlchemy URL (without the +asyncpg driver suffix)."""
    return str(sqlalchemy_url.set(drivername="postgresql").render_as_string(hide_password=False))


def bus_for(settings: Any, db: Any) -> EventBus:
    """Redis when configured, else LISTEN/NOTIFY on PostgreSQL, else in-process (SQLite: one
    node)."""
    if settings.redis_url:
        return RedisBus(settings.redis_url)
    if db.is_postgres:
        return PostgresBus(asyncpg_dsn(db.url))
    return LocalBus()
