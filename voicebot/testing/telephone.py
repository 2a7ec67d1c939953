"""A telephone line for the test callers: what a phone call does to a caller's voice.

A call from the telephone network reaches the bot through LiveKit SIP (48 kHz Opus in the room,
handed to the agent at 24 kHz by livekit's room input), but what it carries was sampled at
8 kHz and companded by G.711 on the way: nothing outside about 300-3400 Hz, 8-bit logarithmic
quantisation, and the line's own hiss. This module
does the same to a test caller's 16 kHz speech, deterministically (the noise is seeded), so the
audio tests and ``benchmarks/asr_accuracy.py`` can hear the bot as phone callers do:

1. band-limit to the telephone band (300-3400 Hz, a linear-phase FIR) and take every other
   sample: 8 kHz narrowband;
2. add line noise: white noise limited to the same band, at ``snr_db`` below the caller's
   active speech level (the power of the 20 ms frames within 40 dB of the loudest, so the
   silence around a line does not count as speech);
3. G.711 mu-law (or A-law) encode and decode, as the network's codec does;
4. resample to the rate the agent is given with livekit's own resampler (``rtc.AudioResampler``,
   the one the recogniser's stream and livekit's room input use). Its int16 output is dithered
   by soxr, so that last step may differ by a sample value or two between runs; everything
   before it is bit-exact for a given seed.

Written in numpy: the standard library's ``audioop`` is gone in Python 3.13.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from voicebot.audio.files import CALL_SAMPLE_RATE as RATE
from voicebot.testing.callers import Samples

NARROWBAND_RATE = 8000
BAND = (300.0, 3400.0)  # Hz, the telephone channel's pass band (ITU-T G.712)
DEFAULT_SNR_DB = 30.0  # a fair landline; a poor mobile call is nearer 15 dB
# the rate livekit's room input hands the session by default (RoomOptions' audio input)
ROOM_INPUT_RATE = 24000

Law = Literal["mu", "a"]

_FRAME = 0.02  # seconds, for the active speech level
_ACTIVE_RANGE_DB = 40.0
_TAPS = 257  # at 16 kHz: a transition of about 350 Hz, over 70 dB down in the stop band


def telephone_line(
    samples: Samples,
    *,
    snr_db: float | None = DEFAULT_SNR_DB,
    law: Law = "mu",
    seed: int = 7,
    rate: int = RATE,
) -> Samples:
    """``samples`` (16 kHz caller speech) as heard at the far end of a phone call, at ``rate``.

    ``snr_db=None`` leaves out the line noise (the band limit and the codec remain).
    """
    narrow = narrowband(samples)
    if snr_db is not None:
        narrow = narrow + line_noise(
            len(narrow), level=active_level(narrow) / 10 ** (snr_db / 20), seed=seed
        )
    coded = g711_decode(g711_encode(_to_int16(narrow), law), law)
    return resample(coded, NARROWBAND_RATE, rate)


def narrowband(samples: Samples) -> NDArray[np.float64]:
    """16 kHz samples band-limited to the telephone band and decimated to 8 kHz (as floats)."""
    band = np.convolve(samples.astype(np.float64), _band_pass(RATE, _TAPS), mode="same")
    return band[:: RATE // NARROWBAND_RATE]


def line_noise(length: int, *, level: float, seed: int = 7) -> NDArray[np.float64]:
    """``length`` samples of 8 kHz hiss in the telephone band, of RMS ``level``."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(length + _TAPS)
    hiss = np.convolve(white, _band_pass(NARROWBAND_RATE, _TAPS // 2 | 1), mode="same")
    hiss = hiss[_TAPS // 2 : _TAPS // 2 + length]
    rms = float(np.sqrt(np.mean(hiss**2))) if length else 0.0
    return hiss * (level / rms) if rms > 0 else hiss


def active_level(samples: NDArray[np.float64] | Samples, rate: int = NARROWBAND_RATE) -> float:
    """RMS of the speech: over the 20 ms frames within 40 dB of the loudest one."""
    size = int(rate * _FRAME)
    count = len(samples) // size
    if count == 0:
        return 0.0
    frames = np.asarray(samples[: count * size], dtype=np.float64).reshape(count, size)
    power = np.mean(frames**2, axis=1)
    loudest = float(power.max())
    if loudest <= 0:
        return 0.0
    active = power[power >= loudest * 10 ** (-_ACTIVE_RANGE_DB / 10)]
    return float(np.sqrt(np.mean(active)))


def g711_encode(samples: Samples, law: Law = "mu") -> NDArray[np.uint8]:
    """16-bit linear samples as G.711 code bytes (what ``audioop.lin2ulaw``/``lin2alaw`` gave)."""
    return _mulaw_encode(samples) if law == "mu" else _alaw_encode(samples)


def g711_decode(codes: NDArray[np.uint8], law: Law = "mu") -> Samples:
    """G.711 code bytes back to 16-bit linear samples."""
    return _MULAW_TABLE[codes] if law == "mu" else _ALAW_TABLE[codes]


def resample(samples: Samples, source_rate: int, rate: int) -> Samples:
    """``samples`` at ``rate``, through livekit's resampler (as the call path converts)."""
    if source_rate == rate or len(samples) == 0:
        return samples
    resampler = rtc.AudioResampler(source_rate, rate, num_channels=1)
    frame = rtc.AudioFrame(samples.astype(np.int16).tobytes(), source_rate, 1, len(samples))
    out = [*resampler.push(frame), *resampler.flush()]
    return np.frombuffer(b"".join(bytes(f.data) for f in out), dtype=np.int16)


# -- G.711 --------------------------------------------------------------------------------------

_MULAW_BIAS = 0x84


def _mulaw_encode(samples: Samples) -> NDArray[np.uint8]:
    # on 14-bit samples, as the reference coder (Sun's g711.c, audioop) does
    x = samples.astype(np.int32) >> 2
    sign = np.where(x < 0, 0x00, 0x80)
    # clipped where the top segment ends (0x1FFF, after the bias)
    magnitude = np.minimum(np.abs(x) + (_MULAW_BIAS >> 2), 0x1FFF)
    # the segment is the position of the highest set bit above bit 5 (0..7)
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    codes: NDArray[np.uint8] = ((exponent << 4 | mantissa) ^ (0x7F | sign)).astype(np.uint8)
    return codes


def _mulaw_table() -> Samples:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_encode(samples: Samples) -> NDArray[np.uint8]:
    x = samples.astype(np.int32) >> 3  # A-law works on 13-bit samples
    sign = np.where(x >= 0, 0x80, 0)
    magnitude = np.minimum(np.where(x < 0, -x - 1, x), 0x0FFF)
    exponent = np.where(
        magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4
    )
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    codes: NDArray[np.uint8] = ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)
    return codes


def _alaw_table() -> Samples:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


_MULAW_TABLE = _mulaw_table()
_ALAW_TABLE = _alaw_table()


# -- filters ------------------------------------------------------------------------------------


def _band_pass(rate: int, taps: int) -> NDArray[np.float64]:
    """A windowed-sinc (Blackman) band-pass FIR for the telephone band at ``rate``."""
    low, high = (f / rate for f in BAND)
    n = np.arange(taps) - (taps - 1) / 2
    kernel = 2 * high * np.sinc(2 * high * n) - 2 * low * np.sinc(2 * low * n)
    return np.asarray(kernel * np.blackman(taps), dtype=np.float64)


def _to_int16(samples: NDArray[np.float64]) -> Samples:
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)
