"""Chats on the desktop over real HTTP and WebSockets (uvicorn on loopback): chat offers and
panes over the desktop socket, who may write in a chat (POST /api/desktop/chats/{id}/messages)
and its limits, the hub forwarding the customer's lines and typing to the agent holding the
chat and to nobody else, and a call alongside the chats.

The customer's side is the relay (voicebot/channels/relay.py) called in the server's own event
loop, as the web chat's socket does; the whole widget-to-desktop path is in
tests/channels/test_chat_handoff_browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx

from tests.queues.test_api import (
    USERS,
    Desktop,
    Server,
    Start,
    _open,
    cookie_of,
    queue_call,
    serve,
)
from tests.queues.test_cli import run
from voicebot.channels import relay
from voicebot.queues.events import Event

__all__ = ["serve"]  # the fixture, imported for pytest


def in_server(server: Server, work: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on the server's event loop (where its queue service and bus live)."""
    loop = server.app.state.queues._loop_task.get_loop()
    return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=30)


class BusLog:
    """What the server's event bus carried (its handlers run on the server's thread)."""

    def __init__(self, server: Server) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()
        server.app.state.queues.bus.subscribe(self.add)

    def add(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: str) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.get("type") == kind]


def write(client: httpx.Client, entry_id: str, text: str) -> httpx.Response:
    return client.post(f"/api/desktop/chats/{entry_id}/messages", json={"text": text})


async def quiet(desktop: Desktop, kind: str, within: float = 1.0) -> None:
    """No ``kind`` message arrives within ``within`` seconds (others are kept in ``seen``)."""
    try:
        message = await desktop.next(kind, within=within)
    except AssertionError:
        return
    raise AssertionError(f"unexpected {kind}: {message}")


def test_the_holding_agent_writes_in_a_chat_and_nobody_else(serve: Start) -> None:
    server = serve(USERS)
    bus = BusLog(server)
    clients = contextlib.ExitStack()
    alice, bob, sue = (clients.enter_context(server.sign_in(n)) for n in ("alice", "bob", "sue"))
    alice_cookie, bob_cookie = cookie_of(alice), cookie_of(bob)

    async def check() -> None:
        agent = Desktop(await _open(server, alice_cookie))
        hello = await agent.next("hello")
        assert hello["chats"] == [] and hello["max_chats"] == 3
        other = Desktop(await _open(server, bob_cookie))
        await other.next("hello")
        await agent.send(type="state", state="available")
        await agent.next("state")
        chat = await asyncio.to_thread(queue_call, server, channel="chat")
        entry_id = chat["entry_id"]
        offer = await agent.next("chat_offer")
        assert offer["assignment"]["media"] == "chat" and offer["expires_at"]
        assert offer["assignment"]["packet"]["caller"]["name"] == "Ann Example"
        # A chat offer is not a call's: the agent is still available for calls.
        assert not [m for m in agent.seen if m["type"] == "offer"]
        assert (await asyncio.to_thread(write, alice, entry_id, "hello")).status_code == 409

        await agent.send(type="accept", entry_id=entry_id)
        connected = await agent.next("chat_connected")
        lines = connected["assignment"]["lines"]
        assert [line["text"] for line in lines[:2]] == [
            "Hello, how can I help?",
            "why is my bill higher",
        ]
        joined = await agent.next("chat_message")
        assert joined["sender"] == "system" and joined["text"] == "alice joined the chat"
        assert bus.of("chat_joined")[0]["agent_name"] == "alice"

        # Who may write: the holder only; a call is no chat; the API token is no agent.
        for client, status in ((bob, 403), (sue, 403)):
            response = await asyncio.to_thread(write, client, entry_id, "mine now")
            assert response.status_code == status, response.text
        assert (await asyncio.to_thread(write, alice, "no-such-entry", "hi")).status_code == 404
        with server.client() as anonymous:
            assert (await asyncio.to_thread(write, anonymous, entry_id, "hi")).status_code == 401
        with server.service() as token:
            assert (await asyncio.to_thread(write, token, entry_id, "hi")).status_code == 403
        # The limits: said, and nothing stored or sent.
        empty = await asyncio.to_thread(write, alice, entry_id, "   ")
        assert empty.status_code == 422 and "empty" in empty.json()["detail"]
        long = await asyncio.to_thread(write, alice, entry_id, "x" * 2001)
        assert long.status_code == 422
        assert "at most 2000 characters; this one has 2001" in long.json()["detail"]
        assert [m for m in bus.of("chat_message") if m["sender"] == "agent"] == []

        ok = await asyncio.to_thread(write, alice, entry_id, "Hi Ann, I'm looking at it now")
        assert ok.status_code == 204, ok.text
        echo = await agent.next("chat_message")
        assert echo["sender"] == "agent" and echo["text"] == "Hi Ann, I'm looking at it now"
        assert echo["agent_name"] == "alice" and echo["entry_id"] == entry_id
        full = await asyncio.to_thread(write, alice, entry_id, "y" * 2000)
        assert full.status_code == 204
        assert len((await agent.next("chat_message"))["text"]) == 2000
        # Card numbers never reach the transcript or the customer.
        await asyncio.to_thread(write, alice, entry_id, "is it 4111 1111 1111 1111?")
        masked = await agent.next("chat_message")
        assert "4111 1111 1111 1111" not in masked["text"]

        # The customer's lines and typing reach the holding agent, and only them.
        call_id = connected["assignment"]["call_id"]
        await asyncio.to_thread(
            in_server, server, relay.post(server.app.state.queues, call_id, "customer", "thanks!")
        )
        line = await agent.next("chat_message")
        assert (line["sender"], line["text"], line["entry_id"]) == ("customer", "thanks!", entry_id)
        await asyncio.to_thread(
            in_server, server, relay.typing(server.app.state.queues, call_id, "customer")
        )
        typing = await agent.next("chat_typing")
        assert typing == {"type": "chat_typing", "entry_id": entry_id, "sender": "customer"}
        # The agent's typing goes out on the bus for the widget, not back to the agent.
        await agent.send(type="chat_typing", entry_id=entry_id)
        await quiet(agent, "chat_typing")
        assert [e["sender"] for e in bus.of("chat_typing")] == ["customer", "agent"]
        await other.send(type="chat_typing", entry_id=entry_id)
        assert "not yours" in (await other.next("error"))["message"]
        assert not [m for m in other.seen if m["type"].startswith("chat_")]

        # A reconnected desktop gets its chat back, with the conversation so far.
        await agent.ws.close()
        agent = Desktop(await _open(server, alice_cookie))
        hello = await agent.next("hello")
        [held] = hello["chats"]
        assert held["entry_id"] == entry_id and held["status"] == "connected"
        assert held["lines"][-1]["text"] == "thanks!" and held["lines"][-1]["role"] == "caller"
        await asyncio.to_thread(
            in_server,
            server,
            relay.post(server.app.state.queues, call_id, "customer", "still here"),
        )
        assert (await agent.next("chat_message"))["text"] == "still here"

        # Ending: the chat's wrap-up, the customer told, the place free after the wrap-up.
        await agent.send(type="end", entry_id=entry_id)
        wrap = await agent.next("chat_wrap_up")
        assert wrap["entry_id"] == entry_id and wrap["ended_by"] == "agent"
        assert bus.of("chat_closed")[-1]["by"] == "agent"
        assert (await asyncio.to_thread(write, alice, entry_id, "one more")).status_code == 409
        await agent.send(type="wrap_up", entry_id=entry_id, code="resolved", notes="")
        done = await agent.next("chat_done")
        assert done["entry_id"] == entry_id
        await agent.ws.close()
        await other.ws.close()

    with clients:
        asyncio.run(check())


def test_a_call_and_chats_side_by_side_on_one_desktop(serve: Start) -> None:
    server = serve(USERS)

    async def check() -> None:
        agent = Desktop(await _open(server, cookie))
        await agent.next("hello")
        await agent.send(type="state", state="available")
        await agent.next("state")
        chats = [await asyncio.to_thread(queue_call, server, channel="chat") for _ in range(4)]
        offered = {(await agent.next("chat_offer"))["assignment"]["entry_id"] for _ in range(3)}
        assert offered == {c["entry_id"] for c in chats[:3]}
        for entry_id in offered:
            await agent.send(type="accept", entry_id=entry_id)
            await agent.next("chat_connected")
        call = await asyncio.to_thread(queue_call, server, channel="softphone")
        offer = await agent.next("offer")
        assert offer["assignment"]["entry_id"] == call["entry_id"]
        assert offer["assignment"]["media"] == "voice"
        await agent.send(type="accept", entry_id=call["entry_id"])
        await agent.next("connected")
        state = await agent.next("state")
        while state["state"] != "busy":
            state = await agent.next("state")
        # On the call, the agent still writes in a chat; the fourth chat still waits.
        some = sorted(offered)[0]
        assert (await asyncio.to_thread(write, alice, some, "one moment")).status_code == 204
        await quiet(agent, "chat_offer")
        await agent.send(type="end", entry_id=some)
        await agent.next("chat_wrap_up")
        await agent.send(type="wrap_up", entry_id=some, code="resolved")
        await agent.next("chat_done")
        fourth = await agent.next("chat_offer")
        assert fourth["assignment"]["entry_id"] == chats[3]["entry_id"]
        # The call was never disturbed: its end and wrap-up are the call's.
        await agent.send(type="end", entry_id=call["entry_id"])
        wrap = await agent.next("wrap_up")
        assert wrap["entry_id"] == call["entry_id"]
        await agent.ws.close()

    with server.sign_in("alice") as alice:
        cookie = cookie_of(alice)
        asyncio.run(check())


def test_users_add_and_update_set_the_chat_capacity(tmp_path: Path) -> None:
    added = run(
        ["users", "add", "carol", "--skills", "general", "--max-chats", "2", "--password-stdin"],
        tmp_path,
        stdin="long enough\n",
    )
    assert added.returncode == 0, added.stderr
    listed = run(["users", "list"], tmp_path)
    assert "(max 2 chats)" in listed.stdout, listed.stdout
    changed = run(["users", "update", "carol", "--max-chats", "0"], tmp_path)
    assert changed.returncode == 0 and "max_chats 0" in changed.stdout, changed.stderr
    assert "(max 0 chats)" in run(["users", "list"], tmp_path).stdout
    back = run(["users", "update", "carol", "--max-chats", "default"], tmp_path)
    assert back.returncode == 0 and "max_chats default" in back.stdout, back.stderr
    assert "max" not in run(["users", "list"], tmp_path).stdout
    for bad in ("21", "-1", "many"):
        refused = run(["users", "update", "carol", "--max-chats", bad], tmp_path)
        assert refused.returncode == 2 and "0-20 or 'default'" in refused.stderr, refused.stderr
    nobody = run(["users", "update", "nobody", "--max-chats", "1"], tmp_path)
    assert nobody.returncode == 2 and "no user 'nobody'" in nobody.stderr
    nothing = run(["users", "update", "carol"], tmp_path)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr


def test_admins_set_the_chat_capacity_over_the_api(serve: Start) -> None:
    server = serve(USERS)
    with server.sign_in("ada") as ada:
        agents = {a["username"]: a for a in ada.get("/api/agents").json()}
        alice = agents["alice"]
        assert alice["max_chats"] is None
        changed = ada.patch(f"/api/agents/{alice['id']}", json={"max_chats": 1})
        assert changed.status_code == 200 and changed.json()["max_chats"] == 1, changed.text
        too_many = ada.patch(f"/api/agents/{alice['id']}", json={"max_chats": 50})
        assert too_many.status_code == 422
        # Another change leaves it; null puts the default back.
        renamed = ada.patch(f"/api/agents/{alice['id']}", json={"display_name": "Alice A"})
        assert renamed.json()["max_chats"] == 1
        reset = ada.patch(f"/api/agents/{alice['id']}", json={"max_chats": None})
        assert reset.json()["max_chats"] is None
