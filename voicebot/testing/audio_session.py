"""A conversation test's call on audio: the same steps as text mode, through the audio path.

The caller's ``user`` lines are spoken by espeak-ng and go through the call's VAD, endpointing
and recogniser; ``dtmf`` steps are keypad tones in the caller's audio (in-band detection);
``silence`` steps are real silence, so no-input reprompts come from the call's own timers. The
bot's replies are synthesised and played out faster than real time, since a test needs their
order and content, not the wait. Each answer carries its latency from the end of the caller's
speech (or keys, or the no-input timeout) to the bot's first audio, for ``within_ms``.

The test's caller is polite: it speaks only once the bot has finished and the line is quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import numpy as np

from voicebot.agent.text_session import TextTurn
from voicebot.agent.voice_call import CallEvent, VoiceCall
from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.audio.io import PacedAudioOutput, QueueAudioInput
from voicebot.runtime.call import CallRuntime, Reply
from voicebot.speech.stack import SpeechStack
from voicebot.testing.callers import keys, speak
from voicebot.testing.telephone import telephone_line

_CHUNK = 0.02
_CHUNK_SAMPLES = int(CALL_SAMPLE_RATE * _CHUNK)
# The bot's turn is over once it has been listening this long with nothing new to say.
_SETTLE = 0.4
# How long a caller event may go unanswered beyond the time the call itself could take.
_ANSWER_WAIT = 8.0
# Keys are followed by this much silence: the keypad's inter-digit timeout (3 s) may be what
# completes an entry that has no terminator or fixed length.
_AFTER_KEYS = 0.3


class AudioTestSession:
    """The text session's interface (``start``/``say``/``press``/``silence``) on audio."""

    def __init__(
        self,
        runtime: Any,
        speech: SpeechStack,
        call: CallRuntime,
        *,
        voice: str = "en-us",
        words_per_minute: int = 140,
        playback_speed: float = 20.0,
        telephone: bool = False,
    ) -> None:
        self.call = call
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.telephone = telephone  # the caller's speech and keys reach the bot over a phone line
        self._audio_in = QueueAudioInput(label="conversation-test", sample_rate=CALL_SAMPLE_RATE)
        self._audio_out = PacedAudioOutput(
            label="conversation-test",
            sample_rate=CALL_SAMPLE_RATE,
            deliver=lambda _pcm: None,
            speed=playback_speed,
        )
        self._heard: list[str] = []
        self.voice_call = VoiceCall(
            runtime, speech, self._audio_in, self._audio_out, call=call, on_event=self._on_event
        )
        self._pending: deque[np.ndarray] = deque()  # caller audio still to go on the line
        self._drained = asyncio.Event()
        self._feeder: asyncio.Task[None] | None = None
        self._first_audio: list[float] = []
        self._audio_out.on("playback_started", lambda ev: self._first_audio.append(ev.created_at))

    # -- the line -----------------------------------------------------------------------------

    async def _feed(self) -> None:
        """Caller audio in real time: what a step queued, else silence."""
        silence = b"\0\0" * _CHUNK_SAMPLES
        clock = time.monotonic()
        buffer = np.zeros(0, dtype=np.int16)
        while not self._audio_in.closed:
            if buffer.size == 0 and self._pending:
                buffer = self._pending.popleft()
            if buffer.size:
                chunk, buffer = buffer[:_CHUNK_SAMPLES], buffer[_CHUNK_SAMPLES:]
                self._audio_in.push(chunk.tobytes())
            else:
                self._drained.set()
                self._audio_in.push(silence)
            clock += _CHUNK
            delay = clock - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                clock = time.monotonic()  # the machine stalled: do not rush to catch up

    async def _play(self, samples: np.ndarray) -> None:
        """Queue caller audio and wait until it has gone out on the line."""
        self._drained.clear()
        self._pending.append(samples)
        await self._drained.wait()

    def _line(self, samples: np.ndarray) -> np.ndarray:
        return telephone_line(samples) if self.telephone else samples

    def _on_event(self, event: CallEvent) -> None:
        if event.get("type") == "caller" and event.get("final") and event.get("text"):
            self._heard.append(str(event["text"]))

    # -- the steps ----------------------------------------------------------------------------

    async def start(self) -> TextTurn:
        started = time.time()
        before = self._marks()
        self._feeder = asyncio.create_task(self._feed(), name="conversation-test-caller")
        await self.voice_call.start()
        return await self._answer(before, since=started, kind="start")

    async def say(self, text: str) -> TextTurn:
        samples = await asyncio.to_thread(speak, text, rate=self.words_per_minute, voice=self.voice)
        before = self._marks()
        await self._play(self._line(samples))
        return await self._answer(before, since=time.time(), kind="speech")

    async def press(self, digits: str) -> TextTurn:
        before = self._marks()
        await self._play(self._line(keys(digits)))
        await asyncio.sleep(_AFTER_KEYS)
        return await self._answer(before, since=time.time(), kind="keys", extra_wait=3.0)

    async def silence(self, seconds: float) -> TextTurn:
        before = self._marks()
        listen = self.voice_call._listen
        timeout = listen.timeout if listen is not None else None
        await asyncio.sleep(seconds)  # the feeder keeps the line silent
        if timeout is None or seconds < timeout:
            # too short for a no-input reprompt: on a live line nothing would happen either
            return self._turn(before, latency_ms=None)
        return await self._answer(before, since=time.time(), kind="silence")

    # -- answers ------------------------------------------------------------------------------

    def _marks(self) -> tuple[int, int, int]:
        return (
            len(self.voice_call.agent.replies),
            len(self.voice_call.timings),
            len(self._heard),
        )

    async def _answer(
        self, before: tuple[int, int, int], *, since: float, kind: str, extra_wait: float = 0.0
    ) -> TextTurn:
        """Wait until the bot has answered and finished speaking, then describe its answer."""
        voice_call = self.voice_call
        listen = voice_call._listen
        limit = _ANSWER_WAIT + extra_wait + (listen.timeout if listen is not None else 0.0)
        deadline = time.monotonic() + limit
        quiet_since: float | None = None
        while time.monotonic() < deadline and not voice_call.ended:
            await asyncio.sleep(0.05)
            answered = len(voice_call.agent.replies) > before[0]
            session = voice_call.session
            idle = session.agent_state == "listening" and session.user_state != "speaking"
            if answered and idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= _SETTLE:
                    break
            else:
                quiet_since = None
        return self._turn(before, latency_ms=self._latency(before, since, kind))

    def _latency(self, before: tuple[int, int, int], since: float, kind: str) -> float | None:
        timings = self.voice_call.timings[before[1] :]
        if kind == "start":
            return (self._first_audio[0] - since) * 1000 if self._first_audio else None
        for timing in timings:
            report = timing.report()
            if report["total_ms"] is not None:
                return float(report["total_ms"])
        return None

    def _turn(self, before: tuple[int, int, int], *, latency_ms: float | None) -> TextTurn:
        replies = self.voice_call.agent.replies[before[0] :]
        lines = [line.text for reply in replies for line in reply.lines]
        return TextTurn(
            lines=lines,
            reply=replies[-1] if replies else Reply(),
            latency_ms=latency_ms,
            heard=" / ".join(self._heard[before[2] :]),
        )

    @property
    def ended(self) -> bool:
        return self.voice_call.ended or self.call.ended

    async def aclose(self) -> None:
        self._audio_in.close()
        await self.voice_call.aclose("test over")
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder
        await self._audio_out.aclose()
