"""The tables. One module so that Alembic's autogenerate and a reader see the whole schema.

Times are stored as naive UTC (SQLite has no time zones) and read back as aware UTC, so the
code never compares a naive time with an aware one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from voicebot.store.encryption import EncryptedJSON, EncryptedText


class UTCDateTime(TypeDecorator[dt.datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware UTC time")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        dict[str, int]: JSON(),
        list[str]: JSON(),
    }


# Agent states. "away" is the not-ready state an agent is put in when an offer times out.
AGENT_STATES = ("offline", "away", "available", "offered", "busy", "wrap_up")
ROLES = ("agent", "supervisor", "admin")
# Queue entry states; "waiting" and "offered" are in the queue, the rest have left it.
ENTRY_STATES = ("waiting", "offered", "connected", "wrap_up", "done", "abandoned")


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(index=True)  # reports select by time
    ended_at: Mapped[dt.datetime | None]
    channel: Mapped[str] = mapped_column(String(32), default="unknown")
    caller_number: Mapped[str | None] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(200))
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    intent: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(String(32))  # ended, handoff, callback, abandoned
    disposition: Mapped[str | None] = mapped_column(String(100))
    # The bot's leg, as analytics reads it (written when the bot's part of the call is over):
    # the mean sentiment score (-1..1) and the anger at the last caller turn (0..1).
    sentiment: Mapped[float | None] = mapped_column(Float)
    anger: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(16))
    bot_ended_at: Mapped[dt.datetime | None]
    # Who the contact was with, the same on every channel (voicebot/channels/identity.py):
    # "tel:+441632960001", "email:ann@example.com" or "site:<the company's own id>".
    customer_id: Mapped[str | None] = mapped_column(String(200), index=True)


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int]
    role: Mapped[str] = mapped_column(String(16))
    # What was said (masked): encrypted at rest when a key is set (voicebot/store/encryption.py)
    text: Mapped[str] = mapped_column(EncryptedText)
    at: Mapped[dt.datetime]
    intent: Mapped[str | None] = mapped_column(String(100))


class Handoff(Base):
    __tablename__ = "handoffs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(EncryptedText)
    intent: Mapped[str | None] = mapped_column(String(100))
    # transcript, slots, summary: encrypted at rest when a key is set; never read in SQL
    packet: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    # Why, as a category reports count by: asked, angry, no_match, technical, after_hours, flow
    # (voicebot/engine/reasons.py); ``reason`` is the content team's own words.
    reason_kind: Mapped[str | None] = mapped_column(String(32))


class Agent(Base):
    """A person who signs in: an agent takes calls; supervisors and admins see more."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    password_hash: Mapped[str] = mapped_column(String(255))
    skills: Mapped[dict[str, int]] = mapped_column(default=dict)  # skill -> proficiency 1-10
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(16), default="offline", index=True)
    state_since: Mapped[dt.datetime]
    # When the agent last became free: routing offers to the longest idle first.
    idle_since: Mapped[dt.datetime | None]
    wrap_up_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    # Chats held at once besides one call; None: the deployment's default (VOICEBOT_MAX_CHATS).
    max_chats: Mapped[int | None] = mapped_column(Integer)


class AgentStateChange(Base):
    __tablename__ = "agent_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime]
    reason: Mapped[str | None] = mapped_column(String(200))


class QueueEntry(Base):
    """A caller (or a callback) waiting for, offered to, or talking to an agent."""

    __tablename__ = "queue_entries"
    __table_args__ = (Index("ix_entries_routing", "status", "queue", "priority", "enqueued_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    handoff_id: Mapped[str] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="call")  # call | callback
    # voice (phone, softphone, callback) or chat (web chat, messaging): an agent holds one
    # voice contact and up to max_chats chats at once.
    media: Mapped[str] = mapped_column(String(16), default="voice", server_default="voice")
    language: Mapped[str | None] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(100))
    original_queue: Mapped[str] = mapped_column(String(100))
    skills: Mapped[list[str]] = mapped_column(default=list)
    priority: Mapped[int] = mapped_column(Integer, default=1)  # higher is served first
    enqueued_at: Mapped[dt.datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    offered_to: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    offered_at: Mapped[dt.datetime | None]
    offer_expires_at: Mapped[dt.datetime | None]
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    connected_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    wrap_up_until: Mapped[dt.datetime | None]
    # When wrap-up was over (submitted, or its time ran out): handle time = talk + wrap-up.
    wrapped_at: Mapped[dt.datetime | None]
    overflowed_at: Mapped[dt.datetime | None]
    callback_number: Mapped[str | None] = mapped_column(String(64))
    # The API node that holds the caller's audio (a softphone call), for the desktop to join.
    audio_node: Mapped[str | None] = mapped_column(String(64))
    flag: Mapped[str | None] = mapped_column(String(200))  # for supervisors
    end_reason: Mapped[str | None] = mapped_column(String(100))


class Offer(Base):
    """Every offer of an entry to an agent and what became of it (the access rule reads it)."""

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(
        ForeignKey("queue_entries.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    offered_at: Mapped[dt.datetime]
    outcome: Mapped[str | None] = mapped_column(String(16))  # accepted declined expired withdrawn
    decided_at: Mapped[dt.datetime | None]


class Callback(Base):
    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(
        ForeignKey("queue_entries.id", ondelete="CASCADE"), unique=True
    )
    handoff_id: Mapped[str] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending started done
    started_at: Mapped[dt.datetime | None]
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))


class Disposition(Base):
    __tablename__ = "dispositions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(
        ForeignKey("queue_entries.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    notes: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime]


class CallEvent(Base):
    """What analytics counts in a call beyond its row: each flow and how it ended, knowledge
    questions the bot could not answer, each turn's latency.

    ``kind``: ``flow`` (``name`` the flow, ``label`` completed | handoff | abandoned | left),
    ``no_answer`` (``name`` the caller's question, masked), ``turn`` (``value`` the latency in
    ms from the end of the caller's speech to the first bot audio, ``label`` what ended the
    turn). Written once per call, with the call's other facts.
    """

    __tablename__ = "call_events"
    __table_args__ = (Index("ix_call_events_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    label: Mapped[str | None] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)


class CallReview(Base):
    """The automated quality check of a finished call: its score, the rules it failed (with
    the transcript lines that failed them) and the post-call summary."""

    __tablename__ = "call_reviews"

    call_id: Mapped[str] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    checked_at: Mapped[dt.datetime] = mapped_column(index=True)
    score: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    # the failed rules quote transcript lines, the summary retells the call: both encrypted
    failures: Mapped[list[dict[str, Any]]] = mapped_column(EncryptedJSON, default=list)
    summary: Mapped[str] = mapped_column(EncryptedText, default="")
    rules: Mapped[str] = mapped_column(String(64))  # a hash of the rule set that scored it


class AuditEvent(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    success: Mapped[bool] = mapped_column(Boolean, default=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class UserSession(Base):
    """A signed-in browser. Only a hash of the cookie's token is stored."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    ip: Mapped[str | None] = mapped_column(String(64))


__all__ = [
    "AGENT_STATES",
    "ENTRY_STATES",
    "ROLES",
    "Agent",
    "AgentStateChange",
    "AuditEvent",
    "Base",
    "Call",
    "CallEvent",
    "CallReview",
    "Callback",
    "Disposition",
    "Handoff",
    "Offer",
    "QueueEntry",
    "Turn",
    "UserSession",
]
