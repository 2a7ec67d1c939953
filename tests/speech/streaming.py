"""Audio frames in the speech tests: cutting samples into 20 ms frames, reading synthesised
frames back, and driving a call's recogniser as a livekit session does (frames to the session's
VAD and to the recogniser's stream together, the final transcripts read as they come)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from livekit import rtc
from livekit.agents import stt, tts

from voicebot.speech.shared_vad import PublishingVAD


def frames(samples: np.ndarray, rate: int) -> list[rtc.AudioFrame]:
    size = rate // 50
    return [
        rtc.AudioFrame(samples[i : i + size].tobytes(), rate, 1, len(samples[i : i + size]))
        for i in range(0, len(samples), size)
    ]


async def collect(stream: tts.ChunkedStream) -> tuple[list[rtc.AudioFrame], float, float]:
    """All frames of ``stream``, with the seconds until the first frame and until the end."""
    start = time.perf_counter()
    first = -1.0
    frames: list[rtc.AudioFrame] = []
    async with stream:
        async for ev in stream:
            if first < 0:
                first = time.perf_counter() - start
            frames.append(ev.frame)
    return frames, first, time.perf_counter() - start


def samples_of(frames: list[rtc.AudioFrame]) -> np.ndarray:
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames]).astype(float)


def duration_of(frames: list[rtc.AudioFrame]) -> float:
    return sum(f.duration for f in frames)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


async def hear(
    recogniser: stt.STT, session_vad: PublishingVAD, samples: np.ndarray, rate: int
) -> tuple[list[str], int]:
    """The final transcripts, and how many VAD streams were open while the recogniser ran (one:
    the session's, when the recogniser runs none of its own)."""
    vad_stream = session_vad.stream()
    asr = recogniser.stream()
    finals: list[str] = []

    async def read() -> None:
        async for event in asr:
            if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                finals.append(event.alternatives[0].text)

    async def watch_vad() -> None:
        async for _ in vad_stream:
            pass

    reader = asyncio.create_task(read())
    watcher = asyncio.create_task(watch_vad())
    for frame in frames(samples, rate):
        vad_stream.push_frame(frame)
        asr.push_frame(frame)
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.5)
    asr.flush()
    asr.end_input()
    await asyncio.wait_for(reader, 10)
    vad_streams = len(session_vad._streams)
    vad_stream.end_input()
    await asyncio.wait_for(watcher, 10)
    await vad_stream.aclose()
    return finals, vad_streams
