"""GET /metrics against the real app and database (SQLite and PostgreSQL): the live queue
gauges and this node's counters after real actions, who may read them, and the queues off."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select

from tests.queues.packets import make_packet
from voicebot.access.users import add_user
from voicebot.api.app import create_app
from voicebot.config import Settings
from voicebot.engine.state import CallState
from voicebot.flows.schema import Queue
from voicebot.handoff.packet import TranscriptLine
from voicebot.queues.service import QueueService
from voicebot.store.models import Call, QueueEntry

TOKEN = "metrics-token-123"
PASSWORD = "correct horse"
QUEUES = {
    "general": Queue(skills=["general"]),
    "billing": Queue(skills=["billing"]),
    "sales": Queue(skills=["sales"]),
}
USERS = {
    "alice": ("agent", {"general": 5}),
    "bob": ("agent", {"billing": 5}),
    "sue": ("supervisor", {}),
    "ada": ("admin", {}),
}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class Running:
    def __init__(self, app: FastAPI, ids: dict[str, int]) -> None:
        self.app = app
        self.ids = ids
        self.transport = httpx.ASGITransport(app=app)

    @property
    def service(self) -> QueueService:
        service: QueueService = self.app.state.queues
        return service

    def client(self, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, base_url="http://test", headers=headers)

    @contextlib.asynccontextmanager
    async def signed_in(self, username: str) -> AsyncIterator[httpx.AsyncClient]:
        async with self.client() as client:
            response = await client.post(
                "/api/auth/login", json={"username": username, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            yield client

    async def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with self.client(**BEARER) as client:
            response = await client.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=")
        return parse(response.text)


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str):
    return found.get((name, tuple(sorted(labels.items()))))


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, database_url: str | None = None, *, required: bool = True, **overrides: Any
) -> AsyncIterator[Running]:
    settings = Settings(
        data_dir=tmp_path / "data",
        bot_dir=tmp_path,
        api_token=SecretStr(TOKEN),
        wrap_up_seconds=0,
        database_url=database_url,
        **overrides,
    )
    app = create_app(settings, queues=QUEUES, require_database=required)
    app.state.knowledge_error = "off in these tests"
    async with app.router.lifespan_context(app):
        ids: dict[str, int] = {}
        if app.state.db is not None:
            for name, (role, skills) in USERS.items():
                agent = await add_user(app.state.db, name, PASSWORD, role=role, skills=skills)
                ids[name] = agent.id
        yield Running(app, ids)


async def post_handoff(run: Running, queue: str, **kwargs: Any) -> str:
    async with run.client(**BEARER) as client:
        packet = make_packet(queue, **kwargs).model_dump(mode="json")
        response = await client.post("/api/handoffs", json=packet)
    assert response.status_code == 201, response.text
    entry_id: str = response.json()["entry_id"]
    return entry_id


# -- the live gauges and the wait histogram ------------------------------------------------------


async def test_queue_and_agent_gauges_and_the_wait_histogram_follow_real_actions(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as run:
        before = await run.scrape()
        assert value(before, "voicebot_queues_up") == 1
        assert value(before, "voicebot_queue_waiting", queue="general") == 0
        assert value(before, "voicebot_queue_longest_wait_seconds", queue="general") == 0
        assert value(before, "voicebot_agents", state="offline") == 4
        assert value(before, "voicebot_agents", state="available") == 0
        assert value(before, "voicebot_callbacks_owed", queue="sales") == 0
        # every configured queue's wait series exists from the start, at zero
        assert value(before, "voicebot_queue_wait_seconds_count", queue="general") == 0
        assert value(before, "voicebot_queue_wait_seconds_count", queue="billing") == 0
        info = [k for k in before if k[0] == "voicebot_info"]
        assert info and dict(info[0][1])["node"] == run.service.node_id

        first = await post_handoff(run, "general", reason_kind="angry")
        await post_handoff(run, "general")
        await post_handoff(run, "sales", callback="+447700900999")
        queued = await run.scrape()
        assert value(queued, "voicebot_queue_waiting", queue="general") == 2
        assert value(queued, "voicebot_queue_waiting", queue="sales") == 1
        assert value(queued, "voicebot_queue_waiting", queue="billing") == 0
        assert value(queued, "voicebot_callbacks_owed", queue="sales") == 1
        assert value(queued, "voicebot_callbacks_owed", queue="general") == 0
        assert value(queued, "voicebot_queue_longest_wait_seconds", queue="general") > 0
        assert value(queued, "voicebot_handoffs_total", queue="general", reason="angry") == 1
        assert value(queued, "voicebot_handoffs_total", queue="general", reason="unknown") == 1
        assert value(queued, "voicebot_handoffs_total", queue="sales", reason="unknown") == 1

        # bob has nothing to take (no billing calls): he stays available
        await run.service.set_state(run.ids["bob"], "available")
        assert await run.service.dispatch() == 0
        free = await run.scrape()
        assert value(free, "voicebot_agents", state="available") == 1
        assert value(free, "voicebot_agents", state="offline") == 3
        assert value(free, "voicebot_queue_agents", queue="billing", state="available") == 1
        assert value(free, "voicebot_queue_agents", queue="billing", state="staffed") == 1
        assert value(free, "voicebot_queue_agents", queue="general", state="staffed") == 0

        # alice is offered the first general call; an offered call still counts as waiting
        await run.service.set_state(run.ids["alice"], "available")
        await run.service.dispatch()
        snapshot = await run.service.agent_snapshot(run.ids["alice"])
        assert snapshot is not None and snapshot["current"] == first
        offered = await run.scrape()
        assert value(offered, "voicebot_agents", state="offered") == 1
        assert value(offered, "voicebot_queue_waiting", queue="general") == 2
        assert value(offered, "voicebot_queue_agents", queue="general", state="available") == 0
        assert value(offered, "voicebot_queue_agents", queue="general", state="staffed") == 1
        assert value(offered, "voicebot_queue_wait_seconds_count", queue="general") == 0

        async with run.signed_in("alice") as alice:
            accepted = await alice.post(f"/api/entries/{first}/accept")
            assert accepted.status_code == 204, accepted.text
        connected = await run.scrape()
        assert value(connected, "voicebot_queue_waiting", queue="general") == 1
        assert value(connected, "voicebot_agents", state="busy") == 1
        assert value(connected, "voicebot_agents", state="offered") == 0
        assert value(connected, "voicebot_queue_wait_seconds_count", queue="general") == 1
        assert value(connected, "voicebot_queue_wait_seconds_count", queue="billing") == 0
        waited = value(connected, "voicebot_queue_wait_seconds_sum", queue="general")
        assert waited is not None and 0 <= waited < 1800
        assert (
            value(connected, "voicebot_queue_wait_seconds_bucket", queue="general", le="+Inf") == 1
        )
        # the counters did not move on the way
        assert value(connected, "voicebot_handoffs_total", queue="general", reason="angry") == 1


# -- the bot legs ----------------------------------------------------------------------------


def bot_leg(*, ended: bool, timings: list[dict[str, Any]], flows: list[list[Any]]) -> CallState:
    now = dt.datetime.now(dt.UTC)
    state = CallState(
        transcript=[TranscriptLine(role="bot", text="Hello, how can I help?", at=now)],
        timings=timings,
        flow_outcomes=flows,
    )
    state.ended = ended
    state.disposition = "completed" if ended else None
    return state


async def test_bot_legs_turn_latency_and_flow_runs_are_counted_once(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as run:
        contained = bot_leg(
            ended=True,
            timings=[{"total_ms": 450}, {"total_ms": 1200.0, "ended_by": "vad"}, {"ended_by": "x"}],
            flows=[["pay_bill", "completed"], ["faq", "left"]],
        )
        await run.service.record_call(contained, channel="softphone")
        await run.service.record_call(contained, channel="softphone")  # a retry adds nothing
        hung_up = bot_leg(ended=False, timings=[], flows=[["pay_bill", None]])
        await run.service.record_call(hung_up, channel="sip")
        packet = make_packet("billing", reason_kind="no_match")
        handed_off = bot_leg(ended=True, timings=[{"total_ms": 2500}], flows=[])
        handed_off.call_id = packet.call_id
        handed_off.handoff = packet
        await run.service.enqueue(packet, channel="softphone")
        await run.service.record_call(handed_off, channel="softphone")

        found = await run.scrape()
        assert value(found, "voicebot_calls_total", channel="softphone", outcome="contained") == 1
        assert value(found, "voicebot_calls_total", channel="sip", outcome="abandoned") == 1
        assert value(found, "voicebot_calls_total", channel="softphone", outcome="handoff") == 1
        assert value(found, "voicebot_handoffs_total", queue="billing", reason="no_match") == 1
        assert value(found, "voicebot_turn_latency_seconds_count") == 3
        assert value(found, "voicebot_turn_latency_seconds_sum") == pytest.approx(4.15)
        assert value(found, "voicebot_turn_latency_seconds_bucket", le="0.5") == 1
        assert value(found, "voicebot_turn_latency_seconds_bucket", le="1.5") == 2
        assert value(found, "voicebot_turn_latency_seconds_bucket", le="3.0") == 3
        assert value(found, "voicebot_flow_runs_total", flow="pay_bill", outcome="completed") == 1
        assert value(found, "voicebot_flow_runs_total", flow="pay_bill", outcome="abandoned") == 1
        assert value(found, "voicebot_flow_runs_total", flow="faq", outcome="left") == 1


class _Exploding:
    def call_recorded(self, state: CallState, *, channel: str, outcome: str) -> None:
        raise RuntimeError("observer broke")

    def handoff_recorded(self, *, queue: str, reason: str | None) -> None:
        raise RuntimeError("observer broke")

    def call_connected(self, *, queue: str, waited: float) -> None:
        raise RuntimeError("observer broke")


async def test_a_failing_observer_never_breaks_recording(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, db_url) as run:
        service = run.service
        service.observer = _Exploding()
        packet = make_packet("general")
        with caplog.at_level(logging.ERROR, logger="voicebot.queues"):
            entry_id = await service.enqueue(packet)
            await service.record_handoff(make_packet("general"), channel="sip", outcome="x")
            await service.set_state(run.ids["alice"], "available")
            await service.dispatch()
            await service.accept(run.ids["alice"], entry_id)
            state = bot_leg(ended=True, timings=[], flows=[])
            await service.record_call(state, channel="softphone")
        assert [r.message for r in caplog.records].count("the queue observer failed") == 4
        async with service.db.session() as session:
            status = await session.scalar(
                select(QueueEntry.status).where(QueueEntry.id == entry_id)
            )
            assert status == "connected"
            assert await session.get(Call, state.call_id) is not None


# -- who may read ----------------------------------------------------------------------------


async def test_who_may_read_the_metrics(tmp_path: Path) -> None:
    async with running(tmp_path) as run:
        async with run.client() as anonymous:
            response = await anonymous.get("/metrics")
            assert response.status_code == 401
        async with run.client(Authorization="Bearer wrong") as wrong:
            assert (await wrong.get("/metrics")).status_code == 401
        async with run.signed_in("alice") as alice:
            refused = await alice.get("/metrics")
            assert refused.status_code == 403 and "supervisors" in refused.json()["detail"]
        for reader in ("sue", "ada"):
            async with run.signed_in(reader) as client:
                response = await client.get("/metrics")
                assert response.status_code == 200
                assert value(parse(response.text), "voicebot_queues_up") == 1
        assert value(await run.scrape(), "voicebot_queues_up") == 1


async def test_public_metrics_need_no_credentials(tmp_path: Path) -> None:
    async with running(tmp_path, metrics_public=True) as run, run.client() as anonymous:
        response = await anonymous.get("/metrics")
        assert response.status_code == 200
        assert value(parse(response.text), "voicebot_queue_waiting", queue="general") == 0


async def test_with_the_queues_off_metrics_still_answer(tmp_path: Path) -> None:
    unreachable = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    async with running(tmp_path, unreachable, required=False) as run:
        assert run.app.state.queues is None
        async with run.client() as anonymous:
            response = await anonymous.get("/metrics")
            assert response.status_code == 401
            assert "VOICEBOT_API_TOKEN" in response.json()["detail"]
        found = await run.scrape()
        assert value(found, "voicebot_queues_up") == 0
        assert not [key for key in found if key[0] == "voicebot_queue_waiting"]
        assert value(found, "process_cpu_seconds_total") is not None
        assert value(found, "voicebot_calls_total", channel="sip", outcome="contained") is None
    async with running(tmp_path, unreachable, required=False, metrics_public=True) as run:
        async with run.client() as anonymous:
            response = await anonymous.get("/metrics")
        assert response.status_code == 200
        assert value(parse(response.text), "voicebot_queues_up") == 0
