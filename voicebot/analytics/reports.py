"""Historical reports: calls by day, hour, queue, intent or agent; interval reports (15, 30 or
60 minutes); the bot's performance. The CLI (``voicebot report``), the API (``/api/reports/``)
and the supervisor page all read these, so a figure is the same wherever it is seen.

Every figure is counted by the database from stored calls, entries and events (measures.py
defines the queue measures). Time buckets are UTC quarter-hours in SQL, regrouped here into
the contact centre's local days, hours and intervals (see ``measures.epoch_bucket``), so one
query shape serves SQLite and PostgreSQL and a month of calls never comes row by row.

What is counted where (docs/reports.md says it for supervisors):
- calls and containment: calls by when they started; contained = the call has no handoff.
- queue measures: entries by when they were queued (measures.py).
- bot events (flows, unanswered questions, turn latency): by when the bot's leg ended.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, and_, case, cast, exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from voicebot.analytics.measures import (
    DEFAULT_SL_TARGET,
    EntrySums,
    QueueMeasures,
    entry_sums,
    epoch_bucket,
    is_postgres,
    millis_between,
    sla_seconds,
)
from voicebot.analytics.period import Period, ReportError, ReportFilter, check_names
from voicebot.flows.schema import Queue
from voicebot.store.models import Agent, Call, CallEvent, Handoff, QueueEntry

BY = ("day", "hour", "queue", "intent", "agent")
# The channels calls are stored with: phone (SIP via LiveKit), the browser softphone, chat,
# the HTTP API, callbacks; a channel outside these is a typo in a filter, not an empty report.
CHANNELS = ("sip", "softphone", "chat", "messaging", "api", "callback", "unknown")
INTERVALS = (15, 30, 60)
_QUARTER = 900  # seconds: the SQL bucket every local interval is made of
REASONS = ("asked", "angry", "no_match", "technical", "after_hours", "flow")
_TOP = 10
_LATENCY_STEP_MS = 10  # turn latencies are counted in 10 ms steps for the percentiles

# Column headings for CSV and the terminal table (JSON keeps the keys).
HEADINGS = {
    "day": "Day",
    "hour": "Hour",
    "queue": "Queue",
    "intent": "Intent",
    "agent": "Agent",
    "interval": "Interval",
    "calls": "Calls",
    "contained": "Contained",
    "containment_rate": "Containment %",
    "handoffs": "Handoffs",
    "offered": "Offered",
    "answered": "Answered",
    "abandoned": "Abandoned",
    "callbacks": "Callbacks",
    "service_level": "Service level %",
    "asa": "ASA s",
    "aht": "AHT s",
    "abandon_rate": "Abandon rate %",
    "talk": "Talk s",
    "wrap": "Wrap-up s",
}
_QUEUE_COLUMNS = (
    "offered",
    "answered",
    "abandoned",
    "service_level",
    "asa",
    "aht",
    "abandon_rate",
)


@dataclass
class Report:
    """A table of figures: ``rows`` in ``columns`` order and the period's ``totals``."""

    kind: str  # calls | intervals
    key: str  # the first column: day, hour, queue, intent, agent or interval
    columns: list[str]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    filter: ReportFilter
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        period = self.filter.period
        return {
            "kind": self.kind,
            "by": self.key,
            "from": period.first_day.isoformat(),
            "to": period.last_day.isoformat(),
            "tz": str(period.tz),
            "queues": list(self.filter.queues),
            "channels": list(self.filter.channels),
            "columns": self.columns,
            "rows": self.rows,
            "totals": self.totals,
            "notes": self.notes,
        }

    def to_csv(self) -> str:
        """CSV for a spreadsheet: a UTF-8 byte-order mark (so Excel reads the encoding),
        headings in words, a totals row last, empty cells for figures that do not apply."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([HEADINGS.get(c, c) for c in self.columns])
        for row in [*self.rows, {**self.totals, self.key: "Total"}]:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])
        return "\ufeff" + out.getvalue()

    def to_table(self) -> str:
        """A plain-text table for the terminal."""
        shown = [*self.rows, {**self.totals, self.key: "Total"}]
        cells = [[HEADINGS.get(c, c) for c in self.columns]] + [
            ["-" if row.get(c) is None else str(row.get(c)) for c in self.columns] for row in shown
        ]
        widths = [max(len(line[i]) for line in cells) for i in range(len(self.columns))]
        lines = []
        for n, line in enumerate(cells):
            text = "  ".join(
                value.ljust(widths[i]) if i == 0 else value.rjust(widths[i])
                for i, value in enumerate(line)
            )
            lines.append(text.rstrip())
            if n == 0 or n == len(cells) - 2:
                lines.append("  ".join("-" * w for w in widths))
        period = self.filter.period
        title = f"{self.kind} by {self.key}, {period.describe()}"
        return "\n".join([title, "", *lines, *(f"note: {n}" for n in self.notes)])


# -- helpers ------------------------------------------------------------------------------------


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part * 100 / whole, 1)


def queue_figures(measures: QueueMeasures) -> dict[str, Any]:
    """A queue's measures as report cells (rounded; None where nothing counts)."""
    return {
        "offered": measures.offered,
        "answered": measures.answered,
        "abandoned": measures.abandoned,
        "callbacks": measures.callbacks,
        "service_level": _round(measures.service_level),
        "asa": _round(measures.asa),
        "aht": _round(measures.aht),
        "abandon_rate": _round(measures.abandon_rate),
    }


def _measures(
    name: str, sums: EntrySums, queues: Mapping[str, Queue], names: Sequence[str]
) -> QueueMeasures:
    """Measures over one queue (its own target) or several (the common target when they share
    one, else the default 20 s: the SQL already counted each entry against its own queue's T,
    so only the label differs)."""
    configs = [queues[n] for n in names if n in queues]
    targets = {sla_seconds(q) for q in configs} or {sla_seconds(None)}
    sla = targets.pop() if len(targets) == 1 else sla_seconds(None)
    target = configs[0].service_level if len(configs) == 1 else DEFAULT_SL_TARGET
    return QueueMeasures.from_sums(name, sums, sla=sla, sl_target=target)


def _local_label(epoch: int, tz: dt.tzinfo, step_minutes: int) -> dt.datetime:
    """The local start of the ``step_minutes`` interval a UTC quarter-hour lies in."""
    local = dt.datetime.fromtimestamp(epoch, dt.UTC).astimezone(tz)
    minute = (local.minute // step_minutes) * step_minutes
    return local.replace(minute=minute, second=0, microsecond=0, tzinfo=None)


def _call_filter(flt: ReportFilter) -> list[ColumnElement[bool]]:
    """Calls in the period, on the channels, and (with queues) handed to one of the queues."""
    period = flt.period
    where: list[ColumnElement[bool]] = [
        Call.started_at >= period.start,
        Call.started_at < period.end,
    ]
    if flt.channels:
        where.append(Call.channel.in_(list(flt.channels)))
    if flt.queues:
        where.append(
            exists().where(Handoff.call_id == Call.id, Handoff.queue.in_(list(flt.queues)))
        )
    return where


def _handed_off() -> ColumnElement[bool]:
    return exists().where(Handoff.call_id == Call.id)


def make_filter(
    period: Period, *, queues: Iterable[str], channels: Iterable[str], known: Iterable[str]
) -> ReportFilter:
    """The filter for a period, each queue and channel checked (an unknown one is an error
    that lists the known ones)."""
    return ReportFilter(
        period=period,
        queues=check_names(queues, known, "queue"),
        channels=check_names(channels, CHANNELS, "channel"),
    )


def _queue_names(flt: ReportFilter, queues: Mapping[str, Queue]) -> list[str] | None:
    return list(flt.queues) if flt.queues else None


async def _call_buckets(session: AsyncSession, flt: ReportFilter) -> list[tuple[int, int, int]]:
    """(UTC quarter-hour, calls, contained) for the calls in the filter."""
    postgres = is_postgres(session)
    bucket = epoch_bucket(Call.started_at, _QUARTER, postgres=postgres)
    contained = func.coalesce(func.sum(case((~_handed_off(), 1), else_=0)), 0)
    rows = (
        await session.execute(
            select(bucket, func.count(), contained).where(*_call_filter(flt)).group_by(bucket)
        )
    ).all()
    return [(int(b), int(n), int(c)) for b, n, c in rows]


# -- calls by day, hour or queue, intent, agent ------------------------------------------------


async def calls_report(
    session: AsyncSession, flt: ReportFilter, *, by: str, queues: Mapping[str, Queue]
) -> Report:
    if by not in BY:
        raise ReportError(f"'by' must be one of {', '.join(BY)}, got '{by}'")
    if by in ("day", "hour"):
        return await _by_time(session, flt, by=by, queues=queues)
    if by == "queue":
        return await _by_queue(session, flt, queues=queues)
    if by == "intent":
        return await _by_intent(session, flt)
    return await _by_agent(session, flt)


async def _by_time(
    session: AsyncSession, flt: ReportFilter, *, by: str, queues: Mapping[str, Queue]
) -> Report:
    tz = flt.period.tz
    postgres = is_postgres(session)
    names = _queue_names(flt, queues)
    wanted = names if names is not None else sorted(queues)

    def key_of(epoch: int) -> str:
        local = _local_label(epoch, tz, 60)
        return local.date().isoformat() if by == "day" else f"{local.hour:02d}:00"

    calls: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for epoch, n, contained in await _call_buckets(session, flt):
        cell = calls[key_of(epoch)]
        cell[0] += n
        cell[1] += contained
    entries: dict[str, EntrySums] = defaultdict(EntrySums)
    bucket = epoch_bucket(QueueEntry.enqueued_at, _QUARTER, postgres=postgres)
    for (epoch,), sums in await entry_sums(
        session,
        flt.period.start,
        flt.period.end,
        queues=queues,
        names=names,
        channels=flt.channels,
        by=[bucket],
    ):
        entries[key_of(int(epoch))].add(sums)
    if by == "day":
        day, keys = flt.period.first_day, []
        while day <= flt.period.last_day:
            keys.append(day.isoformat())
            day += dt.timedelta(days=1)
    else:
        keys = sorted(set(calls) | set(entries))
    rows, total_calls, total_sums = [], [0, 0], EntrySums()
    for key in keys:
        n, contained = calls.get(key, [0, 0])
        sums = entries.get(key, EntrySums())
        total_calls[0] += n
        total_calls[1] += contained
        total_sums.add(sums)
        rows.append(_time_row(by, key, n, contained, _measures(key, sums, queues, wanted)))
    measures = _measures("total", total_sums, queues, wanted)
    totals = _time_row(by, "total", total_calls[0], total_calls[1], measures)
    columns = [by, "calls", "contained", "containment_rate", *_QUEUE_COLUMNS]
    return Report("calls", by, columns, rows, totals, flt, notes=_sla_notes(wanted, queues))


def _time_row(by: str, key: str, calls: int, contained: int, m: QueueMeasures) -> dict[str, Any]:
    return {
        by: key,
        "calls": calls,
        "contained": contained,
        "containment_rate": _rate(contained, calls),
        **queue_figures(m),
    }


def _sla_notes(names: Iterable[str], queues: Mapping[str, Queue]) -> list[str]:
    targets = {n: sla_seconds(queues.get(n)) for n in names}
    if len(set(targets.values())) > 1:
        listing = ", ".join(f"{n} {t} s" for n, t in sorted(targets.items()))
        return [f"service level counts each queue against its own target ({listing})"]
    return []


async def _by_queue(
    session: AsyncSession, flt: ReportFilter, *, queues: Mapping[str, Queue]
) -> Report:
    names = _queue_names(flt, queues)
    rows_found = await entry_sums(
        session,
        flt.period.start,
        flt.period.end,
        queues=queues,
        names=names,
        channels=flt.channels,
        by=[QueueEntry.queue],
    )
    found = {str(keys[0]): sums for keys, sums in rows_found}
    # Every configured queue is listed (zeros too); one no longer configured keeps its history.
    wanted = names if names is not None else sorted(set(queues) | set(found))
    rows, total = [], EntrySums()
    for name in wanted:
        sums = found.get(name, EntrySums())
        total.add(sums)
        measures = _measures(name, sums, queues, [name])
        rows.append(
            {
                "queue": name,
                **queue_figures(measures),
                "sla_seconds": measures.sla_seconds,
                "sl_target": measures.sl_target,
            }
        )
    totals = queue_figures(_measures("total", total, queues, wanted))
    columns = ["queue", *_QUEUE_COLUMNS, "callbacks"]
    return Report("calls", "queue", columns, rows, totals, flt, notes=_sla_notes(wanted, queues))


async def _by_intent(session: AsyncSession, flt: ReportFilter) -> Report:
    intent = func.coalesce(Call.intent, literal("(none)"))
    handed = func.coalesce(func.sum(case((_handed_off(), 1), else_=0)), 0)
    rows_found = (
        await session.execute(
            select(intent, func.count(), handed)
            .where(*_call_filter(flt))
            .group_by(intent)
            .order_by(func.count().desc(), intent)
        )
    ).all()
    rows, calls, handoffs = [], 0, 0
    for name, n, h in rows_found:
        n, h = int(n), int(h)
        calls, handoffs = calls + n, handoffs + h
        rows.append(_intent_row(str(name), n, h))
    totals = _intent_row("total", calls, handoffs)
    columns = ["intent", "calls", "contained", "handoffs", "containment_rate"]
    return Report("calls", "intent", columns, rows, totals, flt)


def _intent_row(name: str, calls: int, handoffs: int) -> dict[str, Any]:
    return {
        "intent": name,
        "calls": calls,
        "contained": calls - handoffs,
        "handoffs": handoffs,
        "containment_rate": _rate(calls - handoffs, calls),
    }


async def _by_agent(session: AsyncSession, flt: ReportFilter) -> Report:
    """Per agent, the calls they answered in the period: how many, AHT (talk plus wrap-up),
    talk (connected to ended) and wrap-up (ended to wrapped)."""
    postgres = is_postgres(session)
    entry = QueueEntry
    period = flt.period
    ended = entry.ended_at.is_not(None)
    wrapped = entry.wrapped_at.is_not(None)
    talk = millis_between(entry.ended_at, entry.connected_at, postgres=postgres)
    wrap = millis_between(entry.wrapped_at, entry.ended_at, postgres=postgres)
    handle = millis_between(
        func.coalesce(entry.wrapped_at, entry.ended_at), entry.connected_at, postgres=postgres
    )

    def total(condition: ColumnElement[bool], value: Any) -> Any:
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    def count(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    statement = (
        select(
            Agent.username,
            Agent.display_name,
            func.count(),
            count(ended),
            total(ended, handle),
            total(ended, talk),
            count(and_(ended, wrapped)),
            total(and_(ended, wrapped), wrap),
        )
        .join(Agent, Agent.id == entry.agent_id)
        .where(
            entry.connected_at.is_not(None),
            entry.kind == "call",
            entry.enqueued_at >= period.start,
            entry.enqueued_at < period.end,
        )
        .group_by(Agent.username, Agent.display_name)
        .order_by(Agent.username)
    )
    if flt.queues:
        statement = statement.where(entry.queue.in_(list(flt.queues)))
    if flt.channels:
        statement = statement.join(Call, Call.id == entry.call_id).where(
            Call.channel.in_(list(flt.channels))
        )
    found = (await session.execute(statement)).all()
    rows = []
    sums = [0, 0, 0, 0, 0, 0]
    for username, display, *values in found:
        numbers = [int(v or 0) for v in values]
        sums = [a + b for a, b in zip(sums, numbers, strict=True)]
        rows.append(_agent_row(str(display or username), str(username), numbers))
    totals = _agent_row("total", None, sums)
    columns = ["agent", "answered", "aht", "talk", "wrap"]
    return Report("calls", "agent", columns, rows, totals, flt)


def _agent_row(name: str, username: str | None, n: list[int]) -> dict[str, Any]:
    answered, ended, handle_ms, talk_ms, wrapped, wrap_ms = n

    def mean(ms: int, count: int) -> float | None:
        return None if count == 0 else round(ms / count / 1000, 1)

    row: dict[str, Any] = {
        "agent": name,
        "answered": answered,
        "aht": mean(handle_ms, ended),
        "talk": mean(talk_ms, ended),
        "wrap": mean(wrap_ms, wrapped),
    }
    if username is not None:
        row["username"] = username
    return row


# -- intervals ---------------------------------------------------------------------------------


async def interval_report(
    session: AsyncSession, flt: ReportFilter, *, interval: int, queues: Mapping[str, Queue]
) -> Report:
    """Offered, answered, abandoned, SL, ASA and AHT per local interval with calls in it."""
    if interval not in INTERVALS:
        raise ReportError(f"'interval' must be 15, 30 or 60 (minutes), got {interval}")
    names = _queue_names(flt, queues)
    wanted = names if names is not None else sorted(queues)
    bucket = epoch_bucket(QueueEntry.enqueued_at, _QUARTER, postgres=is_postgres(session))
    grouped: dict[dt.datetime, EntrySums] = defaultdict(EntrySums)
    for (epoch,), sums in await entry_sums(
        session,
        flt.period.start,
        flt.period.end,
        queues=queues,
        names=names,
        channels=flt.channels,
        by=[bucket],
    ):
        grouped[_local_label(int(epoch), flt.period.tz, interval)].add(sums)
    rows, total = [], EntrySums()
    for start in sorted(grouped):
        sums = grouped[start]
        total.add(sums)
        label = start.strftime("%Y-%m-%dT%H:%M")
        rows.append({"interval": label, **queue_figures(_measures(label, sums, queues, wanted))})
    totals = queue_figures(_measures("total", total, queues, wanted))
    columns = ["interval", *_QUEUE_COLUMNS, "callbacks"]
    notes = [
        f"{interval}-minute intervals in {flt.period.tz}; intervals without calls are left out"
    ]
    return Report(
        "intervals",
        "interval",
        columns,
        rows,
        totals,
        flt,
        notes=notes + _sla_notes(wanted, queues),
    )


# -- the bot's performance ---------------------------------------------------------------------


def _event_filter(flt: ReportFilter, kind: str) -> list[ColumnElement[bool]]:
    period = flt.period
    where: list[ColumnElement[bool]] = [
        CallEvent.kind == kind,
        CallEvent.at >= period.start,
        CallEvent.at < period.end,
    ]
    if flt.channels or flt.queues:
        calls = select(Call.id).where(
            *([Call.channel.in_(list(flt.channels))] if flt.channels else []),
            *(
                [exists().where(Handoff.call_id == Call.id, Handoff.queue.in_(list(flt.queues)))]
                if flt.queues
                else []
            ),
        )
        where.append(CallEvent.call_id.in_(calls))
    return where


def percentile(histogram: Sequence[tuple[float, int]], share: float) -> float | None:
    """The value below which ``share`` of the counted values lie (nearest rank), from
    (value, count) pairs sorted by value."""
    total = sum(n for _, n in histogram)
    if total == 0:
        return None
    rank = max(1, round(share * total + 0.4999))  # ceil without float surprises
    seen = 0
    for value, n in histogram:
        seen += n
        if seen >= rank:
            return value
    return histogram[-1][0]


async def bot_report(session: AsyncSession, flt: ReportFilter) -> dict[str, Any]:
    """Containment, handoffs and their reasons, top intents, unanswered questions, sentiment,
    turn latency p50/p95 and each flow's runs, over the filter; and per local day."""
    where = _call_filter(flt)
    handed = _handed_off()
    summary = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((handed, 1), else_=0)), 0),
                func.avg(Call.sentiment),
                func.count(Call.sentiment),
            ).where(*where)
        )
    ).one()
    calls, handoffs = int(summary[0]), int(summary[1])
    sentiment = None if summary[2] is None else round(float(summary[2]), 2)

    # Each call handed off counts once, under the reason of its first handoff.
    first = (
        select(Handoff.call_id, func.min(Handoff.created_at).label("first_at"))
        # only the period's calls: grouping the whole handoffs table took most of a second
        .where(Handoff.call_id.in_(select(Call.id).where(*where)))
        .group_by(Handoff.call_id)
        .subquery()
    )
    reason = func.coalesce(Handoff.reason_kind, literal("flow"))
    reasons = dict(
        (
            await session.execute(
                select(reason, func.count())
                .join(
                    first,
                    and_(
                        first.c.call_id == Handoff.call_id, first.c.first_at == Handoff.created_at
                    ),
                )
                .join(Call, Call.id == Handoff.call_id)
                .where(*where)
                .group_by(reason)
            )
        ).all()
    )
    reason_total = sum(int(n) for n in reasons.values())
    handoff_reasons = [
        {
            "reason": name,
            "calls": int(reasons.get(name, 0)),
            "share": _rate(int(reasons.get(name, 0)), reason_total),
        }
        for name in [*REASONS, *sorted(set(reasons) - set(REASONS))]
    ]

    top_intents = [
        {"intent": str(name), "calls": int(n)}
        for name, n in (
            await session.execute(
                select(Call.intent, func.count())
                .where(*where, Call.intent.is_not(None))
                .group_by(Call.intent)
                .order_by(func.count().desc(), Call.intent)
                .limit(_TOP)
            )
        ).all()
    ]
    unanswered = [
        {"question": str(name), "count": int(n)}
        for name, n in (
            await session.execute(
                select(CallEvent.name, func.count())
                .where(*_event_filter(flt, "no_answer"))
                .group_by(CallEvent.name)
                .order_by(func.count().desc(), CallEvent.name)
                .limit(_TOP * 2)
            )
        ).all()
    ]

    step = cast(func.round(CallEvent.value / _LATENCY_STEP_MS), Integer)
    histogram = [
        (float(s) * _LATENCY_STEP_MS, int(n))
        for s, n in (
            await session.execute(
                select(step, func.count())
                .where(*_event_filter(flt, "turn"), CallEvent.value.is_not(None))
                .group_by(step)
                .order_by(step)
            )
        ).all()
    ]
    latency = {
        "turns": sum(n for _, n in histogram),
        "p50": percentile(histogram, 0.5),
        "p95": percentile(histogram, 0.95),
    }

    flows: dict[str, dict[str, int]] = defaultdict(
        lambda: {"started": 0, "completed": 0, "handoff": 0, "abandoned": 0, "left": 0}
    )
    for name, label, n in (
        await session.execute(
            select(CallEvent.name, CallEvent.label, func.count())
            .where(*_event_filter(flt, "flow"))
            .group_by(CallEvent.name, CallEvent.label)
        )
    ).all():
        cell = flows[str(name)]
        cell["started"] += int(n)
        if label in cell:
            cell[str(label)] += int(n)
    flow_rows = [
        {"flow": name, **cell}
        for name, cell in sorted(flows.items(), key=lambda item: (-item[1]["started"], item[0]))
    ]

    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for epoch, n, contained in await _call_buckets(session, flt):
        day_cell = by_day[_local_label(epoch, flt.period.tz, 60).date().isoformat()]
        day_cell[0] += n
        day_cell[1] += contained
    days = []
    day = flt.period.first_day
    while day <= flt.period.last_day:
        n, contained = by_day.get(day.isoformat(), [0, 0])
        days.append(
            {
                "day": day.isoformat(),
                "calls": n,
                "contained": contained,
                "containment_rate": _rate(contained, n),
            }
        )
        day += dt.timedelta(days=1)

    period = flt.period
    return {
        "from": period.first_day.isoformat(),
        "to": period.last_day.isoformat(),
        "tz": str(period.tz),
        "queues": list(flt.queues),
        "channels": list(flt.channels),
        "calls": calls,
        "contained": calls - handoffs,
        "containment_rate": _rate(calls - handoffs, calls),
        "handoffs": handoffs,
        "handoff_rate": _rate(handoffs, calls),
        "handoff_reasons": handoff_reasons,
        "top_intents": top_intents,
        "unanswered": unanswered,
        "sentiment": sentiment,
        "latency_ms": latency,
        "flows": flow_rows,
        "by_day": days,
    }


BOT_TABLES: dict[str, tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]], list[str]]] = {
    "reasons": ("Handoff reasons", lambda d: d["handoff_reasons"], ["reason", "calls", "share"]),
    "intents": ("Top intents", lambda d: d["top_intents"], ["intent", "calls"]),
    "unanswered": ("Unanswered questions", lambda d: d["unanswered"], ["question", "count"]),
    "flows": (
        "Flows",
        lambda d: d["flows"],
        ["flow", "started", "completed", "handoff", "abandoned"],
    ),
    "days": ("By day", lambda d: d["by_day"], ["day", "calls", "contained", "containment_rate"]),
}


def bot_csv(data: dict[str, Any]) -> str:
    """The bot report as one CSV: the headline figures, then each table under its title."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    latency = data["latency_ms"]
    writer.writerow(["Figure", "Value"])
    for label, value in (
        ("From", data["from"]),
        ("To", data["to"]),
        ("Calls", data["calls"]),
        ("Contained", data["contained"]),
        ("Containment %", data["containment_rate"]),
        ("Handoffs", data["handoffs"]),
        ("Handoff rate %", data["handoff_rate"]),
        ("Average sentiment", data["sentiment"]),
        ("Turns timed", latency["turns"]),
        ("Latency p50 ms", latency["p50"]),
        ("Latency p95 ms", latency["p95"]),
    ):
        writer.writerow([label, "" if value is None else value])
    for title, rows_of, columns in BOT_TABLES.values():
        writer.writerow([])
        writer.writerow([title])
        writer.writerow([c.replace("_", " ").capitalize() for c in columns])
        for row in rows_of(data):
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return "\ufeff" + out.getvalue()


def bot_table(data: dict[str, Any]) -> str:
    latency = data["latency_ms"]

    def show(value: Any, unit: str = "") -> str:
        return "-" if value is None else f"{value}{unit}"

    lines = [
        f"bot performance, {data['from']} to {data['to']} ({data['tz']})",
        "",
        f"calls {data['calls']}, contained {data['contained']} "
        f"({show(data['containment_rate'], '%')}), handed off {data['handoffs']} "
        f"({show(data['handoff_rate'], '%')})",
        f"average sentiment {show(data['sentiment'])} (-1 to +1); turn latency p50 "
        f"{show(latency['p50'], ' ms')}, p95 {show(latency['p95'], ' ms')} "
        f"over {latency['turns']} turns",
    ]
    for title, rows_of, columns in BOT_TABLES.values():
        rows = rows_of(data)
        if title == "By day":
            continue
        lines += ["", title + ":"]
        if not rows:
            lines.append("  (none)")
        for row in rows:
            first, *rest = columns
            figures = ", ".join(f"{c} {show(row.get(c))}" for c in rest)
            lines.append(f"  {row.get(first)}: {figures}")
    return "\n".join(lines)
