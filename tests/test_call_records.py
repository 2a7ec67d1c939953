"""What a call leaves for reports, through the real runtime and store: the handoff's reason
category (asked, angry, no match, technical, flow) from how the engine got there; and, at the
end of the bot's leg, the call's sentiment, each flow's outcome, the questions nobody could
answer and each turn's latency, stored once (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from tests.conftest import Bot
from tests.queues import conftest as queue_fixtures
from tests.test_steps import HEADER
from voicebot.engine.reasons import reason_kind
from voicebot.flows.schema import Queue, Trigger
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.store.db import Database
from voicebot.store.models import Call, CallEvent, Handoff

db_url = queue_fixtures.db_url
db = queue_fixtures.db

FLOWS = """\
flows:
  pay:
    trigger: pay
    steps:
      - collect: account
        type: digits
        length: 4
        dtmf: true
        prompt: Your four digit number?
        max_attempts: 1
        on_fail: { handoff: general, reason: account not given }
  hours:
    trigger: hours
    steps:
      - say: We are open nine to five.
"""


async def test_reason_categories_follow_the_path_to_the_handoff(make_bot) -> None:
    bot: Bot = make_bot(HEADER + FLOWS)
    asked = bot.runtime.new_call()
    await asked.start()
    reply = await asked.caller_said("can I talk to a person")
    assert reply.handoff is not None and reply.handoff.reason_kind == "asked"

    no_match = bot.runtime.new_call()
    await no_match.start()
    await no_match.caller_said("I want to pay my bill")
    reply = await no_match.keys_pressed("12#")
    assert reply.handoff is not None and reply.handoff.reason_kind == "no_match"

    technical = bot.runtime.new_call()
    await technical.start()
    bot.runtime.engine.intent_flows = None  # type: ignore[assignment]  # any bug will do
    reply = await technical.caller_said("when are you open")
    assert reply.handoff is not None and reply.handoff.reason_kind == "technical"


def test_reason_words_decide_when_the_path_does_not() -> None:
    anger = Trigger.model_validate({"if": "sentiment.anger > 0.8", "handoff": "care"})
    intent = Trigger.model_validate({"intent": "agent", "handoff": "general"})
    assert reason_kind(["trigger:0"], "x", [anger, intent]) == "angry"
    assert reason_kind(["trigger:1"], "x", [anger, intent]) == "asked"
    assert reason_kind(["closed"], "x", []) == "after_hours"
    assert reason_kind(["on_error"], "x", []) == "technical"
    assert reason_kind([], "caller is upset", []) == "angry"
    assert reason_kind([], "the caller wants a person", []) == "asked"
    assert reason_kind([], "account locked", []) == "flow"
    assert reason_kind([], "account locked", [], asked=True) == "asked"


async def test_the_bot_leg_is_stored_once_with_its_figures(make_bot, db: Database) -> None:
    # a question no intent matches is looked up in the knowledge base (here: an empty one)
    fallback = "  knowledge_fallback: { min_score: 0.45 }\n  triggers:"
    bot: Bot = make_bot(HEADER.replace("  triggers:", fallback, 1) + FLOWS)
    service = QueueService(db, LocalBus(), {"general": Queue(skills=["general"])})
    contained = bot.runtime.new_call()
    await contained.start()
    await contained.caller_said("when are you open")
    await contained.caller_said("do you sell goldfish food")  # no intent, no knowledge
    await service.record_call(contained.state, channel="softphone")
    await service.record_call(contained.state, channel="softphone")  # nothing twice

    handed = bot.runtime.new_call()
    await handed.start()
    await handed.caller_said("I want to pay my bill")
    reply = await handed.keys_pressed("1#")
    assert reply.handoff is not None
    # what the speech pipeline notes of each spoken turn (voicebot/agent: the turn's timings)
    handed.state.timings.append({"total_ms": 640, "ended_by": "timers"})
    await service.enqueue(reply.handoff, channel="softphone")
    await service.record_call(handed.state, channel="softphone")

    async with db.session() as session:
        calls = {c.id: c for c in (await session.scalars(select(Call))).all()}
        events = (await session.scalars(select(CallEvent).order_by(CallEvent.id))).all()
        handoff = (await session.scalars(select(Handoff))).one()
    first, second = calls[contained.state.call_id], calls[handed.state.call_id]
    assert first.outcome == "ended" and first.bot_ended_at is not None
    assert first.sentiment is not None and first.language
    assert second.outcome == "handoff" and second.ended_at is None  # the human leg's to end
    assert second.bot_ended_at is not None and handoff.reason_kind == "no_match"
    mine = [(e.kind, e.name, e.label) for e in events if e.call_id == first.id]
    assert ("flow", "hours", "completed") in mine
    assert [e for e in mine if e[0] == "no_answer"] == [
        ("no_answer", "do you sell goldfish food", None)
    ]
    # a text call has no speech latency to time; a voice call's turns each leave one row
    assert [e for e in events if e.call_id == first.id and e.kind == "turn"] == []
    timed = [(e.label, e.value) for e in events if e.call_id == second.id and e.kind == "turn"]
    assert timed == [("timers", 640.0)]
    flows = [(e.name, e.label) for e in events if e.call_id == second.id and e.kind == "flow"]
    assert flows == [("pay", "handoff")]
