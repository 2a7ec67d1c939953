"""Calls meet the queues: the flows see live figures (`queue.<name>.*`), a handoff becomes a
queue entry before the caller hears the transfer, a callback keeps the caller's place, and a
database that is down still lets the caller be transferred (the packet is spooled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.conftest import MONDAY_10AM, REPO
from tests.queues.packets import make_packet
from voicebot.access.users import add_user
from voicebot.config import Settings
from voicebot.handoff.packet import CallerInfo
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.queues.sink import QueueHandoffSink, read_spool
from voicebot.runtime.bot import BotRuntime
from voicebot.store.db import Database
from voicebot.store.models import Call, QueueEntry, Turn


def example_bot(tmp_path: Path, service: QueueService) -> BotRuntime:
    settings = Settings(bot_dir=REPO, data_dir=tmp_path / "data")
    runtime = BotRuntime.load(settings, clock=lambda: MONDAY_10AM)
    runtime.handoffs = QueueHandoffSink(service, tmp_path / "spool.jsonl", audio_node="node-1")
    runtime.queue_stats = service.flow_stats
    return runtime


def example_service(db: Database) -> QueueService:
    from voicebot.flows.loader import load_bot

    definition = load_bot(REPO).definition
    return QueueService(db, LocalBus(), definition.queues, clock=lambda: MONDAY_10AM)


async def test_a_long_live_wait_offers_a_callback_that_keeps_its_place(
    db: Database, tmp_path: Path
) -> None:
    service = example_service(db)
    # One sales agent (being offered the first call) and four callers in the queue: a
    # newcomer is fifth, a full round of that agent's calls ahead, so 5 x 180 s.
    seller = (await add_user(db, "seller", "password123", skills={"sales": 5})).id
    await service.set_state(seller, "available")
    for _ in range(4):
        await service.enqueue(make_packet("sales"))
    runtime = example_bot(tmp_path, service)
    call = runtime.new_call(caller=CallerInfo(number="+441632960123"))
    await call.start()
    reply = await call.caller_said("I want to upgrade my phone")
    assert "about 15 minutes" in reply.text, reply.text
    assert call.state.queues["sales"]["agents_staffed"] == 1
    reply = await call.caller_said("yes please")
    assert "ending 0123" in reply.text and reply.handoff is not None
    async with db.session() as session:
        entry = await session.scalar(
            select(QueueEntry).where(QueueEntry.handoff_id == reply.handoff.id)
        )
        turns = (
            await session.scalars(select(Turn).where(Turn.call_id == call.state.call_id))
        ).all()
        stored = await session.get(Call, call.state.call_id)
    assert entry is not None and entry.kind == "callback" and entry.queue == "sales"
    assert entry.callback_number == "+441632960123"
    assert entry.audio_node is None  # not a softphone call: nothing to join on this node
    assert stored is not None and stored.caller_number == "+441632960123"
    assert any(t.text == "I want to upgrade my phone" for t in turns)
    await runtime.aclose()


async def test_a_handoff_is_queued_before_the_caller_hears_the_transfer(
    db: Database, tmp_path: Path
) -> None:
    service = example_service(db)
    runtime = example_bot(tmp_path, service)

    async def count_entries() -> int:
        async with db.session() as session:
            return len((await session.scalars(select(QueueEntry.id))).all())

    call = runtime.new_call(
        caller=CallerInfo(number="+447700900123", attributes={"channel": "softphone"})
    )
    await call.start()
    # Each line reaches the audio path as soon as it is ready: the transfer announcement
    # must come after the entry is written.
    order: list[str] = []
    sink = runtime.handoffs
    deliver = sink.deliver

    async def delivering(packet: Any) -> None:
        await deliver(packet)
        order.append(f"queued ({await count_entries()} entry)")

    sink.deliver = delivering  # type: ignore[method-assign]
    reply = await call.caller_said("I want to speak to a person", on_line=order.append)
    assert reply.handoff is not None
    assert order[0] == "queued (1 entry)" and order[-1] == reply.lines[-1].text, order
    entry_id = await service.entry_for_handoff(reply.handoff.id)
    assert entry_id is not None
    assignment = await service.assignment(entry_id)
    assert assignment is not None and assignment["audio_url"] == f"/api/desktop/audio/{entry_id}"
    await runtime.aclose()


async def test_a_database_down_during_a_call_still_transfers_the_caller(tmp_path: Path) -> None:
    down = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    from voicebot.flows.loader import load_bot

    service = QueueService(down, LocalBus(), load_bot(REPO).definition.queues)
    runtime = example_bot(tmp_path, service)
    call = runtime.new_call(caller=CallerInfo(number="+447700900123"))
    await call.start()
    reply = await call.caller_said("I want to speak to a person")
    assert reply.handoff is not None and reply.text  # the caller is told they are transferred
    spooled = read_spool(tmp_path / "spool.jsonl")
    assert [p["id"] for p in spooled] == [reply.handoff.id]
    sink = runtime.handoffs
    assert isinstance(sink, QueueHandoffSink)
    await sink.aclose()
    await runtime.aclose()
    await down.aclose()
