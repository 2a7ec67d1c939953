"""POST /api/livekit/webhook: events signed the way LiveKit signs them (an AccessToken issued
by the API key, signed with the secret, with the body's SHA-256 as its ``sha256`` claim) are
accepted; unsigned, forged or altered ones get 401 and change nothing."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from livekit import api
from pydantic import SecretStr
from sqlalchemy import select

from tests.queues.packets import make_packet
from voicebot.api.app import create_app
from voicebot.config import Settings
from voicebot.flows.schema import Queue
from voicebot.store.models import QueueEntry

KEY, SECRET = "APIwebhooktest", "webhook-test-secret-that-is-long-enough-0123"
QUEUES = {"general": Queue(skills=["general"])}


def signed(body: str, *, key: str = KEY, secret: str = SECRET, ttl: int = 600) -> str:
    """The Authorization header LiveKit's server sends with a webhook."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return (
        api.AccessToken(key, secret)
        .with_sha256(digest)
        .with_ttl(dt.timedelta(seconds=ttl))
        .to_jwt()
    )


def event(kind: str, room: str, *, sip: bool = True) -> str:
    participant = {"sid": "PA_1", "identity": "sip_+447700900123", "state": "DISCONNECTED"}
    if sip:
        participant["kind"] = "SIP"
    return json.dumps(
        {
            "event": kind,
            "id": "EV_1",
            "createdAt": "1767225600",
            "room": {"sid": "RM_1", "name": room},
            "participant": participant,
        }
    )


@contextlib.asynccontextmanager
async def app_with_queues(tmp_path: Path, **settings: object) -> AsyncIterator[FastAPI]:
    values: dict[str, object] = {
        "livekit_api_key": KEY,
        "livekit_api_secret": SecretStr(SECRET),
        **settings,
    }
    config = Settings(
        data_dir=tmp_path / "data",
        bot_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}",
        **values,  # type: ignore[arg-type]
    )
    app = create_app(config, queues=QUEUES, require_database=True)
    app.state.knowledge_error = "off in these tests"
    async with app.router.lifespan_context(app):
        yield app


async def post(app: FastAPI, body: str, authorization: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/webhook+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/api/livekit/webhook", content=body, headers=headers)


async def status(app: FastAPI, entry_id: str) -> str:
    async with app.state.db.session() as session:
        value = await session.scalar(select(QueueEntry.status).where(QueueEntry.id == entry_id))
    return str(value)


async def test_signed_sip_participant_left_ends_the_waiting_entry(tmp_path: Path) -> None:
    async with app_with_queues(tmp_path) as app:
        packet = make_packet("general", channel="sip")
        entry_id = await app.state.queues.enqueue(packet)
        assert await status(app, entry_id) == "waiting"

        # forged: the right shape, the wrong secret; nothing is acted on
        body = event("participant_left", packet.call_id)
        forged = await post(
            app, body, signed(body, secret="not-livekits-secret-but-just-as-long-0123")
        )
        assert forged.status_code == 401
        assert "signature is not valid" in forged.json()["detail"]
        # altered: a real token for another body
        other = event("participant_left", "some-other-room")
        altered = await post(app, body, signed(other))
        assert altered.status_code == 401
        # unsigned
        unsigned = await post(app, body, None)
        assert unsigned.status_code == 401
        assert "unsigned" in unsigned.json()["detail"]
        # expired
        expired = await post(app, body, signed(body, ttl=-3600))
        assert expired.status_code == 401
        # another API key's token (issuer) is not LiveKit's for this server
        wrong_key = await post(app, body, signed(body, key="APIsomeoneelse"))
        assert wrong_key.status_code == 401
        assert await status(app, entry_id) == "waiting"

        good = await post(app, body, signed(body))
        assert good.status_code == 200, good.text
        assert good.json() == {
            "ok": True,
            "event": "participant_left",
            "acted": "entry waiting -> ended",
        }
        assert await status(app, entry_id) == "abandoned"
        # LiveKit retries deliveries: the second one changes nothing
        again = await post(app, body, signed(body))
        assert again.status_code == 200 and again.json()["acted"] is None


async def test_other_events_are_acknowledged_and_not_acted_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with app_with_queues(tmp_path) as app:
        packet = make_packet("general", channel="sip")
        entry_id = await app.state.queues.enqueue(packet)
        for body in (
            event("participant_joined", packet.call_id),
            event("participant_left", packet.call_id, sip=False),  # an agent's desktop
            event("room_finished", packet.call_id),
        ):
            with caplog.at_level("INFO", logger="voicebot.api.livekit"):
                response = await post(app, body, signed(body))
            assert response.status_code == 200, response.text
            assert response.json()["acted"] is None
        assert await status(app, entry_id) == "waiting"
        # the participant's identity carries the phone number: never logged
        logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
        assert "LiveKit webhook" in logged
        assert "447700900123" not in logged


async def test_without_livekit_credentials_every_webhook_is_refused(tmp_path: Path) -> None:
    async with app_with_queues(tmp_path, livekit_api_secret=None) as app:
        body = event("participant_left", "room")
        response = await post(app, body, signed(body))
        assert response.status_code == 401
        assert "LIVEKIT_API_SECRET" in response.json()["detail"]
