"""The Chroma server (the knowledge base) goes away: a caller's question ends in an offer of an
adviser and a handoff, and the knowledge API answers 503, not 500.

A real ``chroma run`` server on loopback holds the example bot's knowledge; the API runs on
uvicorn on loopback with that knowledge service, and a call runs on the same service. The
question is answered while Chroma is up; then the server is killed (SIGKILL) and the same
question is asked in a new call.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.conftest import MONDAY_10AM, REPO
from tests.queues.servers import free_port
from voicebot.api.app import create_app
from voicebot.config import Settings
from voicebot.handoff.packet import HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.knowledge.service import open_knowledge
from voicebot.knowledge.store import wait_for_server
from voicebot.runtime.bot import BotRuntime

pytestmark = pytest.mark.timeout(180)

QUESTION = "is roaming free in Ireland"
TURN_DEADLINE = 30.0


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = (tmp_path / "chroma.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(tmp_path / "chroma"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, timeout=60)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=20)
        log.close()


def serve(app: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def unhandled(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.name.startswith("uvicorn") and r.levelno >= logging.ERROR
    ]


async def test_questions_without_chroma_are_handed_off_and_the_api_says_503(
    chroma: tuple[str, subprocess.Popen[bytes]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, process = chroma
    settings = Settings(bot_dir=REPO, data_dir=tmp_path / "data", chroma_url=url, brain="offline")
    knowledge = open_knowledge(settings, REPO / "knowledge")
    packets: list[HandoffPacket] = []
    runtime = BotRuntime.load(
        settings,
        clock=lambda: MONDAY_10AM,
        handoffs=CallbackHandoffSink(packets.append),
        knowledge=knowledge,
    )
    server, thread, base = serve(create_app(settings, knowledge_service=knowledge))
    try:
        with caplog.at_level(logging.WARNING):
            async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
                # -- Chroma up --
                answered = await client.get("/api/knowledge/answer", params={"q": QUESTION})
                assert answered.status_code == 200 and "Ireland" in answered.json()["answer"]
                call = runtime.new_call()
                await call.start()
                reply = await asyncio.wait_for(call.caller_said(QUESTION), TURN_DEADLINE)
                assert "Republic of Ireland" in reply.text

                # -- Chroma gone --
                process.kill()
                process.wait()
                call = runtime.new_call()
                await call.start()
                reply = await asyncio.wait_for(call.caller_said(QUESTION), TURN_DEADLINE)
                assert "Republic of Ireland" not in reply.text
                assert "adviser" in reply.text  # the question flow's on_no_answer
                transfer = await asyncio.wait_for(call.caller_said("yes please"), TURN_DEADLINE)
                assert transfer.handoff is not None
                assert transfer.handoff.queue == "general"
                assert [p.reason for p in packets] == ["question the bot could not answer"]

                for path, params in (
                    ("/api/knowledge/answer", {"q": QUESTION}),
                    ("/api/knowledge/search", {"q": QUESTION}),
                    ("/api/knowledge/documents", {}),
                ):
                    response = await client.get(path, params=params)
                    assert response.status_code == 503, (path, response.text)
                    assert "Chroma server" in response.json()["detail"], response.text
                    assert response.headers.get("retry-after")
                health = await client.get("/health")
                assert health.status_code == 200
                assert health.json()["knowledge"]["status"] == "unavailable"
        assert unhandled(caplog.records) == []
        failed = [r for r in caplog.records if r.getMessage() == "knowledge search failed"]
        assert failed, "the call saw the store fail (and logged it)"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        await runtime.aclose()
