"""Redis (the event bus between nodes) goes away and comes back: the node keeps serving.

A real API node runs with ``VOICEBOT_REDIS_URL`` pointing at a ``redis-server`` the test starts
on a free port, with two agents on their desktops taking every call. The test listens on the
event channel itself, so it sees what the node publishes through Redis. Then Redis is killed
(SIGKILL): the node answers ``/health`` and queues handoffs, and its offers still reach its own
agents (events are delivered on the node while Redis is away: voicebot/queues/events.py). Redis
is started again on the same port: the node subscribes again (Redis counts its subscriber) and
its events go through Redis once more. No request or task fails unhandled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from tests.queues.packets import make_packet
from tests.queues.servers import (
    Node,
    ResilientDesk,
    free_port,
    sign_in_agents,
    start_node,
    stop_nodes,
    stop_processes,
    wait_healthy,
)
from voicebot.queues.events import CHANNEL

pytestmark = pytest.mark.timeout(180)

TOKEN = "redis-gone-" + uuid.uuid4().hex
PASSWORD = "redis-gone-password"
UNHANDLED = ("Exception in ASGI application", "exception was never retrieved", '" 500')


class RedisServer:
    def __init__(self, port: int, work: Path) -> None:
        self.port = port
        self.work = work
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: ASYNC220 (returns at once; nothing to wait on)
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.work)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.from_url(self.url)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    await client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: gone without a goodbye, connections reset
        self.process.wait()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install.sh installs it)")
    server = RedisServer(free_port(), tmp_path)
    await server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            stop_processes([server.process])


class Listener:
    """The event channel as the test hears it, through a Redis connection of its own."""

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        self.task: asyncio.Task[None] | None = None

    async def run(self, url: str) -> None:
        while True:
            client = redis.from_url(url)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.events.append(json.loads(message["data"]))
            except redis.ConnectionError:
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()


async def wait_for(condition, within: float, what, node: Node) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        met = condition()
        if not isinstance(met, bool):
            met = await met
        if met:
            return
        if node.process.poll() is not None:
            pytest.fail(f"the node exited with {node.process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what()}")
        await asyncio.sleep(0.1)


async def test_a_node_keeps_serving_without_redis_and_reconnects(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    node = start_node(
        0,
        f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}",
        tmp_path,
        token=TOKEN,
        offer_timeout=30,
        log_level="INFO",
        env={"VOICEBOT_REDIS_URL": redis_server.url},
    )
    listener = Listener()
    desks: list[ResilientDesk] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_healthy(node)
        tasks.append(asyncio.create_task(listener.run(redis_server.url)))
        agents = await sign_in_agents([node.url], 2, token=TOKEN, password=PASSWORD)
        desks = [ResilientDesk(name, cookie, [node.ws_url]) for name, cookie, _ in agents]
        tasks += [asyncio.create_task(desk.run()) for desk in desks]
        await asyncio.wait_for(asyncio.gather(*(d.ready.wait() for d in desks)), 60)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=30, headers=auth, trust_env=False) as client:
            posted: list[str] = []

            async def post(count: int) -> None:
                for _ in range(count):
                    packet = make_packet("general")
                    response = await client.post(
                        f"{node.url}/api/handoffs", json=packet.model_dump(mode="json")
                    )
                    assert response.status_code == 201, response.text
                    posted.append(response.json()["entry_id"])

            def wrapped() -> set[str]:
                return {e for d in desks for e in d.wrapped}

            async def handled(within: float = 30) -> None:
                await wait_for(
                    lambda: set(posted) <= wrapped(),
                    within,
                    lambda: f"wrap-ups ({len(set(posted) & wrapped())}/{len(posted)})",
                    node,
                )

            # -- Redis up: offers reach the agents, and the events go through Redis --
            await post(5)
            await handled()
            offers = [e for e in listener.events if e.get("type") == "offer"]
            assert {e["entry_id"] for e in offers} >= set(posted), "offers went through Redis"

            # -- Redis gone: the node serves, queues, offers and hears its desktops --
            redis_server.kill()
            heard = len(listener.events)
            assert (await client.get(f"{node.url}/health")).status_code == 200
            before = len(posted)
            await post(10)
            await handled()
            assert len(posted) == before + 10
            assert (await client.get(f"{node.url}/health")).status_code == 200

            # -- Redis back on the same port: the node subscribes again, events flow --
            await redis_server.start()
            admin = redis.from_url(redis_server.url)
            try:

                async def subscribed() -> bool:
                    numsub = dict(await admin.pubsub_numsub(CHANNEL))
                    return int(numsub.get(CHANNEL.encode(), 0)) >= 2  # the node and the test

                await wait_for(subscribed, 30, lambda: "the node's subscription", node)
            finally:
                await admin.aclose()
            after_restart = len(posted)
            await post(5)
            await handled()
            again = {e["entry_id"] for e in listener.events[heard:] if e.get("type") == "offer"}
            assert set(posted[after_restart:]) <= again, "offers go through Redis again"
    except BaseException:
        print(node.log_tail())
        raise
    finally:
        for desk in desks:
            desk.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_nodes([node])
    log = node.log_path.read_text(errors="replace")
    for unhandled in UNHANDLED:
        assert unhandled not in log, node.log_tail()
    assert "delivered on this node only" in log  # the outage was seen
