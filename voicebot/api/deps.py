"""Dependencies shared by the routes: the services on ``app.state`` and the write token."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voicebot.config import Settings
from voicebot.knowledge.service import KnowledgeService

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
