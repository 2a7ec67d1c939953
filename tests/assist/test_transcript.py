"""The caller's live transcript while they talk to an agent, from real speech through the bot's
real recogniser (silero VAD and pocketsphinx, as on a call): on the softphone's leg
(``CallerLeg`` and ``SoftphoneMedia``, as routes/phone.py wires them) and on a phone caller's
LiveKit room (the worker's wait, with the room faked as in tests/queues/test_phone_wait.py and
the caller's track replaced by frames of the same speech)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.rtc import EventEmitter

from tests.audio.conftest import audio_settings
from tests.fakes.caller_media import FakeMedia
from tests.queues.packets import make_packet
from voicebot.access.users import add_user
from voicebot.api.call_legs import CallerLeg, SoftphoneMedia
from voicebot.assist.transcript import LiveTranscript, TranscribedMedia
from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.flows.schema import Queue
from voicebot.queues.events import Event, LocalBus
from voicebot.queues.service import QueueService
from voicebot.queues.waiting import agent_identity
from voicebot.runtime.bot import BotRuntime
from voicebot.speech.stack import SpeechStack, build_speech
from voicebot.speech.tts import EspeakTTS
from voicebot.store.db import open_database
from voicebot.telephony import worker
from voicebot.testing.callers import default_caller_voice, silence, speak

pytestmark = pytest.mark.timeout(240)

SAID = "I want to pay my bill"
CHUNK = CALL_SAMPLE_RATE * 2 // 50  # 20 ms of 16-bit PCM, as a browser sends it


@pytest.fixture
async def speech(tmp_path: Path) -> AsyncIterator[SpeechStack]:
    """The example bot's offline speech stack (its recogniser has the flows' vocabulary)."""
    settings = audio_settings(tmp_path, data_dir=tmp_path / "data")
    runtime = BotRuntime.load(settings)
    stack = await build_speech(settings, runtime.loaded.definition)
    try:
        yield stack
    finally:
        await stack.aclose()
        await runtime.aclose()


@pytest.fixture(scope="module")
def caller_pcm() -> bytes:
    """The caller saying ``SAID``, with a little quiet either side (16 kHz PCM)."""
    samples = np.concatenate(
        [silence(0.5), speak(SAID, voice=default_caller_voice()), silence(1.5)]
    )
    return samples.astype("<i2").tobytes()


class Published:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    async def publish(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, check: Callable[[], bool], within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            while not check():
                self.changed.clear()
                await self.changed.wait()


def heard_the_bill(events: list[Event]) -> bool:
    return any("bill" in str(e.get("text")) for e in events)


async def test_the_softphone_callers_words_are_transcribed_while_bridged_only(
    speech: SpeechStack, caller_pcm: bytes
) -> None:
    published = Published()
    leg = CallerLeg("entry-1", lambda _item: None)
    transcript = LiveTranscript(speech.stt, published.publish, entry_id="entry-1", call_id="c-1")
    leg.listener = transcript.push

    async def hang_up() -> None:
        return None

    media = TranscribedMedia(SoftphoneMedia(leg, EspeakTTS(), hang_up=hang_up), transcript)
    to_agent: list[bytes] = []
    leg.attach_agent(7, to_agent.append)

    def say(pcm: bytes) -> None:
        for start in range(0, len(pcm), CHUNK):
            leg.caller_audio(pcm[start : start + CHUNK])

    say(caller_pcm)  # the agent is still being briefed: nothing is heard or transcribed
    assert not transcript.running and to_agent == []
    await media.let_speak("agent-7")
    assert transcript.running
    say(caller_pcm)
    await published.until(lambda: heard_the_bill(published.events))
    [line] = published.events
    assert line["type"] == "caller_transcript"
    assert line["entry_id"] == "entry-1" and line["call_id"] == "c-1"
    assert isinstance(line["at"], float)
    assert len(b"".join(to_agent)) == len(caller_pcm)  # the agent heard all of it too

    await media.hold(True)  # back on hold (the agent dropped out): no more transcript
    assert not transcript.running
    say(caller_pcm)
    await asyncio.sleep(1.0)
    assert len(published.events) == 1
    await media.aclose()


class FakeRoom(EventEmitter[str]):
    def __init__(self, *identities: str) -> None:
        super().__init__()
        self.name = "call-1"
        self.remote_participants = {i: SimpleNamespace(identity=i) for i in identities}


async def test_a_phone_callers_words_reach_the_bus_once_the_agent_may_speak(
    speech: SpeechStack, caller_pcm: bytes, tmp_path: Path
) -> None:
    """The worker's side of a LiveKit call: the caller's track is read only from the moment the
    agent is let speak, and each final line is published on the queues' bus for the API
    node that holds the agent's desktop."""
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}")
    queues = {"general": Queue(skills=["general"])}
    service = QueueService(db, LocalBus(), queues, offer_timeout=15, wrap_up_seconds=30)
    await service.start()
    seen: list[Event] = []
    service.bus.subscribe(seen.append)
    track_read: list[bool] = []

    async def caller_track() -> AsyncIterator[rtc.AudioFrame]:
        track_read.append(True)
        for start in range(0, len(caller_pcm), CHUNK):
            piece = caller_pcm[start : start + CHUNK]
            yield rtc.AudioFrame(piece, CALL_SAMPLE_RATE, 1, len(piece) // 2)
            await asyncio.sleep(0)
        await asyncio.Event().wait()  # the track stays open until the call ends

    try:
        alice = (await add_user(db, "alice", "password123", skills={"general": 5})).id
        packet = make_packet(channel="sip")
        entry_id = await service.enqueue(packet)
        room = FakeRoom("sip_caller")
        media = FakeMedia()
        ctx: Any = SimpleNamespace(room=room, api=None, delete_room=None)
        runtime = SimpleNamespace(
            loaded=SimpleNamespace(definition=SimpleNamespace(queues=queues)),
            settings=SimpleNamespace(bot_dir=tmp_path),
        )
        loaded: Any = SimpleNamespace(runtime=runtime, speech=speech)
        caller: Any = room.remote_participants["sip_caller"]
        task = asyncio.create_task(
            worker._wait_in_queue(
                ctx,
                loaded,
                service,
                packet,
                caller,
                {"press": lambda _keys: None},
                media=media,
                caller_audio=caller_track,
            )
        )
        await service.set_state(alice, "available")
        async with asyncio.timeout(20):
            while not any(e.get("type") == "offer" for e in seen):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert not track_read  # waiting: the caller's words are the bot's business
        await service.accept(alice, entry_id)
        room.emit("participant_connected", SimpleNamespace(identity=agent_identity(alice)))

        def lines() -> list[Event]:
            return [e for e in seen if e.get("type") == "caller_transcript"]

        async with asyncio.timeout(40):
            while not heard_the_bill(lines()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert ("let_speak", agent_identity(alice)) in media.log and track_read == [True]
        assert all(e["entry_id"] == entry_id and e["call_id"] == packet.call_id for e in lines())
        room.emit("participant_disconnected", room.remote_participants["sip_caller"])
        assert await asyncio.wait_for(task, 20) == "queue: ended"
    finally:
        await service.aclose()
        await db.aclose()
