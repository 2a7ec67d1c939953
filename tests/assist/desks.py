"""An API node with agent desktops holding contacts, for the assist tests and the latency
benchmark (benchmarks/assist_latency.py): ``voicebot serve --no-phone`` on a fresh PostgreSQL
database, agents signed in through the API, their desktops on real WebSockets, and customer
lines published on the node's event bus (PostgreSQL NOTIFY) as a chat relay or a phone worker
publishes them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.queues.packets import make_packet
from tests.queues.servers import (
    REPO,
    Node,
    pg_database,
    sign_in_agents,
    start_node,
    stop_nodes,
    wait_healthy,
)
from voicebot.queues.events import Event, PostgresBus

TOKEN = "assist-test-token"
PASSWORD = "a long password"


@dataclass
class Desk:
    """One agent's desktop socket: every message it got, in order."""

    name: str
    cookie: str
    agent_id: int
    ws: ClientConnection
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # time.time() of each message
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        async for raw in self.ws:
            self.messages.append(json.loads(raw))
            self.arrived.append(time.time())
            self.changed.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def wait_for(
        self, check: Callable[[], Any], within: float = 30.0, what: str = "a message"
    ) -> Any:
        deadline = time.monotonic() + within
        while not (found := check()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [m.get("type") for m in self.messages]
                raise AssertionError(f"{self.name}: no {what} within {within:g} s; got {kinds}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return found


@dataclass
class Centre:
    node: Node
    db_url: str
    bus: PostgresBus
    http: httpx.AsyncClient
    desks: list[Desk]

    async def publish(self, event: Event) -> None:
        await self.bus.publish(event)

    async def post_as(self, desk: Desk, path: str, body: dict[str, Any]) -> httpx.Response:
        """A request with ``desk``'s session, as its page makes it."""
        async with httpx.AsyncClient(
            base_url=self.node.url,
            headers={"Cookie": f"voicebot_session={desk.cookie}", "Origin": self.node.url},
            timeout=30,
            trust_env=False,
        ) as client:
            return await client.post(path, json=body)

    async def hand_to(self, desk: Desk, **packet: Any) -> str:
        """A handoff offered to ``desk`` (the only available agent) and accepted there: the
        entry id of the contact it now holds."""
        queued = await self.http.post(
            "/api/handoffs", json=make_packet("general", **packet).model_dump(mode="json")
        )
        assert queued.status_code == 201, queued.text
        entry_id: str = queued.json()["entry_id"]
        await desk.wait_for(
            lambda: any(m["assignment"]["entry_id"] == entry_id for m in desk.of("offer")),
            what="offer",
        )
        await desk.send({"type": "accept", "entry_id": entry_id})
        await desk.wait_for(
            lambda: any(m["assignment"]["entry_id"] == entry_id for m in desk.of("connected")),
            what="connected",
        )
        return entry_id


def ingest(data_dir: Path) -> None:
    """The example bot's knowledge indexed into a node's data directory, as an operator does
    before starting nodes without the bot (``serve --no-phone`` reads the index, never
    ingests)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VOICEBOT_DATA_DIR": str(data_dir), "VOICEBOT_LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-m", "voicebot", "knowledge", "ingest", "--bot", str(REPO)],
        cwd=data_dir,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]


@contextlib.asynccontextmanager
async def contact_centre(work: Path, agents: int = 2) -> AsyncIterator[Centre]:
    """A node on a new PostgreSQL database with ``agents`` desktops connected (state away)."""
    async with pg_database(prefix="vb_assist_") as db_url:
        bus = PostgresBus(db_url.replace("postgresql+asyncpg://", "postgresql://", 1))
        ingest(work / "node0" / "data")
        node = start_node(0, db_url, work, token=TOKEN, offer_timeout=30, log_level="WARNING")
        desks: list[Desk] = []
        try:
            try:
                await wait_healthy(node, within=240)
            except RuntimeError as exc:
                raise AssertionError(f"{exc}{node.log_tail()}") from None
            await bus.start()
            signed_in = await sign_in_agents([node.url], agents, token=TOKEN, password=PASSWORD)
            for name, cookie, agent_id in signed_in:
                ws = await connect(
                    node.ws_url,
                    additional_headers={"Cookie": f"voicebot_session={cookie}"},
                    proxy=None,
                    max_size=2**22,
                )
                desk = Desk(name, cookie, agent_id, ws)
                desk.reader = asyncio.create_task(desk.read())
                await desk.wait_for(lambda d=desk: d.of("hello"), what="hello")
                desks.append(desk)
            async with httpx.AsyncClient(
                base_url=node.url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
                trust_env=False,
            ) as http:
                yield Centre(node, db_url, bus, http, desks)
        finally:
            for desk in desks:
                with contextlib.suppress(Exception):
                    await desk.ws.close()
                if desk.reader is not None:
                    desk.reader.cancel()
            with contextlib.suppress(Exception):
                await bus.aclose()
            stop_nodes([node])
