"""A demo contact-centre history: weeks of calls, handoffs, queues and agents, so that the
supervisor page, the reports and the forecast have something to show on a fresh install.

The history is made the way the real one is, only faster:

- **Arrivals** follow a weekday x hour-of-day profile in the bot's time zone (busy Monday
  mornings, a lunchtime dip, quiet evenings and Sundays, a trickle at night: the bot answers
  around the clock), Poisson-distributed per hour around ``calls_per_day`` (the weekly mean).
- **The bot's leg** of every call picks one of the example bot's intents (flows/intents.yaml)
  and plays a short masked transcript of its flow; the flow either completes (the call is
  contained, ~60 %) or hands off with the reason category the engine would give
  (voicebot/engine/reasons.py). Outside opening hours a handoff becomes a callback request
  (``after_hours``) or the bot's "we're closed" message.
- **The queues** are a discrete-event simulation of the ACD's own rules
  (voicebot/queues/service.py): an arriving caller goes to the longest-idle available agent
  who has all of the queue's skills, else waits (higher priority first, then the longest
  waiting); each caller has a patience and abandons when it runs out; a care caller overflows
  to the general queue after ``overflow_after``; sales callers may ask for a callback while
  they wait. Agents work shifts sized with Erlang C (voicebot/queues/erlang.py) for each
  queue's service level, with a little daily noise so service levels vary, take a break mid
  shift, ring, talk, wrap up and write a disposition, and every state change is recorded.
- **Rows** are written with SQLAlchemy core ``insert()`` executemany, in chunks, parents
  before children, committed every ``COMMIT_ROWS`` rows: a million calls (about fourteen
  million rows) take minutes, not hours.

Everything is driven by one seed (Python's ``random`` and numpy's generator), so the same
arguments give the same rows. Every seeded row is findable for :func:`clear_history`: string
ids start with ``demo-``, agents' user names too, and rows with integer ids hang off one of
those (a turn's call, a disposition's entry, a state change's agent). Demo agents cannot sign
in (their password hash is not a hash) and end the history offline, and every queue entry is
in a final state, so the live ACD never routes a demo call or offers work to a demo agent.

Quality reviews (``call_reviews``) are not written: the quality reviewer scores calls itself.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import json
import math
import random
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import JSON, Table, bindparam, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.demo.profile import (
    AFTER_HOURS_CALLBACK,
    AGENT_NAMES,
    ANGRY_SHARE,
    BOT_HANGUP,
    BREAK_SECONDS,
    CHANNELS,
    DAY_FACTORS,
    DEFAULT_HOURS,
    DEFAULT_QUEUES,
    DISPOSITIONS,
    GREETING,
    HOLIDAY_FACTOR,
    INTENTS,
    NAMES,
    PATIENCE_SECONDS,
    SATURDAY_HOURS,
    SUNDAY_HOURS,
    TALK_SECONDS,
    TURN_ENDS,
    UNANSWERED,
    WAIT_CALLBACK,
    WEEKDAY_HOURS,
    WRAP_SECONDS,
    Intent,
    Reason,
)
from voicebot.engine.context import is_open
from voicebot.flows.schema import Hours, Queue
from voicebot.handoff.packet import HandoffPacket
from voicebot.queues.erlang import agents_for_service_level
from voicebot.queues.terms import ANGER_BONUS, PRIORITY_SCORE, VIP_BONUS
from voicebot.store.db import Database
from voicebot.store.encryption import EncryptedJSON, EncryptedText
from voicebot.store.models import (
    Agent,
    AgentStateChange,
    Call,
    Callback,
    CallEvent,
    CallReview,
    Disposition,
    Handoff,
    Offer,
    QueueEntry,
    Turn,
    UserSession,
    UTCDateTime,
)

PREFIX = "demo-"
COMMIT_ROWS = 250_000  # rows per transaction: few commits, and a WAL that stays bounded
CHUNK_ROWS = 10_000  # rows per executemany
# Not an argon2 hash: verify_password() fails on it, so no one signs in as a demo agent.
NO_PASSWORD = "!demo-agent-cannot-sign-in"
ANGER_THRESHOLD = 0.7  # Settings.anger_priority_threshold's default


@dataclass
class SeedSummary:
    """What :func:`seed_history` wrote."""

    start: dt.datetime
    end: dt.datetime
    days: int
    calls: int = 0
    contained: int = 0
    handoffs: int = 0
    entries: int = 0
    answered: int = 0
    abandoned: int = 0
    callbacks: int = 0
    agents: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def containment(self) -> float:
        return self.contained / self.calls if self.calls else 0.0


class HistoryError(ValueError):
    """Bad arguments for a demo history; the message says which."""


# -- writing -----------------------------------------------------------------------------------

# Parents before children: the foreign keys are checked row by row on SQLite.
_ORDER: tuple[Table, ...] = tuple(
    model.__table__  # type: ignore[misc]
    for model in (
        Call,
        Handoff,
        QueueEntry,
        Offer,
        Callback,
        Disposition,
        Turn,
        CallEvent,
        AgentStateChange,
    )
)


class _Writer:
    """Buffers rows per table and writes them with executemany, parents first; commits every
    ``COMMIT_ROWS`` rows so a failure loses one transaction, not the whole history.

    The statements are SQLAlchemy core ``insert()``, compiled once per table and column set,
    and run with the driver's executemany on values already in the form the column stores
    (naive UTC times, JSON text): SQLAlchemy's per-value processing cost three times the
    insert itself.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.buffers: dict[str, list[dict[str, Any]]] = {t.name: [] for t in _ORDER}
        self.counts: dict[str, int] = {t.name: 0 for t in _ORDER}
        self.buffered = 0
        self.uncommitted = 0
        self._stack: AsyncExitStack | None = None
        self._session: AsyncSession | None = None
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[str, list[Any]]] = {}

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.buffers[table].append(row)
        self.buffered += 1

    async def flush(self, *, commit: bool = False) -> None:
        if self.buffered:
            session = await self._transaction()
            connection = await session.connection()
            for table in _ORDER:
                rows = self.buffers[table.name]
                if rows:
                    sql, converters = self._statement(table, tuple(rows[0]), connection.dialect)
                    pairs = list(zip(rows[0], converters, strict=True))
                    for start in range(0, len(rows), CHUNK_ROWS):
                        values = [
                            tuple(row[c] if f is None else f(row[c]) for c, f in pairs)
                            for row in rows[start : start + CHUNK_ROWS]
                        ]
                        if connection.dialect.name == "postgresql":
                            # COPY: five times asyncpg's executemany, in the same transaction.
                            raw = await connection.get_raw_connection()
                            driver: Any = raw.driver_connection  # asyncpg's own connection
                            await driver.copy_records_to_table(
                                table.name, records=values, columns=list(rows[0])
                            )
                        else:
                            await connection.exec_driver_sql(sql, values)
                self.counts[table.name] += len(rows)
                self.buffers[table.name] = []
            self.uncommitted += self.buffered
            self.buffered = 0
        if self._stack is not None and (commit or self.uncommitted >= COMMIT_ROWS):
            await self._stack.aclose()
            self._stack, self._session, self.uncommitted = None, None, 0

    def _statement(
        self, table: Table, columns: tuple[str, ...], dialect: Any
    ) -> tuple[str, list[Any]]:
        key = (table.name, columns)
        if key not in self._compiled:
            compiled = (
                insert(table).values({c: bindparam(c) for c in columns}).compile(dialect=dialect)
            )
            order = list(compiled.positiontup or ())
            if order != list(columns):  # the dialect's placeholders are positional, in order
                raise RuntimeError(f"unexpected parameter order for {table.name}: {order}")
            sqlite = dialect.name == "sqlite"
            converters: list[Any] = []
            for name in columns:
                column = table.c[name]
                if isinstance(column.type, UTCDateTime):
                    converters.append(_sqlite_time if sqlite else None)
                elif isinstance(column.type, JSON):
                    converters.append(_json)
                elif isinstance(column.type, EncryptedJSON | EncryptedText):
                    # encrypted at rest when a key is set (voicebot/store/encryption.py)
                    converters.append(partial(column.type.process_bind_param, dialect=dialect))
                else:
                    converters.append(None)
            self._compiled[key] = (str(compiled), converters)
        return self._compiled[key]

    async def _transaction(self) -> AsyncSession:
        if self._session is None:
            self._stack = AsyncExitStack()
            self._session = await self._stack.enter_async_context(self.db.transaction())
        return self._session

    async def abort(self) -> None:
        if self._stack is not None:
            try:
                await self._stack.__aexit__(RuntimeError, RuntimeError("seeding failed"), None)
            finally:
                self._stack, self._session = None, None


def _sqlite_time(value: dt.datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format, microseconds always written, so the text
    # sorts (and compares in SQL) as the time does.
    return None if value is None else value.isoformat(" ", "microseconds")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# -- the simulation's objects --------------------------------------------------------------------


class _SimAgent:
    __slots__ = (
        "break_pending",
        "busy",
        "db_id",
        "off_pending",
        "on_duty",
        "primary",
        "queues",
        "shifts",
        "skills",
        "username",
    )

    def __init__(self, username: str, primary: str, skills: dict[str, int]) -> None:
        self.username = username
        self.primary = primary
        self.skills = skills
        self.queues: list[str] = []
        self.db_id = 0
        self.busy = False  # offered, talking or wrapping up
        self.on_duty = False  # in a shift and not on a break
        self.break_pending = False
        self.off_pending = False
        self.shifts = 0


class _Entry:
    __slots__ = (
        "agent",
        "call",
        "callback_requested",
        "connected",
        "end_reason",
        "ended",
        "enqueued",
        "handoff",
        "id",
        "kind",
        "n",
        "number",
        "offered",
        "original_queue",
        "overflowed",
        "patience",
        "priority",
        "queue",
        "rows",
        "skills",
        "status",
        "wrapped",
    )

    n: int
    id: str
    call: dict[str, Any]
    handoff: dict[str, Any]
    kind: str
    queue: str
    original_queue: str
    skills: list[str]
    priority: int
    enqueued: float
    patience: float
    number: str
    rows: list[tuple[str, dict[str, Any]]]

    def __init__(self) -> None:
        self.agent: _SimAgent | None = None
        self.callback_requested: float | None = None
        self.connected: float | None = None
        self.offered: float | None = None
        self.ended: float | None = None
        self.wrapped: float | None = None
        self.overflowed: float | None = None
        self.end_reason: str | None = None
        self.status = "waiting"


@dataclass
class _Shift:
    start: float
    end: float
    break_at: float | None


_EPOCH = dt.datetime(1970, 1, 1)


def _utc(t: float) -> dt.datetime:
    """A naive UTC time, to the millisecond: the form the database stores (see _Writer)."""
    return _EPOCH + dt.timedelta(milliseconds=round(t * 1000))


def _pick(rng: random.Random, choices: Sequence[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in choices)
    r = rng.random() * total
    for value, weight in choices:
        r -= weight
        if r < 0:
            return value
    return choices[-1][0]


class _History:
    def __init__(
        self,
        writer: _Writer,
        *,
        queues: Mapping[str, Queue],
        hours: Hours,
        seed: int,
        calls_per_day: int,
        agents: int,
        validate_packets: bool,
    ) -> None:
        self.w = writer
        self.queues = dict(queues)
        self.hours = hours
        self.tz = ZoneInfo(hours.timezone)
        self.rng = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.calls_per_day = calls_per_day
        self.min_agents = agents
        self.validate = validate_packets
        self.default_queue = "general" if "general" in self.queues else next(iter(self.queues))
        self.events: list[tuple[float, int, int, Any]] = []
        self.seq = itertools.count()
        self.idle: dict[str, dict[_SimAgent, None]] = {q: {} for q in self.queues}
        self.waiting: dict[str, list[tuple[int, float, int, _Entry]]] = {q: [] for q in self.queues}
        self.pool: list[_SimAgent] = []
        self.summary_counts = {
            "calls": 0,
            "contained": 0,
            "handoffs": 0,
            "entries": 0,
            "answered": 0,
            "abandoned": 0,
            "callbacks": 0,
        }
        self.call_n = 0
        self.intents = [i for i in INTENTS]
        self._intent_cum = list(itertools.accumulate(i.weight for i in self.intents))
        self._hour_shares = [self._normalise(p) for p in self._profiles()]
        mean = sum(DAY_FACTORS) / 7
        self._day_factors = [f / mean for f in DAY_FACTORS]
        self._load = self._queue_load()
        self._open_slots: dict[int, bool] = {}

    # -- the plan ------------------------------------------------------------------------------

    @staticmethod
    def _normalise(values: Sequence[float]) -> list[float]:
        total = sum(values)
        return [v / total for v in values]

    @staticmethod
    def _profiles() -> list[Sequence[float]]:
        monday = list(WEEKDAY_HOURS)
        for h in range(8, 12):  # the Monday-morning rush: the weekend's problems
            monday[h] *= 1.3
        return [monday, *[WEEKDAY_HOURS] * 4, SATURDAY_HOURS, SUNDAY_HOURS]

    def queue_for(self, name: str) -> str:
        return name if name in self.queues else self.default_queue

    def _queue_load(self) -> dict[str, float]:
        """Of all calls, the share each queue receives while open (the staffing plan's input)."""
        total = sum(i.weight for i in self.intents)
        load = dict.fromkeys(self.queues, 0.0)
        for intent in self.intents:
            share = intent.weight / total * intent.handoff * (1 - ANGRY_SHARE - BOT_HANGUP)
            load[self.queue_for(intent.queue)] += share
        load[self.queue_for("care")] += ANGRY_SHARE
        return load

    def talk_mean(self, queue: str) -> float:
        return float(TALK_SECONDS.get(queue, self.queues[queue].aht_seconds * 0.8))

    def expected_calls(self, day: dt.date, hour: int) -> float:
        factor = HOLIDAY_FACTOR if day in self.hours.holidays else 1.0
        weekday = day.weekday()
        return (
            self.calls_per_day * self._day_factors[weekday] * self._hour_shares[weekday][hour]
        ) * factor

    def open_span(self, day: dt.date) -> tuple[float, float] | None:
        """The first and last open minute of a local day (15-minute resolution)."""
        first = last = None
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=self.tz)
        for slot in range(96):
            local = midnight + dt.timedelta(minutes=15 * slot)
            if is_open(self.hours, local + dt.timedelta(minutes=7)):
                at = local.timestamp()
                first = at if first is None else first
                last = at + 900
        return None if first is None or last is None else (first, last)

    def is_open(self, at: float) -> bool:
        """The bot's hours at ``at``, by 15-minute slot (every zone's offset is a multiple of
        15 minutes, so a slot is open or closed as a whole)."""
        slot = int(at // 900)
        known = self._open_slots.get(slot)
        if known is None:
            moment = dt.datetime.fromtimestamp(slot * 900 + 450, dt.UTC)
            known = self._open_slots[slot] = is_open(self.hours, moment)
        return known

    def need(self, queue: str, day: dt.date, hours: range) -> int:
        """Agents the busiest of these local hours needs for the queue's service level."""
        config = self.queues[queue]
        aht = self.talk_mean(queue) + WRAP_SECONDS
        best = 0
        for hour in hours:
            rate = self.expected_calls(day, hour) * self._load[queue] / 3600
            if rate <= 0:
                continue
            traffic = rate * aht
            target = float(config.sla_seconds if config.sla_seconds is not None else 20)
            needed = agents_for_service_level(traffic, aht, target, config.service_level / 100)
            best = max(best, needed)
        return best

    def shift_counts(self, day: dt.date, span: tuple[float, float]) -> dict[str, list[int]]:
        """Per queue, agents on the early and the late shift (one shift on a short day)."""
        start, end = span
        first_hour = dt.datetime.fromtimestamp(start, self.tz).hour
        last_hour = dt.datetime.fromtimestamp(end - 1, self.tz).hour
        counts: dict[str, list[int]] = {}
        for queue in self.queues:
            if end - start <= 9 * 3600:
                counts[queue] = [self.need(queue, day, range(first_hour, last_hour + 1))]
            else:
                middle = (first_hour + last_hour + 1) // 2
                counts[queue] = [
                    self.need(queue, day, range(first_hour, middle)),
                    self.need(queue, day, range(middle, last_hour + 1)),
                ]
        return counts

    def build_pool(self, days: Sequence[dt.date]) -> None:
        """Agents per queue for the busiest day's shifts plus days off; at least ``agents``."""
        per_queue = dict.fromkeys(self.queues, 0)
        for day in days[-7:] if len(days) > 7 else days:
            span = self.open_span(day)
            if span is None:
                continue
            for queue, counts in self.shift_counts(day, span).items():
                per_queue[queue] = max(per_queue[queue], math.ceil(sum(counts) * 1.2))
        per_queue = {q: max(2, n) for q, n in per_queue.items()}
        busiest = sorted(self.queues, key=lambda q: -self._load[q])
        extra = itertools.cycle(busiest)
        while sum(per_queue.values()) < self.min_agents:
            per_queue[next(extra)] += 1
        names = (
            f"{PREFIX}{AGENT_NAMES[i % len(AGENT_NAMES)]}"
            + (str(i // len(AGENT_NAMES) + 1) if i >= len(AGENT_NAMES) else "")
            for i in itertools.count()
        )
        others = [q for q in self.queues if q != self.default_queue]
        for queue in busiest:
            for _ in range(per_queue[queue]):
                skills = dict.fromkeys(self.queues[queue].skills, self.rng.randint(5, 9))
                if queue != self.default_queue and self.rng.random() < 0.5:
                    skills.update(dict.fromkeys(self.queues[self.default_queue].skills, 4))
                elif queue == self.default_queue and others and self.rng.random() < 0.3:
                    second = self.rng.choice(others)
                    skills.update(dict.fromkeys(self.queues[second].skills, 4))
                if queue == self.queue_for("care"):
                    skills.setdefault("retention", 6)
                agent = _SimAgent(next(names), queue, skills)
                agent.queues = [
                    q for q, c in self.queues.items() if all(skills.get(s, 0) > 0 for s in c.skills)
                ]
                self.pool.append(agent)

    # -- events ----------------------------------------------------------------------------

    ARRIVE, FREE, SHIFT_START, BREAK, BREAK_END, SHIFT_END, OVERFLOW, TO_CALLBACK, RING = range(9)

    def push(self, at: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.events, (at, next(self.seq), kind, payload))

    def state(self, agent: _SimAgent, state: str, at: float, reason: str | None = None) -> None:
        self.w.add(
            "agent_states",
            {"agent_id": agent.db_id, "state": state, "at": _utc(at), "reason": reason},
        )

    def plan_day(self, day: dt.date, end: float) -> None:
        span = self.open_span(day)
        if span is None:
            return
        open_at, close_at = span
        if open_at >= end:
            return
        counts = self.shift_counts(day, span)
        for queue, shifts in counts.items():
            staff = sorted(
                (a for a in self.pool if a.primary == queue),
                key=lambda a: (a.shifts, self.rng.random()),
            )
            length = min(8 * 3600, close_at - open_at)
            bounds = (
                [(open_at, close_at)]
                if len(shifts) == 1
                else [(open_at, open_at + length), (close_at - length, close_at)]
            )
            for (start, stop), wanted in zip(bounds, shifts, strict=True):
                # Sick days and short-staffed shifts: the service level varies from day to day.
                wanted = max(1, round(wanted * self.rng.uniform(0.85, 1.08)))
                for agent in staff[:wanted]:
                    agent.shifts += 1
                    begin = start + self.rng.uniform(-300, 120)
                    finish = min(stop + self.rng.uniform(-120, 300), end)
                    if finish <= begin:
                        continue
                    break_at = None
                    if finish - begin > 5 * 3600:
                        break_at = begin + (finish - begin) / 2 + self.rng.uniform(-1800, 1800)
                    self.push(begin, self.SHIFT_START, (agent, _Shift(begin, finish, break_at)))
                del staff[:wanted]

    def run_until(self, until: float) -> None:
        events = self.events
        while events and events[0][0] < until:
            at, _, kind, payload = heapq.heappop(events)
            if kind == self.ARRIVE:
                self.arrive(payload, at)
            elif kind == self.FREE:
                self.free(payload, at)
            elif kind == self.RING:
                entry = payload
                assert entry.agent is not None
                self.state(entry.agent, "busy", at)
            elif kind == self.SHIFT_START:
                agent, shift = payload
                agent.on_duty, agent.break_pending, agent.off_pending = True, False, False
                self.state(agent, "available", at, "shift start")
                if shift.break_at is not None:
                    self.push(shift.break_at, self.BREAK, agent)
                self.push(shift.end, self.SHIFT_END, agent)
                self.become_idle(agent, at)
            elif kind == self.BREAK:
                if payload.busy:
                    payload.break_pending = True
                elif payload.on_duty:
                    self.go_break(payload, at)
            elif kind == self.BREAK_END:
                if not payload.off_pending:
                    payload.on_duty = True
                    self.state(payload, "available", at, "back from break")
                    self.become_idle(payload, at)
            elif kind == self.SHIFT_END:
                if payload.busy:
                    payload.off_pending = True
                else:
                    self.go_off(payload, at)
            elif kind == self.OVERFLOW:
                self.overflow(payload, at)
            elif kind == self.TO_CALLBACK:
                self.to_callback(payload, at)

    def leave_idle(self, agent: _SimAgent) -> None:
        for queue in agent.queues:
            self.idle[queue].pop(agent, None)

    def go_break(self, agent: _SimAgent, at: float) -> None:
        self.leave_idle(agent)
        agent.on_duty = False
        self.state(agent, "away", at, "break")
        self.push(at + BREAK_SECONDS * self.rng.uniform(0.8, 1.2), self.BREAK_END, agent)

    def go_off(self, agent: _SimAgent, at: float) -> None:
        self.leave_idle(agent)
        agent.on_duty, agent.off_pending = False, False
        self.state(agent, "offline", at, "shift end")

    def become_idle(self, agent: _SimAgent, at: float) -> None:
        """A free agent takes the best waiting caller of their queues, or waits for one."""
        entry = self.next_waiting(agent, at)
        if entry is not None:
            self.assign(entry, agent, at)
            return
        for queue in agent.queues:
            self.idle[queue][agent] = None  # dicts keep order: the first is the longest idle

    def next_waiting(self, agent: _SimAgent, at: float) -> _Entry | None:
        best: tuple[int, float, int, _Entry] | None = None
        for queue in agent.queues:
            heap = self.waiting[queue]
            while heap:
                top = heap[0]
                entry = top[3]
                if entry.status != "waiting" or entry.queue != queue:
                    heapq.heappop(heap)  # taken, or moved by an overflow: a stale copy
                    continue
                if entry.patience <= at:
                    heapq.heappop(heap)
                    self.abandon(entry, entry.patience)
                    continue
                if best is None or top[:3] < best[:3]:
                    best = top
                break
        if best is None:
            return None
        entry = best[3]
        heapq.heappop(self.waiting[entry.queue])
        return entry

    def arrive(self, entry: _Entry, at: float) -> None:
        idle = self.idle[entry.queue]
        if idle:
            self.assign(entry, next(iter(idle)), at)
            return
        heapq.heappush(self.waiting[entry.queue], (-entry.priority, entry.enqueued, entry.n, entry))
        config = self.queues[entry.queue]
        if config.overflow_after and config.overflow_to in self.queues and entry.kind == "call":
            self.push(at + config.overflow_after, self.OVERFLOW, entry)
        if (
            entry.kind == "call"
            and entry.queue == self.queue_for("sales")
            and entry.patience > at + 90
            and self.rng.random() < WAIT_CALLBACK
        ):
            self.push(at + 90 + self.rng.uniform(0, 60), self.TO_CALLBACK, entry)

    def overflow(self, entry: _Entry, at: float) -> None:
        if entry.status != "waiting" or entry.patience <= at:
            return
        target = self.queues[entry.queue].overflow_to
        assert target is not None
        entry.queue, entry.overflowed = target, at
        entry.skills = sorted(self.queues[target].skills)
        idle = self.idle[target]
        if idle:
            self.assign(entry, next(iter(idle)), at)
        else:
            heapq.heappush(self.waiting[target], (-entry.priority, entry.enqueued, entry.n, entry))

    def to_callback(self, entry: _Entry, at: float) -> None:
        if entry.status != "waiting" or entry.patience <= at or entry.kind != "call":
            return
        entry.kind = "callback"
        entry.patience = math.inf
        entry.callback_requested = entry.enqueued
        entry.call["outcome"] = "callback"
        entry.call["ended_at"] = _utc(at)

    def assign(self, entry: _Entry, agent: _SimAgent, at: float) -> None:
        self.leave_idle(agent)
        agent.busy = True
        entry.status = "connected"
        entry.agent = agent
        entry.offered = at
        ring = self.rng.uniform(2, 8) if entry.kind == "call" else self.rng.uniform(10, 25)
        entry.connected = at + ring
        rng = self.rng
        if entry.kind == "callback" and rng.random() < 0.12:
            talk = rng.uniform(0, 20)  # nobody picked up
        else:
            talk = rng.lognormvariate(math.log(self.talk_mean(entry.original_queue)) - 0.18, 0.6)
        entry.ended = entry.connected + talk
        entry.wrapped = entry.ended + rng.lognormvariate(math.log(WRAP_SECONDS) - 0.08, 0.4)
        entry.end_reason = "agent ended" if rng.random() < 0.8 else "caller hung up"
        self.state(agent, "offered", at)
        self.push(entry.connected, self.RING, entry)
        self.push(entry.ended, self.FREE, entry)  # FREE fires twice: the end, then wrap-up over

    def free(self, entry: _Entry, at: float) -> None:
        agent = entry.agent
        assert agent is not None
        if entry.status == "connected":
            entry.status = "wrap_up"
            self.state(agent, "wrap_up", at)
            assert entry.wrapped is not None
            self.push(entry.wrapped, self.FREE, entry)
            return
        entry.status = "done"
        self.finish(entry)
        agent.busy = False
        if agent.off_pending:
            self.go_off(agent, at)
        elif agent.break_pending:
            agent.break_pending = False
            self.state(agent, "available", at, "wrap-up time over")
            self.go_break(agent, at)
        elif agent.on_duty:
            self.state(agent, "available", at, "wrap-up time over")
            self.become_idle(agent, at)

    def abandon(self, entry: _Entry, at: float, reason: str = "caller hung up") -> None:
        entry.status = "abandoned"
        entry.ended = at
        entry.end_reason = reason
        if entry.kind == "call":
            entry.call["outcome"] = "abandoned"
            entry.call["ended_at"] = _utc(at)
        self.finish(entry)

    # -- rows ------------------------------------------------------------------------------

    def finish(self, entry: _Entry) -> None:
        """The entry is over: its call, handoff, entry, offer, callback and disposition rows."""
        call = entry.call
        counts = self.summary_counts
        agent = entry.agent
        if entry.status == "done":
            assert agent is not None and entry.ended is not None and entry.wrapped is not None
            code = (
                "no_answer"
                if entry.kind == "callback" and entry.ended - (entry.connected or 0) < 20
                else _pick(self.rng, DISPOSITIONS)
            )
            if entry.kind == "call":
                call["ended_at"] = _utc(entry.ended)
                counts["answered"] += 1
            call["disposition"] = code
            self.w.add("calls", call)
        else:
            if entry.kind == "call":
                counts["abandoned"] += 1
            self.w.add("calls", call)
        self.w.add("handoffs", entry.handoff)
        self.w.add(
            "queue_entries",
            {
                "id": entry.id,
                "handoff_id": entry.handoff["id"],
                "call_id": call["id"],
                "kind": entry.kind,
                "media": "voice",  # the demo's history is calls (the column has a default)
                "queue": entry.queue,
                "original_queue": entry.original_queue,
                "skills": entry.skills,
                "priority": entry.priority,
                "enqueued_at": _utc(entry.enqueued),
                "status": entry.status,
                "offered_to": agent.db_id if agent else None,
                "offered_at": _utc(entry.offered) if entry.offered else None,
                "offer_expires_at": None,
                "agent_id": agent.db_id if agent else None,
                "connected_at": _utc(entry.connected) if entry.connected else None,
                "ended_at": _utc(entry.ended) if entry.ended else None,
                "wrap_up_until": _utc(entry.ended + 30) if entry.wrapped and entry.ended else None,
                "wrapped_at": _utc(entry.wrapped) if entry.wrapped else None,
                "overflowed_at": _utc(entry.overflowed) if entry.overflowed else None,
                "callback_number": entry.number if entry.kind == "callback" else None,
                "audio_node": None,
                "flag": None,
                "end_reason": entry.end_reason,
            },
        )
        if agent is not None:
            assert entry.offered is not None and entry.connected is not None
            self.w.add(
                "offers",
                {
                    "entry_id": entry.id,
                    "agent_id": agent.db_id,
                    "offered_at": _utc(entry.offered),
                    "outcome": "accepted",
                    "decided_at": _utc(entry.connected),
                },
            )
        if entry.kind == "callback":
            counts["callbacks"] += 1
            requested = entry.callback_requested or entry.enqueued
            self.w.add(
                "callbacks",
                {
                    "entry_id": entry.id,
                    "handoff_id": entry.handoff["id"],
                    "number": entry.number,
                    "requested_at": _utc(requested),
                    "status": "done",
                    "started_at": _utc(entry.offered) if entry.offered else None,
                    "agent_id": agent.db_id if agent else None,
                },
            )
        if entry.status == "done":
            assert agent is not None and entry.wrapped is not None
            self.w.add(
                "dispositions",
                {
                    "entry_id": entry.id,
                    "agent_id": agent.db_id,
                    "code": call["disposition"],
                    "notes": "",
                    "at": _utc(entry.wrapped),
                },
            )
        for table, row in entry.rows:
            self.w.add(table, row)

    def days_calls(self, day: dt.date, end: float) -> None:
        """Every call of one local day, in time order, up to ``end``."""
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=self.tz)
        expected = np.array([self.expected_calls(day, h) for h in range(24)])
        expected *= self.np.lognormal(0, 0.06)  # the day's own level
        counts = self.np.poisson(expected)
        times: list[float] = []
        for hour, count in enumerate(counts):
            start = (midnight + dt.timedelta(hours=hour)).timestamp()
            stop = (midnight + dt.timedelta(hours=hour + 1)).timestamp()
            times.extend((start + self.np.random(int(count)) * (stop - start)).tolist())
        times.sort()
        for started in times:
            if started >= end:
                break
            self.call(started)

    def call(self, t0: float) -> None:
        rng = self.rng
        self.call_n += 1
        n = self.call_n
        call_id = f"{PREFIX}c{n:08d}"
        intent = self.intents[bisect.bisect(self._intent_cum, rng.random() * self._intent_cum[-1])]
        channel = _pick(rng, CHANNELS)
        voice = channel in ("sip", "softphone")
        number = f"+447700900{rng.randrange(1000):03d}" if channel != "chat" else None
        known = rng.random() < 0.6
        name = NAMES[rng.randrange(len(NAMES))] if known else None
        vip = known and rng.random() < 0.06
        angry = rng.random() < ANGRY_SHARE
        hangs_up = not angry and rng.random() < BOT_HANGUP
        open_now = self.is_open(t0)
        wants_handoff = angry or (not hangs_up and rng.random() < intent.handoff)
        after_hours = wants_handoff and not open_now
        callback = False
        if after_hours:
            if intent.closed_ends or rng.random() >= AFTER_HOURS_CALLBACK:
                wants_handoff = False  # the bot says when the lines are open and ends the call
            else:
                callback = True
        turns: list[tuple[str, str, float, str | None]] = []
        events: list[dict[str, Any]] = []
        t = t0
        turns.append(("bot", GREETING, t, None))
        t += 3.5 + rng.random() * 1.5
        said = intent.said[rng.randrange(len(intent.said))]
        lines: list[tuple[str, str]] = [("caller", said)]
        if wants_handoff or hangs_up:
            lines.extend(intent.script[: rng.randint(0, 2)])
        else:
            lines.extend(intent.script)
        first = True
        for role, words in lines:
            if role == "bot":
                turns.append((role, words, t, None))
                t += 0.6 + len(words) * 0.06
                continue
            turns.append((role, words, t, intent.name if first else None))
            first = False
            t += 1.0 + len(words) * 0.07 if voice else 4 + rng.random() * 8
            if voice:
                latency = rng.lognormvariate(6.4, 0.28)  # median ~600 ms, p95 ~950 ms
                events.append(
                    {
                        "call_id": call_id,
                        "at": _utc(t),
                        "kind": "turn",
                        "name": None,
                        "label": _pick(rng, TURN_ENDS) if role == "caller" else "dtmf",
                        "value": round(latency, 1),
                    }
                )
                t += latency / 1000
        if intent.name == "question" and not wants_handoff and rng.random() < 0.3:
            question = UNANSWERED[min(int(rng.expovariate(0.35)), len(UNANSWERED) - 1)]
            events.append(
                {
                    "call_id": call_id,
                    "at": _utc(t),
                    "kind": "no_answer",
                    "name": question,
                    "label": None,
                    "value": None,
                }
            )
        queue = self.queue_for("care" if angry else intent.queue)
        if angry:
            reason = Reason("angry", "caller is angry", 1.0)
        elif callback:
            reason = Reason("after_hours", "outside opening hours: callback requested", 1.0)
        else:
            reason = _pick(rng, [(r, r.weight) for r in intent.reasons])
        if wants_handoff:
            announce = f"I'll put you through to our {queue} team."
            if callback:
                announce = "We're closed right now. An adviser will call you back when we open."
            turns.append(("bot", announce, t, None))
            t += 0.6 + len(announce) * 0.06
        if intent.flow is not None:
            if intent.verify:
                verify_label = (
                    "handoff"
                    if wants_handoff and reason.text == "could not verify account"
                    else "abandoned"
                    if hangs_up
                    else "completed"
                )
                events.append(
                    {
                        "call_id": call_id,
                        "at": _utc(t),
                        "kind": "flow",
                        "name": "verify",
                        "label": verify_label,
                        "value": None,
                    }
                )
            label = "handoff" if wants_handoff else "abandoned" if hangs_up else "completed"
            events.append(
                {
                    "call_id": call_id,
                    "at": _utc(t),
                    "kind": "flow",
                    "name": intent.flow,
                    "label": label,
                    "value": None,
                }
            )
        if angry:
            anger = rng.uniform(0.82, 1.0)
            sentiment = max(-1.0, min(1.0, rng.gauss(-0.6, 0.15)))
        else:
            anger = rng.random() ** 3 * 0.6
            sentiment = max(-1.0, min(1.0, rng.gauss(-0.1 if wants_handoff else 0.18, 0.25)))
        self.summary_counts["calls"] += 1
        turn_rows = [
            {
                "call_id": call_id,
                "seq": seq,
                "role": role,
                "text": text,
                "at": _utc(at),
                "intent": said_intent,
            }
            for seq, (role, text, at, said_intent) in enumerate(turns)
        ]
        call: dict[str, Any] = {
            "id": call_id,
            "started_at": _utc(t0),
            "ended_at": _utc(t),
            "channel": channel,
            "caller_number": number,
            "caller_name": name,
            "vip": vip,
            "intent": intent.name,
            "outcome": "ended",
            "disposition": None,
            "sentiment": round(sentiment, 3),
            "anger": round(anger, 3),
            "language": "en-GB",
            "bot_ended_at": _utc(t),
            # the identity a customer's contacts are kept under (voicebot/channels/identity.py)
            "customer_id": f"tel:{number}" if number else None,
        }
        children = [("turns", r) for r in turn_rows] + [("call_events", e) for e in events]
        if not wants_handoff:
            self.summary_counts["contained"] += 1
            if hangs_up:
                call["disposition"] = None
            elif intent.name is not None:
                call["disposition"] = "caller_goodbye"
            self.w.add("calls", call)
            for table, row in children:
                self.w.add(table, row)
            return
        self.summary_counts["handoffs"] += 1
        self.summary_counts["entries"] += 1
        call["outcome"] = "handoff"
        priority = "high" if angry else intent.priority
        if reason.kind == "technical" and intent.name == "lost_phone":
            priority = "urgent"
        entry = _Entry()
        entry.n = n
        entry.id = f"{PREFIX}e{n:08d}"
        entry.call = call
        entry.kind = "callback" if callback else "call"
        entry.queue = entry.original_queue = queue
        entry.skills = sorted({*self.queues[queue].skills, *intent.skills})
        entry.priority = (
            PRIORITY_SCORE[priority]
            + (VIP_BONUS if vip else 0)
            + (ANGER_BONUS if anger >= ANGER_THRESHOLD else 0)
        )
        entry.enqueued = t
        entry.number = number or f"+447700900{rng.randrange(1000):03d}"
        if callback:
            entry.patience = math.inf
            entry.callback_requested = t
        else:
            entry.patience = t + rng.expovariate(1 / PATIENCE_SECONDS)
        entry.handoff = self.handoff_row(
            n, call, intent, queue, priority, reason, turns, entry, sentiment, anger, t
        )
        entry.rows = children
        self.push(t, self.ARRIVE, entry)

    def handoff_row(
        self,
        n: int,
        call: dict[str, Any],
        intent: Intent,
        queue: str,
        priority: str,
        reason: Reason,
        turns: list[tuple[str, str, float, str | None]],
        entry: _Entry,
        sentiment: float,
        anger: float,
        at: float,
    ) -> dict[str, Any]:
        handoff_id = f"{PREFIX}h{n:08d}"
        created = _utc(at)
        stamp = created.isoformat() + "Z"
        verified = intent.verify and reason.kind != "no_match"
        slots: dict[str, Any] = {"account_number": "****5678"} if verified else {}
        who = call["caller_name"] or "The caller"
        topic = (intent.name or "something unclear").replace("_", " ")
        packet: dict[str, Any] = {
            "id": handoff_id,
            "call_id": call["id"],
            "created_at": stamp,
            "caller": {
                "number": call["caller_number"],
                "name": call["caller_name"],
                "vip": call["vip"],
                "attributes": {"channel": call["channel"]},
            },
            "language": "en-GB",
            "intent": {
                "name": intent.name,
                "confidence": round(0.62 + self.rng.random() * 0.35, 3),
            },
            "summary": f"{who} called about {topic}; {reason.text}.",
            "transcript": [
                {"role": role, "text": text, "at": _utc(t).isoformat() + "Z", "intent": said}
                for role, text, t, said in turns
            ],
            "slots": slots,
            "verified": verified,
            "sentiment": {
                "anger": round(anger, 3),
                "score": round(sentiment, 3),
                "trend": [0.0, round(sentiment, 3)],
            },
            "sources": [],
            "queue": queue,
            "skills": list(intent.skills),
            "priority": priority,
            "reason": reason.text,
            "reason_kind": reason.kind,
            "flow": intent.flow,
            "step": None,
            "callback": (
                {"number": entry.number, "requested_at": stamp}
                if entry.kind == "callback"
                else None
            ),
            "estimated_wait": None,
            "channel": call["channel"],
            "customer_id": call["customer_id"],
            "history": [],
        }
        if self.validate:
            packet = HandoffPacket.model_validate(packet).model_dump(mode="json")
        return {
            "id": handoff_id,
            "call_id": call["id"],
            "created_at": created,
            "queue": queue,
            "priority": priority,
            "reason": reason.text,
            "intent": intent.name,
            "packet": packet,
            "reason_kind": reason.kind,
        }

    def sweep(self, at: float) -> None:
        """After the last event: callers still waiting have given up; callbacks nobody made by
        the end of the history are closed, so the live ACD never routes a demo entry."""
        for heap in self.waiting.values():
            for _, _, _, entry in heap:
                if entry.status != "waiting":
                    continue
                if entry.kind == "callback":
                    self.abandon(entry, max(at, entry.enqueued), "demo history ended")
                else:
                    self.abandon(entry, entry.patience)
            heap.clear()


# -- the public functions ------------------------------------------------------------------------


async def demo_rows(db: Database) -> int:
    """How many demo calls and agents there are (0: none)."""
    async with db.session() as session:
        calls = await session.scalar(
            select(func.count()).select_from(Call).where(Call.id.like(f"{PREFIX}%"))
        )
        agents = await session.scalar(
            select(func.count()).select_from(Agent).where(Agent.username.like(f"{PREFIX}%"))
        )
    return int(calls or 0) + int(agents or 0)


async def seed_history(
    db: Database,
    *,
    days: int = 30,
    calls_per_day: int = 400,
    end: dt.datetime | None = None,
    seed: int = 1,
    queues: Mapping[str, Queue] | None = None,
    agents: int = 12,
    bulk: bool = True,
    hours: Hours | None = None,
) -> SeedSummary:
    """Write ``days`` local days of demo history ending at ``end`` (default now).

    ``calls_per_day`` is the mean over a week (Mondays get more, Sundays far fewer).
    ``agents`` is the least number of demo agents; more are added when the volume needs
    them to staff the queues. ``bulk=False`` builds every handoff packet through
    :class:`HandoffPacket` (slower; the stored JSON is the same). ``hours`` (default the
    example bot's) gives the time zone and when the queues are open.
    """
    if not 1 <= days <= 400:
        raise HistoryError(f"days must be 1-400, got {days}")
    if not 1 <= calls_per_day <= 1_000_000:
        raise HistoryError(f"calls per day must be 1-1000000, got {calls_per_day}")
    if not 0 <= agents <= 5000:
        raise HistoryError(f"agents must be 0-5000, got {agents}")
    queues = dict(queues) if queues else dict(DEFAULT_QUEUES)
    hours = hours or DEFAULT_HOURS
    end = (end or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    tz = ZoneInfo(hours.timezone)
    last_day = end.astimezone(tz).date()
    day_list = [last_day - dt.timedelta(days=days - 1 - i) for i in range(days)]
    start = dt.datetime.combine(day_list[0], dt.time(), tzinfo=tz).astimezone(dt.UTC)
    began = time.perf_counter()
    writer = _Writer(db)
    history = _History(
        writer,
        queues=queues,
        hours=hours,
        seed=seed,
        calls_per_day=calls_per_day,
        agents=agents,
        validate_packets=not bulk,
    )
    history.build_pool(day_list)
    await _insert_agents(db, history.pool, start)
    end_t = end.timestamp()
    try:
        for day in day_list:
            history.plan_day(day, end_t)
            history.days_calls(day, end_t)
            next_midnight = dt.datetime.combine(
                day + dt.timedelta(days=1), dt.time(), tzinfo=tz
            ).timestamp()
            history.run_until(min(next_midnight, end_t))
            await writer.flush()
        history.run_until(math.inf)  # calls in progress at the end finish as they would have
        history.sweep(end_t)
        for agent in history.pool:
            if agent.on_duty:
                history.go_off(agent, end_t)
        await writer.flush(commit=True)
        await _final_agent_states(db, history.pool)
    except BaseException:
        await writer.abort()
        raise
    counts = history.summary_counts
    summary = SeedSummary(
        start=start,
        end=end,
        days=days,
        agents=len(history.pool),
        rows={**writer.counts, "agents": len(history.pool)},
        **counts,
    )
    summary.seconds = time.perf_counter() - began
    return summary


async def _insert_agents(db: Database, pool: list[_SimAgent], at: dt.datetime) -> None:
    async with db.transaction() as session:
        await session.execute(
            insert(Agent.__table__),  # type: ignore[arg-type]
            [
                {
                    "username": agent.username,
                    "display_name": agent.username.removeprefix(PREFIX).title() + " (demo)",
                    "role": "agent",
                    "password_hash": NO_PASSWORD,
                    "skills": agent.skills,
                    "active": True,
                    "state": "offline",
                    "state_since": at,
                    "idle_since": None,
                    "wrap_up_until": None,
                    "created_at": at,
                }
                for agent in pool
            ],
        )
        ids = dict(
            (
                await session.execute(
                    select(Agent.username, Agent.id).where(Agent.username.like(f"{PREFIX}%"))
                )
            ).all()
        )
    for agent in pool:
        agent.db_id = ids[agent.username]


async def _final_agent_states(db: Database, pool: list[_SimAgent]) -> None:
    """Every demo agent ends offline, since their last state change (the ACD offers nothing to
    an offline agent)."""
    async with db.transaction() as session:
        last = dict(
            (
                await session.execute(
                    select(AgentStateChange.agent_id, func.max(AgentStateChange.at))
                    .where(AgentStateChange.agent_id.in_([a.db_id for a in pool]))
                    .group_by(AgentStateChange.agent_id)
                )
            ).all()
        )
        for agent in pool:
            since = last.get(agent.db_id)
            if since is not None:
                row = await session.get(Agent, agent.db_id)
                assert row is not None
                row.state, row.state_since = "offline", since


async def clear_history(db: Database) -> dict[str, int]:
    """Delete every demo row (children first, so no cascade has to look for them); rows that
    are not the demo's are untouched. Returns the rows deleted per table."""
    like = f"{PREFIX}%"
    removed: dict[str, int] = {}
    async with db.transaction() as session:
        demo_agents = select(Agent.id).where(Agent.username.like(like)).scalar_subquery()
        statements = [
            ("call_events", delete(CallEvent).where(CallEvent.call_id.like(like))),
            ("turns", delete(Turn).where(Turn.call_id.like(like))),
            ("call_reviews", delete(CallReview).where(CallReview.call_id.like(like))),
            ("dispositions", delete(Disposition).where(Disposition.entry_id.like(like))),
            ("callbacks", delete(Callback).where(Callback.entry_id.like(like))),
            ("offers", delete(Offer).where(Offer.entry_id.like(like))),
            ("queue_entries", delete(QueueEntry).where(QueueEntry.id.like(like))),
            ("handoffs", delete(Handoff).where(Handoff.id.like(like))),
            ("calls", delete(Call).where(Call.id.like(like))),
            (
                "agent_states",
                delete(AgentStateChange).where(AgentStateChange.agent_id.in_(demo_agents)),
            ),
            ("sessions", delete(UserSession).where(UserSession.agent_id.in_(demo_agents))),
            ("agents", delete(Agent).where(Agent.username.like(like))),
        ]
        if db.is_postgres:
            # PostgreSQL checks each deleted handoff's references with a scan of queue_entries
            # and callbacks (no index on handoff_id), dead demo rows included: quadratic. An
            # index for this transaction makes each check a look-up.
            for name, column in (("queue_entries", "handoff_id"), ("callbacks", "handoff_id")):
                await session.execute(text(f"CREATE INDEX demo_clear_{name} ON {name} ({column})"))
        for table, statement in statements:
            # Nothing loaded to keep in step: no ORM fetch of the deleted rows' keys.
            result = await session.execute(statement.execution_options(synchronize_session=False))
            removed[table] = int(getattr(result, "rowcount", 0) or 0)
        if db.is_postgres:
            for name in ("queue_entries", "callbacks"):
                await session.execute(text(f"DROP INDEX demo_clear_{name}"))
    return removed
