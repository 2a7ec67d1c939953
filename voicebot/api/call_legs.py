"""Softphone callers waiting in a queue on this node, and the bridge to the agent who takes them.

After the bot hands a softphone call to a built-in queue, the caller's WebSocket stays open and
the waiting caller's state machine (voicebot/queues/waiting.py) runs on it, as on a phone
call: hold music, spoken updates of their place and wait, the callback key. When an agent
accepts, the desktop opens ``/api/desktop/audio/{entry_id}`` on this node (16-bit PCM at 16 kHz
both ways); the agent hears a briefing the caller does not, then the bot introduces them and the
two are bridged. That is what lets the whole journey run on one machine without LiveKit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.audio.hold import hold_music
from voicebot.queues.events import Event
from voicebot.queues.waiting import agent_identity
from voicebot.speech.frames import speech_frames

Deliver = Callable[[Any], None]  # bytes (audio) or a dict (a JSON event) to the caller

_CHUNK = CALL_SAMPLE_RATE * 2 // 10  # 100 ms of 16-bit PCM
# Audio is sent this far ahead of real time, so the browser's playback never runs dry.
_LEAD = 0.2


class CallerLeg:
    """One softphone caller's audio, and the agent's once they join."""

    def __init__(self, entry_id: str, to_caller: Deliver) -> None:
        self.entry_id = entry_id
        self.to_caller = to_caller
        self.to_agent: Callable[[bytes], None] | None = None
        self.agent_id: int | None = None
        # Until the bot has briefed the agent and introduced them, neither hears the other.
        self.bridged = False
        # told when the agent's audio joins (True) or leaves (False); queue events for the entry
        self.on_agent: Callable[[str, bool], None] | None = None
        self.on_event: Callable[[Event], None] | None = None
        # hears the caller while bridged: the live transcript for the agent (voicebot/assist)
        self.listener: Callable[[bytes], None] | None = None

    def attach_agent(self, agent_id: int, to_agent: Callable[[bytes], None]) -> None:
        self.to_agent = to_agent
        self.agent_id = agent_id
        if self.on_agent is not None:
            self.on_agent(agent_identity(agent_id), True)

    def detach_agent(self, to_agent: Callable[[bytes], None]) -> None:
        if self.to_agent is not to_agent:
            return  # a newer connection of the agent's replaced this one
        self.to_agent = None
        self.bridged = False
        if self.on_agent is not None and self.agent_id is not None:
            self.on_agent(agent_identity(self.agent_id), False)

    def caller_audio(self, pcm: bytes) -> None:
        if self.bridged and self.to_agent is not None:
            self.to_agent(pcm)
            if self.listener is not None:
                self.listener(pcm)

    def agent_audio(self, pcm: bytes) -> None:
        if self.bridged:
            self.to_caller(pcm)


class CallLegs:
    """The legs on this node, by queue entry id, kept informed by the queue's events."""

    def __init__(self) -> None:
        self.legs: dict[str, CallerLeg] = {}

    def add(self, leg: CallerLeg) -> None:
        self.legs[leg.entry_id] = leg

    def remove(self, leg: CallerLeg) -> None:
        if self.legs.get(leg.entry_id) is leg:
            del self.legs[leg.entry_id]

    def get(self, entry_id: str) -> CallerLeg | None:
        return self.legs.get(entry_id)

    def on_event(self, event: Event) -> None:
        leg = self.legs.get(str(event.get("entry_id")))
        if leg is not None and leg.on_event is not None:
            leg.on_event(event)


async def paced(chunks: AsyncIterator[bytes] | Iterator[bytes], deliver: Deliver) -> None:
    """Send audio at the pace it plays (a little ahead), so a stop takes effect at once."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0.0
    if isinstance(chunks, Iterator):
        for chunk in chunks:
            deliver(chunk)
            sent += len(chunk) / 2 / CALL_SAMPLE_RATE
            await asyncio.sleep(max(0.0, start + sent - loop.time() - _LEAD))
        return
    async for chunk in chunks:
        deliver(chunk)
        sent += len(chunk) / 2 / CALL_SAMPLE_RATE
        await asyncio.sleep(max(0.0, start + sent - loop.time() - _LEAD))
    await asyncio.sleep(max(0.0, start + sent - loop.time()))  # until it has played


def _looped_music() -> Iterator[bytes]:
    music = hold_music()
    offset = 0
    while True:
        yield music[offset : offset + _CHUNK]
        offset = (offset + _CHUNK) % len(music)


class SoftphoneMedia:
    """``CallerMedia`` on a softphone caller's WebSocket and the agent's desktop audio."""

    def __init__(
        self, leg: CallerLeg, engine: Any, *, hang_up: Callable[[], Awaitable[None]]
    ) -> None:
        self.leg = leg
        self.engine = engine
        self._hang_up = hang_up
        self._hold: asyncio.Task[None] | None = None
        self._admitted = False
        self._lock = asyncio.Lock()

    async def _speech(self, text: str) -> AsyncIterator[bytes]:
        async for frame in speech_frames(self.engine, text, rate=CALL_SAMPLE_RATE):
            yield bytes(frame.data)

    async def hold(self, on: bool) -> None:
        if on and self._hold is None:
            self._hold = asyncio.create_task(paced(_looped_music(), self.leg.to_caller))
        elif not on and self._hold is not None:
            self._hold.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hold
            self._hold = None

    async def say(self, text: str) -> None:
        async with self._lock:
            holding = self._hold is not None
            await self.hold(False)

            def both(pcm: bytes) -> None:
                self.leg.to_caller(pcm)
                if self._admitted and self.leg.to_agent is not None:
                    self.leg.to_agent(pcm)

            try:
                await paced(self._speech(text), both)
            finally:
                if holding:
                    await self.hold(True)

    async def brief(self, text: str, agent: str) -> None:
        self._admitted = False  # a new agent: the room's voice reaches them after the briefing

        def to_agent(pcm: bytes) -> None:
            if self.leg.to_agent is not None:
                self.leg.to_agent(pcm)

        await paced(self._speech(text), to_agent)

    async def admit(self, agent: str) -> None:
        self._admitted = True

    async def let_speak(self, agent: str) -> None:
        self.leg.bridged = True
        self.leg.to_caller({"type": "agent", "state": "connected"})

    async def leave(self) -> None:
        await self.hold(False)

    async def hang_up(self) -> None:
        await self.hold(False)
        await self._hang_up()

    async def aclose(self) -> None:
        await self.hold(False)
