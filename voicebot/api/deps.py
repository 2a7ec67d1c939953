"""Dependencies shared by the routes: the services on ``app.state``, the write token, and who
is asking (a signed-in user or the API token) with their role."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voicebot.access.sessions import COOKIE, Principal, SessionExpired, principal_for
from voicebot.config import Settings
from voicebot.knowledge.service import KnowledgeService
from voicebot.queues.service import QueueService
from voicebot.store.db import Database

_bearer = HTTPBearer(auto_error=False)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_knowledge(request: Request) -> KnowledgeService:
    knowledge: KnowledgeService | None = request.app.state.knowledge
    if knowledge is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the knowledge base is off: " + str(request.app.state.knowledge_error),
        )
    return knowledge


def require_writer(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Changes need ``Authorization: Bearer $VOICEBOT_API_TOKEN`` when a token is configured."""
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value()
    if credentials is None or not secrets.compare_digest(credentials.credentials, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid 'Authorization: Bearer <VOICEBOT_API_TOKEN>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


Knowledge = Annotated[KnowledgeService, Depends(get_knowledge)]
Writer = Depends(require_writer)


# -- queues, agents, sign-in -------------------------------------------------------------------


def get_db(request: Request) -> Database:
    db: Database | None = request.app.state.db
    if db is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the database is not available: " + str(request.app.state.db_error),
        )
    return db


def get_queues(request: Request) -> QueueService:
    get_db(request)
    service: QueueService = request.app.state.queues
    return service


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def get_principal(
    request: Request,
    db: Annotated[Database, Depends(get_db)],
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """A signed-in user (session cookie), or the API token (an external desktop or CRM)."""
    if credentials is not None and settings.api_token is not None:
        expected = settings.api_token.get_secret_value()
        if secrets.compare_digest(credentials.credentials, expected):
            return Principal(id=None, username="api-token", role="service")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid API token")
    try:
        principal = await principal_for(db, request.cookies.get(COOKIE))
    except SessionExpired:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="your session has expired; sign in again"
        ) from None
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="sign in first (or send 'Authorization: Bearer <VOICEBOT_API_TOKEN>')",
        )
    return principal


def require_supervisor(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_supervisor:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="supervisors only")
    return principal


def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admins only")
    return principal


Db = Annotated[Database, Depends(get_db)]
Queues = Annotated[QueueService, Depends(get_queues)]
User = Annotated[Principal, Depends(get_principal)]
Supervisor = Annotated[Principal, Depends(require_supervisor)]
Admin = Annotated[Principal, Depends(require_admin)]


def bot_timezone(request: Request) -> str | None:
    """The bot's ``hours.timezone`` when the API runs the bot (else reports are in UTC)."""
    runtime = request.app.state.runtime
    hours = runtime.loaded.definition.bot.hours if runtime is not None else None
    return hours.timezone if hours is not None else None
