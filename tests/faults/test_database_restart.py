"""The database restarts while handoffs arrive: none is lost, the API says 503, all are routed.

A real API node (``voicebot serve --no-phone``) runs on a PostgreSQL cluster of the test's own
(tests/faults/postgres.py), with three agents on their desktops taking every call. Handoffs are
POSTed one after another; after the first ones are queued the cluster is stopped (``pg_ctl stop
-m fast``: every connection is cut) and, once several POSTs have been answered during the
outage, started again. Promised and checked:

- every POST is answered 201 (queued) or 503 (the database is down; the packet is spooled on
  the node), never 500 and never a dropped connection;
- handoffs answered 503 are not posted again, yet each one is queued after the restart (the
  handoff spool replays them) and every handoff ends ``done``, offered, accepted and wrapped
  up by an agent, each queued once;
- the node's log holds no unhandled exception (of a request or a task) and no 500.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.faults.postgres import Cluster
from tests.queues.packets import make_packet
from tests.queues.servers import (
    Node,
    ResilientDesk,
    sign_in_agents,
    start_node,
    stop_nodes,
    wait_healthy,
)

pytestmark = pytest.mark.timeout(240)

TOKEN = "db-restart-" + uuid.uuid4().hex
PASSWORD = "db-restart-password"
AGENTS = 3
BEFORE = 15  # handoffs queued before the outage
DURING = 5  # POSTs answered during it, at least
TOTAL = 60


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    try:
        made.init()
        made.start()
        yield made
    finally:
        made.remove()


async def wait_for(condition, within: float, what, node: Node) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await condition():
        if node.process.poll() is not None:
            pytest.fail(f"the node exited with {node.process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what()}")
        await asyncio.sleep(0.1)


async def test_handoffs_during_a_database_restart_are_spooled_and_all_routed(
    cluster: Cluster, tmp_path: Path
) -> None:
    admin = await asyncpg.connect(cluster.admin_url)
    await admin.execute('CREATE DATABASE "voicebot"')
    await admin.close()
    db_dsn = cluster.admin_url.rsplit("/", 1)[0] + "/voicebot"
    node = start_node(
        0,
        db_dsn.replace("postgresql://", "postgresql+asyncpg://"),
        tmp_path,
        token=TOKEN,
        offer_timeout=30,
        log_level="INFO",
    )
    desks: list[ResilientDesk] = []
    tasks: list[asyncio.Task[None]] = []
    answers: dict[str, int] = {}  # handoff id -> HTTP status of its one POST
    try:
        await wait_healthy(node)
        agents = await sign_in_agents([node.url], AGENTS, token=TOKEN, password=PASSWORD)
        desks = [ResilientDesk(name, cookie, [node.ws_url]) for name, cookie, _ in agents]
        tasks = [asyncio.create_task(desk.run()) for desk in desks]
        await asyncio.wait_for(asyncio.gather(*(d.ready.wait() for d in desks)), 60)

        packets = [make_packet("general") for _ in range(TOTAL)]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=30, headers=auth, trust_env=False) as client:

            async def post(i: int) -> None:
                response = await client.post(
                    f"{node.url}/api/handoffs", json=packets[i].model_dump(mode="json")
                )
                answers[packets[i].id] = response.status_code
                if response.status_code == 503:
                    assert "spooled" in response.json()["detail"], response.text
                    assert response.headers.get("retry-after")
                else:
                    assert response.status_code == 201, response.text

            i = 0
            for i in range(BEFORE):
                await post(i)
            i += 1
            await asyncio.to_thread(cluster.stop)
            while sum(1 for s in answers.values() if s == 503) < DURING:
                assert i < TOTAL, (
                    f"the outage was never seen by the API: {Counter(answers.values())}"
                )
                await post(i)
                i += 1
            await asyncio.to_thread(cluster.start)
            while i < TOTAL:
                await post(i)
                i += 1
                await asyncio.sleep(0.05)

        connection = await asyncpg.connect(db_dsn)
        try:
            rows: list[asyncpg.Record] = []

            async def all_done() -> bool:
                nonlocal rows
                rows = await connection.fetch("SELECT handoff_id, status FROM queue_entries")
                return sum(1 for r in rows if r["status"] == "done") >= TOTAL

            await wait_for(
                all_done,
                120,
                lambda: f"every handoff done ({Counter(r['status'] for r in rows)})",
                node,
            )
            handoffs = await connection.fetchval("SELECT count(*) FROM handoffs")
        finally:
            await connection.close()
    except BaseException:
        print(node.log_tail())
        print(cluster.log_tail())
        for desk in desks:
            print(
                f"{desk.username}: {len(desk.connections)} connections, errors "
                f"{desk.errors[-3:]}, {len(desk.offers)} offers, {len(desk.wrapped)} wrapped"
            )
        raise
    finally:
        for desk in desks:
            desk.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_nodes([node])

    statuses = Counter(answers.values())
    print(f"\nPOST answers: {dict(statuses)}")
    assert set(statuses) <= {201, 503}
    assert statuses[503] >= DURING
    assert len(answers) == TOTAL
    queued = Counter(r["handoff_id"] for r in rows)
    assert set(queued) == {p.id for p in packets}, "a handoff was lost"
    assert max(queued.values()) == 1, "a handoff was queued twice"
    assert handoffs == TOTAL
    assert {r["status"] for r in rows} == {"done"}
    wrapped = Counter(e for d in desks for e in d.wrapped)
    assert len(wrapped) == TOTAL
    log = node.log_path.read_text(errors="replace")
    for unhandled in ("Exception in ASGI application", "exception was never retrieved", '" 500'):
        assert unhandled not in log, node.log_tail()
