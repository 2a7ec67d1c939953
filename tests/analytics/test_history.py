"""The demo history on SQLite and PostgreSQL: what it writes is consistent (answered after
enqueued, handle times after talk, every entry final, agents offline), realistic (containment,
reason categories, waits), marked ``demo-``, reproducible, and removed exactly by clear."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import func, insert, select

from tests.queues import conftest as queue_fixtures
from voicebot.demo.history import (
    PREFIX,
    HistoryError,
    clear_history,
    demo_rows,
    seed_history,
)
from voicebot.engine.reasons import REASON_KINDS
from voicebot.handoff.packet import HandoffPacket
from voicebot.queues.service import WRAP_UP_CODES
from voicebot.store.db import Database
from voicebot.store.models import (
    Agent,
    AgentStateChange,
    Call,
    Callback,
    CallEvent,
    Disposition,
    Handoff,
    Offer,
    QueueEntry,
    Turn,
)

END = dt.datetime(2026, 11, 27, 16, 30, tzinfo=dt.UTC)  # a Friday afternoon

# Every test here runs on SQLite and on PostgreSQL (tests/queues/conftest.py).
db_url = queue_fixtures.db_url
db = queue_fixtures.db


async def count(db: Database, model: type, *where: object) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def add_real_rows(db: Database) -> None:
    """A call and an agent that are not the demo's: clear must leave them."""
    now = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    async with db.transaction() as session:
        await session.execute(
            insert(Call), [{"id": "real-call", "started_at": now, "channel": "sip"}]
        )
        await session.execute(
            insert(Turn),
            [{"call_id": "real-call", "seq": 0, "role": "bot", "text": "hello", "at": now}],
        )
        await session.execute(
            insert(Agent),
            [
                {
                    "username": "alice",
                    "display_name": "Alice",
                    "password_hash": "x",
                    "skills": {"general": 5},
                    "state_since": now,
                    "created_at": now,
                }
            ],
        )


async def test_seed_is_consistent_realistic_and_cleared(db: Database) -> None:
    await add_real_rows(db)
    summary = await seed_history(db, days=8, calls_per_day=250, end=END, seed=3)
    assert await demo_rows(db) > 0
    calls = await count(db, Call, Call.id.like(f"{PREFIX}%"))
    assert calls == summary.calls > 1500
    assert summary.rows["calls"] == calls
    assert summary.rows["turns"] == await count(db, Turn, Turn.call_id.like(f"{PREFIX}%"))
    assert 0.55 <= summary.containment <= 0.68
    contained = await count(
        db, Call, Call.id.like(f"{PREFIX}%"), ~Call.id.in_(select(Handoff.call_id))
    )
    assert contained == summary.contained

    async with db.session() as session:
        entries = (await session.scalars(select(QueueEntry))).all()
        handoffs = (await session.scalars(select(Handoff))).all()
        agents = (await session.scalars(select(Agent).where(Agent.username.like("demo-%")))).all()
        events = (await session.scalars(select(CallEvent))).all()
        started = await session.scalar(select(func.min(Call.started_at)))
        latest = await session.scalar(select(func.max(Call.started_at)))
    assert started is not None and latest is not None and latest < END
    assert (END - started).days == 7  # eight local days: from the 20th's midnight to the 27th
    assert entries and all(e.id.startswith(PREFIX) for e in entries)
    assert all(h.id.startswith(PREFIX) and h.call_id.startswith(PREFIX) for h in handoffs)
    assert len(agents) == summary.agents >= 12
    # every entry is over: the live ACD must never route a demo caller or offer to a demo agent
    assert {e.status for e in entries} <= {"done", "abandoned"}
    assert all(a.state == "offline" and a.password_hash.startswith("!") for a in agents)
    answered = [e for e in entries if e.connected_at is not None]
    assert len([e for e in answered if e.kind == "call"]) == summary.answered
    for entry in answered:
        assert entry.agent_id is not None and entry.ended_at is not None
        assert entry.connected_at >= entry.enqueued_at
        assert entry.wrapped_at is not None and entry.wrapped_at >= entry.ended_at
    calls_only = [e for e in entries if e.kind == "call"]
    abandoned = [e for e in calls_only if e.status == "abandoned"]
    assert all(e.connected_at is None and e.ended_at >= e.enqueued_at for e in abandoned)
    abandon_rate = len(abandoned) / len(calls_only)
    assert 0.005 < abandon_rate < 0.15
    waits = sorted((e.connected_at - e.enqueued_at).total_seconds() for e in answered)
    assert waits[len(waits) // 2] < 60  # most callers are answered within the targets
    for entry in entries:  # a care caller who waited past overflow_after moved to general
        if entry.overflowed_at is not None:
            assert (entry.original_queue, entry.queue) == ("care", "general")
            assert (entry.overflowed_at - entry.enqueued_at).total_seconds() >= 300
    assert any(e.kind == "callback" for e in entries)
    # reasons: every category the engine gives, in plausible shares
    kinds = Counter(h.reason_kind for h in handoffs)
    assert set(kinds) == set(REASON_KINDS)
    assert kinds["flow"] > kinds["technical"] > 0 and kinds["asked"] > kinds["after_hours"]
    for handoff in handoffs[:300]:
        packet = HandoffPacket.model_validate(handoff.packet)
        assert packet.id == handoff.id and packet.reason_kind == handoff.reason_kind
        assert packet.transcript and packet.queue == handoff.queue
    latencies = sorted(e.value for e in events if e.kind == "turn" and e.value is not None)
    assert 450 < latencies[len(latencies) // 2] < 800
    assert any(e.kind == "no_answer" for e in events)
    assert {e.label for e in events if e.kind == "flow"} == {"completed", "handoff", "abandoned"}
    async with db.session() as session:
        codes = set((await session.scalars(select(Disposition.code))).all())
    assert codes and codes <= set(WRAP_UP_CODES)  # the codes the desktop offers
    states = await count(db, AgentStateChange)
    assert states == summary.rows["agent_states"] > 0

    removed = await clear_history(db)
    assert removed["calls"] == calls and removed["agents"] == summary.agents
    assert await demo_rows(db) == 0
    for model in (Handoff, QueueEntry, Offer, Callback, Disposition, CallEvent, AgentStateChange):
        assert await count(db, model) == 0, model
    # what was not the demo's is still there
    assert await count(db, Call) == 1 and await count(db, Turn) == 1
    assert await count(db, Agent) == 1


async def test_same_seed_same_rows_and_packets_as_pydantic_makes_them(
    db: Database,
) -> None:
    async def snapshot(bulk: bool) -> tuple[list[tuple[object, ...]], dict[str, object]]:
        await seed_history(db, days=3, calls_per_day=200, end=END, seed=7, bulk=bulk)
        async with db.session() as session:
            rows = (
                await session.execute(
                    select(Call.id, Call.started_at, Call.intent, Call.outcome).order_by(Call.id)
                )
            ).all()
            packets = dict((await session.execute(select(Handoff.id, Handoff.packet))).all())
        await clear_history(db)
        return [tuple(r) for r in rows], packets

    fast_rows, fast_packets = await snapshot(bulk=True)
    slow_rows, slow_packets = await snapshot(bulk=False)
    assert fast_rows == slow_rows and len(fast_rows) > 300
    # the dicts written in bulk are what HandoffPacket.model_dump(mode="json") gives
    assert fast_packets == slow_packets


async def test_bad_arguments_are_refused(db: Database) -> None:
    with pytest.raises(HistoryError, match="days must be 1-400"):
        await seed_history(db, days=0)
    with pytest.raises(HistoryError, match="calls per day"):
        await seed_history(db, calls_per_day=0)
    assert await demo_rows(db) == 0
