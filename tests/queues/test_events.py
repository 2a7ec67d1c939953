"""The event buses between nodes, on the real servers: every node hears every event once,
including the one that sent it; a dropped PostgreSQL listener comes back."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from voicebot.queues.events import CHANNEL, Event, EventBus, LocalBus, PostgresBus, RedisBus

REDIS = os.environ.get("VOICEBOT_TEST_REDIS", "redis://127.0.0.1:6379/0")


def received(buses: list[EventBus]) -> list[list[Event]]:
    inboxes: list[list[Event]] = [[] for _ in buses]
    for bus, inbox in zip(buses, inboxes, strict=True):
        bus.subscribe(inbox.append)
    return inboxes


async def wait_for(inboxes: list[list[Event]], count: int, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while any(len(inbox) < count for inbox in inboxes):
        assert asyncio.get_running_loop().time() < deadline, inboxes
        await asyncio.sleep(0.01)


def make(kind: str, url: str | None) -> EventBus:
    if kind == "postgres":
        assert url is not None
        return PostgresBus(url.replace("postgresql+asyncpg://", "postgresql://"))
    if kind == "redis":
        return RedisBus(REDIS)
    return LocalBus()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_two_nodes_hear_every_event_once(kind: str, pg_url: str) -> None:
    nodes = [make(kind, pg_url), make(kind, pg_url)]
    inboxes = received(nodes)
    for node in nodes:
        await node.start()
    try:
        await asyncio.sleep(0.1)  # subscriptions are live before the first publish
        await nodes[0].publish({"type": "offer", "entry_id": "e1", "agent_id": 1})
        await nodes[1].publish({"type": "queue_changed", "queue": "general"})
        await nodes[1].publish({"type": "agent_state", "agent_id": 2, "state": "away"})
        await wait_for(inboxes, 3)
        await asyncio.sleep(0.1)
        for inbox in inboxes:
            assert [e["type"] for e in inbox] == ["offer", "queue_changed", "agent_state"]
    finally:
        for node in nodes:
            await node.aclose()


async def test_a_dropped_postgres_listener_reconnects(pg_url: str) -> None:
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    node, other = PostgresBus(dsn), PostgresBus(dsn)
    inbox: list[Event] = []
    node.subscribe(inbox.append)
    await node.start()
    await other.start()
    try:
        listener: Any = node._listener
        await listener.close()  # as a restarted database or a network blip would
        deadline = asyncio.get_running_loop().time() + 10
        while not inbox:
            assert asyncio.get_running_loop().time() < deadline, "listener did not come back"
            await other.publish({"type": "ping"})
            await asyncio.sleep(0.2)
        assert inbox[0]["type"] == "ping"
    finally:
        await node.aclose()
        await other.aclose()


async def test_local_bus_delivers_after_the_publisher_returns() -> None:
    bus = LocalBus()
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(e["type"]))
    await bus.publish({"type": "x"})
    assert seen == []  # not in the middle of the publisher's work
    await asyncio.sleep(0)
    assert seen == ["x"]
    assert CHANNEL == "voicebot_events"
