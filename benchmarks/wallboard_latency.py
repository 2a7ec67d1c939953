"""Wallboard refresh latency: from a queue event's request to the tile on a supervisor's board.

Usage (from the repository root)::

    .venv/bin/python benchmarks/wallboard_latency.py                      # SQLite, one node
    .venv/bin/python benchmarks/wallboard_latency.py --db postgresql
    .venv/bin/python benchmarks/wallboard_latency.py --db postgresql --nodes 2
    .venv/bin/python benchmarks/wallboard_latency.py --quick --json

What is measured: the time from just before an event's request is sent until the first board
pushed over ``/api/supervisor/ws`` that shows it has arrived at the supervisor's socket. The
board is rebuilt by the node's supervisor hub (voicebot/api/supervisor_hub.py) from the shared
database after a queue event, at most every 0.2 s, so the figure is the event's write, the bus,
the hub's wait, the build over the whole contact centre, the JSON and the socket. The events,
in turn (``--events`` in all):

- ``enqueue``: ``POST /api/handoffs`` to billing; the board's billing tile shows one more
  caller waiting;
- ``abandon``: ``POST /api/entries/{id}/abandon`` for that caller; one fewer waiting;
- ``agent_state``: the probe agent's desktop (``/api/desktop/ws``) asks for away, then
  available; the board's row for that agent shows the new state.

Between events there is a random pause (``--pause``, up to 0.5 s by default): events that
arrive while the hub waits out its 0.2 s are part of what a supervisor sees, so they are not
lined up just after a build.

The contact centre (``voicebot serve --no-phone``, real uvicorn, on a fresh database: SQLite in
a temporary directory or a new PostgreSQL database, dropped at the end): ``--agents`` agents in
mixed states, written as database rows (no desktops: the board reads the rows): 55 % on a call
(a connected entry each), 15 % in wrap-up, 20 % away, 10 % available with only the care skills;
and ``--waiting`` callers queued through the API in general, billing, technical and sales,
where nobody available can take them, so they wait through the run. One supervisor page is
connected. With ``--nodes 2`` (PostgreSQL: events between nodes go over LISTEN/NOTIFY) the
events are made on node 0 and the board is read from node 1.

Also printed: the board's build time, in this process (``build_wallboard`` on the same
database, what the hub runs) and through ``GET /api/supervisor/wallboard`` (build plus JSON
plus HTTP), and the size of a board.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

# Run as a plain script from a checkout, the package need not be installed.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The nodes and databases are made as the queue tests make theirs (the same helpers).
from tests.queues.packets import make_packet  # noqa: E402
from tests.queues.servers import (  # noqa: E402
    Node,
    create_pg_database,
    drop_pg_database,
    start_node,
    stop_nodes,
    wait_healthy,
)

TOKEN = "bench-" + uuid.uuid4().hex
MEASURED_QUEUE = "billing"
# Where the waiting callers are: queues nobody available has the skills for.
WAITING_QUEUES = ("general", "billing", "technical", "sales")
QUEUE_SKILLS = {
    "general": {"general": 5},
    "billing": {"billing": 5},
    "technical": {"broadband": 5, "mobile": 5},
    "sales": {"sales": 5},
}
FREE_SKILLS = {"care": 5, "retention": 5}  # the available agents: no one waiting needs them
KINDS = ("enqueue", "abandon", "agent_state")


def log(message: str) -> None:
    """Progress goes to stderr, so that ``--json`` leaves stdout to the result."""
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.50) * 1000, 1),
        "p95": round(percentile(values, 0.95) * 1000, 1),
        "max": round(max(values) * 1000, 1),
        "mean": round(sum(values) / len(values) * 1000, 1),
    }


def show(figures: dict[str, float]) -> str:
    return "  ".join(f"{k} {figures[k]:.1f}" for k in ("p50", "p95", "max")) + " ms"


# -- the contact centre, as database rows --------------------------------------------------------


@dataclass
class People:
    supervisor_token: str
    probe_token: str
    probe_id: int
    states: dict[str, int]


async def write_agents(db_url: str, count: int) -> People:
    """``count`` agents in mixed states (busy ones on a connected call each), the probe (care,
    away) and a supervisor; returns the supervisor's and the probe's session tokens."""
    from voicebot.access.sessions import create_session
    from voicebot.access.users import hash_password
    from voicebot.store.db import open_database
    from voicebot.store.models import Agent, AgentStateChange, Call, Handoff, QueueEntry

    db = await open_database(db_url, migrate=False)
    try:
        password_hash = hash_password("bench-password")
        now = dt.datetime.now(dt.UTC)
        busy, wrap, away = round(count * 0.55), round(count * 0.15), round(count * 0.20)
        plan = ["busy"] * busy + ["wrap_up"] * wrap + ["away"] * away
        plan += ["available"] * (count - len(plan))
        agents = []
        for i, state in enumerate(plan):
            queue = WAITING_QUEUES[i % len(WAITING_QUEUES)]
            skills = FREE_SKILLS if state == "available" else QUEUE_SKILLS[queue]
            since = now - dt.timedelta(seconds=random.uniform(5, 900))
            agents.append(
                Agent(
                    username=f"agent{i:03d}",
                    display_name=f"Agent {i:03d}",
                    role="agent",
                    password_hash=password_hash,
                    skills=skills,
                    active=True,
                    state=state,
                    state_since=since,
                    idle_since=since if state == "available" else None,
                    # Far ahead: the node's sweep must not end these wrap-ups during the run.
                    wrap_up_until=now + dt.timedelta(hours=2) if state == "wrap_up" else None,
                    created_at=now,
                )
            )
        probe = Agent(
            username="probe",
            display_name="Probe",
            role="agent",
            password_hash=password_hash,
            skills=FREE_SKILLS,
            active=True,
            state="away",
            state_since=now,
            created_at=now,
        )
        supervisor = Agent(
            username="supervisor",
            display_name="Supervisor",
            role="supervisor",
            password_hash=password_hash,
            skills={},
            active=True,
            state="offline",
            state_since=now,
            created_at=now,
        )
        async with db.transaction() as session:
            session.add_all([*agents, probe, supervisor])
            await session.flush()
            for i, agent in enumerate(agents):
                session.add(AgentStateChange(agent_id=agent.id, state=agent.state, at=now))
                if agent.state not in ("busy", "wrap_up"):
                    continue
                queue = WAITING_QUEUES[i % len(WAITING_QUEUES)]
                packet = make_packet(queue)
                connected = agent.state_since - dt.timedelta(seconds=40)
                session.add(
                    Call(
                        id=packet.call_id,
                        started_at=connected - dt.timedelta(seconds=90),
                        channel="sip",
                        caller_number=packet.caller.number,
                        intent="billing_question",
                        outcome="handoff",
                    )
                )
                await session.flush()
                session.add(
                    Handoff(
                        id=packet.id,
                        call_id=packet.call_id,
                        created_at=connected - dt.timedelta(seconds=30),
                        queue=queue,
                        priority="normal",
                        reason=packet.reason,
                        intent="billing_question",
                        packet=packet.model_dump(mode="json"),
                        reason_kind="asked",
                    )
                )
                await session.flush()
                on_call = agent.state == "busy"
                session.add(
                    QueueEntry(
                        id=uuid.uuid4().hex,
                        handoff_id=packet.id,
                        call_id=packet.call_id,
                        kind="call",
                        queue=queue,
                        original_queue=queue,
                        skills=sorted(QUEUE_SKILLS[queue]),
                        priority=1,
                        enqueued_at=connected - dt.timedelta(seconds=30),
                        status="connected" if on_call else "wrap_up",
                        agent_id=agent.id,
                        connected_at=connected,
                        ended_at=None if on_call else agent.state_since,
                        wrap_up_until=agent.wrap_up_until,
                    )
                )
        supervisor_token = await create_session(db, supervisor.id, 12, "127.0.0.1")
        probe_token = await create_session(db, probe.id, 12, "127.0.0.1")
        states = {s: plan.count(s) for s in ("busy", "wrap_up", "away", "available")}
        return People(supervisor_token, probe_token, probe.id, states)
    finally:
        await db.aclose()


async def queue_waiting(client: httpx.AsyncClient, nodes: list[Node], count: int) -> float:
    """``count`` callers queued through the API over the waiting queues, 20 at a time."""
    limit = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        queue = WAITING_QUEUES[i % len(WAITING_QUEUES)]
        body = make_packet(queue).model_dump(mode="json")
        async with limit:
            response = await client.post(f"{nodes[i % len(nodes)].url}/api/handoffs", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/handoffs: {response.status_code} {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - started)


# -- the supervisor's page -----------------------------------------------------------------------

Check = Callable[[dict[str, Any]], bool]


@dataclass
class Board:
    """The supervisor's socket: every board as it arrives, and the one an event waits for."""

    ws: ClientConnection
    latest: dict[str, Any] | None = None
    boards: int = 0
    sizes: list[int] = field(default_factory=list)
    waiting_for: tuple[float, Check, asyncio.Future[float]] | None = None
    # Boards that arrived after an event was sent but did not show it yet (built before the
    # event's commit, or from figures read before it), for the event being waited for.
    stale: int = 0
    first: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)

    async def read(self) -> None:
        async for raw in self.ws:
            arrived = time.perf_counter()
            message = json.loads(raw)
            if message.get("type") != "wallboard":
                if message.get("type") == "error":
                    self.errors.append(str(message))
                continue
            self.boards += 1
            self.sizes.append(len(raw))
            self.latest = message
            self.first.set()
            if self.waiting_for is not None:
                sent, check, future = self.waiting_for
                if not future.done():
                    if check(message):
                        future.set_result(arrived - sent)
                    else:
                        self.stale += 1
        self.errors.append(f"the supervisor's socket closed: {self.ws.close_code}")

    def expect(self, sent: float, check: Check) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting_for = (sent, check, future)
        self.stale = 0
        return future


def waiting_in(board: dict[str, Any], queue: str) -> int:
    for row in board["queues"]:
        if row["name"] == queue:
            return int(row["waiting"])
    return 0


def agent_state(board: dict[str, Any], agent_id: int) -> str | None:
    for row in board["agents"]:
        if row["id"] == agent_id:
            return str(row["state"])
    return None


def page(url: str, token: str) -> Any:
    return connect(
        url,
        additional_headers={"Cookie": f"voicebot_session={token}"},
        open_timeout=60,
        max_size=None,
        proxy=None,  # loopback: never through a proxy from the environment
    )


# -- the events ----------------------------------------------------------------------------------


@dataclass
class Events:
    client: httpx.AsyncClient
    node: Node
    board: Board
    desk: ClientConnection
    probe_id: int
    entry_id: str | None = None
    probe_state: str = "away"

    async def make(self, kind: str) -> tuple[float, float]:
        """One event; seconds to the board that shows it, and to the request's answer."""
        assert self.board.latest is not None
        before = waiting_in(self.board.latest, MEASURED_QUEUE)
        if kind == "enqueue":
            body = json.dumps(make_packet(MEASURED_QUEUE).model_dump(mode="json")).encode()
            check: Check = lambda b: waiting_in(b, MEASURED_QUEUE) == before + 1  # noqa: E731
            url = f"{self.node.url}/api/handoffs"
        elif kind == "abandon":
            assert self.entry_id is not None
            body = b""
            check = lambda b: waiting_in(b, MEASURED_QUEUE) == before - 1  # noqa: E731
            url = f"{self.node.url}/api/entries/{self.entry_id}/abandon"
        else:
            wanted = "available" if self.probe_state == "away" else "away"
            sent = time.perf_counter()
            shown = self.board.expect(sent, lambda b: agent_state(b, self.probe_id) == wanted)
            await self.desk.send(json.dumps({"type": "state", "state": wanted}))
            latency = await asyncio.wait_for(shown, timeout=30)
            self.probe_state = wanted
            return latency, 0.0
        sent = time.perf_counter()
        shown = self.board.expect(sent, check)
        response = await self.client.post(
            url, content=body, headers={"Content-Type": "application/json"}
        )
        answered = time.perf_counter() - sent
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST {url}: {response.status_code} {response.text}")
        if kind == "enqueue":
            self.entry_id = response.json()["entry_id"]
        latency = await asyncio.wait_for(shown, timeout=30)
        return latency, answered


async def read_desk(ws: ClientConnection, errors: list[str]) -> None:
    """The probe's desktop must be read (its messages queue up otherwise); errors are kept."""
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "error":
            errors.append(str(message))


# -- build time ----------------------------------------------------------------------------------


async def build_times(db_url: str, n: int) -> list[float]:
    """``build_wallboard`` in this process on the same database, as the hub calls it."""
    from zoneinfo import ZoneInfo

    from voicebot.analytics.wallboard import build_wallboard
    from voicebot.flows.loader import load_bot
    from voicebot.queues.events import LocalBus
    from voicebot.queues.service import QueueService
    from voicebot.store.db import open_database

    definition = load_bot(REPO).definition
    tz = ZoneInfo(definition.bot.hours.timezone) if definition.bot.hours else dt.UTC
    db = await open_database(db_url, migrate=False)
    try:
        service = QueueService(db, LocalBus(), definition.queues)
        await build_wallboard(service, tz=tz)  # warm-up: connections, statement caches
        times = []
        for _ in range(n):
            started = time.perf_counter()
            await build_wallboard(service, tz=tz)
            times.append(time.perf_counter() - started)
        return times
    finally:
        await db.aclose()


async def rest_times(client: httpx.AsyncClient, node: Node, n: int) -> list[float]:
    times = []
    for _ in range(n + 1):
        started = time.perf_counter()
        response = await client.get(f"{node.url}/api/supervisor/wallboard")
        response.raise_for_status()
        times.append(time.perf_counter() - started)
    return times[1:]


# -- the run -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="wallboard-"))
    if args.db == "postgresql":
        db_url = await create_pg_database(admin=args.pg_admin, prefix="vb_bench_")
    else:
        db_url = f"sqlite+aiosqlite:///{work / 'voicebot.db'}"
    nodes: list[Node] = []
    tasks: list[asyncio.Task[None]] = []
    sockets: list[ClientConnection] = []
    try:
        # Each request logged at INFO would be part of the measurement; production logs less.
        nodes = [
            start_node(i, db_url, work, token=TOKEN, offer_timeout=60, log_level="WARNING")
            for i in range(args.nodes)
        ]
        await asyncio.gather(*(wait_healthy(node) for node in nodes))
        log(f"nodes up: {', '.join(f'{n.url} (pid {n.process.pid})' for n in nodes)}")
        people = await write_agents(db_url, args.agents)
        log(f"{args.agents} agents written: {people.states}")
        source, reader_node = nodes[0], nodes[-1]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=60, headers=auth, trust_env=False) as client:
            rate = await queue_waiting(client, nodes, args.waiting)
            log(f"{args.waiting} callers queued ({rate:.0f} handoffs/s)")

            ws_base = f"ws://127.0.0.1:{reader_node.port}"
            board_ws = await page(f"{ws_base}/api/supervisor/ws", people.supervisor_token)
            sockets.append(board_ws)
            board = Board(board_ws)
            tasks.append(asyncio.create_task(board.read()))
            desk = await page(f"ws://127.0.0.1:{source.port}/api/desktop/ws", people.probe_token)
            sockets.append(desk)
            desk_errors: list[str] = []
            tasks.append(asyncio.create_task(read_desk(desk, desk_errors)))
            await asyncio.wait_for(board.first.wait(), timeout=30)
            # The queued callers are all on the board before the first measured event.
            deadline = time.monotonic() + 30
            while True:
                assert board.latest is not None
                shown = sum(waiting_in(board.latest, q) for q in WAITING_QUEUES)
                if shown == args.waiting:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the board shows {shown} waiting, not {args.waiting}")
                await board_ws.send(json.dumps({"type": "refresh"}))
                await asyncio.sleep(0.3)
            board_agents = len(board.latest["agents"])

            events = Events(client, source, board, desk, people.probe_id)
            # One cycle throughout (an abandon needs the caller the enqueue before it made);
            # the first ``--warmup`` events are not counted.
            results: list[tuple[str, float, float, int]] = []
            boards_before, started = board.boards, time.perf_counter()
            for i in range(args.warmup + args.events):
                if i == args.warmup:
                    log(f"measuring {args.events} events")
                    boards_before, started = board.boards, time.perf_counter()
                kind = KINDS[i % len(KINDS)]
                latency, answered = await events.make(kind)
                if i >= args.warmup:
                    results.append((kind, latency, answered, board.stale))
                await asyncio.sleep(random.uniform(0, args.pause))
            elapsed = time.perf_counter() - started
            boards = board.boards - boards_before
            if board.errors or desk_errors:
                raise RuntimeError(f"errors on the sockets: {(board.errors + desk_errors)[:3]}")
            assert board.latest is not None
            still_waiting = sum(waiting_in(board.latest, q) for q in WAITING_QUEUES)

            log(f"timing the board's build ({args.builds} times)")
            rest = await rest_times(client, reader_node, args.builds)
        built = await build_times(db_url, args.builds)
        result: dict[str, Any] = {
            "db": args.db,
            "nodes": args.nodes,
            "events_node": 0,
            "board_node": reader_node.index,
            "agents": args.agents,
            "agent_states": people.states,
            "agents_on_board": board_agents,
            "waiting": args.waiting,
            "waiting_at_end": still_waiting,
            "events": args.events,
            "pause_max_s": args.pause,
            "latency_ms": summary_ms([r[1] for r in results]),
            "by_kind_ms": {k: summary_ms([r[1] for r in results if r[0] == k]) for k in KINDS},
            "request_answered_ms": summary_ms([r[2] for r in results if r[0] != "agent_state"]),
            # Events whose first board(s) after the request did not show them yet, and among
            # the events over a second, how many such stale boards they saw first.
            "events_after_stale_board": sum(1 for r in results if r[3]),
            "slow_events": [
                {"kind": r[0], "ms": round(r[1] * 1000), "stale_boards_first": r[3]}
                for r in results
                if r[1] > 1.0
            ],
            "build_ms": summary_ms(built),
            "rest_board_ms": summary_ms(rest),
            "board_bytes": round(sum(board.sizes) / len(board.sizes)),
            "boards_per_second": round(boards / elapsed, 1),
            "load_average_before": load_before,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        return result
    except BaseException:
        for node in nodes:
            log(node.log_tail())
        raise
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_nodes(nodes)
        if args.db == "postgresql":
            await drop_pg_database(db_url, admin=args.pg_admin)
        shutil.rmtree(work, ignore_errors=True)


def report(result: dict[str, Any]) -> str:
    where = (
        f"events on node 0, board read from node {result['board_node']}"
        if result["nodes"] > 1
        else "one node"
    )
    states = ", ".join(f"{n} {s}" for s, n in result["agent_states"].items())
    lines = [
        f"wallboard refresh latency: {result['events']} events on {result['db']}, {where}",
        f"  {result['agents']} agents ({states}; {result['agents_on_board']} on the board with "
        f"the probe), {result['waiting']} callers waiting ({result['waiting_at_end']} at the end)",
        f"  a board is {result['board_bytes'] / 1000:.0f} kB; {result['boards_per_second']} "
        f"boards/s while measuring; pause between events up to {result['pause_max_s']} s; "
        f"load average {result['load_average_before']} before, {result['load_average']} after",
        f"  event request -> board on the socket: {show(result['latency_ms'])}",
    ]
    for kind, figures in result["by_kind_ms"].items():
        if figures:
            lines.append(f"    {kind:<12} {show(figures)}")
    lines += [
        f"  event request answered:             {show(result['request_answered_ms'])}",
        f"  events whose first board after the request did not show them yet: "
        f"{result['events_after_stale_board']}; over 1 s: {len(result['slow_events'])} "
        f"{result['slow_events'][:5]}",
        f"  board build (build_wallboard):      {show(result['build_ms'])}",
        f"  GET /api/supervisor/wallboard:      {show(result['rest_board_ms'])}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200, help="agents in mixed states")
    parser.add_argument("--waiting", type=int, default=1000, help="callers waiting")
    parser.add_argument("--events", type=int, default=300, help="events measured")
    parser.add_argument("--warmup", type=int, default=15, help="events before measuring")
    parser.add_argument("--builds", type=int, default=50, help="board builds timed")
    parser.add_argument(
        "--pause", type=float, default=0.5, help="a random pause of up to this many s between"
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1)
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get("VOICEBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to connect to when creating and dropping the bench's own",
    )
    parser.add_argument("--quick", action="store_true", help="40 agents, 100 waiting, 30 events")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.waiting, args.events, args.warmup, args.builds = 40, 100, 30, 6, 10
    if args.agents < 10:
        parser.error("--agents must be at least 10 (every state is represented)")
    if args.db == "sqlite" and args.nodes > 1:
        parser.error("several nodes need PostgreSQL (SQLite's events stay in one process)")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
