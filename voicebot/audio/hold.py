"""Hold music: a quiet tune generated here, so nothing is shipped or licensed."""

from __future__ import annotations

import math

import numpy as np

from voicebot.audio.files import CALL_SAMPLE_RATE


def hold_music(seconds: float = 8.0, rate: int = CALL_SAMPLE_RATE) -> bytes:
    """A quiet, slow arpeggio (generated, so nothing is shipped or licensed): plain enough to
    loop, clearly not silence, so the caller knows the line is alive."""
    notes = (261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 293.66, 349.23)
    step = seconds / len(notes)
    t = np.arange(int(step * rate)) / rate
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-3.0 * t / step)
    parts = []
    for freq in notes:
        tone = np.sin(2 * math.pi * freq * t) + 0.3 * np.sin(4 * math.pi * freq * t)
        parts.append(0.08 * envelope * tone)
    samples = np.concatenate(parts)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
