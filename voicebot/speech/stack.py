"""The speech models a process shares between its calls: VAD, recogniser, synthesiser.

Built once (loading models is the slow part) and handed to every audio call. Each piece has an
online/quality choice and an offline fallback that ships with ``pip install``:

- recogniser: Vosk when its model is on disk, else pocketsphinx with a language model built
  from the flows;
- synthesiser: edge-tts when Microsoft's service answers, else Piper when it is installed
  with a voice (an optional GPL-3.0 extra), else espeak-ng; fixed prompts are synthesised
  ahead into a cache;
- VAD: silero (its model is inside its wheel);
- end of turn: Smart Turn v3.2 (from the pipecat-ai wheel, `voicebot models download
  turn-detector`) when its model is on disk, else the silence timers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from livekit.agents import APIConnectOptions, tokenize
from livekit.agents import stt as lk_stt
from livekit.agents import tts as lk_tts
from livekit.plugins import silero

from voicebot.config import Settings
from voicebot.engine.steps import (
    DEFAULT_ANNOUNCE,
    DEFAULT_NO_INPUT,
    DEFAULT_NO_MATCH,
    GOODBYE,
    TECHNICAL_APOLOGY,
)
from voicebot.flows.schema import BotDefinition
from voicebot.speech import vocabulary
from voicebot.speech.shared_vad import PublishingVAD, VadEvents
from voicebot.speech.tts.languages import LanguageTTS, VoiceChoice
from voicebot.speech.tts.prompt_cache import PromptCacheTTS
from voicebot.speech.turn.smart_turn import VAD_MIN_SILENCE, SmartTurnDetector, SmartTurnModel

logger = logging.getLogger("voicebot.speech")

_ENGINE_LINES = (DEFAULT_NO_INPUT, DEFAULT_NO_MATCH, DEFAULT_ANNOUNCE, GOODBYE, TECHNICAL_APOLOGY)


@dataclass
class CallSpeech:
    """One call's plugin objects (see :meth:`SpeechStack.for_call`)."""

    vad: silero.VAD
    stt: lk_stt.STT[Any]
    tts: lk_tts.TTS[Any]
    turn: SmartTurnDetector | None = None  # None: turns end on the silence timers


# Makes a call's recogniser; it may listen to the call's session VAD through the events.
SttFactory = Callable[[silero.VAD, VadEvents], lk_stt.STT[Any]]


@dataclass
class SpeechStack:
    vad: silero.VAD
    stt: lk_stt.STT[Any]
    tts: lk_tts.TTS[Any]  # sentence streaming over the prompt cache
    cache: PromptCacheTTS
    labels: dict[str, str] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)
    stt_for_call: SttFactory | None = None
    turn_model: SmartTurnModel | None = None
    # a bot of several languages: the default language (``cache`` speaks it), and a prompt
    # cache over its own synthesiser, with its own fixed lines, for each further language
    language: str = ""
    voices: dict[str, PromptCacheTTS] = field(default_factory=dict)
    voice_prompts: dict[str, list[str]] = field(default_factory=dict)

    def for_call(
        self,
        language: Callable[[], str] | None = None,
        *,
        on_switch: Callable[[VoiceChoice], None] | None = None,
    ) -> CallSpeech:
        """Plugin objects for one call, over the models this stack loaded once.

        A livekit session subscribes to its plugins' ``metrics_collected`` and ``error``
        events. Plugin objects shared by every call would hand each call's events to every
        session: work that grows with the square of the calls (measured: VAD metrics alone
        kept 20 calls from running in real time), and one call's TTS failure reported to all.
        The objects made here are thin: the VAD's ONNX session, the recogniser's decoders or
        model, the prompt cache and the synthesiser behind it stay shared.

        ``language`` (read before each synthesis: the call's language now) makes the call's
        TTS speak each reply with that language's voice; ``on_switch`` hears when it changes.
        """
        events = VadEvents()
        vad = PublishingVAD(self.vad, events)
        stt = self.stt_for_call(vad, events) if self.stt_for_call else self.stt
        tts: lk_tts.TTS[Any] = _streaming(self.cache.for_call())
        if self.voices and language is not None:
            per_language = {self.language: tts}
            per_language.update({lang: _streaming(c.for_call()) for lang, c in self.voices.items()})
            tts = LanguageTTS(per_language, language, default=self.language, on_switch=on_switch)
        turn = self.turn_model.detector() if self.turn_model is not None else None
        return CallSpeech(vad=vad, stt=stt, tts=tts, turn=turn)

    async def prefill(self) -> int:
        """Synthesise the fixed prompts (call once, before taking calls), each language's with
        its own voice."""
        count = await self.cache.prefill(self.prompts)
        for language, cache in self.voices.items():
            count += await cache.prefill(self.voice_prompts.get(language, []))
        return count

    def describe(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in self.labels.items())

    async def aclose(self) -> None:
        await self.tts.aclose()
        for cache in self.voices.values():
            await cache.aclose()
        await self.stt.aclose()
        if self.turn_model is not None:
            self.turn_model.close()


def _streaming(cache: PromptCacheTTS) -> lk_tts.StreamAdapter:
    return lk_tts.StreamAdapter(
        tts=cache, sentence_tokenizer=tokenize.blingfire.SentenceTokenizer()
    )


def load_vad(settings: Settings, *, min_silence: float | None = None) -> silero.VAD:
    return cast(
        silero.VAD,
        silero.VAD.load(
            min_silence_duration=min_silence or settings.vad_min_silence,
            min_speech_duration=0.1,
            prefix_padding_duration=0.3,
            sample_rate=16000,
        ),
    )


def build_stt(
    settings: Settings, definition: BotDefinition, vad: silero.VAD
) -> tuple[lk_stt.STT[Any], str, SttFactory]:
    """The recogniser, a label saying which one (and why) for logs and ``--help`` output, and
    how to make a call's own recogniser over the same model."""
    if settings.stt in ("auto", "vosk"):
        from voicebot.speech.models import DEFAULT_VOSK_DIR
        from voicebot.speech.stt.vosk import VoskModelMissing, VoskSTT, load_vosk_model

        cache = settings.models_dir or DEFAULT_VOSK_DIR
        try:
            load_vosk_model(settings.vosk_model, cache)
        except VoskModelMissing as exc:
            if settings.stt == "vosk":
                raise
            logger.info("no Vosk model; using pocketsphinx", extra={"detail": exc.reason})
        else:
            phrases = [
                vocabulary.normalise(s) for s in vocabulary.sentences(definition) if s.strip()
            ]
            vosk = VoskSTT(model=settings.vosk_model, cache_dir=cache, phrases=phrases)
            return vosk, f"vosk ({settings.vosk_model})", lambda _vad, _events: vosk.for_call()
    from voicebot.speech.stt.pocketsphinx import (
        DecoderPool,
        PocketsphinxSTT,
        build_language_model,
    )

    lm, dictionary = build_language_model(
        vocabulary.sentences(definition), settings.data_dir / "asr"
    )
    pool = DecoderPool(lm, dictionary, size=settings.asr_decoders)
    pool.prewarm()
    label = "pocketsphinx (offline, domain language model from the flows)"
    recogniser = PocketsphinxSTT(pool, vad, language=definition.bot.language)
    return recogniser, label, recogniser.for_call


async def edge_reachable(voice: str, wait: float = 3.0) -> bool:
    """Whether Microsoft's TTS answers from here (one short synthesis)."""
    from voicebot.speech.tts.edge import EdgeTTS

    engine = EdgeTTS(voice=voice)
    try:
        async with asyncio.timeout(wait):
            once = APIConnectOptions(max_retry=0, timeout=wait)
            async with engine.synthesize("OK.", conn_options=once) as stream:
                async for _ in stream:
                    return True
    except Exception as exc:
        logger.info("edge-tts is not reachable", extra={"detail": str(exc) or type(exc).__name__})
    finally:
        await engine.aclose()
    return False


def language_voice(settings: Settings, definition: BotDefinition, language: str) -> str | None:
    """The voice named for ``language``: ``bot.voices``, else (the default language only)
    VOICEBOT_TTS_VOICE or ``bot.voice``. None: espeak-ng picks one for the language."""
    bot = definition.bot
    if language in bot.voices:
        return bot.voices[language]
    if language == bot.default_language:
        return settings.tts_voice or bot.voice
    return None


def build_tts(
    settings: Settings,
    definition: BotDefinition,
    *,
    edge_ok: bool,
    language: str | None = None,
) -> tuple[lk_tts.TTS[Any], str]:
    """The synthesiser for ``language`` (default: the bot's). A language with no voice named
    for it speaks through espeak-ng (offline, every declared language it has); Edge needs a
    named voice, Piper a voice file in that language (docs/languages.md)."""
    language = language or definition.bot.default_language
    voice = language_voice(settings, definition, language)
    if voice is None:
        from voicebot.speech.tts.espeak import EspeakTTS

        engine = EspeakTTS.from_voice_name(
            None, language, rate=settings.tts_rate, pitch=settings.tts_pitch
        )
        return engine, f"espeak-ng ({engine.model}, offline)"
    if settings.tts == "edge" or (settings.tts == "auto" and edge_ok):
        from voicebot.speech.tts.edge import EdgeTTS
        from voicebot.speech.tts.espeak import EspeakTTS

        edge = EdgeTTS(
            voice=voice or "en-US-AriaNeural", rate=settings.tts_rate, pitch=settings.tts_pitch
        )
        offline = EspeakTTS.from_voice_name(
            voice, language, rate=settings.tts_rate, pitch=settings.tts_pitch
        )
        # the fallback adapter switches to espeak-ng when the service stops answering mid-call
        adapter = lk_tts.FallbackAdapter([edge, offline])
        return adapter, f"edge-tts ({edge.model}) with espeak-ng as fallback"
    from voicebot.speech.tts.espeak import EspeakTTS

    engine = EspeakTTS.from_voice_name(
        voice, language, rate=settings.tts_rate, pitch=settings.tts_pitch
    )
    if settings.tts in ("auto", "piper"):
        piper = _load_piper(settings, language)
        if piper is not None:
            # espeak-ng takes over a sentence Piper fails on or is too slow for
            adapter = lk_tts.FallbackAdapter([piper[0], engine])
            return adapter, f"{piper[1]} with espeak-ng as fallback"
    return engine, f"espeak-ng ({engine.model}, offline)"


def _load_piper(settings: Settings, language: str | None) -> tuple[lk_tts.TTS[Any], str] | None:
    """The Piper synthesiser and its label, or None (logged with what to install) when Piper
    or the voice is missing. Blocking: it loads the voice's ONNX model."""
    from voicebot.speech.tts import piper as piper_tts

    dirs = [d for d in (settings.models_dir, piper_tts.DEFAULT_DIR) if d is not None]
    # asked for by name, a missing voice is worth a warning; under auto it is the default
    log = logger.warning if settings.tts == "piper" else logger.info
    try:
        files = piper_tts.find_voice(settings.piper_voice, dirs)
        spoken = piper_tts.voice_language(files)
        if not piper_tts.same_language(spoken, language):
            extra = {"voice": files.name, "voice_language": spoken, "bot_language": language}
            if settings.tts == "auto":
                logger.info("the piper voice speaks another language; using espeak-ng", extra=extra)
                return None
            logger.warning("the piper voice speaks another language than the bot", extra=extra)
        piper = piper_tts.PiperTTS.from_files(
            files, rate=settings.tts_rate, workers=settings.piper_workers
        )
    except piper_tts.PiperUnavailable as exc:
        log("no piper voice; using espeak-ng", extra={"detail": str(exc)})
        return None
    # the voice's source (package and version) is in the label, which keys the prompt cache
    return piper, f"piper ({piper.model} from {piper.source}, offline)"


async def build_speech(settings: Settings, definition: BotDefinition) -> SpeechStack:
    """Load every speech model (the blocking loads run on a worker thread)."""
    turn_model = await asyncio.to_thread(load_turn_model, settings)
    # With the detector the VAD ends an utterance sooner: the model, not the silence, decides
    # whether the turn is over (and the session waits longer when it is not).
    vad = await asyncio.to_thread(
        load_vad, settings, min_silence=VAD_MIN_SILENCE if turn_model is not None else None
    )
    recogniser, stt_label, stt_for_call = await asyncio.to_thread(
        build_stt, settings, definition, vad
    )
    edge_ok = False
    if settings.tts == "auto":
        edge_ok = await edge_reachable(
            settings.tts_voice or definition.bot.voice or "en-US-AriaNeural"
        )
    synthesiser, tts_label = await asyncio.to_thread(
        build_tts, settings, definition, edge_ok=edge_ok
    )
    cache = _prompt_cache(settings, synthesiser, tts_label)
    streaming = _streaming(cache)
    bot = definition.bot
    # one language: every fixed line; several: each voice caches the lines of its language
    own = bot.default_language if bot.multilingual else None
    prompts = (
        vocabulary.static_prompts(definition, extra=_ENGINE_LINES, language=own)
        if settings.prompt_cache
        else []
    )
    labels = {"asr": stt_label, "tts": tts_label}
    voices: dict[str, PromptCacheTTS] = {}
    voice_prompts: dict[str, list[str]] = {}
    for language in bot.spoken_languages[1:] if bot.multilingual else []:
        # built now, not at the first switch: a Piper voice loads for seconds, which a caller
        # who has just asked for Spanish must not wait through
        other, label = await asyncio.to_thread(
            build_tts, settings, definition, edge_ok=edge_ok, language=language
        )
        voices[language] = _prompt_cache(settings, other, label)
        labels[f"tts {language}"] = label
        if settings.prompt_cache:
            voice_prompts[language] = vocabulary.static_prompts(
                definition, extra=_ENGINE_LINES, language=language
            )
    # Everything loaded so far (the bot, its models, the speech models) lives as long as the
    # process. Left in the collector's oldest generation, each full collection walks all of it:
    # measured 50-145 ms pauses of the event loop with 20 calls, enough to put audio behind.
    gc.collect()
    gc.freeze()
    return SpeechStack(
        vad=vad,
        stt=recogniser,
        tts=streaming,
        cache=cache,
        labels={**labels, "vad": "silero", "turn": _turn_label(turn_model)},
        prompts=prompts,
        stt_for_call=stt_for_call,
        turn_model=turn_model,
        language=bot.default_language,
        voices=voices,
        voice_prompts=voice_prompts,
    )


def _prompt_cache(settings: Settings, synthesiser: lk_tts.TTS[Any], label: str) -> PromptCacheTTS:
    # the label names engine and voice, so each language's lines are kept apart on disk
    return PromptCacheTTS(
        synthesiser,
        disk_dir=settings.data_dir / "tts-cache" if settings.prompt_cache else None,
        identity=f"{label}|{settings.tts_rate}|{settings.tts_pitch}",
    )


def load_turn_model(settings: Settings) -> SmartTurnModel | None:
    """The shared Smart Turn model, or None (logged, with the command that fetches it) when
    it is off or missing: the calls then end turns on the silence timers. Blocking."""
    from voicebot.speech.turn.smart_turn import DEFAULT_DIR, TurnModelMissing, find_model

    if settings.turn_detector == "off":
        return None
    dirs = [d for d in (settings.models_dir, DEFAULT_DIR) if d is not None]
    try:
        path = find_model(settings.turn_detector_model, dirs)
        model = SmartTurnModel(path, threshold=settings.turn_threshold)
        model.warm_up()
    except Exception as exc:  # a missing or broken model must not stop the calls
        # asked for by name, a missing model is worth a warning; under auto it is the default
        log = logger.warning if settings.turn_detector == "smart-turn" else logger.info
        log(
            "no turn detector model; turns end on the silence timers",
            extra={"detail": str(exc) if isinstance(exc, TurnModelMissing) else repr(exc)},
        )
        return None
    logger.info("turn detector loaded", extra={"model": str(path)})
    return model


def _turn_label(model: SmartTurnModel | None) -> str:
    if model is None:
        return "silence timers"
    return f"smart-turn-v3.2 (onnxruntime, threshold {model.threshold})"
