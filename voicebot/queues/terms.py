"""The vocabulary the queue modules share: states, priorities, skills, errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from voicebot.handoff.packet import HandoffPacket

PRIORITY_SCORE = {"low": 0, "normal": 10, "high": 20, "urgent": 30}
# VIP and anger each lift a call half a band: a VIP at normal is served before other normal
# calls but after high ones; an angry VIP at normal ranks with high.
VIP_BONUS = 5
ANGER_BONUS = 5
IN_QUEUE = ("waiting", "offered")
STAFFED = ("available", "offered", "busy", "wrap_up")


class QueueError(Exception):
    """A request that cannot be carried out in the entry's or agent's current state."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def priority_score(packet: HandoffPacket, anger_threshold: float) -> int:
    score = PRIORITY_SCORE.get(packet.priority, 10)
    if packet.caller.vip:
        score += VIP_BONUS
    if packet.sentiment.anger >= anger_threshold:
        score += ANGER_BONUS
    return score


def has_skills(agent_skills: Mapping[str, int], needed: Iterable[str]) -> bool:
    return all(agent_skills.get(skill, 0) > 0 for skill in needed)


def priority_label(score: int) -> str:
    label = "low"
    for name, floor in PRIORITY_SCORE.items():
        if score >= floor:
            label = name
    return label
