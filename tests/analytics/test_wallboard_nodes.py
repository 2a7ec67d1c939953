"""The wallboard across nodes: a call queued on node A reaches a supervisor's page connected
to node B, over PostgreSQL LISTEN/NOTIFY and over Redis, with nothing polling."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.queues import conftest as queue_fixtures
from tests.queues.packets import make_packet
from tests.queues.test_events import make
from voicebot.api.supervisor_hub import SupervisorHub, SupervisorPage
from voicebot.flows.schema import Queue
from voicebot.queues.service import QueueService
from voicebot.store.db import open_database

pg_url = queue_fixtures.pg_url
QUEUES = {"general": Queue(skills=["general"]), "billing": Queue(skills=["billing"])}


class PageSocket:
    """What the hub needs of a WebSocket: it sends text; the test reads what was sent."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send_text(self, text: str) -> None:
        await self.sent.put(json.loads(text))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_a_call_queued_on_one_node_reaches_the_board_on_another(
    kind: str, pg_url: str
) -> None:
    dbs = [await open_database(pg_url), await open_database(pg_url)]
    nodes = [
        QueueService(db, make(kind, pg_url), QUEUES, node_id=f"node-{n}")
        for n, db in enumerate(dbs)
    ]
    for node in nodes:
        await node.start()
    hub = SupervisorHub(nodes[1])
    socket = PageSocket()
    page = SupervisorPage(socket, "sue")  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.2)  # both subscriptions are live
        hub.attach(page)
        await nodes[0].enqueue(make_packet("billing"), channel="sip")
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, "the board on node B never showed the call queued on node A"
            board = await asyncio.wait_for(socket.sent.get(), timeout=left)
            billing = next(q for q in board["queues"] if q["name"] == "billing")
            if billing["waiting"] == 1:
                break
        assert board["type"] == "wallboard" and billing["offered"] == 1
    finally:
        await hub.aclose()
        for node in nodes:
            await node.aclose()
        for db in dbs:
            await db.aclose()
