"""Agent assist's REST side: the desktop reports when it drew a suggestion, and supervisors read
the latency from the customer's words to the suggestion on screen (voicebot/assist/hub.py).

The suggestions themselves reach the desktop over its WebSocket (``assist`` and ``transcript``
messages, docs/desktop.md "Agent assist").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from voicebot.api.deps import Supervisor, User
from voicebot.assist.hub import AssistHub

router = APIRouter(prefix="/api/assist", tags=["agent assist"])


class Rendered(BaseModel):
    line_id: str = Field(min_length=1, max_length=64)
    # epoch milliseconds on the agent's machine (performance.timeOrigin + performance.now())
    rendered_at: float = Field(gt=0)


def _hub(request: Request) -> AssistHub:
    hub: AssistHub | None = getattr(request.app.state, "assist", None)
    if hub is None:
        raise HTTPException(503, detail=f"the queues are off: {request.app.state.db_error}")
    return hub


@router.post("/rendered")
async def suggestion_rendered(body: Rendered, request: Request, who: User) -> dict[str, Any]:
    """The desktop drew the suggestion for ``line_id``; answers the latency it makes (ms), or
    404 for a line that was not sent to this agent from this node."""
    hub = _hub(request)
    latency = hub.rendered(who.id, body.line_id, body.rendered_at) if who.id is not None else None
    if latency is None:
        raise HTTPException(404, detail="no suggestion with that line id was sent to you here")
    return {"line_id": body.line_id, "latency_ms": round(latency, 1)}


@router.get("/latency")
async def suggestion_latency(request: Request, who: Supervisor) -> dict[str, Any]:
    """From the customer's words to the suggestion on the agent's screen, over the latest
    suggestions drawn by desktops connected to this node (p50, p95, max in ms)."""
    return _hub(request).latencies.figures()
