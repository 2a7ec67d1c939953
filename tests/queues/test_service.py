"""The ACD on a real database (each test on SQLite and on PostgreSQL): what is stored, routing
order, offers that time out or are declined, overflow, callers who leave, wrap-up, figures."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from tests.queues.packets import make_packet
from voicebot.access.users import add_user
from voicebot.flows.schema import Queue
from voicebot.queues.events import Event, LocalBus
from voicebot.queues.service import QueueError, QueueService
from voicebot.store.db import Database
from voicebot.store.models import (
    Agent,
    AgentStateChange,
    Call,
    Callback,
    Disposition,
    Handoff,
    Offer,
    QueueEntry,
    Turn,
)

START = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
QUEUES = {
    "general": Queue(skills=["general"]),
    "billing": Queue(skills=["billing"]),
    "care": Queue(skills=["care"], overflow_after=120, overflow_to="general"),
}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Recorder(LocalBus):
    """The in-process bus, keeping what was published."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)
        await super().publish(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["type"] == kind]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus() -> Recorder:
    return Recorder()


@pytest.fixture
def service(db: Database, bus: Recorder, clock: Clock) -> QueueService:
    return QueueService(
        db, bus, QUEUES, offer_timeout=15, wrap_up_seconds=30, anger_threshold=0.7, clock=clock
    )


async def agent(db: Database, name: str, skills: dict[str, int]) -> int:
    created = await add_user(db, name, "password123", skills=skills)
    return created.id


async def make_available(service: QueueService, *agent_ids: int) -> None:
    for agent_id in agent_ids:
        await service.set_state(agent_id, "available")


async def offered_to(db: Database, entry_id: str) -> int | None:
    async with db.session() as session:
        entry = await session.get(QueueEntry, entry_id)
        assert entry is not None
        return entry.offered_to if entry.status == "offered" else None


async def status_of(db: Database, entry_id: str) -> str:
    async with db.session() as session:
        entry = await session.get(QueueEntry, entry_id)
        assert entry is not None
        return entry.status


async def state_of(db: Database, agent_id: int) -> str:
    async with db.session() as session:
        row = await session.get(Agent, agent_id)
        assert row is not None
        return row.state


# -- what is stored ----------------------------------------------------------------------------


async def test_a_handoff_stores_call_turns_packet_and_entry(db: Database, service: QueueService):
    packet = make_packet("billing", channel="softphone")
    entry_id = await service.enqueue(packet)
    async with db.session() as session:
        call = await session.get(Call, packet.call_id)
        handoff = await session.get(Handoff, packet.id)
        entry = await session.get(QueueEntry, entry_id)
        turns = (await session.scalars(select(Turn).order_by(Turn.seq))).all()
    assert call is not None and call.outcome == "handoff" and call.channel == "softphone"
    assert call.caller_number == "+447700900123" and call.intent == "billing_question"
    assert handoff is not None and handoff.packet["summary"] == packet.summary
    assert handoff.packet["slots"] == {"account_number": "****5678"}
    assert [t.text for t in turns] == ["Hello, how can I help?", "why is my bill higher"]
    assert entry is not None and entry.status == "waiting" and entry.queue == "billing"
    assert entry.skills == ["billing"] and entry.enqueued_at == START
    # A retried delivery of the same packet queues it once.
    assert await service.enqueue(packet) == entry_id
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(QueueEntry)) == 1


async def test_an_unknown_queue_goes_to_the_default(service: QueueService, caplog):
    entry_id = await service.enqueue(make_packet("no-such-queue"))
    assignment = await service.assignment(entry_id)
    assert assignment is not None and assignment["queue"] == "general"
    assert "unknown queue" in caplog.text


async def test_step_skills_are_added_to_the_queue_skills(db: Database, service: QueueService):
    entry_id = await service.enqueue(make_packet("general", skills=["welsh"]))
    plain = await agent(db, "plain", {"general": 5})
    welsh = await agent(db, "welsh", {"general": 5, "welsh": 3})
    await make_available(service, plain)
    await service.dispatch()
    assert await offered_to(db, entry_id) is None
    await make_available(service, welsh)
    await service.dispatch()
    assert await offered_to(db, entry_id) == welsh


# -- routing -----------------------------------------------------------------------------------


async def test_highest_priority_first_then_longest_waiting(
    db: Database, service: QueueService, clock: Clock
):
    early_normal = await service.enqueue(make_packet(priority="normal"))
    clock.advance(5)
    late_high = await service.enqueue(make_packet(priority="high"))
    clock.advance(5)
    vip = await service.enqueue(make_packet(priority="normal", vip=True))
    clock.advance(5)
    angry_vip = await service.enqueue(make_packet(priority="normal", vip=True, anger=0.9))
    clock.advance(5)
    low = await service.enqueue(make_packet(priority="low"))
    first = await agent(db, "first", {"general": 5})
    order = []
    for _ in range(5):
        await make_available(service, first)
        await service.dispatch()
        async with db.session() as session:
            entry_id = await session.scalar(
                select(QueueEntry.id).where(QueueEntry.status == "offered")
            )
        assert entry_id is not None
        order.append(entry_id)
        await service.accept(first, entry_id)
        await service.end(first, entry_id)
        await service.wrap_up(first, entry_id, "resolved")
    # angry VIP (normal + 5 + 5) ties with high, and came later: high first.
    assert order == [late_high, angry_vip, vip, early_normal, low]


async def test_the_longest_idle_agent_with_the_skills_gets_the_offer(
    db: Database, service: QueueService, clock: Clock
):
    billing_only = await agent(db, "billing_only", {"billing": 5})
    idle_long = await agent(db, "idle_long", {"general": 5})
    idle_short = await agent(db, "idle_short", {"general": 9})
    await make_available(service, billing_only)
    await make_available(service, idle_long)
    clock.advance(30)
    await make_available(service, idle_short)
    entry_id = await service.enqueue(make_packet("general"))
    assert await offered_to(db, entry_id) == idle_long
    assert await state_of(db, idle_long) == "offered"
    offer = [e for e in service.bus.of("offer") if e["entry_id"] == entry_id]  # type: ignore[attr-defined]
    assert offer and offer[0]["agent_id"] == idle_long


async def test_an_offer_not_accepted_moves_on_and_the_agent_is_set_away(
    db: Database, service: QueueService, clock: Clock, bus: Recorder
):
    slow = await agent(db, "slow", {"general": 5})
    await make_available(service, slow)
    clock.advance(10)
    quick = await agent(db, "quick", {"general": 5})
    await make_available(service, quick)
    entry_id = await service.enqueue(make_packet())
    assert await offered_to(db, entry_id) == slow
    clock.advance(14)
    await service.sweep()
    assert await offered_to(db, entry_id) == slow  # not yet
    clock.advance(2)
    await service.sweep()
    await service.dispatch()
    assert await state_of(db, slow) == "away"
    assert await offered_to(db, entry_id) == quick
    withdrawn = bus.of("offer_withdrawn")
    assert withdrawn[-1]["agent_id"] == slow and withdrawn[-1]["reason"] == "offer not answered"
    async with db.session() as session:
        outcomes = (await session.scalars(select(Offer.outcome).order_by(Offer.id))).all()
        reasons = (
            await session.scalars(
                select(AgentStateChange.reason).where(
                    AgentStateChange.agent_id == slow, AgentStateChange.state == "away"
                )
            )
        ).all()
    assert outcomes == ["expired", None]
    assert reasons == ["offer not answered"]
    # The entry kept its place: its enqueue time is unchanged.
    assignment = await service.assignment(entry_id)
    queued_at = START + dt.timedelta(seconds=10)
    assert assignment is not None and assignment["enqueued_at"] == queued_at.isoformat()


async def test_a_declined_call_goes_to_someone_else_first(
    db: Database, service: QueueService, clock: Clock
):
    one = await agent(db, "one", {"general": 5})
    await make_available(service, one)
    entry_id = await service.enqueue(make_packet())
    await service.decline(one, entry_id)
    assert await state_of(db, one) == "available"
    await service.dispatch()
    assert await offered_to(db, entry_id) is None  # not straight back to the same agent
    two = await agent(db, "two", {"general": 5})
    await make_available(service, two)
    await service.dispatch()
    assert await offered_to(db, entry_id) == two
    await service.decline(two, entry_id)
    clock.advance(31)  # after the cool-down the first agent may get it again
    await service.dispatch()
    assert await offered_to(db, entry_id) == one


async def test_only_the_offered_agent_can_accept_and_only_once(db: Database, service: QueueService):
    one = await agent(db, "one", {"general": 5})
    other = await agent(db, "other", {"general": 5})
    await make_available(service, one)
    entry_id = await service.enqueue(make_packet())
    with pytest.raises(QueueError, match="no longer offered"):
        await service.accept(other, entry_id)
    await service.accept(one, entry_id)
    with pytest.raises(QueueError):
        await service.accept(one, entry_id)
    assert await status_of(db, entry_id) == "connected"
    assert await state_of(db, one) == "busy"
    with pytest.raises(QueueError, match="end the call"):
        await service.set_state(one, "away")


async def test_overflow_after_the_wait(db: Database, service: QueueService, clock: Clock):
    entry_id = await service.enqueue(make_packet("care", skills=["priority-line"]))
    general = await agent(db, "general_agent", {"general": 5, "priority-line": 1})
    await make_available(service, general)
    await service.dispatch()
    assert await offered_to(db, entry_id) is None
    clock.advance(119)
    await service.sweep()
    await service.dispatch()
    assert await offered_to(db, entry_id) is None
    clock.advance(2)
    await service.sweep()
    await service.dispatch()
    assert await offered_to(db, entry_id) == general
    async with db.session() as session:
        entry = await session.get(QueueEntry, entry_id)
    assert entry is not None and entry.queue == "general" and entry.original_queue == "care"
    # The step's own skill stays with the call; the care queue's skill does not.
    assert entry.skills == ["general", "priority-line"] and entry.overflowed_at is not None


# -- the caller leaves -------------------------------------------------------------------------


async def test_a_caller_who_hangs_up_while_waiting_is_recorded_as_abandoned(
    db: Database, service: QueueService, clock: Clock
):
    packet = make_packet()
    entry_id = await service.enqueue(packet)
    clock.advance(42)
    assert await service.abandon(entry_id) == "waiting"
    async with db.session() as session:
        entry = await session.get(QueueEntry, entry_id)
        call = await session.get(Call, packet.call_id)
    assert entry is not None and entry.status == "abandoned"
    assert entry.end_reason == "caller hung up" and entry.ended_at == START + dt.timedelta(
        seconds=42
    )
    assert call is not None and call.outcome == "abandoned"
    assert await service.abandon(entry_id) is None  # once


async def test_hanging_up_while_offered_withdraws_the_offer(
    db: Database, service: QueueService, bus: Recorder
):
    one = await agent(db, "one", {"general": 5})
    await make_available(service, one)
    entry_id = await service.enqueue(make_packet())
    assert await service.abandon(entry_id) == "offered"
    assert await state_of(db, one) == "available"
    assert bus.of("offer_withdrawn")[-1]["reason"] == "caller hung up"
    with pytest.raises(QueueError):
        await service.accept(one, entry_id)


async def test_hanging_up_while_connected_sends_the_agent_to_wrap_up(
    db: Database, service: QueueService, bus: Recorder, clock: Clock
):
    one = await agent(db, "one", {"general": 5})
    await make_available(service, one)
    entry_id = await service.enqueue(make_packet())
    await service.accept(one, entry_id)
    assert await service.abandon(entry_id) == "connected"
    assert await state_of(db, one) == "wrap_up"
    assert bus.of("caller_left")[-1]["entry_id"] == entry_id
    # Timed wrap-up: after 30 s the agent is free again without a code.
    clock.advance(31)
    await service.sweep()
    assert await state_of(db, one) == "available"
    assert await status_of(db, entry_id) == "done"


# -- wrap-up, callbacks, desktops --------------------------------------------------------------


async def test_wrap_up_saves_the_disposition_and_frees_the_agent(
    db: Database, service: QueueService, clock: Clock
):
    one = await agent(db, "one", {"general": 5})
    await make_available(service, one)
    packet = make_packet()
    entry_id = await service.enqueue(packet)
    await service.accept(one, entry_id)
    clock.advance(95)
    await service.end(one, entry_id)
    assert await state_of(db, one) == "wrap_up"
    clock.advance(10)
    await service.wrap_up(one, entry_id, "resolved", "explained the bill")
    assert await state_of(db, one) == "available"
    async with db.session() as session:
        disposition = await session.scalar(select(Disposition))
        call = await session.get(Call, packet.call_id)
        agent_row = await session.get(Agent, one)
    assert disposition is not None and disposition.code == "resolved"
    assert disposition.notes == "explained the bill"
    assert call is not None and call.disposition == "resolved"
    assert agent_row is not None and agent_row.idle_since == clock.now


async def test_a_callback_keeps_its_place_and_is_started_from_the_desktop(
    db: Database, service: QueueService, clock: Clock
):
    first = await service.enqueue(make_packet())
    clock.advance(60)
    # The caller asked for a callback when they were first in line (a minute ago).
    callback = make_packet(callback="+447700900999", created_at=START - dt.timedelta(seconds=30))
    callback_entry = await service.enqueue(callback)
    one = await agent(db, "one", {"general": 5})
    await make_available(service, one)
    await service.dispatch()
    assert await offered_to(db, callback_entry) == one  # ahead of the call that came first
    assert await offered_to(db, first) is None
    assignment = await service.assignment(callback_entry)
    assert assignment is not None and assignment["kind"] == "callback"
    assert assignment["callback_number"] == "+447700900999"
    await service.accept(one, callback_entry)
    assert await service.start_callback(one, callback_entry) == "+447700900999"
    async with db.session() as session:
        row = await session.scalar(select(Callback))
    assert row is not None and row.status == "started" and row.agent_id == one


async def test_a_closed_desktop_moves_an_offer_on_and_flags_a_call(
    db: Database, service: QueueService, bus: Recorder
):
    one = await agent(db, "one", {"general": 5})
    await make_available(service, one)
    offered = await service.enqueue(make_packet())
    await service.desktop_gone(one)
    assert await state_of(db, one) == "away"
    assert await status_of(db, offered) == "waiting"
    await make_available(service, one)
    await service.dispatch()
    # (the withdrawn offer counts as a decline only for the cool-down; nobody else is there)
    two = await agent(db, "two", {"general": 5})
    await make_available(service, two)
    await service.dispatch()
    busy_entry = offered
    holder = await offered_to(db, busy_entry)
    assert holder is not None
    await service.accept(holder, busy_entry)
    await service.desktop_gone(holder)
    assert await state_of(db, holder) == "busy"  # the call goes on (on the phone)
    flags = bus.of("flag")
    assert flags and flags[-1]["entry_id"] == busy_entry
    async with db.session() as session:
        entry = await session.get(QueueEntry, busy_entry)
    assert entry is not None and "desktop closed" in (entry.flag or "")


# -- figures -----------------------------------------------------------------------------------


async def test_figures_and_estimated_wait(db: Database, service: QueueService, clock: Clock):
    stats = await service.stats()
    assert stats["general"].agents_staffed == 0 and stats["general"].estimated_wait is None
    ids = [await agent(db, f"a{i}", {"general": 5}) for i in range(3)]
    await make_available(service, *ids)
    for _ in range(8):
        await service.enqueue(make_packet())
    service._stats_cache = None
    stats = await service.stats()
    general = stats["general"]
    # three offered (agents staffed, none available), five waiting behind them
    assert general.waiting == 8 and general.agents_staffed == 3 and general.agents_available == 0
    assert general.aht == 180.0  # the queue's default until it has history
    assert general.estimated_wait is not None
    # nine callers ahead of a newcomer, three agents: a full round ahead, so position decides
    assert general.estimated_wait == pytest.approx(9 * 180 / 3)
    flows = await service.flow_stats()
    assert flows["general"] == {
        "waiting": 8,
        "agents_available": 0,
        "agents_staffed": 3,
        "estimated_wait": 540,
    }
    views = await service.queue_views(["general"], limit=5)
    assert views[0]["waiting"] == 8 and len(views[0]["entries"]) == 5
    assert views[0]["entries"][0]["caller"] == "Ann Example"
    assert [e["position"] for e in views[0]["entries"]] == [1, 2, 3, 4, 5]


async def test_handle_times_from_history(db: Database, service: QueueService, clock: Clock):
    one = await agent(db, "one", {"general": 5})
    for _ in range(5):
        await make_available(service, one)
        entry_id = await service.enqueue(make_packet())
        await service.accept(one, entry_id)
        clock.advance(120)
        await service.end(one, entry_id)
        await service.wrap_up(one, entry_id, "resolved")
    service._stats_cache = None
    assert (await service.stats())["general"].aht == pytest.approx(120 + 30)


async def test_states_an_agent_may_set(db: Database, service: QueueService):
    one = await agent(db, "one", {"general": 5})
    with pytest.raises(QueueError):
        await service.set_state(one, "busy")
    assert await service.set_state(one, "away") == "away"
    assert await service.set_state(one, "available") == "available"
    entry_id = await service.enqueue(make_packet())
    assert await offered_to(db, entry_id) == one
    # Going away while offered declines the offer.
    assert await service.set_state(one, "away") == "away"
    assert await status_of(db, entry_id) == "waiting"


async def test_a_call_without_a_handoff_is_recorded(db: Database, service: QueueService, clock):
    from voicebot.engine.state import CallState
    from voicebot.handoff.packet import CallerInfo

    state = CallState(caller=CallerInfo(number="+447700900123"))
    state.record("bot", "Hello, how can I help?", START)
    state.record("caller", "what are your opening hours", START, intent="opening_hours")
    state.intent, state.disposition = "opening_hours", "answered"
    clock.advance(20)
    await service.record_call(state, channel="softphone")
    async with db.session() as session:
        call = await session.get(Call, state.call_id)
        turns = (await session.scalars(select(Turn.text).order_by(Turn.seq))).all()
    assert call is not None and call.outcome == "ended" and call.disposition == "answered"
    assert call.ended_at == START + dt.timedelta(seconds=20) and call.started_at == START
    assert turns == ["Hello, how can I help?", "what are your opening hours"]
