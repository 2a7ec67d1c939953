"""The offline recogniser: pocketsphinx with a language model built from the bot's flows.

The pocketsphinx wheel carries a US-English acoustic model and dictionary, so ``pip install``
alone gives a bot that hears callers. A general language model hears little over a phone line;
one trained at start-up on the flows' own sentences (intent examples, menu words, prompts,
yes/no, digits) hears short caller phrases well enough to route a call.

Decoders are costly (about 40 MB and 0.7 s each), so they are pooled and held only while an
utterance is decoded, not per call: the stream runs its own silero VAD over the caller audio,
keeps what the caller says, and decodes it in one pass in a worker process when the turn ends
(pocketsphinx holds the GIL while it decodes, so a thread would stall every call).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import multiprocessing
import multiprocessing.util
import os
import threading
import time
from collections.abc import AsyncIterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, stt, utils, vad
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr, TimedString

from voicebot.speech.shared_vad import VadEvents
from voicebot.speech.stt import decoder_process
from voicebot.speech.vocabulary import normalise

logger = logging.getLogger("voicebot.speech.asr")

SAMPLE_RATE = 16000
# After our own VAD hears the end of speech, the session normally asks for the transcript
# (a flush) within moments; if it does not, finish the utterance ourselves after this long.
_FLUSH_GRACE_SECONDS = 1.0
# A flush is served when our VAD is within this much of the audio pushed before it ...
_FLUSH_SLACK = 0.04
# ... or after this long, whatever the VAD says (the session waits on it).
_FLUSH_WAIT = 0.3


class AsrModelError(RuntimeError):
    """The recogniser's model files are missing or unusable."""


def model_dir() -> Path:
    from pocketsphinx import get_model_path

    return Path(get_model_path()) / "en-us"


def build_language_model(sentences: Sequence[str], cache_dir: Path) -> tuple[Path, Path]:
    """Write a trigram ARPA model of ``sentences`` (words outside the pronouncing dictionary
    dropped) and the dictionary subset it needs; returns (lm, dict). Cached by content."""
    from pocketsphinx.lm import ArpaBoLM

    dictionary = model_dir() / "cmudict-en-us.dict"
    pronunciations = _read_dictionary(dictionary)
    known = set(pronunciations)
    # repeats are kept: a phrase several flows share weighs more in the model
    cleaned = [s for s in (normalise(t, known) for t in sentences) if s]
    if not cleaned:
        raise AsrModelError("no sentences to build the recogniser's language model from")
    corpus = "\n".join(cleaned)
    key = hashlib.sha256(corpus.encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    lm_path = cache_dir / f"domain-{key}.arpa"
    dict_path = cache_dir / f"domain-{key}.dict"
    if not lm_path.is_file() or not dict_path.is_file():
        model = ArpaBoLM(text=corpus, add_start=True)
        model.compute()
        buffer = io.StringIO()
        model.write(buffer)
        words = {w for line in cleaned for w in line.split()}
        entries = [
            line
            for word, line in pronunciations.items()
            if decoder_process.base_word(word) in words
        ]
        _atomic_write(dict_path, "\n".join(sorted(entries)) + "\n")
        _atomic_write(lm_path, buffer.getvalue())
    return lm_path, dict_path


_DICTIONARIES: dict[Path, dict[str, str]] = {}


def _read_dictionary(path: Path) -> dict[str, str]:
    if path not in _DICTIONARIES:
        entries: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            word = line.split(" ", 1)[0]
            if word:
                entries[word] = line
        _DICTIONARIES[path] = entries
    return _DICTIONARIES[path]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class DecoderPool:
    """Pocketsphinx decoders sharing one model configuration, each in its own worker process.

    A decoder holds the GIL while it decodes (see ``decoder_process``), so it must not share a
    process with the event loop; ``size`` processes decode that many utterances at once. A
    worker that dies is replaced and the utterance tried once more.
    """

    def __init__(self, lm_path: Path, dict_path: Path, *, size: int = 2) -> None:
        self.lm_path = lm_path
        self.dict_path = dict_path
        self.size = max(1, size)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.created = 0  # worker pools started (more than one means a worker died)
        self._closed = False

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise AsrModelError("the recogniser has been shut down")
            if self._executor is None:
                hmm = model_dir() / "en-us"
                for path in (hmm, self.lm_path, self.dict_path):
                    if not path.exists():
                        raise AsrModelError(f"pocketsphinx model file missing: {path}")
                self._executor = ProcessPoolExecutor(
                    max_workers=self.size,
                    # a clean interpreter: forking a process with running threads is unsafe
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=decoder_process.load,
                    initargs=(str(hmm), str(self.lm_path), str(self.dict_path)),
                )
                # A multiprocessing child (livekit's job process) ends through os._exit after
                # joining its own children, without the interpreter shutdown that would tell
                # this pool's workers to stop: they would be waited on for ever and left behind
                # when the job process is killed. A finalizer run before that join stops them;
                # its priority is above the one (10) that closes the queue feeding the workers,
                # which must still carry the stop sentinels.
                multiprocessing.util.Finalize(
                    self._executor,
                    self._executor.shutdown,
                    kwargs={"wait": True, "cancel_futures": True},
                    exitpriority=100,
                )
                self.created += 1
            return self._executor

    def prewarm(self) -> None:
        """Start every worker and load its decoder now (blocking), so callers do not wait."""
        try:
            futures = [self._pool().submit(decoder_process.ready) for _ in range(self.size * 2)]
            for future in futures:
                future.result()
        except BrokenProcessPool as exc:
            self._discard()
            raise AsrModelError("pocketsphinx could not load its model in a worker") from exc

    async def decode(self, pcm: bytes, offset: float) -> _Hypothesis:
        """Decode one utterance whose audio starts ``offset`` seconds into the stream."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._pool()
            try:
                result = await loop.run_in_executor(pool, decoder_process.decode, pcm)
            except BrokenProcessPool:
                self._discard(pool)
                if attempt == 2:
                    raise
                logger.warning("a recogniser worker died; starting a new one")
                continue
            return _hypothesis(result, offset)
        raise AssertionError("unreachable")  # pragma: no cover

    def _discard(self, pool: ProcessPoolExecutor | None = None) -> None:
        with self._lock:
            if self._executor is not None and (pool is None or self._executor is pool):
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Hypothesis:
    text: str
    confidence: float
    words: list[TimedString]
    end_time: float


class _Utterance:
    """One caller utterance: its audio, decoded in one pass when it ends (a decoder is held
    only for that long, not for the call)."""

    def __init__(self, pcm: bytes = b"") -> None:
        self.audio = bytearray(pcm)
        # where the VAD last heard speech end; audio after it (the wait for the session's
        # flush) is silence that only costs decoding time and, as digital zeros, accuracy
        self.speech_end: int | None = None

    def add(self, pcm: bytes) -> None:
        self.audio += pcm

    def speech(self) -> bytes:
        end = len(self.audio) if self.speech_end is None else self.speech_end
        return bytes(self.audio[:end])


def _hypothesis(result: decoder_process.Result, offset: float) -> _Hypothesis:
    text, confidence, words, samples = result
    return _Hypothesis(
        text,
        confidence,
        [
            TimedString(text=w, start_time=offset + start, end_time=offset + end, confidence=c)
            for w, start, end, c in words
        ],
        offset + samples / SAMPLE_RATE,
    )


class PocketsphinxSTT(stt.STT[Any]):
    """A livekit-agents speech-to-text plugin on pocketsphinx (offline, CPU)."""

    def __init__(
        self,
        pool: DecoderPool,
        vad_model: vad.VAD,
        *,
        language: str = "en-US",
    ) -> None:
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True,
                interim_results=False,
                aligned_transcript="word",
                manual_flush=True,
                offline_recognize=True,
            )
        )
        self._pool = pool
        self._vad = vad_model
        self._language = language
        self._owns_pool = True
        self._vad_events: VadEvents | None = None

    def for_call(self, vad_model: vad.VAD, events: VadEvents | None = None) -> PocketsphinxSTT:
        """A recogniser for one call over the same decoders (closing it leaves them running).

        With ``events`` (the call's session VAD publishing there) its streams listen to that
        VAD instead of running their own.
        """
        other = PocketsphinxSTT(self._pool, vad_model, language=self._language)
        other._owns_pool = False
        other._vad_events = events
        return other

    @property
    def model(self) -> str:
        return "pocketsphinx-en-us+domain-lm"

    @property
    def provider(self) -> str:
        return "pocketsphinx"

    @property
    def pool(self) -> DecoderPool:
        return self._pool

    async def aclose(self) -> None:
        if self._owns_pool:
            await asyncio.to_thread(self._pool.close)

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        pcm = to_mono_16k(frame)
        hyp = await self._pool.decode(pcm, 0.0)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[self._speech_data(hyp)],
        )

    def _speech_data(self, hyp: _Hypothesis, start: float = 0.0) -> stt.SpeechData:
        return stt.SpeechData(
            language=LanguageCode(self._language),
            text=hyp.text,
            start_time=_start_of(hyp, start),
            end_time=hyp.end_time,
            confidence=hyp.confidence,
            words=hyp.words or None,
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> PocketsphinxStream:
        return PocketsphinxStream(stt=self, conn_options=conn_options)


def _start_of(hyp: _Hypothesis, default: float) -> float:
    first = hyp.words[0].start_time if hyp.words else default
    return first if isinstance(first, float | int) else default


def to_mono_16k(frame: rtc.AudioFrame) -> bytes:
    """16-bit mono PCM at the recogniser's rate."""
    data = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        data = data.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        frame = rtc.AudioFrame(data.tobytes(), frame.sample_rate, 1, len(data))
    if frame.sample_rate == SAMPLE_RATE:
        return bytes(frame.data)
    resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=1)
    out = [*resampler.push(frame), *resampler.flush()]
    return b"".join(bytes(f.data) for f in out)


class PocketsphinxStream(stt.RecognizeStream):
    def __init__(self, *, stt: PocketsphinxSTT, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=SAMPLE_RATE)
        self._psx = stt
        self._request = utils.shortuuid()
        self._utterance: _Utterance | None = None
        self._position = 0.0  # seconds of audio seen by the VAD
        self._utterance_start = 0.0
        self._grace: asyncio.TimerHandle | None = None
        self._usage_reported = 0.0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flush_at: list[float] = []  # input positions (s) where the session asked to flush
        self._flush_deadline: asyncio.TimerHandle | None = None
        # not ``_resampler``: the base class's push_frame keeps its own resampler under that
        # name, and sharing one would interleave two audio streams in a single soxr instance
        self._vad_resampler: rtc.AudioResampler | None = None
        self._vad_resampler_rate = 0

    async def _run(self) -> None:
        events = self._psx._vad_events
        # the call's session VAD when it publishes its events, else a VAD stream of our own
        vad_stream = self._psx._vad.stream() if events is None else None
        subscription = events.subscribe() if events is not None else None
        source: AsyncIterable[vad.VADEvent] = vad_stream or subscription  # type: ignore[assignment]
        pushed = 0.0

        async def forward() -> None:
            nonlocal pushed
            async for item in self._input_ch:
                if isinstance(item, self._FlushSentinel):
                    # The session flushes when its own VAD heard the end of the turn. Our VAD
                    # may still be behind on the last words: finish once it has caught up with
                    # the audio pushed so far (or shortly after, if no more audio comes).
                    self._flush_at.append(pushed)
                    self._arm_flush_deadline()
                else:
                    if vad_stream is not None:
                        vad_stream.push_frame(item)
                    pushed += item.duration
            if vad_stream is not None:
                vad_stream.end_input()
            elif events is not None and subscription is not None:
                events.unsubscribe(subscription)  # ends the loop below

        forwarder = asyncio.create_task(forward(), name="asr-forward")
        try:
            async for event in source:
                async with self._lock:
                    await self._on_vad(event)
                    while self._flush_at and self._position >= self._flush_at[0] - _FLUSH_SLACK:
                        self._flush_at.pop(0)
                        await self._finish(flushed=True)
            await forwarder
            async with self._lock:
                await self._finish(flushed=False)
                while self._flush_at:
                    self._flush_at.pop(0)
                    await self._finish(flushed=True)
        finally:
            for timer in (self._grace, self._flush_deadline):
                if timer is not None:
                    timer.cancel()
            await utils.aio.cancel_and_wait(forwarder, *self._tasks)
            if vad_stream is not None:
                await vad_stream.aclose()
            if events is not None and subscription is not None:
                events.unsubscribe(subscription)
            self._utterance = None

    async def _on_vad(self, event: vad.VADEvent) -> None:
        if event.type == vad.VADEventType.INFERENCE_DONE:
            for frame in event.frames:
                self._position += frame.duration
            if self._utterance is not None:
                self._utterance.add(self._pcm(event.frames))
            elif event.speaking:
                # speech goes on after a flush cut the last utterance: keep hearing it
                self._begin(self._pcm(event.frames))
        elif event.type == vad.VADEventType.START_OF_SPEECH:
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
            if self._utterance is None:
                self._begin(self._pcm(event.frames))
            else:
                self._utterance.speech_end = None
        elif event.type == vad.VADEventType.END_OF_SPEECH and self._utterance is not None:
            self._utterance.speech_end = len(self._utterance.audio)
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(_FLUSH_GRACE_SECONDS, self._self_flush)

    def _pcm(self, frames: Sequence[rtc.AudioFrame]) -> bytes:
        """The VAD's frames as 16 kHz mono PCM (the session's VAD hears the line's own rate)."""
        out = bytearray()
        for frame in frames:
            if frame.sample_rate == SAMPLE_RATE and frame.num_channels == 1:
                out += frame.data.cast("B")
                continue
            if frame.num_channels > 1:
                data = np.frombuffer(frame.data, dtype=np.int16)
                mono = data.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
                frame = rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))
            if self._vad_resampler is None or self._vad_resampler_rate != frame.sample_rate:
                self._vad_resampler = rtc.AudioResampler(
                    frame.sample_rate, SAMPLE_RATE, num_channels=1
                )
                self._vad_resampler_rate = frame.sample_rate
            for piece in self._vad_resampler.push(frame):
                out += piece.data.cast("B")
        return bytes(out)

    def _self_flush(self) -> None:
        self._grace = None
        if self._utterance is not None:
            task = asyncio.ensure_future(self._finish_locked())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish_locked(self) -> None:
        async with self._lock:
            await self._finish(flushed=False)

    def _arm_flush_deadline(self) -> None:
        if self._flush_deadline is None:
            loop = asyncio.get_running_loop()
            self._flush_deadline = loop.call_later(_FLUSH_WAIT, self._flush_overdue)

    def _flush_overdue(self) -> None:
        self._flush_deadline = None
        task = asyncio.ensure_future(self._flush_now())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_now(self) -> None:
        async with self._lock:
            while self._flush_at:
                self._flush_at.pop(0)
                await self._finish(flushed=True)

    def _begin(self, pcm: bytes) -> None:
        self._utterance = _Utterance(pcm)
        self._utterance_start = max(0.0, self._position - len(pcm) / 2 / SAMPLE_RATE)
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH, request_id=self._request)
        )

    async def _finish(self, *, flushed: bool) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if not self._flush_at and self._flush_deadline is not None:
            self._flush_deadline.cancel()
            self._flush_deadline = None
        utterance = self._utterance
        if utterance is None:
            if flushed:
                # the session waits for a final after every flush; an empty one says "nothing"
                self._event_ch.send_nowait(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                        request_id=self._request,
                        alternatives=[
                            stt.SpeechData(language=LanguageCode(self._psx._language), text="")
                        ],
                    )
                )
            return
        self._utterance = None
        started = time.perf_counter()
        try:
            hyp = await self._psx.pool.decode(
                utterance.speech(), self.start_time_offset + self._utterance_start
            )
        except Exception:
            # the call goes on: the engine hears "nothing" and reprompts
            logger.exception("an utterance could not be decoded")
            hyp = _Hypothesis("", 0.0, [], self._position)
        decode_ms = (time.perf_counter() - started) * 1000
        logger.debug("utterance decoded", extra={"decode_ms": round(decode_ms, 1)})
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                request_id=self._request,
                alternatives=[self._psx._speech_data(hyp, self._utterance_start)],
            )
        )
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH, request_id=self._request)
        )
        duration = self._position - self._usage_reported
        if duration > 0:
            self._usage_reported = self._position
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.RECOGNITION_USAGE,
                    request_id=self._request,
                    recognition_usage=stt.RecognitionUsage(audio_duration=duration),
                )
            )
