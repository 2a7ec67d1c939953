"""Reading a caller recording and writing the bot's side of a call.

Any file PyAV can decode is accepted (WAV of any width, rate and channel count, MP3, FLAC,
OGG); it is decoded lazily and converted to 16-bit mono at the rate the call runs at, so a
30-minute recording never sits in memory whole. What cannot be read fails before the call
starts, with the file's name and the reason.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CALL_SAMPLE_RATE = 16000


class AudioFileError(ValueError):
    """A recording that cannot be used, with a message a person can act on."""


class AudioFile:
    """A decoded recording, read in fixed-size chunks of 16-bit mono PCM."""

    def __init__(self, path: Path, *, sample_rate: int = CALL_SAMPLE_RATE) -> None:
        import av

        self.path = path
        self.sample_rate = sample_rate
        if not path.is_file():
            raise AudioFileError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise AudioFileError(f"{path}: the file is empty")
        try:
            container = av.open(str(path))
        except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise AudioFileError(f"{path}: not a readable audio file ({exc})") from None
        try:
            streams = container.streams.audio
            if not streams:
                raise AudioFileError(f"{path}: the file holds no audio stream")
            stream = streams[0]
            self.source_rate = int(stream.rate or 0)
            self.source_channels = int(stream.channels or 0)
            self.source_format = str(stream.format.name if stream.format else "unknown")
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration is not None and stream.time_base is not None
                else None
            )
            if duration is None and container.duration is not None:
                duration = container.duration / 1_000_000
            self.duration = duration
        finally:
            container.close()
        if self.source_rate <= 0:
            raise AudioFileError(f"{path}: the audio has no sample rate")

    def chunks(self, seconds: float = 0.02) -> Iterator[bytes]:
        """16-bit mono PCM at ``sample_rate``, ``seconds`` per chunk (the last may be short)."""
        import av

        size = int(self.sample_rate * seconds) * 2
        pending = bytearray()
        resampler = av.AudioResampler(format="s16", layout="mono", rate=self.sample_rate)
        try:
            with av.open(str(self.path)) as container:
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        pending += _pcm_bytes(out)
                    while len(pending) >= size:
                        yield bytes(pending[:size])
                        del pending[:size]
                for out in resampler.resample(None):
                    pending += _pcm_bytes(out)
        except av.error.FFmpegError as exc:
            raise AudioFileError(f"{self.path}: the audio is damaged ({exc})") from None
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
        if pending:
            yield bytes(pending)

    def describe(self) -> str:
        length = f"{self.duration:.1f} s" if self.duration is not None else "unknown length"
        return (
            f"{self.path.name}: {self.source_rate} Hz, {self.source_channels} channel(s), "
            f"{self.source_format}, {length}"
        )


def _pcm_bytes(frame: object) -> bytes:
    array = frame.to_ndarray()  # type: ignore[attr-defined]
    return np.ascontiguousarray(array, dtype=np.int16).reshape(-1).tobytes()


class WavWriter:
    """A mono 16-bit WAV written as the call goes (so a crash still leaves a playable file)."""

    def __init__(self, path: Path, sample_rate: int = CALL_SAMPLE_RATE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sample_rate = sample_rate
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self.samples = 0

    def write(self, pcm: bytes) -> None:
        self._wav.writeframes(pcm)
        self.samples += len(pcm) // 2

    def pad_to(self, samples: int) -> None:
        """Silence up to ``samples`` from the start, so the file keeps the call's timeline."""
        if samples > self.samples:
            self.write(b"\0\0" * (samples - self.samples))

    def close(self) -> None:
        self._wav.close()
