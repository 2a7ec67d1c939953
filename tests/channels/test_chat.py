"""The web chat over its real WebSocket (``voicebot serve`` on loopback): the greeting, menus as
buttons, a knowledge answer, bad messages, a handoff into the queues, a resumed chat; and the
conversation after the handoff (voicebot/channels/relay.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from tests.browser import REPO, Server, serve
from tests.conftest import MONDAY_10AM

# The queue tests' databases: each test on SQLite and on PostgreSQL.
from tests.queues.conftest import db, db_url  # noqa: F401
from voicebot.channels import relay
from voicebot.channels.conversation import MAX_MESSAGE_CHARS, Conversation
from voicebot.channels.webchat import ChatHub, WebChat
from voicebot.config import Settings
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.runtime.bot import BotRuntime
from voicebot.store.db import Database
from voicebot.store.models import Turn

TOKEN = "chat-test-token-0123456789abcdef"
CARD = "4111 1111 1111 1111"
pytestmark = pytest.mark.timeout(240)


def always_open_bot(root: Path) -> Path:
    """The example bot, open every hour of every day (asking for a person out of hours gets the
    opening times instead, and ``serve`` runs on the real clock)."""
    shutil.copytree(REPO / "flows", root / "flows")
    shutil.copytree(REPO / "knowledge", root / "knowledge")
    path = root / "flows" / "bot.yaml"
    text = path.read_text(encoding="utf-8")
    patched, weekly = re.subn(r"(?m)^(\s+weekly:).*$", r'\1 { mon-sun: "00:00-00:00" }', text)
    patched, holidays = re.subn(r"(?m)^(\s+holidays:).*$", r"\1 []", patched)
    assert weekly == 1 and holidays == 1, "bot.yaml's hours have changed shape"
    path.write_text(patched, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("chat")
    bot = always_open_bot(tmp / "bot")
    settings = {
        "VOICEBOT_API_TOKEN": TOKEN,
        "VOICEBOT_CHAT_ORIGINS": '["https://www.example.com"]',
        "VOICEBOT_STT": "pocketsphinx",
    }
    with serve(
        Server,
        tmp,
        bot,
        settings=settings,
        unset=("VOICEBOT_DATABASE_URL", "VOICEBOT_REDIS_URL", "VOICEBOT_LLM_API_KEY"),
        healthy=("queues",),
        timeout=180,
    ) as running:
        yield running


class Chat:
    """One widget socket, read message by message with a deadline."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def until(self, kind: str, within: float = 30, **match: Any) -> dict[str, Any]:
        """The next message of ``kind`` (with ``match``'s fields); what came before is kept."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind} {match} within {within} s; saw {self.seen}")
            message = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            self.seen.append(message)
            if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                return message

    async def start(self, **fields: Any) -> dict[str, Any]:
        """Start (or resume) a chat; the ``started`` message, once the greeting is in."""
        await self.send({"type": "start", **fields})
        started = await self.until("started")
        await self.until("typing", sender="bot", active=False)
        return started

    async def turn(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Send ``message``; the bot's messages until its typing indicator goes off."""
        await self.send(message)
        start = len(self.seen)
        await self.until("typing", sender="bot", active=False)
        return [m for m in self.seen[start:] if m["type"] == "bot"]


def ws_url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/api/chat/ws"


async def get(server: Server, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(server.url + path, headers=headers)


async def api(server: Server, path: str) -> Any:
    response = await get(server, path, Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    return response.json()


async def test_greeting_menu_buttons_and_a_knowledge_answer(server: Server) -> None:
    async with websockets.connect(ws_url(server)) as ws:
        chat = Chat(ws)
        started = await chat.start()
        assert started["bot"] == "Acme Telecom" and started["resume_key"]
        greeting = next(m for m in chat.seen if m["type"] == "bot")
        assert "How can I help" in greeting["text"] and greeting["buttons"] == []

        menu = await chat.turn({"type": "message", "text": "main menu"})
        buttons = menu[-1]["buttons"]
        assert [b["label"] for b in buttons] == ["Billing", "Fault", "Opening hours", "Adviser"]
        assert [b["value"] for b in buttons] == ["1", "2", "3", "0"]
        assert {"type": "customer", "text": "main menu"} in chat.seen

        hours = await chat.turn({"type": "choose", "value": "3"})
        assert "Monday to Friday" in " ".join(m["text"] for m in hours)
        assert {"type": "customer", "text": "Opening hours"} in chat.seen  # the label shown

        await chat.send({"type": "choose", "value": "3"})  # the menu is gone: a stale button
        stale = await chat.until("error")
        assert "not one of the choices" in stale["message"]

        answer = await chat.turn(
            {"type": "message", "text": "how much does it cost to use my phone in Spain"}
        )
        assert "£2.50 a day" in " ".join(m["text"] for m in answer)


async def test_bad_messages_get_clear_errors_and_the_chat_goes_on(server: Server) -> None:
    async with websockets.connect(ws_url(server)) as ws:
        chat = Chat(ws)
        await chat.send({"type": "message", "text": "hello"})
        assert "start" in (await chat.until("error"))["message"]
        await chat.start()

        await chat.send("this is not JSON")
        assert "must be JSON" in (await chat.until("error"))["message"]
        await chat.send({"type": "shout", "text": "hi"})
        assert "unknown message type 'shout'" in (await chat.until("error"))["message"]
        await chat.send({"type": "message", "text": 42})
        assert "'text' as text" in (await chat.until("error"))["message"]
        await chat.send({"type": "message", "text": "x" * (MAX_MESSAGE_CHARS + 1)})
        too_long = await chat.until("error")
        assert f"at most {MAX_MESSAGE_CHARS} characters" in too_long["message"]
        await chat.send(json.dumps({"type": "message", "text": "y" * 30_000}))
        assert "bytes of JSON" in (await chat.until("error"))["message"]
        await chat.send({"type": "start"})
        assert "already started" in (await chat.until("error"))["message"]

        # nothing of that reached the bot, and the chat still answers
        reply = await chat.turn({"type": "message", "text": "what are your opening hours"})
        assert "Monday to Friday" in " ".join(m["text"] for m in reply)
        assert not any("x" * 50 in str(m) for m in chat.seen if m["type"] == "customer")

        for _ in range(60):  # far over the rate: refused, said once
            await chat.send({"type": "typing"})
        flood = await chat.until("error")
        assert "too many messages" in flood["message"]


async def test_other_sites_cannot_open_the_socket_but_may_frame_the_page(server: Server) -> None:
    # refused before the handshake completes (the browser sees the socket fail)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            ws_url(server), additional_headers={"Origin": "https://evil.example"}
        ):
            pass
    assert refused.value.response.status_code == 403
    page = await get(server, "/chat")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://www.example.com" in policy
    assert "x-frame-options" not in page.headers
    assert "script-src 'self'" in policy
    desktop = await get(server, "/desktop")
    assert "frame-ancestors 'none'" in desktop.headers["content-security-policy"]
    assert desktop.headers["x-frame-options"] == "DENY"
    widget = await get(server, "/chat/widget.js")
    assert widget.status_code == 200 and "javascript" in widget.headers["content-type"]
    assert "/chat?" in widget.text


async def test_handoff_queues_a_chat_and_the_customer_writes_on(server: Server) -> None:
    async with websockets.connect(ws_url(server)) as ws:
        chat = Chat(ws)
        call_id = (await chat.start(language="en"))["conversation_id"]
        await chat.send({"type": "message", "text": "I want to talk to a person"})
        queued = await chat.until("queued")
        assert queued["queue"] == "general"

        await chat.send({"type": "message", "text": f"my card is {CARD} thanks"})
        await chat.until("customer")
        await chat.send({"type": "choose", "value": "1"})  # buttons were for the bot
        assert "write to the agent" in (await chat.until("error"))["message"]

        handoffs = await api(server, "/api/handoffs?limit=50")
        mine = [h for h in handoffs if h["call_id"] == call_id]
        assert len(mine) == 1 and mine[0]["entry"]["status"] in ("waiting", "offered")
        packet = (await api(server, f"/api/handoffs/{mine[0]['handoff_id']}"))["packet"]
        assert packet["channel"] == "chat"
        assert packet["caller"]["attributes"]["channel"] == "chat"
        call = await api(server, f"/api/calls/{call_id}")
        assert call["call"]["channel"] == "chat"
        texts = [line["text"] for line in call["transcript"]]
        assert any("talk to a person" in t for t in texts)
        last = call["transcript"][-1]
        assert last["role"] == "caller" and "1111" in last["text"]
        assert CARD not in json.dumps(call) and "4111" not in last["text"]

        await chat.send({"type": "end"})
        closed = await chat.until("closed")
        assert closed["by"] == "customer"
    handoffs = await api(server, "/api/handoffs?limit=50")
    entry = next(h["entry"] for h in handoffs if h["call_id"] == call_id)
    assert entry["status"] == "abandoned"


async def test_a_dropped_socket_resumes_the_same_chat(server: Server) -> None:
    async with websockets.connect(ws_url(server)) as ws:
        chat = Chat(ws)
        started = await chat.start()
        await chat.turn({"type": "message", "text": "main menu"})
    async with websockets.connect(ws_url(server)) as ws:
        again = Chat(ws)
        resume = {"id": started["conversation_id"], "key": "wrong-key"}
        other = await again.start(resume=resume)
        assert "no longer open" in next(m for m in again.seen if m["type"] == "error")["message"]
        assert other["conversation_id"] != started["conversation_id"]
    async with websockets.connect(ws_url(server)) as ws:
        again = Chat(ws)
        resume = {"id": started["conversation_id"], "key": started["resume_key"]}
        await again.send({"type": "start", "resume": resume})
        resumed = await again.until("resumed")
        assert resumed["conversation_id"] == started["conversation_id"]
        shown = resumed["messages"]
        assert shown[0]["type"] == "bot" and "How can I help" in shown[0]["text"]
        assert shown[-1]["buttons"][0]["label"] == "Billing"
        reply = await again.turn({"type": "choose", "value": "3"})  # the menu is still open
        assert "Monday to Friday" in " ".join(m["text"] for m in reply)


# --- after the handoff: the relay and the hub, in-process on a real database ---------------


@pytest.fixture(scope="module")
def runtime() -> BotRuntime:
    settings = Settings(bot_dir=REPO, data_dir=REPO / "data")
    # a weekday morning: asking for a person is a transfer, not the opening hours
    return BotRuntime.load(
        settings, clock=lambda: MONDAY_10AM, handoffs=CallbackHandoffSink(lambda _: None)
    )


async def eventually(check: Any, what: Any) -> None:
    """Wait (at most 10 s) for ``check()``: the bus delivers on a later loop iteration."""
    deadline = asyncio.get_running_loop().time() + 10
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting: {what()}")
        await asyncio.sleep(0.01)


async def test_relay_continues_the_transcript_and_reaches_the_widget(
    db: Database,  # noqa: F811
    runtime: BotRuntime,
    tmp_path: Path,
) -> None:
    bus = LocalBus()
    service = QueueService(db, bus, runtime.loaded.definition.queues, default_queue="general")
    await service.start()
    hub = ChatHub(queues=service, resume_seconds=60, max_chats=10)
    try:
        from voicebot.queues.sink import QueueHandoffSink

        sink = QueueHandoffSink(service, tmp_path / "spool.jsonl")
        conversation = Conversation(runtime, channel="chat", handoffs=sink)
        chat = WebChat(conversation)
        hub.add(chat)
        shown: list[dict[str, Any]] = []
        hub.attach(chat, shown.append)
        await conversation.start()
        await conversation.send("I want to talk to a person")
        assert conversation.handed_off is not None and conversation.handed_off.channel == "chat"
        await hub.after_turn(chat)
        assert chat.phase == "queued" and shown[-1]["type"] == "queued"
        async with db.session() as session:
            stored = await session.scalar(select(func.max(Turn.seq)).where(Turn.call_id == chat.id))
        assert stored is not None  # the bot's part, stored at the handoff

        seen: list[dict[str, Any]] = []
        bus.subscribe(seen.append)
        await relay.joined(service, chat.id, "Alice")
        await relay.post(service, chat.id, "customer", f"card {CARD} please")
        await relay.post(service, chat.id, "agent", "Hello, I'm Alice.", agent_name="Alice")
        await relay.typing(service, chat.id, "agent")
        await eventually(lambda: shown[-1]["type"] == "typing", lambda: shown)
        kinds = [m["type"] for m in shown]
        assert kinds[-3:] == ["agent_joined", "agent", "typing"], shown
        assert shown[-2] == {"type": "agent", "text": "Hello, I'm Alice.", "name": "Alice"}
        message = next(e for e in seen if e.get("sender") == "customer")
        assert CARD not in message["text"] and "1111" in message["text"]
        assert message["entry_id"] is not None and len(json.dumps(message)) < 8000

        async with db.session() as session:
            rows = list(
                await session.scalars(
                    select(Turn).where(Turn.call_id == chat.id).order_by(Turn.seq)
                )
            )
        seqs = [r.seq for r in rows]
        assert seqs == list(range(len(seqs)))  # one transcript, no gap, no repeat
        assert [r.role for r in rows[-2:]] == ["caller", "agent"]
        assert rows[-2].seq == stored + 1

        with pytest.raises(relay.RelayError, match="at most"):
            await relay.post(service, chat.id, "agent", "z" * (MAX_MESSAGE_CHARS + 1))
        with pytest.raises(relay.RelayError, match="no conversation"):
            await relay.post(service, "nobody", "customer", "hello")

        await relay.closed(service, chat.id, "agent")
        await eventually(lambda: chat.phase == "closed", lambda: shown)
        assert shown[-1] == {"type": "closed", "by": "agent"} and chat.phase == "closed"
    finally:
        await hub.aclose()
        await service.aclose()
