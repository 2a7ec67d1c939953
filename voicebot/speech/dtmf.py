"""In-band DTMF (keypad tone) detection on call audio.

Many trunks and softphones send keypad presses as tones inside the audio rather than as RFC 4733
events, so the bot has to hear them. :class:`DtmfDetector` turns a stream of 16-bit mono samples
into the digits pressed, and says whether the audio it has just analysed held a tone, so that
audio can be kept away from speech recognition (a keypad tone otherwise comes out as a word, or
as noise that holds the caller's turn open).

The checks follow ITU-T Q.24 practice, as spandsp and Asterisk do: one row and one column tone
above a minimum level, each well above the other frequencies of its group, a bounded level
difference ("twist") between them, nearly all of the audio's energy in those two tones, each
within 2% of its frequency, no strong second harmonic, a minimum duration and a minimum gap
between presses. :func:`dtmf_tones` makes keypad audio, for tests and the call simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["COL_FREQS", "DIGITS", "ROW_FREQS", "DtmfDetector", "DtmfDigit", "dtmf_tones"]

ROW_FREQS: Final = (697.0, 770.0, 852.0, 941.0)
COL_FREQS: Final = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD: Final = ("123A", "456B", "789C", "*0#D")
# The sixteen keys, row by row: a key's index is 4 * row + column.
DIGITS: Final = "".join(_KEYPAD)
_KEY_FREQS: Final = {
    key: (ROW_FREQS[r], COL_FREQS[c])
    for r, keys in enumerate(_KEYPAD)
    for c, key in enumerate(keys)
}

# 102 samples at 8 kHz, the block spandsp uses: its 78 Hz bins put each row frequency near a
# null of its neighbours' (73-89 Hz away), which a 10 ms block does not, and it is short enough
# to time a 40 ms press.
_DEFAULT_BLOCK_MS: Final = 12.75
# Only blocks almost wholly inside a tone pass, so the passing blocks span a tone to within a few
# ms (measured: 4 ms short to 7 ms long); durations are judged with this much give.
_TIMING_SLACK_MS: Final = 7.0
# Blocks this many steps (half a block) apart are compared for phase. Over half a block the
# phase is unambiguous within 1 / (half a block) Hz of nominal, more than 4.8% at 1633 Hz, so a
# tone far enough off to alias is also far outside the accepted error.
_PHASE_LAG: Final = 2
_FULL_SCALE: Final = 32768.0


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press: the key, and when its tone sounded in seconds of audio fed so far.

    ``end`` is ``None`` only for a digit that :meth:`DtmfDetector.flush` reports while its tone
    is still sounding.
    """

    digit: str
    start: float
    end: float | None


class DtmfDetector:
    """Finds keypad tones in a mono 16-bit audio stream fed in chunks of any length.

    The audio is analysed in blocks of ``block_ms``, a new one every quarter block. Each block is
    reduced to its DFT at the eight DTMF frequencies and at the column tones' second harmonics
    (the powers Goertzel's algorithm would give, from one matrix product per :meth:`feed`), and
    the phase each tone turns through between a block and the one half a block before gives its
    actual frequency.

    A digit is reported once, by the :meth:`feed` call that sees its tone end: a tone counts once
    it has lasted ``min_tone_ms`` and is over once ``min_gap_ms`` without it has followed, so a key
    pressed twice gives two digits only if the tone stopped in between, and a brief drop-out
    within a press does not. Reporting at the end rather than at 40 ms gives the whole press
    (start and end) at once; :attr:`tone_active` says straight away that a tone is sounding.

    Levels are in dB relative to a full-scale sine (amplitude 32767); with G.711, 0 dBm0 is about
    -3 dB on this scale.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        block_ms: float = _DEFAULT_BLOCK_MS,
        min_level_db: float = -36.0,
        min_peak_ratio_db: float = 6.0,
        max_normal_twist_db: float = 8.0,
        max_reverse_twist_db: float = 4.0,
        min_tone_fraction: float = 0.8,
        max_second_harmonic_db: float = -15.0,
        max_freq_error: float = 0.02,
        min_tone_ms: float = 40.0,
        min_gap_ms: float = 25.0,
    ) -> None:
        """Set up a detector for audio at ``sample_rate`` Hz.

        Args:
            sample_rate: samples per second; at least 8000.
            block_ms: the length of one analysed block.
            min_level_db: the weakest tone, row or column, accepted.
            min_peak_ratio_db: how far the row (column) tone must be above each of the other
                row (column) frequencies.
            max_normal_twist_db: how much weaker than the row tone the column tone may be.
            max_reverse_twist_db: how much stronger than the row tone the column tone may be.
            min_tone_fraction: the share of a block's energy (less any DC) that must be in the
                two tones; speech, music and noise spread theirs wider.
            max_second_harmonic_db: the strongest second harmonic of the column tone accepted,
                relative to the tone; voices are rich in harmonics, keypads are not.
            max_freq_error: how far from its nominal frequency, as a fraction of it, a tone may
                be; Q.24 asks for 1.5% to be accepted and 3.5% rejected. Voices that happen to
                put two harmonics near a row and a column frequency mostly miss by more.
            min_tone_ms: the shortest tone always reported; some up to about 10 ms shorter are.
            min_gap_ms: the shortest silence always taken as the end of a tone; drop-outs at
                least 10 ms shorter are always bridged.
        """
        if sample_rate < 8000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, not {sample_rate}")
        if min(block_ms, min_tone_ms, min_gap_ms, max_freq_error) <= 0:
            raise ValueError("durations and max_freq_error must be positive")
        if not 0.0 < min_tone_fraction <= 1.0:
            raise ValueError("min_tone_fraction must be in (0, 1]")
        self.sample_rate: Final = sample_rate
        n = max(16, round(sample_rate * block_ms / 1000.0))
        step = max(1, n // 4)
        self._block: Final = n
        self._step: Final = step

        nominal = np.array([*ROW_FREQS, *COL_FREQS])
        freqs = np.concatenate([nominal, 2.0 * nominal[4:]])
        phase = 2.0 * np.pi * np.outer(np.arange(n), freqs / sample_rate)
        # Phases are read through a Hann window. Through a plain block, the other tone's leakage
        # (-20 dB from 1209 Hz at 941 Hz) swings a phase enough to push a tone 1.5% off past 2%;
        # the window's wider main lobe costs nothing here, as each group has one tone to measure.
        hann = np.hanning(n)[:, None]
        self._basis: Final = np.hstack(
            [
                np.cos(phase),
                np.sin(phase),
                hann * np.cos(phase[:, :8]),
                hann * np.sin(phase[:, :8]),
                np.ones((n, 1)),  # the block's sum, for its DC
            ]
        ).astype(np.float32)
        self._nfreq: Final = len(freqs)
        # The phase a tone at nominal frequency turns through between compared blocks, and the
        # frequency error, as a fraction of nominal, that one radian more means.
        lag_samples = _PHASE_LAG * step
        self._turn: Final = 2.0 * np.pi * nominal * lag_samples / sample_rate
        self._per_radian: Final = sample_rate / (2.0 * np.pi * lag_samples * nominal)
        # A tone off nominal by a fraction e shows in its bin at sinc(e * f * n / fs) of its
        # amplitude (1.4 dB down at 1.5% off at 1633 Hz). That is put back, so the level, twist
        # and energy checks judge the tone rather than where it fell.
        self._sinc_scale: Final = nominal * n / sample_rate
        self._max_boost: Final = float(np.max(np.sinc(max_freq_error * self._sinc_scale) ** -2))
        # |DFT|^2 of a sine of amplitude A over n samples is (A n / 2)^2; this scales it to A^2.
        self._power_scale: Final = np.float32(4.0 / (n * n))

        self._min_amp2: Final = _db_to_power(min_level_db)
        self._peak_ratio: Final = _db_to_power(min_peak_ratio_db)
        self._normal_twist: Final = _db_to_power(max_normal_twist_db)
        self._reverse_twist: Final = _db_to_power(max_reverse_twist_db)
        self._harmonic_ratio: Final = _db_to_power(max_second_harmonic_db)
        self._tone_fraction: Final = min_tone_fraction
        self._max_error: Final = max_freq_error

        slack = _TIMING_SLACK_MS * sample_rate / 1000.0
        self._min_span: Final = max(n, round(min_tone_ms * sample_rate / 1000.0 - slack))
        # After m missed blocks, the passing blocks either side are at least (m + 1) steps less a
        # block apart.
        min_gap = max(0.0, min_gap_ms * sample_rate / 1000.0 - slack)
        self._gap_misses: Final = max(1, math.ceil((min_gap + n) / step) - 1)

        self._buf: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._odd_byte = b""
        # The windowed spectra of the last blocks, for the phase of the next ones.
        self._history: NDArray[np.float32] = np.zeros((_PHASE_LAG, 16), dtype=np.float32)
        self._history_len = 0
        self._base = 0  # sample index of self._buf[0]
        self._tone_active = False
        self._cur = -1  # index into DIGITS of the tone being followed, or -1
        self._cur_start = 0  # sample index where its first passing block starts
        self._cur_end = 0  # and where its last passing block ends
        self._confirmed = False  # it has lasted long enough to be a digit
        self._misses = 0  # blocks without it since

    @property
    def tone_active(self) -> bool:
        """Whether the most recently analysed block held a keypad tone, however short so far."""
        return self._tone_active

    def reset(self) -> None:
        """Forget all audio and state; times start from zero again."""
        self._buf = np.zeros(0, dtype=np.float32)
        self._odd_byte = b""
        self._history_len = 0
        self._base = 0
        self._tone_active = False
        self._cur = -1
        self._confirmed = False
        self._misses = 0

    def feed(self, samples: NDArray[np.int16] | bytes) -> list[DtmfDigit]:
        """Analyse the next audio (mono int16, or its little-endian bytes); return digits ended."""
        pcm = self._as_pcm(samples)
        if pcm.size:
            chunk = pcm.astype(np.float32) * np.float32(1.0 / _FULL_SCALE)
            self._buf = np.concatenate((self._buf, chunk)) if self._buf.size else chunk
        n, step = self._block, self._step
        if self._buf.size < n:
            return []
        count = (self._buf.size - n) // step + 1
        frames = np.lib.stride_tricks.as_strided(
            self._buf,
            shape=(count, n),
            strides=(step * self._buf.itemsize, self._buf.itemsize),
            writeable=False,
        )
        keys = None if self._quiet(count * step + n - step) else self._classify(frames)
        base = self._base
        self._buf = self._buf[count * step :].copy()
        self._base += count * step
        self._tone_active = keys is not None and bool(keys[-1] >= 0)
        if keys is None and self._cur < 0:
            return []

        digits: list[DtmfDigit] = []
        for i, key in enumerate([-1] * count if keys is None else keys.tolist()):
            start = base + i * step
            digit = self._track(key, start, start + n)
            if digit is not None:
                digits.append(digit)
        return digits

    def flush(self) -> list[DtmfDigit]:
        """End of the audio: report a digit whose tone lasted long enough but has not ended.

        Its ``end`` is ``None`` if the tone was still sounding in the last block analysed. Audio
        that does not fill a block is dropped; the clock keeps running.
        """
        digits: list[DtmfDigit] = []
        if self._cur >= 0 and self._confirmed:
            end = None if self._misses == 0 else self._cur_end / self.sample_rate
            digits.append(DtmfDigit(DIGITS[self._cur], self._cur_start / self.sample_rate, end))
        self._base += self._buf.size
        self._buf = np.zeros(0, dtype=np.float32)
        self._odd_byte = b""
        self._history_len = 0
        self._tone_active = False
        self._cur = -1
        self._confirmed = False
        self._misses = 0
        return digits

    def _as_pcm(self, samples: NDArray[np.int16] | bytes) -> NDArray[np.int16]:
        if isinstance(samples, bytes | bytearray | memoryview):
            data = self._odd_byte + bytes(samples)
            # A chunk may end half-way through a sample; keep that byte for the next one.
            cut = len(data) & ~1
            self._odd_byte = data[cut:]
            return np.frombuffer(data[:cut], dtype="<i2").astype(np.int16, copy=False)
        if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
            raise TypeError("feed() takes a numpy int16 array or bytes of int16 samples")
        if samples.ndim != 1:
            raise ValueError("feed() takes mono audio: a one-dimensional array")
        return samples

    def _quiet(self, span: int) -> bool:
        """Whether the first ``span`` buffered samples are too quiet for any block in them to
        hold a tone: then the spectra need not be computed (most of a call is quiet, and this
        runs on every frame of every call).

        A bin's power is at most 4x a block's mean square (Cauchy-Schwarz over a basis of
        magnitude <= 1), and a tone needs a bin of at least the minimum level after the largest
        tuning boost; so a span whose whole energy is below that, spread over one block, is
        safe to skip.
        """
        head = self._buf[:span]
        if float(np.dot(head, head)) * 4.0 * self._max_boost >= self._min_amp2 * self._block:
            return False
        # the skipped blocks' spectra are not kept: blocks after them wait for fresh history
        # before a tone can pass, as after any gap
        self._history_len = 0
        return True

    def _classify(self, frames: NDArray[np.float32]) -> NDArray[np.intp] | None:
        """Per block, the index into DIGITS of the key it holds or -1; None if no block does."""
        count, n = frames.shape
        k = self._nfreq
        spectrum = frames @ self._basis
        windowed = spectrum[:, 2 * k : 2 * k + 16]
        earlier = np.concatenate((self._history, windowed))
        self._history = earlier[-_PHASE_LAG:].copy()
        earlier = earlier[:count]
        unpaired = _PHASE_LAG - self._history_len  # blocks with no earlier one to compare
        self._history_len = min(_PHASE_LAG, self._history_len + count)

        power = (spectrum[:, :k] ** 2 + spectrum[:, k : 2 * k] ** 2) * self._power_scale
        rows, cols = power[:, 0:4], power[:, 4:8]
        best_row, best_col = rows.max(axis=1), cols.max(axis=1)
        dc = spectrum[:, -1]
        # Mean square less the DC, so an offset in the source does not hide a tone.
        mean_square = (np.einsum("ij,ij->i", frames, frames) - dc * dc / n) / n
        # Most audio fails even with the most that tuning could add to its tones: it is done
        # with here, at a fraction of the cost of the full checks.
        boost = self._max_boost
        maybe = (best_row + best_col) * boost >= 2.0 * self._tone_fraction * mean_square
        maybe &= np.minimum(best_row, best_col) * boost >= self._min_amp2
        maybe[:unpaired] = False
        if not maybe.any():
            return None

        index = np.arange(count)
        row_at, col_at = rows.argmax(axis=1), cols.argmax(axis=1) + 4
        now = windowed[:, :8] - 1j * windowed[:, 8:]
        before = earlier[:, :8] - 1j * earlier[:, 8:]
        turned = np.angle(now[index, row_at] * np.conj(before[index, row_at]))
        row_error = _wrap(turned - self._turn[row_at]) * self._per_radian[row_at]
        turned = np.angle(now[index, col_at] * np.conj(before[index, col_at]))
        col_error = _wrap(turned - self._turn[col_at]) * self._per_radian[col_at]
        error = self._max_error
        row = best_row / np.sinc(np.clip(row_error, -error, error) * self._sinc_scale[row_at]) ** 2
        col = best_col / np.sinc(np.clip(col_error, -error, error) * self._sinc_scale[col_at]) ** 2

        ranked_rows, ranked_cols = np.sort(rows, axis=1), np.sort(cols, axis=1)
        ok = maybe & (np.abs(row_error) <= error) & (np.abs(col_error) <= error)
        ok &= (row >= self._min_amp2) & (col >= self._min_amp2)
        ok &= row >= ranked_rows[:, -2] * self._peak_ratio
        ok &= col >= ranked_cols[:, -2] * self._peak_ratio
        ok &= row <= col * self._normal_twist
        ok &= col <= row * self._reverse_twist
        # Two sines of amplitudes a and b have a mean square of (a^2 + b^2) / 2.
        ok &= row + col >= 2.0 * self._tone_fraction * mean_square
        ok &= power[index, col_at + 4] <= col * self._harmonic_ratio
        return np.where(ok, row_at * 4 + col_at - 4, -1)

    def _track(self, key: int, start: int, end: int) -> DtmfDigit | None:
        """Advance the press state machine by one block; return a digit if one just ended."""
        if self._cur >= 0 and key == self._cur:
            self._cur_end = end
            self._misses = 0
            if end - self._cur_start >= self._min_span:
                self._confirmed = True
            return None
        ended: DtmfDigit | None = None
        if self._cur >= 0:
            if self._confirmed:
                self._misses += 1
                if self._misses < self._gap_misses:
                    # A drop-out or a stray block: the press may still go on.
                    return None
                ended = DtmfDigit(
                    DIGITS[self._cur],
                    self._cur_start / self.sample_rate,
                    self._cur_end / self.sample_rate,
                )
            # A tone not yet long enough has to be unbroken: any break starts the count again.
            self._cur = -1
            self._confirmed = False
            self._misses = 0
        if key >= 0:
            self._cur = key
            self._cur_start = start
            self._cur_end = end
            self._confirmed = end - start >= self._min_span
        return ended


def dtmf_tones(
    digits: str,
    sample_rate: int,
    *,
    tone_ms: float = 100.0,
    gap_ms: float = 60.0,
    amplitude: float = 0.3,
) -> NDArray[np.int16]:
    """Keypad audio for ``digits`` (0-9, *, #, A-D): each key's tone, then ``gap_ms`` of silence.

    ``amplitude`` is the peak of each of the two tones as a fraction of full scale, so together
    they peak at twice that.
    """
    if not 0.0 <= amplitude <= 0.5:
        raise ValueError("amplitude must be between 0 and 0.5, so the two tones cannot clip")
    try:
        pairs = [_KEY_FREQS[d] for d in digits.upper()]
    except KeyError as exc:
        raise ValueError(f"not a DTMF digit: {exc.args[0]!r}") from None
    t = np.arange(round(tone_ms * sample_rate / 1000.0)) / sample_rate
    gap = np.zeros(round(gap_ms * sample_rate / 1000.0))
    pieces: list[NDArray[np.float64]] = []
    for row, col in pairs:
        pieces.append(amplitude * (np.sin(2 * np.pi * row * t) + np.sin(2 * np.pi * col * t)))
        pieces.append(gap)
    if not pieces:
        return np.zeros(0, dtype=np.int16)
    return np.round(np.concatenate(pieces) * 32767.0).astype(np.int16)


def _db_to_power(db: float) -> float:
    return float(10.0 ** (db / 10.0))


def _wrap(radians: NDArray[np.float64]) -> NDArray[np.float64]:
    """The same angles in [-pi, pi)."""
    return (radians + np.pi) % (2.0 * np.pi) - np.pi
