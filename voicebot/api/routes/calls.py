"""``/api/calls``: the stored calls a supervisor browses, and one call in full: transcript,
events, handoffs, the human leg, the quality review and its summary, and the recordings when
there are any. Supervisors, admins and the API token only; every opened call is audited.

Numbers are masked here as everywhere a person reads them (transcripts are stored masked).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import func, select

from voicebot.access.audit import audit
from voicebot.analytics.period import ReportError, parse_period, zone
from voicebot.analytics.reports import CHANNELS
from voicebot.api.deps import Db, Queues, Supervisor, bot_timezone, client_ip
from voicebot.privacy.masking import mask_value
from voicebot.store.models import (
    Agent,
    Call,
    CallEvent,
    CallReview,
    Disposition,
    Handoff,
    QueueEntry,
    Turn,
)
from voicebot.store.recordings import AUDIO_TYPES, recording_file, recording_files

router = APIRouter(prefix="/api/calls", tags=["calls"])

_MAX_LIMIT = 500


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def caller_label(call: Call) -> str:
    if call.caller_name:
        return f"{call.caller_name} (VIP)" if call.vip else call.caller_name
    return mask_value(call.caller_number) if call.caller_number else "withheld"


@router.get("")
async def list_calls(
    request: Request,
    db: Db,
    queues: Queues,
    _: Supervisor,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    queue: Annotated[list[str] | None, Query()] = None,
    channel: Annotated[list[str] | None, Query()] = None,
    min_score: Annotated[int | None, Query(ge=0, le=100)] = None,
    max_score: Annotated[int | None, Query(ge=0, le=100)] = None,
    failed: Annotated[bool | None, Query(description="Only calls that failed review.")] = None,
    tz: str | None = None,
    limit: Annotated[int, Query(ge=1, le=_MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Calls in a period (newest first) with their quality score; filter by score, failed."""
    from voicebot.analytics.reports import make_filter

    try:
        zone_ = zone(tz or bot_timezone(request))
        period = parse_period(start, end, tz=zone_, today=dt.datetime.now(zone_).date())
        flt = make_filter(period, queues=queue or (), channels=channel or (), known=queues.queues)
    except ReportError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    if min_score is not None and max_score is not None and min_score > max_score:
        raise HTTPException(422, detail="'min_score' is above 'max_score'")
    where = [Call.started_at >= period.start, Call.started_at < period.end]
    if flt.channels:
        where.append(Call.channel.in_(list(flt.channels)))
    if flt.queues:
        where.append(
            Call.id.in_(select(Handoff.call_id).where(Handoff.queue.in_(list(flt.queues))))
        )
    if min_score is not None:
        where.append(CallReview.score >= min_score)
    if max_score is not None:
        where.append(CallReview.score <= max_score)
    if failed is not None:
        where.append(CallReview.passed.is_(not failed))
    reviewed = min_score is not None or max_score is not None or failed is not None
    async with db.session() as session:
        base = select(Call, CallReview).outerjoin(CallReview, CallReview.call_id == Call.id)
        if reviewed:
            base = select(Call, CallReview).join(CallReview, CallReview.call_id == Call.id)
        total = await session.scalar(
            select(func.count()).select_from(base.where(*where).subquery())
        )
        rows = (
            await session.execute(
                base.where(*where).order_by(Call.started_at.desc()).limit(limit).offset(offset)
            )
        ).all()
        ids = [call.id for call, _ in rows]
        first_queue: dict[str, str] = {}
        if ids:
            for call_id, name in (
                await session.execute(
                    select(Handoff.call_id, Handoff.queue)
                    .where(Handoff.call_id.in_(ids))
                    .order_by(Handoff.created_at.desc())
                )
            ).all():
                first_queue[call_id] = name  # the earliest wins: rows come newest first
    calls = [
        {
            "id": call.id,
            "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ended_at),
            "channel": call.channel,
            "caller": caller_label(call),
            "intent": call.intent,
            "outcome": call.outcome,
            "queue": first_queue.get(call.id),
            "sentiment": call.sentiment,
            "score": review.score if review is not None else None,
            "passed": review.passed if review is not None else None,
            "failures": len(review.failures or []) if review is not None else None,
        }
        for call, found in rows
        # a row without a rule-set hash is a reviewer's claim in progress, not a score yet
        for review in [found if found is not None and found.rules else None]
    ]
    return {
        "from": period.first_day.isoformat(),
        "to": period.last_day.isoformat(),
        "total": int(total or 0),
        "offset": offset,
        "calls": calls,
        "channels": list(CHANNELS),
    }


@router.get("/{call_id}")
async def get_call(request: Request, call_id: str, db: Db, principal: Supervisor) -> dict[str, Any]:
    """One call: its facts, transcript, events, handoffs, human legs, review and recordings."""
    async with db.session() as session:
        call = await session.get(Call, call_id)
        if call is None:
            raise HTTPException(404, detail=f"no call {call_id!r}")
        turns = (
            await session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq))
        ).all()
        events = (
            await session.scalars(
                select(CallEvent)
                .where(CallEvent.call_id == call_id)
                .order_by(CallEvent.at, CallEvent.id)
            )
        ).all()
        handoffs = (
            await session.scalars(
                select(Handoff).where(Handoff.call_id == call_id).order_by(Handoff.created_at)
            )
        ).all()
        entries = (
            await session.execute(
                select(QueueEntry, Agent.username, Agent.display_name)
                .outerjoin(Agent, Agent.id == QueueEntry.agent_id)
                .where(QueueEntry.call_id == call_id)
                .order_by(QueueEntry.enqueued_at)
            )
        ).all()
        entry_ids = [entry.id for entry, _, _ in entries]
        dispositions = (
            (
                await session.scalars(
                    select(Disposition).where(Disposition.entry_id.in_(entry_ids))
                )
            ).all()
            if entry_ids
            else []
        )
        review = await session.get(CallReview, call_id)
        if review is not None and not review.rules:
            review = None  # a reviewer's claim in progress, not a score yet
    settings = request.app.state.settings
    recordings = [
        {
            "name": path.name,
            "url": f"/api/calls/{call_id}/recordings/{path.name}",
            "bytes": path.stat().st_size,
        }
        for path in recording_files(settings.resolved_recordings_dir, call_id)
    ]
    await audit(
        db,
        "view_call",
        actor=principal.username,
        actor_id=principal.id,
        target=call_id,
        ip=client_ip(request),
    )
    by_entry: dict[str, list[Disposition]] = {}
    for item in dispositions:
        by_entry.setdefault(item.entry_id, []).append(item)
    return {
        "call": {
            "id": call.id,
            "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ended_at),
            "bot_ended_at": _iso(call.bot_ended_at),
            "channel": call.channel,
            "caller": caller_label(call),
            "caller_number": mask_value(call.caller_number) if call.caller_number else None,
            "vip": call.vip,
            "intent": call.intent,
            "outcome": call.outcome,
            "disposition": call.disposition,
            "sentiment": call.sentiment,
            "anger": call.anger,
            "language": call.language,
        },
        "transcript": [
            {"seq": t.seq, "role": t.role, "at": _iso(t.at), "text": t.text, "intent": t.intent}
            for t in turns
        ],
        "events": [
            {"at": _iso(e.at), "kind": e.kind, "name": e.name, "label": e.label, "value": e.value}
            for e in events
        ],
        "handoffs": [
            {
                "id": h.id,
                "created_at": _iso(h.created_at),
                "queue": h.queue,
                "priority": h.priority,
                "reason": h.reason,
                "reason_kind": h.reason_kind,
                "intent": h.intent,
                "summary": (h.packet or {}).get("summary"),
            }
            for h in handoffs
        ],
        "entries": [
            {
                "id": entry.id,
                "kind": entry.kind,
                "queue": entry.queue,
                "status": entry.status,
                "agent": display or username,
                "enqueued_at": _iso(entry.enqueued_at),
                "connected_at": _iso(entry.connected_at),
                "ended_at": _iso(entry.ended_at),
                "wrapped_at": _iso(entry.wrapped_at),
                "end_reason": entry.end_reason,
                "dispositions": [
                    {"code": d.code, "notes": d.notes, "at": _iso(d.at)}
                    for d in by_entry.get(entry.id, [])
                ],
            }
            for entry, username, display in entries
        ],
        "review": None
        if review is None
        else {
            "checked_at": _iso(review.checked_at),
            "score": review.score,
            "passed": review.passed,
            "failures": review.failures or [],
            "summary": review.summary,
        },
        "recordings": recordings,
    }


@router.get("/{call_id}/recordings/{name}")
async def get_recording(
    request: Request, call_id: str, name: str, db: Db, principal: Supervisor
) -> FileResponse:
    """One recording file of the call, for the page's player (range requests work)."""
    settings = request.app.state.settings
    path = recording_file(settings.resolved_recordings_dir, call_id, name)
    if path is None:
        raise HTTPException(404, detail=f"call {call_id!r} has no recording {name!r}")
    await audit(
        db,
        "play_recording",
        actor=principal.username,
        actor_id=principal.id,
        target=f"{call_id}/{name}",
        ip=client_ip(request),
    )
    return FileResponse(path, media_type=AUDIO_TYPES[path.suffix.lower()])
