"""A handoff packet as the engine makes it, for the telephony tests."""

from __future__ import annotations

import datetime as dt

from voicebot.handoff.packet import CallerInfo, HandoffPacket, IntentInfo, SentimentInfo


def handoff_packet(
    *, packet_id: str = "H-42", queue: str = "billing", intent: str = "pay_bill"
) -> HandoffPacket:
    return HandoffPacket(
        id=packet_id,
        call_id="call-1",
        created_at=dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC),
        caller=CallerInfo(number="+447700900123"),
        language="en-GB",
        intent=IntentInfo(name=intent, confidence=0.9),
        summary="wants help",
        transcript=[],
        slots={},
        verified=False,
        sentiment=SentimentInfo(),
        sources=[],
        queue=queue,
        skills=[],
        priority="normal",
        reason="caller asked",
    )
