"""Why a call left the bot, as a category reports can count: the content team's ``reason``
is their own words ("could not verify account"), which no report can group.

The category comes from how the engine got to the handoff in this turn (``FlowControl.path``:
the trigger, limit or ``on_*`` branch it went through), and only when that says nothing, from
the words of the reason:

- ``technical``: an action failed (``on_error``), the engine or the model failed;
- ``after_hours``: a handoff step's ``closed`` branch (outside business hours);
- ``no_match``: the caller could not be understood (a limit, ``on_fail`` of a collect/menu);
- ``angry``: a trigger on anger (its condition reads ``sentiment.anger``);
- ``asked``: the caller asked (a trigger on an intent, the model's handoff tool);
- ``flow``: a flow's own handoff (an account locked, a sale): what the flow was written to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from voicebot.flows.schema import Trigger

REASON_KINDS = ("asked", "angry", "no_match", "technical", "after_hours", "flow")

_ANGRY_WORDS = re.compile(r"\b(angry|anger|upset|furious|frustrat\w*|complain\w*)\b", re.I)
_ASKED_WORDS = re.compile(
    r"\b(asked|asks|wants?|requested)\b.*\b(person|human|agent|someone)\b", re.I
)
_NO_MATCH_WORDS = re.compile(
    r"\b(understood|understand|no match|no input|could not verify)\b", re.I
)


def reason_kind(
    path: Sequence[str], reason: str, triggers: Sequence[Trigger], *, asked: bool = False
) -> str:
    """The category of a handoff reached through ``path`` (oldest first) this turn."""
    for tag in reversed(path):
        if tag in ("technical", "on_error"):
            return "technical"
        if tag == "closed":
            return "after_hours"
        if tag in ("limit", "on_fail", "on_limit"):
            return "no_match"
        if tag.startswith("trigger:"):
            trigger = triggers[int(tag.split(":", 1)[1])]
            if trigger.condition is not None and "anger" in trigger.condition:
                return "angry"
            if trigger.intent is not None:
                return "asked"
            break
    if asked:
        return "asked"
    if _ANGRY_WORDS.search(reason):
        return "angry"
    if _ASKED_WORDS.search(reason):
        return "asked"
    if _NO_MATCH_WORDS.search(reason):
        return "no_match"
    return "flow"
