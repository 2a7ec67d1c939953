"""``POST /api/entries/{entry_id}/livekit`` over real HTTP (uvicorn on loopback): the token with
which an agent's desktop joins a phone caller's LiveKit room, and who may have one.

The token is checked the way LiveKit checks it: its signature with the API secret, then its
claims. The agent must join unheard (``canPublish`` false: the worker grants it after briefing
them), so that claim is read from the JWT itself, not through a parser that fills in defaults.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
import websockets
from livekit import api

from tests.queues.test_api import (
    USERS,
    Desktop,
    Server,
    Start,
    cookie_of,
    queue_call,
)
from tests.queues.test_api import serve as serve  # the fixture
from voicebot.queues.waiting import AGENT_IDENTITY_PREFIX, agent_identity

KEY = "test-livekit-key"
SECRET = "test-livekit-secret-that-is-long-enough-0123456789"
INTERNAL_URL = "ws://livekit.internal:7880"
BROWSER_URL = "wss://livekit.example.com"
LIVEKIT_ENV = (
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "VOICEBOT_LIVEKIT_URL",
    "VOICEBOT_LIVEKIT_API_KEY",
    "VOICEBOT_LIVEKIT_API_SECRET",
    "VOICEBOT_LIVEKIT_BROWSER_URL",
)


@pytest.fixture(autouse=True)
def no_livekit_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What LiveKit the API knows is what each test gives it, not the developer's shell's."""
    for name in LIVEKIT_ENV:
        monkeypatch.delenv(name, raising=False)


def with_livekit(serve: Start, **settings: Any) -> Server:
    # Set as the environment would (LIVEKIT_URL and friends), through Settings' aliases.
    return serve(
        USERS,
        LIVEKIT_URL=INTERNAL_URL,
        LIVEKIT_API_KEY=KEY,
        LIVEKIT_API_SECRET=SECRET,
        **settings,
    )


def connect_call(server: Server, agent: str, call: dict[str, Any]) -> dict[str, Any]:
    """``agent`` goes available on the desktop socket, is offered ``call`` and accepts it;
    returns the connected message's assignment. Before accepting, the offer's assignment and
    a token request (refused: not connected yet) are checked."""
    with server.sign_in(agent) as client:
        cookie = cookie_of(client)

        async def go() -> dict[str, Any]:
            async with websockets.connect(
                server.ws_url + "/api/desktop/ws", additional_headers={"Cookie": cookie}
            ) as ws:
                desktop = Desktop(ws)
                await desktop.next("hello")
                await desktop.send(type="state", state="available")
                offer = await desktop.next("offer")
                assert offer["assignment"]["entry_id"] == call["entry_id"], offer
                early = await asyncio.to_thread(
                    client.post, f"/api/entries/{call['entry_id']}/livekit"
                )
                assert early.status_code == 409, early.text
                assert early.json() == {"detail": "this call is not connected to you"}
                await desktop.send(type="accept", entry_id=call["entry_id"])
                connected = await desktop.next("connected")
                # The call goes on with the desktop closed (the agent's phone has it).
                assignment: dict[str, Any] = connected["assignment"]
                return assignment

        return asyncio.run(go())


def agent_id(server: Server, username: str) -> int:
    with server.service() as service:
        agents = service.get("/api/agents").json()
    return int(next(a["id"] for a in agents if a["username"] == username))


def test_the_connected_agent_gets_a_token_to_join_unheard(serve: Start) -> None:
    server = with_livekit(serve, livekit_browser_url=BROWSER_URL)
    call = queue_call(server, channel="sip")
    assignment = connect_call(server, "alice", call)
    with server.service() as service:
        handoff = service.get(f"/api/handoffs/{call['handoff_id']}").json()
    call_id = handoff["packet"]["call_id"]
    # The screen pop says where the caller is: the room named by the call id.
    assert assignment["channel"] == "sip" and assignment["livekit_room"] == call_id, assignment
    alice = agent_id(server, "alice")

    with server.sign_in("alice") as client:
        issued_at = time.time()
        response = client.post(f"/api/entries/{call['entry_id']}/livekit")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"url", "token", "room", "identity"}, body
    # The browser's address for LiveKit, not the one the servers use among themselves.
    assert body["url"] == BROWSER_URL
    assert body["room"] == call_id and body["identity"] == f"agent-{alice}"
    assert agent_identity(alice) == f"{AGENT_IDENTITY_PREFIX}{alice}" == body["identity"]

    # Signed with the secret, by the key, as LiveKit verifies it.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(body["token"], "another-secret-" + SECRET, algorithms=["HS256"])
    raw = jwt.decode(body["token"], SECRET, algorithms=["HS256"], issuer=KEY)
    assert raw["sub"] == f"agent-{alice}" and raw["name"] == "alice"
    video = raw["video"]
    assert video["room"] == call_id, video
    # Unheard until the worker, having briefed the agent, grants publishing.
    assert video["canPublish"] is False and video["canPublishData"] is False, video
    # Nothing more than joining and listening: no admin, no recording, no hidden presence.
    assert sorted(k for k, v in video.items() if v is True) == ["canSubscribe", "roomJoin"]
    assert raw["attributes"] == {"voicebot.role": "agent", "voicebot.entry_id": call["entry_id"]}
    assert 290 <= raw["exp"] - issued_at <= 310, (raw["exp"], issued_at)
    claims = api.TokenVerifier(KEY, SECRET).verify(body["token"])
    assert claims.identity == f"agent-{alice}" and claims.video is not None
    assert claims.video.room_join and claims.video.room == call_id

    with server.service() as service:
        log = service.get("/api/audit", params={"action": "livekit_join"}).json()
    assert [(e["actor"], e["target"], e["success"]) for e in log] == [
        ("alice", call["entry_id"], True),
        ("alice", call["entry_id"], False),  # asked before accepting (connect_call)
    ], log
    assert log[0]["detail"] == {"room": call_id}
    assert body["token"] not in str(log), "the token was written to the audit log"


def test_only_the_agent_connected_to_a_livekit_call_gets_one(serve: Start) -> None:
    server = with_livekit(serve)
    sip = queue_call(server, channel="sip")
    connect_call(server, "alice", sip)
    url = f"/api/entries/{sip['entry_id']}/livekit"

    with server.sign_in("bob") as bob:
        other = bob.post(url)
        assert other.status_code == 409, other.text
        assert other.json() == {"detail": "this call is not connected to you"}
        unknown = bob.post("/api/entries/no-such-entry/livekit")
        assert unknown.status_code == 404 and unknown.json() == {"detail": "no such queue entry"}
    with server.client() as anonymous:
        nobody = anonymous.post(url)
        assert nobody.status_code == 401 and "sign in" in nobody.json()["detail"]
    with server.service() as service:
        # The API token is nobody's desktop.
        assert service.post(url).status_code == 403

    # A softphone caller's audio reaches the desktop over its WebSocket: no room to join.
    softphone = queue_call(server, channel="softphone")
    assignment = connect_call(server, "bob", softphone)
    assert assignment["channel"] == "softphone" and assignment["livekit_room"] is None
    with server.sign_in("bob") as bob:
        refused = bob.post(f"/api/entries/{softphone['entry_id']}/livekit")
    assert refused.status_code == 422, refused.text
    assert "not a phone call through LiveKit" in refused.json()["detail"]

    # When the call is over, so is the right to join it.
    with server.sign_in("alice") as alice:
        assert alice.post(f"/api/entries/{sip['entry_id']}/end").status_code == 204
        after = alice.post(url)
        assert after.status_code == 409, after.text

    with server.service() as service:
        log = service.get("/api/audit", params={"action": "livekit_join"}).json()
    refusals = [(e["actor"], e["target"], e["success"]) for e in reversed(log)]
    assert refusals == [
        ("alice", sip["entry_id"], False),  # before accepting (connect_call)
        ("bob", sip["entry_id"], False),
        ("bob", "no-such-entry", False),
        ("bob", softphone["entry_id"], False),  # bob, before accepting
        ("bob", softphone["entry_id"], False),
        ("alice", sip["entry_id"], False),
    ], log


def test_the_browser_url_defaults_to_livekit_url(serve: Start) -> None:
    server = with_livekit(serve)
    call = queue_call(server, channel="sip")
    connect_call(server, "alice", call)
    with server.sign_in("alice") as alice:
        response = alice.post(f"/api/entries/{call['entry_id']}/livekit")
    assert response.status_code == 200, response.text
    assert response.json()["url"] == INTERNAL_URL
    with server.service() as service:
        documented = service.get("/openapi.json").json()["paths"]["/api/entries/{entry_id}/livekit"]
    assert set(documented["post"]["responses"]) >= {"200", "404", "409", "422", "503"}, documented


def test_an_api_without_livekit_says_so(serve: Start) -> None:
    server = serve(USERS)
    assert not server.settings.livekit_configured
    call = queue_call(server, channel="sip")
    assignment = connect_call(server, "alice", call)
    # The desktop still learns it is a LiveKit call, and tells the agent it cannot join.
    assert assignment["livekit_room"]
    with server.sign_in("alice") as alice:
        response = alice.post(f"/api/entries/{call['entry_id']}/livekit")
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert "LiveKit is not configured" in detail and "LIVEKIT_API_SECRET" in detail
    with server.service() as service:
        log = service.get("/api/audit", params={"action": "livekit_join"}).json()
    assert log[0]["success"] is False and "not configured" in log[0]["detail"]["refused"]
