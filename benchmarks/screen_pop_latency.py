"""Screen-pop latency: from a handoff reaching the API to the offer on an agent's desktop.

Usage (from the repository root)::

    .venv/bin/python benchmarks/screen_pop_latency.py                  # PostgreSQL, one node
    .venv/bin/python benchmarks/screen_pop_latency.py --db sqlite
    .venv/bin/python benchmarks/screen_pop_latency.py --nodes 2 --json
    .venv/bin/python benchmarks/screen_pop_latency.py --profile /tmp/node0.svg   # py-spy

The goal: p95 under 100 ms with 200 agents signed in and 1,000 calls queued.

What runs: ``voicebot serve --no-phone`` (``--nodes`` processes, real uvicorn) on a fresh
database (a new PostgreSQL database, dropped at the end; or SQLite in a temporary directory),
with no timed wrap-up. ``--agents`` desktops are signed in and keep their WebSocket open, so
every one of them receives the live queue view (up to four times a second) and its own state
changes: that fan-out is part of the load being measured.

The scenario is a busy contact centre. All agents but one have only the skill ``billing`` and
are busy: each accepted a billing call and stays connected. Behind them ``--queued`` more
billing calls wait (nobody is free to take them), so the queue view, the figures and every
routing round run over a real backlog. The remaining agent, the probe, has only the skill
``general`` and is available. Each measured pop is a handoff to ``general``: the probe is the
only agent who can take it, so it lands on the probe and nowhere else. The latency is from just
before ``POST /api/handoffs`` is sent until the ``offer`` message for that handoff id has arrived
on the probe's WebSocket. The probe then accepts, ends and wraps up the call and sends a
``ping``: the desktop handles its messages in order, so the ``pong`` means the probe is
available again in the database before the next pop is sent (pops are one at a time).
With ``--nodes 2`` the agents are spread over both nodes, the probe is on node 0 and the pops
alternate between the nodes, so half of them cross from one node to the other through the
event bus (reported separately).

The other desktops run in a process of their own: 200 WebSockets busy parsing queue views in
the measuring process would delay the probe's messages and be counted as server latency.

Set-up shortcuts that do not touch what is measured: agents are written straight into the
database (one password hash shared by all) and signed in with ``create_session``, the function
``POST /api/auth/login`` uses; signing in 200 agents through the API costs two argon2 hashes
each (about 0.15 s apiece here) and only makes set-up slow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
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
GOAL_P95_MS = 100.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
        "p99": round(percentile(values, 0.99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
        "mean": round(sum(values) / len(values) * 1000, 1),
    }


def packet(queue: str) -> dict[str, Any]:
    """A handoff packet as a worker would post it (a short call with a two-line transcript)."""
    return make_packet(queue).model_dump(mode="json")


# -- the servers' CPU (the nodes themselves: tests/queues/servers.py) --------------------------


def cpu_seconds(node: Node) -> float:
    """The node's CPU seconds so far: what it spends on the measured pops, by difference."""
    return process_cpu(node.process.pid)


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def database_cpu(admin: str, url: str) -> float:
    """CPU seconds so far of the PostgreSQL backends serving the benchmark's database."""
    import asyncpg

    connection = await asyncpg.connect(admin)
    try:
        pids = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", url.rsplit("/", 1)[1]
        )
    finally:
        await connection.close()
    return sum(process_cpu(row["pid"]) for row in pids)


# -- agents ------------------------------------------------------------------------------------


async def sign_in_agents(db_url: str, crowd: int) -> tuple[str, list[str]]:
    """The probe (general) and ``crowd`` billing agents; returns their session tokens."""
    from voicebot.access.sessions import create_session
    from voicebot.access.users import hash_password
    from voicebot.store.db import open_database
    from voicebot.store.models import Agent

    db = await open_database(db_url, migrate=False)
    try:
        password_hash = hash_password("bench-password")
        now = dt.datetime.now(dt.UTC)
        names = {"probe": {"general": 5}} | {f"agent{i:03d}": {"billing": 5} for i in range(crowd)}
        agents = [
            Agent(
                username=name,
                display_name=name,
                role="agent",
                password_hash=password_hash,
                skills=skills,
                active=True,
                state="offline",
                state_since=now,
                created_at=now,
            )
            for name, skills in names.items()
        ]
        async with db.transaction() as session:
            session.add_all(agents)
        tokens = [await create_session(db, agent.id, 12, "127.0.0.1") for agent in agents]
    finally:
        await db.aclose()
    return tokens[0], tokens[1:]


def desktop(url: str, token: str) -> Any:
    return connect(
        url,
        additional_headers={"Cookie": f"voicebot_session={token}"},
        open_timeout=60,
        max_size=None,
        proxy=None,  # loopback: never through a proxy from the environment
    )


# -- the other agents' desktops, in a process of their own --------------------------------------


def crowd_main(control: Connection, desks: list[tuple[str, str]]) -> None:
    """Entry point of the crowd process: ``desks`` are (WebSocket URL, session token)."""
    asyncio.run(_crowd(control, desks))


async def _crowd(control: Connection, desks: list[tuple[str, str]]) -> None:
    counts: Counter[str] = Counter()
    available: set[int] = set()
    errors: list[str] = []
    sockets: list[ClientConnection] = []

    # A few at a time: each desktop that opens reads its queue view from the database.
    opening = asyncio.Semaphore(20)

    async def run(i: int, url: str, token: str) -> None:
        try:
            async with opening:
                ws = await desktop(url, token)
            sockets.append(ws)
            async with ws:
                async for raw in ws:
                    counts["bytes"] += len(raw)
                    message = json.loads(raw)
                    kind = message.get("type")
                    counts[kind] += 1
                    if kind == "hello":
                        await ws.send(json.dumps({"type": "state", "state": "available"}))
                    elif kind == "state" and message.get("state") == "available":
                        available.add(i)
                    elif kind == "offer":
                        entry_id = message["assignment"]["entry_id"]
                        await ws.send(json.dumps({"type": "accept", "entry_id": entry_id}))
                    elif kind == "error":
                        errors.append(str(message))
        except Exception as exc:
            errors.append(repr(exc))

    tasks = [asyncio.create_task(run(i, url, token)) for i, (url, token) in enumerate(desks)]
    while True:
        command = await asyncio.to_thread(control.recv)
        status = {
            "desktops": len(sockets),
            "available": len(available),
            "counts": dict(counts),
            "errors": errors[:5],
        }
        if command == "stop":
            for ws in sockets:
                with contextlib.suppress(Exception):
                    await ws.close()
            await asyncio.gather(*tasks, return_exceptions=True)
            control.send(status)
            return
        control.send(status)


class Crowd:
    def __init__(self, desks: list[tuple[str, str]]) -> None:
        # spawn: a fresh interpreter, not a fork of this one's event loop and sockets
        context = multiprocessing.get_context("spawn")
        self.control, child = context.Pipe()
        self.process = context.Process(target=crowd_main, args=(child, desks), daemon=True)
        self.process.start()

    async def status(self, command: str = "status") -> dict[str, Any]:
        self.control.send(command)
        reply: dict[str, Any] = await asyncio.wait_for(
            asyncio.to_thread(self.control.recv), timeout=60
        )
        return reply

    async def wait_for(self, what: str, check: Any, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            status = await self.status()
            if status["errors"]:
                raise RuntimeError(f"the crowd's desktops had errors: {status['errors']}")
            if check(status):
                return status
            if time.monotonic() > deadline or not self.process.is_alive():
                raise RuntimeError(f"timed out waiting for {what}: {status}")
            await asyncio.sleep(0.2)

    async def stop(self) -> dict[str, Any]:
        status: dict[str, Any] = {}
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                status = await self.status("stop")
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        return status


# -- the probe ---------------------------------------------------------------------------------


@dataclass
class Probe:
    """The one available agent: timestamps each offer as it arrives on its WebSocket."""

    ws: ClientConnection
    waiting: dict[str, asyncio.Future[tuple[float, str]]] = field(default_factory=dict)
    pong: asyncio.Future[None] | None = None
    errors: list[Any] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        async for raw in self.ws:
            arrived = time.perf_counter()
            message = json.loads(raw)
            kind = message.get("type")
            self.counts[kind] += 1
            if kind == "offer":
                assignment = message["assignment"]
                future = self.waiting.pop(assignment["packet"]["id"], None)
                if future is not None and not future.done():
                    future.set_result((arrived, assignment["entry_id"]))
                else:
                    self.errors.append(f"unexpected offer {assignment['entry_id']}")
            elif kind == "pong" and self.pong is not None and not self.pong.done():
                self.pong.set_result(None)
            elif kind == "state" and message.get("state") == "available":
                self.ready.set()
            elif kind in ("error", "offer_withdrawn", "replaced"):
                self.errors.append(message)
        self.errors.append(f"the probe's desktop closed: {self.ws.close_code}")

    async def settle(self) -> None:
        """Wait until everything sent so far was handled by the server (in order)."""
        self.pong = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"type": "ping"}))
        await asyncio.wait_for(self.pong, timeout=30)

    async def handle(self, entry_id: str) -> None:
        """Accept, end and wrap up the call: the probe is free again afterwards."""
        for message in (
            {"type": "accept", "entry_id": entry_id},
            {"type": "end", "entry_id": entry_id},
            {"type": "wrap_up", "entry_id": entry_id, "code": "resolved", "notes": ""},
        ):
            await self.ws.send(json.dumps(message))
        await self.settle()
        if self.errors:
            raise RuntimeError(f"the probe's desktop reported: {self.errors[:3]}")


async def pop(client: httpx.AsyncClient, node: Node, probe: Probe) -> tuple[float, float]:
    """One screen pop: seconds to the offer on the probe's desktop, and to the POST's answer."""
    body = json.dumps(packet("general")).encode()
    handoff_id = json.loads(body)["id"]
    future: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
    probe.waiting[handoff_id] = future
    sent = time.perf_counter()

    async def post() -> float:
        response = await client.post(
            f"{node.url}/api/handoffs",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        answered = time.perf_counter()
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/handoffs: {response.status_code} {response.text}")
        return answered

    answered, (arrived, entry_id) = await asyncio.gather(post(), asyncio.wait_for(future, 30))
    await probe.handle(entry_id)
    return arrived - sent, answered - sent


# -- the run -----------------------------------------------------------------------------------


async def post_many(client: httpx.AsyncClient, nodes: list[Node], queue: str, n: int) -> float:
    """``n`` handoffs to ``queue``, 20 at a time over the nodes; returns handoffs per second."""
    limit = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with limit:
            response = await client.post(
                f"{nodes[i % len(nodes)].url}/api/handoffs", json=packet(queue)
            )
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/handoffs: {response.status_code} {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def arrive(client: httpx.AsyncClient, nodes: list[Node], queue: str, rate: float) -> None:
    """Calls keep arriving in ``queue`` at ``rate`` a second (until cancelled): each changes
    that queue's view, which then goes out to every desktop that shows it."""
    i = 0
    while True:
        await asyncio.sleep(random.expovariate(rate))
        response = await client.post(
            f"{nodes[i % len(nodes)].url}/api/handoffs", json=packet(queue)
        )
        response.raise_for_status()
        i += 1


async def waiting_in(client: httpx.AsyncClient, node: Node, queue: str) -> int:
    response = await client.get(f"{node.url}/api/queues/{queue}")
    response.raise_for_status()
    return int(response.json()["waiting"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # Other work on the machine shows up in the figures: the load before we start says so.
    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="screen-pop-"))
    if args.db == "postgresql":
        db_url = await create_pg_database(admin=args.pg_admin, prefix="vb_bench_")
    else:
        db_url = f"sqlite+aiosqlite:///{work / 'voicebot.db'}"
    nodes: list[Node] = []
    crowd: Crowd | None = None
    probe_ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    profiler: subprocess.Popen[bytes] | None = None
    try:
        # Each request logged at INFO would be part of the measurement; production logs less.
        nodes = [
            start_node(i, db_url, work, token=TOKEN, offer_timeout=60, log_level="WARNING")
            for i in range(args.nodes)
        ]
        await asyncio.gather(*(wait_healthy(node) for node in nodes))
        log(f"nodes up: {', '.join(f'{n.url} (pid {n.process.pid})' for n in nodes)}")

        crowd_size = args.agents - 1
        probe_token, tokens = await sign_in_agents(db_url, crowd_size)
        crowd = Crowd([(nodes[i % len(nodes)].ws_url, t) for i, t in enumerate(tokens)])
        await crowd.wait_for(
            f"{crowd_size} desktops available", lambda s: s["available"] == crowd_size, 120
        )
        log(f"{crowd_size} billing agents signed in with their desktops open")

        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=60, headers=auth, trust_env=False) as client:
            # Every billing agent takes a call and stays on it; then the backlog queues up.
            await post_many(client, nodes, "billing", crowd_size)
            await crowd.wait_for(
                f"{crowd_size} calls connected",
                lambda s: s["counts"].get("connected", 0) == crowd_size,
                120,
            )
            rate = await post_many(client, nodes, "billing", args.queued)
            # The figures are reused for half a second (voicebot/queues/service.py): wait for
            # a fresh count rather than read a stale one.
            deadline = time.monotonic() + 5
            waiting = await waiting_in(client, nodes[0], "billing")
            while waiting != args.queued and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                waiting = await waiting_in(client, nodes[0], "billing")
            if waiting != args.queued:
                raise RuntimeError(f"{waiting} calls wait in billing, not {args.queued}")
            log(f"{args.queued} billing calls queued ({rate:.0f} handoffs/s while queueing)")

            probe_ws = await desktop(nodes[0].ws_url, probe_token)
            probe = Probe(probe_ws)
            reader = asyncio.create_task(probe.read())
            await probe_ws.send(json.dumps({"type": "state", "state": "available"}))
            await asyncio.wait_for(probe.ready.wait(), timeout=30)
            await probe.settle()

            for i in range(args.warmup):
                await pop(client, nodes[i % len(nodes)], probe)
            if args.profile:
                profiler = start_profiler(nodes[0].process.pid, args.profile)
            log(f"measuring {args.pops} pops")
            churn = (
                asyncio.create_task(arrive(client, nodes, "billing", args.churn))
                if args.churn
                else None
            )
            before = await crowd.status()
            cpu_before = [cpu_seconds(node) for node in nodes]
            db_before = await database_cpu(args.pg_admin, db_url) if args.db != "sqlite" else 0
            started = time.perf_counter()
            results: list[tuple[int, float, float]] = []
            for i in range(args.pops):
                node = nodes[i % len(nodes)]
                latency, answered = await pop(client, node, probe)
                results.append((node.index, latency, answered))
                if args.interval:
                    await asyncio.sleep(random.uniform(0, args.interval))
            elapsed = time.perf_counter() - started
            if churn is not None:
                churn.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await churn
            cpu = [cpu_seconds(node) - b for node, b in zip(nodes, cpu_before, strict=True)]
            db_cpu = (
                await database_cpu(args.pg_admin, db_url) - db_before if args.db != "sqlite" else 0
            )
            after = await crowd.status()
            if profiler is not None:
                stop_profiler(profiler)
                profiler = None
            still_waiting = await waiting_in(client, nodes[0], "billing")

        views = after["counts"].get("queues", 0) - before["counts"].get("queues", 0)
        received = after["counts"].get("bytes", 0) - before["counts"].get("bytes", 0)
        result: dict[str, Any] = {
            "db": args.db,
            "nodes": args.nodes,
            "agents": args.agents,
            "queued": args.queued,
            "pops": args.pops,
            "churn_per_second": args.churn,
            "screen_pop_ms": summary_ms([r[1] for r in results]),
            "post_answer_ms": summary_ms([r[2] for r in results]),
            "goal_p95_ms": GOAL_P95_MS,
            "in_flight": {
                "desktops_open": after["desktops"] + 1,
                "agents_busy_on_calls": crowd_size,
                "calls_waiting": still_waiting,
                "pops_per_second": round(args.pops / elapsed, 1),
                "queue_views_per_second": round(views / elapsed),
                "bytes_to_desktops_per_second": round(received / elapsed),
                "server_cpu_percent": [round(c / elapsed * 100) for c in cpu],
                "database_cpu_percent": round(db_cpu / elapsed * 100)
                if args.db != "sqlite"
                else None,
                "load_average_before": load_before,
                "load_average": [round(x, 2) for x in os.getloadavg()],
            },
        }
        if args.nodes > 1:
            result["same_node_ms"] = summary_ms([r[1] for r in results if r[0] == 0])
            result["cross_node_ms"] = summary_ms([r[1] for r in results if r[0] != 0])
        if crowd is not None:
            await crowd.stop()
            crowd = None
        return result
    except BaseException:
        for node in nodes:
            log(node.log_tail())
        raise
    finally:
        if probe_ws is not None:
            await probe_ws.close()
        if reader is not None:
            reader.cancel()
        if crowd is not None:
            await crowd.stop()
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
        stop_nodes(nodes)
        if args.db == "postgresql":
            await drop_pg_database(db_url, admin=args.pg_admin)
        shutil.rmtree(work, ignore_errors=True)


def report(result: dict[str, Any]) -> str:
    pops = result["screen_pop_ms"]
    flight = result["in_flight"]
    lines = [
        f"screen pop latency: {result['pops']} pops on {result['db']}, {result['nodes']} node(s)",
        f"  in flight: {flight['desktops_open']} desktops open "
        f"({flight['agents_busy_on_calls']} agents busy on calls, 1 probe), "
        f"{flight['calls_waiting']} calls waiting at the end; "
        f"{result['churn_per_second']} billing calls arriving per second",
        f"  queue views to the desktops: {flight['queue_views_per_second']}/s "
        f"({flight['bytes_to_desktops_per_second'] / 1000:.0f} kB/s); "
        f"{flight['pops_per_second']} pops/s",
        f"  CPU: server(s) {flight['server_cpu_percent']} %"
        + (
            f", PostgreSQL {flight['database_cpu_percent']} %"
            if flight["database_cpu_percent"] is not None
            else ""
        )
        + f"; load average {flight['load_average_before']} before, "
        f"{flight['load_average']} after",
        "  POST /api/handoffs -> offer on the desktop: "
        + "  ".join(f"{k} {pops[k]:.1f}" for k in ("p50", "p95", "p99", "max"))
        + " ms",
        "  POST answered:                             "
        + "  ".join(f"{k} {result['post_answer_ms'][k]:.1f}" for k in ("p50", "p95", "p99", "max"))
        + " ms",
    ]
    for key, label in (("same_node_ms", "same node"), ("cross_node_ms", "cross node")):
        if key in result:
            lines.append(
                f"  {label}: "
                + "  ".join(f"{k} {result[key][k]:.1f}" for k in ("p50", "p95", "p99", "max"))
                + " ms"
            )
    met = pops["p95"] < result["goal_p95_ms"]
    lines.append(f"  goal p95 < {result['goal_p95_ms']:.0f} ms: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def py_spy() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def start_profiler(pid: int, out: str) -> subprocess.Popen[bytes]:
    # A flame graph (.svg), or collapsed stacks (.txt) to grep and sum up.
    kind = "raw" if out.endswith(".txt") else "flamegraph"
    command = [py_spy(), "record", "--rate", "250", "-f", kind, "-o", out, "--pid", str(pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
    try:
        profiler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200, help="desktops signed in (with probe)")
    parser.add_argument("--queued", type=int, default=1000, help="calls waiting in the queue")
    parser.add_argument("--pops", type=int, default=300, help="screen pops measured")
    parser.add_argument("--warmup", type=int, default=20, help="pops before measuring")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1)
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="a random pause of up to this many seconds between pops (default none)",
    )
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get("VOICEBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to connect to when creating and dropping the bench's own",
    )
    parser.add_argument(
        "--profile", help="record node 0 with py-spy during the pops: a .svg flame graph or .txt"
    )
    parser.add_argument(
        "--churn",
        type=float,
        default=5.0,
        help="billing calls arriving per second while measuring (0: none); each one changes "
        "the queue view that all the billing agents' desktops then receive",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.agents < 2:
        parser.error("--agents must be at least 2 (the probe and one other)")
    if args.db == "sqlite" and args.nodes > 1:
        parser.error("several nodes need PostgreSQL (SQLite's events stay in one process)")
    if args.profile and not Path(py_spy()).exists():
        parser.error("--profile needs py-spy (.venv/bin/pip install py-spy)")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
