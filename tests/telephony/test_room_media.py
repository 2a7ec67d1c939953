"""The room side of the warm transfer (voicebot/telephony/room_media.py) without a LiveKit
server: real speech and hold audio as the mixer gets it, the track permissions that keep the
briefing from the caller, and the agent's publish permission through the real ``livekit-api``
client against the fake of LiveKit's API."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from livekit import api, rtc
from livekit.protocol import models as proto_models
from livekit.protocol import room as proto_room

from tests.fakes.livekit_server import FakeLiveKit
from tests.telephony.packets import handoff_packet
from voicebot.flows.schema import Queue
from voicebot.handoff.packet import CallerInfo
from voicebot.speech.frames import speech_frames
from voicebot.speech.tts import EspeakTTS
from voicebot.telephony import worker
from voicebot.telephony.room_media import (
    MIXER_RATE,
    RoomMedia,
    generated_hold_music,
)


class Publication(SimpleNamespace):
    sid: str


class LocalParticipant:
    def __init__(self) -> None:
        self.permissions: list[tuple[bool, list[rtc.ParticipantTrackPermission]]] = []

    def set_track_subscription_permissions(
        self,
        *,
        allow_all_participants: bool,
        participant_permissions: list[rtc.ParticipantTrackPermission] | None = None,
    ) -> None:
        self.permissions.append((allow_all_participants, list(participant_permissions or [])))

    def last(self) -> dict[str, list[str]]:
        allow_all, rules = self.permissions[-1]
        assert not allow_all
        return {rule.participant_identity: list(rule.allowed_track_sids) for rule in rules}


def media_on(room_name: str, lkapi: Any = None) -> tuple[RoomMedia, LocalParticipant]:
    local = LocalParticipant()
    room: Any = SimpleNamespace(name=room_name, local_participant=local)

    async def hang_up() -> None:
        return None

    media = RoomMedia(room, lkapi, EspeakTTS(), caller="sip_caller", hang_up=hang_up)
    # the two tracks as BackgroundAudioPlayer publishes them
    media._room_player.publication = Publication(sid="TR_room")  # type: ignore[assignment]
    media._briefing_player.publication = Publication(sid="TR_brief")  # type: ignore[assignment]
    return media, local


async def test_speech_reaches_the_mixer_at_48khz() -> None:
    frames = [
        f
        async for f in speech_frames(
            EspeakTTS(), "You are number two in the queue.", rate=MIXER_RATE
        )
    ]
    assert frames and all(f.sample_rate == MIXER_RATE and f.num_channels == 1 for f in frames)
    samples = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert 1.0 < len(samples) / MIXER_RATE < 6.0  # a short sentence
    assert np.abs(samples).max() > 1000  # speech, not silence


async def test_generated_hold_music_loops_at_48khz() -> None:
    stream = generated_hold_music()
    frames = [await anext(stream) for _ in range(500)]  # 10 s: more than one 8 s loop
    await stream.aclose()
    assert all(f.sample_rate == MIXER_RATE for f in frames)
    samples = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert len(samples) >= 9.5 * MIXER_RATE and np.abs(samples).max() > 500


async def test_only_the_caller_hears_the_room_track_until_the_agent_is_admitted() -> None:
    media, local = media_on("call-1")
    media._apply_permissions()
    assert local.last() == {"sip_caller": ["TR_room"]}
    media._briefed = "agent-7"  # what brief() sets before it speaks
    media._apply_permissions()
    # briefing: the agent hears only the briefing; the caller only the room (hold music)
    assert local.last() == {"sip_caller": ["TR_room"], "agent-7": ["TR_brief"]}
    await media.admit("agent-7")
    assert local.last() == {"sip_caller": ["TR_room"], "agent-7": ["TR_brief", "TR_room"]}
    await media.leave()
    assert local.last() == {"sip_caller": ["TR_room"], "agent-7": ["TR_room"]}


async def test_a_second_agent_after_one_dropped_out_hears_only_their_own_briefing() -> None:
    media, local = media_on("call-1")
    media._briefed = "agent-7"
    await media.admit("agent-7")
    await media.leave()  # agent-7 was put through, then dropped out
    media._briefing_player.play = lambda _audio: SimpleNamespace(  # type: ignore[method-assign]
        wait_for_playout=_done
    )
    await media.brief("Incoming call.", "agent-9")
    assert local.last() == {"sip_caller": ["TR_room"], "agent-9": ["TR_brief"]}
    media.allow_caller("TR_bridge")
    assert local.last() == {"sip_caller": ["TR_room", "TR_bridge"], "agent-9": ["TR_brief"]}


async def _done() -> None:
    return None


async def test_the_agent_may_speak_only_when_the_bot_says_so(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    lk.add_room("call-1")
    lk.add_participant("call-1", "agent-7", attributes={"voicebot.role": "agent"})
    media, _ = media_on("call-1", lkapi)
    await media.let_speak("agent-7")
    [request] = lk.calls("UpdateParticipant", proto_room.UpdateParticipantRequest)
    assert request.room == "call-1" and request.identity == "agent-7"
    assert request.permission.can_publish and request.permission.can_subscribe
    assert not request.permission.can_publish_data
    assert list(request.permission.can_publish_sources) == [proto_models.TrackSource.MICROPHONE]
    [agent] = [p for p in lk.participants("call-1") if p.identity == "agent-7"]
    assert agent.permission.can_publish


async def test_granting_fails_loudly_for_an_agent_not_in_the_room(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    lk.add_room("call-1")
    media, _ = media_on("call-1", lkapi)
    with pytest.raises(api.TwirpError):
        await media.let_speak("agent-9")


def test_phone_callers_for_built_in_queues_wait_others_do_not() -> None:
    queues = {"general": Queue(), "external": Queue(transfer="tel:+442079460999")}
    runtime = SimpleNamespace(loaded=SimpleNamespace(definition=SimpleNamespace(queues=queues)))
    sip = handoff_packet(queue="general")
    sip.caller = CallerInfo(number="+447700900123", attributes={"channel": "sip"})
    assert worker._waits_in_built_in_queue(runtime, sip)
    cold = sip.model_copy(update={"queue": "external"})
    assert not worker._waits_in_built_in_queue(runtime, cold)
    web = sip.model_copy(update={"caller": CallerInfo(attributes={"channel": "web"})})
    assert not worker._waits_in_built_in_queue(runtime, web)


async def test_the_worker_queues_only_what_waits_in_the_built_in_queues() -> None:
    queues = {"general": Queue(), "external": Queue(transfer="tel:+442079460999")}
    runtime = SimpleNamespace(loaded=SimpleNamespace(definition=SimpleNamespace(queues=queues)))
    queued: list[str] = []
    other: list[str] = []

    class Sink:
        def __init__(self, into: list[str]) -> None:
            self.into = into

        async def deliver(self, packet: Any) -> None:
            self.into.append(packet.queue)

    sink = worker._PhoneHandoffs(runtime, Sink(queued), Sink(other))
    packet = handoff_packet(queue="general")
    packet.caller = CallerInfo(number="+447700900123", attributes={"channel": "sip"})
    await sink.deliver(packet)
    await sink.deliver(packet.model_copy(update={"queue": "external"}))
    assert queued == ["general"] and other == ["external"]
