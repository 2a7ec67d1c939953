"""The warm transfer to a phone: dial the agent into a consult room, brief them, then bridge.

For a queue with ``transfer: tel:...`` and ``transfer_mode: warm``: while the caller hears hold
music in their own room, the bot dials the number through the outbound SIP trunk
(``CreateSIPParticipant``) into a separate consult room, so the caller can hear nothing of it.
When the agent answers, the bot joins the consult room and speaks the briefing; then it tells
the caller who they are being put through to and bridges the two rooms.

LiveKit Cloud would bridge by moving the agent's participant into the caller's room
(``MoveParticipant``, which livekit-agents' ``WarmTransferTask`` uses); self-hosted LiveKit has
no such call, so the bot relays the audio itself: the agent's voice is published in the caller's
room, and the caller's voice in the consult room. That costs the worker one audio hop each way
(frames of 10 ms at 48 kHz; no resampling, no mixing) for as long as the call lasts.

If the number is busy, does not answer, or the trunk refuses it, the caller is told and the
worker queues the promised callback, as with a refused cold transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf.duration_pb2 import Duration
from livekit import api, rtc

from voicebot.handoff.packet import HandoffPacket
from voicebot.queues.waiting import CallerMedia
from voicebot.speech.frames import speech_frames
from voicebot.telephony.room_media import MIXER_RATE
from voicebot.telephony.sip_call import TransferResult, sip_result, transfer_headers

logger = logging.getLogger("voicebot.telephony.phone_transfer")

AGENT_PHONE_IDENTITY = "agent-phone"
BOT_CONSULT_IDENTITY = "voicebot-consult"
RING_TIMEOUT = 30.0


class ConsultLeg(Protocol):
    """The bot's side of the consult room."""

    async def join(self) -> None: ...

    async def brief(self, text: str) -> None: ...

    async def bridge(self) -> str:
        """Relay the two rooms' audio until one side hangs up; returns who did
        (``caller`` or ``agent``)."""


@dataclass
class Wording:
    # An agent on a phone has no screen pop: they hear the whole summary.
    briefing: str = "Voicebot transfer. {summary} Connecting you now."
    introduce: str = "Thank you for waiting. I'm putting you through to our {team} team now."


def consult_room_name(caller_room: str) -> str:
    return f"{caller_room}-consult-{uuid.uuid4().hex[:8]}"


def dial_number(target: str) -> str:
    """``tel:+44...`` -> ``+44...``: the SIP service takes a number and the trunk its host."""
    return target.removeprefix("tel:")


async def dial_agent(
    lkapi: api.LiveKitAPI,
    *,
    trunk_id: str,
    target: str,
    room: str,
    packet: HandoffPacket,
    ring_timeout: float = RING_TIMEOUT,
) -> TransferResult:
    """Call the agent's phone into ``room`` and wait until they answer. Busy, no answer and a
    refusing trunk come back as a result that is not ``ok``: the caller is still there and
    must be told, not dropped."""
    request = api.CreateSIPParticipantRequest(
        sip_trunk_id=trunk_id,
        sip_call_to=dial_number(target),
        room_name=room,
        participant_identity=AGENT_PHONE_IDENTITY,
        participant_name="Agent",
        headers=transfer_headers(packet),
        ringing_timeout=Duration(seconds=int(ring_timeout)),
        wait_until_answered=True,
        # the agent's caller id shows the company line, not the caller's number
        hide_phone_number=True,
    )
    return await sip_result(
        lkapi.sip.create_sip_participant(request),
        refused="the agent's phone did not answer",
        failed="the agent's phone could not be dialled",
        packet=packet,
        target=target,
    )


@dataclass
class PhoneTransfer:
    """One warm transfer to a phone, from dialling to the end of the bridged call."""

    lkapi: api.LiveKitAPI
    packet: HandoffPacket
    media: CallerMedia
    consult: ConsultLeg
    consult_room: str
    trunk_id: str
    target: str
    team: str
    ring_timeout: float = RING_TIMEOUT
    wording: Wording | None = None
    state: str = "dialling"

    def __post_init__(self) -> None:
        self._caller_gone = asyncio.Event()

    def caller_left(self) -> None:
        self._caller_gone.set()

    async def run(self) -> tuple[str, TransferResult]:
        """Returns the outcome (``bridged``, ``refused`` or ``abandoned``) and the dial's
        result; the consult room is always deleted at the end, which hangs up the agent."""
        wording = self.wording or Wording()
        try:
            await self.media.hold(True)
            result = await self._dial()
            if result is None:
                return "abandoned", TransferResult(False, "the caller hung up while ringing")
            if not result.ok:
                self.state = "refused"
                return "refused", result
            self.state = "briefing"
            await self.consult.join()
            await self.consult.brief(wording.briefing.format(summary=self.packet.summary))
            if self._caller_gone.is_set():
                return "abandoned", result
            self.state = "introducing"
            await self.media.hold(False)
            await self.media.say(wording.introduce.format(team=self.team))
            self.state = "bridged"
            who = await self.consult.bridge()
            logger.info("warm transfer ended", extra={"handoff_id": self.packet.id, "detail": who})
            return "bridged", result
        finally:
            with contextlib.suppress(Exception):
                await self.lkapi.room.delete_room(api.DeleteRoomRequest(room=self.consult_room))

    async def _dial(self) -> TransferResult | None:
        """The dial, given up if the caller hangs up while the agent's phone rings."""
        dial = asyncio.create_task(
            dial_agent(
                self.lkapi,
                trunk_id=self.trunk_id,
                target=self.target,
                room=self.consult_room,
                packet=self.packet,
                ring_timeout=self.ring_timeout,
            )
        )
        gone = asyncio.create_task(self._caller_gone.wait())
        try:
            await asyncio.wait({dial, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not dial.done():
            dial.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dial
            return None
        return dial.result()


# -- the consult room on LiveKit ----------------------------------------------------------------


def consult_token(key: str, secret: str, room: str) -> str:
    """The bot's own token for the consult room (the job's token is for the caller's room)."""
    return (
        api.AccessToken(key, secret)
        .with_identity(BOT_CONSULT_IDENTITY)
        .with_name("voicebot")
        .with_kind("agent")
        .with_ttl(dt.timedelta(hours=4))
        .with_grants(
            api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
        )
        .to_jwt()
    )


async def pump(frames: AsyncIterable[Any], source: Any) -> None:
    """Copy one side's audio into the other room's track, frame by frame."""
    async for event in frames:
        await source.capture_frame(event.frame)


class LiveKitConsult:
    """``ConsultLeg`` on LiveKit: a second room connection of the worker's job."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        engine: Any,
        caller_room: rtc.Room,
        caller_identity: str,
        allow_caller: Any,
    ) -> None:
        self.url = url
        self.token = token
        self.engine = engine
        self.caller_room = caller_room
        self.caller_identity = caller_identity
        self.allow_caller = allow_caller  # RoomMedia.allow_caller: the bridge track's sid
        self.room = rtc.Room()
        self._to_agent = rtc.AudioSource(MIXER_RATE, 1)
        self._to_caller = rtc.AudioSource(MIXER_RATE, 1)
        self._published: list[tuple[rtc.Room, str]] = []

    async def join(self) -> None:
        await self.room.connect(self.url, self.token)
        track = rtc.LocalAudioTrack.create_audio_track("voicebot", self._to_agent)
        publication = await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self._published.append((self.room, publication.sid))

    async def brief(self, text: str) -> None:
        async for frame in speech_frames(self.engine, text, rate=MIXER_RATE):
            await self._to_agent.capture_frame(frame)
        await self._to_agent.wait_for_playout()

    async def bridge(self) -> str:
        agent = self.room.remote_participants.get(AGENT_PHONE_IDENTITY)
        caller = self.caller_room.remote_participants.get(self.caller_identity)
        if agent is None:
            return "agent"
        if caller is None:
            return "caller"
        track = rtc.LocalAudioTrack.create_audio_track("agent", self._to_caller)
        publication = await self.caller_room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self._published.append((self.caller_room, publication.sid))
        self.allow_caller(publication.sid)
        source = rtc.TrackSource.SOURCE_MICROPHONE
        agent_voice = rtc.AudioStream.from_participant(participant=agent, track_source=source)
        caller_voice = rtc.AudioStream.from_participant(participant=caller, track_source=source)
        left = asyncio.get_running_loop().create_future()

        def gone(who: str) -> Any:
            def handler(participant: rtc.RemoteParticipant) -> None:
                expected = AGENT_PHONE_IDENTITY if who == "agent" else self.caller_identity
                if participant.identity == expected and not left.done():
                    left.set_result(who)

            return handler

        on_agent, on_caller = gone("agent"), gone("caller")
        self.room.on("participant_disconnected", on_agent)
        self.caller_room.on("participant_disconnected", on_caller)
        pumps = [
            asyncio.create_task(pump(agent_voice, self._to_caller)),
            asyncio.create_task(pump(caller_voice, self._to_agent)),
        ]
        try:
            return str(await left)
        finally:
            self.room.off("participant_disconnected", on_agent)
            self.caller_room.off("participant_disconnected", on_caller)
            for task in pumps:
                task.cancel()
            await agent_voice.aclose()
            await caller_voice.aclose()

    async def aclose(self) -> None:
        for room, sid in self._published:
            with contextlib.suppress(Exception):
                await room.local_participant.unpublish_track(sid)
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        await self._to_agent.aclose()
        await self._to_caller.aclose()
