"""``/api/privacy``: erasure of one caller's data on request (GDPR art. 17). Admins and the
API token only; the erasure leaves an audit record with a salted hash of the number, never
the number itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from voicebot.api.deps import Admin, Db, client_ip
from voicebot.privacy.erasure import erase_caller, number_matcher

router = APIRouter(prefix="/api/privacy", tags=["privacy"])


class EraseRequest(BaseModel):
    caller: str = Field(
        min_length=1,
        max_length=200,
        description="The caller's number, or a customer id (tel:+44..., email:..., site:...).",
    )


@router.post("/erase")
async def erase(body: EraseRequest, request: Request, db: Db, who: Admin) -> dict[str, Any]:
    """Remove the caller's calls, transcripts, handoffs, queue entries, callbacks, reviews,
    recordings and spooled handoffs; other callers' data is untouched."""
    try:
        number_matcher(body.caller)
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    settings = request.app.state.settings
    report = await erase_caller(
        db,
        body.caller,
        data_dir=settings.data_dir,
        recordings_dir=settings.resolved_recordings_dir,
        actor=who.username,
        ip=client_ip(request),
    )
    return {"erased": report.counts(), "reference": report.reference}
