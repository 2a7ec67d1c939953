"""Two ACD nodes on one PostgreSQL database, routing at the same time: row locks with SKIP LOCKED
must give every entry to one agent and every agent one entry. (The full multi-node test with two
server processes and desktops is test_multi_node.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from tests.queues.packets import make_packet
from voicebot.access.users import add_user
from voicebot.flows.schema import Queue
from voicebot.handoff.packet import HandoffPacket
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.queues.sink import QueueHandoffSink, read_spool
from voicebot.store.db import Database, open_database
from voicebot.store.models import Offer, QueueEntry

QUEUES = {"general": Queue(skills=["general"])}


async def test_two_nodes_never_offer_one_entry_twice(pg_url: str) -> None:
    first, second = await open_database(pg_url), await open_database(pg_url)
    try:
        nodes = [QueueService(db, LocalBus(), QUEUES, offer_timeout=60) for db in (first, second)]
        agents = [
            (await add_user(first, f"agent{i}", "password123", skills={"general": 5})).id
            for i in range(20)
        ]
        # Entries arrive on both nodes at once while agents come free on both.
        await asyncio.gather(
            *(nodes[i % 2].enqueue(make_packet()) for i in range(60)),
            *(nodes[i % 2].set_state(agent_id, "available") for i, agent_id in enumerate(agents)),
        )
        for _ in range(3):
            await asyncio.gather(nodes[0].dispatch(), nodes[1].dispatch())
        async with first.session() as session:
            offered = (
                await session.execute(
                    select(QueueEntry.id, QueueEntry.offered_to).where(
                        QueueEntry.status == "offered"
                    )
                )
            ).all()
            offers = await session.scalar(select(func.count()).select_from(Offer))
        holders = [agent_id for _, agent_id in offered]
        assert len(offered) == 20 and offers == 20
        assert sorted(holders) == sorted(agents)  # each agent exactly one entry

        # Both nodes race to accept every offer (as a double click on two nodes would).
        async def accept(node: QueueService, agent_id: int, entry_id: str) -> bool:
            try:
                await node.accept(agent_id, entry_id)
                return True
            except Exception:
                return False

        results = await asyncio.gather(
            *(accept(node, agent_id, entry_id) for entry_id, agent_id in offered for node in nodes)
        )
        assert sum(results) == 20
    finally:
        await first.aclose()
        await second.aclose()


async def test_handoffs_are_spooled_while_the_database_is_down(db: Database, tmp_path: Path):
    down = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    spool = tmp_path / "spool.jsonl"
    sink = QueueHandoffSink(QueueService(down, LocalBus(), QUEUES), spool, timeout=5)
    packets: list[HandoffPacket] = [make_packet(), make_packet(callback="+447700900999")]
    for packet in packets:
        await sink.deliver(packet)  # does not raise: the caller is still transferred
    await sink.aclose()  # (stops its retry loop; the test replays by hand below)
    await down.aclose()
    assert [p["id"] for p in read_spool(spool)] == [p.id for p in packets]

    working = QueueHandoffSink(QueueService(db, LocalBus(), QUEUES), spool)
    assert await working.replay() == 0
    assert not spool.exists()
    async with db.session() as session:
        rows = (await session.scalars(select(QueueEntry.handoff_id))).all()
    assert sorted(rows) == sorted(p.id for p in packets)
    # created_at of the packet is kept as the callback's place
    assert isinstance(packets[1].created_at, dt.datetime)
