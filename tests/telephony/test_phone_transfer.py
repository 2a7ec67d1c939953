"""The warm transfer to a phone (voicebot/telephony/phone_transfer.py): the dial through the real
``livekit-api`` client against the fake of LiveKit's API, and the order of what the caller and
the agent hear, with the rooms' media faked in-process (no LiveKit server runs here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from livekit import api
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip
from pydantic import ValidationError
from sqlalchemy import select

from tests.fakes.caller_media import FakeMedia
from tests.fakes.livekit_server import FakeLiveKit
from tests.telephony.conftest import KEY, SECRET
from tests.telephony.packets import handoff_packet
from voicebot.flows.schema import Queue
from voicebot.handoff.packet import CallerInfo, HandoffPacket
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.store.db import open_database
from voicebot.store.models import QueueEntry
from voicebot.telephony import worker
from voicebot.telephony.phone_transfer import (
    AGENT_PHONE_IDENTITY,
    BOT_CONSULT_IDENTITY,
    PhoneTransfer,
    consult_token,
    dial_agent,
)


class Consult:
    def __init__(self, log: list[tuple[str, Any]], *, ends: str = "agent") -> None:
        self.log = log
        self.ends = ends

    async def join(self) -> None:
        self.log.append(("join", None))

    async def brief(self, text: str) -> None:
        self.log.append(("brief", text))

    async def bridge(self) -> str:
        self.log.append(("bridge", None))
        return self.ends

    async def aclose(self) -> None:
        self.log.append(("consult_closed", None))


def sip_packet(queue: str = "billing") -> HandoffPacket:
    packet = handoff_packet(queue=queue)
    packet.caller = CallerInfo(number="+447700900123", attributes={"channel": "sip"})
    return packet


@pytest.fixture
def trunk(lk: FakeLiveKit) -> str:
    return lk.add_outbound_trunk(
        proto_sip.SIPOutboundTrunkInfo(name="carrier", address="sip.carrier.example")
    )


async def test_the_agent_is_dialled_into_a_consult_room_with_the_handoff_in_headers(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, trunk: str
) -> None:
    lk.add_room("call-1-consult")
    result = await dial_agent(
        lkapi,
        trunk_id=trunk,
        target="tel:+442079460111",
        room="call-1-consult",
        packet=sip_packet(),
        ring_timeout=25,
    )
    assert result.ok
    [request] = lk.calls("CreateSIPParticipant", proto_sip.CreateSIPParticipantRequest)
    assert request.sip_trunk_id == trunk and request.sip_call_to == "+442079460111"
    assert request.room_name == "call-1-consult"
    assert request.participant_identity == AGENT_PHONE_IDENTITY
    assert request.wait_until_answered and request.ringing_timeout.seconds == 25
    assert request.hide_phone_number  # the agent's phone shows the company, not the caller
    assert request.headers["X-Voicebot-Handoff-Id"] == "H-42"
    assert request.headers["X-Voicebot-Queue"] == "billing"
    assert [p.identity for p in lk.participants("call-1-consult")] == [AGENT_PHONE_IDENTITY]


async def test_a_busy_agent_phone_is_a_result_not_an_exception(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, trunk: str
) -> None:
    lk.fail("CreateSIPParticipant", "unavailable", "twirp error unknown: 486 Busy Here")
    result = await dial_agent(
        lkapi, trunk_id=trunk, target="tel:+442079460111", room="r", packet=sip_packet()
    )
    assert not result.ok and "486 Busy Here" in result.detail
    result = await dial_agent(
        lkapi, trunk_id="ST_missing", target="tel:+442079460111", room="r", packet=sip_packet()
    )
    assert not result.ok and "not_found" in result.detail


async def test_the_agent_is_briefed_before_the_caller_is_put_through(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, trunk: str
) -> None:
    media = FakeMedia()
    consult = Consult(media.log)
    transfer = PhoneTransfer(
        lkapi,
        sip_packet(),
        media,
        consult,
        "call-1-consult",
        trunk_id=trunk,
        target="tel:+442079460111",
        team="billing",
    )
    outcome, result = await transfer.run()
    assert outcome == "bridged" and result.ok
    assert [kind for kind, _ in media.log] == ["hold", "join", "brief", "hold", "say", "bridge"]
    assert "wants help" in dict(media.log)["brief"]  # the packet's summary
    assert dict(media.log)["say"] == (
        "Thank you for waiting. I'm putting you through to our billing team now."
    )
    # the consult room is removed at the end, which hangs up the agent's leg if still there
    [deleted] = lk.calls("DeleteRoom", proto_room.DeleteRoomRequest)
    assert deleted.room == "call-1-consult"


async def test_a_caller_who_hangs_up_while_the_agent_rings_stops_the_dial() -> None:
    ringing = asyncio.Event()
    deleted: list[str] = []

    async def create_sip_participant(_request: Any) -> None:
        ringing.set()
        await asyncio.sleep(60)  # the agent's phone rings on

    async def delete_room(request: Any) -> None:
        deleted.append(request.room)

    lkapi: Any = SimpleNamespace(
        sip=SimpleNamespace(create_sip_participant=create_sip_participant),
        room=SimpleNamespace(delete_room=delete_room),
    )
    media = FakeMedia()
    transfer = PhoneTransfer(
        lkapi,
        sip_packet(),
        media,
        Consult(media.log),
        "c",
        trunk_id="ST_1",
        target="tel:+1",
        team="x",
    )
    task = asyncio.create_task(transfer.run())
    await asyncio.wait_for(ringing.wait(), 5)
    transfer.caller_left()
    outcome, result = await asyncio.wait_for(task, 5)
    assert outcome == "abandoned" and not result.ok
    assert "join" not in dict(media.log) and deleted == ["c"]


async def test_a_refused_warm_transfer_tells_the_caller_and_queues_the_callback(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, trunk: str, tmp_path: Path
) -> None:
    lk.fail("CreateSIPParticipant", "unavailable", "480 Temporarily Unavailable")
    billing = Queue(skills=["billing"], transfer="tel:+442079460111", transfer_mode="warm")
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}")
    queues = QueueService(db, LocalBus(), {"billing": billing})
    try:
        runtime = SimpleNamespace(
            loaded=SimpleNamespace(definition=SimpleNamespace(queues={"billing": billing})),
            settings=SimpleNamespace(sip_outbound_trunk=trunk, bot_dir=tmp_path),
        )
        caller: Any = SimpleNamespace(identity="sip_caller")
        room = SimpleNamespace(
            name="call-1",
            remote_participants={"sip_caller": caller},
            on=lambda *_: None,
            off=lambda *_: None,
        )
        ctx: Any = SimpleNamespace(api=lkapi, room=room)
        media = FakeMedia()
        packet = sip_packet()
        outcome = await worker._warm_to_phone(
            ctx,
            SimpleNamespace(runtime=runtime, speech=None),  # type: ignore[arg-type]
            queues,
            packet,
            caller,
            media=media,
            consult=Consult(media.log),
        )
        assert outcome == "warm transfer: refused"
        assert ("say", worker._TRANSFER_FAILED) in media.log
        assert "join" not in dict(media.log)
        async with db.session() as session:
            [entry] = (await session.scalars(select(QueueEntry))).all()
        assert entry.kind == "callback" and entry.callback_number == "+447700900123"
    finally:
        await db.aclose()


def test_warm_transfers_need_a_number_and_a_trunk() -> None:
    with pytest.raises(ValidationError, match="dials a phone number"):
        Queue(transfer="sip:care@pbx.example.com", transfer_mode="warm")
    with pytest.raises(ValidationError, match="dials a phone number"):
        Queue(transfer_mode="warm")
    warm = Queue(transfer="tel:+442079460111", transfer_mode="warm")
    queues = {"billing": warm, "care": Queue(transfer="tel:+442079460222")}

    def runtime(trunk: str | None) -> Any:
        return SimpleNamespace(
            loaded=SimpleNamespace(definition=SimpleNamespace(queues=queues)),
            settings=SimpleNamespace(sip_outbound_trunk=trunk),
        )

    assert worker._warm_phone_target(runtime("ST_1"), sip_packet()) == "tel:+442079460111"
    assert worker._warm_phone_target(runtime(None), sip_packet()) is None  # cold instead
    assert worker._warm_phone_target(runtime("ST_1"), sip_packet("care")) is None  # cold queue
    softphone = sip_packet().model_copy(update={"caller": CallerInfo()})
    assert worker._warm_phone_target(runtime("ST_1"), softphone) is None


def test_the_bots_consult_token_is_for_that_room_only() -> None:
    token = consult_token(KEY, SECRET, "call-1-consult-ab12")
    claims = api.TokenVerifier(KEY, SECRET).verify(token)
    assert claims.identity == BOT_CONSULT_IDENTITY and claims.kind == "agent"
    assert claims.video is not None and claims.video.room == "call-1-consult-ab12"
    assert claims.video.room_join and claims.video.can_publish and claims.video.can_subscribe
    assert not claims.video.room_admin
