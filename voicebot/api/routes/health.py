"""``/health``: is the server up, and are its knowledge base, audio path and queues usable."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    state = request.app.state
    knowledge: dict[str, Any] = {"status": "off", "detail": str(state.knowledge_error or "")}
    if state.knowledge is not None:
        try:
            knowledge = {"status": "ok", "passages": state.knowledge.store.count()}
        except Exception as exc:  # a Chroma server that went away after start-up
            knowledge = {"status": "unavailable", "detail": str(exc)}
    speech = getattr(state, "speech", None)
    audio: dict[str, Any] = (
        {"status": "ok", **speech.labels, "calls": len(state.calls)}
        if speech is not None
        else {"status": "off", "detail": str(getattr(state, "speech_error", "") or "")}
    )
    service = getattr(state, "queues", None)
    queues: dict[str, Any] = (
        {
            "status": "ok",
            "database": service.db.describe(),
            "events": service.bus.describe(),
            "node": service.node_id,
            "desktops": len(state.hub.desktops) if state.hub is not None else 0,
        }
        if service is not None
        else {"status": "off", "detail": str(getattr(state, "db_error", "") or "")}
    )
    return {
        "status": "ok",
        "bot": state.bot_name,
        "knowledge": knowledge,
        "audio": audio,
        "queues": queues,
    }
