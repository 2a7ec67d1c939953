"""A messaging conversation after the handoff and when it goes idle, against the real app over
HTTP with the fake gateway on loopback and an agent on the desktop socket: the agent joins,
writes and closes (each a signed POST to the gateway), the customer's messages reach the agent,
and a conversation nobody writes in for VOICEBOT_MESSAGING_IDLE_HOURS ends.

Idleness is read on the channel's clock, which these tests move on by a day instead of waiting.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import select

from tests.channels.gateway import FakeGateway
from tests.channels.test_messaging import SECRET, an_open_hour
from tests.conftest import REPO
from tests.queues.test_api import PASSWORD, TOKEN, Desktop, Server, _open, cookie_of
from tests.queues.test_chat_desktop import in_server, quiet
from voicebot.access.users import add_user
from voicebot.api.app import create_app
from voicebot.api.security import uvicorn_options
from voicebot.channels.messaging import MessagingChannel
from voicebot.config import Settings
from voicebot.runtime.bot import BotRuntime
from voicebot.store.db import open_database
from voicebot.store.models import Call, QueueEntry, Turn

IDLE_HOURS = 24.0
# The bot's greeting, to a new customer or to one coming back (flows/bot.yaml).
GREETED = ("Thanks for calling Acme Telecom.", "Welcome back to Acme Telecom.")
# Every queue of the example bot, so that wherever the bot hands off, the agent may take it.
SKILLS = {
    s: 5
    for s in ("general", "billing", "broadband", "mobile", "care", "retention", "sales", "lang:en")
}


class Clock:
    """The messaging channel's idle clock: real time, plus however far a test moved it on."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead

    def hours_pass(self, hours: float) -> None:
        self.ahead += hours * 3600


@dataclass
class Running:
    server: Server
    gateway: FakeGateway
    clock: Clock

    def send(self, text: str, number: str, message_id: str) -> dict[str, Any]:
        response = self.gateway.inbound(self.server.url, text, sender=number, message_id=message_id)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def sweep(self) -> int:
        channel: MessagingChannel = self.server.app.state.messaging
        ended: int = in_server(self.server, channel.sweep_idle())
        return ended

    def rows(self, work: Any) -> Any:
        async def run() -> Any:
            db = await open_database(self.server.settings.resolved_database_url, migrate=False)
            try:
                async with db.session() as session:
                    return await work(session)
            finally:
                await db.aclose()

        return asyncio.run(run())

    def entry(self, call_id: str) -> QueueEntry | None:
        async def read(session: Any) -> QueueEntry | None:
            entry: QueueEntry | None = await session.scalar(
                select(QueueEntry).where(QueueEntry.call_id == call_id)
            )
            return entry

        return self.rows(read)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("messaging-agent")
    gateway = FakeGateway(SECRET)
    settings = Settings(
        bot_dir=REPO,
        data_dir=root / "data",
        api_token=SecretStr(TOKEN),
        wrap_up_seconds=0,
        messaging_secret=SecretStr(SECRET),
        messaging_url=gateway.url,
        messaging_idle_hours=IDLE_HOURS,
    )

    async def add_agent() -> None:
        db = await open_database(settings.resolved_database_url)
        await add_user(db, "lena", PASSWORD, role="agent", skills=SKILLS)
        await db.aclose()

    asyncio.run(add_agent())
    now = an_open_hour()
    runtime = BotRuntime.load(settings, clock=lambda: now)
    app = create_app(settings, runtime=runtime, require_database=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, **uvicorn_options())
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    clock = Clock()
    app.state.messaging.clock = clock
    try:
        yield Running(Server(f"http://127.0.0.1:{port}", settings, app), gateway, clock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        gateway.close()


def to(gateway: FakeGateway, number: str, *, agent: bool | None = None) -> list[str]:
    """The texts sent to ``number``, in order; ``agent=True`` only those not answering an
    inbound message (the agent's side), ``False`` only the bot's replies."""
    return [
        m["text"]
        for m in gateway.messages_to(number)
        if agent is None or (m["in_reply_to"] is None) == agent
    ]


def reply_to(gateway: FakeGateway, message_id: str) -> dict[str, Any]:
    """The bot's reply to one inbound message, once the gateway has it."""
    seen = gateway.wait_for(lambda seen: any(m["in_reply_to"] == message_id for m in seen))
    return next(m for m in seen if m["in_reply_to"] == message_id)


def hand_off(running: Running, number: str, tag: str) -> str:
    body = running.send("I want to speak to a person", number, f"{tag}-handoff")
    assert body["handed_off"] is True, body
    running.gateway.wait_for(lambda seen: bool(to(running.gateway, number)))
    return str(body["conversation_id"])


async def available_agent(running: Running, cookie: str) -> Desktop:
    desktop = Desktop(await _open(running.server, cookie))
    await desktop.next("hello")
    await desktop.send(type="state", state="available")
    await desktop.next("state")
    return desktop


async def customer_line(desktop: Desktop) -> dict[str, Any]:
    """The next line from the customer on the desktop (past the agent's own and system ones)."""
    while True:
        line = await desktop.next("chat_message")
        if line["sender"] == "customer":
            return line
        assert line["sender"] in ("agent", "system"), line


async def accept(desktop: Desktop, call_id: str) -> str:
    offer = await desktop.next("chat_offer", within=30)
    assert offer["assignment"]["call_id"] == call_id, offer
    entry_id = str(offer["assignment"]["entry_id"])
    await desktop.send(type="accept", entry_id=entry_id)
    connected = await desktop.next("chat_connected")
    assert connected["assignment"]["call_id"] == call_id
    return entry_id


def test_the_agent_joins_writes_and_closes_and_the_customer_writes_to_the_agent(
    running: Running,
) -> None:
    gateway, number = running.gateway, "+447700900301"
    call_id = hand_off(running, number, "agent")
    # Before anyone accepts, what the customer writes waits on the transcript for the agent.
    assert running.send("is anyone there?", number, "agent-waiting") == {
        "ok": True,
        "id": "agent-waiting",
        "duplicate": False,
        "conversation_id": call_id,
        "handed_off": True,
    }

    with running.server.sign_in("lena") as lena:

        async def check() -> None:
            desktop = await available_agent(running, cookie_of(lena))
            entry_id = await accept(desktop, call_id)
            pane = desktop.seen[-1]["assignment"]["lines"]
            # (the "joined" line may be stored before or after the pane is read)
            said = [(line["role"], line["text"]) for line in pane if line["role"] != "event"]
            assert said[-1] == ("caller", "is anyone there?"), pane

            reply = lena.post(
                f"/api/desktop/chats/{entry_id}/messages",
                json={"text": "Hello, I'm Lena. Your card 4111 1111 1111 1111 is safe."},
            )
            assert reply.status_code == 204, reply.text
            gateway.wait_for(lambda seen: len(to(gateway, number, agent=True)) >= 2)
            # One notice that the agent joined (an SMS each: not two), then the agent's line,
            # with the card number masked before it left.
            joined, line = to(gateway, number, agent=True)
            assert joined == "lena from our team has joined the conversation."
            assert line.startswith("Hello, I'm Lena. Your card ") and "4111" not in line
            out = [m for m in gateway.messages_to(number) if m["in_reply_to"] is None]
            assert {m["conversation_id"] for m in out} == {call_id}
            assert {m["from"] for m in out} == {"+447700900000"}
            assert {m["channel"] for m in out} == {"sms"}
            assert len({m["id"] for m in out}) == 2

            # The customer's next messages go to the agent, and get no bot reply.
            body = await asyncio.to_thread(
                running.send, "my bill is wrong", number, "agent-customer-1"
            )
            assert body["conversation_id"] == call_id
            said = await customer_line(desktop)
            assert (said["sender"], said["text"], said["entry_id"]) == (
                "customer",
                "my bill is wrong",
                entry_id,
            )
            # A repeat of the same gateway message reaches the agent once.
            again = await asyncio.to_thread(
                running.send, "my bill is wrong", number, "agent-customer-1"
            )
            assert again["duplicate"] is True
            await quiet(desktop, "chat_message")
            assert not [m for m in gateway.messages_to(number) if m["in_reply_to"]][1:]

            # The agent ends the chat: the customer is told, once.
            await desktop.send(type="end", entry_id=entry_id)
            await desktop.next("chat_wrap_up")
            gateway.wait_for(lambda seen: len(to(gateway, number, agent=True)) >= 3)
            assert to(gateway, number, agent=True)[2:] == [
                "The agent has ended this conversation. Message us again any time."
            ]
            await desktop.send(type="wrap_up", entry_id=entry_id, code="resolved", notes="")
            await desktop.next("chat_done")

            # Written after the close, a message starts a new conversation with the bot,
            # and the agent does not see it.
            fresh = await asyncio.to_thread(running.send, "hello", number, "agent-after")
            assert fresh["conversation_id"] != call_id and fresh["handed_off"] is False
            await quiet(desktop, "chat_message")
            await desktop.ws.close()

        asyncio.run(check())

    greeting = reply_to(gateway, "agent-after")
    assert greeting["text"].startswith(GREETED)
    assert not gateway.rejected  # every POST to the gateway was signed with the secret

    async def turns(session: Any) -> list[tuple[str, str]]:
        rows = await session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq))
        return [(t.role, t.text) for t in rows]

    transcript = running.rows(turns)
    assert ("caller", "my bill is wrong") in transcript
    assert [t for t in transcript if t[1] == "my bill is wrong"] == [("caller", "my bill is wrong")]
    assert any(role == "agent" and "Lena" in text for role, text in transcript)


def test_an_idle_conversation_with_the_bot_ends_and_the_next_message_starts_anew(
    running: Running,
) -> None:
    gateway, number = running.gateway, "+447700900302"
    first = running.send("what are your opening hours", number, "idle-1")["conversation_id"]
    # Just short of the idle time, the conversation goes on.
    running.clock.hours_pass(IDLE_HOURS - 1)
    assert running.send("thanks", number, "idle-2")["conversation_id"] == first
    # A whole idle time after the last message, the next one starts a new conversation...
    running.clock.hours_pass(IDLE_HOURS + 1)
    second = running.send("hello", number, "idle-3")["conversation_id"]
    assert second != first
    greeting = reply_to(gateway, "idle-3")
    assert greeting["conversation_id"] == second
    assert greeting["text"].startswith(GREETED)

    async def call(session: Any) -> Call | None:
        found: Call | None = await session.get(Call, first)
        return found

    # ... and the old one was stored, as a call's bot part is (history, reports).
    old = running.rows(call)
    assert old is not None and old.channel == "messaging"
    assert old.customer_id == f"tel:{number}"

    # The sweep ends idle conversations without waiting for a message; not a fresh one.
    running.sweep()  # (and whatever earlier tests left idle)
    assert running.send("and on sundays?", number, "idle-3b")["conversation_id"] == second
    running.clock.hours_pass(IDLE_HOURS + 1)
    assert running.sweep() >= 1
    assert running.rows(lambda session: session.get(Call, second)) is not None
    third = running.send("hello again", number, "idle-4")["conversation_id"]
    assert third not in (first, second)


def test_an_idle_handed_off_conversation_lets_the_queue_and_the_agent_go(
    running: Running,
) -> None:
    gateway = running.gateway
    # Waiting in the queue (nobody available): the entry is abandoned.
    waiting_number = "+447700900303"
    waiting = hand_off(running, waiting_number, "idle-waiting")
    entry = running.entry(waiting)
    assert entry is not None and entry.status == "waiting"
    running.clock.hours_pass(IDLE_HOURS + 1)
    # (found over by the customer's next message here; by the sweep for the agent's below)
    again = running.send("hello?", waiting_number, "idle-waiting-later")
    assert again["conversation_id"] != waiting and again["handed_off"] is False
    entry = running.entry(waiting)
    assert entry is not None and entry.status == "abandoned"
    assert entry.end_reason == "customer stopped writing"

    # Connected to an agent: the chat goes to the agent's wrap-up, the agent is told.
    number = "+447700900304"
    call_id = hand_off(running, number, "idle-agent")
    with running.server.sign_in("lena") as lena:

        async def check() -> None:
            desktop = await available_agent(running, cookie_of(lena))
            entry_id = await accept(desktop, call_id)
            gateway.wait_for(lambda seen: bool(to(gateway, number, agent=True)))
            # The agent's line counts as activity: a day after the handoff but not after it,
            # the conversation is not idle.
            running.clock.hours_pass(IDLE_HOURS - 1)
            reply = lena.post(f"/api/desktop/chats/{entry_id}/messages", json={"text": "Hi"})
            assert reply.status_code == 204, reply.text
            running.clock.hours_pass(2)
            await asyncio.to_thread(running.sweep)
            held = await asyncio.to_thread(running.entry, call_id)
            assert held is not None and held.status == "connected"
            running.clock.hours_pass(IDLE_HOURS)
            assert await asyncio.to_thread(running.sweep) >= 1
            wrap = await desktop.next("chat_wrap_up")
            assert wrap["entry_id"] == entry_id and wrap["ended_by"] == "customer"
            closed = await desktop.next("chat_closed")
            assert closed == {"type": "chat_closed", "entry_id": entry_id, "by": "customer"}
            late = lena.post(f"/api/desktop/chats/{entry_id}/messages", json={"text": "Hello?"})
            assert late.status_code == 409, late.text
            await desktop.send(type="wrap_up", entry_id=entry_id, code="resolved", notes="")
            await desktop.next("chat_done")
            # The customer writing again, later, starts with the bot, not with the old chat.
            fresh = await asyncio.to_thread(running.send, "hi", number, "idle-agent-later")
            assert fresh["conversation_id"] != call_id and fresh["handed_off"] is False
            await quiet(desktop, "chat_message")
            await desktop.ws.close()

        asyncio.run(check())
    # Nothing was sent to the customer when the conversation expired: only the bot's reply to
    # the handoff, the joined notice, the agent's line and the new greeting.
    assert to(gateway, number, agent=True) == [
        "lena from our team has joined the conversation.",
        "Hi",
    ]
    assert not gateway.rejected
