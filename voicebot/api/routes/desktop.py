"""The agent desktop: the page at ``/desktop``, its WebSocket at ``/api/desktop/ws`` (offers,
screen pops, states, the live queue view; protocol in docs/desktop.md) and the audio bridge to
a softphone caller at ``/api/desktop/audio/{entry_id}``, and the agent's side of a chat:
``POST /api/desktop/chats/{entry_id}/messages``.

WebSockets are authenticated with the session cookie and must come from the API's own origin
(or one in ``VOICEBOT_ALLOWED_ORIGINS``): a page on another site cannot drive an agent's desktop
with the agent's cookie.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from voicebot.access.audit import audit
from voicebot.access.sessions import COOKIE, Principal, SessionExpired, principal_for
from voicebot.api.deps import Queues, User
from voicebot.api.desktop_hub import Desktop, DesktopHub, view_signature
from voicebot.api.routes.contact_centre import audited_accept
from voicebot.api.security import MessageRate, next_text, socket_origin_allowed
from voicebot.channels import relay
from voicebot.channels.conversation import MAX_MESSAGE_CHARS
from voicebot.queues.service import WRAP_UP_CODES, QueueError, QueueService
from voicebot.store.models import Agent, QueueEntry

logger = logging.getLogger("voicebot.api.desktop")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "desktop"
# What the desktop and the supervisor page share (helpers, sign-in, styles, the chart library).
COMMON_DIR = Path(__file__).resolve().parent.parent / "static" / "common"
MAX_MESSAGE = 16_384
MAX_AUDIO_MESSAGE = 32_000
UNAUTHORISED = 4401

router = APIRouter(tags=["agent desktop"])


@router.get("/desktop", include_in_schema=False)
def desktop_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def origin_allowed(websocket: WebSocket) -> bool:
    return socket_origin_allowed(websocket.headers, websocket.app.state.settings)


async def _authenticate(websocket: WebSocket) -> Principal | None:
    """The signed-in user, or None after closing the socket with the reason."""
    if not origin_allowed(websocket):
        await websocket.close(code=1008, reason="cross-origin desktop connections are refused")
        return None
    db = websocket.app.state.db
    if db is None:
        await websocket.close(code=1011, reason="the database is not available")
        return None
    try:
        principal = await principal_for(db, websocket.cookies.get(COOKIE))
    except SessionExpired:
        principal = None
    if principal is None or principal.id is None:
        # Accepted first: a close during the handshake reaches the page as a bare 1006, and
        # the desktop needs 4401 to know it should show the sign-in form.
        await websocket.accept()
        await websocket.close(
            code=UNAUTHORISED, reason="sign in first (session missing or expired)"
        )
        return None
    return principal


@router.websocket("/api/desktop/ws")
async def desktop_socket(websocket: WebSocket) -> None:
    principal = await _authenticate(websocket)
    if principal is None:
        return
    await websocket.accept()
    app = websocket.app
    service: QueueService = app.state.queues
    hub: DesktopHub = app.state.hub
    db = app.state.db
    async with db.session() as session:
        agent = await session.get(Agent, principal.id)
    assert agent is not None
    desktop = Desktop(websocket, agent.id, agent.role, dict(agent.skills), agent.username)
    await hub.attach(desktop)
    ip = websocket.client.host if websocket.client else None
    try:
        snapshot = await service.agent_snapshot(agent.id)
        assert snapshot is not None
        current = await service.assignment(snapshot["current"]) if snapshot["current"] else None
        chats = await _held_chats(hub, service, agent.id)
        views = hub.views_for(desktop, await service.queue_views())
        desktop.last_view = view_signature(views)
        desktop.send(
            {
                "type": "hello",
                "agent": snapshot["agent"],
                "queues": views,
                "current": current,
                "chats": chats,
                "max_chats": service.chat_capacity(agent),
                "wrap_up_codes": list(WRAP_UP_CODES),
            }
        )
        rate = MessageRate()

        def error(message: str) -> None:
            desktop.send({"type": "error", "message": message})

        while (text := await next_text(websocket, rate, error, desktop.close)) is not None:
            await _handle(desktop, principal, service, db, text, ip)
    finally:
        await hub.detach(desktop)


async def _held_chats(hub: DesktopHub, service: QueueService, agent_id: int) -> list[Any]:
    """The agent's chats for the hello (a reconnected desktop reopens its panes); from now on
    their lines come to this node's hub."""
    chats = []
    for entry_id in await service.chats_of(agent_id):
        chat = await hub.chat_assignment(entry_id, lines=True)
        if chat is None:
            continue
        if chat["status"] != "offered":
            hub.hold_chat(chat["call_id"], entry_id, agent_id)
        else:
            chat.pop("lines", None)
        chats.append(chat)
    return chats


async def _handle(
    desktop: Desktop, who: Principal, service: QueueService, db: Any, text: str, ip: str | None
) -> None:
    def error(message: str) -> None:
        desktop.send({"type": "error", "message": message})

    if len(text) > MAX_MESSAGE:
        return error(f"messages are at most {MAX_MESSAGE} characters")
    try:
        message = json.loads(text)
    except ValueError:
        return error('messages must be JSON, e.g. {"type": "state", "state": "available"}')
    if not isinstance(message, dict):
        return error("messages must be JSON objects")
    kind = message.get("type")
    entry_id = str(message.get("entry_id") or "")
    agent_id = desktop.agent_id
    try:
        if kind == "ping":
            desktop.send({"type": "pong"})
        elif kind == "state":
            await service.set_state(agent_id, str(message.get("state")))
        elif kind == "accept":
            await audited_accept(service, db, who, entry_id, ip)
        elif kind == "decline":
            await service.decline(agent_id, entry_id)
            await audit(
                db, "decline", actor=who.username, actor_id=agent_id, target=entry_id, ip=ip
            )
        elif kind == "end":
            await service.end(agent_id, entry_id)
        elif kind == "wrap_up":
            code = str(message.get("code") or "").strip()
            notes = str(message.get("notes") or "")[:10_000]
            await service.wrap_up(agent_id, entry_id, code, notes)
        elif kind == "start_callback":
            number = await service.start_callback(agent_id, entry_id)
            desktop.send({"type": "callback_started", "entry_id": entry_id, "number": number})
        elif kind == "chat_typing":
            call_id, _name = await service.chat_held_by(entry_id, agent_id)
            await relay.typing(service, call_id, "agent")
        else:
            error(
                f"unknown message type {kind!r}; expected state, accept, decline, end, wrap_up, "
                "start_callback, chat_typing or ping"
            )
    except QueueError as exc:
        error(str(exc))
    except Exception:
        # A message that trips something unforeseen (a database refusing a value) costs that
        # message, not the agent's desktop.
        logger.exception("desktop message failed", extra={"detail": f"type {kind!r}"[:80]})
        error("the server could not handle that message; try again")


class ChatLine(BaseModel):
    # The bound here only stops a huge body; the limit agents meet is checked below, to say it.
    text: str = Field(
        max_length=10 * MAX_MESSAGE_CHARS,
        description=f"What the agent writes (at most {MAX_MESSAGE_CHARS} characters).",
    )


@router.post(
    "/api/desktop/chats/{entry_id}/messages",
    status_code=204,
    response_class=Response,
    tags=["agent desktop"],
    responses={
        403: {"description": "The chat is another agent's."},
        404: {"description": "No such chat."},
        409: {"description": "The chat is not connected (not accepted yet, or over)."},
        422: {"description": "The message is empty or too long."},
    },
)
async def post_chat_message(
    entry_id: str, body: ChatLine, request: Request, queues: Queues, who: User
) -> Response:
    """The agent's line in a chat they hold: stored in the transcript and sent to the customer
    (and echoed to the desktop as a ``chat_message``)."""
    if who.id is None:
        raise HTTPException(403, detail="only a signed-in agent can write in a chat")
    text = body.text.strip()
    if not text:
        raise HTTPException(422, detail="the message is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise HTTPException(
            422,
            detail=f"messages are at most {MAX_MESSAGE_CHARS} characters; this one has {len(text)}",
        )
    try:
        call_id, name = await queues.chat_held_by(entry_id, who.id)
        await relay.post(queues, call_id, "agent", text, agent_name=name)
    except QueueError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    except relay.RelayError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return Response(status_code=204)


@router.websocket("/api/desktop/audio/{entry_id}")
async def desktop_audio(websocket: WebSocket, entry_id: str) -> None:
    """The agent's side of a softphone call: their microphone to the caller and back."""
    principal = await _authenticate(websocket)
    if principal is None:
        return
    app = websocket.app
    async with app.state.db.session() as session:
        entry = await session.get(QueueEntry, entry_id)
    if entry is None or entry.agent_id != principal.id or entry.status != "connected":
        await websocket.close(code=1008, reason="this call is not connected to you")
        return
    leg = app.state.legs.get(entry_id)
    if leg is None:
        await websocket.close(
            code=1011, reason="the caller's audio is not on this server (or they hung up)"
        )
        return
    await websocket.accept()
    outbox: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=200)

    def to_agent(pcm: bytes) -> None:
        if not outbox.full():
            outbox.put_nowait(pcm)

    async def send_all() -> None:
        while (pcm := await outbox.get()) is not None:
            await websocket.send_bytes(pcm)

    assert principal.id is not None  # the entry's agent, checked above
    leg.attach_agent(principal.id, to_agent)
    sender = asyncio.create_task(send_all())
    try:
        while True:
            message = await websocket.receive()
            if message.get("type") == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data and len(data) <= MAX_AUDIO_MESSAGE and len(data) % 2 == 0:
                leg.agent_audio(data)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        leg.detach_agent(to_agent)
        sender.cancel()


def mount_static(app: Any) -> None:
    from fastapi.staticfiles import StaticFiles

    STATIC_DIR.mkdir(parents=True, exist_ok=True)
    app.mount("/desktop/static", StaticFiles(directory=STATIC_DIR), name="desktop-static")
    app.mount("/common/static", StaticFiles(directory=COMMON_DIR), name="common-static")
