"""Real API nodes (``voicebot serve --no-phone`` subprocesses) and throwaway PostgreSQL databases.

Shared by the queue tests (tests/queues/conftest.py, test_multi_node.py) and the screen-pop
benchmark (benchmarks/screen_pop_latency.py), so that the test and the benchmark start their
nodes the same way: a node that differs between the two would make their figures and failures
hard to compare.

PostgreSQL is the machine's server (127.0.0.1:5432, trust auth; `.ci/run` starts it), reached
through ``PG_ADMIN`` (``VOICEBOT_TEST_PG``): each database made here is created from there and
dropped afterwards, so runs never see each other's rows and a failed one leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent.parent
PG_ADMIN = os.environ.get("VOICEBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A port nothing listens on right now (another process may still take it before we do)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_processes(processes: Iterable[subprocess.Popen[bytes]], timeout: float = 15) -> None:
    """Terminate them all first (they shut down side by side), then wait; kill what hangs."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- API nodes ---------------------------------------------------------------------------------


@dataclass
class Node:
    """One ``voicebot serve --no-phone`` process, its port and its log."""

    index: int
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The agent desktop's WebSocket."""
        return f"ws://127.0.0.1:{self.port}/api/desktop/ws"

    def log_tail(self) -> str:
        """Its warnings, errors and tracebacks, then its last lines (INFO is mostly requests)."""
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        problems = [line for line in lines if " INFO " not in line[:40]]
        return (
            f"\n--- node {self.index} (port {self.port}): warnings and errors ---\n"
            + "\n".join(problems[-150:])
            + f"\n--- node {self.index}: last lines ---\n"
            + "\n".join(lines[-25:])
        )


def start_node(
    index: int,
    db_url: str,
    work: Path,
    *,
    token: str,
    offer_timeout: float,
    log_level: str,
    env: dict[str, str] | None = None,
) -> Node:
    """Start node ``index`` on ``db_url``, in ``work``/node<index> (its data and ``serve.log``).

    There is no timed wrap-up (an agent is free again as soon as they submit it), and the API
    takes ``token``. It does not wait for the node to answer: see ``wait_healthy``. ``env`` is
    added to its environment last (a test's own Redis, say).
    """
    data = work / f"node{index}"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    environment = {
        **os.environ,
        "VOICEBOT_DATABASE_URL": db_url,
        "VOICEBOT_DATA_DIR": str(data / "data"),
        "VOICEBOT_API_TOKEN": token,
        "VOICEBOT_WRAP_UP_SECONDS": "0",
        "VOICEBOT_OFFER_TIMEOUT": f"{offer_timeout:g}",
        "VOICEBOT_LOG_LEVEL": log_level,
    }
    # Events between nodes go over PostgreSQL (in process on SQLite), which is what the test
    # and the benchmark are about, never over a Redis that happens to be set in the env.
    environment.pop("VOICEBOT_REDIS_URL", None)
    environment.update(env or {})
    log_path = data / "serve.log"
    command = [sys.executable, "-m", "voicebot", "serve", "--no-phone", "--bot", str(REPO)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        # cwd is the node's own directory, so no .env from the checkout leaks in.
        process = subprocess.Popen(
            command, cwd=data, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    return Node(index, process, port, log_path)


async def wait_healthy(node: Node, within: float = 120) -> None:
    """Wait until the node answers ``/health``.

    RuntimeError if it exits first (see its ``log_tail``) or takes longer than ``within`` s.
    """
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        while node.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{node.url}/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node.index} did not answer /health in {within:g} s")
            await asyncio.sleep(0.2)
    raise RuntimeError(f"node {node.index} exited with {node.process.returncode}")


def stop_nodes(nodes: list[Node]) -> None:
    stop_processes(node.process for node in nodes)


# -- PostgreSQL databases ----------------------------------------------------------------------


async def create_pg_database(*, admin: str = PG_ADMIN, prefix: str = "vb_test_") -> str:
    """A new, empty database on ``admin``'s server; returns its SQLAlchemy (asyncpg) URL."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name


async def drop_pg_database(url: str, *, admin: str = PG_ADMIN) -> None:
    """Drop the database at ``url``, even with connections still open to it."""
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def pg_database(*, admin: str = PG_ADMIN, prefix: str = "vb_test_") -> AsyncIterator[str]:
    """A new database's URL for the ``with`` block, dropped after it however it ends."""
    url = await create_pg_database(admin=admin, prefix=prefix)
    try:
        yield url
    finally:
        await drop_pg_database(url, admin=admin)


# -- agents' desktops that survive a node or the database going away --------------------------


@dataclass
class ResilientDesk:
    """An agent's desktop client that takes every call it is offered, and reconnects.

    It accepts each offer, ends the call at once and submits its wrap-up. When its WebSocket
    drops (its node was killed, the database restarted) it connects again, to the next node in
    its list that answers, and carries on from what the server's ``hello`` says it holds (an
    offer, a call, a wrap-up), as the agent desktop page does. Set away (an offer it could not
    answer while it was disconnected), it makes itself available again, as an agent would, and
    an action the server could not do ("try again") is sent again.
    """

    username: str
    cookie: str
    urls: list[str]  # WebSocket URLs, preferred first
    offers: list[str] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    wrapped: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)  # the URL of each connection made
    resumed: list[str] = field(default_factory=list)  # what a ``hello`` handed back
    server_errors: list[str] = field(default_factory=list)  # ``error`` messages received
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    reconnect_delay: float = 0.2  # seconds after a drop (a browser backs off for longer)

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        attempt = 0
        while not self.stopping:
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            try:
                async with connect(
                    url,
                    additional_headers={"Cookie": f"voicebot_session={self.cookie}"},
                    open_timeout=10,
                    proxy=None,  # loopback: never through a proxy from the environment
                ) as ws:
                    self.connections.append(url)
                    attempt -= 1  # this node answers: come back to it first after a drop
                    await self._serve(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, reset, closed: the node or the database is away
                code = getattr(getattr(exc, "rcvd", None), "code", "")
                self.errors.append(f"{url}: {type(exc).__name__} {code}".strip())
            if not self.stopping:
                await asyncio.sleep(self.reconnect_delay)

    async def _serve(self, ws: Any) -> None:
        import json

        last: dict[str, Any] | None = None
        retries = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal last, retries
            if message.get("type") in ("accept", "end", "wrap_up"):
                last, retries = message, 0
            await ws.send(json.dumps(message))

        async for raw in ws:
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "error":
                self.server_errors.append(str(message.get("message")))
                # "try again": the server could not do it (its database restarting); an agent
                # clicks again, and so does this desktop, a few times.
                again = "try again" in str(message.get("message"))
                if last is not None and again and retries < 30:
                    retries += 1
                    await asyncio.sleep(0.5)
                    await ws.send(json.dumps(last))
            elif kind == "hello":
                await send({"type": "state", "state": "available"})
                current = message.get("current")
                if current:
                    await self._resume(current, send)
            elif kind == "state":
                if message.get("state") == "available":
                    self.ready.set()
                elif message.get("state") == "away":
                    await send({"type": "state", "state": "available"})
            elif kind == "offer":
                entry_id = message["assignment"]["entry_id"]
                self.offers.append(entry_id)
                await send({"type": "accept", "entry_id": entry_id})
            elif kind == "connected":
                entry_id = message["assignment"]["entry_id"]
                self.connected.append(entry_id)
                await send({"type": "end", "entry_id": entry_id})
            elif kind == "wrap_up":
                entry_id = message["entry_id"]
                await send(
                    {"type": "wrap_up", "entry_id": entry_id, "code": "resolved", "notes": ""}
                )
                self.wrapped.append(entry_id)
            elif kind == "offer_withdrawn":
                self.withdrawn.append(str(message.get("entry_id")))

    async def _resume(self, current: dict[str, Any], send: Any) -> None:
        entry_id, status = current["entry_id"], current["status"]
        self.resumed.append(f"{status} {entry_id}")
        if status == "offered":
            self.offers.append(entry_id)
            await send({"type": "accept", "entry_id": entry_id})
        elif status == "connected":
            self.connected.append(entry_id)
            await send({"type": "end", "entry_id": entry_id})
        elif status == "wrap_up":
            await send({"type": "wrap_up", "entry_id": entry_id, "code": "resolved", "notes": ""})
            self.wrapped.append(entry_id)


async def sign_in_agents(
    base_urls: list[str], count: int, *, token: str, password: str, prefix: str = "agent"
) -> list[tuple[str, str, int]]:
    """``count`` agents with the skill general, made and signed in on ``base_urls`` in turn
    (agent ``i`` on ``base_urls[i % len(base_urls)]``); returns (username, session cookie,
    agent id) for each."""
    auth = {"Authorization": f"Bearer {token}"}
    limit = asyncio.Semaphore(4)  # argon2 is slow on purpose

    async def one(i: int) -> tuple[str, str, int]:
        base = base_urls[i % len(base_urls)]
        name = f"{prefix}{i:03d}"
        # A client each: a shared cookie jar would send one agent's session with the next
        # agent's sign-in, which may end it.
        async with limit, httpx.AsyncClient(timeout=60, trust_env=False) as client:
            created = await client.post(
                f"{base}/api/agents",
                headers=auth,
                json={
                    "username": name,
                    "password": password,
                    "role": "agent",
                    "skills": {"general": 5},
                },
            )
            assert created.status_code == 201, created.text
            login = await client.post(
                f"{base}/api/auth/login", json={"username": name, "password": password}
            )
            assert login.status_code == 200, login.text
        cookie = login.cookies.get("voicebot_session")
        assert cookie, login.headers
        return name, cookie, created.json()["id"]

    return list(await asyncio.gather(*(one(i) for i in range(count))))
