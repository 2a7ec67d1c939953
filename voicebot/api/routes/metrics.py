"""``GET /metrics``: Prometheus's text exposition of the queues, calls, the bot and latency.

Readable with ``Authorization: Bearer $VOICEBOT_API_TOKEN`` (what a Prometheus scrape job
sends) or a supervisor's or admin's session; without either only when
``VOICEBOT_METRICS_PUBLIC=1`` (a scrape network that nothing else reaches).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from voicebot.api.deps import get_principal, get_settings
from voicebot.api.metrics import AppMetrics
from voicebot.config import Settings

router = APIRouter(tags=["metrics"])
_bearer = HTTPBearer(auto_error=False)


async def require_metrics_reader(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The API token, a supervisor or admin session, or anyone with ``metrics_public``."""
    if settings.metrics_public:
        return
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    if credentials is not None and token is not None:
        if secrets.compare_digest(credentials.credentials, token):
            return
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid API token")
    db = request.app.state.db
    if db is None:  # queues off: no sessions to check, so the token is the only way in
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="send 'Authorization: Bearer <VOICEBOT_API_TOKEN>' "
            "(or set VOICEBOT_METRICS_PUBLIC=1)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await get_principal(request, db, settings, credentials)
    if not principal.is_supervisor:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="supervisors and admins only")


def app_metrics(request: Request) -> AppMetrics:
    """The app's metrics (made at start-up; made here for an app built without them)."""
    metrics: AppMetrics | None = getattr(request.app.state, "metrics", None)
    if metrics is None:
        metrics = request.app.state.metrics = AppMetrics()
    return metrics


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_metrics_reader)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "docs/metrics.md"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (docs/metrics.md): live queue gauges and this node's counters."""
    body = await app_metrics(request).scrape(request.app.state.queues)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
