"""Logging set-up: fixed messages, values in ``extra``, personal data masked on the way out."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from voicebot.config import Settings
from voicebot.privacy.masking import PiiFilter

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class _Formatter(logging.Formatter):
    """``time level logger message key=value ...`` or one JSON object per line."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        extra = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        if self.as_json:
            payload: dict[str, Any] = {
                "time": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                **{
                    k: v if isinstance(v, str | int | float | bool | None) else repr(v)
                    for k, v in extra.items()
                },
            }
            if record.exc_info:
                payload["exception"] = self.formatException(record.exc_info)
            return json.dumps(payload, ensure_ascii=False)
        fields = " ".join(f"{k}={v}" for k, v in extra.items())
        line = (
            f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        )
        if fields:
            line += f" {fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(settings: Settings, *, level: int | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(settings.log_json))
    handler.addFilter(PiiFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level if level is not None else settings.log_level.upper())
    # livekit-agents is chatty at INFO about things a text chat does not have (rooms, audio).
    logging.getLogger("livekit").setLevel(max(root.level, logging.WARNING))
    logging.getLogger("livekit.agents").setLevel(max(root.level, logging.WARNING))
