"""The TTS plugins on real audio: espeak-ng for real, Edge against a local fake of its service.

Microsoft's endpoint is out of reach here, so ``FakeEdge`` speaks the read-aloud websocket
protocol as the real service does (text frames with ``Path:turn.start`` / ``audio.metadata`` /
``turn.end``, binary frames with a 2-byte header length, headers, and MP3) and ``edge_tts`` is
pointed at it through the URL constant its ``communicate`` module reads. The MP3 is encoded at
test time with PyAV in Edge's own format (MPEG-2 layer III, 24 kHz mono, 48 kbit/s CBR).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import av
import edge_tts.communicate
import numpy as np
import pytest
from edge_tts.constants import TRUSTED_CLIENT_TOKEN
from edge_tts.drm import DRM
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
    tts,
)
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.speech.streaming import collect, duration_of, rms, samples_of
from voicebot.speech.tts import EdgeTTS, EspeakTTS
from voicebot.speech.tts.espeak import (
    EspeakError,
    EspeakNotFoundError,
    _WavReader,
    binary_available,
    espeak_pitch,
    espeak_rate,
    espeak_voice_for,
)

NO_RETRY = APIConnectOptions(max_retry=0, timeout=5)
SENTENCE = "Thank you for calling, how can I help you with your account today?"  # 13 words
LONG_TEXT = " ".join(
    ["Your balance is one hundred and twelve pounds, due on the fourth of next month."] * 60
)

needs_espeak = pytest.mark.skipif(not binary_available(), reason="espeak-ng is not installed")


# ---------------------------------------------------------------------------------------------
# audio helpers


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def median_f0(samples: np.ndarray, rate: int) -> float:
    """Median pitch of the voiced 40 ms windows, by autocorrelation (60-350 Hz)."""
    window = int(0.04 * rate)
    pitches = []
    for i in range(0, len(samples) - window, window):
        seg = samples[i : i + window] - samples[i : i + window].mean()
        if rms(seg) < 1500:
            continue
        ac = np.correlate(seg, seg, "full")[window - 1 :]
        lo, hi = rate // 350, rate // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            pitches.append(rate / lag)
    assert len(pitches) > 10, "too few voiced windows to measure pitch"
    return float(np.median(pitches))


def espeak_children() -> set[int]:
    """espeak-ng processes whose parent is this test process, zombies included."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited while we looked
        comm = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and comm == "espeak-ng":
            found.add(int(stat.parent.name))
    return found


# ---------------------------------------------------------------------------------------------
# espeak-ng: the mapping tables


@pytest.mark.parametrize(
    ("name", "language", "expected"),
    [
        ("en-US-AriaNeural", None, "en-us"),
        ("en-US-EmmaMultilingualNeural", None, "en-us"),
        ("en-GB-SoniaNeural", None, "en-gb"),
        ("en-AU-NatashaNeural", None, "en-gb"),
        ("en-IE-EmilyNeural", None, "en-gb"),
        ("en-CA-ClaraNeural", None, "en-us"),
        ("Microsoft Server Speech Text to Speech Voice (fr-FR, DeniseNeural)", None, "fr"),
        ("fr-FR-DeniseNeural", None, "fr"),
        ("fr-CA-SylvieNeural", None, "fr"),
        ("fr-BE-CharlineNeural", None, "fr-be"),
        ("de-DE-KatjaNeural", None, "de"),
        ("es-ES-ElviraNeural", None, "es"),
        ("es-MX-DaliaNeural", None, "es-419"),
        ("pt-BR-FranciscaNeural", None, "pt-br"),
        ("pt-PT-RaquelNeural", None, "pt"),
        ("zh-CN-XiaoxiaoNeural", None, "cmn"),
        ("zh-CN-liaoning-XiaobeiNeural", None, "cmn"),
        ("zh-HK-HiuGaaiNeural", None, "yue"),
        ("nb-NO-PernilleNeural", None, "nb"),
        ("en-gb-x-rp", None, "en-gb-x-rp"),  # an espeak voice passes through
        (None, "en-US", "en-us"),
        (None, "en_GB", "en-gb"),
        (None, "fr-FR", "fr"),
        (None, "it", "it"),
        (None, "en", "en-us"),
        ("AriaNeural", "en-GB", "en-gb"),  # no locale in the name: the language decides
        ("en-GB-SoniaNeural", "fr-FR", "en-gb"),  # the voice is more specific
        ("fil-PH-BlessicaNeural", None, "en-us"),  # espeak has no Filipino
        ("xx-YY-NobodyNeural", "zz", "en-us"),
        ("", None, "en-us"),
        (None, None, "en-us"),
    ],
)
def test_espeak_voice_mapping(name: str | None, language: str | None, expected: str) -> None:
    assert espeak_voice_for(name, language) == expected


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (None, 165),
        ("+0%", 165),
        ("default", 165),
        ("+10%", 182),
        ("-20%", 132),
        ("+100%", 330),
        ("-90%", 80),  # espeak's slowest
        ("+300%", 450),  # and fastest
        (200, 200),
        (1000, 450),
    ],
)
def test_espeak_rate_mapping(rate: str | int | None, expected: int) -> None:
    assert espeak_rate(rate) == expected


@pytest.mark.parametrize(
    ("pitch", "expected"),
    [
        (None, 50),
        ("+0Hz", 50),
        ("+12Hz", 60),
        ("-6Hz", 45),
        ("+10%", 59),  # 10% of ~105 Hz
        ("+500Hz", 99),
        ("-500Hz", 0),
        (70, 70),
    ],
)
def test_espeak_pitch_mapping(pitch: str | int | None, expected: int) -> None:
    assert espeak_pitch(pitch) == expected


@pytest.mark.parametrize("bad", ["fast", "10", "+10Hz"])
def test_espeak_rate_rejects_non_percentages(bad: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        espeak_rate(bad)


def test_espeak_pitch_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="pitch"):
        espeak_pitch("high")


def test_from_voice_name_carries_language_rate_and_pitch() -> None:
    voice = EspeakTTS.from_voice_name("en-GB-SoniaNeural", "en-US", rate="+10%", pitch="-6Hz")
    assert (voice.voice, voice.rate, voice.pitch) == ("en-gb", 182, 45)
    assert EspeakTTS.from_voice_name(None, "de-DE").voice == "de"


def test_espeak_rejects_option_like_voice_and_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="voice"):
        EspeakTTS(voice="--help")
    with pytest.raises(ValueError, match="rate"):
        EspeakTTS(rate=20)
    with pytest.raises(ValueError, match="pitch"):
        EspeakTTS(pitch=100)


# ---------------------------------------------------------------------------------------------
# espeak-ng: the WAV stream


def wav_header(rate: int, *, size: int = 0xFFFFFFFF, extra_chunk: bool = False) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    header = b"RIFF" + struct.pack("<I", size) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    if extra_chunk:
        header += b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # odd size, padded
    return header + b"data" + struct.pack("<I", size)


@needs_espeak
def test_wav_reader_takes_real_espeak_output_byte_by_byte() -> None:
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "hello there"], capture_output=True, check=True
    ).stdout
    # espeak cannot seek on a pipe, so its sizes are placeholders, not the real lengths
    assert struct.unpack_from("<I", wav, 40)[0] != len(wav) - 44

    reader = _WavReader()
    pcm = b"".join(reader.feed(wav[i : i + 1]) for i in range(len(wav)))
    assert reader.sample_rate == 22050
    assert pcm == wav[44:]


def test_wav_reader_skips_other_chunks_and_ignores_unknown_sizes() -> None:
    reader = _WavReader()
    pcm = b"\x01\x02" * 100
    data = wav_header(16000, extra_chunk=True) + pcm
    assert reader.feed(data[:30]) == b""
    assert reader.feed(data[30:]) == pcm
    assert reader.feed(b"\x03\x04") == b"\x03\x04"
    assert reader.sample_rate == 16000


def test_wav_reader_rejects_non_wav() -> None:
    with pytest.raises(EspeakError, match="not WAV"):
        _WavReader().feed(b"ID3\x04" + b"\0" * 20)


# ---------------------------------------------------------------------------------------------
# espeak-ng: synthesis


@needs_espeak
async def test_espeak_speaks_a_sentence() -> None:
    voice = EspeakTTS()
    frames, _, _ = await collect(voice.synthesize(SENTENCE, conn_options=NO_RETRY))

    assert {f.sample_rate for f in frames} == {22050}
    assert {f.num_channels for f in frames} == {1}
    # 13 words at 165 wpm is about 4.7 s of speech; espeak is a little quicker than its wpm
    assert 2.5 < duration_of(frames) < 6.5
    samples = samples_of(frames)
    assert rms(samples) > 1000  # speech, not silence (full scale is 32767)
    assert np.abs(samples).max() > 8000


@needs_espeak
async def test_espeak_duration_follows_text_length_and_rate() -> None:
    voice = EspeakTTS()
    one, _, _ = await collect(voice.synthesize(SENTENCE, conn_options=NO_RETRY))
    three, _, _ = await collect(voice.synthesize(" ".join([SENTENCE] * 3), conn_options=NO_RETRY))
    assert 2.4 < duration_of(three) / duration_of(one) < 3.6

    slow, _, _ = await collect(EspeakTTS(rate=100).synthesize(SENTENCE, conn_options=NO_RETRY))
    fast, _, _ = await collect(EspeakTTS(rate=300).synthesize(SENTENCE, conn_options=NO_RETRY))
    assert duration_of(slow) > 2 * duration_of(fast)


@needs_espeak
async def test_espeak_pitch_option_moves_the_voice() -> None:
    low, _, _ = await collect(EspeakTTS(pitch=20).synthesize(SENTENCE, conn_options=NO_RETRY))
    high, _, _ = await collect(EspeakTTS(pitch=80).synthesize(SENTENCE, conn_options=NO_RETRY))
    assert median_f0(samples_of(high), 22050) > 1.3 * median_f0(samples_of(low), 22050)


@needs_espeak
async def test_espeak_first_audio_arrives_while_synthesis_goes_on() -> None:
    voice = EspeakTTS()
    # warm the page cache for the binary and its voice data, as a running bot would have it
    await collect(voice.synthesize("Hello.", conn_options=NO_RETRY))

    frames, first, end = await collect(voice.synthesize(LONG_TEXT, conn_options=NO_RETRY))
    assert duration_of(frames) > 200  # minutes of speech, so synthesis itself takes a while
    assert first < 0.25 * end, f"first frame after {first:.3f}s of {end:.3f}s"

    _, first_short, end_short = await collect(voice.synthesize(SENTENCE, conn_options=NO_RETRY))
    print(
        f"espeak time to first audio, 13 words: {first_short * 1000:.1f} ms (end {end_short * 1000:.1f} ms)"
    )
    assert first_short < 0.5


@needs_espeak
async def test_espeak_closing_mid_stream_kills_the_process() -> None:
    assert not espeak_children()
    stream = EspeakTTS().synthesize(" ".join([LONG_TEXT] * 4), conn_options=NO_RETRY)
    try:
        await stream.__anext__()
        running = espeak_children()
        assert running, "espeak-ng should still be synthesising the long text"
    finally:
        await stream.aclose()
    assert not espeak_children(), "espeak-ng was left running (or unreaped) after close"


@needs_espeak
async def test_espeak_reads_text_not_options() -> None:
    # text goes in on stdin: as an argument, "--help" would make espeak print its usage
    frames, _, _ = await collect(EspeakTTS().synthesize("--help -v xx", conn_options=NO_RETRY))
    assert duration_of(frames) > 0.5
    assert rms(samples_of(frames)) > 1000


@needs_espeak
async def test_espeak_speaks_non_ascii_text() -> None:
    voice = EspeakTTS.from_voice_name("fr-FR-DeniseNeural")
    text = "Ça coûte quarante-deux euros, déjà payés."
    frames, _, _ = await collect(voice.synthesize(text, conn_options=NO_RETRY))
    assert 1.5 < duration_of(frames) < 5
    assert rms(samples_of(frames)) > 1000


@needs_espeak
async def test_espeak_unknown_voice_is_an_api_error() -> None:
    voice = EspeakTTS(voice="xx-nope")
    with pytest.raises(EspeakError, match="xx-nope") as caught:
        await collect(voice.synthesize(SENTENCE, conn_options=NO_RETRY))
    assert caught.value.retryable is False
    assert not espeak_children()


async def test_espeak_missing_binary_names_the_apt_package(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "no-such-espeak")
    assert not binary_available(missing)
    voice = EspeakTTS(binary=missing)
    errors: list[tts.TTSError] = []
    voice.on("error", errors.append)

    with caplog.at_level(logging.WARNING, logger="voicebot.speech.tts"):
        voice.prewarm()
    assert "espeak-ng binary not found" in caplog.text

    with pytest.raises(EspeakNotFoundError) as caught:
        await collect(voice.synthesize(SENTENCE))  # default retries: it must not retry
    assert isinstance(caught.value, APIError)
    assert "apt-get install espeak-ng" in str(caught.value)
    assert missing in str(caught.value)
    assert caught.value.retryable is False
    assert [e.recoverable for e in errors] == [False]


FAKE_ESPEAK = """#!{python}
# Writes a WAV the way a streaming writer does (unknown sizes, an extra chunk), in small pieces.
import math, struct, sys

rate = {rate}
sys.stdin.buffer.read()
header = {header!r}
pcm = b"".join(
    struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(rate)
)
data = header + pcm
for i in range(0, len(data), 999):
    sys.stdout.buffer.write(data[i : i + 999])
    sys.stdout.buffer.flush()
"""


async def test_espeak_hung_process_times_out_and_is_killed(tmp_path: Path) -> None:
    binary = tmp_path / "espeak-ng"
    binary.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    binary.chmod(0o755)
    start = time.perf_counter()
    with pytest.raises(APITimeoutError):
        await collect(
            EspeakTTS(binary=str(binary)).synthesize(
                "anything", conn_options=APIConnectOptions(max_retry=0, timeout=1)
            )
        )
    assert time.perf_counter() - start < 3
    assert not espeak_children()


async def test_espeak_resamples_a_voice_at_another_rate(tmp_path: Path) -> None:
    # MBROLA voices render at 16 kHz; the TTS declares 22.05 kHz, so that is what must come out
    binary = tmp_path / "espeak-ng"
    binary.write_text(
        FAKE_ESPEAK.format(
            python=sys.executable, rate=16000, header=wav_header(16000, extra_chunk=True)
        )
    )
    binary.chmod(0o755)

    frames, _, _ = await collect(
        EspeakTTS(binary=str(binary)).synthesize("anything", conn_options=NO_RETRY)
    )
    assert {f.sample_rate for f in frames} == {22050}
    assert duration_of(frames) == pytest.approx(1.0, abs=0.02)
    assert dominant_hz(samples_of(frames), 22050) == pytest.approx(440, abs=3)


# ---------------------------------------------------------------------------------------------
# Edge: a local fake of the read-aloud service


def make_mp3(seconds: float, hz: float = 440.0, rate: int = 24000) -> bytes:
    """A sine as Edge's "audio-24khz-48kbitrate-mono-mp3": bare MPEG frames, no ID3/Xing."""
    buf = io.BytesIO()
    options = {"id3v2_version": "0", "write_xing": "0"}
    with av.open(buf, "w", format="mp3", options=options) as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = 48000
        t = np.arange(int(seconds * rate)) / rate
        pcm = (np.sin(2 * np.pi * hz * t) * 0.5 * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


# What a whole-file decode makes of the bytes (1.5 s plus the encoder's delay and padding) is
# the reference; livekit's streaming decoder gives one MPEG-2 frame (576 samples) less, the
# first, which is encoder-delay silence.
MP3_FRAME = 576 / 24000 + 0.001


def decoded_seconds(mp3: bytes) -> float:
    with av.open(io.BytesIO(mp3), mode="r", format="mp3") as container:
        stream = container.streams.audio[0]
        return sum(f.samples for f in container.decode(stream)) / 24000


def headers_and_body(message: str) -> tuple[dict[str, str], str]:
    head, _, body = message.partition("\r\n\r\n")
    headers = dict(line.split(":", 1) for line in head.split("\r\n"))
    return headers, body


class FakeEdge:
    """Answers one SSML request per connection the way speech.platform.bing.com does."""

    def __init__(
        self,
        mp3: bytes,
        *,
        words: Sequence[tuple[str, float, float]] = (),
        chunk_size: int = 1000,
        close_after_chunks: int | None = None,
        stall_after_turn_start: bool = False,
        reject: HTTPStatus | None = None,
    ) -> None:
        self.mp3 = mp3
        self.words = list(words)
        self.chunk_size = chunk_size
        self.close_after_chunks = close_after_chunks
        self.stall_after_turn_start = stall_after_turn_start
        self.reject = reject
        self.paths: list[str] = []
        self.messages: list[str] = []
        self.connections: list[ServerConnection] = []
        # set by a test to hold the rest of the audio back until it has heard the first part
        self.hold_half: asyncio.Event | None = None

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.paths.append(request.path)
        if self.reject is not None:
            return connection.respond(self.reject, f"{self.reject.phrase}\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        with contextlib.suppress(ConnectionClosed):
            await self._speak(ws)

    async def _speak(self, ws: ServerConnection) -> None:
        config = await ws.recv()
        ssml = await ws.recv()
        assert isinstance(config, str) and isinstance(ssml, str)
        self.messages += [config, ssml]
        request_id = headers_and_body(ssml)[0]["X-RequestId"]
        stream_id = uuid.uuid4().hex.upper()

        def text(path: str, body: dict[str, Any]) -> str:
            return (
                f"X-RequestId:{request_id}\r\n"
                "Content-Type:application/json; charset=utf-8\r\n"
                f"Path:{path}\r\n\r\n{json.dumps(body)}"
            )

        def audio(data: bytes) -> bytes:
            content_type = "Content-Type:audio/mpeg\r\n" if data else ""
            headers = (
                f"X-RequestId:{request_id}\r\n{content_type}"
                f"X-StreamId:{stream_id}\r\nPath:audio\r\n"
            ).encode()
            return len(headers).to_bytes(2, "big") + headers + data

        await ws.send(text("turn.start", {"context": {"serviceTag": stream_id}}))
        if self.stall_after_turn_start:
            await ws.wait_closed()
            return
        await ws.send(
            text(
                "response",
                {
                    "context": {"serviceTag": stream_id},
                    "audio": {"type": "inline", "streamId": stream_id},
                },
            )
        )

        chunks = [
            self.mp3[i : i + self.chunk_size] for i in range(0, len(self.mp3), self.chunk_size)
        ]
        for i, chunk in enumerate(chunks):
            if i == self.close_after_chunks:
                await ws.close()
                return
            if i == len(chunks) // 2 and self.hold_half is not None:
                released = asyncio.ensure_future(self.hold_half.wait())
                hung_up = asyncio.ensure_future(ws.wait_closed())
                await asyncio.wait({released, hung_up}, timeout=10, return_when="FIRST_COMPLETED")
                released.cancel()
                hung_up.cancel()
                if not self.hold_half.is_set():
                    return
            for word, start, length in self.words:
                # a word's boundary comes with the audio it falls in (48 kbit/s: 6000 bytes/s)
                if i * self.chunk_size <= start * 6000 < (i + 1) * self.chunk_size:
                    boundary = {
                        "Type": "WordBoundary",
                        "Data": {
                            "Offset": round(start * 10_000_000),
                            "Duration": round(length * 10_000_000),
                            "text": {
                                "Text": word,
                                "Length": len(word),
                                "BoundaryType": "WordBoundary",
                            },
                        },
                    }
                    await ws.send(text("audio.metadata", {"Metadata": [boundary]}))
            await ws.send(audio(chunk))
        await ws.send(audio(b""))  # the service's end-of-audio marker
        await ws.send(text("turn.end", {}))
        await ws.wait_closed()  # the client hangs up once it has the turn


EdgeFactory = Callable[..., Awaitable[FakeEdge]]


@pytest.fixture
async def fake_edge(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EdgeFactory]:
    """Starts a FakeEdge on 127.0.0.1 and points edge_tts at it."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    # a 403 makes edge_tts correct this class-wide clock skew from the server's Date header
    monkeypatch.setattr(DRM, "clock_skew_seconds", DRM.clock_skew_seconds)
    servers = []

    async def start(mp3: bytes, **kwargs: Any) -> FakeEdge:
        fake = FakeEdge(mp3, **kwargs)
        server = await serve(
            fake.handler, "127.0.0.1", 0, process_request=fake.process_request
        ).__aenter__()
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setattr(
            edge_tts.communicate,
            "WSS_URL",
            f"ws://127.0.0.1:{port}/consumer/speech/synthesize/readaloud/edge/v1"
            f"?TrustedClientToken={TRUSTED_CLIENT_TOKEN}",
        )
        return fake

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def sine_mp3() -> bytes:
    return make_mp3(1.5)


async def test_edge_decodes_the_streamed_mp3(fake_edge: EdgeFactory, sine_mp3: bytes) -> None:
    fake = await fake_edge(sine_mp3)
    voice = EdgeTTS(voice="en-GB-SoniaNeural", rate="+10%", pitch="-5Hz", volume="+20%")
    frames, _, _ = await collect(voice.synthesize("Fish & chips <now>", conn_options=NO_RETRY))

    assert {f.sample_rate for f in frames} == {24000}
    assert {f.num_channels for f in frames} == {1}
    assert duration_of(frames) == pytest.approx(decoded_seconds(sine_mp3), abs=MP3_FRAME)
    samples = samples_of(frames)
    assert dominant_hz(samples, 24000) == pytest.approx(440, abs=3)
    assert rms(samples) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.15)

    # what the service was asked for
    assert fake.paths[0].startswith("/consumer/speech/synthesize/readaloud/edge/v1?")
    for parameter in ("TrustedClientToken=", "ConnectionId=", "Sec-MS-GEC=", "Sec-MS-GEC-Version="):
        assert parameter in fake.paths[0]
    config, ssml = fake.messages
    assert "Path:speech.config" in config
    assert '"outputFormat":"audio-24khz-48kbitrate-mono-mp3"' in config
    assert (
        "<voice name='Microsoft Server Speech Text to Speech Voice (en-GB, SoniaNeural)'>" in ssml
    )
    assert "<prosody pitch='-5Hz' rate='+10%' volume='+20%'>" in ssml
    assert "Fish &amp; chips &lt;now&gt;" in ssml


async def test_edge_plays_audio_before_the_service_has_finished(
    fake_edge: EdgeFactory, sine_mp3: bytes
) -> None:
    fake = await fake_edge(sine_mp3)
    fake.hold_half = asyncio.Event()
    stream = EdgeTTS().synthesize("Hello there.", conn_options=NO_RETRY)
    try:
        # the service holds back the second half until a frame of the first has been heard
        first = await asyncio.wait_for(stream.__anext__(), 5)
        assert first.frame.sample_rate == 24000
        fake.hold_half.set()
        rest = [ev.frame async for ev in stream]
    finally:
        await stream.aclose()
    assert duration_of([first.frame, *rest]) == pytest.approx(
        decoded_seconds(sine_mp3), abs=MP3_FRAME
    )


async def test_edge_closing_mid_stream_hangs_up(fake_edge: EdgeFactory, sine_mp3: bytes) -> None:
    fake = await fake_edge(sine_mp3)
    fake.hold_half = asyncio.Event()  # never set: the service is still "speaking"
    stream = EdgeTTS().synthesize("Hello there.", conn_options=NO_RETRY)
    try:
        await asyncio.wait_for(stream.__anext__(), 5)
    finally:
        await stream.aclose()
    await asyncio.wait_for(fake.connections[0].wait_closed(), 2)


async def test_edge_word_timestamps(fake_edge: EdgeFactory, sine_mp3: bytes) -> None:
    words = [("Hello", 0.1, 0.4), ("there", 0.6, 0.5)]
    fake = await fake_edge(sine_mp3, words=words)
    voice = EdgeTTS(word_timestamps=True)
    assert voice.capabilities.aligned_transcript

    timed = []
    async with voice.synthesize("Hello there", conn_options=NO_RETRY) as stream:
        async for ev in stream:
            timed += ev.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])
    assert [(str(w), w.start_time, w.end_time) for w in timed] == [
        ("Hello ", pytest.approx(0.1), pytest.approx(0.5)),
        ("there ", pytest.approx(0.6), pytest.approx(1.1)),
    ]
    assert '"wordBoundaryEnabled":"true"' in fake.messages[0]


async def test_edge_close_before_any_audio_is_a_connection_error(
    fake_edge: EdgeFactory, sine_mp3: bytes
) -> None:
    await fake_edge(sine_mp3, close_after_chunks=0)
    with pytest.raises(APIConnectionError, match="without audio"):
        await collect(EdgeTTS().synthesize("Hello.", conn_options=NO_RETRY))


async def test_edge_close_mid_speech_is_a_connection_error(
    fake_edge: EdgeFactory, sine_mp3: bytes
) -> None:
    # edge_tts itself ends quietly here, as if the sentence were complete
    await fake_edge(sine_mp3, close_after_chunks=4)
    with pytest.raises(APIConnectionError, match="before the end"):
        await collect(EdgeTTS().synthesize("Hello.", conn_options=NO_RETRY))


async def test_edge_refused_connection_is_a_connection_error(
    fake_edge: EdgeFactory, sine_mp3: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fake_edge(sine_mp3)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"ws://127.0.0.1:{port}/edge/v1?x=1")
    with pytest.raises(APIConnectionError) as caught:
        await collect(EdgeTTS().synthesize("Hello.", conn_options=NO_RETRY))
    assert caught.value.retryable
    assert "ConnectionRefusedError" in str(caught.value)


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (403, False), (503, True)])
async def test_edge_rejected_handshake_is_a_status_error(
    fake_edge: EdgeFactory, sine_mp3: bytes, status: int, retryable: bool
) -> None:
    fake = await fake_edge(sine_mp3, reject=HTTPStatus(status))
    with pytest.raises(APIStatusError) as caught:
        await collect(EdgeTTS().synthesize("Hello.", conn_options=NO_RETRY))
    assert caught.value.status_code == status
    assert caught.value.retryable is retryable
    # edge_tts retries a 403 once, after correcting its clock from the Date header
    assert len(fake.paths) == (2 if status == 403 else 1)


async def test_edge_stalled_service_times_out(fake_edge: EdgeFactory, sine_mp3: bytes) -> None:
    await fake_edge(sine_mp3, stall_after_turn_start=True)
    start = time.perf_counter()
    with pytest.raises(APITimeoutError):
        await collect(EdgeTTS(receive_timeout=1).synthesize("Hello.", conn_options=NO_RETRY))
    assert time.perf_counter() - start < 3


def test_edge_rejects_bad_options_at_construction() -> None:
    with pytest.raises(ValueError, match="rate"):
        EdgeTTS(rate="fast")
    with pytest.raises(ValueError, match="pitch"):
        EdgeTTS(pitch="+5%")
    with pytest.raises(ValueError, match="voice"):
        EdgeTTS(voice="Aria")
    voice = EdgeTTS()
    with pytest.raises(ValueError, match="volume"):
        voice.update_options(volume="loud")
    assert voice.sample_rate == 24000 and voice.voice == "en-US-AriaNeural"


@needs_espeak
async def test_fallback_from_unreachable_edge_to_espeak(
    fake_edge: EdgeFactory, sine_mp3: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fake_edge(sine_mp3)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"ws://127.0.0.1:{port}/edge/v1?x=1")

    adapter = tts.FallbackAdapter(
        [EdgeTTS(), EspeakTTS.from_voice_name("en-US-AriaNeural")], max_retry_per_tts=0
    )
    try:
        frames, _, _ = await collect(adapter.synthesize(SENTENCE, conn_options=NO_RETRY))
    finally:
        await adapter.aclose()
    assert {f.sample_rate for f in frames} == {24000}  # espeak's audio, resampled to Edge's rate
    assert 2.5 < duration_of(frames) < 6.5
    assert rms(samples_of(frames)) > 1000
