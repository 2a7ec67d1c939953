"""The live wallboard: per queue, what a supervisor watches (calls waiting, longest wait,
today's service level, ASA and abandonment, agents by state, callbacks owed) with each tile's
level from the queue's thresholds; per agent, state and time in state; the bot's day so far.

Built from the shared database, so every node shows the same board; the supervisor hub
(voicebot/api/supervisor_hub.py) rebuilds it when a queue or agent event arrives from any node.
"Today" is since local midnight in the contact centre's zone.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import case, exists, func, select

from voicebot.analytics.measures import EntrySums, QueueMeasures, queue_measures, sla_seconds
from voicebot.analytics.period import local_midnight
from voicebot.flows.schema import Queue
from voicebot.queues.service import QueueService
from voicebot.queues.terms import IN_QUEUE, has_skills
from voicebot.store.models import Agent, Call, Handoff, QueueEntry

# How a stored agent state shows on the board: an offer being rung counts as on a call (the
# agent is taken), like the call itself.
BOARD_STATE = {
    "available": "available",
    "offered": "on_call",
    "busy": "on_call",
    "wrap_up": "wrap_up",
    "away": "away",
}
AGENT_STATES = ("available", "on_call", "wrap_up", "away")


def level_above(value: float | None, threshold: float | None) -> str | None:
    """``warn`` at the threshold, ``alert`` at twice it; None when the queue sets none."""
    if threshold is None:
        return None
    if value is None or value < threshold:
        return "ok"
    return "alert" if value >= 2 * threshold else "warn"


def level_service(value: float | None, target: int) -> str:
    """Below the target is ``warn``, 10 points further below ``alert``; no calls yet: ok."""
    if value is None or value >= target:
        return "ok"
    return "alert" if value < target - 10 else "warn"


def tiles(
    queue: Queue | None, waiting: int, longest: float | None, m: QueueMeasures
) -> dict[str, str | None]:
    alerts = queue.alerts if queue is not None else None
    longest_limit = (alerts.longest_wait if alerts else None) or sla_seconds(queue)
    return {
        "waiting": level_above(waiting, alerts.waiting if alerts else None),
        "longest_wait": level_above(longest or 0.0, longest_limit),
        "service_level": level_service(m.service_level, m.sl_target),
        "abandon_rate": level_above(m.abandon_rate, alerts.abandon_rate if alerts else None),
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


async def build_wallboard(
    service: QueueService, *, tz: dt.tzinfo = dt.UTC, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The whole board as the page shows it (``type``, ``seq`` and ``at`` are the hub's)."""
    now = now or service.clock()
    midnight = local_midnight(now.astimezone(tz).date(), tz)
    # Fresh, never the half-second cache: a board built just after an event must show it.
    stats = await service.stats(max_age=0)
    configured: Mapping[str, Queue] = service.queues
    async with service.db.session() as session:
        measures = await queue_measures(
            session, midnight, now + dt.timedelta(seconds=1), queues=configured
        )
        agents = (
            await session.scalars(
                select(Agent)
                .where(Agent.active.is_(True), Agent.state != "offline")
                .order_by(Agent.username)
            )
        ).all()
        callbacks = dict(
            (
                await session.execute(
                    select(QueueEntry.queue, func.count())
                    .where(QueueEntry.kind == "callback", QueueEntry.status.in_(IN_QUEUE))
                    .group_by(QueueEntry.queue)
                )
            ).all()
        )
        # The agent an entry is with, for "time in state" of who is on which queue's call.
        working = dict(
            (
                await session.execute(
                    select(QueueEntry.agent_id, QueueEntry.queue).where(
                        QueueEntry.status.in_(("connected", "wrap_up")),
                        QueueEntry.agent_id.is_not(None),
                        QueueEntry.media == "voice",  # the call; chats run beside it
                    )
                )
            ).all()
        )
        bot = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.sum(case((exists().where(Handoff.call_id == Call.id), 0), else_=1)),
                        0,
                    ),
                ).where(Call.started_at >= midnight, Call.started_at <= now)
            )
        ).one()
    names = sorted(set(configured) | set(stats) | {n for n, m in measures.items() if m.offered})
    queue_skills = {
        name: list(configured[name].skills) if name in configured else [] for name in names
    }
    queue_rows = []
    for name in names:
        figures = stats.get(name)
        m = measures.get(name) or QueueMeasures.from_sums(name, EntrySums())
        waiting = figures.waiting if figures else 0
        longest = figures.oldest_wait if figures and waiting else None
        states = Counter(
            BOARD_STATE[a.state]
            for a in agents
            if a.state in BOARD_STATE and has_skills(a.skills, queue_skills[name])
        )
        queue_rows.append(
            {
                "name": name,
                "waiting": waiting,
                "longest_wait": _round(longest),
                "estimated_wait": _round(figures.estimated_wait) if figures else None,
                "service_level": _round(m.service_level),
                "sl_target": m.sl_target,
                "sla_seconds": m.sla_seconds,
                "asa": _round(m.asa),
                "aht": _round(m.aht),
                "abandon_rate": _round(m.abandon_rate),
                "offered": m.offered,
                "answered": m.answered,
                "abandoned": m.abandoned,
                "agents": {state: states.get(state, 0) for state in AGENT_STATES},
                "callbacks_owed": int(callbacks.get(name, 0)),
                "tiles": tiles(configured.get(name), waiting, longest, m),
            }
        )
    agent_rows = [
        {
            "id": a.id,
            "username": a.username,
            "name": a.display_name or a.username,
            "state": BOARD_STATE.get(a.state, a.state),
            "stored_state": a.state,
            "since": a.state_since.isoformat(),
            "seconds_in_state": round(max(0.0, (now - a.state_since).total_seconds()), 1),
            "queues": [n for n in names if has_skills(a.skills, queue_skills[n])],
            "on_queue": working.get(a.id),
        }
        for a in agents
    ]
    calls, contained = int(bot[0]), int(bot[1])
    return {
        "at": now.isoformat(),
        "since": midnight.isoformat(),
        "tz": str(tz),
        "queues": queue_rows,
        "agents": agent_rows,
        "bot": {
            "calls": calls,
            "contained": contained,
            "containment_rate": None if calls == 0 else round(contained * 100 / calls, 1),
        },
    }
