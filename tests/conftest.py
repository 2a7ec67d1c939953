from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from voicebot.config import Settings
from voicebot.handoff.packet import HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.runtime.bot import BotRuntime

REPO = Path(__file__).resolve().parent.parent
MONDAY_10AM = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def write_bot(root: Path, files: dict[str, str]) -> Path:
    """A bot directory with the given flow files (dedented)."""
    for name, text in files.items():
        path = root / "flows" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


class Bot:
    """A bot runtime with the handoffs it made, for tests."""

    def __init__(self, root: Path, now: dt.datetime = MONDAY_10AM) -> None:
        self.packets: list[HandoffPacket] = []
        settings = Settings(bot_dir=root, data_dir=root / "data")
        self.runtime = BotRuntime.load(
            settings, clock=lambda: now, handoffs=CallbackHandoffSink(self.packets.append)
        )


@pytest.fixture
def make_bot(tmp_path: Path):
    def make(
        text: str, *, now: dt.datetime = MONDAY_10AM, extra: dict[str, str] | None = None
    ) -> Bot:
        write_bot(tmp_path, {"bot.yaml": text, **(extra or {})})
        return Bot(tmp_path, now)

    return make
