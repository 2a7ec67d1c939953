"""The offline recogniser's plumbing on real models: decoder worker processes, a call's
recogniser listening to the call's session VAD, and per-call plugin objects."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from tests.audio.conftest import audio_settings
from tests.speech.streaming import hear
from voicebot.runtime.bot import BotRuntime
from voicebot.speech.shared_vad import PublishingVAD, VadEvents
from voicebot.speech.stack import build_speech, load_vad
from voicebot.speech.stt.pocketsphinx import (
    AsrModelError,
    DecoderPool,
    PocketsphinxSTT,
    build_language_model,
)
from voicebot.testing.callers import RATE, silence, speak

SENTENCES = ["yes", "no", "what is my balance", "speak to an agent", "my broadband is not working"]


@pytest.fixture
def pool(tmp_path: Path) -> DecoderPool:
    lm, dictionary = build_language_model(SENTENCES, tmp_path / "asr")
    decoders = DecoderPool(lm, dictionary, size=1)
    decoders.prewarm()
    yield decoders
    decoders.close()


async def test_decoding_runs_in_a_worker_process(pool: DecoderPool) -> None:
    pcm = speak("what is my balance").tobytes()
    hyp = await pool.decode(pcm, offset=2.0)
    assert hyp.text == "what is my balance"
    assert hyp.words and hyp.words[0].start_time >= 2.0
    assert hyp.end_time == pytest.approx(2.0 + len(pcm) / 2 / RATE)
    workers = pool._pool()._processes  # type: ignore[attr-defined]
    assert workers and os.getpid() not in workers


async def test_a_dead_worker_is_replaced_and_the_utterance_retried(pool: DecoderPool) -> None:
    for pid in list(pool._pool()._processes):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.2)
    hyp = await pool.decode(speak("yes").tobytes(), offset=0.0)
    assert hyp.text == "yes"
    assert pool.created == 2


async def test_a_closed_pool_refuses_work(pool: DecoderPool) -> None:
    pool.close()
    with pytest.raises(AsrModelError):
        await pool.decode(speak("yes").tobytes(), offset=0.0)


def test_missing_model_files_are_a_clear_error(tmp_path: Path) -> None:
    decoders = DecoderPool(tmp_path / "none.arpa", tmp_path / "none.dict")
    with pytest.raises(AsrModelError, match="model file missing"):
        decoders.prewarm()


@pytest.mark.parametrize("rate", [16000, 48000])
async def test_a_call_recogniser_hears_through_the_session_vad(
    tmp_path: Path, pool: DecoderPool, rate: int
) -> None:
    """One silero stream per call: the recogniser takes its utterances from the VAD the
    session runs (at the line's own rate), and runs none of its own."""
    settings = audio_settings(tmp_path)
    events = VadEvents()
    session_vad = PublishingVAD(load_vad(settings), events)
    recogniser = PocketsphinxSTT(pool, load_vad(settings)).for_call(session_vad, events)
    speech = np.concatenate([silence(0.5), speak("speak to an agent"), silence(1.2)])
    if rate != RATE:
        resampler = rtc.AudioResampler(RATE, rate, num_channels=1)
        frame = rtc.AudioFrame(speech.tobytes(), RATE, 1, len(speech))
        out = [*resampler.push(frame), *resampler.flush()]
        speech = np.frombuffer(b"".join(bytes(f.data) for f in out), dtype=np.int16)

    finals, vad_streams = await hear(recogniser, session_vad, speech, rate)
    assert finals and finals[0] == "speak to an agent"
    assert vad_streams == 1  # the recogniser ran no VAD of its own
    await recogniser.aclose()
    assert pool._executor is not None  # a call's recogniser leaves the shared decoders running


async def test_each_call_gets_its_own_plugin_objects(tmp_path: Path) -> None:
    """livekit sessions subscribe to their plugins' events: shared objects would hand one
    call's metrics and errors to every session."""
    settings = audio_settings(tmp_path)
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    try:
        first, second = speech.for_call(), speech.for_call()
        assert first.vad is not second.vad and first.vad is not speech.vad
        assert first.stt is not second.stt and first.stt is not speech.stt
        assert first.tts is not second.tts and first.tts is not speech.tts
        assert first.vad._onnx_session is speech.vad._onnx_session
        seen: list[object] = []
        second.vad.on("metrics_collected", seen.append)
        first.vad.emit("metrics_collected", object())
        assert seen == []
    finally:
        await speech.aclose()
        await runtime.aclose()


def _job_process(lm: str, dictionary: str, pids: Any) -> None:
    """What a livekit job process does with the pool: loads it at prewarm and, when told to
    shut down, returns without closing it (multiprocessing then ends it with os._exit)."""
    decoders = DecoderPool(Path(lm), Path(dictionary), size=2)
    decoders.prewarm()
    pids.put(list(decoders._pool()._processes))  # type: ignore[attr-defined]


@pytest.mark.timeout(180)
def test_a_process_that_ends_without_closing_the_pool_stops_its_workers(tmp_path: Path) -> None:
    """Before the finalizer, such a process hung at exit joining its decoder workers, was
    killed by livekit after its close timeout and left the workers running (orphans)."""
    lm, dictionary = build_language_model(SENTENCES, tmp_path / "asr")
    context = multiprocessing.get_context("forkserver")  # as livekit starts job processes
    pids = context.Queue()
    job = context.Process(target=_job_process, args=(str(lm), str(dictionary), pids))
    job.start()
    workers = pids.get(timeout=120)
    job.join(timeout=20)
    alive = job.is_alive()
    if alive:
        job.kill()
    assert not alive and job.exitcode == 0
    assert len(workers) == 2
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
