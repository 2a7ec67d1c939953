"""The offline voice: the ``espeak-ng`` binary as a livekit-agents TTS.

A contact-centre bot must keep talking when the network or the cloud voice is gone, so this
plugin needs nothing but a local binary (``apt-get install espeak-ng``). It sounds robotic but
answers in milliseconds: espeak writes a WAV stream to stdout while it synthesises, and the PCM
is handed to livekit as it arrives, so the first audio plays before the sentence is finished.

Cloud voices are configured with Azure/Edge names ("en-US-AriaNeural") and prosody strings
("+10%", "-5Hz"); :meth:`EspeakTTS.from_voice_name` maps those to the nearest espeak settings so
the offline fallback speaks the same language at a similar speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import struct
from dataclasses import dataclass, replace
from typing import Never

from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, APITimeoutError, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.utils import aio, shortuuid

logger = logging.getLogger("voicebot.speech.tts")

DEFAULT_BINARY = "espeak-ng"
APT_PACKAGE = "espeak-ng"
# Every built-in espeak-ng voice renders at this rate; only MBROLA voices differ (16 kHz).
SAMPLE_RATE = 22050
NUM_CHANNELS = 1
DEFAULT_VOICE = "en-us"
# espeak's own default (175 wpm) is brisk for callers on a phone line.
DEFAULT_RATE = 165
DEFAULT_PITCH = 50
# The speeds espeak-ng synthesises without its "sonic" speed-up, in words per minute.
MIN_RATE = 80
MAX_RATE = 450

# Measured on espeak-ng 1.51 (en-us, median F0 of a sentence): pitch 50 sits near 105 Hz and
# each unit around it moves the voice by about 1.2 Hz.
_DEFAULT_PITCH_HZ = 105.0
_HZ_PER_PITCH_UNIT = 1.2

# Small reads keep time-to-first-audio low; espeak itself writes in 4 KiB stdio blocks.
_READ_SIZE = 4096

_VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-]*$")
_PERCENT = re.compile(r"^([+-]?\d+(?:\.\d+)?)%$")
_HERTZ = re.compile(r"^([+-]?\d+(?:\.\d+)?)Hz$", re.IGNORECASE)
_AZURE_LONG_NAME = re.compile(r"^Microsoft Server Speech Text to Speech Voice \(([^,]+),")
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{2}|\d{3}))?(?=$|[-_])")

# Locales whose nearest espeak voice is not simply their language's.
_BY_LOCALE: dict[str, str] = {
    "en-us": "en-us",
    "en-ca": "en-us",
    "en-ph": "en-us",
    # Non-rhotic Commonwealth accents are closer to espeak's British voice than to its American.
    "en-gb": "en-gb",
    "en-ie": "en-gb",
    "en-au": "en-gb",
    "en-nz": "en-gb",
    "en-za": "en-gb",
    "en-in": "en-gb",
    "en-sg": "en-gb",
    "en-hk": "en-gb",
    "en-ke": "en-gb",
    "en-ng": "en-gb",
    "en-tz": "en-gb",
    "en-jm": "en-029",
    "en-tt": "en-029",
    "es-es": "es",
    "fr-be": "fr-be",
    "fr-ch": "fr-ch",
    "pt-br": "pt-br",
    "zh-hk": "yue",
}

# Language subtags whose nearest espeak voice has a different name.
_BY_LANGUAGE: dict[str, str] = {
    "en": "en-us",
    # Latin-American Spanish is the majority of Spanish-speaking callers; Spain is mapped above.
    "es": "es-419",
    "zh": "cmn",
    "wuu": "cmn",
    "no": "nb",
    "nn": "nb",
    "iw": "he",
    "in": "id",
}

# Languages espeak-ng 1.51 ships a voice for under the language subtag itself. Kept as the
# whitespace-separated list `espeak-ng --voices` prints, so it can be compared at a glance.
_ESPEAK_LANGUAGES = frozenset(
    """af am an ar as az ba be bg bn bpy bs ca cmn cs cv cy da de el en eo es et eu fa fi fr ga
    gd gn grc gu hak haw he hi hr ht hu hy hyw ia id io is it ja jbo ka kk kl kn ko kok ku ky la
    lb lfn lt ltg lv mi mk ml mr ms mt my nb nci ne nl nog om or pa pap piqd pl pt py qdb qu quc
    qya ro ru sd shn si sjn sk sl smj sq sr sv sw ta te th tk tn tr tt ug uk ur uz vi yue""".split()  # noqa: SIM905
)

# Regional espeak voice names, accepted as they are (so an espeak name passes through the
# mapping); bare language subtags go through the tables above instead ("en" is en-us here).
_ESPEAK_VOICES = frozenset(
    """en-029 en-gb en-gb-scotland en-gb-x-gbclan en-gb-x-gbcwmd en-gb-x-rp en-us en-us-nyc
    es-419 fr-be fr-ch pt-br cmn-latn-pinyin vi-vn-x-central vi-vn-x-south""".split()  # noqa: SIM905
)


class EspeakNotFoundError(APIError):
    """The ``espeak-ng`` binary is not installed, or not executable where it was looked for."""

    def __init__(self, binary: str) -> None:
        super().__init__(
            f"espeak-ng binary not found or not executable: {binary!r}; install the "
            f"{APT_PACKAGE!r} package (apt-get install {APT_PACKAGE}) or pass binary= its path",
            retryable=False,
        )
        self.binary = binary


class EspeakError(APIError):
    """espeak-ng ran but failed (an unknown voice, output that is not 16-bit PCM WAV)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def binary_available(binary: str = DEFAULT_BINARY) -> bool:
    """Whether ``binary`` (a name on ``PATH`` or a path) is an executable file."""
    return shutil.which(binary) is not None


def espeak_voice_for(name: str | None, language: str | None = None) -> str:
    """The espeak voice nearest to a cloud voice ``name`` or else a ``language`` tag.

    ``name`` may be an Azure/Edge voice ("en-GB-SoniaNeural", "Microsoft Server Speech Text to
    Speech Voice (fr-FR, DeniseNeural)"), a locale ("en-US") or an espeak voice ("en-gb-x-rp").
    Anything unrecognised gives ``"en-us"``.
    """
    for candidate in (name, language):
        if candidate and (voice := _espeak_voice_or_none(candidate.strip())):
            return voice
    return DEFAULT_VOICE


def _espeak_voice_or_none(text: str) -> str | None:
    if text.lower() in _ESPEAK_VOICES:
        return text.lower()
    if long_name := _AZURE_LONG_NAME.match(text):
        text = long_name.group(1).strip()
    match = _LOCALE.match(text)
    if match is None:
        return None
    language = match.group(1).lower()
    region = (match.group(2) or "").lower()
    if region and (voice := _BY_LOCALE.get(f"{language}-{region}")):
        return voice
    if voice := _BY_LANGUAGE.get(language):
        return voice
    return language if language in _ESPEAK_LANGUAGES else None


def espeak_rate(rate: str | int | None, *, base: int = DEFAULT_RATE) -> int:
    """Words per minute for an Edge/SSML relative rate ("+10%", "-25%") or a number of wpm.

    Edge rates are relative to the voice's normal pace, so they scale ``base``. The result is
    clamped to what espeak can speak (80-450 wpm).
    """
    if rate is None:
        return base
    if isinstance(rate, int):
        return _clamp(rate, MIN_RATE, MAX_RATE)
    text = rate.strip()
    if text.lower() in ("", "default", "medium"):
        return base
    match = _PERCENT.match(text)
    if match is None:
        raise ValueError(f"rate {rate!r}: expected a relative percentage such as '+10%'")
    return _clamp(round(base * (1 + float(match.group(1)) / 100)), MIN_RATE, MAX_RATE)


def espeak_pitch(pitch: str | int | None) -> int:
    """espeak pitch (0-99) for an Edge/SSML relative pitch ("+5Hz", "-10%") or a number.

    Edge pitch offsets are in hertz (percentages are read against espeak's own ~105 Hz), and
    converted at espeak's ~1.2 Hz per pitch unit around its default of 50.
    """
    if pitch is None:
        return DEFAULT_PITCH
    if isinstance(pitch, int):
        return _clamp(pitch, 0, 99)
    text = pitch.strip()
    if text.lower() in ("", "default", "medium"):
        return DEFAULT_PITCH
    if match := _HERTZ.match(text):
        hertz = float(match.group(1))
    elif match := _PERCENT.match(text):
        hertz = _DEFAULT_PITCH_HZ * float(match.group(1)) / 100
    else:
        raise ValueError(f"pitch {pitch!r}: expected a relative offset such as '+5Hz' or '-10%'")
    return _clamp(round(DEFAULT_PITCH + hertz / _HZ_PER_PITCH_UNIT), 0, 99)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


@dataclass
class _EspeakOptions:
    voice: str
    rate: int
    pitch: int
    binary: str


class EspeakTTS(tts.TTS[Never]):
    """Offline TTS running ``espeak-ng`` per request; 22.05 kHz mono PCM, not streaming input.

    ``voice`` is an espeak voice name ("en-us", "en-gb", "fr"; ``espeak-ng --voices`` lists
    them), ``rate`` words per minute (80-450), ``pitch`` 0-99 (50 is the voice's normal pitch),
    ``binary`` the program to run (a name looked up on ``PATH``, or a path). A request fails
    with ``APITimeoutError`` if espeak writes nothing for ``conn_options.timeout`` seconds.
    """

    def __init__(
        self,
        *,
        voice: str = DEFAULT_VOICE,
        rate: int = DEFAULT_RATE,
        pitch: int = DEFAULT_PITCH,
        binary: str = DEFAULT_BINARY,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=SAMPLE_RATE,
            num_channels=NUM_CHANNELS,
        )
        self._opts = _EspeakOptions(
            voice=_checked_voice(voice),
            rate=_checked_range("rate", rate, MIN_RATE, MAX_RATE),
            pitch=_checked_range("pitch", pitch, 0, 99),
            binary=binary,
        )

    @classmethod
    def from_voice_name(
        cls,
        name: str | None,
        language: str | None = None,
        *,
        rate: str | int | None = None,
        pitch: str | int | None = None,
        binary: str = DEFAULT_BINARY,
    ) -> EspeakTTS:
        """The offline stand-in for a cloud voice: same language, similar rate and pitch.

        ``name``/``language`` as for :func:`espeak_voice_for`; ``rate``/``pitch`` as Edge
        strings ("+10%", "-5Hz") or espeak numbers.
        """
        return cls(
            voice=espeak_voice_for(name, language),
            rate=espeak_rate(rate),
            pitch=espeak_pitch(pitch),
            binary=binary,
        )

    @property
    def model(self) -> str:
        return self._opts.voice

    @property
    def provider(self) -> str:
        return "espeak-ng"

    @property
    def voice(self) -> str:
        return self._opts.voice

    @property
    def rate(self) -> int:
        return self._opts.rate

    @property
    def pitch(self) -> int:
        return self._opts.pitch

    @property
    def binary(self) -> str:
        return self._opts.binary

    def update_options(
        self,
        *,
        voice: str | None = None,
        rate: int | None = None,
        pitch: int | None = None,
    ) -> None:
        """Change settings for later ``synthesize`` calls (a running one keeps its own)."""
        if voice is not None:
            self._opts.voice = _checked_voice(voice)
        if rate is not None:
            self._opts.rate = _checked_range("rate", rate, MIN_RATE, MAX_RATE)
        if pitch is not None:
            self._opts.pitch = _checked_range("pitch", pitch, 0, 99)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _EspeakStream(espeak=self, input_text=text, conn_options=conn_options)

    def prewarm(self) -> None:
        # A missing binary otherwise only shows on the first fallback, mid-call.
        if not binary_available(self._opts.binary):
            logger.warning(
                "espeak-ng binary not found",
                extra={"binary": self._opts.binary, "apt_package": APT_PACKAGE},
            )


def _checked_voice(voice: str) -> str:
    # Passed as an argument, so a name starting with "-" would be read as an option.
    if not _VOICE_NAME.match(voice):
        raise ValueError(f"invalid espeak voice name {voice!r}")
    return voice


def _checked_range(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is outside {low}-{high}")
    return value


class _EspeakStream(tts.ChunkedStream):
    def __init__(
        self, *, espeak: EspeakTTS, input_text: str, conn_options: APIConnectOptions
    ) -> None:
        super().__init__(tts=espeak, input_text=input_text, conn_options=conn_options)
        self._opts = replace(espeak._opts)

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        request_id = shortuuid()
        if not self.input_text.strip():
            # espeak would write a header and no samples; no need to start it.
            output_emitter.initialize(
                request_id=request_id,
                sample_rate=SAMPLE_RATE,
                num_channels=NUM_CHANNELS,
                mime_type="audio/pcm",
            )
            return

        binary = shutil.which(self._opts.binary)
        if binary is None:
            raise EspeakNotFoundError(self._opts.binary)
        try:
            proc = await asyncio.create_subprocess_exec(
                binary,
                "--stdout",
                # the whole text at once; reading line by line, espeak would speak each line of
                # the text as an utterance of its own
                "--stdin",
                # stated, not guessed: names and amounts may carry accents and currency signs
                "-b",
                "1",
                "-v",
                self._opts.voice,
                "-s",
                str(self._opts.rate),
                "-p",
                str(self._opts.pitch),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise EspeakNotFoundError(self._opts.binary) from e

        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feed_task = asyncio.create_task(_feed(proc.stdin, self.input_text.encode("utf-8")))
        stderr_task = asyncio.create_task(proc.stderr.read())
        try:
            wav = _WavReader()
            sink: _PcmSink | None = None
            while chunk := await _read(proc.stdout, self._conn_options.timeout):
                pcm = wav.feed(chunk)
                if sink is None and wav.sample_rate:
                    output_emitter.initialize(
                        request_id=request_id,
                        sample_rate=SAMPLE_RATE,
                        num_channels=NUM_CHANNELS,
                        mime_type="audio/pcm",
                    )
                    sink = _PcmSink(output_emitter, wav.sample_rate)
                if sink is not None and pcm:
                    sink.push(pcm)

            returncode = await proc.wait()
            stderr = (await stderr_task).decode("utf-8", "replace").strip()
            if returncode != 0:
                raise EspeakError(
                    f"espeak-ng exited with status {returncode}"
                    f" (voice {self._opts.voice!r}): {stderr or 'no message'}"
                )
            if sink is None:
                raise EspeakError(f"espeak-ng wrote no WAV header: {stderr or 'no message'}")
            sink.flush()
            output_emitter.flush()
        finally:
            await _stop(proc, feed_task, stderr_task)


async def _read(stdout: asyncio.StreamReader, silence_limit: float) -> bytes:
    # espeak writes every few milliseconds while it works; silence this long means it hangs,
    # and a hung voice would leave the caller in silence.
    try:
        async with asyncio.timeout(silence_limit):
            return await stdout.read(_READ_SIZE)
    except TimeoutError as e:
        raise APITimeoutError(f"espeak-ng wrote nothing for {silence_limit:g} s") from e


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    # espeak exits early on a bad voice without reading its input; that error is reported from
    # its exit status and stderr, not as a broken pipe here.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
        stdin.close()


async def _stop(proc: asyncio.subprocess.Process, *tasks: asyncio.Task[object]) -> None:
    """Kill espeak if it is still running (a cancelled or failed stream) and reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await aio.cancel_and_wait(*tasks)
    if proc.stdin is not None:
        proc.stdin.close()
    # The request is over only when espeak is gone and reaped, not merely signalled.
    await proc.wait()


class _WavReader:
    """Incremental reader for the WAV stream espeak-ng writes to a pipe.

    espeak cannot seek back on a pipe to fill in the sizes, so the RIFF and data sizes are
    placeholders (0x7ffff000 from 1.51, 0xffffffff from other writers): the data chunk is taken
    to run to the end of the stream and its declared size is ignored.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._riff_seen = False
        self._in_data = False
        self.sample_rate = 0

    def feed(self, data: bytes) -> bytes:
        """The PCM in ``data``; header bytes are consumed, and held while incomplete."""
        if self._in_data:
            return data
        self._buf += data
        if not self._riff_seen:
            if len(self._buf) < 12:
                return b""
            if self._buf[:4] != b"RIFF" or self._buf[8:12] != b"WAVE":
                raise EspeakError(f"espeak-ng output is not WAV: {bytes(self._buf[:12])!r}")
            del self._buf[:12]
            self._riff_seen = True
        while len(self._buf) >= 8:
            chunk_id = bytes(self._buf[:4])
            (size,) = struct.unpack_from("<I", self._buf, 4)
            if chunk_id == b"data":
                if not self.sample_rate:
                    raise EspeakError("espeak-ng WAV has a data chunk before its fmt chunk")
                self._in_data = True
                pcm = bytes(self._buf[8:])
                self._buf.clear()
                return pcm
            padded = size + (size & 1)
            if len(self._buf) < 8 + padded:
                return b""
            if chunk_id == b"fmt ":
                self._read_fmt(bytes(self._buf[8 : 8 + size]))
            del self._buf[: 8 + padded]
        return b""

    def _read_fmt(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise EspeakError("espeak-ng WAV fmt chunk is truncated")
        audio_format, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
        if audio_format != 1 or bits != 16 or channels != 1:
            raise EspeakError(
                f"espeak-ng WAV is not 16-bit mono PCM (format {audio_format},"
                f" {channels} channels, {bits} bits)"
            )
        self.sample_rate = rate


class _PcmSink:
    """Pushes espeak's PCM to the emitter at the rate the TTS declared.

    livekit (and FallbackAdapter's resampling) trusts ``TTS.sample_rate``; an MBROLA voice
    renders at 16 kHz instead, so its audio is resampled rather than mislabelled.
    """

    def __init__(self, emitter: tts.AudioEmitter, sample_rate: int) -> None:
        self._emitter = emitter
        self._sample_rate = sample_rate
        self._resampler = (
            rtc.AudioResampler(
                input_rate=sample_rate, output_rate=SAMPLE_RATE, num_channels=NUM_CHANNELS
            )
            if sample_rate != SAMPLE_RATE
            else None
        )
        self._odd = b""

    def push(self, pcm: bytes) -> None:
        if self._resampler is None:
            self._emitter.push(pcm)
            return
        # Reads split samples anywhere; a frame must hold whole ones.
        data = self._odd + pcm
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        if whole:
            frame = rtc.AudioFrame(
                data=data[:whole],
                sample_rate=self._sample_rate,
                num_channels=NUM_CHANNELS,
                samples_per_channel=whole // 2,
            )
            for out in self._resampler.push(frame):
                self._emitter.push(out.data.tobytes())

    def flush(self) -> None:
        if self._resampler is not None:
            for out in self._resampler.flush():
                self._emitter.push(out.data.tobytes())
