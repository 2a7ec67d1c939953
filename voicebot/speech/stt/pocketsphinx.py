"""The offline recogniser: pocketsphinx with a language model built from the bot's flows.

The pocketsphinx wheel carries a US-English acoustic model and dictionary, so ``pip install``
alone gives a bot that hears callers. A general language model hears little over a phone line;
one trained at start-up on the flows' own sentences (intent examples, menu words, prompts,
yes/no, digits) hears short caller phrases well enough to route a call.

Decoders are costly (about 40 MB and 0.7 s each), so they are pooled and held only while an
utterance is decoded, not per call: the stream runs its own silero VAD over the caller audio,
keeps what the caller says, and decodes it in one pass on a worker thread when the turn ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, stt, utils, vad
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr, TimedString

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
_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[noise]", "<unk>", "[NOISE]", "[SPEECH]"})

# Shared by every stream: decoding is CPU-bound, and two threads match this machine's cores.
_EXECUTOR = ThreadPoolExecutor(
    max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="asr"
)


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
        entries = [line for word, line in pronunciations.items() if _base_word(word) in words]
        _atomic_write(dict_path, "\n".join(sorted(entries)) + "\n")
        _atomic_write(lm_path, buffer.getvalue())
    return lm_path, dict_path


def _base_word(word: str) -> str:
    # alternates are spelled "word(2)" in the CMU dictionary
    return word.split("(", 1)[0]


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
    """Pocketsphinx decoders sharing one model configuration, lent out per utterance."""

    def __init__(self, lm_path: Path, dict_path: Path, *, size_hint: int = 1) -> None:
        self.lm_path = lm_path
        self.dict_path = dict_path
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.created = 0
        self._size_hint = size_hint

    def prewarm(self) -> None:
        """Create ``size_hint`` decoders now (blocking), so the first callers do not wait."""
        while len(self._idle) < self._size_hint:
            decoder = self._new()
            with self._lock:
                self._idle.append(decoder)

    def _new(self) -> Any:
        from pocketsphinx import Decoder

        try:
            decoder = Decoder(
                hmm=str(model_dir() / "en-us"),
                lm=str(self.lm_path),
                dict=str(self.dict_path),
                samprate=SAMPLE_RATE,
                loglevel="ERROR",
            )
        except RuntimeError as exc:
            raise AsrModelError(f"pocketsphinx could not load its model: {exc}") from exc
        with self._lock:
            self.created += 1
        return decoder

    def acquire(self) -> Any:
        """A decoder (blocking when a new one must be built: call it off the event loop)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new()

    def release(self, decoder: Any) -> None:
        with self._lock:
            self._idle.append(decoder)


@dataclass
class _Hypothesis:
    text: str
    confidence: float
    words: list[TimedString]
    end_time: float


class _Utterance:
    """One caller utterance: its audio, decoded in one pass when it ends.

    Measured on the example bot's phrases, one pass over the whole utterance (cepstral mean
    normalisation over all of it) hears far better than live decoding in chunks, whose running
    mean starts from a guess; a 2-3 s utterance decodes in well under 100 ms, and a decoder is
    held only for that long.
    """

    def __init__(self, pcm: bytes = b"") -> None:
        self.audio = bytearray(pcm)

    def add(self, pcm: bytes) -> None:
        self.audio += pcm

    def decode(self, pool: DecoderPool, offset: float) -> _Hypothesis:
        decoder = pool.acquire()
        try:
            decoder.start_utt()
            decoder.process_raw(bytes(self.audio), False, True)
            decoder.end_utt()
            return _hypothesis(decoder, offset, len(self.audio) // 2)
        finally:
            pool.release(decoder)


def _hypothesis(decoder: Any, offset: float, samples: int) -> _Hypothesis:
    hyp = decoder.hyp()
    end = offset + samples / SAMPLE_RATE
    if hyp is None:
        return _Hypothesis("", 0.0, [], end)
    words: list[TimedString] = []
    for seg in decoder.seg():
        word = _base_word(seg.word)
        if word in _FILLERS or word.startswith("++") or word.startswith("["):
            continue
        words.append(
            TimedString(
                text=word,
                start_time=offset + seg.start_frame / 100,
                end_time=offset + (seg.end_frame + 1) / 100,
                confidence=_probability(decoder, seg.prob),
            )
        )
    text = _clean(hyp.hypstr)
    confidence = _probability(decoder, hyp.prob) if text else 0.0
    return _Hypothesis(text, confidence, words, end)


def _probability(decoder: Any, log_prob: int) -> float:
    try:
        value = float(decoder.get_logmath().exp(log_prob))
    except (AttributeError, OverflowError, ValueError):
        return 0.0
    return 0.0 if math.isnan(value) else max(0.0, min(1.0, value))


def _clean(text: str) -> str:
    return " ".join(w for w in text.split() if w not in _FILLERS and not w.startswith("["))


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

    @property
    def model(self) -> str:
        return "pocketsphinx-en-us+domain-lm"

    @property
    def provider(self) -> str:
        return "pocketsphinx"

    @property
    def pool(self) -> DecoderPool:
        return self._pool

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        pcm = to_mono_16k(frame)
        loop = asyncio.get_running_loop()
        hyp = await loop.run_in_executor(_EXECUTOR, _Utterance(pcm).decode, self._pool, 0.0)
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

    async def _run(self) -> None:
        vad_stream = self._psx._vad.stream()

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
                    vad_stream.push_frame(item)
                    pushed += item.duration
            vad_stream.end_input()

        forwarder = asyncio.create_task(forward(), name="asr-forward")
        try:
            async for event in vad_stream:
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
            await vad_stream.aclose()
            self._utterance = None

    async def _on_vad(self, event: vad.VADEvent) -> None:
        if event.type == vad.VADEventType.INFERENCE_DONE:
            for frame in event.frames:
                self._position += frame.duration
            if self._utterance is not None:
                for frame in event.frames:
                    self._utterance.add(bytes(frame.data))
            elif event.speaking:
                # speech goes on after a flush cut the last utterance: keep hearing it
                self._begin(b"".join(bytes(f.data) for f in event.frames))
        elif event.type == vad.VADEventType.START_OF_SPEECH:
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
            if self._utterance is None:
                self._begin(b"".join(bytes(f.data) for f in event.frames))
        elif event.type == vad.VADEventType.END_OF_SPEECH and self._utterance is not None:
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(_FLUSH_GRACE_SECONDS, self._self_flush)

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
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        hyp = await loop.run_in_executor(
            _EXECUTOR,
            utterance.decode,
            self._psx.pool,
            self.start_time_offset + self._utterance_start,
        )
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
