"""REST for the contact centre: handoff packets, queues, agents, callbacks, the audit log.

An external desktop, CRM or a LiveKit worker uses these with the API token; the agent desktop
uses them with its session. Agents read only the packets of calls offered to or handled by
them; supervisors and admins read all. Every packet view and export is audited.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from voicebot.access.audit import audit
from voicebot.access.sessions import Principal, end_user_sessions
from voicebot.access.users import UserError, add_user, hash_password, validate_skills
from voicebot.api.deps import Admin, Db, Queues, Supervisor, User, client_ip, get_settings
from voicebot.api.livekit_tokens import mint_agent_token
from voicebot.config import Settings
from voicebot.handoff.packet import CallbackRequest, CallerInfo, HandoffPacket, IntentInfo
from voicebot.handoff.packet import SentimentInfo as Sentiment
from voicebot.queues.service import QueueError, QueueService, agent_view, has_skills
from voicebot.queues.waiting import agent_identity
from voicebot.store.db import Database, is_unavailable
from voicebot.store.models import Agent, AuditEvent, Callback, Handoff, Offer, QueueEntry

router = APIRouter(prefix="/api", tags=["contact centre"])


def _conflict(exc: QueueError) -> HTTPException:
    return HTTPException(exc.status, detail=str(exc))


# -- handoffs ----------------------------------------------------------------------------------


class Queued(BaseModel):
    handoff_id: str
    entry_id: str
    queue: str


@router.post("/handoffs", status_code=201, response_model=Queued)
async def create_handoff(
    packet: HandoffPacket, request: Request, queues: Queues, who: Supervisor
) -> Any:
    """Queue a call handed off elsewhere (a LiveKit worker, an external IVR). A queue that does
    not exist goes to the default queue (and is logged). While the database is unreachable the
    answer is 503 and the packet is spooled on this node, queued when the database is back;
    posting it again is safe (a handoff id is queued once)."""
    try:
        entry_id = await queues.enqueue(packet)
        assignment = await queues.assignment(entry_id)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        sink = request.app.state.sink
        if sink is not None:
            await sink.keep(packet, str(exc) or type(exc).__name__)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the database is unavailable; the handoff is spooled on this node and "
            "will be queued when it is back",
            headers={"Retry-After": "5"},
        ) from exc
    assert assignment is not None
    return Queued(handoff_id=packet.id, entry_id=entry_id, queue=assignment["queue"])


async def _may_read(db: Db, who: Principal, handoff_id: str) -> bool:
    if who.is_supervisor:
        return True
    async with db.session() as session:
        mine = await session.scalar(
            select(QueueEntry.id)
            .outerjoin(Offer, Offer.entry_id == QueueEntry.id)
            .where(
                QueueEntry.handoff_id == handoff_id,
                or_(QueueEntry.agent_id == who.id, Offer.agent_id == who.id),
            )
            .limit(1)
        )
    return mine is not None


@router.get("/handoffs/{handoff_id}")
async def get_handoff(handoff_id: str, request: Request, db: Db, who: User) -> Any:
    """The packet (sensitive slots masked) and where the call is in the queue."""
    allowed = await _may_read(db, who, handoff_id)
    await audit(
        db,
        "view_packet",
        actor=who.username,
        actor_id=who.id,
        target=handoff_id,
        success=allowed,
        ip=client_ip(request),
    )
    if not allowed:
        # The same answer as for a packet that does not exist: ids are not to be probed.
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such handoff")
    async with db.session() as session:
        row = (
            await session.execute(
                select(Handoff, QueueEntry)
                .outerjoin(QueueEntry, QueueEntry.handoff_id == Handoff.id)
                .where(Handoff.id == handoff_id)
            )
        ).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such handoff")
    handoff, entry = row
    return {"packet": handoff.packet, "entry": _entry_out(entry) if entry else None}


def _entry_out(entry: QueueEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "queue": entry.queue,
        "original_queue": entry.original_queue,
        "status": entry.status,
        "priority": entry.priority,
        "enqueued_at": entry.enqueued_at.isoformat(),
        "agent_id": entry.agent_id,
        "offered_to": entry.offered_to,
        "connected_at": entry.connected_at.isoformat() if entry.connected_at else None,
        "ended_at": entry.ended_at.isoformat() if entry.ended_at else None,
        "end_reason": entry.end_reason,
        "flag": entry.flag,
    }


@router.get("/handoffs")
async def list_handoffs(
    db: Db,
    who: Supervisor,
    queue: str | None = None,
    entry_status: str | None = Query(default=None, alias="status"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Recent handoffs with their queue entries (supervisors)."""
    query = (
        select(Handoff, QueueEntry)
        .join(QueueEntry, QueueEntry.handoff_id == Handoff.id)
        .order_by(Handoff.created_at.desc())
        .limit(limit)
    )
    if queue:
        query = query.where(QueueEntry.queue == queue)
    if entry_status:
        query = query.where(QueueEntry.status == entry_status)
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [
        {
            "handoff_id": h.id,
            "call_id": h.call_id,
            "created_at": h.created_at.isoformat(),
            "intent": h.intent,
            "reason": h.reason,
            "entry": _entry_out(e),
        }
        for h, e in rows
    ]


@router.get("/reports/handoffs.csv", response_class=StreamingResponse)
async def export_handoffs(
    request: Request, db: Db, who: Supervisor, days: int = Query(default=7, ge=1, le=366)
) -> StreamingResponse:
    """Handoffs of the last ``days`` as CSV (no transcripts; caller numbers masked)."""
    from voicebot.privacy.masking import mask_value

    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Handoff, QueueEntry)
                .join(QueueEntry, QueueEntry.handoff_id == Handoff.id)
                .where(Handoff.created_at >= since)
                .order_by(Handoff.created_at)
            )
        ).all()
    await audit(
        db,
        "export",
        actor=who.username,
        actor_id=who.id,
        target="handoffs.csv",
        ip=client_ip(request),
        days=days,
        rows=len(rows),
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "handoff_id",
            "created_at",
            "queue",
            "priority",
            "intent",
            "reason",
            "caller",
            "status",
            "waited_s",
            "talk_s",
            "agent_id",
            "end_reason",
        ]
    )
    for handoff, entry in rows:
        caller = (handoff.packet.get("caller") or {}).get("number")
        answered = entry.connected_at or entry.ended_at
        writer.writerow(
            [
                handoff.id,
                handoff.created_at.isoformat(),
                entry.queue,
                handoff.priority,
                handoff.intent or "",
                handoff.reason,
                mask_value(caller) if caller else "",
                entry.status,
                round((answered - entry.enqueued_at).total_seconds(), 1) if answered else "",
                round((entry.ended_at - entry.connected_at).total_seconds(), 1)
                if entry.ended_at and entry.connected_at
                else "",
                entry.agent_id or "",
                entry.end_reason or "",
            ]
        )
    return StreamingResponse(
        iter([out.getvalue()]),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="handoffs.csv"'},
    )


# -- queue entries: what an agent does (the desktop does the same over its WebSocket) --------


class WrapUp(BaseModel):
    code: str = Field(min_length=1, max_length=64)
    notes: str = Field(default="", max_length=10_000)


def _agent_id(who: Principal) -> int:
    if who.id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only a signed-in agent can do this")
    return who.id


async def audited_accept(
    queues: QueueService, db: Database, who: Principal, entry_id: str, ip: str | None
) -> None:
    """Accept an offer and audit it, refused or not (the desktop's socket does the same)."""
    assert who.id is not None
    success = False
    try:
        await queues.accept(who.id, entry_id)
        success = True
    finally:
        await audit(
            db,
            "accept",
            actor=who.username,
            actor_id=who.id,
            target=entry_id,
            success=success,
            ip=ip,
        )


@router.post("/entries/{entry_id}/accept", status_code=204)
async def accept(entry_id: str, request: Request, db: Db, queues: Queues, who: User) -> None:
    _agent_id(who)
    try:
        await audited_accept(queues, db, who, entry_id, client_ip(request))
    except QueueError as exc:
        raise _conflict(exc) from None


@router.post("/entries/{entry_id}/decline", status_code=204)
async def decline(entry_id: str, request: Request, db: Db, queues: Queues, who: User) -> None:
    agent_id = _agent_id(who)
    try:
        await queues.decline(agent_id, entry_id)
    except QueueError as exc:
        raise _conflict(exc) from None
    await audit(
        db, "decline", actor=who.username, actor_id=agent_id, target=entry_id, ip=client_ip(request)
    )


@router.post("/entries/{entry_id}/end", status_code=204)
async def end(entry_id: str, queues: Queues, who: User) -> None:
    try:
        await queues.end(_agent_id(who), entry_id)
    except QueueError as exc:
        raise _conflict(exc) from None


@router.post("/entries/{entry_id}/wrap-up", status_code=204)
async def wrap_up(entry_id: str, body: WrapUp, queues: Queues, who: User) -> None:
    try:
        await queues.wrap_up(_agent_id(who), entry_id, body.code, body.notes)
    except QueueError as exc:
        raise _conflict(exc) from None


class LiveKitJoin(BaseModel):
    """How the agent's browser joins a phone caller's LiveKit room."""

    url: str = Field(description="The LiveKit server for the browser (ws:// or wss://).")
    token: str = Field(
        description="An access token for `room`, valid for 5 minutes: join and listen. "
        "Publishing is granted by the worker once it has briefed the agent."
    )
    room: str = Field(description="The caller's room (the call id).")
    identity: str = Field(description="The agent's participant identity: agent-<agent id>.")


@router.post(
    "/entries/{entry_id}/livekit",
    response_model=LiveKitJoin,
    responses={
        404: {"description": "No such queue entry."},
        409: {"description": "The call is not connected to the signed-in agent."},
        422: {"description": "Not a phone call through LiveKit (a softphone call, a callback)."},
        503: {"description": "LiveKit is not configured on the API."},
    },
)
async def livekit_join(
    entry_id: str,
    request: Request,
    db: Db,
    queues: Queues,
    who: User,
    settings: Annotated[Settings, Depends(get_settings)],
) -> Any:
    """A token with which the agent's desktop joins the phone caller's LiveKit room, for the
    agent the call is connected to. The agent joins unheard: the worker briefs them privately,
    then lets them speak and introduces them to the caller. Audited (``livekit_join``)."""
    agent_id = _agent_id(who)
    refused: HTTPException | None = None
    grant: LiveKitJoin | None = None
    async with db.session() as session:
        entry = await session.get(QueueEntry, entry_id)
        agent = await session.get(Agent, agent_id)
    assignment = await queues.assignment(entry_id) if entry is not None else None
    if entry is None or assignment is None:
        refused = HTTPException(status.HTTP_404_NOT_FOUND, detail="no such queue entry")
    elif entry.status != "connected" or entry.agent_id != agent_id:
        refused = HTTPException(
            status.HTTP_409_CONFLICT, detail="this call is not connected to you"
        )
    elif not assignment["livekit_room"]:
        refused = HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="this call is not a phone call through LiveKit; there is no room to join",
        )
    elif not settings.livekit_configured:
        refused = HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="LiveKit is not configured on this server: set LIVEKIT_URL, LIVEKIT_API_KEY "
            "and LIVEKIT_API_SECRET (and VOICEBOT_LIVEKIT_BROWSER_URL if browsers reach "
            "LiveKit at another address)",
        )
    else:
        room = str(assignment["livekit_room"])
        url = settings.resolved_livekit_browser_url
        assert url is not None  # livekit_configured
        token = mint_agent_token(
            settings,
            room=room,
            agent_id=agent_id,
            agent_name=(agent.display_name or agent.username) if agent else who.username,
            entry_id=entry_id,
        )
        grant = LiveKitJoin(url=url, token=token, room=room, identity=agent_identity(agent_id))
    await audit(
        db,
        "livekit_join",
        actor=who.username,
        actor_id=agent_id,
        target=entry_id,
        success=grant is not None,
        ip=client_ip(request),
        **({"room": grant.room} if grant else {"refused": refused.detail if refused else None}),
    )
    if refused is not None:
        raise refused
    return grant


@router.post("/entries/{entry_id}/abandon")
async def abandon(entry_id: str, queues: Queues, who: Supervisor) -> dict[str, Any]:
    """The caller hung up (a LiveKit worker reports it): the entry is recorded as abandoned,
    an offer is withdrawn, a connected agent goes to wrap-up."""
    previous = await queues.abandon(entry_id)
    return {"entry_id": entry_id, "was": previous}


# -- queues ------------------------------------------------------------------------------------


@router.get("/queues")
async def list_queues(db: Db, queues: Queues, who: User) -> list[dict[str, Any]]:
    """Each queue's figures (waiting, agents, estimated wait in seconds) and first entries.
    Agents see the queues they have the skills for."""
    return await queues.queue_views(await visible_queues(db, queues, who))


async def visible_queues(db: Db, queues: Queues, who: Principal) -> list[str] | None:
    if who.is_supervisor or who.id is None:
        return None
    async with db.session() as session:
        agent = await session.get(Agent, who.id)
    skills = agent.skills if agent else {}
    return [name for name, q in queues.queues.items() if has_skills(skills, q.skills)]


@router.get("/queues/{name}")
async def queue_stats(name: str, db: Db, queues: Queues, who: User) -> dict[str, Any]:
    visible = await visible_queues(db, queues, who)
    stats = (await queues.stats()).get(name)
    if stats is None or (visible is not None and name not in visible):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no queue '{name}'")
    return {
        "name": stats.name,
        "waiting": stats.waiting,
        "agents_available": stats.agents_available,
        "agents_staffed": stats.agents_staffed,
        "oldest_wait": stats.oldest_wait,
        "estimated_wait": stats.estimated_wait,
        "average_handle_time": stats.aht,
        "arrivals_last_30_min": stats.arrivals,
    }


# -- agents ------------------------------------------------------------------------------------


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["agent", "supervisor", "admin"] = "agent"
    display_name: str | None = Field(default=None, max_length=200)
    skills: dict[str, int] = Field(default_factory=dict)


class UserChange(BaseModel):
    display_name: str | None = Field(default=None, max_length=200)
    role: Literal["agent", "supervisor", "admin"] | None = None
    skills: dict[str, int] | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    # Chats held at once besides a call; null: back to the default (VOICEBOT_MAX_CHATS).
    max_chats: int | None = Field(default=None, ge=0, le=20)


@router.get("/agents")
async def list_agents(db: Db, who: Supervisor) -> list[dict[str, Any]]:
    async with db.session() as session:
        agents = (await session.scalars(select(Agent).order_by(Agent.username))).all()
    return [agent_view(a) | {"active": a.active} for a in agents]


@router.post("/agents", status_code=201)
async def create_agent(body: NewUser, request: Request, db: Db, who: Admin) -> dict[str, Any]:
    try:
        agent = await add_user(
            db,
            body.username,
            body.password,
            role=body.role,
            display_name=body.display_name,
            skills=validate_skills(body.skills),
        )
    except UserError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    await audit(
        db,
        "user_added",
        actor=who.username,
        actor_id=who.id,
        target=body.username,
        ip=client_ip(request),
        role=body.role,
    )
    return agent_view(agent)


@router.patch("/agents/{agent_id}")
async def change_agent(
    agent_id: int, body: UserChange, request: Request, db: Db, who: Admin
) -> dict[str, Any]:
    try:
        skills = validate_skills(body.skills) if body.skills is not None else None
        password_hash = (
            await asyncio.to_thread(hash_password, body.password) if body.password else None
        )
    except UserError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    async with db.transaction() as session:
        agent = await session.get(Agent, agent_id, with_for_update=True)
        if agent is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such agent")
        if body.display_name is not None:
            agent.display_name = body.display_name
        if body.role is not None:
            agent.role = body.role
        if skills is not None:
            agent.skills = skills
        if body.active is not None:
            agent.active = body.active
        if "max_chats" in body.model_fields_set:
            agent.max_chats = body.max_chats
        if password_hash is not None:
            agent.password_hash = password_hash
        view = agent_view(agent)
    if password_hash is not None or body.active is False:
        # A reset password or a disabled account signs the user out everywhere at once.
        await end_user_sessions(db, agent_id)
    changed = sorted(k for k, v in body.model_dump().items() if v is not None)
    await audit(
        db,
        "user_changed",
        actor=who.username,
        actor_id=who.id,
        target=str(agent_id),
        ip=client_ip(request),
        fields=changed,
    )
    return view


# -- callbacks ---------------------------------------------------------------------------------


class CallbackIn(BaseModel):
    number: str = Field(pattern=r"^\+?[0-9]{3,20}$")
    queue: str
    name: str | None = Field(default=None, max_length=200)
    reason: str = Field(default="callback requested", max_length=500)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


@router.post("/callbacks", status_code=201, response_model=Queued)
async def request_callback(body: CallbackIn, queues: Queues, who: Supervisor) -> Any:
    """A callback from outside a call (a web form, a CRM): it queues like a call."""
    now = dt.datetime.now(dt.UTC)
    packet = HandoffPacket(
        id=uuid.uuid4().hex,
        call_id=f"callback-{uuid.uuid4().hex[:12]}",
        created_at=now,
        caller=CallerInfo(number=body.number, name=body.name, attributes={"channel": "callback"}),
        language="en",
        intent=IntentInfo(),
        summary=f"Callback requested: {body.reason}.",
        transcript=[],
        slots={},
        verified=False,
        sentiment=Sentiment(),
        sources=[],
        queue=body.queue,
        skills=[],
        priority=body.priority,
        reason=body.reason,
        callback=CallbackRequest(number=body.number, requested_at=now),
    )
    entry_id = await queues.enqueue(packet, channel="callback")
    assignment = await queues.assignment(entry_id)
    assert assignment is not None
    return Queued(handoff_id=packet.id, entry_id=entry_id, queue=assignment["queue"])


@router.get("/callbacks")
async def list_callbacks(
    db: Db, who: Supervisor, callback_status: str = Query(default="pending", alias="status")
) -> list[dict[str, Any]]:
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Callback, QueueEntry)
                .join(QueueEntry, QueueEntry.id == Callback.entry_id)
                .where(Callback.status == callback_status)
                .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at)
            )
        ).all()
    return [
        {
            "entry_id": entry.id,
            "handoff_id": cb.handoff_id,
            "number": cb.number,
            "requested_at": cb.requested_at.isoformat(),
            "status": cb.status,
            "queue": entry.queue,
            "entry_status": entry.status,
            "agent_id": cb.agent_id,
        }
        for cb, entry in rows
    ]


# -- audit -------------------------------------------------------------------------------------


@router.get("/audit")
async def audit_log(
    db: Db,
    who: Admin,
    action: str | None = None,
    actor: str | None = None,
    limit: int = Query(default=200, ge=1, le=5000),
) -> list[dict[str, Any]]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    async with db.session() as session:
        events = (await session.scalars(query)).all()
    return [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "success": e.success,
            "ip": e.ip,
            "detail": e.detail,
        }
        for e in events
    ]
