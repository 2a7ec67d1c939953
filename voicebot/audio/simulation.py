"""A call from a recording: the caller's side is a file, the bot's side is written to one.

The recording is fed into a full audio session (VAD, recogniser, flows, TTS) at the pace it was
recorded, so endpointing, interruptions and no-input timers behave as on a live line, and the
bot's audio is written on the same timeline (silence where the bot is quiet), so ``--out``
lines up with the input. With ``fast`` the caller's speech goes in as fast as the recogniser
takes it and only the pauses keep their length: timers still see real pauses, but a recording
with long speech finishes sooner (and the bot's file no longer lines up with it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.agent.voice_call import CallEvent, VoiceCall
from voicebot.audio.files import CALL_SAMPLE_RATE, AudioFile, WavWriter
from voicebot.audio.io import PacedAudioOutput, QueueAudioInput
from voicebot.handoff.packet import CallerInfo
from voicebot.speech.stack import SpeechStack

logger = logging.getLogger("voicebot.simulation")

_CHUNK = 0.02
# Below this level (dBFS) a chunk counts as a pause for --fast pacing.
_PAUSE_DBFS = -45.0


async def simulate_call(
    runtime: Any,
    speech: SpeechStack,
    audio: AudioFile,
    *,
    out: Path | None = None,
    fast: bool = False,
    caller: CallerInfo | None = None,
    call_id: str | None = None,
    on_event: Callable[[CallEvent], None] | None = None,
    settle_seconds: float = 2.0,
    max_tail_seconds: float = 60.0,
) -> dict[str, Any]:
    """Run the call; returns its report (transcript, per-turn timings, how it ended).

    After the recording ends the caller stays silent: the call goes on until it ends by itself
    or the bot has been quietly waiting for ``settle_seconds`` (it would only reprompt).
    """
    writer = WavWriter(out, CALL_SAMPLE_RATE) if out is not None else None
    started = time.monotonic()

    def deliver(pcm: bytes) -> None:
        if writer is not None:
            writer.pad_to(int((time.monotonic() - started) * CALL_SAMPLE_RATE))
            writer.write(pcm)

    audio_in = QueueAudioInput(label="simulation", sample_rate=CALL_SAMPLE_RATE)
    audio_out = PacedAudioOutput(label="simulation", sample_rate=CALL_SAMPLE_RATE, deliver=deliver)
    call = VoiceCall(
        runtime, speech, audio_in, audio_out, caller=caller, call_id=call_id, on_event=on_event
    )
    fed = 0.0
    worst_lag = 0.0  # how far feeding fell behind the recording's own pace
    try:
        await call.start()
        clock = time.monotonic()
        for chunk in audio.chunks(_CHUNK):
            if call.ended:
                break
            audio_in.push(chunk)
            seconds = len(chunk) / 2 / CALL_SAMPLE_RATE
            fed += seconds
            if fast and _level_dbfs(chunk) > _PAUSE_DBFS:
                clock = time.monotonic()
                await asyncio.sleep(0)
                continue
            clock += seconds
            delay = clock - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                worst_lag = max(worst_lag, -delay)
        await _play_out_tail(call, audio_in, settle_seconds, max_tail_seconds)
    finally:
        audio_in.close()
        await call.aclose("recording ended")
        await audio_out.aclose()
        if writer is not None:
            writer.close()
    report = call.report()
    report["caller_audio_seconds"] = round(fed, 3)
    report["max_feed_lag_ms"] = round(worst_lag * 1000, 1)
    report["wall_seconds"] = round(time.monotonic() - started, 3)
    return report


async def _play_out_tail(
    call: VoiceCall, audio_in: QueueAudioInput, settle: float, limit: float
) -> None:
    """Silence from the caller until the call ends or the bot just waits."""
    silence = b"\0\0" * int(CALL_SAMPLE_RATE * _CHUNK)
    quiet_since: float | None = None
    deadline = time.monotonic() + limit
    clock = time.monotonic()
    while not call.ended and time.monotonic() < deadline:
        idle = call.session.agent_state == "listening" and call.session.user_state != "speaking"
        now = time.monotonic()
        if idle:
            quiet_since = quiet_since or now
            if now - quiet_since >= settle:
                return
        else:
            quiet_since = None
        audio_in.push(silence)
        clock += _CHUNK
        await asyncio.sleep(max(0.0, clock - time.monotonic()))


def _level_dbfs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples * samples)))
    return 20 * float(np.log10(max(rms, 1e-9) / 32768))
