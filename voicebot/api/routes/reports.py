"""``/api/reports/...``: the historical reports (voicebot/analytics/reports.py) as JSON, or as
CSV for a spreadsheet with ``format=csv``. Supervisors, admins and the API token only.

Dates are the contact centre's local dates (``tz``, default the bot's ``hours.timezone``);
``queue`` and ``channel`` may be repeated. A bad date, a ``from`` after ``to`` or an unknown
queue is answered 422/404 with the reason, never an empty report that looks real.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from voicebot.analytics.period import ReportError, ReportFilter, parse_period, zone
from voicebot.analytics.reports import (
    bot_csv,
    bot_report,
    calls_report,
    interval_report,
    make_filter,
)
from voicebot.api.deps import Db, Queues, Supervisor, bot_timezone

router = APIRouter(prefix="/api/reports", tags=["reports"])

QueueParam = Annotated[list[str] | None, Query(description="A queue; repeat for several.")]
ChannelParam = Annotated[
    list[str] | None, Query(description="sip, softphone, chat, api, callback; repeatable.")
]
FromParam = Annotated[str | None, Query(alias="from", description="First local date, included.")]
ToParam = Annotated[str | None, Query(alias="to", description="Last local date, included.")]
FormatParam = Annotated[str, Query(pattern="^(json|csv)$", description="json or csv")]


def report_filter(
    request: Request,
    queues: Queues,
    start: str | None,
    end: str | None,
    queue: list[str] | None,
    channel: list[str] | None,
    tz: str | None,
) -> ReportFilter:
    zone_ = zone(tz or bot_timezone(request))
    period = parse_period(start, end, tz=zone_, today=dt.datetime.now(zone_).date())
    return make_filter(period, queues=queue or (), channels=channel or (), known=queues.queues)


def _csv(text: str, name: str, flt: ReportFilter) -> Response:
    filename = f"{name}-{flt.period.first_day}-{flt.period.last_day}.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/calls")
async def get_calls_report(
    request: Request,
    db: Db,
    queues: Queues,
    _: Supervisor,
    start: FromParam = None,
    end: ToParam = None,
    by: Annotated[str, Query(description="day, hour, queue, intent or agent")] = "day",
    queue: QueueParam = None,
    channel: ChannelParam = None,
    tz: str | None = None,
    format: FormatParam = "json",
) -> Any:
    """Calls, containment and the queue measures (offered, answered, abandoned, service level,
    ASA, AHT, abandon rate) by day, hour of day, queue, intent or agent, with totals."""
    try:
        flt = report_filter(request, queues, start, end, queue, channel, tz)
        async with db.session() as session:
            report = await calls_report(session, flt, by=by, queues=queues.queues)
    except ReportError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    if format == "csv":
        return _csv(report.to_csv(), f"calls-by-{by}", flt)
    return report.as_json()


@router.get("/intervals")
async def get_interval_report(
    request: Request,
    db: Db,
    queues: Queues,
    _: Supervisor,
    start: FromParam = None,
    end: ToParam = None,
    interval: Annotated[int, Query(description="Minutes: 15, 30 or 60.")] = 30,
    queue: QueueParam = None,
    channel: ChannelParam = None,
    tz: str | None = None,
    format: FormatParam = "json",
) -> Any:
    """Offered, answered, abandoned, service level, ASA and AHT per local interval."""
    try:
        flt = report_filter(request, queues, start, end, queue, channel, tz)
        async with db.session() as session:
            report = await interval_report(session, flt, interval=interval, queues=queues.queues)
    except ReportError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    if format == "csv":
        return _csv(report.to_csv(), f"intervals-{interval}", flt)
    return report.as_json()


@router.get("/bot")
async def get_bot_report(
    request: Request,
    db: Db,
    queues: Queues,
    _: Supervisor,
    start: FromParam = None,
    end: ToParam = None,
    queue: QueueParam = None,
    channel: ChannelParam = None,
    tz: str | None = None,
    format: FormatParam = "json",
) -> Any:
    """The bot's performance: containment, handoff rate and reasons, top intents, questions
    without an answer, average sentiment, turn latency p50/p95, each flow's runs, by day."""
    try:
        flt = report_filter(request, queues, start, end, queue, channel, tz)
        async with db.session() as session:
            data = await bot_report(session, flt)
    except ReportError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    if format == "csv":
        return _csv(bot_csv(data), "bot", flt)
    return data
