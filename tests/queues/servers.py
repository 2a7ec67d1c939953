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
from dataclasses import dataclass
from pathlib import Path

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
    index: int, db_url: str, work: Path, *, token: str, offer_timeout: float, log_level: str
) -> Node:
    """Start node ``index`` on ``db_url``, in ``work``/node<index> (its data and ``serve.log``).

    There is no timed wrap-up (an agent is free again as soon as they submit it), and the API
    takes ``token``. It does not wait for the node to answer: see ``wait_healthy``.
    """
    data = work / f"node{index}"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
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
    env.pop("VOICEBOT_REDIS_URL", None)
    log_path = data / "serve.log"
    command = [sys.executable, "-m", "voicebot", "serve", "--no-phone", "--bot", str(REPO)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        # cwd is the node's own directory, so no .env from the checkout leaks in.
        process = subprocess.Popen(command, cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT)
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
