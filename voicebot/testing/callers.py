"""Synthetic callers: speech from espeak-ng or Festival, keypad tones, silence and noise, as
16 kHz PCM.

Used by the audio tests and the audio benchmark to build caller recordings at run time, so what
a test's caller says is written in the test.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from voicebot.audio.files import CALL_SAMPLE_RATE as RATE
from voicebot.speech.dtmf import dtmf_tones

Samples = NDArray[np.int16]


FESTIVAL_VOICE = "festival:cmu_us_slt_arctic_hts"


def default_caller_voice() -> str:
    """Festival's HTS voice when it is installed, else espeak-ng's US English.

    Measured on the example bot's test lines, pocketsphinx hears the HTS voice far better than
    espeak-ng's formant speech (the recogniser's acoustic model was trained on people).
    """
    installed = Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts").is_dir()
    return FESTIVAL_VOICE if installed and shutil.which("text2wave") else "en-us"


def speak(text: str, *, rate: int = 140, voice: str = "en-us") -> Samples:
    """``text`` spoken as 16 kHz 16-bit mono samples: by espeak-ng (``voice`` is one of its
    voices, ``rate`` in words per minute), or by Festival for ``festival:<voice>``."""
    if voice.startswith("festival:"):
        wav = _festival(text, voice.removeprefix("festival:"))
    else:
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text],
            capture_output=True,
            check=True,
        ).stdout
    with wave.open(io.BytesIO(wav)) as source:
        source_rate = source.getframerate()
        pcm = source.readframes(source.getnframes())
    if source_rate == RATE:
        return np.frombuffer(pcm, dtype=np.int16)
    frame = rtc.AudioFrame(pcm, source_rate, 1, len(pcm) // 2)
    resampler = rtc.AudioResampler(source_rate, RATE, quality=rtc.AudioResamplerQuality.HIGH)
    frames = [*resampler.push(frame), *resampler.flush()]
    return np.frombuffer(b"".join(bytes(f.data) for f in frames), dtype=np.int16)


def _festival(text: str, voice: str) -> bytes:
    if not re.fullmatch(r"[a-z0-9_]+", voice):
        raise ValueError(f"not a Festival voice name: {voice!r}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(
            ["text2wave", "-eval", f"(voice_{voice})", "-o", str(out)],
            input=text.encode(),
            capture_output=True,
            check=True,
        )
        return out.read_bytes()


def silence(seconds: float) -> Samples:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


def noise(seconds: float, level: float = 0.05, seed: int = 7) -> Samples:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(RATE * seconds)) * level * 32767).astype(np.int16)


def keys(digits: str) -> Samples:
    return dtmf_tones(digits, RATE, tone_ms=120, gap_ms=80)


def write_wav(path: Path, *parts: Samples, rate: int = RATE) -> Path:
    samples = np.concatenate(parts).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path
