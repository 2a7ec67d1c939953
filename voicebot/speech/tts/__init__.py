"""Text-to-speech plugins: espeak-ng offline, Microsoft Edge online."""

from __future__ import annotations

from voicebot.speech.tts.edge import EdgeTTS
from voicebot.speech.tts.espeak import EspeakTTS

__all__ = ["EdgeTTS", "EspeakTTS"]
