"""The supervisor page at ``/supervisor``: the live wallboard (``GET /api/supervisor/wallboard``
and pushed over ``/api/supervisor/ws``), bot performance, reports, the forecast and calls with
their quality reviews. Supervisors and admins only: an agent is answered 403 (the socket closes
with 4403), no session 401 (4401). The page itself is public, like the desktop's: it shows
the sign-in form and says "supervisors only" to an agent.

Socket protocol (docs/supervisor.md): the server sends ``{"type": "wallboard", ...}`` at once
and on every change; the page may send ``{"type": "ping"}`` (answered ``pong``) and
``{"type": "refresh"}`` (a fresh board). Anything else is answered with an ``error`` message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse

from voicebot.api.deps import Supervisor
from voicebot.api.routes.desktop import MAX_MESSAGE, _authenticate
from voicebot.api.security import MessageRate, next_text
from voicebot.api.supervisor_hub import SupervisorHub, SupervisorPage

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "supervisor"
FORBIDDEN = 4403

router = APIRouter(tags=["supervisor"])


@router.get("/supervisor", include_in_schema=False)
def supervisor_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def _hub(app: Any) -> SupervisorHub:
    hub: SupervisorHub | None = app.state.supervisor_hub
    if hub is None:
        raise HTTPException(503, detail=f"the queues are off: {app.state.db_error}")
    return hub


@router.get("/api/supervisor/wallboard")
async def get_wallboard(request: Request, _: Supervisor) -> dict[str, Any]:
    """The board as the socket pushes it: per queue, per agent and the bot's day so far."""
    return await _hub(request.app).board()


@router.websocket("/api/supervisor/ws")
async def supervisor_socket(websocket: WebSocket) -> None:
    principal = await _authenticate(websocket)
    if principal is None:
        return
    if principal.role not in ("supervisor", "admin"):
        await websocket.accept()
        await websocket.close(code=FORBIDDEN, reason="the wallboard is for supervisors")
        return
    hub: SupervisorHub | None = websocket.app.state.supervisor_hub
    if hub is None:
        await websocket.close(code=1011, reason="the queues are off")
        return
    await websocket.accept()
    page = SupervisorPage(websocket, principal.username)
    try:
        page.send_text(json.dumps(await hub.board(), default=str), droppable=False)
        hub.attach(page)
        rate = MessageRate()

        def error(message: str) -> None:
            page.send_text(json.dumps({"type": "error", "message": message}), droppable=False)

        while (text := await next_text(websocket, rate, error, page.close)) is not None:
            await _handle(hub, page, text)
    finally:
        await hub.detach(page)


async def _handle(hub: SupervisorHub, page: SupervisorPage, text: str) -> None:
    def error(message: str) -> None:
        page.send_text(json.dumps({"type": "error", "message": message}), droppable=False)

    if len(text) > MAX_MESSAGE:
        return error(f"message too long (over {MAX_MESSAGE} characters)")
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return error("messages are JSON objects")
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "ping":
        page.send_text(json.dumps({"type": "pong"}), droppable=False)
    elif kind == "refresh":
        hub.mark_stale()
    else:
        error("unknown message type (ping, refresh)")


def mount_static(app: Any) -> None:
    from fastapi.staticfiles import StaticFiles

    app.mount("/supervisor/static", StaticFiles(directory=STATIC_DIR), name="supervisor-static")
