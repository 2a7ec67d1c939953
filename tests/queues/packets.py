"""Handoff packets for queue tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from voicebot.handoff.packet import (
    CallbackRequest,
    CallerInfo,
    HandoffPacket,
    IntentInfo,
    SentimentInfo,
    TranscriptLine,
)


def make_packet(
    queue: str = "general",
    *,
    priority: str = "normal",
    vip: bool = False,
    anger: float = 0.0,
    number: str | None = "+447700900123",
    name: str | None = "Ann Example",
    skills: list[str] | None = None,
    callback: str | None = None,
    created_at: dt.datetime | None = None,
    channel: str | None = None,
    **extra: Any,
) -> HandoffPacket:
    now = created_at or dt.datetime.now(dt.UTC)
    return HandoffPacket(
        id=uuid.uuid4().hex,
        call_id=uuid.uuid4().hex,
        created_at=now,
        caller=CallerInfo(
            number=number, name=name, vip=vip, attributes={"channel": channel} if channel else {}
        ),
        language="en-GB",
        intent=IntentInfo(name="billing_question", confidence=0.91),
        summary="Ann wants to know why her bill went up.",
        transcript=[
            TranscriptLine(role="bot", text="Hello, how can I help?", at=now),
            TranscriptLine(role="caller", text="why is my bill higher", at=now, intent="billing"),
        ],
        slots={"account_number": "****5678"},
        verified=True,
        sentiment=SentimentInfo(anger=anger, score=-anger, trend=[0.0, -anger]),
        sources=[],
        queue=queue,
        skills=skills or [],
        priority=priority,
        reason="caller asked for a person",
        callback=CallbackRequest(number=callback, requested_at=now) if callback else None,
        **extra,
    )
