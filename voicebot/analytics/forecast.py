"""The forecast: calls per interval for the next days, the agents each interval needs, and
how wrong the same method was on the last days of history.

What is forecast: per final queue, the call entries (``queue_entries`` of kind ``call``, by
``enqueued_at``), the volume agents answer; and as the queue ``all``, every call the bot
took (``calls.started_at``), its offered volume. Counts are bucketed in SQL by UTC
15-minute slot and regrouped in Python to local days and intervals, so a zone with summer
time is right on SQLite too.

The method is a multiplicative seasonal profile (docs/forecast.md has the formulas):

- history: the complete local days before today, at most ``WEEKS`` weeks; a day ``k`` weeks
  old weighs ``DECAY ** k``, so recent weeks count most;
- weekday index ``f[w]``: the weighted mean daily volume of weekday ``w`` over the mean of
  the seven, so a Monday is "1.3 times a mean day";
- intraday shape ``p[w][i]``: the weighted share of weekday ``w``'s calls that fell in
  interval ``i``;
- level ``L``: the calls of the last ``LEVEL_DAYS`` days over the weekday indices of those
  days (a deseasonalised daily mean: a busy week lifts the forecast, a quiet one lowers it);
- forecast of interval ``i`` of a day with weekday ``w``: ``L * f[w] * p[w][i]``.

A weekday with no history yet takes the shape of all days and an index of 1; no history at
all forecasts nothing. statsmodels' Holt-Winters would fit the same two seasonalities with
scipy, pandas and patsy behind it (and needs two full seasons of 15-minute data to start);
this profile needs a week, is a page of Python, and a supervisor can check it by hand.

Staffing: Erlang C (voicebot/queues/erlang.py) per interval, for the queue's target
(``service_level`` % within ``sla_seconds``, default 80/20), with the handle time measured
over the last ``AHT_DAYS`` days (talk plus wrap-up) or, without history, the queue's
``aht_seconds``. An interval forecast to have no calls needs no agents.

Forecast error: the last ``held_back`` days are kept out, forecast from the days before
them, and compared with what happened, as WAPE (sum of absolute errors over the sum of
actuals, the measure for volumes with quiet intervals) and MAPE (the mean of the absolute
percentage errors over intervals that had calls), per queue and over all queues, per
interval and per day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from voicebot.analytics.period import ReportError, check_names, local_midnight
from voicebot.flows.schema import Queue
from voicebot.queues.erlang import agents_for_service_level, traffic_intensity
from voicebot.store.models import Call, QueueEntry

ALL = "all"  # the bot's offered volume: every call, handed off or not
INTERVALS = (15, 30, 60)
MAX_DAYS = 60
WEEKS = 8  # history the profile reads
DECAY = 0.7  # weight of a week against the week after it
LEVEL_DAYS = 14  # the level: two whole weeks, so every weekday counts twice
AHT_DAYS = 28
DEFAULT_SLA = 20
SLOT = 900  # seconds in the SQL bucket (every zone's offset is a multiple of 15 minutes)
METHOD = (
    f"multiplicative weekday x time-of-day profile over the last {WEEKS} weeks "
    f"(week weight {DECAY}^age), scaled by the deseasonalised level of the last "
    f"{LEVEL_DAYS} days; agents by Erlang C"
)


@dataclass(frozen=True)
class IntervalForecast:
    start: dt.datetime  # local, aware
    calls: float
    agents: int | None  # None for "all": the bot's volume needs no agents


@dataclass
class QueueForecast:
    name: str
    sla_seconds: int | None
    service_level: int | None
    aht: float | None
    intervals: list[IntervalForecast] = field(default_factory=list)

    def days(self) -> list[dict[str, Any]]:
        """Per local day: the calls and the most agents any interval needs."""
        by_day: dict[dt.date, list[IntervalForecast]] = defaultdict(list)
        for item in self.intervals:
            by_day[item.start.date()].append(item)
        return [
            {
                "day": day.isoformat(),
                "calls": round(sum(i.calls for i in items), 1),
                "peak_agents": max((i.agents or 0 for i in items), default=0)
                if self.aht is not None
                else None,
            }
            for day, items in sorted(by_day.items())
        ]


@dataclass(frozen=True)
class Accuracy:
    wape: float | None
    mape: float | None


@dataclass
class ForecastError:
    held_back_days: int
    interval: Accuracy  # every queue pooled (not "all"), per interval
    daily: Accuracy
    per_queue: dict[str, dict[str, Accuracy]]


@dataclass
class Forecast:
    generated_at: dt.datetime
    method: str
    interval: int
    tz: dt.tzinfo
    start: dt.datetime
    days: int
    history_days: int
    queues: list[QueueForecast]
    error: ForecastError | None
    error_note: str | None = None

    def as_json(self) -> dict[str, Any]:
        def accuracy(value: Accuracy) -> dict[str, float | None]:
            return {"wape": value.wape, "mape": value.mape}

        error: dict[str, Any] | None = None
        if self.error is not None:
            error = {
                "held_back_days": self.error.held_back_days,
                "wape": self.error.interval.wape,
                "mape": self.error.interval.mape,
                "daily": accuracy(self.error.daily),
                "per_queue": {
                    name: {
                        "wape": levels["interval"].wape,
                        "mape": levels["interval"].mape,
                        "daily": accuracy(levels["daily"]),
                    }
                    for name, levels in self.error.per_queue.items()
                },
            }
        return {
            "generated_at": self.generated_at.isoformat(),
            "method": self.method,
            "interval": self.interval,
            "tz": str(self.tz),
            "from": self.start.date().isoformat(),
            "days": self.days,
            "history_days": self.history_days,
            "queues": [
                {
                    "name": q.name,
                    "sla_seconds": q.sla_seconds,
                    "service_level": q.service_level,
                    "aht": q.aht,
                    "intervals": [
                        {"start": i.start.isoformat(), "calls": i.calls, "agents": i.agents}
                        for i in q.intervals
                    ],
                    "days": q.days(),
                }
                for q in self.queues
            ],
            "error": error,
            "error_note": self.error_note,
        }


# -- history ---------------------------------------------------------------------------------

# counts[queue][local day][interval index]
Counts = dict[str, dict[dt.date, list[float]]]


def _slot(column: Any, dialect: str) -> ColumnElement[Any]:
    """The UTC 15-minute slot number (seconds since the epoch // 900) of a stored time."""
    if dialect == "postgresql":
        return func.floor(func.extract("epoch", column).op("/")(SLOT))
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC); strftime('%s') reads it as UTC, and
    # an integer over an integer is a whole division there.
    return cast(func.strftime("%s", column), Integer).op("/")(SLOT)


def _dialect(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.dialect.name


async def _slot_counts(
    session: AsyncSession, start: dt.datetime, end: dt.datetime, names: Iterable[str]
) -> dict[str, dict[int, int]]:
    dialect = _dialect(session)
    wanted = set(names)
    result: dict[str, dict[int, int]] = defaultdict(dict)
    slot = _slot(QueueEntry.enqueued_at, dialect).label("slot")
    entries = await session.execute(
        select(QueueEntry.queue, slot, func.count())
        .where(
            QueueEntry.kind == "call",
            QueueEntry.enqueued_at >= start,
            QueueEntry.enqueued_at < end,
        )
        .group_by(QueueEntry.queue, slot)
    )
    for queue, number, count in entries:
        if queue in wanted:
            result[queue][int(number)] = int(count)
    if ALL in wanted:
        slot = _slot(Call.started_at, dialect).label("slot")
        calls = await session.execute(
            select(slot, func.count())
            .where(Call.started_at >= start, Call.started_at < end)
            .group_by(slot)
        )
        for number, count in calls:
            result[ALL][int(number)] = int(count)
    return result


def _regroup(
    slots: Mapping[int, int], days: Sequence[dt.date], tz: dt.tzinfo, interval: int
) -> dict[dt.date, list[float]]:
    """UTC slots to local days and interval indices (a day of summer time change has one
    interval more or fewer; its counts land in the interval their local time falls in)."""
    per_day = 24 * 60 // interval
    counts = {day: [0.0] * per_day for day in days}
    for number, count in slots.items():
        local = dt.datetime.fromtimestamp(number * SLOT, dt.UTC).astimezone(tz)
        day = counts.get(local.date())
        if day is not None:
            day[(local.hour * 60 + local.minute) // interval] += count
    return counts


async def _handle_times(
    session: AsyncSession, start: dt.datetime, end: dt.datetime
) -> dict[str, float]:
    """Mean talk plus wrap-up of answered call entries that ended, per final queue."""
    finished = func.coalesce(QueueEntry.wrapped_at, QueueEntry.ended_at)
    seconds: ColumnElement[Any]
    if _dialect(session) == "postgresql":
        seconds = func.extract("epoch", finished - QueueEntry.connected_at)
    else:
        seconds = (func.julianday(finished) - func.julianday(QueueEntry.connected_at)) * 86400.0
    rows = await session.execute(
        select(QueueEntry.queue, func.avg(seconds))
        .where(
            QueueEntry.kind == "call",
            QueueEntry.connected_at.is_not(None),
            finished.is_not(None),
            QueueEntry.enqueued_at >= start,
            QueueEntry.enqueued_at < end,
        )
        .group_by(QueueEntry.queue)
    )
    return {queue: float(value) for queue, value in rows if value is not None and value > 0}


# -- the model -------------------------------------------------------------------------------


@dataclass
class Profile:
    """The fitted model of one queue: ``forecast(day)`` gives that day's intervals."""

    factors: list[float]  # per weekday, mean 1
    shapes: list[list[float]]  # per weekday, shares of the day's calls per interval
    level: float  # deseasonalised calls per day

    def forecast(self, day: dt.date) -> list[float]:
        weekday = day.weekday()
        total = self.level * self.factors[weekday]
        return [total * share for share in self.shapes[weekday]]


def fit(history: Mapping[dt.date, Sequence[float]], *, as_of: dt.date) -> Profile | None:
    """The profile of the complete days in ``history`` (all before ``as_of``); None when
    there is none."""
    days = sorted(d for d in history if d < as_of)
    if not days:
        return None
    slots = len(history[days[0]])
    # a day of the last week weighs 1, the week before DECAY, and so on
    weight = {d: DECAY ** (((as_of - d).days - 1) // 7) for d in days}
    totals = {d: float(sum(history[d])) for d in days}
    pooled = [0.0] * slots
    pooled_total = 0.0
    for d in days:
        for i, value in enumerate(history[d]):
            pooled[i] += weight[d] * value
        pooled_total += weight[d] * totals[d]
    pooled_shape = [v / pooled_total for v in pooled] if pooled_total else [1.0 / slots] * slots
    means: list[float | None] = []
    shapes: list[list[float]] = []
    for weekday in range(7):
        mine = [d for d in days if d.weekday() == weekday]
        if not mine:
            means.append(None)
            shapes.append(pooled_shape)
            continue
        weights = sum(weight[d] for d in mine)
        means.append(sum(weight[d] * totals[d] for d in mine) / weights)
        shape = [0.0] * slots
        volume = sum(weight[d] * totals[d] for d in mine)
        for d in mine:
            for i, value in enumerate(history[d]):
                shape[i] += weight[d] * value
        shapes.append([v / volume for v in shape] if volume else pooled_shape)
    known = [m for m in means if m is not None]
    mean_day = sum(known) / len(known) if known else 0.0
    factors = [(m / mean_day if mean_day else 0.0) if m is not None else 1.0 for m in means]
    recent = days[-LEVEL_DAYS:]
    seasonal = sum(factors[d.weekday()] for d in recent)
    level = sum(totals[d] for d in recent) / seasonal if seasonal else 0.0
    return Profile(factors=factors, shapes=shapes, level=level)


def accuracy(actual: Iterable[float], forecast: Iterable[float]) -> Accuracy:
    """WAPE = sum|A - F| / sum A x 100; MAPE = mean(|A - F| / A) x 100 over A > 0."""
    errors = 0.0
    volume = 0.0
    percentages: list[float] = []
    for a, f in zip(actual, forecast, strict=True):
        errors += abs(a - f)
        volume += a
        if a > 0:
            percentages.append(abs(a - f) / a)
    return Accuracy(
        wape=round(errors / volume * 100, 2) if volume else None,
        mape=round(sum(percentages) / len(percentages) * 100, 2) if percentages else None,
    )


def staff(calls: float, interval: int, aht: float, target: float, goal: float) -> int:
    """Agents that answer ``goal`` of ``calls`` (arriving over ``interval`` minutes) within
    ``target`` seconds under Erlang C; none when no call is expected."""
    if calls <= 0:
        return 0
    traffic = traffic_intensity(calls / (interval * 60), aht)
    return agents_for_service_level(traffic, aht, target, goal)


# -- the entry point -------------------------------------------------------------------------


def check_request(days: int, interval: int, held_back: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise ReportError(f"days must be 1-{MAX_DAYS}, got {days}")
    if interval not in INTERVALS:
        raise ReportError(f"interval must be 15, 30 or 60 minutes, got {interval}")
    if not 1 <= held_back <= 28:
        raise ReportError(f"held-back days must be 1-28, got {held_back}")


async def forecast(
    session: AsyncSession,
    *,
    queues: Mapping[str, Queue],
    days: int = 7,
    interval: int = 60,
    names: Sequence[str] = (),
    tz: dt.tzinfo = dt.UTC,
    today: dt.date | None = None,
    held_back: int = 7,
    now: dt.datetime | None = None,
) -> Forecast:
    """The forecast from today's local midnight for ``days`` days, per queue (``names``, or
    every queue and ``all``), with the error of the method on the last ``held_back`` days."""
    check_request(days, interval, held_back)
    known = [*queues, ALL]
    chosen = list(check_names(names, known, "queue")) or known
    now = now or dt.datetime.now(dt.UTC)
    today = today or now.astimezone(tz).date()
    first = today - dt.timedelta(days=WEEKS * 7)
    history_days = [first + dt.timedelta(days=i) for i in range((today - first).days)]
    slots = await _slot_counts(
        session, local_midnight(first, tz), local_midnight(today, tz), chosen
    )
    counts: Counts = {q: _regroup(slots.get(q, {}), history_days, tz, interval) for q in chosen}
    # History starts at the first day anything was recorded, in any queue asked for.
    seen = [d for d in history_days if any(sum(counts[q][d]) for q in chosen)]
    start_day = seen[0] if seen else today
    for q in chosen:
        counts[q] = {d: v for d, v in counts[q].items() if d >= start_day}
    handle = await _handle_times(
        session, local_midnight(today - dt.timedelta(days=AHT_DAYS), tz), local_midnight(today, tz)
    )
    ahead = [today + dt.timedelta(days=i) for i in range(days)]
    result: list[QueueForecast] = []
    for name in chosen:
        profile = fit(counts[name], as_of=today)
        config = queues.get(name)
        if config is None:
            item = QueueForecast(name=name, sla_seconds=None, service_level=None, aht=None)
        else:
            target = config.sla_seconds if config.sla_seconds is not None else DEFAULT_SLA
            aht = round(handle.get(name, float(config.aht_seconds)), 1)
            item = QueueForecast(
                name=name, sla_seconds=target, service_level=config.service_level, aht=aht
            )
        for day in ahead:
            values = profile.forecast(day) if profile else [0.0] * (24 * 60 // interval)
            midnight = dt.datetime.combine(day, dt.time(), tzinfo=tz)
            for index, calls in enumerate(values):
                start = _local_start(midnight, index, interval, tz)
                if start is None:
                    continue
                agents = None
                if item.aht is not None and item.sla_seconds is not None:
                    assert item.service_level is not None
                    agents = staff(
                        calls, interval, item.aht, item.sla_seconds, item.service_level / 100
                    )
                item.intervals.append(IntervalForecast(start, round(calls, 2), agents))
        result.append(item)
    history_length = (today - start_day).days
    error, note = _held_back_error(counts, chosen, today, held_back, history_length)
    return Forecast(
        generated_at=now,
        method=METHOD,
        interval=interval,
        tz=tz,
        start=dt.datetime.combine(today, dt.time(), tzinfo=tz),
        days=days,
        history_days=history_length,
        queues=result,
        error=error,
        error_note=note,
    )


def _local_start(
    midnight: dt.datetime, index: int, interval: int, tz: dt.tzinfo
) -> dt.datetime | None:
    """The local start of interval ``index``; None for one that a spring-forward skips."""
    wall = midnight + dt.timedelta(minutes=index * interval)
    roundtrip = wall.astimezone(dt.UTC).astimezone(tz)
    if roundtrip.replace(tzinfo=None) != wall.replace(tzinfo=None):
        return None
    return roundtrip


def _held_back_error(
    counts: Counts, names: Sequence[str], today: dt.date, held_back: int, history: int
) -> tuple[ForecastError | None, str | None]:
    if history < held_back + 7:
        return None, (
            f"the error needs {held_back + 7} days of history ({held_back} held back and a "
            f"week to fit on); there are {history}"
        )
    cut = today - dt.timedelta(days=held_back)
    test_days = [cut + dt.timedelta(days=i) for i in range(held_back)]
    per_queue: dict[str, dict[str, Accuracy]] = {}
    pooled_actual: list[float] = []
    pooled_forecast: list[float] = []
    pooled_daily_actual: list[float] = []
    pooled_daily_forecast: list[float] = []
    for name in names:
        history_part = {d: v for d, v in counts[name].items() if d < cut}
        profile = fit(history_part, as_of=cut)
        actual: list[float] = []
        predicted: list[float] = []
        daily_actual: list[float] = []
        daily_predicted: list[float] = []
        for day in test_days:
            observed = counts[name].get(day)
            if observed is None:
                continue
            guess = profile.forecast(day) if profile else [0.0] * len(observed)
            actual.extend(observed)
            predicted.extend(guess)
            daily_actual.append(sum(observed))
            daily_predicted.append(sum(guess))
        per_queue[name] = {
            "interval": accuracy(actual, predicted),
            "daily": accuracy(daily_actual, daily_predicted),
        }
        if name != ALL:
            pooled_actual += actual
            pooled_forecast += predicted
            pooled_daily_actual += daily_actual
            pooled_daily_forecast += daily_predicted
    if not pooled_actual:  # only "all" was asked for: its error is the overall one
        only = per_queue.get(ALL)
        interval_acc = only["interval"] if only else Accuracy(None, None)
        daily_acc = only["daily"] if only else Accuracy(None, None)
    else:
        interval_acc = accuracy(pooled_actual, pooled_forecast)
        daily_acc = accuracy(pooled_daily_actual, pooled_daily_forecast)
    return ForecastError(held_back, interval_acc, daily_acc, per_queue), None
