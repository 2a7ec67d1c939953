"""``POST /api/livekit/webhook``: LiveKit's server events, accepted only when LiveKit signed them.

LiveKit signs each webhook with the API key and secret: the ``Authorization`` header is a JWT
issued by the API key, signed with the secret, whose ``sha256`` claim is the base64 SHA-256 of
the body. ``livekit.api.WebhookReceiver`` checks all three (issuer, signature and expiry, body
hash); anything else gets 401 and nothing is acted on, so a forged "caller left" cannot end a
call.

What is acted on is deliberately small: a SIP participant leaving their room (the room is named
by the call id) abandons that call's queue entry if it is still waiting, offered or connected,
as the worker would. The worker normally sees that first; the webhook covers a worker that
died with the caller still queued. Every other event is logged and acknowledged.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from livekit import api
from livekit.protocol import models
from sqlalchemy import select

from voicebot.store.models import Call, QueueEntry

router = APIRouter(prefix="/api/livekit", tags=["telephony"])
logger = logging.getLogger("voicebot.api.livekit")

MAX_BODY_BYTES = 256 * 1024
_ACTIVE = ("waiting", "offered", "connected")


def _receiver(request: Request) -> api.WebhookReceiver:
    settings = request.app.state.settings
    secret = settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else ""
    if not settings.livekit_api_key or not secret:
        # Without the key pair no signature can be checked, so nothing is accepted.
        raise HTTPException(
            status_code=401,
            detail="LiveKit webhooks are not accepted: LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
            "are not set on this server",
        )
    return api.WebhookReceiver(api.TokenVerifier(settings.livekit_api_key, secret))


@router.post("/webhook")
async def livekit_webhook(request: Request) -> dict[str, Any]:
    receiver = _receiver(request)
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPException(status_code=413, detail="webhook body too large")
    token = request.headers.get("Authorization", "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        raise HTTPException(
            status_code=401,
            detail="unsigned LiveKit webhook: the Authorization header with LiveKit's token "
            "is missing",
        )
    try:
        body = raw.decode("utf-8")
        event = receiver.receive(body, token)
    except Exception as exc:
        # jwt errors (bad signature, expired, wrong issuer), "hash mismatch", bad JSON
        logger.warning(
            "LiveKit webhook rejected", extra={"error": type(exc).__name__, "detail": str(exc)}
        )
        raise HTTPException(
            status_code=401,
            detail="LiveKit webhook signature is not valid (token, issuer, expiry or body "
            f"hash): {type(exc).__name__}",
        ) from None
    participant = event.participant if event.HasField("participant") else None
    sip = participant is not None and participant.kind == models.ParticipantInfo.SIP
    # The room name is the call id; a participant's identity may carry the phone number, so it
    # is never logged.
    logger.info(
        "LiveKit webhook",
        extra={
            "event": event.event,
            "id": event.id,
            "room": event.room.name if event.HasField("room") else None,
            "participant_kind": models.ParticipantInfo.Kind.Name(participant.kind)
            if participant is not None
            else None,
        },
    )
    acted = None
    if event.event == "participant_left" and sip and event.HasField("room"):
        acted = await _caller_left(request, event.room.name)
    return {"ok": True, "event": event.event, "acted": acted}


async def _caller_left(request: Request, call_id: str) -> str | None:
    service = getattr(request.app.state, "queues", None)
    if service is None or not call_id:
        return None
    async with service.db.session() as session:
        entry_id = await session.scalar(
            select(QueueEntry.id)
            .join(Call, Call.id == QueueEntry.call_id)
            .where(
                QueueEntry.call_id == call_id,
                QueueEntry.kind == "call",
                QueueEntry.status.in_(_ACTIVE),
                Call.channel == "sip",
            )
            .limit(1)
        )
    if entry_id is None:
        return None
    previous = await service.abandon(entry_id, reason="caller hung up")
    if previous is None:
        return None
    logger.info("SIP caller left; queue entry ended", extra={"call_id": call_id, "was": previous})
    return f"entry {previous} -> ended"
