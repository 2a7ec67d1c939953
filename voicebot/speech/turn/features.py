"""Whisper-style log-mel features (80 mels x 800 frames, 8 s at 16 kHz) for Smart Turn v3.

Ported from pipecat's ``pipecat/audio/turn/smart_turn/_whisper_features.py`` (pipecat-ai 1.14.0,
Copyright (c) 2024-2026 Daily, BSD 2-Clause License), itself derived from Hugging Face
Transformers' ``WhisperFeatureExtractor`` (Copyright 2022-2023 The HuggingFace Inc. team and the
librosa & torchaudio authors, Apache License 2.0). The model was trained on exactly these
features, so the arithmetic is kept as it is there (numpy only: no transformers, no torch).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

SAMPLE_RATE = 16000
SECONDS = 8
SAMPLES = SAMPLE_RATE * SECONDS
_N_FFT = 400
_HOP_LENGTH = 160
_N_MELS = 80
_MEL_FLOOR = 1e-10
_NORM_VARIANCE_EPS = 1e-7


def _hertz_to_mel(freq: NDArray[np.float64]) -> NDArray[np.float64]:
    # the Slaney scale: linear below 1 kHz, logarithmic above
    logstep = 27.0 / np.log(6.4)
    freq = np.atleast_1d(np.asarray(freq, dtype=np.float64))
    mels = 3.0 * freq / 200.0
    high = freq >= 1000.0
    mels[high] = 15.0 + np.log(freq[high] / 1000.0) * logstep
    return mels


def _mel_to_hertz(mels: NDArray[np.float64]) -> NDArray[np.float64]:
    logstep = np.log(6.4) / 27.0
    mels = np.atleast_1d(np.asarray(mels, dtype=np.float64))
    freq = 200.0 * mels / 3.0
    high = mels >= 15.0
    freq[high] = 1000.0 * np.exp(logstep * (mels[high] - 15.0))
    return freq


def _mel_filterbank() -> NDArray[np.float64]:
    """Slaney-normalised triangular filters, shape (201 frequency bins, 80 mels)."""
    bins = _N_FFT // 2 + 1
    mel_min, mel_max = _hertz_to_mel(np.array([0.0, SAMPLE_RATE / 2.0]))
    filter_freqs = _mel_to_hertz(np.linspace(mel_min, mel_max, _N_MELS + 2))
    fft_freqs = np.linspace(0, SAMPLE_RATE // 2, bins)
    filter_diff = np.diff(filter_freqs)
    slopes = np.expand_dims(filter_freqs, 0) - np.expand_dims(fft_freqs, 1)
    down = -slopes[:, :-2] / filter_diff[:-1]
    up = slopes[:, 2:] / filter_diff[1:]
    filters = np.maximum(np.zeros(1), np.minimum(down, up))
    enorm = 2.0 / (filter_freqs[2 : _N_MELS + 2] - filter_freqs[:_N_MELS])
    result: NDArray[np.float64] = filters * np.expand_dims(enorm, 0)
    return result


# a periodic Hann window (torch.hann_window's)
_WINDOW = np.hanning(_N_FFT + 1)[:-1]
_MEL_FILTERS_T = np.ascontiguousarray(_mel_filterbank().T)


def last_seconds(audio: NDArray[np.float32]) -> NDArray[np.float32]:
    """The last 8 s of ``audio``, zero-padded at the start when shorter (as the model was
    trained: the end of the turn is always at the end of the window)."""
    if audio.size >= SAMPLES:
        return audio[-SAMPLES:]
    return np.pad(audio, (SAMPLES - audio.size, 0))


def log_mel(audio: NDArray[np.float32]) -> NDArray[np.float32]:
    """Features of exactly :data:`SAMPLES` samples of 16 kHz float audio in [-1, 1]:
    float32, shape (80, 800)."""
    if audio.ndim != 1 or audio.size != SAMPLES:
        raise ValueError(f"expected {SAMPLES} samples of mono audio, got shape {audio.shape}")
    x = np.asarray(audio, dtype=np.float32)
    # zero-mean unit-variance waveform, before the spectrogram, in float32 (as the reference)
    x = (x - x.mean()) / np.sqrt(x.var() + _NORM_VARIANCE_EPS)
    pad = _N_FFT // 2
    padded = np.pad(x.astype(np.float64), (pad, pad), mode="reflect")
    frames = sliding_window_view(padded, _N_FFT)[::_HOP_LENGTH]
    power = (np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2).T
    mel = np.log10(np.maximum(_MEL_FLOOR, _MEL_FILTERS_T @ power))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    result: NDArray[np.float32] = ((mel + 4.0) / 4.0).astype(np.float32)
    return result
