"""``POST /api/messaging/inbound``: a customer's SMS or WhatsApp message, from the gateway.

Accepted only when signed with ``VOICEBOT_MESSAGING_SECRET`` (``X-Voicebot-Signature``, the
scheme of voicebot/actions/signing.py); the checks run in an order that never acts on what
it has not verified:

1. body over :data:`MAX_BODY_BYTES` → 413; the channel is off (no secret) → 401;
2. signature missing, wrong or older than 5 minutes → 401 with what is wrong;
3. not the JSON of the contract → 422; text over 2000 characters → 413;
4. an id already handled → 200 ``{"duplicate": true}`` and nothing done twice.

The bot's answer goes back through the outbox (voicebot/channels/messaging.py), not in this
response: the contract is the same whether the bot answers or, after a handoff, an agent does.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import ValidationError

from voicebot.actions.signing import HEADER, SignatureError
from voicebot.channels.messaging import (
    MAX_BODY_BYTES,
    InboundMessage,
    MessagingChannel,
    MessagingError,
    verify_inbound,
)

router = APIRouter(prefix="/api/messaging", tags=["channels"])
logger = logging.getLogger("voicebot.api.messaging")


def _channel(request: Request) -> MessagingChannel:
    channel: MessagingChannel | None = getattr(request.app.state, "messaging", None)
    if channel is None or not channel.secret:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="messages are not accepted: VOICEBOT_MESSAGING_SECRET is not set on this "
            "server (or its database is not running)",
        )
    return channel


@router.post("/inbound")
async def inbound(request: Request) -> dict[str, Any]:
    """One customer message (see docs/channels.md, "Messaging gateway", for the contract)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPException(
            413,
            detail=f"message body over {MAX_BODY_BYTES} bytes; nothing was processed",
        )
    channel = _channel(request)
    try:
        verify_inbound(raw, request.headers.get(HEADER), channel.secret)
    except SignatureError as exc:
        logger.warning("messaging inbound rejected", extra={"detail": str(exc)})
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=f"bad signature: {exc}; nothing was processed"
        ) from None
    try:
        message = InboundMessage.model_validate(json.loads(raw))
    except ValueError as exc:  # ValidationError is a ValueError; so is bad JSON
        detail: Any = (
            exc.errors(include_url=False, include_context=False, include_input=False)
            if isinstance(exc, ValidationError)
            else (f"the body is not JSON: {exc}")
        )
        raise HTTPException(422, detail=detail) from None
    try:
        outcome = await channel.receive(message)
    except MessagingError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    return {"ok": True, "id": message.id, **outcome}
