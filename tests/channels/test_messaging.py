"""The messaging gateway channel against the real app over HTTP, with a fake gateway on
loopback: a conversation by SMS, menus as numbered text, signatures, repeats, an outage of
the gateway, and a handoff into the queues."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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
from tests.conftest import REPO
from voicebot.api.app import create_app
from voicebot.api.security import uvicorn_options
from voicebot.config import Settings
from voicebot.engine.context import is_open
from voicebot.flows.loader import load_bot
from voicebot.runtime.bot import BotRuntime
from voicebot.store.db import open_database
from voicebot.store.models import Call, Handoff, QueueEntry

SECRET = "gateway-shared-secret"
CUSTOMER = "+447700900123"


def an_open_hour() -> dt.datetime:
    hours = load_bot(REPO).definition.bot.hours
    day = dt.datetime.now(dt.UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    for back in range(1, 30):
        candidate = day - dt.timedelta(days=back)
        if candidate.weekday() < 5 and is_open(hours, candidate):
            return candidate
    raise AssertionError("the example bot is never open on a weekday morning")


@dataclass
class Running:
    url: str
    settings: Settings
    gateway: FakeGateway

    def send(self, text: str, **kwargs: Any) -> Any:
        return self.gateway.inbound(self.url, text, **kwargs)

    def db_rows(self, coro: Any) -> Any:
        async def run() -> Any:
            db = await open_database(self.settings.resolved_database_url, migrate=False)
            try:
                return await coro(db)
            finally:
                await db.aclose()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("messaging")
    gateway = FakeGateway(SECRET)
    settings = Settings(
        bot_dir=REPO,
        data_dir=root / "data",
        api_token=SecretStr("token"),
        wrap_up_seconds=0,
        messaging_secret=SecretStr(SECRET),
        messaging_url=gateway.url,
    )
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
    try:
        yield Running(f"http://127.0.0.1:{port}", settings, gateway)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        gateway.close()


def replies_to(gateway: FakeGateway, message_id: str) -> list[dict[str, Any]]:
    return [m for m in gateway.received if m["in_reply_to"] == message_id]


def test_a_conversation_by_sms_with_a_menu_as_numbered_text(running: Running) -> None:
    gateway, number = running.gateway, "+447700900201"
    response = running.send("menu", sender=number, message_id="sms-menu-1")
    assert response.status_code == 200, response.text
    conversation = response.json()["conversation_id"]
    (first,) = gateway.wait_for(lambda seen: bool(replies_to(gateway, "sms-menu-1")))[-1:]
    first = replies_to(gateway, "sms-menu-1")[0]
    assert first["to"] == number and first["from"] == "+447700900000"
    assert first["conversation_id"] == conversation and first["channel"] == "sms"
    assert first["text"].startswith("Thanks for calling Acme Telecom")  # the greeting
    assert "Reply 1 for " in first["text"], first["text"]  # the menu, as numbered text
    response = running.send("1", sender=number, message_id="sms-menu-2")
    assert response.status_code == 200 and response.json()["conversation_id"] == conversation
    gateway.wait_for(lambda seen: bool(replies_to(gateway, "sms-menu-2")))
    second = replies_to(gateway, "sms-menu-2")[0]["text"]
    assert second and second != first["text"]


def test_a_bad_signature_is_refused_and_nothing_is_processed(running: Running) -> None:
    gateway, number = running.gateway, "+447700900202"
    for attempt, kwargs in {
        "wrong-secret": {"secret": "not the secret"},
        "missing": {"signature": ""},
        "old": {"signature": "t=1000,v1=00"},
    }.items():
        response = running.send("hello", sender=number, message_id=f"bad-{attempt}", **kwargs)
        assert response.status_code == 401, response.text
        assert "nothing was processed" in response.json()["detail"]
    # the next good message starts the conversation: nothing came of the refused ones
    assert running.send("hello", sender=number, message_id="good-1").status_code == 200
    gateway.wait_for(lambda seen: bool(replies_to(gateway, "good-1")))
    assert not [m for m in gateway.received if str(m["in_reply_to"]).startswith("bad-")]
    assert replies_to(gateway, "good-1")[0]["text"].startswith("Thanks for calling")


def test_malformed_and_oversized_messages(running: Running) -> None:
    gateway = running.gateway
    assert gateway.inbound(running.url, "", body=b"{not json").status_code == 422
    missing = gateway.inbound(running.url, "", body=json.dumps({"id": "x"}).encode())
    assert missing.status_code == 422
    assert running.send("x" * 2001, message_id="too-long").status_code == 413
    assert running.send("x" * 20_000, message_id="too-big").status_code == 413
    assert running.send("hi", sender="call me", message_id="no-number").status_code == 422


def test_a_repeated_message_id_is_answered_once(running: Running) -> None:
    gateway, number = running.gateway, "+447700900203"
    first = running.send("what are your opening hours", sender=number, message_id="dup-1")
    again = running.send("what are your opening hours", sender=number, message_id="dup-1")
    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] is True and first.json()["duplicate"] is False
    assert running.send("thanks", sender=number, message_id="dup-2").status_code == 200
    gateway.wait_for(lambda seen: bool(replies_to(gateway, "dup-2")))
    assert len(replies_to(gateway, "dup-1")) == 1


def test_replies_wait_in_the_spool_while_the_gateway_is_down(running: Running) -> None:
    gateway, number = running.gateway, "+447700900204"
    spool = running.settings.data_dir / "messaging-outbox.jsonl"
    gateway.down = True
    try:
        assert running.send("hello", sender=number, message_id="outage-1").status_code == 200
        assert running.send("my bill", sender=number, message_id="outage-2").status_code == 200
        deadline = time.monotonic() + 30
        while not (spool.exists() and "outage-2" in spool.read_text(encoding="utf-8")):
            assert time.monotonic() < deadline, "the replies were not spooled"
            time.sleep(0.05)
        tried = gateway.attempts
        while gateway.attempts == tried:  # it keeps trying
            assert time.monotonic() < deadline, "the outbox did not retry"
            time.sleep(0.05)
        assert not replies_to(gateway, "outage-1")
    finally:
        gateway.down = False
    seen = gateway.wait_for(
        lambda seen: bool(replies_to(gateway, "outage-1")) and bool(replies_to(gateway, "outage-2"))
    )
    order = [m["in_reply_to"] for m in seen if m["to"] == number]
    assert order == ["outage-1", "outage-2"]  # in order, once each
    deadline = time.monotonic() + 30
    while spool.exists() and "outage" in spool.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, "the spool kept delivered messages"
        time.sleep(0.05)
    assert not gateway.rejected


def test_a_handoff_puts_the_conversation_in_the_queue(running: Running) -> None:
    gateway, number = running.gateway, "+447700900205"
    response = running.send("I want to speak to a person", sender=number, message_id="ho-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["handed_off"] is True
    call_id = body["conversation_id"]
    gateway.wait_for(lambda seen: bool(replies_to(gateway, "ho-1")))

    async def rows(db: Any) -> Any:
        async with db.session() as session:
            entry = await session.scalar(select(QueueEntry).where(QueueEntry.call_id == call_id))
            handoff = await session.scalar(select(Handoff).where(Handoff.call_id == call_id))
            call = await session.get(Call, call_id)
            return entry, handoff, call

    entry, handoff, call = running.db_rows(rows)
    assert entry is not None and entry.status in ("waiting", "offered")
    assert entry.media == "chat"
    assert handoff.packet["channel"] == "messaging"
    assert handoff.packet["customer_id"] == f"tel:{number}"
    assert call.channel == "messaging" and call.customer_id == f"tel:{number}"
    # what the customer writes next waits for the agent (stored on the call's transcript)
    assert running.send("are you there?", sender=number, message_id="ho-2").status_code == 200
