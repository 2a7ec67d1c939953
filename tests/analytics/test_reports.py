"""The reports and the wallboard on SQLite and PostgreSQL, against figures worked out by hand
from a small stored history: service level (a wait of exactly T counts as within it; a caller
who hung up before T does not count against the queue), ASA, AHT with wrap-up, abandonment,
containment, handoff reasons, turn latency percentiles, flows, unanswered questions, intervals,
agents, local days in a time zone, filters and their errors, CSV for a spreadsheet."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from tests.queues import conftest as queue_fixtures
from voicebot.analytics.period import ReportError, ReportFilter, parse_period
from voicebot.analytics.reports import (
    bot_report,
    calls_report,
    interval_report,
    make_filter,
    percentile,
)
from voicebot.analytics.wallboard import build_wallboard, level_above, level_service
from voicebot.flows.schema import Queue, QueueAlerts
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.store.db import Database
from voicebot.store.models import Agent, Call, CallEvent, Handoff, QueueEntry

db_url = queue_fixtures.db_url
db = queue_fixtures.db

QUEUES = {
    "billing": Queue(skills=["billing"], alerts=QueueAlerts(waiting=2)),
    "sales": Queue(skills=["sales"], sla_seconds=60, service_level=90),
}
MON = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def at(day: int, hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hh, mm, ss, tzinfo=dt.UTC)


def s(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


async def seed(db: Database) -> None:
    """Six calls queued (five billing, one sales), one callback, four the bot contained."""
    async with db.transaction() as session:
        alice = Agent(
            username="alice",
            display_name="Alice",
            password_hash="x",
            skills={"billing": 5},
            state="offline",
            state_since=MON,
            created_at=MON,
        )
        bob = Agent(
            username="bob",
            display_name="Bob",
            password_hash="x",
            skills={"billing": 5, "sales": 5},
            state="offline",
            state_since=MON,
            created_at=MON,
        )
        session.add_all([alice, bob])
        await session.flush()
        # (id, queue, enqueued, wait or None, gave up after, talk, wrap, agent, reason, channel)
        queued = [
            ("e1", "billing", at(2, 10, 0), 10, None, 300, 30, alice, "asked", "sip"),
            ("e2", "billing", at(2, 10, 10), 20, None, 120, None, alice, "angry", "sip"),
            ("e3", "billing", at(2, 10, 20), None, 5, None, None, None, "no_match", "sip"),
            ("e4", "billing", at(2, 10, 30), None, 60, None, None, None, "technical", "sip"),
            ("e5", "billing", at(2, 10, 40), 60, None, 120, 30, bob, None, "sip"),
            ("e6", "sales", at(3, 9, 0), 45, None, 120, None, bob, "after_hours", "softphone"),
        ]
        for entry_id, queue, enqueued, wait, gave_up, talk, wrap, agent, reason, channel in queued:
            call_id = f"call-{entry_id}"
            session.add(
                Call(
                    id=call_id,
                    started_at=enqueued - s(60),
                    ended_at=enqueued + s(600),
                    channel=channel,
                    intent="pay_bill" if queue == "billing" else "upgrade",
                    outcome="handoff",
                    sentiment=-0.5,
                )
            )
            session.add(
                Handoff(
                    id=f"h-{entry_id}",
                    call_id=call_id,
                    created_at=enqueued,
                    queue=queue,
                    priority="normal",
                    reason="test",
                    intent="pay_bill",
                    packet={"summary": "a summary"},
                    reason_kind=reason,
                )
            )
            await session.flush()
            connected = enqueued + s(wait) if wait is not None else None
            ended = connected + s(talk) if connected is not None and talk else enqueued + s(gave_up)
            session.add(
                QueueEntry(
                    id=entry_id,
                    handoff_id=f"h-{entry_id}",
                    call_id=call_id,
                    queue=queue,
                    original_queue=queue,
                    enqueued_at=enqueued,
                    status="ended" if connected else "abandoned",
                    agent_id=agent.id if agent else None,
                    connected_at=connected,
                    ended_at=ended,
                    wrapped_at=ended + s(wrap) if wrap else None,
                )
            )
        # a callback the caller asked for: counted apart, never as offered
        session.add(
            Call(id="call-cb", started_at=at(2, 11, 0), channel="callback", outcome="callback")
        )
        session.add(
            Handoff(
                id="h-cb",
                call_id="call-cb",
                created_at=at(2, 11, 0),
                queue="billing",
                priority="normal",
                reason="callback",
                packet={},
                reason_kind="asked",
            )
        )
        await session.flush()
        session.add(
            QueueEntry(
                id="cb",
                handoff_id="h-cb",
                call_id="call-cb",
                kind="callback",
                queue="billing",
                original_queue="billing",
                enqueued_at=at(2, 11, 0),
                status="ended",
            )
        )
        # contained: three on Monday, one at 02:00 UTC on Tuesday (Monday evening in New York)
        contained = [
            ("c1", at(2, 9, 0), "sip", "check_balance", 0.5),
            ("c2", at(2, 9, 30), "sip", "check_balance", 0.5),
            ("c3", at(2, 12, 0), "chat", "opening_hours", None),
            ("c4", at(3, 2, 0), "chat", "check_balance", 0.0),
        ]
        for call_id, started, channel, intent, sentiment in contained:
            session.add(
                Call(
                    id=call_id,
                    started_at=started,
                    ended_at=started + s(90),
                    bot_ended_at=started + s(90),
                    channel=channel,
                    intent=intent,
                    outcome="ended",
                    sentiment=sentiment,
                )
            )
        await session.flush()
        events = [
            CallEvent(call_id="c1", at=at(2, 9, 1), kind="turn", value=v)
            for v in (100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
        ]
        events += [
            CallEvent(call_id="c1", at=at(2, 9, 1), kind="flow", name="verify", label="completed"),
            CallEvent(call_id="c2", at=at(2, 9, 31), kind="flow", name="verify", label="completed"),
            CallEvent(call_id="c3", at=at(2, 12, 1), kind="flow", name="verify", label="abandoned"),
            CallEvent(
                call_id="call-e1", at=at(2, 10, 0), kind="flow", name="pay_bill", label="handoff"
            ),
            CallEvent(call_id="c1", at=at(2, 9, 1), kind="no_answer", name="student discount"),
            CallEvent(call_id="c3", at=at(2, 12, 1), kind="no_answer", name="student discount"),
            CallEvent(call_id="c2", at=at(2, 9, 31), kind="no_answer", name="pause my contract"),
        ]
        session.add_all(events)


def week(
    tz: dt.tzinfo = dt.UTC, *, queues: tuple[str, ...] = (), channels: tuple[str, ...] = ()
) -> ReportFilter:
    period = parse_period("2026-11-02", "2026-11-08", tz=tz)
    return make_filter(period, queues=queues, channels=channels, known=QUEUES)


async def test_daily_report_figures(db: Database) -> None:
    await seed(db)
    async with db.session() as session:
        report = await calls_report(session, week(), by="day", queues=QUEUES)
    rows = {row["day"]: row for row in report.rows}
    assert len(rows) == 7  # every day of the period, quiet ones too
    monday = rows["2026-11-02"]
    # billing only on Monday: SL 2 within / (3 answered + 1 abandoned after 20 s) = 50 %
    assert monday == {
        "day": "2026-11-02",
        "calls": 9,
        "contained": 3,
        "containment_rate": 33.3,
        "offered": 5,
        "answered": 3,
        "abandoned": 2,
        "callbacks": 1,
        "service_level": 50.0,
        "asa": 30.0,  # (10 + 20 + 60) / 3
        "aht": 200.0,  # (330 + 120 + 150) / 3: talk plus wrap-up
        "abandon_rate": 40.0,
    }
    assert rows["2026-11-03"]["offered"] == 1 and rows["2026-11-03"]["service_level"] == 100.0
    assert rows["2026-11-05"]["calls"] == 0 and rows["2026-11-05"]["service_level"] is None
    totals = report.totals
    assert (totals["calls"], totals["contained"], totals["offered"]) == (11, 4, 6)
    assert totals["service_level"] == 60.0  # 3 within / (4 + 1), each queue by its own T
    assert totals["asa"] == 33.8 and totals["aht"] == 180.0
    assert report.notes and "sales 60 s" in report.notes[0]


async def test_days_are_local_days(db: Database) -> None:
    await seed(db)
    async with db.session() as session:
        report = await calls_report(
            session, week(ZoneInfo("America/New_York")), by="day", queues=QUEUES
        )
    rows = {row["day"]: row for row in report.rows}
    # 02:00 UTC on the 3rd is 21:00 on the 2nd in New York (UTC-5 in November)
    assert rows["2026-11-02"]["calls"] == 10 and rows["2026-11-03"]["calls"] == 1


async def test_by_queue_agent_intent_and_hour(db: Database) -> None:
    await seed(db)
    async with db.session() as session:
        by_queue = await calls_report(session, week(), by="queue", queues=QUEUES)
        by_agent = await calls_report(session, week(), by="agent", queues=QUEUES)
        by_intent = await calls_report(session, week(), by="intent", queues=QUEUES)
        by_hour = await calls_report(session, week(), by="hour", queues=QUEUES)
    queues = {row["queue"]: row for row in by_queue.rows}
    assert queues["sales"]["sla_seconds"] == 60 and queues["sales"]["sl_target"] == 90
    assert queues["sales"]["service_level"] == 100.0 and queues["sales"]["asa"] == 45.0
    assert queues["billing"]["callbacks"] == 1 and queues["billing"]["offered"] == 5
    agents = {row["username"]: row for row in by_agent.rows}
    assert agents["alice"] == {
        "agent": "Alice",
        "username": "alice",
        "answered": 2,
        "aht": 225.0,
        "talk": 210.0,
        "wrap": 30.0,
    }
    assert agents["bob"]["answered"] == 2 and agents["bob"]["aht"] == 135.0
    assert by_agent.totals["answered"] == 4
    intents = {row["intent"]: row for row in by_intent.rows}
    assert intents["check_balance"] == {
        "intent": "check_balance",
        "calls": 3,
        "contained": 3,
        "handoffs": 0,
        "containment_rate": 100.0,
    }
    assert intents["pay_bill"]["handoffs"] == 5
    hours = {row["hour"]: row for row in by_hour.rows}
    assert hours["10:00"]["offered"] == 5 and hours["09:00"]["offered"] == 1


async def test_intervals(db: Database) -> None:
    await seed(db)
    async with db.session() as session:
        half = await interval_report(session, week(), interval=30, queues=QUEUES)
        hour = await interval_report(session, week(), interval=60, queues=QUEUES)
    rows = {row["interval"]: row for row in half.rows}
    assert rows["2026-11-02T10:00"]["offered"] == 3
    assert rows["2026-11-02T10:30"]["offered"] == 2
    assert rows["2026-11-02T10:30"]["service_level"] == 0.0  # 60 s wait and a late hang-up
    assert rows["2026-11-02T11:00"]["offered"] == 0 and rows["2026-11-02T11:00"]["callbacks"] == 1
    hourly = {row["interval"]: row for row in hour.rows}
    assert hourly["2026-11-02T10:00"]["service_level"] == 50.0
    assert half.totals["offered"] == hour.totals["offered"] == 6


async def test_bot_report(db: Database) -> None:
    await seed(db)
    async with db.session() as session:
        data = await bot_report(session, week())
    assert (data["calls"], data["contained"], data["handoffs"]) == (11, 4, 7)
    assert data["containment_rate"] == 36.4 and data["handoff_rate"] == 63.6
    reasons = {row["reason"]: row["calls"] for row in data["handoff_reasons"]}
    # e5 has no category stored: it counts as a flow's own handoff
    assert reasons == {
        "asked": 2,
        "angry": 1,
        "no_match": 1,
        "technical": 1,
        "after_hours": 1,
        "flow": 1,
    }
    assert data["latency_ms"] == {"turns": 10, "p50": 500.0, "p95": 1000.0}
    flows = {row["flow"]: row for row in data["flows"]}
    assert flows["verify"]["started"] == 3 and flows["verify"]["completed"] == 2
    assert flows["verify"]["abandoned"] == 1 and flows["pay_bill"]["handoff"] == 1
    assert data["unanswered"][0] == {"question": "student discount", "count": 2}
    assert data["top_intents"][0] == {"intent": "pay_bill", "calls": 5}
    # sentiment: six handed-off calls at -0.5 and contained 0.5, 0.5, 0.0 (one not measured)
    assert data["sentiment"] == round((6 * -0.5 + 1.0) / 9, 2)
    days = {row["day"]: row for row in data["by_day"]}
    assert days["2026-11-02"]["calls"] == 9 and days["2026-11-02"]["contained"] == 3


async def test_filters(db: Database) -> None:
    await seed(db)
    async with db.session() as session:
        sip = await bot_report(session, week(channels=("sip",)))
        sales = await calls_report(session, week(queues=("sales",)), by="day", queues=QUEUES)
        chat_latency = await bot_report(session, week(channels=("chat",)))
    assert sip["calls"] == 7 and sip["contained"] == 2  # five queued, two contained on sip
    assert sales.totals["offered"] == 1 and sales.totals["calls"] == 1
    assert chat_latency["latency_ms"]["turns"] == 0  # the timed turns were on a sip call


def test_filter_errors() -> None:
    with pytest.raises(ReportError, match="after"):
        parse_period("2026-11-08", "2026-11-02")
    with pytest.raises(ReportError, match="like 2026-11-30"):
        parse_period("2026-13-01", None)
    period = parse_period("2026-11-02", "2026-11-08")
    with pytest.raises(ReportError, match=r"no queue named 'nope'.*billing, sales") as raised:
        make_filter(period, queues=["nope"], channels=(), known=QUEUES)
    assert raised.value.status == 404
    with pytest.raises(ReportError, match="no channel named 'fax'"):
        make_filter(period, queues=(), channels=["fax"], known=QUEUES)


async def test_csv_opens_in_a_spreadsheet(db: Database) -> None:
    await seed(db)
    async with db.session() as session:
        report = await calls_report(session, week(), by="queue", queues=QUEUES)
    text = report.to_csv()
    assert text.startswith("\ufeff")  # so Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0][:3] == ["Queue", "Offered", "Answered"]
    assert rows[-1][0] == "Total" and rows[-1][1] == "6"
    billing = next(r for r in rows if r[0] == "billing")
    assert billing[rows[0].index("Service level %")] == "50.0"


def test_percentile_and_levels() -> None:
    assert percentile([], 0.95) is None
    assert percentile([(100.0, 19), (900.0, 1)], 0.95) == 100.0
    assert percentile([(100.0, 18), (900.0, 2)], 0.95) == 900.0
    assert level_above(None, None) is None
    assert [level_above(v, 2) for v in (1, 2, 3, 4)] == ["ok", "warn", "warn", "alert"]
    assert [level_service(v, 80) for v in (None, 85, 75, 69)] == ["ok", "ok", "warn", "alert"]


async def test_wallboard(db: Database) -> None:
    """Live figures and today's measures, with the tiles' levels from the queue's alerts."""
    await seed(db)
    now = at(2, 11, 30)
    service = QueueService(db, LocalBus(), QUEUES, clock=lambda: now, wrap_up_seconds=0)
    async with db.transaction() as session:
        for n in range(3):  # three callers waiting in billing, the first for 4 minutes
            session.add(Call(id=f"w{n}", started_at=now - s(300), channel="sip", outcome="handoff"))
            session.add(
                Handoff(
                    id=f"hw{n}",
                    call_id=f"w{n}",
                    created_at=now - s(240 - n),
                    queue="billing",
                    priority="normal",
                    reason="test",
                    packet={},
                )
            )
            await session.flush()
            session.add(
                QueueEntry(
                    id=f"w{n}",
                    handoff_id=f"hw{n}",
                    call_id=f"w{n}",
                    queue="billing",
                    original_queue="billing",
                    enqueued_at=now - s(240 - n),
                    status="waiting",
                )
            )
        agents = (await session.execute(Agent.__table__.select())).all()
        assert len(agents) == 2
    async with db.transaction() as session:
        await session.execute(
            update(Agent)
            .where(Agent.username == "alice")
            .values(state="available", state_since=now - s(90))
        )
        await session.execute(
            update(Agent)
            .where(Agent.username == "bob")
            .values(state="wrap_up", state_since=now - s(10))
        )
    board = await build_wallboard(service, now=now)
    queues = {q["name"]: q for q in board["queues"]}
    billing = queues["billing"]
    assert billing["waiting"] == 3 and billing["longest_wait"] == 240.0
    # today: Monday's billing figures (the three still waiting are offered, not yet answered)
    assert billing["offered"] == 8 and billing["answered"] == 3
    assert billing["service_level"] == 50.0 and billing["abandon_rate"] == 40.0
    assert billing["agents"] == {"available": 1, "on_call": 0, "wrap_up": 1, "away": 0}
    assert billing["tiles"]["waiting"] == "warn"  # alerts.waiting 2: warn at 2, alert at 4
    assert billing["tiles"]["longest_wait"] == "alert"  # 240 s against T = 20 s
    assert billing["tiles"]["service_level"] == "alert"  # 50 % against 80 %
    assert queues["sales"]["agents"]["wrap_up"] == 1 and queues["sales"]["waiting"] == 0
    people = {a["username"]: a for a in board["agents"]}
    assert people["alice"]["state"] == "available" and people["alice"]["seconds_in_state"] == 90.0
    assert people["bob"]["queues"] == ["billing", "sales"]
    # the bot's day so far: the calls started by 11:30 (c3 at noon is later)
    assert board["bot"] == {"calls": 11, "contained": 2, "containment_rate": 18.2}
