"""The forecast on SQLite and PostgreSQL: a history with a known weekly pattern is forecast
exactly, a change of level is followed, staffing is Erlang C's own answer, the held-back error
is measured; bad requests are refused; the command and GET /api/forecast (supervisors only)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import insert

from tests.conftest import REPO
from tests.queues import conftest as queue_fixtures
from voicebot.access.users import add_user
from voicebot.analytics.forecast import ALL, accuracy, fit, forecast, staff
from voicebot.analytics.period import ReportError
from voicebot.api.app import create_app
from voicebot.config import Settings
from voicebot.demo.history import DEFAULT_QUEUES, seed_history
from voicebot.queues.erlang import agents_for_service_level, traffic_intensity
from voicebot.store.db import Database, open_database
from voicebot.store.models import Call, Handoff, QueueEntry

LONDON = ZoneInfo("Europe/London")
TODAY = dt.date(2026, 11, 30)  # a Monday; the history before it is all winter time
QUEUES = {"billing": DEFAULT_QUEUES["billing"], "general": DEFAULT_QUEUES["general"]}

# Every test here runs on SQLite and on PostgreSQL (tests/queues/conftest.py).
db_url = queue_fixtures.db_url
db = queue_fixtures.db


def pattern(day: dt.date, hour: int) -> int:
    """Calls in one hour: a weekday shape (Mondays busiest), closed on Sundays and at night."""
    weekday = day.weekday()
    if weekday == 6 or not 9 <= hour < 18:
        return 0
    return (7 - weekday) + hour % 4


async def write_history(db: Database, weeks: int, *, scale_last: int = 0) -> int:
    """Call entries of the billing queue following ``pattern``; the last ``scale_last`` days
    have twice as many. Every call is answered and takes 300 s (talk plus wrap-up)."""
    calls, handoffs, entries = [], [], []
    first = TODAY - dt.timedelta(days=7 * weeks)
    n = 0
    for offset in range(7 * weeks):
        day = first + dt.timedelta(days=offset)
        factor = 2 if offset >= 7 * weeks - scale_last else 1
        for hour in range(24):
            count = pattern(day, hour) * factor
            for k in range(count):
                at = dt.datetime.combine(day, dt.time(hour), tzinfo=LONDON) + dt.timedelta(
                    seconds=k * 3600 // count
                )
                n += 1
                calls.append({"id": f"c{n}", "started_at": at, "channel": "sip"})
                handoffs.append({"id": f"h{n}", "call_id": f"c{n}", "created_at": at,
                                 "queue": "billing", "priority": "normal", "reason": "x",
                                 "packet": {}})  # fmt: skip
                connected = at + dt.timedelta(seconds=10)
                entries.append({"id": f"e{n}", "handoff_id": f"h{n}", "call_id": f"c{n}",
                                "kind": "call", "queue": "billing", "original_queue": "billing",
                                "skills": ["billing"], "enqueued_at": at, "status": "done",
                                "connected_at": connected,
                                "ended_at": connected + dt.timedelta(seconds=260),
                                "wrapped_at": connected + dt.timedelta(seconds=300)})  # fmt: skip
    async with db.transaction() as session:
        for model, rows in ((Call, calls), (Handoff, handoffs), (QueueEntry, entries)):
            await session.execute(insert(model), rows)
    return n


async def run(db: Database, **kwargs: Any) -> Any:
    async with db.session() as session:
        return await forecast(
            session, queues=QUEUES, tz=LONDON, today=TODAY, now=dt.datetime.now(dt.UTC), **kwargs
        )


async def test_a_weekly_pattern_is_forecast_exactly(db: Database) -> None:
    await write_history(db, weeks=4)
    result = await run(db, days=7, interval=60, names=["billing", ALL])
    billing = result.queues[0]
    assert billing.name == "billing" and result.history_days == 28
    assert len(billing.intervals) == 7 * 24
    for item in billing.intervals:
        assert item.calls == pytest.approx(pattern(item.start.date(), item.start.hour), abs=0.01)
        assert item.start.tzinfo is not None
    assert billing.aht == pytest.approx(300, abs=0.5)
    # the bot's volume ("all") is the same calls here, and needs no agents
    everything = result.queues[1]
    assert [i.calls for i in everything.intervals] == [i.calls for i in billing.intervals]
    assert all(i.agents is None for i in everything.intervals)
    # held back: the last week forecast from the three before it, with no error at all
    assert result.error is not None and result.error.held_back_days == 7
    assert result.error.interval.wape == pytest.approx(0, abs=0.01)
    assert result.error.daily.mape == pytest.approx(0, abs=0.01)
    assert result.error.per_queue["billing"]["interval"].wape == pytest.approx(0, abs=0.01)
    # 30-minute intervals split each hour in two (the calls were spread evenly)
    halves = await run(db, days=1, interval=30, names=["billing"])
    assert len(halves.queues[0].intervals) == 48
    assert sum(i.calls for i in halves.queues[0].intervals) == pytest.approx(
        sum(pattern(TODAY, h) for h in range(24)), abs=0.05
    )


async def test_the_level_follows_the_recent_weeks_and_error_shows_it(
    db: Database,
) -> None:
    await write_history(db, weeks=4, scale_last=7)
    result = await run(db, days=7, interval=60, names=["billing"])
    monday = [i for i in result.queues[0].intervals if i.start.date() == TODAY]
    # the last 14 days hold one normal and one doubled week: the level is 1.5 times
    assert sum(i.calls for i in monday) == pytest.approx(
        1.5 * sum(pattern(TODAY, h) for h in range(24)), rel=0.01
    )
    assert result.error is not None
    # the held-back (doubled) week was forecast at the old level: half its calls missed
    assert result.error.daily.wape == pytest.approx(50, abs=0.5)


async def test_staffing_is_erlang_c(db: Database) -> None:
    await write_history(db, weeks=2)
    result = await run(db, days=1, interval=60, names=["billing"])
    billing = result.queues[0]
    assert billing.sla_seconds == 20 and billing.service_level == 80
    busy = max(billing.intervals, key=lambda i: i.calls)
    assert busy.calls > 5
    traffic = traffic_intensity(busy.calls / 3600, billing.aht or 0)
    assert busy.agents == agents_for_service_level(traffic, billing.aht or 0, 20, 0.8)
    assert all(i.agents == 0 for i in billing.intervals if i.calls == 0)
    # the general queue has no history: its own aht_seconds, and nothing forecast
    general = (await run(db, days=1, interval=60, names=["general"])).queues[0]
    assert general.aht == 180 and all(i.calls == 0 for i in general.intervals)
    assert staff(0, 60, 300, 20, 0.8) == 0
    assert staff(20, 15, 300, 20, 0.8) == agents_for_service_level(
        traffic_intensity(20 / 900, 300), 300, 20, 0.8
    )
    # two weeks is enough for the error (7 held back plus 7 to fit), one is not
    assert result.error is not None


async def test_short_history_and_bad_requests(db: Database) -> None:
    empty = await run(db, days=2, interval=15)
    assert empty.error is None and "needs 14 days" in (empty.error_note or "")
    assert {q.name for q in empty.queues} == {"billing", "general", ALL}
    assert all(i.calls == 0 for q in empty.queues for i in q.intervals)
    for kwargs, message in (
        ({"days": 0}, "days must be 1-60"),
        ({"days": 61}, "days must be 1-60"),
        ({"interval": 20}, "interval must be 15, 30 or 60"),
        ({"held_back": 0}, "held-back"),
    ):
        with pytest.raises(ReportError, match=message) as caught:
            await run(db, **kwargs)
        assert caught.value.status == 422
    with pytest.raises(ReportError, match="no queue named 'nope'") as unknown:
        await run(db, names=["nope"])
    assert unknown.value.status == 404


def test_accuracy_and_fit_by_hand() -> None:
    figures = accuracy([10, 0, 5], [8, 1, 5])
    assert figures.wape == pytest.approx(3 / 15 * 100, abs=0.01)  # (2 + 1 + 0) / 15
    assert figures.mape == pytest.approx((0.2 + 0) / 2 * 100, abs=0.01)  # zero actual skipped
    assert accuracy([0, 0], [1, 1]).wape is None
    # one week: Monday 10 calls (all at 09:00), Tuesday 20 (half at 10:00, half at 11:00)
    monday = dt.date(2026, 11, 2)
    history = {monday + dt.timedelta(days=i): [0.0] * 24 for i in range(7)}
    history[monday][9] = 10
    history[monday + dt.timedelta(days=1)][10] = 10
    history[monday + dt.timedelta(days=1)][11] = 10
    profile = fit(history, as_of=monday + dt.timedelta(days=7))
    assert profile is not None
    assert profile.factors[0] == pytest.approx(10 / (30 / 7))  # a mean day has 30/7 calls
    next_tuesday = monday + dt.timedelta(days=8)
    assert profile.forecast(next_tuesday)[10] == pytest.approx(10)


# -- the command and the API -------------------------------------------------------------------


def cli(args: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "VOICEBOT_DATABASE_URL"}
    environment.update(VOICEBOT_DATA_DIR=str(data), VOICEBOT_BOT_DIR=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "voicebot", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        timeout=300,
    )


def test_demo_seed_forecast_and_clear_commands(tmp_path: Path) -> None:
    # 17 days: the first local day may hold no call of the queue (a quiet Sunday)
    seeded = cli(["demo", "seed", "--days", "17", "--calls-per-day", "120"], tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 17 days" in seeded.stdout and "rows/s" in seeded.stdout
    again = cli(["demo", "seed", "--days", "2"], tmp_path)
    assert again.returncode == 1 and "--replace" in again.stderr
    out = cli(["forecast", "--days", "2", "--format", "json", "--queue", "care"], tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["tz"] == "Europe/London" and data["history_days"] >= 14
    (care,) = data["queues"]
    assert care["name"] == "care" and care["sla_seconds"] == 30
    assert len(care["intervals"]) in (47, 48, 49) and sum(i["calls"] for i in care["intervals"]) > 0
    assert data["error"]["held_back_days"] == 7 and data["error"]["wape"] is not None
    table = cli(["forecast", "--days", "1"], tmp_path)
    assert table.returncode == 0 and "error on the last 7 days held back" in table.stdout
    csv_out = cli(["forecast", "--days", "1", "--format", "csv", "--interval", "30"], tmp_path)
    assert csv_out.stdout.splitlines()[0].startswith("queue,start,calls,agents")
    bad = cli(["forecast", "--interval", "20"], tmp_path)
    assert bad.returncode == 2 and "interval must be 15, 30 or 60" in bad.stderr
    cleared = cli(["demo", "clear"], tmp_path)
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert "no demo history" in cli(["demo", "clear"], tmp_path).stdout


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", bot_dir=tmp_path, api_token=SecretStr("tok-1"))

    async def prepare() -> None:
        database = await open_database(settings.resolved_database_url)
        # 17 days: the first local day may hold no billing call (a quiet Sunday), today is partial
        await seed_history(database, days=17, calls_per_day=120, queues=DEFAULT_QUEUES)
        await add_user(database, "ann", "long enough", role="agent", skills={"general": 5})
        await add_user(database, "sue", "long enough", role="supervisor")
        await database.aclose()

    import asyncio

    asyncio.run(prepare())
    app = create_app(settings, queues=DEFAULT_QUEUES)
    app.state.knowledge_error = "off in these tests"
    with TestClient(app) as client:
        yield client


def test_api_forecast_roles_and_errors(api: TestClient) -> None:
    assert api.get("/api/forecast").status_code == 401
    assert api.post(
        "/api/auth/login", json={"username": "ann", "password": "long enough"}
    ).is_success
    assert api.get("/api/forecast").status_code == 403
    api.cookies.clear()
    assert api.post(
        "/api/auth/login", json={"username": "sue", "password": "long enough"}
    ).is_success
    response = api.get("/api/forecast", params={"days": 3, "interval": 30, "queue": "billing"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["interval"] == 30 and data["method"] and data["history_days"] >= 14
    (billing,) = data["queues"]
    assert billing["name"] == "billing" and billing["sla_seconds"] == 20
    assert billing["service_level"] == 80 and billing["aht"] > 0
    assert len(billing["intervals"]) >= 3 * 48 - 1
    assert {"start", "calls", "agents"} <= set(billing["intervals"][0])
    assert set(data["error"]) >= {"held_back_days", "wape", "mape", "per_queue"}
    assert api.get("/api/forecast", params={"interval": 20}).status_code == 422
    assert api.get("/api/forecast", params={"days": 0}).status_code == 422
    unknown = api.get("/api/forecast", params={"queue": "nope"})
    assert unknown.status_code == 404 and "no queue named 'nope'" in unknown.json()["detail"]
    assert api.get("/api/forecast", params={"tz": "Mars/Base"}).status_code == 422
    api.cookies.clear()
    token = api.get("/api/forecast", headers={"Authorization": "Bearer tok-1"})
    assert token.status_code == 200 and len(token.json()["queues"]) == len(DEFAULT_QUEUES) + 1
