"""The queue measures every report and the live wallboard share, and the SQL that counts them.

Definitions (docs/reports.md explains them to supervisors). Per queue over a period, counting
call entries (``kind='call'``) by ``enqueued_at`` in the period and by their final ``queue``
(after any overflow):

- offered: entries; answered: ``connected_at`` set; abandoned: status ``abandoned`` and never
  connected; callbacks: ``kind='callback'`` entries created (counted apart, not offered).
- service level %: answered within the queue's target T (``sla_seconds``, default 20) divided
  by (answered + abandoned after T), x 100. A caller who hung up before T does not count
  against the queue. None when nothing counts.
- ASA: the mean wait (``connected_at - enqueued_at``) of answered entries, in seconds.
- abandon rate %: abandoned / (answered + abandoned) x 100.
- AHT: the mean handle time (``coalesce(wrapped_at, ended_at) - connected_at``) of answered
  entries that have ended, in seconds: talk plus wrap-up.

The database does the counting: one ``GROUP BY`` with conditional sums, so a month of entries
never comes into Python row by row. What it returns are *sums* (:class:`EntrySums`), not
ratios, so that figures for several queues or several time buckets add up exactly (the totals
row of a report, an hour made of four 15-minute buckets) before the ratios are taken.
Durations are summed in milliseconds, rounded per entry, so that a wait of exactly 20 s is
"within 20 s" on SQLite too (its ``julianday`` arithmetic is a float, off by microseconds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from voicebot.flows.schema import Queue
from voicebot.store.models import Call, QueueEntry

DEFAULT_SLA_SECONDS = 20
DEFAULT_SL_TARGET = 80


def sla_seconds(queue: Queue | None) -> int:
    """The queue's service level target T in seconds (20 when the bot does not say)."""
    if queue is None or queue.sla_seconds is None:
        return DEFAULT_SLA_SECONDS
    return queue.sla_seconds


# -- SQL helpers for both dialects -------------------------------------------------------------


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def millis_between(later: Any, earlier: Any, *, postgres: bool) -> ColumnElement[Any]:
    """``later - earlier`` in whole milliseconds (both columns naive UTC timestamps)."""
    if postgres:
        return func.round(func.extract("epoch", later - earlier) * 1000)
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86_400_000.0)


def epoch_bucket(column: Any, seconds: int, *, postgres: bool) -> ColumnElement[Any]:
    """The UTC epoch second that starts the ``seconds``-long bucket ``column`` falls in.

    Reports bucket by UTC 15 minutes in SQL and regroup the buckets into local intervals, days
    and hours in Python (voicebot/analytics/reports.py): every time zone's offset is a multiple
    of 15 minutes, so a UTC quarter-hour always lies inside one local quarter-hour, and the
    zone's rules (DST) are applied by ``zoneinfo`` rather than by each database.
    """
    if postgres:
        epoch = cast(func.floor(func.extract("epoch", column)), Integer)
    else:
        epoch = cast(func.strftime("%s", column), Integer)
    # Floor division: SQLAlchemy 2 renders ``/`` as true division, which would group by the
    # second (84k groups for a month) instead of by the quarter-hour (at most 2,880).
    return (epoch // seconds) * seconds


# -- the measures ------------------------------------------------------------------------------


@dataclass
class EntrySums:
    """What the measures are computed from; sums add up across queues and time buckets."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    callbacks: int = 0
    answered_within: int = 0
    abandoned_after: int = 0
    wait_ms: int = 0  # summed over answered entries
    handled: int = 0  # answered entries that have ended (the AHT's count)
    handle_ms: int = 0

    def add(self, other: EntrySums) -> EntrySums:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))
        return self


def _ratio(part: float, whole: float, scale: float = 1.0) -> float | None:
    return None if whole == 0 else part * scale / whole


@dataclass(frozen=True)
class QueueMeasures:
    """One queue's figures over a period (or a total over several queues: ``name`` "total")."""

    name: str
    sla_seconds: int  # T, the service level's target wait
    sl_target: int  # the percentage the queue aims for (its ``service_level``)
    offered: int
    answered: int
    abandoned: int
    callbacks: int
    answered_within: int
    abandoned_after: int
    service_level: float | None  # percent
    asa: float | None  # seconds
    abandon_rate: float | None  # percent
    aht: float | None  # seconds

    @classmethod
    def from_sums(
        cls,
        name: str,
        sums: EntrySums,
        *,
        sla: int = DEFAULT_SLA_SECONDS,
        sl_target: int = DEFAULT_SL_TARGET,
    ) -> QueueMeasures:
        return cls(
            name=name,
            sla_seconds=sla,
            sl_target=sl_target,
            offered=sums.offered,
            answered=sums.answered,
            abandoned=sums.abandoned,
            callbacks=sums.callbacks,
            answered_within=sums.answered_within,
            abandoned_after=sums.abandoned_after,
            service_level=_ratio(sums.answered_within, sums.answered + sums.abandoned_after, 100),
            asa=_ratio(sums.wait_ms, sums.answered, 0.001),
            abandon_rate=_ratio(sums.abandoned, sums.answered + sums.abandoned, 100),
            aht=_ratio(sums.handle_ms, sums.handled, 0.001),
        )


async def entry_sums(
    session: AsyncSession,
    start: dt.datetime,
    end: dt.datetime,
    *,
    queues: Mapping[str, Queue],
    names: Collection[str] | None = None,
    channels: Collection[str] = (),
    by: Sequence[Any] = (),  # columns or expressions
    where: Sequence[ColumnElement[bool]] = (),
) -> list[tuple[tuple[Any, ...], EntrySums]]:
    """The sums for entries enqueued in ``[start, end)``, grouped by ``by`` (e.g. the queue,
    a time bucket, the agent). Each row: the ``by`` values, then their sums.

    ``names`` limits the queues (None: all); ``channels`` limits to entries whose call came
    in on one of them (a join on ``calls.id``).
    """
    postgres = is_postgres(session)
    entry = QueueEntry
    # The target T differs per queue; one CASE keeps it a single pass over the entries.
    targets = {name: sla_seconds(queue) for name, queue in queues.items()}
    differing = {name: t for name, t in targets.items() if t != DEFAULT_SLA_SECONDS}
    target_ms: ColumnElement[Any] = (
        case(
            *((entry.queue == name, literal(t * 1000)) for name, t in differing.items()),
            else_=literal(DEFAULT_SLA_SECONDS * 1000),
        )
        if differing
        else literal(DEFAULT_SLA_SECONDS * 1000)
    )
    is_call = entry.kind == "call"
    answered = and_(is_call, entry.connected_at.is_not(None))
    abandoned = and_(is_call, entry.status == "abandoned", entry.connected_at.is_(None))
    wait = millis_between(entry.connected_at, entry.enqueued_at, postgres=postgres)
    handle_end = func.coalesce(entry.wrapped_at, entry.ended_at)
    handled = and_(answered, handle_end.is_not(None))
    handle = millis_between(handle_end, entry.connected_at, postgres=postgres)
    # An abandoned entry without an end time is counted against the queue: we cannot tell.
    gave_up = millis_between(entry.ended_at, entry.enqueued_at, postgres=postgres)
    after_target = and_(abandoned, func.coalesce(gave_up > target_ms, True))

    def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    def total(condition: ColumnElement[bool], value: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    statement = select(
        *by,
        count(is_call),
        count(answered),
        count(abandoned),
        count(entry.kind == "callback"),
        count(and_(answered, wait <= target_ms)),
        count(after_target),
        total(answered, wait),
        count(handled),
        total(handled, handle),
    ).where(entry.enqueued_at >= start, entry.enqueued_at < end, *where)
    if names is not None:
        statement = statement.where(entry.queue.in_(list(names)))
    if channels:
        statement = statement.join(Call, Call.id == entry.call_id).where(
            Call.channel.in_(list(channels))
        )
    if by:
        statement = statement.group_by(*by)
    rows = (await session.execute(statement)).all()
    width = len(by)
    result = []
    for row in rows:
        values = [int(value or 0) for value in row[width:]]
        sums = EntrySums(*values)
        if width == 0 and sums == EntrySums():
            continue  # an aggregate without GROUP BY always answers one row
        result.append((tuple(row[:width]), sums))
    return result


async def queue_measures(
    session: AsyncSession,
    start: dt.datetime,
    end: dt.datetime,
    *,
    queues: Mapping[str, Queue],
    names: Collection[str] | None = None,
    channels: Collection[str] = (),
) -> dict[str, QueueMeasures]:
    """Each queue's measures over ``[start, end)`` (aware UTC), by the definitions above.

    Every configured queue (or every one in ``names``) is in the answer, with zeros when it
    had no calls; a queue that has entries but is no longer configured is included too when
    ``names`` is None, with the default target, so history is not lost when a queue is renamed.
    """
    rows = await entry_sums(
        session,
        start,
        end,
        queues=queues,
        names=names,
        channels=channels,
        by=[QueueEntry.queue],
    )
    found = {str(keys[0]): sums for keys, sums in rows}
    wanted = list(names) if names is not None else sorted(set(queues) | set(found))
    result: dict[str, QueueMeasures] = {}
    for name in wanted:
        queue = queues.get(name)
        result[name] = QueueMeasures.from_sums(
            name,
            found.get(name, EntrySums()),
            sla=sla_seconds(queue),
            sl_target=queue.service_level if queue is not None else DEFAULT_SL_TARGET,
        )
    return result


def combine(name: str, measures: Sequence[QueueMeasures]) -> QueueMeasures:
    """Figures over several queues from each queue's (service level: each by its own T)."""
    sums = EntrySums()
    for item in measures:
        sums.add(_sums_of(item))
    handled = EntrySums()
    # AHT and ASA need the underlying totals; rebuild them from each queue's means.
    wait_ms = sum(round((m.asa or 0) * 1000 * m.answered) for m in measures)
    handle_parts = [(m.aht, m.answered) for m in measures if m.aht is not None]
    handle_ms = sum(round(aht * 1000 * n) for aht, n in handle_parts)
    handled.handled = sum(n for _, n in handle_parts)
    sums.wait_ms, sums.handled, sums.handle_ms = wait_ms, handled.handled, handle_ms
    return QueueMeasures.from_sums(name, sums)


def _sums_of(measures: QueueMeasures) -> EntrySums:
    return EntrySums(
        offered=measures.offered,
        answered=measures.answered,
        abandoned=measures.abandoned,
        callbacks=measures.callbacks,
        answered_within=measures.answered_within,
        abandoned_after=measures.abandoned_after,
    )
