"""The online voice: Microsoft Edge's read-aloud neural voices through ``edge_tts``.

Edge's read-aloud service speaks with the Azure neural voices ("en-US-AriaNeural") without an
Azure key. It answers over a websocket with 24 kHz mono MP3 ("audio-24khz-48kbitrate-mono-mp3",
the only format ``edge_tts`` requests), which livekit's AudioEmitter decodes with PyAV as the
bytes arrive, so playback starts long before the sentence is complete.

The service is unofficial and can throttle, change or vanish, so every failure surfaces as a
livekit ``APIError`` (``APIConnectionError``, ``APITimeoutError``, ``APIStatusError``): the
session reports it and a ``FallbackAdapter`` can move on to the offline voice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, replace
from typing import Never

import aiohttp
import edge_tts
from edge_tts.data_classes import TTSConfig
from edge_tts.exceptions import EdgeTTSException, NoAudioReceived, SkewAdjustmentError
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
    tts,
)
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, TimedString
from livekit.agents.utils import shortuuid

SAMPLE_RATE = 24000
NUM_CHANNELS = 1
MIME_TYPE = "audio/mpeg"
DEFAULT_VOICE = "en-US-AriaNeural"
# Edge word offsets and durations are in 100 ns ticks.
_TICKS_PER_SECOND = 10_000_000


@dataclass
class _EdgeOptions:
    voice: str
    rate: str
    pitch: str
    volume: str
    word_timestamps: bool
    receive_timeout: int
    proxy: str | None


class EdgeTTS(tts.TTS[Never]):
    """Online TTS through Microsoft Edge's read-aloud service; 24 kHz mono.

    ``voice`` is an Edge/Azure neural voice name ("en-US-AriaNeural", "en-GB-SoniaNeural");
    ``rate`` and ``volume`` relative percentages ("+10%", "-5%"), ``pitch`` a relative offset in
    hertz ("+5Hz"), all as Edge accepts them. With ``word_timestamps`` the service's word
    boundaries are passed on as an aligned transcript (words only: punctuation is not timed, so
    it is off by default). ``receive_timeout`` is how long the service may stay silent (before
    the first audio, or between chunks), in seconds; ``proxy`` an HTTP proxy URL.
    """

    def __init__(
        self,
        *,
        voice: str = DEFAULT_VOICE,
        rate: str = "+0%",
        pitch: str = "+0Hz",
        volume: str = "+0%",
        word_timestamps: bool = False,
        receive_timeout: int = 10,
        proxy: str | None = None,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False, aligned_transcript=word_timestamps),
            sample_rate=SAMPLE_RATE,
            num_channels=NUM_CHANNELS,
        )
        self._opts = _EdgeOptions(
            voice=voice,
            rate=rate,
            pitch=pitch,
            volume=volume,
            word_timestamps=word_timestamps,
            receive_timeout=receive_timeout,
            proxy=proxy,
        )
        _validate(self._opts)

    @property
    def model(self) -> str:
        return self._opts.voice

    @property
    def provider(self) -> str:
        return "edge-tts"

    @property
    def voice(self) -> str:
        return self._opts.voice

    def update_options(
        self,
        *,
        voice: str | None = None,
        rate: str | None = None,
        pitch: str | None = None,
        volume: str | None = None,
    ) -> None:
        """Change settings for later ``synthesize`` calls (a running one keeps its own)."""
        opts = replace(
            self._opts,
            voice=self._opts.voice if voice is None else voice,
            rate=self._opts.rate if rate is None else rate,
            pitch=self._opts.pitch if pitch is None else pitch,
            volume=self._opts.volume if volume is None else volume,
        )
        _validate(opts)
        self._opts = opts

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _EdgeStream(edge=self, input_text=text, conn_options=conn_options)


def _validate(opts: _EdgeOptions) -> None:
    # edge_tts checks these only when a request is made; a typo in the bot's configuration
    # should fail at start-up, not as a failed call.
    TTSConfig(opts.voice, opts.rate, opts.volume, opts.pitch, "SentenceBoundary")
    if opts.receive_timeout <= 0:
        raise ValueError(f"receive_timeout must be positive, not {opts.receive_timeout}")


class _EdgeStream(tts.ChunkedStream):
    def __init__(self, *, edge: EdgeTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=edge, input_text=input_text, conn_options=conn_options)
        self._opts = replace(edge._opts)

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        opts = self._opts
        communicate = edge_tts.Communicate(
            self.input_text,
            opts.voice,
            rate=opts.rate,
            volume=opts.volume,
            pitch=opts.pitch,
            boundary="WordBoundary" if opts.word_timestamps else "SentenceBoundary",
            proxy=opts.proxy,
            connect_timeout=max(1, math.ceil(self._conn_options.timeout)),
            receive_timeout=opts.receive_timeout,
        )
        output_emitter.initialize(
            request_id=shortuuid(),
            sample_rate=SAMPLE_RATE,
            num_channels=NUM_CHANNELS,
            mime_type=MIME_TYPE,
        )

        received = 0
        try:
            async with contextlib.aclosing(communicate.stream()) as chunks:
                while True:
                    # edge_tts's own receive_timeout is aiohttp's sock_read, which covers the
                    # HTTP upgrade but not websocket messages: a stalled service would hang.
                    try:
                        async with asyncio.timeout(opts.receive_timeout):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    if chunk["type"] == "audio":
                        data = chunk["data"]
                        received += len(data)
                        output_emitter.push(data)
                    elif chunk["type"] == "WordBoundary" and opts.word_timestamps:
                        start = chunk["offset"] / _TICKS_PER_SECOND
                        output_emitter.push_timed_transcript(
                            TimedString(
                                f"{chunk['text']} ",
                                start_time=start,
                                end_time=start + chunk["duration"] / _TICKS_PER_SECOND,
                            )
                        )
        except TimeoutError as e:  # aiohttp's socket timeouts are TimeoutErrors too
            raise APITimeoutError("edge tts timed out") from e
        except aiohttp.ClientResponseError as e:  # the websocket handshake was refused
            raise APIStatusError(
                f"edge tts refused the connection: {e.message}", status_code=e.status
            ) from e
        except SkewAdjustmentError as e:
            # edge_tts met a 403 (its token is time-based) and could not correct its clock
            status = (
                e.__cause__.status if isinstance(e.__cause__, aiohttp.ClientResponseError) else 403
            )
            raise APIStatusError("edge tts rejected the request token", status_code=status) from e
        except NoAudioReceived as e:
            raise APIConnectionError(
                f"edge tts closed the connection without audio (is {opts.voice!r} a voice?)"
            ) from e
        except (aiohttp.ClientError, EdgeTTSException, OSError) as e:
            raise APIConnectionError("edge tts connection failed") from e
        except (ValueError, KeyError) as e:
            # edge_tts parses headers and metadata without checks; a changed service fails here
            raise APIConnectionError("edge tts sent a message edge_tts could not parse") from e

        # edge_tts ends quietly when the socket closes, even mid-sentence. Only a `turn.end`
        # message folds a request's audio into `cumulative_audio_bytes`, so bytes that are
        # missing from it arrived in a request the service never finished.
        state = communicate.state
        if (
            state.get("chunk_audio_bytes", 0)
            or state.get("cumulative_audio_bytes", received) != received
        ):
            raise APIConnectionError("edge tts closed the connection before the end of the speech")
        output_emitter.flush()
