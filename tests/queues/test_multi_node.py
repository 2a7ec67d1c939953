"""Two real API nodes on one PostgreSQL database: 50 agents, 1,000 handoffs, each handled once.

Two ``voicebot serve --no-phone`` processes (real uvicorn, their own ports and data directories)
share a fresh database. Half the agents sign in on each node and open their desktop WebSocket
there; handoffs are posted to both nodes at once. Every agent accepts each offer it gets, ends
the call and submits its wrap-up, then takes the next one. At the end every handoff must have
been offered to exactly one agent, accepted once and be ``done``, with no errors on any desktop
and offers reaching desktops on both nodes: routing (``FOR UPDATE SKIP LOCKED``) and the events
between nodes (LISTEN/NOTIFY) are what is under test.

The offer timeout is 30 s, far longer than an agent here takes to answer, so no offer may expire
and be offered again: any ``offer_withdrawn`` is a failure. Nothing is synchronised with sleeps:
the test waits on conditions (with deadlines) and fails fast, with the nodes' logs, if a node
dies.

``test_a_node_killed_mid_run_leaves_no_call_stuck`` kills one of the two nodes (SIGKILL) while
calls are handled: no entry may stay offered to a dead desktop or connected and never finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.queues.packets import make_packet
from tests.queues.servers import (
    Node,
    ResilientDesk,
    sign_in_agents,
    start_node,
    stop_nodes,
    wait_healthy,
)

AGENTS = 50
HANDOFFS = 1000
IN_FLIGHT = 50  # handoff POSTs in flight at once, spread over both nodes
TOKEN = "multi-node-test-" + uuid.uuid4().hex
PASSWORD = "multi-node-password"
STARTUP_TIMEOUT = 120.0  # two cold starts on a busy 2-core CI machine
HANDLING_TIMEOUT = 300.0

pytestmark = pytest.mark.timeout(600)


# -- the nodes ---------------------------------------------------------------------------------


def check_alive(nodes: list[Node]) -> None:
    for node in nodes:
        if node.process.poll() is not None:
            pytest.fail(f"node {node.index} exited with {node.process.returncode}")


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    within: float,
    what: Callable[[], str],
    nodes: list[Node],
) -> None:
    """Wait for ``condition`` (polled), failing at the deadline or as soon as a node dies."""
    deadline = time.monotonic() + within
    while True:
        met = condition()
        if not isinstance(met, bool):
            met = await met
        if met:
            return
        check_alive(nodes)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what()}")
        await asyncio.sleep(0.05)


async def start_healthy(index: int, db_url: str, tmp_path: Path, nodes: list[Node]) -> None:
    """Start node ``index`` (appended to ``nodes``) and wait until it answers ``/health``.

    The free port is picked before the server binds it, so another process may take it in
    between: a node that exits with "address already in use" is started again on another port.
    """
    for attempt in range(3):
        # Offers time out after 30 s (no offer may expire here); INFO logs every request.
        work = tmp_path / f"attempt{attempt}"
        node = start_node(index, db_url, work, token=TOKEN, offer_timeout=30, log_level="INFO")
        nodes.append(node)
        try:
            await wait_healthy(node, STARTUP_TIMEOUT)
            return
        except RuntimeError as exc:  # it exited, or is still starting after STARTUP_TIMEOUT
            failure = str(exc)
        if node.process.poll() is None or "address already in use" not in node.log_tail().lower():
            break
        nodes.remove(node)
    pytest.fail(failure)


# -- the agents' desktops ----------------------------------------------------------------------


@dataclass
class Desk:
    """One agent's desktop client and everything it saw."""

    username: str
    agent_id: int
    node: int
    cookie: str
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    offers: list[str] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    wrapped: list[str] = field(default_factory=list)
    withdrawn: list[dict[str, Any]] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    offer_latency: list[float] = field(default_factory=list)

    async def run(
        self, ws: ClientConnection, sent_at: dict[str, float], done: Callable[[], None]
    ) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "hello":
                    await ws.send(json.dumps({"type": "state", "state": "available"}))
                elif kind == "state":
                    if message.get("state") == "available":
                        self.ready.set()
                elif kind == "offer":
                    assignment = message["assignment"]
                    entry_id = assignment["entry_id"]
                    self.offers.append(entry_id)
                    started = sent_at.get(assignment["packet"]["id"])
                    if started is not None:
                        self.offer_latency.append(time.perf_counter() - started)
                    await ws.send(json.dumps({"type": "accept", "entry_id": entry_id}))
                elif kind == "connected":
                    entry_id = message["assignment"]["entry_id"]
                    self.connected.append(entry_id)
                    await ws.send(json.dumps({"type": "end", "entry_id": entry_id}))
                elif kind == "wrap_up":
                    entry_id = message["entry_id"]
                    wrap_up = {"type": "wrap_up", "entry_id": entry_id, "code": "resolved"}
                    await ws.send(json.dumps(wrap_up | {"notes": ""}))
                    self.wrapped.append(entry_id)
                    done()
                elif kind == "offer_withdrawn":
                    self.withdrawn.append(message)
                elif kind in ("error", "replaced"):
                    self.errors.append(message)
        except Exception as exc:  # a dropped connection is an error of this test run
            self.errors.append(repr(exc))
        if ws.close_code not in (None, 1000, 1001):
            self.errors.append(f"desktop closed with {ws.close_code} {ws.close_reason}")


async def sign_in(nodes: list[Node]) -> list[Desk]:
    """AGENTS agents with the skill general, created and signed in on alternate nodes."""
    agents = await sign_in_agents([n.url for n in nodes], AGENTS, token=TOKEN, password=PASSWORD)
    return [
        Desk(name, agent_id, nodes[i % len(nodes)].index, cookie)
        for i, (name, cookie, agent_id) in enumerate(agents)
    ]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- the test ----------------------------------------------------------------------------------


async def test_two_nodes_hand_every_call_to_one_agent_once(pg_url: str, tmp_path: Path) -> None:
    nodes: list[Node] = []
    sockets: list[ClientConnection] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        started = time.perf_counter()
        await asyncio.gather(*(start_healthy(i, pg_url, tmp_path, nodes) for i in range(2)))
        nodes.sort(key=lambda node: node.index)
        print(f"\nboth nodes healthy in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        desks = await sign_in(nodes)
        sent_at: dict[str, float] = {}
        wrapped = 0
        all_wrapped = asyncio.Event()

        def one_wrapped() -> None:
            nonlocal wrapped
            wrapped += 1
            if wrapped >= HANDOFFS:
                all_wrapped.set()

        for desk in desks:
            ws = await connect(
                nodes[desk.node].ws_url,
                additional_headers={"Cookie": f"voicebot_session={desk.cookie}"},
                open_timeout=30,
                proxy=None,  # loopback: never through a proxy from the environment
            )
            sockets.append(ws)
            tasks.append(asyncio.create_task(desk.run(ws, sent_at, one_wrapped)))
        # Everyone is available before the first call, so routing has agents on both nodes.
        await wait_until(
            lambda: all(d.ready.is_set() for d in desks),
            60,
            lambda: f"agents available ({sum(d.ready.is_set() for d in desks)}/{AGENTS})",
            nodes,
        )
        print(f"{AGENTS} agents signed in and available in {time.perf_counter() - started:.1f} s")

        # -- 1,000 handoffs, 50 in flight, alternating between the nodes --
        packets = [make_packet("general") for _ in range(HANDOFFS)]
        entry_ids: dict[str, str] = {}  # handoff id -> entry id
        limit = asyncio.Semaphore(IN_FLIGHT)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        limits = httpx.Limits(max_connections=IN_FLIGHT)
        async with httpx.AsyncClient(
            timeout=60, headers=auth, limits=limits, trust_env=False
        ) as client:

            async def post(i: int) -> None:
                packet = packets[i]
                async with limit:
                    sent_at[packet.id] = time.perf_counter()
                    response = await client.post(
                        f"{nodes[i % 2].url}/api/handoffs", json=packet.model_dump(mode="json")
                    )
                assert response.status_code == 201, response.text
                body = response.json()
                assert body["queue"] == "general" and body["handoff_id"] == packet.id
                entry_ids[packet.id] = body["entry_id"]

            first_post = time.perf_counter()
            await asyncio.gather(*(post(i) for i in range(HANDOFFS)))
            posted = time.perf_counter() - first_post
            print(f"{HANDOFFS} handoffs posted in {posted:.1f} s ({HANDOFFS / posted:.0f}/s)")

            def progress() -> str:
                offers = sum(len(d.offers) for d in desks)
                accepted = sum(len(d.connected) for d in desks)
                return (
                    f"wrap-ups ({wrapped}/{HANDOFFS} sent; {offers} offers, {accepted} connected)"
                )

            await wait_until(all_wrapped.is_set, HANDLING_TIMEOUT, progress, nodes)

            # The last wrap-ups were sent; wait for the nodes to have stored them.
            rows: list[dict[str, Any]] = []

            async def all_done() -> bool:
                nonlocal rows
                response = await client.get(
                    f"{nodes[0].url}/api/handoffs", params={"status": "done", "limit": 1000}
                )
                assert response.status_code == 200, response.text
                rows = response.json()
                return len(rows) >= HANDOFFS

            await wait_until(all_done, 30, lambda: f"entries done ({len(rows)}/{HANDOFFS})", nodes)
            handled = time.perf_counter() - first_post
            agents = (await client.get(f"{nodes[1].url}/api/agents")).json()

        latencies = [x for d in desks for x in d.offer_latency]
        print(
            f"all {HANDOFFS} handled (offer, accept, end, wrap-up) in {handled:.1f} s "
            f"({HANDOFFS / handled:.0f} calls/s); handoff to screen pop, queue wait included: "
            f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
            f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
        )
        per_node: Counter[int] = Counter()
        for desk in desks:
            per_node[desk.node] += len(desk.offers)
        calls = [len(d.offers) for d in desks]
        print(
            f"offers per node: {dict(sorted(per_node.items()))}; calls per agent: "
            f"min {min(calls)}, median {statistics.median(calls):.0f}, max {max(calls)}"
        )

        # -- what every desktop saw --
        assert [d.errors for d in desks if d.errors] == []
        assert [d.withdrawn for d in desks if d.withdrawn] == []
        expected = set(entry_ids.values())
        assert len(expected) == HANDOFFS
        all_offers = [entry for d in desks for entry in d.offers]
        repeated = [entry for entry, n in Counter(all_offers).items() if n > 1]
        assert repeated == [], "entries offered more than once (to one agent or to two)"
        assert set(all_offers) == expected
        all_connected = [entry for d in desks for entry in d.connected]
        assert sorted(all_connected) == sorted(expected)  # each accepted exactly once
        for desk in desks:
            assert set(desk.connected) <= set(desk.offers), desk.username
        assert per_node[0] > 0 and per_node[1] > 0, "desktops on both nodes get offers"

        # -- what the database holds (through the API, then directly) --
        assert len(rows) == HANDOFFS
        handled_by = {e: d.agent_id for d in desks for e in d.connected}
        assert {r["entry"]["id"]: r["entry"]["agent_id"] for r in rows} == handled_by
        # After their last wrap-up every agent is free again.
        assert {a["state"] for a in agents} == {"available"}
        connection = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            offers = await connection.fetch(
                "SELECT entry_id, agent_id, outcome FROM offers ORDER BY id"
            )
            statuses = dict(
                await connection.fetch("SELECT status, count(*) FROM queue_entries GROUP BY 1")
            )
            dispositions = await connection.fetchval("SELECT count(*) FROM dispositions")
        finally:
            await connection.close()
        assert len(offers) == HANDOFFS
        assert {r["entry_id"]: r["agent_id"] for r in offers} == handled_by
        assert {r["outcome"] for r in offers} == {"accepted"}
        assert statuses == {"done": HANDOFFS}
        assert dispositions == HANDOFFS
    except BaseException:
        # Shown with the failure (captured output): what the servers said.
        for node in nodes:
            print(node.log_tail())
        raise
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_nodes(nodes)


# -- one node killed mid-run -------------------------------------------------------------------

KILL_AGENTS = 20
KILL_HANDOFFS = 300
KILL_AFTER = 100  # wrap-ups before node 1 is killed
KILL_OFFER_TIMEOUT = 3.0  # an offer to a dead node's desktop moves on after this


async def test_a_node_killed_mid_run_leaves_no_call_stuck(pg_url: str, tmp_path: Path) -> None:
    """Node 1 is SIGKILLed while calls are being handled: its agents' desktops reconnect to
    node 0, offers made to them while they were away expire and go to the next agent, a call
    in progress on a dead desktop is finished after the reconnect, and every handoff ends
    ``done``, accepted once. Handoff POSTs that find node 1 dead are sent to node 0 (as a
    worker would), which is safe because a handoff id is queued once."""
    nodes: list[Node] = []
    desks: list[ResilientDesk] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for i in range(2):
            for attempt in range(3):
                node = start_node(
                    i, pg_url, tmp_path / f"kill{attempt}", token=TOKEN,
                    offer_timeout=KILL_OFFER_TIMEOUT, log_level="INFO",
                )  # fmt: skip
                try:
                    await wait_healthy(node, STARTUP_TIMEOUT)
                    nodes.append(node)
                    break
                except RuntimeError:
                    if "address already in use" not in node.log_tail().lower() or attempt == 2:
                        raise
        agents = await sign_in_agents(
            [n.url for n in nodes], KILL_AGENTS, token=TOKEN, password=PASSWORD, prefix="kill"
        )
        for i, (name, cookie, _) in enumerate(agents):
            home, other = nodes[i % 2], nodes[(i + 1) % 2]
            # Reconnecting after two offer timeouts, the dead node's agents miss offers made to
            # them meanwhile: those must expire and go to someone else.
            desks.append(
                ResilientDesk(
                    name,
                    cookie,
                    [home.ws_url, other.ws_url],
                    reconnect_delay=2 * KILL_OFFER_TIMEOUT,
                )
            )
        tasks = [asyncio.create_task(desk.run()) for desk in desks]
        await asyncio.wait_for(asyncio.gather(*(d.ready.wait() for d in desks)), 60)

        def wrapped() -> set[str]:
            return {e for d in desks for e in d.wrapped}

        packets = [make_packet("general") for _ in range(KILL_HANDOFFS)]
        entry_ids: dict[str, str] = {}
        rerouted = 0
        limit = asyncio.Semaphore(20)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        killed_at: float | None = None
        async with httpx.AsyncClient(timeout=30, headers=auth, trust_env=False) as client:

            async def post(i: int) -> None:
                nonlocal rerouted
                body = packets[i].model_dump(mode="json")
                async with limit:
                    for turn in range(2):
                        node = nodes[(i + turn) % 2]
                        try:
                            response = await client.post(f"{node.url}/api/handoffs", json=body)
                        except httpx.TransportError:
                            rerouted += 1  # node 1 is dead: the other node takes it
                            continue
                        assert response.status_code == 201, response.text
                        entry_ids[packets[i].id] = response.json()["entry_id"]
                        return
                pytest.fail(f"handoff {i} was refused by both nodes")

            async def kill_node_1() -> None:
                nonlocal killed_at
                await wait_until(
                    lambda: len(wrapped()) >= KILL_AFTER,
                    HANDLING_TIMEOUT,
                    lambda: f"{KILL_AFTER} wrap-ups before the kill ({len(wrapped())})",
                    nodes,
                )
                nodes[1].process.kill()  # SIGKILL: no shutdown, no desktop closed cleanly
                nodes[1].process.wait()
                killed_at = time.perf_counter()

            killer = asyncio.create_task(kill_node_1())
            await asyncio.gather(*(post(i) for i in range(KILL_HANDOFFS)), killer)
            survivors = nodes[:1]
            assert killed_at is not None
            await wait_until(
                lambda: set(entry_ids.values()) <= wrapped(),
                HANDLING_TIMEOUT,
                lambda: f"every call wrapped up ({len(wrapped())}/{KILL_HANDOFFS})",
                survivors,
            )
            recovered = time.perf_counter() - killed_at
            # A desk counts a call wrapped when it sends the wrap-up; the server applies it a
            # moment later. Half the 30 s timed wrap-up is plenty, and short of the timer
            # finishing a wrap-up the server never received.
            agents_view: list[dict[str, Any]] = []

            async def agents_settled() -> bool:
                nonlocal agents_view
                agents_view = (await client.get(f"{nodes[0].url}/api/agents")).json()
                return {a["state"] for a in agents_view} <= {"available", "away"}

            await wait_until(
                agents_settled,
                15.0,
                lambda: f"agents free after the last wrap-up: {[a['state'] for a in agents_view]}",
                survivors,
            )

        connection = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:

            async def settled() -> bool:
                statuses = dict(
                    await connection.fetch("SELECT status, count(*) FROM queue_entries GROUP BY 1")
                )
                return statuses == {"done": KILL_HANDOFFS}

            await wait_until(settled, 30, lambda: "every entry done in the database", survivors)
            accepted = await connection.fetch(
                "SELECT entry_id, count(*) AS n FROM offers WHERE outcome = 'accepted' GROUP BY 1"
            )
            outcomes = dict(
                await connection.fetch("SELECT outcome, count(*) FROM offers GROUP BY 1")
            )
            queued = await connection.fetchval(
                "SELECT count(DISTINCT handoff_id) FROM queue_entries"
            )
        finally:
            await connection.close()
        moved = [d for d in desks if d.urls[0] == nodes[1].ws_url]
        resumed = [r for d in moved for r in d.resumed]
        print(
            f"\nnode 1 killed after {KILL_AFTER} wrap-ups; all {KILL_HANDOFFS} done "
            f"{recovered:.1f} s later; offers by outcome {outcomes}; {rerouted} POSTs re-sent "
            f"to node 0; {len(resumed)} calls resumed by reconnected desktops ({resumed})"
        )
        assert len(accepted) == KILL_HANDOFFS and {r["n"] for r in accepted} == {1}
        assert queued == KILL_HANDOFFS
        assert set(entry_ids) == {p.id for p in packets}
        # node 1's agents came back on node 0 and took calls there
        for desk in moved:
            assert nodes[0].ws_url in desk.connections, desk.username
        assert {a["state"] for a in agents_view} <= {"available", "away"}
        for unhandled in ("Exception in ASGI application", "exception was never retrieved"):
            assert unhandled not in nodes[0].log_path.read_text(errors="replace")
    except BaseException:
        for node in nodes:
            print(node.log_tail())
        for desk in desks:
            print(
                f"{desk.username}: ready {desk.ready.is_set()}, {len(desk.connections)} "
                f"connections, errors {desk.errors[-3:]}, {len(desk.wrapped)} wrapped"
            )
        raise
    finally:
        for desk in desks:
            desk.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_nodes(nodes)
