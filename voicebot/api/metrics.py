"""Prometheus metrics for ``GET /metrics`` (docs/metrics.md).

Two kinds of figures, kept apart because they add up differently across nodes:

- live gauges (waiting callers, agents by state, callbacks owed) are read from the shared
  database at each scrape, so every node reports the same figures;
- counters and histograms (bot legs, handoffs, turn latency, answered waits, flow runs) count
  what happened on this node: QueueService tells :class:`AppMetrics`, its observer.

Each app has a registry of its own rather than prometheus-client's global one: tests build many
apps in one process, and two apps must never share (or double-register) a series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from voicebot import __version__
from voicebot.engine.state import CallState
from voicebot.queues.figures import QueueStats
from voicebot.queues.service import QueueService
from voicebot.queues.terms import IN_QUEUE
from voicebot.store.models import AGENT_STATES, Agent, QueueEntry

logger = logging.getLogger("voicebot.api")

# End of the caller's speech to the bot's first audio: a good voicebot answers within a second.
TURN_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
# Time on hold before an agent answers; 20, 30 and 60 s are the usual service-level targets, so
# each is a bucket boundary and "answered within T" is read exactly from the histogram.
QUEUE_WAIT_BUCKETS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800)

_UNKNOWN = "unknown"


@dataclass(frozen=True)
class LiveFigures:
    """What a scrape reads from the shared database; ``up`` is False when it could not."""

    up: bool
    node: str = ""
    queues: Mapping[str, QueueStats] = field(default_factory=dict)
    agents: Mapping[str, int] = field(default_factory=dict)  # Agent.state -> active agents
    callbacks: Mapping[str, int] = field(default_factory=dict)  # queue -> callbacks owed


async def read_live(service: QueueService | None) -> LiveFigures:
    """The live figures, or ``up=False`` (queues off, database unreachable): a scrape never
    fails on them, since process metrics and the node's counters are still worth having."""
    if service is None:
        return LiveFigures(up=False)
    try:
        # Fresh figures: scrapes are seconds apart, and a cached half-second-old view could
        # show a call that has just been answered as still waiting.
        stats = await service.stats(max_age=0)
        async with service.db.session() as session:
            agents = (
                await session.execute(
                    select(Agent.state, func.count())
                    .where(Agent.active.is_(True))
                    .group_by(Agent.state)
                )
            ).all()
            callbacks = (
                await session.execute(
                    select(QueueEntry.queue, func.count())
                    .where(QueueEntry.kind == "callback", QueueEntry.status.in_(IN_QUEUE))
                    .group_by(QueueEntry.queue)
                )
            ).all()
    except Exception as exc:
        # Whatever the database raised, the scrape answers (with queues_up 0) rather than 500.
        logger.warning("metrics could not read the queues", extra={"detail": str(exc)})
        return LiveFigures(up=False, node=service.node_id)
    return LiveFigures(
        up=True,
        node=service.node_id,
        queues=stats,
        agents={str(state): int(count) for state, count in agents},
        callbacks={str(queue): int(count) for queue, count in callbacks},
    )


class _LiveCollector:
    """Renders the figures of the scrape in progress (set just before rendering)."""

    def __init__(self) -> None:
        self.figures = LiveFigures(up=False)

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        up = GaugeMetricFamily(
            "voicebot_queues_up",
            "1 when this scrape read the live queue figures from the database; 0 when the "
            "queues are off or the database could not be read.",
        )
        up.add_metric([], 1.0 if figures.up else 0.0)
        yield up
        info = GaugeMetricFamily(
            "voicebot_info", "Always 1: the version and queue node id.", labels=["version", "node"]
        )
        info.add_metric([__version__, figures.node], 1.0)
        yield info
        if not figures.up:
            return
        yield from _queue_gauges(figures)


def _queue_gauges(figures: LiveFigures) -> Iterable[Metric]:
    waiting = GaugeMetricFamily(
        "voicebot_queue_waiting",
        "Entries in the queue (waiting or being offered), callbacks included.",
        labels=["queue"],
    )
    longest = GaugeMetricFamily(
        "voicebot_queue_longest_wait_seconds",
        "How long the oldest entry in the queue has waited (0 when none waits).",
        labels=["queue"],
    )
    estimated = GaugeMetricFamily(
        "voicebot_queue_estimated_wait_seconds",
        "The wait a caller joining now is told (Erlang C); absent when it cannot be estimated.",
        labels=["queue"],
    )
    agents = GaugeMetricFamily(
        "voicebot_queue_agents",
        "Active agents with the queue's skills: available (free now) and staffed "
        "(available, offered, busy or in wrap-up).",
        labels=["queue", "state"],
    )
    callbacks = GaugeMetricFamily(
        "voicebot_callbacks_owed",
        "Callbacks waiting in the queue for an agent to make them.",
        labels=["queue"],
    )
    for name in sorted(set(figures.queues) | set(figures.callbacks)):
        stats = figures.queues.get(name)
        callbacks.add_metric([name], float(figures.callbacks.get(name, 0)))
        if stats is None:
            continue
        waiting.add_metric([name], float(stats.waiting))
        longest.add_metric([name], float(stats.oldest_wait or 0.0))
        if stats.estimated_wait is not None:
            estimated.add_metric([name], float(stats.estimated_wait))
        agents.add_metric([name, "available"], float(stats.agents_available))
        agents.add_metric([name, "staffed"], float(stats.agents_staffed))
    by_state = GaugeMetricFamily(
        "voicebot_agents", "Active agents (users who take calls) by state.", labels=["state"]
    )
    for state in sorted(set(AGENT_STATES) | set(figures.agents)):
        by_state.add_metric([state], float(figures.agents.get(state, 0)))
    return [waiting, longest, estimated, agents, callbacks, by_state]


class AppMetrics:
    """One app's metrics: a registry of its own with this node's counters, the live queue
    figures and (by default) prometheus-client's process, platform and GC collectors.

    It is QueueService's observer (:meth:`attach`); :meth:`scrape` renders the exposition."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.calls = Counter(
            "voicebot_calls",
            "Bot legs that ended on this node, by channel and outcome.",
            ["channel", "outcome"],
            registry=registry,
        )
        self.handoffs = Counter(
            "voicebot_handoffs",
            "Handoffs recorded on this node, by queue and reason (voicebot/engine/reasons.py).",
            ["queue", "reason"],
            registry=registry,
        )
        self.turn_latency = Histogram(
            "voicebot_turn_latency_seconds",
            "End of the caller's speech to the bot's first audio, per turn, on this node.",
            buckets=TURN_LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "voicebot_queue_wait_seconds",
            "How long answered callers waited for an agent (accepted on this node).",
            ["queue"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        self.flow_runs = Counter(
            "voicebot_flow_runs",
            "Flow runs in bot legs that ended on this node, by flow and how the run ended.",
            ["flow", "outcome"],
            registry=registry,
        )
        self._live = _LiveCollector()
        registry.register(self._live)
        if process:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

    def attach(self, service: QueueService) -> None:
        """Be told what ``service`` records; each configured queue's wait series starts at
        zero, so that rate() sees its first answered call."""
        service.observer = self
        for queue in service.queues:
            self.queue_wait.labels(queue=queue)

    async def scrape(self, service: QueueService | None) -> bytes:
        """The text exposition, with the live figures read now."""
        figures = await read_live(service)
        # Set and rendered with no await between: a concurrent scrape cannot swap the figures.
        self._live.figures = figures
        return generate_latest(self.registry)

    # -- QueueObserver -------------------------------------------------------------------------

    def call_recorded(self, state: CallState, *, channel: str, outcome: str) -> None:
        self.calls.labels(channel=channel, outcome=bot_leg_outcome(state, outcome)).inc()
        for timing in state.timings:
            total_ms = timing.get("total_ms")
            if isinstance(total_ms, int | float):
                self.turn_latency.observe(float(total_ms) / 1000.0)
        for flow, run_outcome in state.flow_outcomes:
            self.flow_runs.labels(flow=str(flow), outcome=str(run_outcome or "abandoned")).inc()

    def handoff_recorded(self, *, queue: str, reason: str | None) -> None:
        self.handoffs.labels(queue=queue, reason=reason or _UNKNOWN).inc()

    def call_connected(self, *, queue: str, waited: float) -> None:
        self.queue_wait.labels(queue=queue).observe(max(0.0, waited))


def bot_leg_outcome(state: CallState, stored: str) -> str:
    """contained (the bot ended the call), abandoned (the caller hung up on the bot), or for
    a handed-off call handoff, transferred (to an outside number) or callback."""
    if state.handoff is None:
        return "contained" if state.ended else "abandoned"
    return stored if stored in ("transferred", "callback") else "handoff"
