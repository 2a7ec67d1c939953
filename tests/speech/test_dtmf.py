"""The in-band DTMF detector (voicebot.speech.dtmf) on real signals: keypad tones as phones send
them, tones out of specification, noise, and speech synthesised by espeak-ng."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import pytest

from voicebot.speech.dtmf import COL_FREQS, DIGITS, ROW_FREQS, DtmfDetector, DtmfDigit, dtmf_tones

FREQS = {key: (ROW_FREQS[i // 4], COL_FREQS[i % 4]) for i, key in enumerate(DIGITS)}


def tone(
    key: str,
    rate: int,
    ms: float,
    *,
    level: float = 0.2,
    row_db: float = 0.0,
    col_db: float = 0.0,
    row_error: float = 0.0,
    col_error: float = 0.0,
    phase: float = 0.0,
) -> np.ndarray:
    """A key's two tones (float, full scale 1.0): each of peak ``level`` shifted by its dB."""
    row, col = FREQS[key]
    t = np.arange(round(ms * rate / 1000)) / rate
    return level * 10 ** (row_db / 20) * np.sin(
        2 * np.pi * row * (1 + row_error) * t + phase
    ) + level * 10 ** (col_db / 20) * np.sin(2 * np.pi * col * (1 + col_error) * t + 2 * phase)


def gap(rate: int, ms: float) -> np.ndarray:
    return np.zeros(round(ms * rate / 1000))


def pcm(*parts: np.ndarray) -> np.ndarray:
    return np.round(np.concatenate(parts) * 32767).clip(-32768, 32767).astype(np.int16)


def detect(samples: np.ndarray, rate: int, chunk: int | None = None) -> list[DtmfDigit]:
    detector = DtmfDetector(rate)
    size = chunk or len(samples)
    found: list[DtmfDigit] = []
    for i in range(0, len(samples), size):
        found += detector.feed(samples[i : i + size])
    return found + detector.flush()


def keys(found: list[DtmfDigit]) -> str:
    return "".join(d.digit for d in found)


def presses(found: list[DtmfDigit]) -> list[tuple[str, float, float | None]]:
    return [(d.digit, d.start, d.end) for d in found]


def near(seconds: float) -> object:
    """Times are measured to within a few ms of the tone's edges."""
    return pytest.approx(seconds, abs=0.005)


def keypad(digits: str, rate: int, **kwargs: float) -> np.ndarray:
    """Key presses as the simulator makes them, after a little silence."""
    return np.concatenate(
        [np.zeros(rate // 20, dtype=np.int16), dtmf_tones(digits, rate, **kwargs)]
    )


# --- the keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("key", list(DIGITS))
def test_every_key_is_heard_once(key: str, rate: int) -> None:
    found = detect(keypad(key, rate), rate)

    assert presses(found) == [(key, near(0.05), near(0.15))]


@pytest.mark.parametrize(("key", "rate"), [("1", 48000), ("#", 48000), ("D", 48000), ("0", 24000)])
def test_keys_at_other_rates(key: str, rate: int) -> None:
    found = detect(keypad(key, rate), rate)

    assert presses(found) == [(key, near(0.05), near(0.15))]


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 48000])
def test_a_sequence_comes_out_in_order(rate: int) -> None:
    found = detect(keypad("12345678#", rate), rate)

    assert keys(found) == "12345678#"
    # 100 ms tones 60 ms apart, after 50 ms of silence
    for i, digit in enumerate(found):
        assert (digit.start, digit.end) == (near(0.05 + 0.16 * i), near(0.15 + 0.16 * i))


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_key_pressed_again_is_heard_again(rate: int) -> None:
    assert keys(detect(keypad("1122", rate), rate)) == "1122"
    assert keys(detect(keypad("0000", rate, tone_ms=50, gap_ms=40), rate)) == "0000"


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_drop_out_within_a_press_is_bridged_but_a_gap_is_not(rate: int) -> None:
    def pressed(gap_ms: float) -> str:
        audio = pcm(gap(rate, 50), tone("5", rate, 80), gap(rate, gap_ms), tone("5", rate, 80))
        return keys(detect(np.concatenate([audio, np.zeros(rate // 10, np.int16)]), rate))

    assert pressed(10) == "5"  # Q.24: interruptions up to 10 ms are one press
    assert pressed(25) == "55"
    assert pressed(40) == "55"


# --- chunking -------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 333, 160, 4000])
def test_chunk_sizes_do_not_change_the_result(chunk: int) -> None:
    rate = 8000
    audio = keypad("19#*0D", rate, tone_ms=70, gap_ms=45)
    whole = detect(audio, rate)

    assert keys(whole) == "19#*0D"
    assert detect(audio, rate, chunk) == whole


@pytest.mark.parametrize("chunk", [1, 333, 640])
def test_bytes_split_mid_sample_give_the_same_result(chunk: int) -> None:
    rate = 16000
    audio = keypad("4711", rate)
    data = audio.astype("<i2").tobytes()
    detector = DtmfDetector(rate)
    found: list[DtmfDigit] = []
    for i in range(0, len(data), chunk):
        found += detector.feed(data[i : i + chunk])

    assert found == detect(audio, rate)
    assert keys(found) == "4711"


# --- what is not a key press ----------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("offset_ms", [0.0, 1.3, 2.9])
def test_short_tones_are_not_presses(rate: int, offset_ms: float) -> None:
    def heard(ms: float) -> str:
        audio = pcm(gap(rate, 50 + offset_ms), tone("8", rate, ms), gap(rate, 100))
        return keys(detect(audio, rate))

    assert heard(20) == ""
    assert heard(23) == ""  # Q.24: never under 23 ms
    assert heard(40) == "8"  # Q.24: always from 40 ms


@pytest.mark.parametrize("rate", [8000, 16000])
def test_twist_within_limits_is_accepted_and_beyond_them_rejected(rate: int) -> None:
    def heard(row_db: float, col_db: float) -> str:
        audio = pcm(
            gap(rate, 50), tone("6", rate, 100, row_db=row_db, col_db=col_db), gap(rate, 100)
        )
        return keys(detect(audio, rate))

    assert heard(0, -6) == "6"  # column a line's high-frequency loss weaker
    assert heard(0, 3) == "6"  # column pre-emphasised
    assert heard(0, -12) == ""
    assert heard(-12, 0) == ""
    assert heard(-6, 0) == ""  # reverse twist is allowed 4 dB


@pytest.mark.parametrize("rate", [8000, 16000])
def test_single_tones_are_not_keys(rate: int) -> None:
    t = np.arange(rate // 5) / rate
    for freq in (*ROW_FREQS, *COL_FREQS):
        audio = pcm(gap(rate, 50), 0.4 * np.sin(2 * np.pi * freq * t), gap(rate, 100))
        assert detect(audio, rate) == [], freq


@pytest.mark.parametrize("rate", [8000, 16000])
def test_frequencies_off_by_1_5_percent_are_accepted_and_3_5_percent_rejected(rate: int) -> None:
    def heard(error: float) -> str:
        audio = pcm(
            gap(rate, 50),
            tone("9", rate, 100, row_error=error, col_error=-error),
            gap(rate, 100),
        )
        return keys(detect(audio, rate))

    assert heard(0.015) == "9"
    assert heard(-0.015) == "9"
    assert heard(0.035) == ""
    assert heard(-0.035) == ""


def test_quiet_tones_are_ignored() -> None:
    rate = 8000

    def heard(level_db: float) -> str:
        audio = pcm(
            gap(rate, 50), tone("2", rate, 100, level=10 ** (level_db / 20)), gap(rate, 100)
        )
        return keys(detect(audio, rate))

    assert heard(-30) == "2"
    assert heard(-42) == ""


@pytest.mark.parametrize("rate", [8000, 16000])
def test_weakest_tones_after_silence_are_heard_in_call_sized_frames(rate: int) -> None:
    """Quiet stretches skip the spectra; a tone just above the minimum level that starts
    anywhere in a 20 ms frame after them must still be heard."""
    for offset_ms in (0, 3, 7, 13, 19):
        audio = pcm(
            gap(rate, 400 + offset_ms),
            tone("5", rate, 60, level=10 ** (-35 / 20)),
            gap(rate, 200),
        )
        assert keys(detect(audio, rate, chunk=rate // 50)) == "5", offset_ms


def test_a_dc_offset_does_not_hide_a_key() -> None:
    rate = 8000
    audio = np.concatenate([gap(rate, 50), tone("3", rate, 100), gap(rate, 100)]) + 0.2

    assert keys(detect(pcm(audio), rate)) == "3"


@pytest.mark.parametrize("rate", [8000, 16000])
def test_noise_is_not_a_key_but_keys_are_heard_through_it(rate: int) -> None:
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.1, 3 * rate)  # -20 dBFS
    assert detect(pcm(noise), rate) == []

    presses = keypad("159#", rate).astype(np.float64) / 32767
    signal_power = 2 * 0.3**2 / 2  # two sines of peak 0.3
    for snr_db in (20, 15):
        sigma = np.sqrt(signal_power / 10 ** (snr_db / 10))
        noisy = presses + rng.normal(0, sigma, len(presses))
        assert keys(detect(pcm(noisy), rate)) == "159#", snr_db


# --- speech ---------------------------------------------------------------------------------

SENTENCES = [
    "Please enter your account number, one two three four five six seven eight nine zero.",
    "Press one for billing, two for technical support, or hash to hear these options again.",
    "My phone number is oh seven seven double nine, four five six, one two three.",
    "Hello? Hello? Can you hear me? I would like to speak to an agent please.",
    "Aaaaah. Eeeeee. Ooooooh. Mmmmmmm. La la la la la la la.",
]
# Two ordinary voices and, at the top of espeak's pitch range, two that put harmonics near
# keypad frequencies often enough to be the hard case.
VOICES = [("en", "50"), ("en-us", "50"), ("en+f4", "99"), ("en+f1", "99")]
ESPEAK_RATE = 22050


def espeak(text: str, voice: str, pitch: str) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", pitch, "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as audio:
        assert audio.getframerate() == ESPEAK_RATE
        assert audio.getsampwidth() == 2
        return np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2").astype(np.int16)


def resample(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Band-limited resampling by zero-padding or truncating the spectrum."""
    spectrum = np.fft.rfft(samples.astype(np.float64))
    size = round(len(samples) * to / rate)
    out = np.zeros(size // 2 + 1, dtype=complex)
    keep = min(len(out), len(spectrum))
    out[:keep] = spectrum[:keep]
    return np.fft.irfft(out, size) * size / len(samples)


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    return [espeak(text, voice, pitch) for voice, pitch in VOICES for text in SENTENCES]


@needs_espeak
@pytest.mark.parametrize("rate", [ESPEAK_RATE, 8000, 16000])
def test_speech_is_not_taken_for_keys(speech: list[np.ndarray], rate: int) -> None:
    for i, utterance in enumerate(speech):
        samples = utterance
        if rate != ESPEAK_RATE:
            samples = np.round(resample(utterance, ESPEAK_RATE, rate)).clip(-32768, 32767)
        assert detect(samples.astype(np.int16), rate, chunk=rate // 50) == [], VOICES[
            i // len(SENTENCES)
        ]


@needs_espeak
def test_a_key_between_words_is_heard(speech: list[np.ndarray]) -> None:
    rate = 8000
    words = np.round(resample(speech[1], ESPEAK_RATE, rate)).astype(np.int16)
    audio = np.concatenate([words, dtmf_tones("7", rate), words])

    found = detect(audio, rate, chunk=160)

    assert keys(found) == "7"
    assert found[0].start == near(len(words) / rate)


# --- tone_active, flush and reset ---------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000])
def test_tone_active_follows_the_tone(rate: int) -> None:
    frame = rate // 50  # 20 ms
    audio = np.concatenate(
        [np.zeros(5 * frame, np.int16), dtmf_tones("5", rate, tone_ms=200, gap_ms=200)]
    )
    detector = DtmfDetector(rate)
    active = []
    for i in range(0, len(audio), frame):
        detector.feed(audio[i : i + frame])
        active.append(detector.tone_active)

    # frames 0-4 silence, 5-14 the tone, 15-24 silence again
    assert active[:5] == [False] * 5
    assert active[6:15] == [True] * 9  # the first frame of a tone is not yet a full block
    assert active[16:] == [False] * 9


def test_a_short_blip_is_not_a_key_but_is_a_tone() -> None:
    rate = 8000
    detector = DtmfDetector(rate)
    detector.feed(pcm(gap(rate, 50), tone("1", rate, 30)))

    assert detector.tone_active
    assert detector.feed(pcm(gap(rate, 100))) == []
    assert not detector.tone_active


def test_flush_reports_a_key_still_held() -> None:
    rate = 8000
    detector = DtmfDetector(rate)

    assert detector.feed(pcm(gap(rate, 50), tone("0", rate, 200))) == []
    assert presses(detector.flush()) == [("0", near(0.05), None)]
    assert detector.flush() == []


def test_flush_reports_a_key_released_but_not_yet_over() -> None:
    rate = 8000
    detector = DtmfDetector(rate)

    assert detector.feed(pcm(gap(rate, 50), tone("0", rate, 100), gap(rate, 10))) == []
    assert presses(detector.flush()) == [("0", near(0.05), near(0.15))]


def test_flush_forgets_a_tone_too_short_to_be_a_key() -> None:
    rate = 8000
    detector = DtmfDetector(rate)
    detector.feed(pcm(gap(rate, 50), tone("0", rate, 25)))

    assert detector.flush() == []


def test_reset_starts_the_clock_again() -> None:
    rate = 16000
    detector = DtmfDetector(rate)
    assert keys(detector.feed(keypad("12", rate))) == "12"
    detector.feed(pcm(tone("3", rate, 50)))  # half a press, forgotten

    detector.reset()

    assert not detector.tone_active
    found = detector.feed(keypad("4", rate))
    assert presses(found) == [("4", near(0.05), near(0.15))]


# --- arguments ----------------------------------------------------------------------------


def test_bad_input_is_refused() -> None:
    detector = DtmfDetector(8000)
    with pytest.raises(TypeError):
        detector.feed(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError, match="mono"):
        detector.feed(np.zeros((160, 2), dtype=np.int16))
    with pytest.raises(ValueError, match="8000"):
        DtmfDetector(4000)


def test_dtmf_tones_makes_what_it_is_asked_for() -> None:
    audio = dtmf_tones("1a", 8000, tone_ms=50, gap_ms=25, amplitude=0.5)

    assert audio.dtype == np.int16
    assert len(audio) == 2 * (400 + 200)
    assert np.abs(audio).max() <= 32767
    assert not audio[400:600].any()
    assert len(dtmf_tones("", 8000)) == 0
    with pytest.raises(ValueError, match="'E'"):
        dtmf_tones("1E", 8000)
    with pytest.raises(ValueError, match="clip"):
        dtmf_tones("1", 8000, amplitude=0.6)
