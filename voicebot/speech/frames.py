"""Text spoken by a call's TTS as audio frames at a chosen rate: for what the bot says outside the
conversation (wait updates, a briefing), which livekit's session does not play."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from livekit import rtc
from livekit.agents import tts as agents_tts


async def speech_frames(
    engine: agents_tts.TTS[Any], text: str, *, rate: int
) -> AsyncIterator[rtc.AudioFrame]:
    """``text`` spoken by the call's TTS, as mono frames at ``rate``."""
    resampler: rtc.AudioResampler | None = None
    async with engine.synthesize(text) as stream:
        async for chunk in stream:
            frame = chunk.frame
            if frame.sample_rate == rate:
                yield frame
                continue
            if resampler is None:
                resampler = rtc.AudioResampler(frame.sample_rate, rate, num_channels=1)
            for out in resampler.push(frame):
                yield out
    if resampler is not None:
        for out in resampler.flush():
            yield out
