"""Vosk speech-to-text for livekit-agents: streaming partials, word timings, phrase lists.

Vosk (Kaldi) runs on the CPU with models from 40 MB up. The acoustic model and graph are loaded
once per process and shared (:func:`load_vosk_model`); each stream (one per call) gets its own
``KaldiRecognizer``, which is cheap. Audio is fed in ~100 ms chunks on a small shared thread
pool: ``AcceptWaveform`` is CPU-bound C code that releases the GIL, so the event loop keeps
serving other calls while a chunk decodes. Only one chunk of a stream is ever in flight, since a
recogniser must not be used from two threads at once.

Phrase lists: on a model with a runtime graph (the small and ``-lgraph`` models) a phrase list
becomes a Vosk grammar, so the recogniser only hears those phrases, and anything else comes back
as ``[unk]`` (kept in the transcript, so a flow sees a no-match rather than silence). A new list
applies from the next utterance: :meth:`VoskRecognizeStream.update_phrases` swaps in a new
recogniser at the next utterance boundary, or straight away while the caller is silent (the last
second of audio is replayed into it, so a caller who starts to answer just then is not cut).

When the model is not on disk, :class:`VoskModelMissing` says where it was looked for and how
to fetch it; voicebot then falls back to the offline pocketsphinx recogniser.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Never, Protocol, TypeVar

import numpy as np
from livekit import rtc
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr, TimedString

from voicebot.speech.models import (
    DEFAULT_VOSK_DIR,
    vosk_model_layout_problem,
    vosk_model_supports_grammar,
)

if TYPE_CHECKING:
    import vosk

__all__ = [
    "DEFAULT_MODEL",
    "UNKNOWN_WORD",
    "Recognizer",
    "VoskModelMissing",
    "VoskRecognizeStream",
    "VoskSTT",
    "grammar_json",
    "grammar_phrases",
    "load_vosk_model",
    "merge_results",
    "resolve_vosk_model_dir",
    "speech_data_from_partial",
    "speech_data_from_result",
]

logger = logging.getLogger("voicebot.speech.asr")

DEFAULT_MODEL = "vosk-model-small-en-us-0.15"
SAMPLE_RATE = 16000
# What a Vosk grammar answers for speech outside the phrase list.
UNKNOWN_WORD = "[unk]"
# Small enough for prompt partials, large enough that the thread hop costs little.
_CHUNK_SECONDS = 0.1
# Vosk's partials lag the audio by a few hundred ms; replaying this much into a new recogniser
# covers the start of an answer that the old one had not yet turned into words.
_REPLAY_SECONDS = 1.0
_USAGE_INTERVAL_SECONDS = 5.0
# Vosk splits grammar phrases on spaces only, so punctuation would glue onto words and make them
# unknown ("yes," is not in the vocabulary). Apostrophes are part of words ("don't").
_NOT_WORD = re.compile(r"[^\w' ]+")

# Shared by every stream and batch request. Threads start on demand; one per core is as much
# decoding as the machine can do at once.
_EXECUTOR = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="vosk")

_T = TypeVar("_T")


async def _in_worker(fn: Callable[[], _T]) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, fn)


# --- the model --------------------------------------------------------------------------------


class VoskModelMissing(RuntimeError):
    """The Vosk model is not on disk (or cannot be loaded); the message says how to get it."""

    def __init__(self, name_or_path: str, path: Path, reason: str) -> None:
        self.name_or_path = name_or_path
        self.path = path
        self.reason = reason
        name = path.name if path.name.startswith("vosk-model") else DEFAULT_MODEL
        super().__init__(
            f"Vosk model {name_or_path!r} is not usable: {reason} (looked for {path}). "
            f"Run `voicebot models download {name}` on a machine with internet access (it "
            f"unpacks into {DEFAULT_VOSK_DIR} unless told otherwise) and copy the model "
            f"directory to {path}, or point the model setting at an unpacked Vosk model. "
            "Until then voicebot falls back to the offline pocketsphinx recogniser."
        )


def _is_path(name_or_path: str) -> bool:
    return (
        name_or_path.startswith(("~", "."))
        or "/" in name_or_path
        or os.sep in name_or_path
        or Path(name_or_path).is_absolute()
    )


def resolve_vosk_model_dir(name_or_path: str, cache_dir: Path = DEFAULT_VOSK_DIR) -> Path:
    """The model directory for a name (``cache_dir/<name>``) or a path (used as it is).

    Raises :class:`VoskModelMissing` unless the directory holds the files libvosk reads.
    """
    cache_dir = cache_dir.expanduser()
    path = Path(name_or_path).expanduser() if _is_path(name_or_path) else cache_dir / name_or_path
    problem = vosk_model_layout_problem(path)
    if problem is not None:
        raise VoskModelMissing(name_or_path, path, problem)
    return path


_MODELS: dict[Path, Any] = {}
# Held while a model loads (seconds), so two first calls load it once, not twice.
_MODELS_LOCK = threading.Lock()


def load_vosk_model(name_or_path: str, cache_dir: Path = DEFAULT_VOSK_DIR) -> vosk.Model:
    """The process-wide ``vosk.Model`` for a model name or directory, loaded on first use.

    Blocking (a few seconds the first time): call it off the event loop. The layout is checked
    before libvosk sees the directory, so a missing model raises :class:`VoskModelMissing`
    rather than an error from inside the C library.
    """
    path = resolve_vosk_model_dir(name_or_path, cache_dir)
    key = path.resolve()
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            import vosk

            vosk.SetLogLevel(-1)
            started = time.perf_counter()
            try:
                model = vosk.Model(str(key))
            except Exception as exc:
                raise VoskModelMissing(
                    name_or_path,
                    path,
                    f"vosk could not load it ({exc}); the files may be corrupt or truncated",
                ) from exc
            _MODELS[key] = model
            logger.info(
                "vosk model loaded",
                extra={"path": str(key), "seconds": round(time.perf_counter() - started, 2)},
            )
        return model


# --- vosk's JSON results ----------------------------------------------------------------------


def grammar_phrases(phrases: Sequence[str] | None) -> tuple[str, ...]:
    """Phrases as a Vosk grammar wants them: lower case, no punctuation, unique, in order."""
    seen: dict[str, None] = {}
    for phrase in phrases or ():
        if phrase.strip().lower() == UNKNOWN_WORD:
            continue  # added back by grammar_json, always last
        cleaned = " ".join(_NOT_WORD.sub(" ", phrase.lower()).split())
        if cleaned:
            seen.setdefault(cleaned)
    return tuple(seen)


def grammar_json(phrases: Sequence[str] | None) -> str | None:
    """The grammar argument of ``KaldiRecognizer`` for a phrase list, or None for no list.

    ``[unk]`` is added so speech outside the list is reported as unknown instead of being
    forced onto the nearest phrase.
    """
    cleaned = grammar_phrases(phrases)
    return json.dumps([*cleaned, UNKNOWN_WORD]) if cleaned else None


def speech_data_from_result(
    result: Mapping[str, Any], *, language: str, offset: float = 0.0
) -> stt.SpeechData | None:
    """A final result (``Result()``/``FinalResult()``: ``text`` and, with words on, ``result``)
    as SpeechData with word timings shifted by ``offset`` seconds; None when nothing was said."""
    return _speech_data(result.get("text"), result.get("result"), language, offset)


def speech_data_from_partial(
    result: Mapping[str, Any], *, language: str, offset: float = 0.0
) -> stt.SpeechData | None:
    """A ``PartialResult()`` (``partial`` and, with partial words on, ``partial_result``) as
    SpeechData; None while the recogniser has no words yet."""
    return _speech_data(result.get("partial"), result.get("partial_result"), language, offset)


def merge_results(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Consecutive final results (one per utterance) as one: texts joined, words concatenated."""
    texts: list[str] = []
    words: list[Any] = []
    for result in results:
        text = result.get("text")
        if isinstance(text, str) and text.strip():
            texts.append(text.strip())
        entries = result.get("result")
        if isinstance(entries, list):
            words.extend(entries)
    merged: dict[str, Any] = {"text": " ".join(texts)}
    if words:
        merged["result"] = words
    return merged


def _speech_data(text: Any, entries: Any, language: str, offset: float) -> stt.SpeechData | None:
    if not isinstance(text, str) or not text.strip():
        return None
    words = _timed_words(entries, offset)
    starts = [w.start_time for w in words if isinstance(w.start_time, float)]
    ends = [w.end_time for w in words if isinstance(w.end_time, float)]
    confs = [w.confidence for w in words if isinstance(w.confidence, float)]
    return stt.SpeechData(
        language=LanguageCode(language),
        text=" ".join(text.split()),
        start_time=starts[0] if starts else offset,
        end_time=ends[-1] if ends else offset,
        confidence=sum(confs) / len(confs) if confs else 0.0,
        words=words or None,
    )


def _timed_words(entries: Any, offset: float) -> list[TimedString]:
    if not isinstance(entries, list):
        return []
    words: list[TimedString] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("word"), str):
            continue
        start, end, conf = (_number(entry.get(k)) for k in ("start", "end", "conf"))
        words.append(
            TimedString(
                entry["word"],
                start_time=NOT_GIVEN if start is None else offset + start,
                end_time=NOT_GIVEN if end is None else offset + end,
                confidence=NOT_GIVEN if conf is None else min(1.0, max(0.0, conf)),
                start_time_offset=offset,
            )
        )
    return words


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _parse(raw: str) -> dict[str, Any]:
    parsed = json.loads(raw)
    return parsed if isinstance(parsed, dict) else {}


# --- audio ------------------------------------------------------------------------------------


def _mono_pcm16(frame: rtc.AudioFrame) -> bytes:
    if frame.num_channels == 1:
        return bytes(frame.data)
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    return bytes(samples.mean(axis=1).astype(np.int16).tobytes())


def _buffer_pcm(buffer: utils.AudioBuffer, sample_rate: int) -> bytes:
    """A whole buffer as 16-bit mono PCM at ``sample_rate``."""
    frames = buffer if isinstance(buffer, list) else [buffer]
    if not frames:
        return b""
    combined = rtc.combine_audio_frames(frames)
    pcm = _mono_pcm16(combined)
    if combined.sample_rate == sample_rate:
        return pcm
    mono = rtc.AudioFrame(pcm, combined.sample_rate, 1, len(pcm) // 2)
    resampler = rtc.AudioResampler(
        combined.sample_rate, sample_rate, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
    )
    return b"".join(bytes(f.data) for f in [*resampler.push(mono), *resampler.flush()])


# --- the recogniser ---------------------------------------------------------------------------


class Recognizer(Protocol):
    """The part of ``vosk.KaldiRecognizer`` a stream uses: JSON strings in vosk's shapes."""

    def AcceptWaveform(self, data: bytes) -> int: ...

    def Result(self) -> str: ...

    def PartialResult(self) -> str: ...

    def FinalResult(self) -> str: ...


def _accept(recognizer: Recognizer, pcm: bytes) -> tuple[bool, str]:
    """Feed audio; (True, the utterance's result) at an endpoint, else (False, the partial)."""
    if recognizer.AcceptWaveform(pcm):
        return True, recognizer.Result()
    return False, recognizer.PartialResult()


def _decode_all(recognizer: Recognizer, pcm: bytes, chunk_bytes: int) -> list[str]:
    results = []
    for i in range(0, len(pcm), chunk_bytes):
        if recognizer.AcceptWaveform(pcm[i : i + chunk_bytes]):
            results.append(recognizer.Result())
    results.append(recognizer.FinalResult())
    return results


class VoskSTT(stt.STT[Never]):  # no events beyond the base class's
    """A livekit-agents speech-to-text plugin on Vosk (offline, CPU, streaming).

    ``model`` is a model name looked up in ``cache_dir`` (default ``~/.cache/vosk``) or a path to
    an unpacked model. Audio is resampled to ``sample_rate`` (8 kHz telephony audio is upsampled
    to the 16 kHz the models are trained on). ``phrases`` restricts recognition to a phrase list
    where the model allows it; change it with :meth:`update_phrases`.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        cache_dir: Path | None = None,
        sample_rate: int = SAMPLE_RATE,
        language: str = "en-US",
        phrases: Sequence[str] | None = None,
        usage_interval: float = _USAGE_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True,
                interim_results=True,
                aligned_transcript="word",
                manual_flush=True,
                offline_recognize=True,
            )
        )
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self._model_name = model
        self._cache_dir = (cache_dir or DEFAULT_VOSK_DIR).expanduser()
        self._sample_rate = sample_rate
        self._language = language
        self._phrases = grammar_phrases(phrases)
        self._usage_interval = usage_interval
        self._grammar_supported: bool | None = None
        self._streams: weakref.WeakSet[VoskRecognizeStream] = weakref.WeakSet()

    @property
    def model(self) -> str:
        return Path(self._model_name).name if _is_path(self._model_name) else self._model_name

    @property
    def provider(self) -> str:
        return "vosk"

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def phrases(self) -> tuple[str, ...]:
        """The current phrase list, normalised (empty: the model's whole vocabulary)."""
        return self._phrases

    def for_call(self) -> VoskSTT:
        """A recogniser object for one call over the same process-wide model (a session
        listens to its recogniser's events, which must not reach other calls)."""
        other = VoskSTT(
            model=self._model_name,
            cache_dir=self._cache_dir,
            sample_rate=self._sample_rate,
            language=self._language,
            usage_interval=self._usage_interval,
        )
        other._phrases = self._phrases
        other._grammar_supported = self._grammar_supported
        return other

    def update_phrases(self, phrases: Sequence[str] | None) -> None:
        """Bias recognition to ``phrases`` (None or empty: no list) from the next utterance on,
        for new streams and for every open one."""
        self._phrases = grammar_phrases(phrases)
        for stream in list(self._streams):
            stream.update_phrases(self._phrases)

    def load_model(self) -> vosk.Model:
        """The shared model (blocking; raises :class:`VoskModelMissing`)."""
        return load_vosk_model(self._model_name, self._cache_dir)

    def prewarm(self) -> None:
        """Start loading the model in the background, so the first call does not wait for it."""
        threading.Thread(target=self._prewarm, name="vosk-prewarm", daemon=True).start()

    def _prewarm(self) -> None:
        try:
            self.load_model()
        except VoskModelMissing as exc:
            logger.warning("%s", exc)

    def new_recognizer(self, phrases: Sequence[str] = ()) -> Recognizer:
        """A fresh ``KaldiRecognizer`` with word timings on (blocking: loads the model once)."""
        import vosk

        model = self.load_model()
        grammar = grammar_json(phrases)
        if grammar is not None and not self._supports_grammar():
            grammar = None
        rate = float(self._sample_rate)
        if grammar is None:
            recognizer = vosk.KaldiRecognizer(model, rate)
        else:
            recognizer = vosk.KaldiRecognizer(model, rate, grammar)
        recognizer.SetWords(True)
        recognizer.SetPartialWords(True)
        return recognizer  # type: ignore[no-any-return]

    def _supports_grammar(self) -> bool:
        if self._grammar_supported is None:
            path = resolve_vosk_model_dir(self._model_name, self._cache_dir)
            self._grammar_supported = vosk_model_supports_grammar(path)
            if not self._grammar_supported:
                # libvosk would ignore the grammar with its own warning; say it once, plainly.
                logger.warning(
                    "vosk model %s has a static graph: phrase lists are ignored "
                    "(a small or -lgraph model takes them)",
                    self.model,
                )
        return self._grammar_supported

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        pcm = _buffer_pcm(buffer, self._sample_rate)
        phrases = self._phrases
        chunk = int(self._sample_rate * _CHUNK_SECONDS) * 2

        def decode() -> list[str]:
            return _decode_all(self.new_recognizer(phrases), pcm, chunk)

        raw = await _in_worker(decode)
        lang = language if utils.is_given(language) else self._language
        data = speech_data_from_result(merge_results([_parse(r) for r in raw]), language=lang)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid(),
            alternatives=[
                data if data is not None else stt.SpeechData(language=LanguageCode(lang), text="")
            ],
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> VoskRecognizeStream:
        stream = VoskRecognizeStream(
            stt=self,
            conn_options=conn_options,
            language=language if utils.is_given(language) else self._language,
            phrases=self._phrases,
            recognizer_factory=self.new_recognizer,
            sample_rate=self._sample_rate,
            usage_interval=self._usage_interval,
        )
        self._streams.add(stream)
        return stream


class VoskRecognizeStream(stt.RecognizeStream):
    """One call's audio through one recogniser: partials, finals with word timings, usage.

    ``recognizer_factory(phrases)`` makes the recogniser (blocking; run on the worker pool), so
    the event plumbing can be exercised with any object that answers like ``KaldiRecognizer``.
    """

    def __init__(
        self,
        *,
        stt: VoskSTT,
        conn_options: APIConnectOptions,
        language: str,
        recognizer_factory: Callable[[tuple[str, ...]], Recognizer],
        phrases: Sequence[str] = (),
        sample_rate: int = SAMPLE_RATE,
        usage_interval: float = _USAGE_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=sample_rate)
        self._factory = recognizer_factory
        self._language = language
        self._rate = sample_rate
        self._chunk_bytes = int(sample_rate * _CHUNK_SECONDS) * 2
        self._replay_bytes = int(sample_rate * _REPLAY_SECONDS) * 2
        self._usage_interval = usage_interval
        self._wanted = grammar_phrases(phrases)
        self._active = self._wanted
        self._recognizer: Recognizer | None = None
        self._origin = 0.0  # stream time (s) of the current recogniser's time zero
        self._samples = 0  # samples fed to recognisers: the stream's clock
        self._pending = bytearray()  # audio waiting to fill a chunk
        self._recent = bytearray()  # the last seconds of audio since the utterance boundary
        self._fed_since_boundary = False
        self._heard = False  # a partial with words since the last boundary
        self._in_speech = False
        self._last_partial = ""
        self._unreported = 0.0
        self._request_id = utils.shortuuid()

    def update_phrases(self, phrases: Sequence[str] | None) -> None:
        """Use ``phrases`` (None or empty: no list) from the next utterance on."""
        self._wanted = grammar_phrases(phrases)

    async def _run(self) -> None:
        phrases = self._wanted
        self._recognizer = await _in_worker(lambda: self._factory(phrases))
        self._active = phrases
        async for item in self._input_ch:
            if isinstance(item, self._FlushSentinel):
                await self._finish_utterance(acknowledge=True)
                continue
            self._pending += _mono_pcm16(item)
            while len(self._pending) >= self._chunk_bytes:
                chunk = bytes(self._pending[: self._chunk_bytes])
                del self._pending[: self._chunk_bytes]
                await self._feed(chunk)
        if self._pending or self._fed_since_boundary:
            await self._finish_utterance(acknowledge=False)
        self._report_usage()

    def _current(self) -> Recognizer:
        assert self._recognizer is not None, "the recogniser is made when the stream starts"
        return self._recognizer

    async def _feed(self, pcm: bytes) -> None:
        if self._wanted != self._active and not self._heard:
            await self._swap_recognizer()
        recognizer = self._current()
        endpoint, raw = await _in_worker(lambda: _accept(recognizer, pcm))
        self._samples += len(pcm) // 2
        self._unreported += len(pcm) / 2 / self._rate
        self._fed_since_boundary = True
        self._recent += pcm
        del self._recent[: max(0, len(self._recent) - self._replay_bytes)]
        self._on_result(endpoint, _parse(raw))
        if self._unreported >= self._usage_interval:
            self._report_usage()

    async def _swap_recognizer(self) -> None:
        # Only while nothing has been recognised since the last boundary, so the old recogniser
        # holds at most silence and the start of speech, which the replay hands over.
        phrases, replay = self._wanted, bytes(self._recent)
        recognizer = await _in_worker(lambda: self._factory(phrases))
        self._recognizer, self._active = recognizer, phrases
        self._origin = (self._samples - len(replay) // 2) / self._rate
        logger.debug("vosk phrase list changed", extra={"phrases": len(phrases)})
        if replay:
            endpoint, raw = await _in_worker(lambda: _accept(recognizer, replay))
            self._on_result(endpoint, _parse(raw))

    async def _finish_utterance(self, *, acknowledge: bool) -> None:
        if self._pending:
            pcm = bytes(self._pending)
            self._pending.clear()
            await self._feed(pcm)
        if self._fed_since_boundary:
            recognizer = self._current()
            raw = await _in_worker(recognizer.FinalResult)
            self._on_final(_parse(raw), acknowledge=acknowledge)
        elif acknowledge:
            self._on_final({}, acknowledge=True)
        self._report_usage()

    def _on_result(self, endpoint: bool, result: Mapping[str, Any]) -> None:
        if endpoint:
            self._on_final(result, acknowledge=False)
        else:
            self._on_partial(result)

    def _offset(self) -> float:
        return self.start_time_offset + self._origin

    def _on_partial(self, result: Mapping[str, Any]) -> None:
        data = speech_data_from_partial(result, language=self._language, offset=self._offset())
        if data is None:
            return
        self._heard = True
        if not self._in_speech:
            self._in_speech = True
            self._send(stt.SpeechEventType.START_OF_SPEECH)
        if data.text != self._last_partial:
            self._last_partial = data.text
            self._send(stt.SpeechEventType.INTERIM_TRANSCRIPT, data)

    def _on_final(self, result: Mapping[str, Any], *, acknowledge: bool) -> None:
        data = speech_data_from_result(result, language=self._language, offset=self._offset())
        self._fed_since_boundary = self._heard = False
        self._last_partial = ""
        self._recent.clear()
        if data is not None:
            if not self._in_speech:
                self._in_speech = True
                self._send(stt.SpeechEventType.START_OF_SPEECH)
            self._send(stt.SpeechEventType.FINAL_TRANSCRIPT, data)
        elif acknowledge:
            # After a flush the session waits (up to its transcript timeout) for a final
            # transcript before committing the turn; an empty one answers "nothing more".
            empty = stt.SpeechData(language=LanguageCode(self._language), text="")
            self._send(stt.SpeechEventType.FINAL_TRANSCRIPT, empty)
        if self._in_speech:
            self._in_speech = False
            self._send(stt.SpeechEventType.END_OF_SPEECH)
        self._request_id = utils.shortuuid()

    def _report_usage(self) -> None:
        if self._unreported > 0:
            usage = stt.RecognitionUsage(audio_duration=self._unreported)
            self._unreported = 0.0
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.RECOGNITION_USAGE,
                    request_id=self._request_id,
                    recognition_usage=usage,
                )
            )

    def _send(self, kind: stt.SpeechEventType, data: stt.SpeechData | None = None) -> None:
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=kind,
                request_id=self._request_id,
                alternatives=[data] if data is not None else [],
            )
        )
