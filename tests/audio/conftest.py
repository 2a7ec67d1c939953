"""Real audio for the audio-path tests: speech from espeak-ng, keypad tones, silence, noise.

Nothing here is recorded ahead: each test synthesises the caller it needs, so what a test says
is in the test. The speech models (silero VAD, pocketsphinx, espeak-ng) are the real ones.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from voicebot.config import Settings
from voicebot.runtime.bot import BotRuntime
from voicebot.speech.stack import SpeechStack, build_speech
from voicebot.testing.callers import RATE, keys, noise, silence, speak, write_wav

if shutil.which("espeak-ng") is None:  # pragma: no cover - the install script provides it
    pytest.fail("espeak-ng is missing: run scripts/install.sh", pytrace=False)


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


__all__ = ["RATE", "keys", "noise", "silence", "speak", "write_wav"]
