"""Sign-in sessions: a random token in an HttpOnly, SameSite=Strict cookie; the database keeps
only its SHA-256, so a leaked database does not sign anyone in. Sessions live in the database,
not in one process, so every API node accepts them."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from voicebot.store.db import Database
from voicebot.store.models import Agent, AuditEvent, UserSession

COOKIE = "voicebot_session"
# Failed sign-ins per user name, or per address, in the window before further tries wait.
MAX_FAILURES = 5
FAILURE_WINDOW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a signed-in user, or the API token (an external desktop, CRM, worker)."""

    id: int | None
    username: str
    role: str  # agent | supervisor | admin | service

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin", "service")

    @property
    def is_admin(self) -> bool:
        return self.role in ("admin", "service")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_session(db: Database, agent_id: int, hours: float, ip: str | None) -> str:
    token = secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as session:
        session.add(
            UserSession(
                token_hash=_hash(token),
                agent_id=agent_id,
                created_at=now,
                expires_at=now + dt.timedelta(hours=hours),
                ip=ip,
            )
        )
        # Expired sessions are cleared as new ones start: no separate cleaner is needed.
        await session.execute(delete(UserSession).where(UserSession.expires_at < now))
    return token


class SessionExpired(Exception):
    pass


async def principal_for(db: Database, token: str | None) -> Principal | None:
    """The user of a session token; None when there is none; SessionExpired when it ended."""
    if not token:
        return None
    now = dt.datetime.now(dt.UTC)
    async with db.session() as session:
        row = (
            await session.execute(
                select(UserSession.expires_at, Agent)
                .join(Agent, Agent.id == UserSession.agent_id)
                .where(UserSession.token_hash == _hash(token))
            )
        ).first()
    if row is None:
        return None
    expires, agent = row
    if expires <= now or not agent.active:
        raise SessionExpired()
    return Principal(id=agent.id, username=agent.username, role=agent.role)


async def end_session(db: Database, token: str | None) -> None:
    if token:
        async with db.transaction() as session:
            await session.execute(delete(UserSession).where(UserSession.token_hash == _hash(token)))


async def end_user_sessions(db: Database, agent_id: int, *, keep: str | None = None) -> int:
    """End every session of a user (a changed or reset password), except ``keep``'s; how many."""
    where = [UserSession.agent_id == agent_id]
    if keep:
        where.append(UserSession.token_hash != _hash(keep))
    async with db.transaction() as session:
        result = await session.execute(delete(UserSession).where(*where))
    return int(getattr(result, "rowcount", 0) or 0)


# Failures that count towards the limit: a wrong password at sign-in, or when changing it (a
# stolen session must not be a way round the limit to guess the password).
LIMITED_ACTIONS = ("sign_in", "password_change")


async def retry_after(db: Database, username: str, ip: str | None) -> int:
    """Seconds to wait before another sign-in try, from recent failures in the audit log (so
    the limit holds across nodes); 0 when a try is allowed."""
    now = dt.datetime.now(dt.UTC)
    since = now - FAILURE_WINDOW
    async with db.session() as session:
        for column, value in ((AuditEvent.actor, username), (AuditEvent.ip, ip)):
            if value is None:
                continue
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(AuditEvent.at)).where(
                        AuditEvent.action.in_(LIMITED_ACTIONS),
                        AuditEvent.success.is_(False),
                        AuditEvent.at > since,
                        column == value,
                    )
                )
            ).one()
            if count >= MAX_FAILURES and oldest is not None:
                return max(1, int((oldest + FAILURE_WINDOW - now).total_seconds()) + 1)
    return 0
