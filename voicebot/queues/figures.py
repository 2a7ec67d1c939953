"""The queues' live figures: per-queue counts and estimated waits (flows read them every turn),
the desktop's queue view, an entry's screen pop and an agent's snapshot.

A mixin of QueueService: read-only queries, kept apart from routing and the agents' actions.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from voicebot.flows.schema import Queue
from voicebot.privacy.masking import mask_value
from voicebot.queues.erlang import WaitInputs, estimate_wait
from voicebot.queues.terms import IN_QUEUE, STAFFED, has_skills, priority_label
from voicebot.store.db import Database
from voicebot.store.models import Agent, Call, Handoff, QueueEntry

ARRIVAL_WINDOW = 1800.0  # seconds of arrivals the estimated wait looks at
_AHT_SAMPLES = 50
_MIN_AHT_SAMPLES = 5
# Figures are recomputed at most twice a second however many events arrive: the desktops'
# queue views and every caller turn read them.
_STATS_TTL = 0.5


@dataclass
class QueueStats:
    name: str
    waiting: int
    agents_available: int
    agents_staffed: int
    oldest_wait: float | None
    estimated_wait: float | None
    aht: float
    arrivals: int

    def for_flows(self) -> dict[str, Any]:
        """What flows see as ``queue.<name>``."""
        return {
            "waiting": self.waiting,
            "agents_available": self.agents_available,
            "agents_staffed": self.agents_staffed,
            "estimated_wait": None if self.estimated_wait is None else round(self.estimated_wait),
        }


class QueueFigures:
    db: Database
    clock: Callable[[], dt.datetime]
    queues: dict[str, Queue]
    wrap_up_seconds: float
    _stats_cache: tuple[float, dict[str, QueueStats]] | None

    def _queue_skills(self, queue: str) -> list[str]:
        config = self.queues.get(queue)
        return list(config.skills) if config else []

    # -- figures -------------------------------------------------------------------------------

    async def stats(self, *, max_age: float = _STATS_TTL) -> dict[str, QueueStats]:
        """Every queue's figures, reused for ``max_age`` seconds (flows read them every turn)."""
        cached = self._stats_cache
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        now = self.clock()
        window_start = now - dt.timedelta(seconds=ARRIVAL_WINDOW)
        async with self.db.session() as session:
            waiting_rows = (
                await session.execute(
                    select(QueueEntry.queue, func.count(), func.min(QueueEntry.enqueued_at))
                    .where(QueueEntry.status.in_(IN_QUEUE))
                    .group_by(QueueEntry.queue)
                )
            ).all()
            arrivals = dict(
                (
                    await session.execute(
                        select(QueueEntry.original_queue, func.count())
                        .where(QueueEntry.enqueued_at >= window_start)
                        .group_by(QueueEntry.original_queue)
                    )
                ).all()
            )
            agents = (
                await session.execute(
                    select(Agent.state, Agent.skills).where(
                        Agent.state.in_(STAFFED), Agent.active.is_(True)
                    )
                )
            ).all()
            handled = (
                await session.execute(
                    select(QueueEntry.queue, QueueEntry.connected_at, QueueEntry.ended_at)
                    .where(
                        QueueEntry.ended_at.is_not(None),
                        QueueEntry.connected_at.is_not(None),
                        # Chats run side by side, several per agent: their length is not
                        # the time an agent is kept from the next call.
                        QueueEntry.media == "voice",
                    )
                    .order_by(QueueEntry.ended_at.desc())
                    .limit(_AHT_SAMPLES * max(1, len(self.queues)))
                )
            ).all()
        waiting = {row[0]: (int(row[1]), row[2]) for row in waiting_rows}
        result: dict[str, QueueStats] = {}
        for name in sorted(set(self.queues) | set(waiting)):
            skills = self._queue_skills(name)
            staffed = sum(1 for state, agent_skills in agents if has_skills(agent_skills, skills))
            available = sum(
                1
                for state, agent_skills in agents
                if state == "available" and has_skills(agent_skills, skills)
            )
            talk = [
                (ended - connected).total_seconds()
                for queue, connected, ended in handled
                if queue == name and connected is not None and ended is not None
            ][:_AHT_SAMPLES]
            config = self.queues.get(name)
            if len(talk) >= _MIN_AHT_SAMPLES:
                aht = sum(talk) / len(talk) + self.wrap_up_seconds
            else:
                aht = float(config.aht_seconds if config else 180)
            count, oldest = waiting.get(name, (0, None))
            estimate = estimate_wait(
                WaitInputs(
                    arrivals=int(arrivals.get(name, 0)),
                    window_s=ARRIVAL_WINDOW,
                    aht_s=aht,
                    agents_staffed=staffed,
                    agents_available=available,
                    position=count + 1,
                )
            )
            result[name] = QueueStats(
                name=name,
                waiting=count,
                agents_available=available,
                agents_staffed=staffed,
                oldest_wait=(now - oldest).total_seconds() if oldest else None,
                estimated_wait=estimate,
                aht=aht,
                arrivals=int(arrivals.get(name, 0)),
            )
        self._stats_cache = (time.monotonic(), result)
        return result

    async def flow_stats(self) -> dict[str, dict[str, Any]]:
        return {name: stats.for_flows() for name, stats in (await self.stats()).items()}

    async def queue_views(
        self, names: Iterable[str] | None = None, *, limit: int = 10
    ) -> list[dict[str, Any]]:
        """The live queue view of the desktop: figures and the first entries of each queue.
        Views are built at most four times a second, so their figures are (nearly) fresh."""
        stats = await self.stats(max_age=0.1)
        wanted = sorted(set(names) if names is not None else set(stats))
        now = self.clock()
        views: list[dict[str, Any]] = []
        async with self.db.session() as session:
            for name in wanted:
                figures = stats.get(name)
                rows = (
                    await session.execute(
                        # the whole packet: it may be encrypted, so its caller is read here
                        select(QueueEntry, Handoff.intent, Handoff.packet)
                        .join(Handoff, Handoff.id == QueueEntry.handoff_id)
                        .where(QueueEntry.queue == name, QueueEntry.status.in_(IN_QUEUE))
                        .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at.asc())
                        .limit(limit)
                    )
                ).all()
                entries = [
                    {
                        "entry_id": entry.id,
                        "position": position,
                        "kind": entry.kind,
                        "media": entry.media,
                        "priority": priority_label(entry.priority),
                        "waited_seconds": round((now - entry.enqueued_at).total_seconds(), 1),
                        "intent": intent,
                        "caller": _caller_label((packet or {}).get("caller")),
                        "status": entry.status,
                    }
                    for position, (entry, intent, packet) in enumerate(rows, start=1)
                ]
                views.append(
                    {
                        "name": name,
                        "waiting": figures.waiting if figures else 0,
                        "agents_available": figures.agents_available if figures else 0,
                        "agents_staffed": figures.agents_staffed if figures else 0,
                        "oldest_wait": figures.oldest_wait if figures else None,
                        "estimated_wait": figures.estimated_wait if figures else None,
                        "entries": entries,
                    }
                )
        return views

    async def assignment(self, entry_id: str, *, for_agent: bool = True) -> dict[str, Any] | None:
        """An entry with its packet, as the desktop's screen pop shows it."""
        async with self.db.session() as session:
            row = (
                await session.execute(
                    select(QueueEntry, Handoff.packet, Call.channel)
                    .join(Handoff, Handoff.id == QueueEntry.handoff_id)
                    .outerjoin(Call, Call.id == QueueEntry.call_id)
                    .where(QueueEntry.id == entry_id)
                )
            ).first()
        if row is None:
            return None
        entry, packet, call_channel = row
        attributes = (packet.get("caller") or {}).get("attributes") or {}
        channel = attributes.get("channel") or call_channel
        return {
            "entry_id": entry.id,
            "call_id": entry.call_id,
            "kind": entry.kind,
            "media": entry.media,
            "language": entry.language,
            "queue": entry.queue,
            "status": entry.status,
            "priority": priority_label(entry.priority),
            "priority_score": entry.priority,
            "enqueued_at": entry.enqueued_at.isoformat(),
            "waited_seconds": round((self.clock() - entry.enqueued_at).total_seconds(), 1),
            "audio_url": f"/api/desktop/audio/{entry.id}" if entry.audio_node else None,
            "audio_node": entry.audio_node,
            "callback_number": entry.callback_number if for_agent else None,
            "expires_at": entry.offer_expires_at.isoformat() if entry.offer_expires_at else None,
            "flag": entry.flag,
            "channel": channel,
            # A phone caller (SIP via LiveKit) waits in the LiveKit room named by the call id,
            # which the agent's desktop joins (POST /api/entries/{id}/livekit); a callback has
            # no caller in a room.
            "livekit_room": entry.call_id if channel == "sip" and entry.kind == "call" else None,
            "packet": packet,
        }

    async def agent_snapshot(self, agent_id: int) -> dict[str, Any] | None:
        async with self.db.session() as session:
            agent = await session.get(Agent, agent_id)
            if agent is None:
                return None
            current = await session.scalar(
                select(QueueEntry.id)
                .where(
                    QueueEntry.media == "voice",  # the agent's chats: chats_of() (chats.py)
                    ((QueueEntry.offered_to == agent_id) & (QueueEntry.status == "offered"))
                    | (
                        (QueueEntry.agent_id == agent_id)
                        & QueueEntry.status.in_(("connected", "wrap_up"))
                    ),
                )
                .limit(1)
            )
            return {"agent": agent_view(agent), "current": current}


def agent_view(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "username": agent.username,
        "display_name": agent.display_name,
        "role": agent.role,
        "skills": dict(agent.skills),
        "state": agent.state,
        "state_since": agent.state_since.isoformat(),
        "wrap_up_until": agent.wrap_up_until.isoformat() if agent.wrap_up_until else None,
        "max_chats": agent.max_chats,  # None: the deployment's default
    }


def _caller_label(caller: Any) -> str:
    if isinstance(caller, str):  # some drivers return JSON sub-documents as text
        caller = json.loads(caller)
    if not isinstance(caller, dict):
        return "caller"
    name = caller.get("name")
    number = caller.get("number")
    label = name or (mask_value(number) if number else "withheld")
    return f"{label} (VIP)" if caller.get("vip") else str(label)
