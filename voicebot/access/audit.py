"""The audit log: sign-ins (failed ones too), accepts, declines, packet views, exports and user
changes, each with who, when, from where and what. Written in its own transaction so that a
refused request is still recorded."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from voicebot.store.db import Database
from voicebot.store.models import AuditEvent

logger = logging.getLogger("voicebot.audit")


async def audit(
    db: Database,
    action: str,
    *,
    actor: str | None,
    actor_id: int | None = None,
    target: str | None = None,
    success: bool = True,
    ip: str | None = None,
    **detail: Any,
) -> None:
    try:
        async with db.transaction() as session:
            session.add(
                AuditEvent(
                    at=dt.datetime.now(dt.UTC),
                    actor=actor,
                    actor_id=actor_id,
                    action=action,
                    target=target,
                    success=success,
                    ip=ip,
                    detail=detail,
                )
            )
    except Exception:
        # An audit write must not turn a caller's transfer into an error; it is logged loudly.
        logger.exception("audit write failed", extra={"detail": f"{action} {target}"})
