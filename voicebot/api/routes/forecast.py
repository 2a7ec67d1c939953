"""``GET /api/forecast``: calls and agents needed per interval for the next days, and the
method's error on held-back history (voicebot/analytics/forecast.py). Supervisors, admins and
the API token only."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from voicebot.analytics.forecast import forecast
from voicebot.analytics.period import ReportError, zone
from voicebot.api.deps import Db, Queues, Supervisor, bot_timezone

router = APIRouter(prefix="/api", tags=["reports"])


@router.get("/forecast")
async def get_forecast(
    request: Request,
    db: Db,
    queues: Queues,
    _: Supervisor,
    days: int = 7,
    interval: int = 60,
    queue: Annotated[list[str] | None, Query()] = None,
    tz: str | None = None,
    held_back: int = 7,
) -> dict[str, Any]:
    try:
        zone_ = zone(tz or bot_timezone(request))
        async with db.session() as session:
            result = await forecast(
                session,
                queues=queues.queues,
                days=days,
                interval=interval,
                names=queue or (),
                tz=zone_,
                held_back=held_back,
                now=dt.datetime.now(dt.UTC),
            )
    except ReportError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    return result.as_json()
