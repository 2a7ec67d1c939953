"""A customer's last contacts on every channel, for the greeting and the screen pop.

Calls are stored with ``calls.customer_id`` (voicebot/channels/identity.py), whatever the
channel: phone, softphone, SIP, web chat, messaging. This reads the newest of them back as
:class:`~voicebot.handoff.packet.PastContact`: when, which channel, about what, how it ended,
and a short summary (the post-call review's, else the handoff's). Nothing sensitive leaves:
no transcript, no slot values, and the summary masked as logs are (card data, digit runs,
email addresses).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from voicebot.handoff.packet import PastContact
from voicebot.privacy.masking import mask_pii
from voicebot.store.db import Database
from voicebot.store.models import Call, CallReview, Disposition, Handoff, QueueEntry

MAX_CONTACTS = 20
SUMMARY_CHARS = 400


async def last_contacts(
    db: Database, customer_id: str, *, limit: int = 5, before_call: str | None = None
) -> list[PastContact]:
    """The customer's newest contacts first, at most ``limit``; ``before_call`` leaves out that
    call and anything that started after it (the history as it stood when it began)."""
    if not customer_id or limit <= 0:
        return []
    limit = min(limit, MAX_CONTACTS)
    async with db.session() as session:
        query = select(Call).where(Call.customer_id == customer_id)
        if before_call is not None:
            query = query.where(Call.id != before_call)
            started = await session.scalar(select(Call.started_at).where(Call.id == before_call))
            if started is not None:
                query = query.where(Call.started_at <= started)
        calls = list(
            (await session.scalars(query.order_by(Call.started_at.desc()).limit(limit))).all()
        )
        if not calls:
            return []
        ids = [call.id for call in calls]
        reviews = {
            call_id: summary
            for call_id, summary in (
                await session.execute(
                    select(CallReview.call_id, CallReview.summary).where(
                        CallReview.call_id.in_(ids)
                    )
                )
            ).all()
        }
        packets: dict[str, Any] = {}
        for call_id, packet in (
            await session.execute(
                select(Handoff.call_id, Handoff.packet)
                .where(Handoff.call_id.in_(ids))
                .order_by(Handoff.created_at)
            )
        ).all():
            packets[call_id] = packet  # the latest handoff of the call wins
        codes: dict[str, str] = {}
        for call_id, code in (
            await session.execute(
                select(QueueEntry.call_id, Disposition.code)
                .join(Disposition, Disposition.entry_id == QueueEntry.id)
                .where(QueueEntry.call_id.in_(ids))
                .order_by(Disposition.at)
            )
        ).all():
            codes[call_id] = code
    return [
        PastContact(
            call_id=call.id,
            at=call.started_at,
            channel=call.channel,
            intent=call.intent,
            # what the agent wrapped the contact up as, else how the flow or the call ended
            outcome=codes.get(call.id) or call.disposition or call.outcome,
            summary=_summary(reviews.get(call.id), packets.get(call.id)),
        )
        for call in calls
    ]


def _summary(review: str | None, packet: Any) -> str | None:
    text = review or (packet.get("summary") if isinstance(packet, dict) else None)
    if not isinstance(text, str) or not text.strip():
        return None
    text = mask_pii(" ".join(text.split()))
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 1].rstrip() + "…"
    return text


def days_ago(at: dt.datetime, now: dt.datetime) -> int:
    """Whole days between a contact and now, counted in calendar days of ``now``'s zone (so
    "yesterday evening" is 1 even when less than 24 hours ago)."""
    when = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    zone = now.tzinfo or dt.UTC
    return max(0, (now.astimezone(zone).date() - when.astimezone(zone).date()).days)


# How a contact came, in words a greeting can use ("Last time you contacted us by chat"), per
# primary language; another language gets the English words (a flow can map ``channel``).
_HOW: dict[str, dict[str, str]] = {
    "en": {"chat": "by chat", "messaging": "by text message", "text": "by text"},
    "es": {"chat": "por chat", "messaging": "por mensaje", "text": "por escrito"},
}
_BY_PHONE = {"en": "by phone", "es": "por teléfono"}
_WHEN: dict[str, tuple[str, str, str]] = {
    "en": ("today", "yesterday", "{n} days ago"),
    "es": ("hoy", "ayer", "hace {n} días"),
}


def last_contact_view(
    contact: PastContact, now: dt.datetime, *, language: str = "en"
) -> dict[str, Any]:
    """A contact as flows see it (``caller.history``, ``caller.last_contact``): at, channel,
    intent, outcome, days_ago, and for greetings ``how`` ("by chat"), ``when`` ("yesterday")
    and ``topic`` (the intent in words: "pay bill")."""
    primary = language.split("-")[0].lower()
    if primary not in _HOW:
        primary = "en"
    days = days_ago(contact.at, now)
    today, yesterday, earlier = _WHEN[primary]
    return {
        "at": contact.at.isoformat(),
        "channel": contact.channel,
        "intent": contact.intent,
        "outcome": contact.outcome,
        "days_ago": days,
        "how": _HOW[primary].get(contact.channel, _BY_PHONE[primary]),
        "when": today if days == 0 else yesterday if days == 1 else earlier.format(n=days),
        "topic": contact.intent.replace("_", " ") if contact.intent else None,
    }


def history_lookup(
    db: Database, *, limit: int = 5
) -> Callable[[str, str], Awaitable[list[PastContact]]]:
    """What BotRuntime.history runs at call start: (customer id, call id) -> last contacts."""

    async def lookup(customer_id: str, call_id: str) -> list[PastContact]:
        return await last_contacts(db, customer_id, limit=limit, before_call=call_id)

    return lookup
