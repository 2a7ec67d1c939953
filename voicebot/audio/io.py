"""Local audio transports for ``AgentSession``: caller audio in, bot audio out, in real time.

livekit-agents' own console does the same for a sound card (``cli/tcp_console.py``); these carry
audio to and from a WAV simulation or a browser softphone instead of a LiveKit room. The bot's
audio is released at playback speed, not as fast as TTS makes it, so an interruption cuts the
bot off where the caller actually heard it and the session knows how much was said.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from livekit import rtc
from livekit.agents.voice import io

logger = logging.getLogger("voicebot.audio")

_END = object()
# Frames go out this far ahead of the moment they play: a softphone's jitter buffer absorbs it,
# and the player wakes up a few times per 100 ms instead of every frame.
_LOOKAHEAD = 0.06


class QueueAudioInput(io.AudioInput):
    """Caller audio that another task pushes in (a file reader, a WebSocket)."""

    def __init__(self, *, label: str, sample_rate: int) -> None:
        super().__init__(label=label)
        self.sample_rate = sample_rate
        self._queue: asyncio.Queue[rtc.AudioFrame | object] = asyncio.Queue()
        self._closed = False
        self.received_seconds = 0.0

    def push(self, pcm: bytes) -> None:
        """16-bit mono PCM at ``sample_rate``; an odd trailing byte is dropped."""
        if self._closed:
            return
        if len(pcm) % 2:
            pcm = pcm[:-1]
        if not pcm:
            return
        frame = rtc.AudioFrame(pcm, self.sample_rate, 1, len(pcm) // 2)
        self.received_seconds += frame.duration
        self._queue.put_nowait(frame)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_END)

    @property
    def closed(self) -> bool:
        return self._closed

    async def __anext__(self) -> rtc.AudioFrame:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # every later reader ends too
            raise StopAsyncIteration
        assert isinstance(item, rtc.AudioFrame)
        return item


Deliver = Callable[[bytes], Awaitable[None] | None]


class PacedAudioOutput(io.AudioOutput):
    """The bot's audio, released in real time to ``deliver`` (16-bit mono PCM chunks).

    ``on_first_audio`` is called with ``time.time()`` when a segment's first audio goes out:
    the per-turn latency is measured up to that moment. ``speed`` above 1 plays faster than
    real time (conversation tests on audio, which need the order of events, not the wait).
    """

    def __init__(
        self,
        *,
        label: str,
        sample_rate: int,
        deliver: Deliver,
        on_clear: Callable[[], None] | None = None,
        on_first_audio: Callable[[float], None] | None = None,
        speed: float = 1.0,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        super().__init__(
            label=label,
            capabilities=io.AudioOutputCapabilities(pause=False),
            sample_rate=sample_rate,
        )
        self._deliver = deliver
        self._on_clear = on_clear
        self._on_first_audio = on_first_audio
        self._speed = speed
        self._items: deque[tuple[int, rtc.AudioFrame | object]] = deque()
        self._segment = 0  # items carry their segment, so a cleared one never leaks into the next
        self._wake = asyncio.Event()
        self._segment_open = False  # captured frames not yet finished (played or cleared)
        self._segment_start = 0.0  # monotonic time the segment's first frame was due
        self._played = 0.0  # seconds of the segment released so far
        self._player: asyncio.Task[None] | None = None
        self._closed = False

    def _ensure_player(self) -> None:
        if self._player is None:
            self._player = asyncio.create_task(self._play(), name=f"{self.label}-player")

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._closed:
            return
        self._ensure_player()
        if not self._segment_open:
            self._segment_open = True
            self._segment += 1
            self._played = 0.0
            self._segment_start = 0.0
        self._items.append((self._segment, frame))
        self._wake.set()

    def flush(self) -> None:
        super().flush()
        if self._segment_open:
            self._items.append((self._segment, _END))
            self._wake.set()

    def clear_buffer(self) -> None:
        self._items.clear()
        if self._segment_open:
            elapsed = (
                (time.monotonic() - self._segment_start) * self._speed
                if self._segment_start
                else 0.0
            )
            played = min(self._played, max(0.0, elapsed))
            self._segment_open = False
            if self._on_clear is not None:
                self._on_clear()
            self.on_playback_finished(playback_position=played, interrupted=True)

    async def _play(self) -> None:
        while not self._closed:
            if not self._items:
                self._wake.clear()
                await self._wake.wait()
                continue
            segment, item = self._items.popleft()
            if segment != self._segment or not self._segment_open:
                continue
            if item is _END:
                # the last frame has been released; it finishes playing this much later
                remaining = self._segment_start + self._played / self._speed - time.monotonic()
                if remaining > 0:
                    await asyncio.sleep(remaining)
                if self._segment_open and segment == self._segment:
                    self._segment_open = False
                    self.on_playback_finished(playback_position=self._played, interrupted=False)
                continue
            assert isinstance(item, rtc.AudioFrame)
            now = time.monotonic()
            if self._played == 0.0:
                self._segment_start = now
                started = time.time()
                self.on_playback_started(created_at=started)
                if self._on_first_audio is not None:
                    self._on_first_audio(started)
            due = self._segment_start + self._played / self._speed - _LOOKAHEAD
            if due > now:
                await asyncio.sleep(due - now)
                if not self._segment_open or segment != self._segment:
                    continue  # cleared while waiting
            self._played += item.duration
            try:
                result = self._deliver(bytes(item.data))
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.warning("bot audio could not be delivered", exc_info=True)

    async def aclose(self) -> None:
        self._closed = True
        self._wake.set()
        if self._player is not None:
            self._player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._player
        if self._segment_open:
            self._segment_open = False
            self.on_playback_finished(playback_position=self._played, interrupted=True)
