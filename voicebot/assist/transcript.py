"""The caller's live transcript while they talk to an agent (softphone and LiveKit phone calls).

From the moment the agent may speak to the caller (``let_speak``) until the caller is back on
hold or the call ends, the caller's audio goes through the bot's own recogniser
(voicebot/speech/) and each final line is published on the queue's event bus as
``{"type": "caller_transcript", "entry_id", "call_id", "text", "at"}``. The API node holding
the agent's desktop passes it on (voicebot/assist/hub.py); the worker of a phone call runs on
another process, so the bus is the one way both kinds of call reach the desktop.

The text is the caller's words with card data masked (PCI DSS: a card number never travels or
is shown beyond its last four digits); it is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

from livekit import rtc
from livekit.agents import stt

from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.privacy.cards import mask_card_data
from voicebot.queues.events import Event

__all__ = ["LiveTranscript", "TranscribedMedia"]

logger = logging.getLogger("voicebot.assist.transcript")

Publish = Callable[[Event], Awaitable[None]]
# After the caller's audio stops (hang-up, hold), the recogniser may still be decoding the last
# words: they are waited for this long.
_DRAIN_SECONDS = 5.0


class LiveTranscript:
    """One caller's audio through a recogniser, each final line published. Start and stop as
    often as the caller is connected to an agent and taken off again."""

    def __init__(
        self,
        recogniser: stt.STT[Any],
        publish: Publish,
        *,
        entry_id: str,
        call_id: str | None = None,
        sample_rate: int = CALL_SAMPLE_RATE,
    ) -> None:
        self.recogniser = recogniser
        self.publish = publish
        self.entry_id = entry_id
        self.call_id = call_id
        self.sample_rate = sample_rate
        self.lines = 0
        self._stream: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._feeder: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._stream is not None

    def start(self, audio: AsyncIterable[rtc.AudioFrame] | None = None) -> None:
        """Listen from now on: to ``audio`` when given (a LiveKit track), else to :meth:`push`."""
        if self._stream is not None:
            return
        stream = self.recogniser.stream()
        self._stream = stream
        self._reader = asyncio.create_task(self._read(stream), name="live-transcript")
        if audio is not None:
            self._feeder = asyncio.create_task(self._feed(stream, audio), name="transcript-audio")

    def push(self, pcm: bytes) -> None:
        """16-bit mono PCM at ``sample_rate`` (a softphone caller's audio); dropped unless
        started."""
        if self._stream is None or len(pcm) < 2:
            return
        self._stream.push_frame(rtc.AudioFrame(pcm, self.sample_rate, 1, len(pcm) // 2))

    async def _feed(self, stream: Any, audio: AsyncIterable[rtc.AudioFrame]) -> None:
        async for frame in audio:
            if self._stream is not stream:
                return
            stream.push_frame(frame)

    async def _read(self, stream: Any) -> None:
        try:
            async for event in stream:
                if event.type != stt.SpeechEventType.FINAL_TRANSCRIPT or not event.alternatives:
                    continue
                text = event.alternatives[0].text.strip()
                if not text:
                    continue
                self.lines += 1
                await self.publish(
                    {
                        "type": "caller_transcript",
                        "entry_id": self.entry_id,
                        "call_id": self.call_id,
                        "text": mask_card_data(text)[:2000],
                        "at": time.time(),
                    }
                )
        except Exception:
            # A recogniser or bus failure costs the transcript, never the call.
            logger.exception("live transcript stopped", extra={"entry_id": self.entry_id})

    async def stop(self) -> None:
        """Stop listening; the words already heard are still recognised and published."""
        stream, self._stream = self._stream, None
        feeder, self._feeder = self._feeder, None
        reader, self._reader = self._reader, None
        if stream is None:
            return
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder
        with contextlib.suppress(Exception):
            stream.end_input()
        if reader is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(reader), _DRAIN_SECONDS)
            reader.cancel()
        with contextlib.suppress(Exception):
            await stream.aclose()


class TranscribedMedia:
    """A waiting caller's media (``CallerMedia``, voicebot/queues/waiting.py) that runs the
    live transcript while the caller is connected to an agent: from ``let_speak`` until the
    bot next speaks to them alone (hold, a new briefing) or the call ends."""

    def __init__(
        self,
        media: Any,
        transcript: LiveTranscript,
        *,
        audio: Callable[[], AsyncIterable[rtc.AudioFrame]] | None = None,
    ) -> None:
        self.media = media
        self.transcript = transcript
        self._audio = audio

    def __getattr__(self, name: str) -> Any:
        # the rest of the room's interface (``start``, ``allow_caller``) is the media's own
        return getattr(self.media, name)

    async def hold(self, on: bool) -> None:
        await self.transcript.stop()
        await self.media.hold(on)

    async def say(self, text: str) -> None:
        await self.media.say(text)

    async def brief(self, text: str, agent: str) -> None:
        await self.transcript.stop()
        await self.media.brief(text, agent)

    async def admit(self, agent: str) -> None:
        await self.media.admit(agent)

    async def let_speak(self, agent: str) -> None:
        await self.media.let_speak(agent)
        self.transcript.start(self._audio() if self._audio is not None else None)

    async def leave(self) -> None:
        await self.media.leave()

    async def hang_up(self) -> None:
        await self.transcript.stop()
        await self.media.hang_up()

    async def aclose(self) -> None:
        await self.transcript.stop()
        await self.media.aclose()
