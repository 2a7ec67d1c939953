"""Builds the handoff packet from a call's state, with a summary assembled from the flow.

The offline summary is written for an agent glancing at a screen: what the caller wants, how far
the bot got, what it learned, why it is handing over, and the caller's last words. An LLM brain
may replace the summary with its own; every other field stays as built here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import get_args

from voicebot.engine.state import CallState
from voicebot.flows.schema import BotDefinition, primary_subtag
from voicebot.handoff.packet import (
    CallbackRequest,
    HandoffPacket,
    IntentInfo,
    Priority,
    SentimentInfo,
)

_PRIORITIES: tuple[str, ...] = get_args(Priority)


def language_skill(language: str) -> str:
    """The agent skill a call in ``language`` needs on a ``language_skill`` queue."""
    return f"lang:{primary_subtag(language)}"


def normalise_priority(value: object) -> Priority:
    text = str(value).strip().lower() if value is not None else "normal"
    aliases = {"1": "urgent", "2": "high", "3": "normal", "4": "low", "medium": "normal"}
    text = aliases.get(text, text)
    return text if text in _PRIORITIES else "normal"  # type: ignore[return-value]


def build_packet(
    state: CallState,
    bot: BotDefinition,
    now: dt.datetime,
    *,
    queue: str,
    skills: list[str],
    priority: Priority,
    reason: str,
    callback_number: str | None = None,
) -> HandoffPacket:
    queue_skills = list(bot.queues[queue].skills) if queue in bot.queues else []
    if queue in bot.queues and bot.queues[queue].language_skill:
        # the agent must speak the caller's language: lang:es for a call in es-ES
        queue_skills.append(language_skill(state.language))
    wait = state.queues.get(queue, {}).get("estimated_wait")
    return HandoffPacket(
        id=uuid.uuid4().hex,
        call_id=state.call_id,
        created_at=now,
        caller=state.caller.model_copy(deep=True),
        language=state.language,
        intent=IntentInfo(name=state.intent, confidence=round(state.confidence, 3)),
        summary=assemble_summary(state, bot, reason),
        transcript=list(state.transcript),
        slots=state.masked_slots(),
        verified=bool(state.slots.get("verified")),
        sentiment=SentimentInfo(
            anger=round(state.anger, 3),
            score=round(state.sentiment, 3),
            trend=[round(x, 3) for x in state.sentiment_trend],
        ),
        sources=list(state.sources),
        queue=queue,
        skills=sorted({*queue_skills, *skills}),
        priority=priority,
        reason=reason,
        flow=state.flow,
        step=state.steps_reached[-1] if state.steps_reached else None,
        callback=(
            CallbackRequest(number=callback_number, requested_at=now) if callback_number else None
        ),
        estimated_wait=float(wait) if isinstance(wait, int | float) else None,
    )


def assemble_summary(state: CallState, bot: BotDefinition, reason: str) -> str:
    """Two to four plain sentences from the flow, for when no LLM writes the summary."""
    who = state.caller.name or "The caller"
    if state.caller.vip:
        who += " (VIP)"
    sentences: list[str] = []
    if state.intent:
        intent = bot.intents.get(state.intent)
        flow = next((f for f in bot.flows.values() if state.intent in f.triggers), None)
        described = (intent.description if intent else None) or (flow.description if flow else None)
        want = (described or state.intent).rstrip(".")
        sentences.append(f"{who}: {_lower_first(want)}.")
    else:
        sentences.append(f"{who} did not state a clear reason for calling.")
    if state.flows_run:
        flows = ", ".join(dict.fromkeys(state.flows_run))
        sentences.append(f"The bot ran {flows} and handed over because: {reason}.")
    else:
        sentences.append(f"Handed over because: {reason}.")
    slots = state.masked_slots()
    if slots:
        facts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in slots.items() if v is not None)
        if facts:
            sentences.append(f"Known: {facts}.")
    last = next((t.text for t in reversed(state.transcript) if t.role == "caller"), None)
    if last:
        sentences.append(f'Last said: "{last}".')
    return " ".join(sentences)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text
