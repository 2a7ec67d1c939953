"""Keypad input on an audio call: in-band tones heard in the caller's audio, and key presses
from elsewhere (the softphone's keypad, SIP INFO), gathered into what the engine expects.

A menu takes one key at once; a `collect` takes digits until its terminator, its length, or a
pause between keys. Tones are blanked out of the audio the recogniser hears, so a key press is
never also transcribed as a word.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

from voicebot.engine.events import Listen
from voicebot.speech.dtmf import DtmfDetector

logger = logging.getLogger("voicebot.call.keypad")

# Seconds between key presses after which the digits typed so far are submitted.
INTER_DIGIT_TIMEOUT = 3.0


class InbandDtmfInput(io.AudioInput):
    """Passes the caller's audio through, reporting DTMF digits and silencing their tones."""

    def __init__(self, source: io.AudioInput, on_digit: Callable[[str], None]) -> None:
        super().__init__(label="in-band DTMF", source=source)
        self._on_digit = on_digit
        self._detectors: dict[int, DtmfDetector] = {}

    async def __anext__(self) -> rtc.AudioFrame:
        assert self.source is not None
        frame = await self.source.__anext__()
        try:
            return self._inspect(frame)
        except Exception:
            # the keypad is an extra: a failure here must not stop the caller being heard
            logger.exception("in-band DTMF detection failed on a frame")
            return frame

    def _inspect(self, frame: rtc.AudioFrame) -> rtc.AudioFrame:
        detector = self._detectors.get(frame.sample_rate)
        if detector is None:
            detector = self._detectors[frame.sample_rate] = DtmfDetector(frame.sample_rate)
        samples = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:
            samples = samples[:: frame.num_channels]
        for digit in detector.feed(samples):
            self._on_digit(digit.digit)
        if detector.tone_active:
            size = frame.samples_per_channel * frame.num_channels * 2
            return rtc.AudioFrame(
                bytes(size), frame.sample_rate, frame.num_channels, frame.samples_per_channel
            )
        return frame


class KeypadCollector:
    """Turns single key presses into the digit strings the engine takes."""

    def __init__(
        self, submit: Callable[[str], None], *, inter_digit_timeout: float = INTER_DIGIT_TIMEOUT
    ) -> None:
        self._submit = submit
        self._timeout = inter_digit_timeout
        self._listen: Listen | None = None
        self._digits = ""
        self._timer: asyncio.TimerHandle | None = None

    def expect(self, listen: Listen | None) -> None:
        """What the bot waits for now (from its latest reply)."""
        self._listen = listen

    @property
    def buffered(self) -> str:
        return self._digits

    def press(self, keys: str) -> None:
        for key in keys:
            if key in "0123456789*#ABCD":
                self._press(key)

    def _press(self, key: str) -> None:
        listen = self._listen
        if listen is None or listen.expect.kind != "collect":
            # menus, confirmations and open questions take one key
            self._digits = ""
            self._submit(key)
            return
        if key == listen.dtmf_terminator:
            self._flush()
            return
        self._digits += key
        if listen.dtmf_max_digits is not None and len(self._digits) >= listen.dtmf_max_digits:
            self._flush()
            return
        self._restart_timer()

    def _restart_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        digits, self._digits = self._digits, ""
        if digits:
            self._submit(digits)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
