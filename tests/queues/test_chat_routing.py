"""Chats in the ACD on a real database (each test on SQLite and on PostgreSQL): an agent holds
one call and up to max_chats chats, chats never move the agent's voice state, a break stops
them, skills and fairness decide who gets one, offers expire, wrap-ups time out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.queues.packets import make_packet
from tests.queues.test_service import (
    QUEUES,
    Clock,
    Recorder,
    agent,
    make_available,
    offered_to,
    state_of,
    status_of,
)
from voicebot.queues.service import QueueError, QueueService
from voicebot.store.db import Database
from voicebot.store.models import Agent, QueueEntry, Turn


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus() -> Recorder:
    return Recorder()


@pytest.fixture
def service(db: Database, bus: Recorder, clock: Clock) -> QueueService:
    return QueueService(
        db,
        bus,
        QUEUES,
        offer_timeout=15,
        wrap_up_seconds=30,
        max_chats=3,
        anger_threshold=0.7,
        clock=clock,
    )


async def chat(service: QueueService, queue: str = "general", **extra: object) -> str:
    return await service.enqueue(make_packet(queue, channel="chat", **extra))  # type: ignore[arg-type]


async def call(service: QueueService, queue: str = "general") -> str:
    return await service.enqueue(make_packet(queue, channel="softphone"))


async def set_max_chats(db: Database, agent_id: int, value: int | None) -> None:
    async with db.transaction() as session:
        row = await session.get(Agent, agent_id)
        assert row is not None
        row.max_chats = value


async def entry(db: Database, entry_id: str) -> QueueEntry:
    async with db.session() as session:
        row = await session.get(QueueEntry, entry_id)
        assert row is not None
        return row


def chat_states(bus: Recorder, agent_id: int) -> list[str]:
    return [e["state"] for e in bus.of("agent_state") if e["agent_id"] == agent_id]


# -- what the entry says ---------------------------------------------------------------------


async def test_media_and_language_come_from_the_packet(db: Database, service: QueueService):
    web = await chat(service)
    gateway = await service.enqueue(make_packet("general", channel="messaging"))
    phone = await call(service)
    spanish = await service.enqueue(
        make_packet("general", channel="chat").model_copy(update={"language": "es-ES"})
    )
    # The packet's own channel wins over the caller's attributes.
    packet = make_packet("general", channel="softphone").model_copy(update={"channel": "chat"})
    by_packet = await service.enqueue(packet)
    assert [(await entry(db, e)).media for e in (web, gateway, phone, by_packet)] == [
        "chat",
        "chat",
        "voice",
        "chat",
    ]
    assert (await entry(db, web)).language == "en-GB"
    assert (await entry(db, spanish)).language == "es-ES"
    assignment = await service.assignment(web)
    assert assignment is not None
    assert assignment["media"] == "chat" and assignment["call_id"]


# -- concurrency -----------------------------------------------------------------------------


async def test_one_agent_holds_a_call_and_up_to_max_chats(
    db: Database, service: QueueService, bus: Recorder, clock: Clock
):
    ann = await agent(db, "ann", {"general": 5})
    await make_available(service, ann)
    chats = [await chat(service) for _ in range(4)]
    # Three chats offered at once (the fourth waits); the agent is still available for a call.
    assert [await offered_to(db, c) for c in chats] == [ann, ann, ann, None]
    assert await state_of(db, ann) == "available"
    phone = await call(service)
    assert await offered_to(db, phone) == ann
    assert await state_of(db, ann) == "offered"
    for c in chats[:3]:
        await service.accept(ann, c)
    # Accepting chats leaves the call's offer where it was.
    assert await state_of(db, ann) == "offered"
    await service.accept(ann, phone)
    assert await state_of(db, ann) == "busy"
    assert await status_of(db, chats[3]) == "waiting"
    # Ending a chat: its wrap-up still holds the place, and the agent stays on their call.
    await service.end(ann, chats[0])
    assert await status_of(db, chats[0]) == "wrap_up"
    await service.dispatch()
    assert await status_of(db, chats[3]) == "waiting"
    assert await state_of(db, ann) == "busy"
    await service.wrap_up(ann, chats[0], "resolved", "answered")
    await service.dispatch()
    assert await offered_to(db, chats[3]) == ann
    assert await state_of(db, ann) == "busy"
    # No chat step ever published a state change: only the call's offered and busy.
    assert chat_states(bus, ann) == ["available", "offered", "busy"]
    chat_offers = [e for e in bus.of("offer") if e.get("media") == "chat"]
    assert len(chat_offers) == 4 and all(e["call_id"] for e in chat_offers)
    # The call's wrap-up is the call's: the chats' stay as they are.
    await service.end(ann, phone)
    assert await state_of(db, ann) == "wrap_up"
    await service.wrap_up(ann, phone, "resolved")
    assert await state_of(db, ann) == "available"
    assert await status_of(db, chats[1]) == "connected"
    snapshot = await service.agent_snapshot(ann)
    assert snapshot is not None and snapshot["current"] is None
    assert set(await service.chats_of(ann)) == {chats[1], chats[2], chats[3]}


async def test_the_agents_own_capacity_beats_the_default(db: Database, service: QueueService):
    one = await agent(db, "one", {"general": 5})
    none = await agent(db, "none", {"general": 5})
    await set_max_chats(db, one, 1)
    await set_max_chats(db, none, 0)
    await make_available(service, one, none)
    first, second = await chat(service), await chat(service)
    assert await offered_to(db, first) == one
    assert await offered_to(db, second) is None
    # The agent who takes no chats still takes calls.
    phone = await call(service)
    assert await offered_to(db, phone) in (one, none)


async def test_a_chat_accept_decline_and_end_are_the_holders_only(
    db: Database, service: QueueService
):
    ann = await agent(db, "ann", {"general": 5})
    bob = await agent(db, "bob", {"general": 5})
    await set_max_chats(db, bob, 0)
    await make_available(service, ann, bob)
    c = await chat(service)
    assert await offered_to(db, c) == ann
    with pytest.raises(QueueError, match="no longer offered"):
        await service.accept(bob, c)
    await service.accept(ann, c)
    with pytest.raises(QueueError, match="not connected to you"):
        await service.end(bob, c)
    with pytest.raises(QueueError) as wrong:
        await service.chat_held_by(c, bob)
    assert wrong.value.status == 403
    call_id, name = await service.chat_held_by(c, ann)
    assert call_id and name == "ann"


# -- breaks, skills, fairness ------------------------------------------------------------------


async def test_a_break_stops_chats_but_not_the_ones_held(
    db: Database, service: QueueService, bus: Recorder
):
    ann = await agent(db, "ann", {"general": 5})
    await make_available(service, ann)
    held, offered = await chat(service), await chat(service)
    await service.accept(ann, held)
    assert await offered_to(db, offered) == ann
    await service.set_state(ann, "away", reason="lunch")
    # The open offer went back to the queue; the connected chat is still the agent's.
    assert await status_of(db, offered) == "waiting"
    assert await status_of(db, held) == "connected"
    withdrawn = [e for e in bus.of("offer_withdrawn") if e["entry_id"] == offered]
    assert withdrawn and withdrawn[0]["media"] == "chat"
    later = await chat(service)
    await service.dispatch()
    assert await status_of(db, later) == "waiting"
    # Offline stops them too; back available, the waiting chats come.
    await service.set_state(ann, "offline")
    await service.dispatch()
    assert await status_of(db, later) == "waiting"
    await service.set_state(ann, "available")
    await service.dispatch()
    assert await offered_to(db, offered) == ann and await offered_to(db, later) == ann


async def test_chats_need_the_skills_of_their_queue(db: Database, service: QueueService):
    general = await agent(db, "gina", {"general": 5})
    await make_available(service, general)
    billing_chat = await chat(service, "billing")
    assert await status_of(db, billing_chat) == "waiting"
    skilled = await agent(db, "bill", {"billing": 5})
    await make_available(service, skilled)
    await service.dispatch()
    assert await offered_to(db, billing_chat) == skilled
    # A skill the packet adds (a language skill, say) is needed too.
    spanish = await chat(service, "general", skills=["lang:es"])
    assert await status_of(db, spanish) == "waiting"


async def test_fewest_chats_first_then_longest_since_the_last_chat(
    db: Database, service: QueueService, clock: Clock
):
    ann = await agent(db, "ann", {"general": 5})
    bob = await agent(db, "bob", {"general": 5})
    await make_available(service, ann)
    clock.advance(5)
    await make_available(service, bob)  # ann has been idle longer
    got = []
    for _ in range(4):
        clock.advance(10)
        c = await chat(service)
        got.append(await offered_to(db, c))
    # ann (longest idle), bob (fewer chats), ann (same count, her last chat is older), bob.
    assert got == [ann, bob, ann, bob]
    # Whatever the voice state: ann on a call holding no chat beats bob, free with two.
    ann_chats = await service.chats_of(ann)
    for c in ann_chats:
        await service.accept(ann, c)
        await service.end(ann, c)
        await service.wrap_up(ann, c, "resolved")
    phone = await call(service)
    assert await offered_to(db, phone) == ann
    await service.accept(ann, phone)
    clock.advance(10)
    c = await chat(service)
    assert await offered_to(db, c) == ann
    assert await state_of(db, ann) == "busy"


# -- offers that expire, wrap-ups that time out, customers who leave ---------------------------


async def test_a_chat_offer_expires_like_a_call_offer(
    db: Database, service: QueueService, bus: Recorder, clock: Clock
):
    ann = await agent(db, "ann", {"general": 5})
    await make_available(service, ann)
    ignored = await chat(service)
    assert await offered_to(db, ignored) == ann
    clock.advance(16)
    await service.sweep()
    await service.dispatch()
    # Nobody answered an idle desk: the agent is set away (as for a call), the chat waits.
    assert await state_of(db, ann) == "away"
    assert await status_of(db, ignored) == "waiting"
    # An agent on a call who lets a chat offer run out stays on the call, and does not get the
    # same chat straight back.
    bob = await agent(db, "bob", {"general": 5})
    await make_available(service, bob)
    await service.dispatch()
    assert await offered_to(db, ignored) == bob
    phone = await call(service)
    assert await offered_to(db, phone) == bob
    await service.accept(bob, phone)
    clock.advance(16)
    await service.sweep()
    await service.dispatch()
    assert await state_of(db, bob) == "busy"
    assert await status_of(db, ignored) == "waiting"
    expired = [e for e in bus.of("offer_withdrawn") if e["entry_id"] == ignored]
    assert [e["reason"] for e in expired] == ["chat offer not answered"] * 2


async def test_a_chat_wrap_up_times_out_and_frees_the_place(
    db: Database, service: QueueService, bus: Recorder, clock: Clock
):
    ann = await agent(db, "ann", {"general": 5})
    await set_max_chats(db, ann, 1)
    await make_available(service, ann)
    first, second = await chat(service), await chat(service)
    await service.accept(ann, first)
    await service.end(ann, first)
    wrap = [e for e in bus.of("wrap_up") if e["entry_id"] == first]
    assert wrap and wrap[0]["media"] == "chat" and wrap[0]["wrap_up_until"]
    closed = bus.of("chat_closed")
    assert closed and closed[0]["by"] == "agent"
    clock.advance(31)
    await service.sweep()
    await service.dispatch()
    assert await status_of(db, first) == "done"
    done = bus.of("chat_done")
    assert done and done[0]["entry_id"] == first and done[0]["reason"] == "wrap-up time over"
    assert await offered_to(db, second) == ann
    # A late wrap-up is still recorded.
    await service.wrap_up(ann, first, "resolved")
    assert await state_of(db, ann) == "available"


async def test_the_customer_leaving_a_chat(db: Database, service: QueueService, bus: Recorder):
    ann = await agent(db, "ann", {"general": 5})
    await make_available(service, ann)
    talking, offered = await chat(service), await chat(service)
    await service.accept(ann, talking)
    assert await service.abandon(talking, reason="customer left") == "connected"
    assert await status_of(db, talking) == "wrap_up"
    left = [e for e in bus.of("caller_left") if e["entry_id"] == talking]
    assert left and left[0]["media"] == "chat"
    assert await service.abandon(offered, reason="customer left") == "offered"
    assert await status_of(db, offered) == "abandoned"
    waiting = await chat(service, "billing")
    assert await service.abandon(waiting) == "waiting"
    assert chat_states(bus, ann) == ["available"]
    assert await state_of(db, ann) == "available"


async def test_accepting_tells_the_customer_who_joined(
    db: Database, service: QueueService, bus: Recorder
):
    ann = await agent(db, "ann", {"general": 5})
    async with db.transaction() as session:
        row = await session.get(Agent, ann)
        assert row is not None
        row.display_name = "Ann Agent"
    await make_available(service, ann)
    c = await chat(service)
    await service.accept(ann, c)
    joined = bus.of("chat_joined")
    call_id = (await entry(db, c)).call_id
    assert joined == [
        {
            "type": "chat_joined",
            "call_id": call_id,
            "agent_name": "Ann Agent",
            "node": joined[0]["node"],
        }
    ]
    async with db.session() as session:
        turns = (
            await session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq))
        ).all()
    assert turns[-1].role == "event" and turns[-1].text == "Ann Agent joined the chat"
    lines = await service.chat_lines(call_id)
    assert [line["role"] for line in lines] == ["bot", "caller", "event"]
    assert lines[-1]["text"] == "Ann Agent joined the chat"


async def test_a_chat_never_becomes_a_callback_or_goes_back_like_a_phone_call(
    db: Database, service: QueueService
):
    c = await chat(service)
    assert await service.to_callback(c, "+447700900111") is False
    ann = await agent(db, "ann", {"general": 5})
    await make_available(service, ann)
    await service.dispatch()
    assert await service.return_to_queue(c, reason="no agent audio") is False
    assert await state_of(db, ann) == "available"
