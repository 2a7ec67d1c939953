"""The desktop's and the supervisor page's WebSockets against bad input, on a real uvicorn
server started as `voicebot serve` starts it (the same ws_max_size): 1,000 malformed messages
are each answered and the socket goes on; a flood is closed with 1008; a 10 MB message is
closed with 1009; the server and the other sockets keep working and nothing is logged as an
unhandled error."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import closing
from typing import Any

import pytest
import websockets

from tests.security.conftest import Server, Start
from voicebot.api.security import WS_MAX_BYTES, MessageRate

BAD: list[str | bytes] = [
    "not json",
    "{",
    "[1, 2]",
    "42",
    '"a string"',
    "null",
    '{"type": 5}',
    '{"type": ["ping"]}',
    '{"no type": true}',
    '{"type": "state", "state": {"a": 1}}',
    '{"type": "accept", "entry_id": 12345}',
    '{"type": "wrap_up", "entry_id": null, "code": [1]}',
    '{"type": "accept", "entry_id": "\\u0000"}',
    '{"type": "decline", "entry_id": {"$gt": ""}}',
    '{"type": "start_callback", "entry_id": "' + "x" * 5000 + '"}',
    "x" * 20_000,  # over the desktop's 16,384 characters
    b"\x00\xff\x00",  # binary where JSON text is expected
    "\ud800".encode("utf-8", "surrogatepass"),  # not even UTF-8, sent as binary
]
SOCKETS = {"desktop": ("/api/desktop/ws", "agent"), "supervisor": ("/api/supervisor/ws", "admin")}


def cookie(server: Server, username: str) -> dict[str, str]:
    with closing(server.signed_in(username)) as client:
        return {"Cookie": f"voicebot_session={client.cookies['voicebot_session']}"}


async def next_of(ws: Any, kind: str, within: float = 20) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout=within))
        if message.get("type") == kind:
            return message


async def ping(ws: Any) -> None:
    await ws.send(json.dumps({"type": "ping"}))
    await next_of(ws, "pong")


@pytest.fixture
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """No rate limit: every bad message reaches the handler (the rate has its own test)."""
    monkeypatch.setattr(MessageRate, "rate", 1e9)
    monkeypatch.setattr(MessageRate, "burst", 10**9)


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


@pytest.mark.parametrize("socket", sorted(SOCKETS))
def test_a_thousand_bad_messages_are_each_answered(
    serve: Start, unlimited: None, caplog: pytest.LogCaptureFixture, socket: str
) -> None:
    caplog.set_level(logging.WARNING)
    server = serve(knowledge=False)
    path, user = SOCKETS[socket]
    messages = [BAD[n % len(BAD)] for n in range(1000)]

    async def run() -> int:
        async with websockets.connect(
            server.ws_url + path, additional_headers=cookie(server, user)
        ) as ws:
            for message in messages:
                await ws.send(message)
            answered = 0
            while answered < len(messages):
                await next_of(ws, "error")
                answered += 1
            await ping(ws)  # the socket still works after all of them
            return answered

    assert asyncio.run(run()) == 1000
    with server.client() as client:
        assert client.get("/health").status_code == 200
    _no_errors_logged(caplog)


@pytest.mark.parametrize("socket", sorted(SOCKETS))
def test_a_flood_is_closed_and_the_others_go_on(
    serve: Start, caplog: pytest.LogCaptureFixture, socket: str
) -> None:
    caplog.set_level(logging.WARNING)
    server = serve(knowledge=False)
    path, user = SOCKETS[socket]
    other_path, other_user = SOCKETS["desktop"]
    other_user = "agent2" if socket == "desktop" else other_user

    async def run() -> tuple[int | None, str | None, int]:
        flooder = await websockets.connect(
            server.ws_url + path, additional_headers=cookie(server, user)
        )
        async with websockets.connect(
            server.ws_url + other_path, additional_headers=cookie(server, other_user)
        ) as other:
            sent = 0
            try:
                for _ in range(1000):
                    await flooder.send(json.dumps({"type": "ping"}))
                    sent += 1
                while True:
                    await asyncio.wait_for(flooder.recv(), timeout=20)
            except websockets.ConnectionClosed:
                pass
            await ping(other)
        return flooder.close_code, flooder.close_reason, sent

    code, reason, sent = asyncio.run(run())
    assert code == 1008 and reason and "too many messages" in reason, (code, reason, sent)
    with server.client() as client:
        assert client.get("/health").status_code == 200
    _no_errors_logged(caplog)


@pytest.mark.parametrize("socket", sorted(SOCKETS))
def test_a_ten_megabyte_message_closes_only_its_socket(
    serve: Start, caplog: pytest.LogCaptureFixture, socket: str
) -> None:
    caplog.set_level(logging.WARNING)
    server = serve(knowledge=False)
    path, user = SOCKETS[socket]

    async def run() -> int | None:
        headers = cookie(server, user)
        other_headers = cookie(server, "agent2" if socket == "desktop" else "supervisor")
        other_path = "/api/desktop/ws" if socket == "desktop" else "/api/supervisor/ws"
        async with websockets.connect(
            server.ws_url + other_path, additional_headers=other_headers
        ) as other:
            big = await websockets.connect(server.ws_url + path, additional_headers=headers)
            try:
                await big.send("x" * (10 * 1024 * 1024))
                while True:
                    await asyncio.wait_for(big.recv(), timeout=20)
            except websockets.ConnectionClosed:
                pass
            await ping(other)
            return big.close_code

    assert WS_MAX_BYTES < 10 * 1024 * 1024
    assert asyncio.run(run()) == 1009
    with server.client() as client:
        assert client.get("/health").status_code == 200
    _no_errors_logged(caplog)
