"""The contact-centre API over real HTTP and WebSockets (uvicorn on loopback): sign-in, sessions,
who may read what, the audit log, the desktop socket's rules, REST for handoffs and callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from pydantic import SecretStr
from sqlalchemy import update

from tests.queues.packets import make_packet
from voicebot.access.users import add_user
from voicebot.api.app import create_app
from voicebot.config import Settings
from voicebot.flows.schema import Queue
from voicebot.store.db import open_database
from voicebot.store.models import UserSession

TOKEN = "test-token-123"
QUEUES = {"general": Queue(skills=["general"]), "billing": Queue(skills=["billing"])}
PASSWORD = "correct horse"


class Server:
    def __init__(self, url: str, settings: Settings, app: Any) -> None:
        self.url = url
        self.settings = settings
        self.app = app
        self.ws_url = url.replace("http://", "ws://")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def service(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    @contextlib.contextmanager
    def sign_in(self, username: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
        with self.client() as client:
            response = client.post(
                "/api/auth/login", json={"username": username, "password": password}
            )
            assert response.status_code == 200, response.text
            yield client


Start = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Start]:
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(
        users: dict[str, tuple[str, dict[str, int]]] | None = None, **overrides: Any
    ) -> Server:
        settings = Settings(
            data_dir=tmp_path / "data",
            bot_dir=tmp_path,
            api_token=SecretStr(TOKEN),
            wrap_up_seconds=0,
            **overrides,
        )

        async def add_users() -> None:
            db = await open_database(settings.resolved_database_url)
            for name, (role, skills) in (users or {}).items():
                await add_user(db, name, PASSWORD, role=role, skills=skills)
            await db.aclose()

        asyncio.run(add_users())
        app = create_app(settings, queues=QUEUES, require_database=True)
        app.state.knowledge_error = "off in these tests"
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        running.append((server, thread))
        return Server(f"http://127.0.0.1:{port}", settings, app)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=15)


USERS = {
    "alice": ("agent", {"general": 5}),
    "bob": ("agent", {"general": 5, "billing": 5}),
    "sue": ("supervisor", {}),
    "ada": ("admin", {}),
}


def queue_call(server: Server, queue: str = "general", **kwargs: Any) -> dict[str, Any]:
    with server.service() as service:
        response = service.post(
            "/api/handoffs", json=make_packet(queue, **kwargs).model_dump(mode="json")
        )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


class Desktop:
    """A desktop WebSocket client (what the browser page does)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self, kind: str, within: float = 10) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind!r} message; saw {[m['type'] for m in self.seen]}")
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=left))
            except TimeoutError:
                raise AssertionError(
                    f"no {kind!r} message; saw {[m['type'] for m in self.seen]}"
                ) from None
            self.seen.append(message)
            if message["type"] == kind:
                return message


def cookie_of(client: httpx.Client) -> str:
    return f"voicebot_session={client.cookies['voicebot_session']}"


# -- sign-in -----------------------------------------------------------------------------------


def test_sign_in_errors_are_generic_and_rate_limited(serve: Start) -> None:
    server = serve(USERS)
    with server.client() as client:
        unknown = client.post("/api/auth/login", json={"username": "nobody", "password": "x"})
        wrong = client.post("/api/auth/login", json={"username": "alice", "password": "wrong"})
        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json() == wrong.json() == {"detail": "wrong username or password"}
        for _ in range(4):
            client.post("/api/auth/login", json={"username": "alice", "password": "wrong"})
        limited = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        assert limited.status_code == 429
        assert "try again in" in limited.json()["detail"] and limited.headers["Retry-After"]
        assert client.get("/api/auth/me").status_code == 401
        bad = client.post("/api/auth/login", json={"username": "", "password": ""})
        assert bad.status_code == 422


def test_session_cookie_me_logout_and_expiry(serve: Start) -> None:
    server = serve(USERS)
    with server.client() as client:
        response = client.post("/api/auth/login", json={"username": "bob", "password": PASSWORD})
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        me = client.get("/api/auth/me").json()
        assert me["username"] == "bob" and me["skills"] == {"general": 5, "billing": 5}
        assert client.post("/api/auth/logout").status_code == 204
        assert client.get("/api/auth/me").status_code == 401
    with server.sign_in("sue") as sue:
        states = {a["username"]: a["state"] for a in sue.get("/api/agents").json()}
    assert states["bob"] == "offline"

    with server.sign_in("bob") as client:

        async def expire() -> None:
            db = await open_database(server.settings.resolved_database_url, migrate=False)
            async with db.transaction() as session:
                past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
                await session.execute(update(UserSession).values(expires_at=past))
            await db.aclose()

        asyncio.run(expire())
        expired = client.get("/api/queues")
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]


# -- who may read what -------------------------------------------------------------------------


def test_agents_read_only_packets_offered_to_them(serve: Start) -> None:
    server = serve(USERS)
    call = queue_call(server, "billing", vip=True)
    handoff = call["handoff_id"]
    with server.sign_in("alice") as alice, server.sign_in("bob") as bob:
        assert alice.get(f"/api/handoffs/{handoff}").status_code == 404
        assert bob.get(f"/api/handoffs/{handoff}").status_code == 404  # not offered yet

        async def go_available() -> dict[str, Any]:
            async with websockets.connect(
                server.ws_url + "/api/desktop/ws", additional_headers={"Cookie": cookie_of(bob)}
            ) as ws:
                desktop = Desktop(ws)
                await desktop.next("hello")
                await desktop.send(type="state", state="available")
                return await desktop.next("offer")

        offer = asyncio.run(go_available())
        assert offer["assignment"]["packet"]["id"] == handoff
        readable = bob.get(f"/api/handoffs/{handoff}")
        assert readable.status_code == 200
        assert readable.json()["packet"]["slots"] == {"account_number": "****5678"}
        assert alice.get(f"/api/handoffs/{handoff}").status_code == 404
        assert alice.get("/api/handoffs").status_code == 403
        assert alice.post("/api/handoffs", json={}).status_code == 403
    with server.sign_in("sue") as sue:
        assert sue.get(f"/api/handoffs/{handoff}").status_code == 200
        export = sue.get("/api/reports/handoffs.csv")
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert "****0123" in export.text and "+447700900123" not in export.text
        assert sue.get("/api/audit").status_code == 403
    with server.service() as service:
        log = service.get("/api/audit").json()
    views = [(e["actor"], e["success"]) for e in log if e["action"] == "view_packet"]
    assert ("alice", False) in views and ("bob", True) in views and ("sue", True) in views
    # the screen pop is a view of the packet too
    pops = [e for e in log if e["action"] == "view_packet" and e["detail"].get("via")]
    assert [(e["actor"], e["target"], e["detail"]["via"]) for e in pops] == [
        ("bob", handoff, "screen pop")
    ]
    assert any(e["action"] == "export" and e["actor"] == "sue" for e in log)
    assert {e["action"] for e in log} >= {"sign_in", "view_packet", "export"}


def test_admins_manage_users(serve: Start) -> None:
    server = serve(USERS)
    with server.sign_in("sue") as sue:
        refused = sue.post("/api/agents", json={"username": "x", "password": "password123"})
        assert refused.status_code == 403
        assert [a["username"] for a in sue.get("/api/agents").json()] == [
            "ada",
            "alice",
            "bob",
            "sue",
        ]
    with server.sign_in("ada") as ada:
        created = ada.post(
            "/api/agents",
            json={"username": "cai", "password": "password123", "skills": {"billing": 7}},
        )
        assert created.status_code == 201 and created.json()["skills"] == {"billing": 7}
        duplicate = ada.post("/api/agents", json={"username": "cai", "password": "password123"})
        assert duplicate.status_code == 422 and "exists" in duplicate.json()["detail"]
        bad_skill = ada.patch(f"/api/agents/{created.json()['id']}", json={"skills": {"x": 11}})
        assert bad_skill.status_code == 422 and "1-10" in bad_skill.json()["detail"]
        disabled = ada.patch(f"/api/agents/{created.json()['id']}", json={"active": False})
        assert disabled.status_code == 200
    with server.client() as client:
        denied = client.post("/api/auth/login", json={"username": "cai", "password": "password123"})
        assert denied.status_code == 401


def test_callbacks_and_queue_figures(serve: Start) -> None:
    server = serve(USERS)
    with server.service() as service:
        made = service.post(
            "/api/callbacks", json={"number": "+447700900555", "queue": "billing", "name": "Bea"}
        )
        assert made.status_code == 201
        bad = service.post("/api/callbacks", json={"number": "call me", "queue": "billing"})
        assert bad.status_code == 422
        pending = service.get("/api/callbacks").json()
        assert [(c["number"], c["queue"]) for c in pending] == [("+447700900555", "billing")]
        figures = service.get("/api/queues/billing").json()
        assert figures["waiting"] == 1 and figures["agents_staffed"] == 0
        assert figures["estimated_wait"] is None
        assert service.get("/api/queues/nope").status_code == 404
        openapi = service.get("/openapi.json").json()["paths"]
    assert {"/api/handoffs", "/api/handoffs/{handoff_id}", "/api/queues", "/api/agents"} <= set(
        openapi
    )
    with server.sign_in("alice") as alice:
        # An agent sees the queues of their skills only.
        assert [q["name"] for q in alice.get("/api/queues").json()] == ["general"]


# -- the desktop socket ------------------------------------------------------------------------


async def _open(server: Server, cookie: str | None, origin: str | None = None) -> Any:
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    return await websockets.connect(server.ws_url + "/api/desktop/ws", additional_headers=headers)


def test_the_socket_needs_a_session_and_the_same_origin(serve: Start) -> None:
    server = serve(USERS)
    with server.sign_in("alice") as alice:
        cookie = cookie_of(alice)

    async def check() -> None:
        ws = await _open(server, None)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        with pytest.raises(websockets.InvalidStatus):
            await _open(server, cookie, origin="http://evil.example")
        ok = await _open(server, cookie, origin=server.url)
        assert json.loads(await ok.recv())["type"] == "hello"
        await ok.close()

    asyncio.run(check())


def test_bad_messages_get_errors_and_the_desktop_goes_on(serve: Start) -> None:
    server = serve(USERS)
    with server.sign_in("alice") as alice:
        cookie = cookie_of(alice)

    async def check() -> None:
        async with await _open(server, cookie) as ws:
            desktop = Desktop(ws)
            hello = await desktop.next("hello")
            assert hello["agent"]["state"] == "offline" and "resolved" in hello["wrap_up_codes"]
            await ws.send("not json")
            assert "JSON" in (await desktop.next("error"))["message"]
            await desktop.send(type="fly")
            assert "unknown message type" in (await desktop.next("error"))["message"]
            await desktop.send(type="accept", entry_id="nope")
            assert "no such queue entry" in (await desktop.next("error"))["message"]
            await desktop.send(type="state", state="busy")
            assert "cannot set" in (await desktop.next("error"))["message"]
            await ws.send("x" * 20_000)
            assert "at most" in (await desktop.next("error"))["message"]
            await desktop.send(type="ping")
            await desktop.next("pong")

    asyncio.run(check())


def test_a_second_tab_takes_over(serve: Start) -> None:
    server = serve(USERS)
    with server.sign_in("alice") as alice:
        cookie = cookie_of(alice)

    async def check() -> None:
        first = Desktop(await _open(server, cookie))
        await first.next("hello")
        await first.send(type="state", state="available")
        await first.next("state")
        second = Desktop(await _open(server, cookie))
        await second.next("hello")
        await first.next("replaced")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await first.ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        # Taking over is not leaving: the agent is still available.
        with server.sign_in("sue") as sue:
            states = {a["username"]: a["state"] for a in sue.get("/api/agents").json()}
        assert states["alice"] == "available"
        await second.ws.close()

    asyncio.run(check())


def test_a_full_call_on_the_desktop_and_a_browser_that_closes(serve: Start) -> None:
    server = serve(USERS)
    with server.sign_in("alice") as alice, server.sign_in("sue") as sue:
        agent_cookie, supervisor_cookie = cookie_of(alice), cookie_of(sue)

    async def check() -> None:
        supervisor = Desktop(await _open(server, supervisor_cookie))
        await supervisor.next("hello")
        agent = Desktop(await _open(server, agent_cookie))
        await agent.next("hello")
        await agent.send(type="state", state="available")
        call = await asyncio.to_thread(queue_call, server)
        offer = await agent.next("offer")
        assignment = offer["assignment"]
        assert assignment["entry_id"] == call["entry_id"] and offer["expires_at"]
        packet = assignment["packet"]
        assert packet["caller"]["name"] == "Ann Example" and packet["intent"]["confidence"] == 0.91
        assert packet["transcript"][1]["text"] == "why is my bill higher"
        await agent.send(type="accept", entry_id=call["entry_id"])
        connected = await agent.next("connected")
        assert connected["assignment"]["status"] == "connected"
        views = await supervisor.next("queues")
        assert {v["name"] for v in views["queues"]} == {"general", "billing"}
        # The agent's browser closes mid-call: supervisors are told.
        await agent.ws.close()
        flag = await supervisor.next("flag")
        assert flag["entry_id"] == call["entry_id"] and "desktop closed" in flag["reason"]
        # The agent comes back: the desktop shows the call still in progress.
        again = Desktop(await _open(server, agent_cookie))
        hello = await again.next("hello")
        assert hello["agent"]["state"] == "busy"
        assert hello["current"]["entry_id"] == call["entry_id"]
        await again.send(type="end", entry_id=call["entry_id"])
        await again.next("wrap_up")
        await again.send(type="wrap_up", entry_id=call["entry_id"], code="bogus")
        assert "wrap-up code" in (await again.next("error"))["message"]
        await again.send(type="wrap_up", entry_id=call["entry_id"], code="resolved", notes="ok")
        state = await again.next("state")
        while state["state"] != "available":
            state = await again.next("state")
        await again.ws.close()
        await supervisor.ws.close()

    asyncio.run(check())
    with server.service() as service:
        done = service.get("/api/handoffs", params={"status": "done"}).json()
        assert len(done) == 1 and done[0]["entry"]["flag"]
        audit = service.get("/api/audit", params={"action": "accept"}).json()
        assert [(e["actor"], e["success"]) for e in audit] == [("alice", True)]


def test_a_phone_caller_returned_to_the_queue_leaves_the_agents_desktop(serve: Start) -> None:
    """The worker sends a phone caller back (the agent never joined the room, or dropped out):
    the desktop is told why, the agent is set away, and the next agent gets the call."""
    server = serve(USERS)
    service = server.app.state.queues
    loop = service._loop_task.get_loop()  # the server's event loop, in its thread
    with server.sign_in("alice") as alice, server.sign_in("bob") as bob:
        alice_cookie, bob_cookie = cookie_of(alice), cookie_of(bob)

    async def check() -> None:
        agent = Desktop(await _open(server, alice_cookie))
        await agent.next("hello")
        await agent.send(type="state", state="available")
        call = await asyncio.to_thread(queue_call, server, channel="sip")
        offer = await agent.next("offer")
        assert offer["assignment"]["channel"] == "sip"
        await agent.send(type="accept", entry_id=call["entry_id"])
        await agent.next("connected")
        returned = asyncio.run_coroutine_threadsafe(
            service.return_to_queue(call["entry_id"], reason="the agent did not join the call"),
            loop,
        )
        assert await asyncio.wrap_future(returned)
        message = await agent.next("call_returned")
        assert message == {
            "type": "call_returned",
            "entry_id": call["entry_id"],
            "reason": "the agent did not join the call",
        }
        state = await agent.next("state")
        while state["state"] != "away":
            state = await agent.next("state")
        other = Desktop(await _open(server, bob_cookie))
        await other.next("hello")
        await other.send(type="state", state="available")
        again = await other.next("offer")
        assert again["assignment"]["entry_id"] == call["entry_id"]
        await agent.ws.close()
        await other.ws.close()

    asyncio.run(check())
