"""voicebot: a conversational IVR and voicebot for contact centres."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voicebot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
