"""One customer history: a customer who chatted yesterday and phones today is greeted with
that context, and the handoff packet carries the last contacts (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from tests.conftest import REPO
from voicebot.channels.conversation import Conversation
from voicebot.channels.identity import caller_for, sign_identity, verify_identity
from voicebot.config import Settings
from voicebot.flows.loader import load_bot
from voicebot.handoff.packet import CallerInfo
from voicebot.history.contacts import history_lookup, last_contacts
from voicebot.privacy.erasure import erase_caller
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.queues.sink import QueueHandoffSink
from voicebot.runtime.bot import BotRuntime
from voicebot.store.db import Database
from voicebot.store.models import Call, CallReview

MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
TUESDAY = MONDAY + dt.timedelta(days=1)
NUMBER = "+441632960001"
CUSTOMER = "tel:+441632960001"
SECRET = "site-secret"


def runtime_at(tmp_path: Path, db: Database, now: dt.datetime) -> tuple[BotRuntime, QueueService]:
    definition = load_bot(REPO).definition
    service = QueueService(db, LocalBus(), definition.queues, clock=lambda: now)
    runtime = BotRuntime.load(Settings(bot_dir=REPO, data_dir=tmp_path / "data"), clock=lambda: now)
    runtime.handoffs = QueueHandoffSink(service, tmp_path / f"spool-{now:%d}.jsonl")
    runtime.history = history_lookup(db)
    return runtime, service


async def test_chatted_yesterday_phones_today(db: Database, tmp_path: Path) -> None:
    # Monday: a chat from the company's site, which vouched for the customer with a token.
    runtime, service = runtime_at(tmp_path, db, MONDAY)
    token = sign_identity({"sub": "cust-42", "name": "Ann Example", "phone": NUMBER}, SECRET)
    customer = caller_for(verify_identity(token, SECRET), channel="chat")
    chat = Conversation(runtime, channel="chat", customer=customer)
    first = await chat.start()
    assert "Thanks for" in first[0].text  # no history yet: the usual greeting
    await chat.send("what's my balance")
    await service.record_call(chat.call.state, channel="chat")
    await chat.aclose()
    await runtime.aclose()
    async with db.transaction() as session:
        stored = await session.get(Call, chat.call_id)
        assert stored is not None and stored.customer_id == CUSTOMER
        assert stored.channel == "chat"
        # the post-call review's summary is what the history shows, masked
        session.add(
            CallReview(
                call_id=chat.call_id,
                checked_at=MONDAY,
                score=90,
                passed=True,
                summary="Ann asked for her balance; card 4111 1111 1111 1111 mentioned.",
                rules="x",
            )
        )

    # Tuesday: the same customer phones.
    runtime, service = runtime_at(tmp_path, db, TUESDAY)
    call = runtime.new_call(caller=CallerInfo(number="01632 960001"))  # national form
    hello = await call.start()
    assert hello.text.startswith("Welcome back to Acme Telecom. Last time you contacted us by chat")
    assert "about your bill" in hello.text, hello.text
    assert call.state.history[0]["days_ago"] == 1
    assert call.state.history[0]["when"] == "yesterday"
    reply = await call.caller_said("I want to speak to a person")
    await runtime.aclose()
    packet = reply.handoff
    assert packet is not None
    assert packet.customer_id == CUSTOMER
    assert [c.call_id for c in packet.history] == [chat.call_id]
    past = packet.history[0]
    assert (past.channel, past.intent) == ("chat", "check_balance")
    assert past.summary is not None and "4111" not in past.summary
    assert "balance" in past.summary
    # the phone call itself joins the same history
    async with db.session() as session:
        phoned = await session.get(Call, packet.call_id)
        assert phoned is not None and phoned.customer_id == CUSTOMER
    contacts = await last_contacts(db, CUSTOMER)
    assert [c.call_id for c in contacts] == [packet.call_id, chat.call_id]


async def seed_call(
    db: Database, call_id: str, customer: str | None, at: dt.datetime, channel: str = "chat"
) -> None:
    async with db.transaction() as session:
        session.add(
            Call(
                id=call_id,
                started_at=at,
                channel=channel,
                customer_id=customer,
                intent="report_fault",
                outcome="ended",
            )
        )


async def test_an_old_contact_gets_the_usual_greeting(db: Database, tmp_path: Path) -> None:
    await seed_call(db, "old-chat", CUSTOMER, TUESDAY - dt.timedelta(days=45))
    runtime, _ = runtime_at(tmp_path, db, TUESDAY)
    call = runtime.new_call(caller=CallerInfo(number=NUMBER))
    hello = await call.start()
    await runtime.aclose()
    assert hello.text.startswith("Thanks for calling"), hello.text
    assert call.state.history[0]["days_ago"] == 45  # flows still see it


async def test_a_failing_history_does_not_stop_the_call(db: Database, tmp_path: Path) -> None:
    await seed_call(db, "recent", CUSTOMER, TUESDAY - dt.timedelta(hours=3))
    runtime, _ = runtime_at(tmp_path, db, TUESDAY)

    async def broken(customer: str, call_id: str) -> list:  # type: ignore[type-arg]
        raise ConnectionError("database gone")

    runtime.history = broken
    call = runtime.new_call(caller=CallerInfo(number=NUMBER))
    hello = await call.start()
    await runtime.aclose()
    assert hello.text.startswith("Thanks for calling") and call.state.history == []


async def test_last_contacts_newest_first_and_only_that_customer(db: Database) -> None:
    for day in range(7):
        await seed_call(db, f"c{day}", CUSTOMER, MONDAY - dt.timedelta(days=day), "phone")
    await seed_call(db, "other", "tel:+441632960999", MONDAY)
    await seed_call(db, "anonymous", None, MONDAY)
    found = await last_contacts(db, CUSTOMER)
    assert [c.call_id for c in found] == ["c0", "c1", "c2", "c3", "c4"]
    assert found[0].outcome == "ended" and found[0].channel == "phone"
    before = await last_contacts(db, CUSTOMER, limit=2, before_call="c2")
    assert [c.call_id for c in before] == ["c3", "c4"]
    assert await last_contacts(db, "email:nobody@example.com") == []


async def test_erasure_by_customer_id(db: Database) -> None:
    await seed_call(db, "ann-1", "email:ann@example.com", MONDAY)
    await seed_call(db, "ann-2", "email:ann@example.com", TUESDAY)
    await seed_call(db, "bob-1", "email:bob@example.com", MONDAY)
    async with db.transaction() as session:
        session.add(Call(id="tel-1", started_at=MONDAY, channel="chat", customer_id=CUSTOMER))
    report = await erase_caller(db, "email:ann@example.com")
    assert report.calls == 2 and len(report.reference) == 16
    async with db.session() as session:
        left = set((await session.scalars(select(Call.id))).all())
    assert left == {"bob-1", "tel-1"}
    # a number erases the calls that carry it only as their customer id, too
    report = await erase_caller(db, NUMBER)
    async with db.session() as session:
        left = set((await session.scalars(select(Call.id))).all())
    assert left == {"bob-1"}
