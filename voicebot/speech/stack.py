"""The speech models a process shares between its calls: VAD, recogniser, synthesiser.

Built once (loading models is the slow part) and handed to every audio call. Each piece has an
online/quality choice and an offline fallback that ships with ``pip install``:

- recogniser: Vosk when its model is on disk, else pocketsphinx with a language model built
  from the flows;
- synthesiser: edge-tts when Microsoft's service answers, else espeak-ng; fixed prompts are
  synthesised ahead into a cache;
- VAD: silero (its model is inside its wheel).
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
from voicebot.speech.tts.prompt_cache import PromptCacheTTS

logger = logging.getLogger("voicebot.speech")

_ENGINE_LINES = (DEFAULT_NO_INPUT, DEFAULT_NO_MATCH, DEFAULT_ANNOUNCE, GOODBYE, TECHNICAL_APOLOGY)


@dataclass
class CallSpeech:
    """One call's plugin objects (see :meth:`SpeechStack.for_call`)."""

    vad: silero.VAD
    stt: lk_stt.STT[Any]
    tts: lk_tts.TTS[Any]


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

    def for_call(self) -> CallSpeech:
        """Plugin objects for one call, over the models this stack loaded once.

        A livekit session subscribes to its plugins' ``metrics_collected`` and ``error``
        events. Plugin objects shared by every call would hand each call's events to every
        session: work that grows with the square of the calls (measured: VAD metrics alone
        kept 20 calls from running in real time), and one call's TTS failure reported to all.
        The objects made here are thin: the VAD's ONNX session, the recogniser's decoders or
        model, the prompt cache and the synthesiser behind it stay shared.
        """
        events = VadEvents()
        vad = PublishingVAD(self.vad, events)
        stt = self.stt_for_call(vad, events) if self.stt_for_call else self.stt
        tts = lk_tts.StreamAdapter(
            tts=self.cache.for_call(), sentence_tokenizer=tokenize.blingfire.SentenceTokenizer()
        )
        return CallSpeech(vad=vad, stt=stt, tts=tts)

    async def prefill(self) -> int:
        """Synthesise the fixed prompts (call once, before taking calls)."""
        return await self.cache.prefill(self.prompts)

    def describe(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in self.labels.items())

    async def aclose(self) -> None:
        await self.tts.aclose()
        await self.stt.aclose()


def load_vad(settings: Settings) -> silero.VAD:
    return cast(
        silero.VAD,
        silero.VAD.load(
            min_silence_duration=settings.vad_min_silence,
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


def build_tts(
    settings: Settings, definition: BotDefinition, *, edge_ok: bool
) -> tuple[lk_tts.TTS[Any], str]:
    voice = settings.tts_voice or definition.bot.voice
    if settings.tts == "edge" or (settings.tts == "auto" and edge_ok):
        from voicebot.speech.tts.edge import EdgeTTS
        from voicebot.speech.tts.espeak import EspeakTTS

        edge = EdgeTTS(
            voice=voice or "en-US-AriaNeural", rate=settings.tts_rate, pitch=settings.tts_pitch
        )
        offline = EspeakTTS.from_voice_name(
            voice, definition.bot.language, rate=settings.tts_rate, pitch=settings.tts_pitch
        )
        # the fallback adapter switches to espeak-ng when the service stops answering mid-call
        adapter = lk_tts.FallbackAdapter([edge, offline])
        return adapter, f"edge-tts ({edge.model}) with espeak-ng as fallback"
    from voicebot.speech.tts.espeak import EspeakTTS

    engine = EspeakTTS.from_voice_name(
        voice, definition.bot.language, rate=settings.tts_rate, pitch=settings.tts_pitch
    )
    return engine, f"espeak-ng ({engine.model}, offline)"


async def build_speech(settings: Settings, definition: BotDefinition) -> SpeechStack:
    """Load every speech model (the blocking loads run on a worker thread)."""
    vad = await asyncio.to_thread(load_vad, settings)
    recogniser, stt_label, stt_for_call = await asyncio.to_thread(
        build_stt, settings, definition, vad
    )
    edge_ok = False
    if settings.tts == "auto":
        edge_ok = await edge_reachable(
            settings.tts_voice or definition.bot.voice or "en-US-AriaNeural"
        )
    synthesiser, tts_label = build_tts(settings, definition, edge_ok=edge_ok)
    cache = PromptCacheTTS(
        synthesiser,
        disk_dir=settings.data_dir / "tts-cache" if settings.prompt_cache else None,
        identity=f"{tts_label}|{settings.tts_rate}|{settings.tts_pitch}",
    )
    streaming = lk_tts.StreamAdapter(
        tts=cache, sentence_tokenizer=tokenize.blingfire.SentenceTokenizer()
    )
    prompts = (
        vocabulary.static_prompts(definition, extra=_ENGINE_LINES) if settings.prompt_cache else []
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
        labels={"asr": stt_label, "tts": tts_label, "vad": "silero"},
        prompts=prompts,
        stt_for_call=stt_for_call,
    )
