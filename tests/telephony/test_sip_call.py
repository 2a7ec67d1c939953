"""A phone call's LiveKit side: the SIP caller's identity, SIP DTMF, and the cold transfer
(against the fake LiveKit Twirp server, through the real livekit-api client)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from livekit import api, rtc
from livekit.protocol import sip as proto_sip

from tests.fakes.livekit_server import FakeLiveKit
from tests.telephony.conftest import KEY, SECRET
from tests.telephony.packets import handoff_packet
from voicebot.telephony.sip_call import (
    HEADER_HANDOFF_ID,
    HEADER_INTENT,
    HEADER_QUEUE,
    caller_from_sip,
    cold_transfer,
    on_sip_dtmf,
)


def test_the_caller_comes_from_the_sip_attributes() -> None:
    caller = caller_from_sip(
        {
            "sip.phoneNumber": "+447700900123",
            "sip.trunkPhoneNumber": "+442079460000",
            "sip.trunkID": "ST_abc",
            "sip.callID": "SCL_1",
            "sip.callStatus": "active",
        },
        name="Phone +447700900123",
    )
    assert caller.number == "+447700900123"
    assert caller.attributes == {
        "called_number": "+442079460000",
        "trunk_id": "ST_abc",
        "sip_call_id": "SCL_1",
        "channel": "sip",
    }


@pytest.mark.parametrize("number", ["", "anonymous", "Unavailable"])
def test_a_withheld_number_is_no_number(number: str) -> None:
    assert caller_from_sip({"sip.phoneNumber": number}).number is None


def _dtmf(digit: str, identity: str | None) -> Any:
    participant = SimpleNamespace(identity=identity) if identity is not None else None
    return rtc.SipDTMF(code=0, digit=digit, participant=participant)  # type: ignore[arg-type]


def test_sip_dtmf_from_the_caller_reaches_the_keypad() -> None:
    pressed: list[str] = []
    handler = on_sip_dtmf("sip_caller", pressed.append)
    for event in [_dtmf("1", "sip_caller"), _dtmf("#", "sip_caller"), _dtmf("a", None)]:
        handler(event)
    handler(_dtmf("9", "agent_sam"))  # someone else in the room
    handler(_dtmf("12", "sip_caller"))  # not one key
    handler(_dtmf("x", "sip_caller"))
    assert pressed == ["1", "#", "A"]


async def test_a_cold_transfer_carries_the_handoff_in_sip_headers(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    lk.add_room("call-1")
    caller = lk.add_sip_caller("call-1", "+447700900123")
    result = await cold_transfer(
        lkapi,
        room="call-1",
        caller_identity=caller.identity,
        target="tel:+442079460999",
        packet=handoff_packet(),
    )
    assert result.ok
    [request] = lk.calls("TransferSIPParticipant", proto_sip.TransferSIPParticipantRequest)
    assert request.transfer_to == "tel:+442079460999"
    assert request.participant_identity == caller.identity
    assert dict(request.headers) == {
        HEADER_HANDOFF_ID: "H-42",
        HEADER_QUEUE: "billing",
        HEADER_INTENT: "pay_bill",
    }
    assert lk.participants("call-1") == []  # the caller left LiveKit for the other queue


async def test_a_rejected_transfer_is_a_result_not_a_dropped_call(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    lk.add_room("call-1")
    caller = lk.add_sip_caller("call-1", "+447700900123")
    lk.fail("TransferSIPParticipant", "failed_precondition", "transfer rejected: 486 Busy Here")
    result = await cold_transfer(
        lkapi,
        room="call-1",
        caller_identity=caller.identity,
        target="sip:q@pbx",
        packet=handoff_packet(),
    )
    assert not result.ok and "486 Busy Here" in result.detail
    assert [p.identity for p in lk.participants("call-1")] == [caller.identity]


async def test_a_transfer_with_livekit_unreachable_is_a_result() -> None:
    client = api.LiveKitAPI(url="http://127.0.0.1:9", api_key=KEY, api_secret=SECRET)
    try:
        result = await cold_transfer(
            client, room="r", caller_identity="c", target="tel:+441", packet=handoff_packet()
        )
    finally:
        await client.aclose()
    assert not result.ok and result.detail
