"""What a phone call through LiveKit SIP adds to a call: who is calling, keys sent as SIP DTMF,
and the cold transfer to an outside queue.

LiveKit's SIP service puts the caller in the room as a participant of kind SIP whose attributes
carry the numbers and the trunk (``sip.phoneNumber`` and friends); keypad presses arrive as
``sip_dtmf_received`` room events (RFC 4733), alongside any tones in the audio itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from livekit import api, rtc

from voicebot.handoff.packet import CallerInfo, HandoffPacket

logger = logging.getLogger("voicebot.telephony")

# The SIP participant's attributes (livekit/protocol's sip attribute names) and where they go
# on the caller: the calling number is the caller's; the rest lands in caller.attributes.
ATTR_CALLER_NUMBER = "sip.phoneNumber"
_ATTRIBUTES = {
    "sip.trunkPhoneNumber": "called_number",
    "sip.trunkID": "trunk_id",
    "sip.callID": "sip_call_id",
    "sip.callIDFull": "sip_call_id_full",
    "sip.ruleID": "dispatch_rule_id",
}
# SIP headers that carry the handoff to an outside desktop, which fetches the packet from the
# API (GET /handoffs/{id}) by the id.
HEADER_HANDOFF_ID = "X-Voicebot-Handoff-Id"
HEADER_QUEUE = "X-Voicebot-Queue"
HEADER_INTENT = "X-Voicebot-Intent"


def caller_from_sip(attributes: Mapping[str, str], *, name: str | None = None) -> CallerInfo:
    """The caller as the flows see it (``caller.number``, ``caller.attributes.*``).

    A withheld number comes through as empty or "anonymous"; the flows then see no number.
    """
    number = (attributes.get(ATTR_CALLER_NUMBER) or "").strip()
    if number.lower() in {"", "anonymous", "unknown", "unavailable"}:
        number = ""
    extra = {
        ours: attributes[theirs] for theirs, ours in _ATTRIBUTES.items() if attributes.get(theirs)
    }
    extra["channel"] = "sip"
    return CallerInfo(number=number or None, name=name or None, attributes=extra)


def on_sip_dtmf(
    caller_identity: str, press: Callable[[str], None]
) -> Callable[[rtc.SipDTMF], None]:
    """A ``sip_dtmf_received`` handler passing the caller's keys on (not those of an agent or a
    consult leg in the same room)."""

    def handler(event: rtc.SipDTMF) -> None:
        sender = event.participant.identity if event.participant is not None else None
        if sender is not None and sender != caller_identity:
            return
        digit = (event.digit or "").strip()
        if len(digit) == 1 and digit in "0123456789*#ABCDabcd":
            press(digit.upper())
        else:
            logger.warning("ignored a SIP DTMF event", extra={"code": event.code})

    return handler


@dataclass
class TransferResult:
    ok: bool
    detail: str = ""


def transfer_headers(packet: HandoffPacket) -> dict[str, str]:
    headers = {HEADER_HANDOFF_ID: packet.id, HEADER_QUEUE: packet.queue}
    if packet.intent.name:
        headers[HEADER_INTENT] = packet.intent.name
    return headers


async def cold_transfer(
    lkapi: api.LiveKitAPI,
    *,
    room: str,
    caller_identity: str,
    target: str,
    packet: HandoffPacket,
    play_dialtone: bool = False,
) -> TransferResult:
    """Transfer the caller (SIP REFER) to ``target``, with the handoff in SIP headers.

    A target that rejects the call, or a trunk without transfers, comes back as a result that
    is not ``ok`` rather than an exception: the caller must be told and kept, not dropped.
    """
    request = api.TransferSIPParticipantRequest(
        room_name=room,
        participant_identity=caller_identity,
        transfer_to=target,
        play_dialtone=play_dialtone,
        headers=transfer_headers(packet),
    )
    # self-hosted LiveKit answers with an empty message once the REFER is accepted
    return await sip_result(
        lkapi.sip.transfer_sip_participant(request),
        refused="the transfer was refused",
        failed="the transfer failed",
        packet=packet,
        target=target,
    )


async def sip_result(
    call: Awaitable[object], *, refused: str, failed: str, packet: HandoffPacket, target: str
) -> TransferResult:
    """A SIP request of LiveKit's as a result: refused by the far end or LiveKit (a Twirp error)
    or failed on the way (network trouble), the caller's outcome is the same and is logged."""
    where = {"handoff_id": packet.id, "target": target}
    try:
        await call
    except api.TwirpError as exc:
        logger.warning(refused, extra={**where, "detail": exc.message})
        return TransferResult(False, f"{exc.code}: {exc.message}")
    except Exception as exc:
        logger.warning(failed, extra={**where, "detail": str(exc)})
        return TransferResult(False, str(exc) or type(exc).__name__)
    return TransferResult(True)
