"""Real audio for the audio-path tests: speech from espeak-ng, keypad tones, silence, noise.

Nothing here is recorded ahead: each test synthesises the caller it needs, so what a test says
is in the test. The speech models (silero VAD, pocketsphinx, espeak-ng) are the real ones.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from voicebot.config import Settings
from voicebot.runtime.bot import BotRuntime
from voicebot.speech.dtmf import dtmf_tones
from voicebot.speech.stack import SpeechStack, build_speech

RATE = 16000

if shutil.which("espeak-ng") is None:  # pragma: no cover - the install script provides it
    pytest.fail("espeak-ng is missing: run scripts/install.sh", pytrace=False)


def speak(text: str, *, rate: int = 140, voice: str = "en-us") -> np.ndarray:
    """``text`` spoken by espeak-ng, as 16 kHz 16-bit mono samples."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    raw = subprocess.run(
        [
            "sox",
            "-t",
            "wav",
            "-",
            "-r",
            str(RATE),
            "-b",
            "16",
            "-c",
            "1",
            "-t",
            "raw",
            "-e",
            "signed",
            "-",
        ],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


def noise(seconds: float, level: float = 0.05, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(RATE * seconds)) * level * 32767).astype(np.int16)


def keys(digits: str) -> np.ndarray:
    return dtmf_tones(digits, RATE, tone_ms=120, gap_ms=80)


def write_wav(path: Path, *parts: np.ndarray, rate: int = RATE) -> Path:
    samples = np.concatenate(parts).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def audio_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "bot_dir": REPO,
        "data_dir": tmp_path / "data",
        "tts": "espeak",
        "asr_decoders": 1,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def audio_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the audio tests, so the prompt cache and language model are made once."""
    return tmp_path_factory.mktemp("audio-data")


@pytest.fixture
async def acme(audio_data_dir: Path) -> AsyncIterator[tuple[BotRuntime, SpeechStack]]:
    """The example bot with its real speech models (offline stack)."""
    settings = audio_settings(audio_data_dir.parent, data_dir=audio_data_dir)
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    await speech.prefill()
    try:
        yield runtime, speech
    finally:
        await speech.aclose()
        await runtime.aclose()
