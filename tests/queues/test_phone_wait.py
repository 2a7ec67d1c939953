"""A phone caller waiting in a built-in queue and the warm transfer to the agent who accepts:
the state machine of voicebot/queues/waiting.py on real queues (SQLite and PostgreSQL),
with the room's events and media faked in-process (no LiveKit server runs here)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.rtc import EventEmitter
from sqlalchemy import select

from tests.fakes.caller_media import FakeMedia
from tests.queues.packets import make_packet
from voicebot.access.users import add_user
from voicebot.flows.schema import Hold, Queue
from voicebot.handoff.packet import HandoffPacket
from voicebot.queues.events import Event, LocalBus
from voicebot.queues.service import QueueService
from voicebot.queues.waiting import QueuedCall, agent_identity
from voicebot.store.db import Database
from voicebot.store.models import (
    Agent,
    AgentStateChange,
    Call,
    Callback,
    Handoff,
    Offer,
    QueueEntry,
)
from voicebot.telephony import worker

QUEUES = {"general": Queue(skills=["general"])}


@pytest.fixture
async def service(db: Database) -> AsyncIterator[QueueService]:
    service = QueueService(db, LocalBus(), QUEUES, offer_timeout=15, wrap_up_seconds=30)
    await service.start()  # the ACD loop routes, as on an API node
    yield service
    await service.aclose()


async def agent(db: Database, name: str) -> int:
    return (await add_user(db, name, "password123", skills={"general": 5})).id


async def enqueue(service: QueueService, **kwargs: Any) -> tuple[str, HandoffPacket]:
    packet = make_packet(channel="sip", **kwargs)
    return await service.enqueue(packet), packet


def machine(
    service: QueueService, entry_id: str, packet: HandoffPacket, media: FakeMedia, **hold: Any
) -> QueuedCall:
    queued = QueuedCall(
        entry_id,
        packet,
        media,
        service,
        hold=Hold(**{"announce_every": 0, "join_timeout": 5, **hold}),
        poll_seconds=0.05,
        grace=0.0,
    )
    service.bus.subscribe(queued.queue_event)
    return queued


async def until(check: Callable[[], Any], within: float = 10.0) -> None:
    """Poll ``check`` (state in the database or on the machine: no event to wait on)."""
    async with asyncio.timeout(within):
        while not await _value(check()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def _value(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


async def _offered_to(db: Database, entry_id: str, agent_id: int) -> bool:
    return (await entry(db, entry_id)).offered_to == agent_id


async def entry(db: Database, entry_id: str) -> QueueEntry:
    async with db.session() as session:
        row = await session.get(QueueEntry, entry_id)
        assert row is not None
        return row


async def waiting_call(
    service: QueueService, **hold: Any
) -> tuple[str, HandoffPacket, FakeMedia, QueuedCall, asyncio.Task[str]]:
    """A phone caller just queued, and the machine running for them."""
    entry_id, packet = await enqueue(service)
    media = FakeMedia()
    queued = machine(service, entry_id, packet, media, **hold)
    return entry_id, packet, media, queued, asyncio.create_task(queued.run())


async def take_call(
    db: Database, service: QueueService, queued: QueuedCall, agent_id: int, entry_id: str
) -> None:
    """An agent becomes available, accepts the offered call and the worker sees it."""
    await service.set_state(agent_id, "available")
    await until(lambda: _offered_to(db, entry_id, agent_id))
    await service.accept(agent_id, entry_id)
    await until(lambda: queued.state == "joining")


async def test_the_caller_hears_their_place_and_the_callback_offer(
    db: Database, service: QueueService
) -> None:
    await enqueue(service)  # someone already waiting
    entry_id, packet, media, queued, task = await waiting_call(service)
    await until(lambda: media.said())
    assert media.kinds()[0] == "hold" and media.log[0] == ("hold", True)
    [first] = media.said()
    assert "You are number 2 in the queue." in first
    assert "press 1" in first  # the number is known
    queued.caller_left()
    assert await task == "abandoned"
    row = await entry(db, entry_id)
    assert row.status == "abandoned" and row.end_reason == "caller hung up"
    async with db.session() as session:
        call = await session.get(Call, packet.call_id)
    assert call is not None and call.outcome == "abandoned"


async def test_no_callback_offer_without_a_number_and_updates_repeat(
    db: Database, service: QueueService
) -> None:
    entry_id, packet = await enqueue(service, number=None)
    media = FakeMedia()
    queued = machine(service, entry_id, packet, media, announce_every=1)
    task = asyncio.create_task(queued.run())
    await until(lambda: len(media.said()) >= 2, within=5)
    assert all("press" not in line for line in media.said())
    assert all("number 1 in the queue" in line for line in media.said())
    queued.keys("1")  # nothing happens: there is no number to call back
    await asyncio.sleep(0.1)
    assert (await entry(db, entry_id)).kind == "call"
    queued.caller_left()
    assert await task == "abandoned"


async def test_pressing_the_key_turns_the_wait_into_a_callback_that_keeps_its_place(
    db: Database, service: QueueService
) -> None:
    entry_id, packet = await enqueue(service, number="+447700900123")
    before = (await entry(db, entry_id)).enqueued_at
    media = FakeMedia()
    queued = machine(service, entry_id, packet, media)
    task = asyncio.create_task(queued.run())
    await until(lambda: media.said())
    queued.keys("1")
    assert await task == "callback"
    assert media.hung_up.is_set()
    assert "ending 0123" in media.said()[-1]
    row = await entry(db, entry_id)
    assert row.kind == "callback" and row.status == "waiting"
    assert row.callback_number == "+447700900123" and row.enqueued_at == before
    async with db.session() as session:
        callback = await session.scalar(select(Callback).where(Callback.entry_id == entry_id))
    assert callback is not None and callback.requested_at == before


async def test_warm_transfer_briefs_the_agent_then_introduces_them_and_leaves(
    db: Database, service: QueueService
) -> None:
    alice = await agent(db, "alice")
    async with db.transaction() as session:
        row = await session.get(Agent, alice)
        assert row is not None
        row.display_name = "Alice Smith"
    entry_id, _packet, media, queued, task = await waiting_call(service)
    await until(lambda: media.said())
    await take_call(db, service, queued, alice, entry_id)
    assert "brief" not in media.kinds()  # nobody to brief until the agent is in the room
    queued.participant_joined("sip_caller")  # not an agent: ignored
    queued.participant_joined(agent_identity(alice))
    await until(lambda: queued.state == "connected")
    steps = [kind for kind in media.kinds() if kind != "say"][1:]
    assert steps == ["brief", "hold", "admit", "let_speak", "leave"]
    brief = next(value for kind, value in media.log if kind == "brief")
    assert brief == (
        f"agent-{alice}",
        "General call. Ann Example, about billing question. Waited under a minute.",
    )
    assert media.said()[-1] == "Thank you for waiting. I'm putting you through to Alice now."
    # the agent ends the call from the desktop: the caller is hung up on
    await service.end(alice, entry_id)
    assert await task == "ended"
    assert media.hung_up.is_set()
    assert queued.history == ["waiting", "joining", "briefing", "introducing", "connected"]


async def test_an_agent_who_never_joins_sends_the_caller_back_to_their_place(
    db: Database, service: QueueService
) -> None:
    alice = await agent(db, "alice")
    bob = await agent(db, "bob")
    entry_id, packet = await enqueue(service)
    before = (await entry(db, entry_id)).enqueued_at
    media = FakeMedia()
    queued = machine(service, entry_id, packet, media, join_timeout=1)
    task = asyncio.create_task(queued.run())
    await take_call(db, service, queued, alice, entry_id)
    await until(lambda: queued.history[-1] == "waiting" and len(queued.history) > 2, within=5)
    row = await entry(db, entry_id)
    assert row.enqueued_at == before and row.agent_id is None
    assert row.status in ("waiting", "offered")
    async with db.session() as session:
        alice_row = await session.get(Agent, alice)
        reason = await session.scalar(
            select(AgentStateChange.reason)
            .where(AgentStateChange.agent_id == alice)
            .order_by(AgentStateChange.id.desc())
            .limit(1)
        )
    assert alice_row is not None and alice_row.state == "away"
    assert reason == "the agent did not join the call"
    assert "still at the front of the queue" in media.said()[-1]
    # the next agent takes the call, and this one arrives
    await take_call(db, service, queued, bob, entry_id)
    queued.participant_joined(agent_identity(bob))
    await until(lambda: queued.state == "connected")
    queued.caller_left()
    assert await task == "ended"
    assert (await entry(db, entry_id)).status == "wrap_up"  # Bob wraps up the call


async def test_the_agents_browser_closing_mid_call_brings_the_caller_back(
    db: Database, service: QueueService
) -> None:
    alice = await agent(db, "alice")
    entry_id, _packet, media, queued, task = await waiting_call(service)
    await take_call(db, service, queued, alice, entry_id)
    queued.participant_joined(agent_identity(alice))
    await until(lambda: queued.state == "connected")
    queued.participant_left(agent_identity(alice))  # the entry is still connected: a drop
    await until(lambda: queued.state == "waiting")
    assert "lost the connection to your colleague" in media.said()[-1]
    assert media.log[-1] == ("hold", True)
    row = await entry(db, entry_id)
    assert row.status == "waiting" and row.agent_id is None
    assert not media.hung_up.is_set()
    queued.caller_left()
    assert await task == "abandoned"


async def test_the_agent_dropping_out_during_the_briefing_brings_the_caller_back(
    db: Database, service: QueueService
) -> None:
    alice = await agent(db, "alice")
    entry_id, _packet, media, queued, task = await waiting_call(service)
    media.on_brief = lambda: queued.participant_left(agent_identity(alice))
    await take_call(db, service, queued, alice, entry_id)
    queued.participant_joined(agent_identity(alice))
    await until(lambda: "briefing" in queued.history and queued.state == "waiting")
    assert "let_speak" not in media.kinds()  # the caller never heard the agent
    assert (await entry(db, entry_id)).status in ("waiting", "offered")
    queued.caller_left()
    assert await task == "abandoned"


async def test_a_caller_hanging_up_during_the_introduction_ends_the_agents_call(
    db: Database, service: QueueService
) -> None:
    alice = await agent(db, "alice")
    entry_id, _packet, media, queued, task = await waiting_call(service)
    media.on_say = lambda text: queued.caller_left() if "putting you through" in text else None
    await take_call(db, service, queued, alice, entry_id)
    queued.participant_joined(agent_identity(alice))
    assert await task == "ended"
    assert "let_speak" not in media.kinds()
    assert (await entry(db, entry_id)).status == "wrap_up"


async def test_an_entry_ended_elsewhere_hangs_up(db: Database, service: QueueService) -> None:
    entry_id, _packet, media, _queued, task = await waiting_call(service)
    await until(lambda: media.said())
    await service.abandon(entry_id, reason="supervisor closed it")
    assert await task == "gone"
    assert media.hung_up.is_set()


async def test_position_counts_priority_then_time(db: Database, service: QueueService) -> None:
    first, _ = await enqueue(service)
    second, _ = await enqueue(service)
    urgent, _ = await enqueue(service, priority="urgent")
    places = {e: await service.place(e) for e in (first, second, urgent)}
    assert {e: p["position"] for e, p in places.items() if p} == {
        urgent: 1,
        first: 2,
        second: 3,
    }
    assert all(p is not None and p["status"] == "waiting" for p in places.values())


async def test_events_of_other_entries_are_ignored(service: QueueService) -> None:
    entry_id, packet = await enqueue(service)
    queued = machine(service, entry_id, packet, FakeMedia())
    event: Event = {"type": "connected", "entry_id": "someone-else"}
    queued.queue_event(event)
    assert queued._inbox.empty()
    queued.queue_event({**event, "entry_id": entry_id})
    assert not queued._inbox.empty()


# -- the worker's wiring: room events and SIP keys reach the machine ---------------------------


class FakeRoom(EventEmitter[str]):
    def __init__(self, *identities: str) -> None:
        super().__init__()
        self.name = "call-1"
        self.remote_participants = {i: SimpleNamespace(identity=i) for i in identities}


async def _worker_wait(
    service: QueueService, tmp_path: Path, room: FakeRoom, media: FakeMedia
) -> tuple[asyncio.Task[str], dict[str, Callable[[str], None]], str]:
    packet = make_packet(channel="sip")
    entry_id = await service.enqueue(packet)
    hung_up: list[bool] = []

    async def delete_room() -> None:
        hung_up.append(True)

    ctx: Any = SimpleNamespace(room=room, api=None, delete_room=delete_room)
    runtime = SimpleNamespace(
        loaded=SimpleNamespace(definition=SimpleNamespace(queues=QUEUES)),
        settings=SimpleNamespace(bot_dir=tmp_path),
    )
    loaded: Any = SimpleNamespace(runtime=runtime, speech=None)
    keypad: dict[str, Callable[[str], None]] = {"press": lambda _keys: None}
    caller: Any = room.remote_participants["sip_caller"]
    task = asyncio.create_task(
        worker._wait_in_queue(ctx, loaded, service, packet, caller, keypad, media=media)
    )
    return task, keypad, entry_id


async def test_the_worker_routes_sip_keys_and_room_events_to_the_waiting_caller(
    db: Database, service: QueueService, tmp_path: Path
) -> None:
    room = FakeRoom("sip_caller")
    media = FakeMedia()
    task, keypad, entry_id = await _worker_wait(service, tmp_path, room, media)
    await until(lambda: media.said())
    keypad["press"]("1")  # SIP DTMF now goes to the queue, not the finished conversation
    assert await task == "queue: callback"
    assert (await entry(db, entry_id)).kind == "callback"
    assert media.log[0] == ("start", None) and media.log[-1] == ("aclose", None)


async def test_the_worker_sees_the_agent_arrive_and_the_caller_hang_up(
    db: Database, service: QueueService, tmp_path: Path
) -> None:
    alice = await agent(db, "alice")
    room = FakeRoom("sip_caller")
    media = FakeMedia()
    task, _keypad, entry_id = await _worker_wait(service, tmp_path, room, media)
    await service.set_state(alice, "available")
    await until(lambda: _offered_to(db, entry_id, alice))
    await service.accept(alice, entry_id)  # the worker hears it on the queue's bus
    room.emit("participant_connected", SimpleNamespace(identity=agent_identity(alice)))
    await until(lambda: "leave" in media.kinds())
    room.emit("participant_disconnected", room.remote_participants["sip_caller"])
    assert await task == "queue: ended"
    assert (await entry(db, entry_id)).status == "wrap_up"


async def test_a_caller_gone_before_the_wait_abandons_at_once(
    db: Database, service: QueueService, tmp_path: Path
) -> None:
    media = FakeMedia()
    packet = make_packet(channel="sip")
    entry_id = await service.enqueue(packet)
    ctx: Any = SimpleNamespace(room=FakeRoom(), api=None, delete_room=None)  # nobody left
    runtime = SimpleNamespace(
        loaded=SimpleNamespace(definition=SimpleNamespace(queues=QUEUES)),
        settings=SimpleNamespace(bot_dir=tmp_path),
    )
    outcome = await worker._wait_in_queue(
        ctx,
        SimpleNamespace(runtime=runtime, speech=None),  # type: ignore[arg-type]
        service,
        packet,
        SimpleNamespace(identity="sip_caller"),  # type: ignore[arg-type]
        {"press": lambda _keys: None},
        media=media,
    )
    assert outcome == "queue: abandoned"
    assert (await entry(db, entry_id)).status == "abandoned"


async def test_a_transferred_handoff_is_stored_without_a_queue_entry(
    db: Database, service: QueueService
) -> None:
    """A phone caller sent to an outside ACD: the desktop there fetches the packet by the id in
    the SIP headers, and no agent here is offered the call."""
    packet = make_packet(channel="sip")
    await service.record_handoff(packet, channel="sip", outcome="transferred")
    await service.record_handoff(packet, channel="sip", outcome="transferred")  # a retry
    async with db.session() as session:
        entries = (await session.scalars(select(QueueEntry))).all()
        call = await session.get(Call, packet.call_id)
        stored = await session.get(Handoff, packet.id)
    assert entries == []
    assert call is not None and call.outcome == "transferred" and call.channel == "sip"
    assert stored is not None and stored.packet["id"] == packet.id


async def test_the_callback_key_while_an_agent_is_being_offered_the_call(
    db: Database, service: QueueService
) -> None:
    """The offer is withdrawn and the caller still gets their callback; the agent is offered
    the callback instead (it is still at the front)."""
    alice = await agent(db, "alice")
    entry_id, _packet, media, queued, task = await waiting_call(service)
    await until(lambda: media.said())
    await service.set_state(alice, "available")
    await until(lambda: _offered_to(db, entry_id, alice))
    queued.keys("1")
    assert await task == "callback"
    async with db.session() as session:
        offers = (await session.scalars(select(Offer).where(Offer.entry_id == entry_id))).all()
    assert offers[0].outcome == "withdrawn"
    await until(lambda: _offered_to(db, entry_id, alice))
    assert (await entry(db, entry_id)).kind == "callback"


async def test_a_failure_mid_transfer_apologises_and_keeps_the_callers_place(
    db: Database, service: QueueService
) -> None:
    alice = await agent(db, "alice")
    entry_id, _packet, media, queued, task = await waiting_call(service)

    def broken() -> None:
        raise RuntimeError("the briefing track went away")

    media.on_brief = broken
    await take_call(db, service, queued, alice, entry_id)
    queued.participant_joined(agent_identity(alice))
    assert await task == "failed"
    assert "We will call you back" in media.said()[-1]
    row = await entry(db, entry_id)
    assert row.kind == "callback" and row.status in ("waiting", "offered")
    assert row.callback_number == "+447700900123"


def test_the_briefing_is_a_few_words_the_screen_pop_has_the_rest() -> None:
    packet = make_packet("care", vip=True, anger=0.8, channel="sip", name=None)
    packet.created_at -= dt.timedelta(minutes=4)
    queued = QueuedCall("e", packet, FakeMedia(), None)  # type: ignore[arg-type]
    assert queued._briefing() == (
        "Care call, VIP. The caller, about billing question. The caller sounds upset. "
        "Waited 4 minutes."
    )


async def test_an_agent_accepting_cuts_a_long_update_short(
    db: Database, service: QueueService
) -> None:
    alice = await agent(db, "alice")
    entry_id, packet = await enqueue(service)
    media = FakeMedia()
    media.speak_for = 30.0  # a long update, still being spoken when the agent accepts
    queued = machine(service, entry_id, packet, media)
    task = asyncio.create_task(queued.run())
    await until(lambda: media.said())
    await take_call(db, service, queued, alice, entry_id)
    assert ("cut", media.said()[0]) in media.log
    media.speak_for = 0.0
    queued.participant_joined(agent_identity(alice))
    await until(lambda: queued.state == "connected", within=5)
    queued.caller_left()
    assert await task == "ended"


async def test_a_wait_that_cannot_start_hangs_up_and_owes_a_callback(
    db: Database, service: QueueService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The room could not be set up for the wait (publishing the hold track failed, say): the
    caller's place becomes a callback, not an entry an agent would accept with nobody there."""
    packet = make_packet(channel="sip")
    entry_id = await service.enqueue(packet)

    async def broken(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("could not publish the hold track")

    monkeypatch.setattr(worker, "_wait_in_queue", broken)
    runtime = SimpleNamespace(
        loaded=SimpleNamespace(definition=SimpleNamespace(queues=QUEUES)),
        settings=SimpleNamespace(bot_dir=tmp_path, sip_outbound_trunk=None),
    )
    call = SimpleNamespace(call=SimpleNamespace(state=SimpleNamespace(handoff=packet)))
    ctx: Any = SimpleNamespace(room=FakeRoom("sip_caller"), api=None)
    outcome = await worker._after_conversation(
        ctx,
        SimpleNamespace(runtime=runtime, speech=None),  # type: ignore[arg-type]
        service,
        call,
        SimpleNamespace(identity="sip_caller"),  # type: ignore[arg-type]
        {"press": lambda _keys: None},
    )
    assert outcome == "handoff failed"
    row = await entry(db, entry_id)
    assert row.kind == "callback" and row.callback_number == "+447700900123"


async def test_an_agent_who_reconnects_at_once_keeps_the_call(
    db: Database, service: QueueService
) -> None:
    alice = await agent(db, "alice")
    entry_id, packet = await enqueue(service)
    media = FakeMedia()
    queued = QueuedCall(
        entry_id, packet, media, service, hold=Hold(announce_every=0), poll_seconds=0.05, grace=0.3
    )
    service.bus.subscribe(queued.queue_event)
    task = asyncio.create_task(queued.run())
    await take_call(db, service, queued, alice, entry_id)
    queued.participant_joined(agent_identity(alice))
    await until(lambda: queued.state == "connected")
    queued.participant_left(agent_identity(alice))  # the agent's page reloads
    queued.participant_joined(agent_identity(alice))
    await asyncio.sleep(0.6)
    assert queued.state == "connected" and (await entry(db, entry_id)).status == "connected"
    queued.caller_left()
    assert await task == "ended"
