"""The queue extensions in the flow language are checked with positions, like every other key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_bot
from voicebot.flows.errors import FlowError
from voicebot.flows.loader import load_bot

BASE = """\
bot:
  name: Test
intents:
  hello: { examples: [hello] }
flows:
  f:
    steps:
      - handoff: general
queues:
  general: { skills: [general] }
"""


def errors(tmp_path: Path, queues: str) -> list[str]:
    write_bot(tmp_path, {"bot.yaml": BASE + queues})
    with pytest.raises(FlowError) as caught:
        load_bot(tmp_path, env={})
    return [str(i) for i in caught.value.errors]


def test_overflow_to_an_unknown_queue(tmp_path: Path) -> None:
    found = errors(
        tmp_path, "  care: { skills: [care], overflow_after: 60, overflow_to: generl }\n"
    )
    assert len(found) == 1
    assert "bot.yaml:11:" in found[0]
    assert "queue 'care' overflows to queue 'generl', which is not defined" in found[0]
    assert "did you mean 'general'" in found[0]


def test_overflow_needs_both_keys_and_not_itself(tmp_path: Path) -> None:
    found = errors(tmp_path, "  care: { skills: [care], overflow_after: 60 }\n")
    assert any("'overflow_after' and 'overflow_to' go together" in e for e in found), found
    found = errors(tmp_path, "  care: { skills: [care], overflow_after: 60, overflow_to: care }\n")
    assert any("queue 'care' overflows to itself" in e for e in found), found
    found = errors(tmp_path, "  care: { skills: [care], aht_seconds: 0 }\n")
    assert any("aht_seconds" in e for e in found), found


def test_the_example_bot_overflows_care_to_general() -> None:
    from tests.conftest import REPO

    care = load_bot(REPO, env={}).definition.queues["care"]
    assert (care.overflow_after, care.overflow_to, care.aht_seconds) == (300, "general", 180)
