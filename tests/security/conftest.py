"""A real API server (uvicorn on loopback, SQLite, a real knowledge base) with one user of each
role, the API token and a few rows to read by id: what the security tests call."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import update

from tests.knowledge.conftest import DOCS, write_docs
from tests.queues.packets import make_packet
from voicebot.access.users import add_user
from voicebot.api.app import create_app
from voicebot.api.security import uvicorn_options
from voicebot.config import Settings
from voicebot.flows.schema import Queue
from voicebot.knowledge.service import KnowledgeService
from voicebot.store.db import open_database
from voicebot.store.models import Agent, Call, QueueEntry

TOKEN = "security-test-token"
PASSWORD = "correct horse battery"
QUEUES = {"general": Queue(skills=["general"]), "billing": Queue(skills=["billing"])}
# name -> (role, skills); "agent2" is another agent, who must not read the first one's rows.
USERS = {
    "agent": ("agent", {"general": 5}),
    "agent2": ("agent", {"general": 5, "billing": 5}),
    "supervisor": ("supervisor", {}),
    "admin": ("admin", {}),
    "lena": ("agent", {"general": 5}),  # signs in during the matrix (login is open to all)
    "carol": ("agent", {"general": 5}),  # changed by the admins' cells
}


@dataclass
class Server:
    url: str
    settings: Settings
    app: Any
    knowledge_dir: Path
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, trust_env=False, **kwargs)

    def token_client(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {TOKEN}"})

    def signed_in(self, username: str, password: str = PASSWORD, **kwargs: Any) -> httpx.Client:
        client = self.client(**kwargs)
        response = client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return client

    def run(self, coro: Any) -> Any:
        """Run ``coro`` against the server's database from the test's thread."""

        async def with_db() -> Any:
            db = await open_database(self.settings.resolved_database_url, migrate=False)
            try:
                return await coro(db)
            finally:
                await db.aclose()

        return asyncio.run(with_db())


Start = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Start]:
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(*, knowledge: bool = True, **overrides: Any) -> Server:
        root = tmp_path / f"server{len(running)}"
        settings = Settings(
            data_dir=root / "data",
            bot_dir=root,
            api_token=SecretStr(TOKEN),
            wrap_up_seconds=0,
            **overrides,
        )

        async def add_users() -> None:
            db = await open_database(settings.resolved_database_url)
            for name, (role, skills) in USERS.items():
                await add_user(db, name, PASSWORD, role=role, skills=skills)
            await db.aclose()

        asyncio.run(add_users())
        knowledge_dir = write_docs(root / "knowledge", dict(DOCS))
        service = None
        if knowledge:
            service = KnowledgeService.open(settings, knowledge_dir)
            service.ingest()
        app = create_app(settings, knowledge_service=service, queues=QUEUES, require_database=True)
        if not knowledge:
            app.state.knowledge_error = "off in this test"
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, **uvicorn_options())
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert thread.is_alive(), "uvicorn stopped during start-up"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        running.append((server, thread))
        return Server(f"http://127.0.0.1:{port}", settings, app, knowledge_dir)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=15)


def seed(server: Server) -> dict[str, str]:
    """Rows to read by id: a handoff whose entry is the first agent's, a second entry to
    abandon, a stored call with a recording."""
    ids: dict[str, str] = {}
    with server.token_client() as token:
        for key in ("mine", "spare"):
            response = token.post(
                "/api/handoffs", json=make_packet("general").model_dump(mode="json")
            )
            assert response.status_code == 201, response.text
            ids[f"{key}_handoff"] = response.json()["handoff_id"]
            ids[f"{key}_entry"] = response.json()["entry_id"]
    call_id = "call-security-1"

    async def rows(db: Any) -> None:
        async with db.transaction() as session:
            agent_id = await session.scalar(
                Agent.__table__.select()
                .with_only_columns(Agent.id)
                .where(Agent.username == "agent")
            )
            ids["carol_id"] = str(
                await session.scalar(
                    Agent.__table__.select()
                    .with_only_columns(Agent.id)
                    .where(Agent.username == "carol")
                )
            )
            # The entry was handled by "agent": what makes the packet theirs to read.
            await session.execute(
                update(QueueEntry)
                .where(QueueEntry.id == ids["mine_entry"])
                .values(agent_id=agent_id)
            )
            session.add(Call(id=call_id, started_at=dt.datetime.now(dt.UTC), channel="softphone"))

    server.run(rows)
    folder = server.settings.resolved_recordings_dir / call_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "call.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    ids["call"] = call_id
    ids["recording"] = "call.wav"
    server.ids = ids
    return ids


@contextlib.contextmanager
def clients(server: Server) -> Iterator[dict[str, httpx.Client]]:
    """One client per principal of the matrix (anonymous, each role, the API token)."""
    made = {
        "anonymous": server.client(),
        "agent": server.signed_in("agent"),
        "agent2": server.signed_in("agent2"),
        "supervisor": server.signed_in("supervisor"),
        "admin": server.signed_in("admin"),
        "token": server.token_client(),
    }
    try:
        yield made
    finally:
        for client in made.values():
            client.close()
