"""One call's synthesiser in a bot of several languages: each reply in the call's language now.

The session is given one TTS when the call starts and keeps it. A caller who switches to Spanish
mid-call must hear the Spanish voice from the next line on, so the session's TTS is this
wrapper: every synthesis (one per reply, or per sentence) goes to the synthesiser of the
language the call is in at that moment. The synthesisers themselves are the bot's, built once
per process (voicebot/speech/stack.py); only the thin per-call wrappers are made per call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, tts

__all__ = ["LanguageTTS", "VoiceChoice"]

# What the wrapper remembers of its choices: enough for a call's events and a test, bounded.
_HISTORY = 64

VoiceChoice = tuple[str, str]  # (language, the synthesiser's model: the voice name)


class LanguageTTS(tts.TTS[Any]):
    """Delegates to ``voices[language()]``; a language without its own falls back to
    ``default``'s (the schema only lets a call be in a declared language, and every declared
    language has a synthesiser, so that is a safety net, not a path)."""

    def __init__(
        self,
        voices: Mapping[str, tts.TTS[Any]],
        language: Callable[[], str],
        *,
        default: str,
        on_switch: Callable[[VoiceChoice], None] | None = None,
    ) -> None:
        if default not in voices:
            raise ValueError(f"no synthesiser for the default language {default!r}")
        first = voices[default]
        super().__init__(
            capabilities=first.capabilities,
            sample_rate=first.sample_rate,
            num_channels=first.num_channels,
        )
        self._voices = dict(voices)
        self._language = language
        self._default = default
        self._on_switch = on_switch
        # the voice of each synthesis (one per reply as the session streams), newest last
        self.choices: deque[VoiceChoice] = deque(maxlen=_HISTORY)
        for voice in self._voices.values():
            # the session listens to its TTS's events; each language's must reach it
            voice.on("metrics_collected", self._forward_metrics)
            voice.on("error", self._forward_error)

    def _forward_metrics(self, event: Any) -> None:
        self.emit("metrics_collected", event)

    def _forward_error(self, event: Any) -> None:
        self.emit("error", event)

    def current(self) -> tuple[str, tts.TTS[Any]]:
        """The language spoken now and its synthesiser (noted, with a switch reported)."""
        language = self._language()
        voice = self._voices.get(language)
        if voice is None:
            language, voice = self._default, self._voices[self._default]
        choice = (language, voice.model)
        switched = bool(self.choices) and self.choices[-1] != choice
        self.choices.append(choice)
        if switched and self._on_switch is not None:
            self._on_switch(choice)
        return language, voice

    @property
    def model(self) -> str:
        language = self._language()
        return self._voices.get(language, self._voices[self._default]).model

    @property
    def provider(self) -> str:
        return self._voices[self._default].provider

    def _set_expressive(self, enabled: bool) -> None:
        super()._set_expressive(enabled)
        for voice in self._voices.values():
            voice._set_expressive(enabled)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return self.current()[1].synthesize(text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.SynthesizeStream:
        return self.current()[1].stream(conn_options=conn_options)

    def prewarm(self) -> None:
        for voice in self._voices.values():
            voice.prewarm()

    async def aclose(self) -> None:
        # detach only: the synthesisers behind the per-call adapters are shared by every call
        for voice in self._voices.values():
            voice.off("metrics_collected", self._forward_metrics)
            voice.off("error", self._forward_error)
