"""The handoff packet: everything the human agent sees before saying hello.

It is a typed, JSON-serialisable record (pydantic) so that a queue, an agent desktop or an
external ACD receives the same fields. Sensitive slot values never enter it unmasked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

Priority = Literal["low", "normal", "high", "urgent"]


class CallerInfo(BaseModel):
    number: str | None = None
    name: str | None = None
    vip: bool = False
    attributes: dict[str, Any] = Field(default_factory=dict)


class IntentInfo(BaseModel):
    name: str | None = None
    confidence: float = 0.0


class TranscriptLine(BaseModel):
    # "agent": a human agent's message in a chat after the handoff
    role: Literal["caller", "bot", "keypad", "event", "agent"]
    text: str
    at: dt.datetime
    intent: str | None = None


class Source(BaseModel):
    """A knowledge passage that grounded an answer."""

    id: str
    title: str | None = None
    file: str | None = None
    heading: str | None = None
    score: float = 0.0


class SentimentInfo(BaseModel):
    anger: float = 0.0
    score: float = 0.0
    trend: list[float] = Field(default_factory=list)


class PastContact(BaseModel):
    """One earlier contact of the same customer, on any channel, for the screen pop."""

    call_id: str
    at: dt.datetime
    channel: str
    intent: str | None = None
    outcome: str | None = None
    summary: str | None = None


class CallbackRequest(BaseModel):
    number: str
    requested_at: dt.datetime


class HandoffPacket(BaseModel):
    id: str
    call_id: str
    created_at: dt.datetime
    caller: CallerInfo
    language: str
    intent: IntentInfo
    summary: str
    transcript: list[TranscriptLine]
    slots: dict[str, Any]
    verified: bool
    sentiment: SentimentInfo
    sources: list[Source]
    queue: str
    skills: list[str]
    priority: Priority
    reason: str
    # the reason's category: asked, angry, no_match, technical, after_hours, flow
    # (voicebot/engine/reasons.py); set by the engine, absent from packets made elsewhere
    reason_kind: str | None = None
    flow: str | None = None
    step: str | None = None
    callback: CallbackRequest | None = None
    estimated_wait: float | None = None
    # Where the conversation happens: phone, softphone, sip, chat, messaging (docs/channels.md)
    channel: str | None = None
    # The customer's identity across channels and their last contacts, newest first
    customer_id: str | None = None
    history: list[PastContact] = Field(default_factory=list)
