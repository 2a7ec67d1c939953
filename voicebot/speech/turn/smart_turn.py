"""Semantic end-of-turn detection from the caller's audio: Smart Turn v3.2 (BSD-2) on onnxruntime.

The model hears the last 8 s of the caller (intonation, a trailing "and...", a number that
stops mid-way) and gives the probability that the turn is complete. livekit's session asks it
when the caller pauses: a likely-complete turn is answered after a short delay, an unlikely one
after a long one, and new speech cancels the wait either way.

Integration: the detector satisfies livekit's streaming (audio) turn-detector protocol
(``voice.turn._StreamingTurnDetector``), which ``turn_handling["turn_detection"]`` accepts. It
is a structural protocol: nothing here subclasses or calls livekit's private classes, and the
session itself feeds the audio (``push_audio``), asks for a prediction 0.2 s into a pause
(``predict``), cancels it when speech resumes and flushes it when a turn is committed. The
alternatives were worse: the text protocol (``predict_end_of_turn(chat_ctx)``) never sees the
audio, so the audio model would need a tap of our own on the input; and livekit's audio base
class (``inference.eot._BaseStreamingTurnDetectorStream``) is built around its cloud transport
and its own local model, with fallback logic we would have to override.

Cost: one ONNX session per process (``SmartTurnModel``) shared by every call; a call holds a
:class:`SmartTurnDetector` and a stream whose audio hot path only appends the frame's bytes.
Features and inference (about 60-130 ms of one core per prediction on this 2-core machine) run
on the model's worker threads, never on the event loop, and a prediction that new speech made
stale before its turn on a worker is skipped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.voice.turn import TurnDetectionEvent
from numpy.typing import NDArray

from voicebot.speech.turn import features

logger = logging.getLogger("voicebot.speech.turn")

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_NAME = "smart-turn-v3.2"
DEFAULT_DIR = Path.home() / ".cache" / "voicebot" / "models"
# The least silence livekit's streaming detectors accept from the VAD (its
# ``MIN_SILENCE_DURATION_MS`` + 50 ms): the VAD's end of speech with the detector on.
VAD_MIN_SILENCE = 0.25
# Predictions running at once across all calls. Each is single-threaded: two keep both cores
# for the model when several callers pause together, and no more than two turns queue.
_WORKERS = 2


class TurnModelMissing(RuntimeError):
    """The model file is not on disk (``voicebot models download turn-detector``)."""


def find_model(explicit: Path | None, dirs: list[Path]) -> Path:
    """The model file: ``explicit`` when set (a file, or a directory holding it), else the first
    of ``dirs`` that holds it. Raises :class:`TurnModelMissing` saying where it looked."""
    candidates = [explicit] if explicit is not None else dirs
    for candidate in candidates:
        path = candidate / MODEL_FILE if candidate.is_dir() else candidate
        if path.is_file():
            return path
    looked = ", ".join(str(c) for c in candidates)
    raise TurnModelMissing(
        f"{MODEL_FILE} not found (looked in {looked}); run `voicebot models download turn-detector`"
    )


class SmartTurnModel:
    """The ONNX session and its worker threads, shared by every call of the process."""

    def __init__(self, path: Path, *, threshold: float = 0.5) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.threshold = threshold
        self._session = ort.InferenceSession(str(path), sess_options=options)
        self._executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="smart-turn")

    def score(self, audio: NDArray[np.float32]) -> float:
        """The probability that the turn ending with ``audio`` (16 kHz float mono) is complete.
        Blocking; thread-safe (onnxruntime sessions may be run from several threads)."""
        mel = features.log_mel(features.last_seconds(audio))
        outputs = self._session.run(None, {"input_features": mel[np.newaxis]})
        return float(np.asarray(outputs[0]).reshape(-1)[0])

    def score_pcm(self, chunks: list[bytes]) -> float:
        pcm = np.frombuffer(b"".join(chunks), dtype=np.int16)
        return self.score(pcm.astype(np.float32) / 32768.0)

    def warm_up(self) -> None:
        """One prediction on silence: the first run of a session allocates and is slow."""
        self.score(np.zeros(features.SAMPLE_RATE, dtype=np.float32))

    def detector(self) -> SmartTurnDetector:
        """A call's detector (thin: the session and threads stay shared)."""
        return SmartTurnDetector(self)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, job: _Job) -> None:
        self._executor.submit(job.run, self)


@dataclass
class _Job:
    chunks: list[bytes]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[TurnDetectionEvent]
    asked_at: float
    cancelled: threading.Event

    def run(self, model: SmartTurnModel) -> None:
        if self.cancelled.is_set():
            return  # speech resumed before a worker was free: nothing waits for it
        started = time.perf_counter()
        try:
            probability = model.score_pcm(self.chunks)
        except Exception:
            logger.warning("the turn detector failed; the turn ends on the timers", exc_info=True)
            probability = 1.0  # livekit's own default: commit after the short delay
        took = time.perf_counter() - started
        self.loop.call_soon_threadsafe(self._resolve, probability, took)

    def _resolve(self, probability: float, took: float) -> None:
        logger.debug(
            "turn prediction",
            extra={"probability": round(probability, 3), "inference_ms": round(took * 1000, 1)},
        )
        if not self.future.done():
            self.future.set_result(
                TurnDetectionEvent(
                    type="eot_prediction",
                    end_of_turn_probability=probability,
                    last_speaking_time=time.time(),
                    detection_delay=time.time() - self.asked_at,
                    inference_duration=took,
                )
            )


class SmartTurnDetector:
    """One call's turn detector (livekit's ``_StreamingTurnDetector`` protocol).

    ``hold`` stops the model for a while (a digit collect, where the call's own long delay
    decides): predictions then answer "not complete" at once, without running the model.
    """

    def __init__(self, model: SmartTurnModel) -> None:
        self._model = model
        self.hold = False
        # whether the last prediction was held: what ended the turn, for the call's timings
        self.last_held = False

    @property
    def model(self) -> str:
        return MODEL_NAME

    @property
    def provider(self) -> str:
        return "pipecat-ai (local onnxruntime)"

    @property
    def threshold(self) -> float:
        return self._model.threshold

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> SmartTurnStream:
        return SmartTurnStream(self, self._model)


class SmartTurnStream:
    """The caller's recent audio and the prediction in flight
    (livekit's ``_StreamingTurnDetectorStream`` protocol)."""

    def __init__(self, detector: SmartTurnDetector, model: SmartTurnModel) -> None:
        self._detector = detector
        self._model = model
        self._chunks: collections.deque[bytes] = collections.deque()
        self._samples = 0
        self._resampler: rtc.AudioResampler | None = None
        self._input_rate: int | None = None
        self._job: _Job | None = None
        self._closed = False

    # -- what the session reads ---------------------------------------------------------------

    @property
    def model(self) -> str:
        return MODEL_NAME

    @property
    def provider(self) -> str:
        return self._detector.provider

    @property
    def is_fallback(self) -> bool:
        return False

    @property
    def prediction_timeout(self) -> float:
        # past this the session commits on its short delay without a prediction
        return 1.0

    async def unlikely_threshold(self, language: str | None) -> float | None:
        return self._detector.threshold

    async def backchannel_threshold(self, language: str | None) -> float | None:
        return None

    async def supports_language(self, language: str | None) -> bool:
        # trained on 23 languages and hears prosody, not words: no reason to refuse one
        return True

    # -- audio --------------------------------------------------------------------------------

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        # every 10-20 ms of the call: keep it to an append (and a resample off 16 kHz)
        if self._closed:
            return
        if frame.sample_rate != features.SAMPLE_RATE or frame.num_channels != 1:
            if self._resampler is None or self._input_rate != frame.sample_rate:
                self._input_rate = frame.sample_rate
                self._resampler = rtc.AudioResampler(
                    input_rate=frame.sample_rate,
                    output_rate=features.SAMPLE_RATE,
                    num_channels=frame.num_channels,
                    quality=rtc.AudioResamplerQuality.QUICK,
                )
            for out in self._resampler.push(frame):
                self._append(out)
            return
        self._append(frame)

    def _append(self, frame: rtc.AudioFrame) -> None:
        if frame.num_channels != 1:
            data = np.frombuffer(frame.data, dtype=np.int16)[:: frame.num_channels].tobytes()
        else:
            data = bytes(frame.data)
        self._chunks.append(data)
        self._samples += len(data) // 2
        # the model hears the last 8 s; keep no more than that plus one chunk
        while self._chunks and self._samples - len(self._chunks[0]) // 2 >= features.SAMPLES:
            self._samples -= len(self._chunks.popleft()) // 2

    # -- predictions --------------------------------------------------------------------------

    def predict(self) -> asyncio.Future[TurnDetectionEvent]:
        loop = asyncio.get_running_loop()
        self.cancel_inference()
        future: asyncio.Future[TurnDetectionEvent] = loop.create_future()
        self._detector.last_held = self._detector.hold
        if self._closed or self._detector.hold or not self._chunks:
            future.set_result(_event(0.0 if self._detector.hold else 1.0))
            return future
        job = _Job(
            chunks=list(self._chunks),
            loop=loop,
            future=future,
            asked_at=time.time(),
            cancelled=threading.Event(),
        )
        self._job = job
        self._model._submit(job)
        return future

    def cancel_inference(self, *, timed_out: bool = False) -> None:
        job, self._job = self._job, None
        if job is None:
            return
        job.cancelled.set()
        if not job.future.done():
            # as livekit's own streams do: whoever still waits hears "not complete"
            job.future.set_result(_event(0.0))
        if timed_out:
            logger.warning("the turn detector took too long; the turn ended on the timers")

    def flush(self, reason: str | None = None) -> None:
        # a committed (or cleared) turn: the next prediction hears only the next turn
        self._chunks.clear()
        self._samples = 0
        self.cancel_inference()

    def end_input(self) -> None:
        self.flush()
        self._closed = True

    async def aclose(self) -> None:
        self.end_input()


def _event(probability: float) -> TurnDetectionEvent:
    return TurnDetectionEvent(
        type="eot_prediction", end_of_turn_probability=probability, last_speaking_time=time.time()
    )
