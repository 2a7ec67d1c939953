"""A scripted OpenAI-compatible chat server on loopback, for testing the LLM brain offline.

It speaks the real wire protocol (``POST /v1/chat/completions`` with server-sent
``chat.completion.chunk`` events, tool calls streamed the way OpenAI streams them), so the brain
is tested through the real ``openai`` client and livekit's OpenAI plugin over real HTTP. Each
request takes the next scripted reply and is recorded, so a test can assert on what the brain
sent: the tools it offered, the system prompt, and that no sensitive value was in it.

Conversation tests use it through ``model:`` steps; ``voicebot flows test`` starts one for the
tests that have them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from voicebot.flows.schema import ScriptedReply

HANG_SECONDS = 120.0
# Failures of the wire rather than of the reply (tests/faults): queued with ``ScriptedModel.fault``.
FAULTS = ("slow", "reset", "garbage")


class ConnectionDropped(Exception):
    """Raised inside a streamed reply so that uvicorn drops the connection mid-body."""


@dataclass
class RecordedRequest:
    body: dict[str, Any]

    @property
    def tools(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools") or []]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def system(self) -> str:
        return "\n".join(
            str(m.get("content")) for m in self.messages if m.get("role") in ("system", "developer")
        )

    @property
    def text(self) -> str:
        """The whole request as sent, for "must not contain" checks."""
        return json.dumps(self.body, ensure_ascii=False)


@dataclass
class ScriptedModel:
    """The script and the log, shared between the test (any thread) and the server loop."""

    replies: deque[ScriptedReply] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    unscripted: int = 0  # requests that found no reply left (a test should fail on this)
    delay: float = 0.0  # seconds before the first chunk (latency simulation)
    # When set, a streamed reply stops after its first sentence until the gate opens: a test
    # opens it from the brain's speak callback, proving the sentence went out mid-stream.
    gate: threading.Event | None = None
    gate_opened_in_time: bool | None = None
    # Queued failures, each taken by the next request before any scripted reply: ``slow``
    # answers after ``slow_seconds`` (beyond the brain's timeout), ``reset`` drops the
    # connection after the first words, ``garbage`` streams chunks that are not JSON.
    faults: deque[str] = field(default_factory=deque)
    slow_seconds: float = 30.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, replies: Iterable[ScriptedReply | dict[str, Any]]) -> None:
        with self._lock:
            for reply in replies:
                self.replies.append(
                    reply if isinstance(reply, ScriptedReply) else ScriptedReply(**reply)
                )

    def fault(self, *kinds: str) -> None:
        """Queue wire failures for the next requests (one each), ahead of the replies."""
        unknown = [kind for kind in kinds if kind not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}: use one of {', '.join(FAULTS)}")
        with self._lock:
            self.faults.extend(kinds)

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests.clear()
            self.faults.clear()
            self.unscripted = 0

    def take_fault(self, body: dict[str, Any]) -> str | None:
        """The next queued fault (the request is recorded), or None: then ``take`` a reply."""
        with self._lock:
            if not self.faults:
                return None
            self.requests.append(RecordedRequest(body))
            return self.faults.popleft()

    def take(self, body: dict[str, Any]) -> ScriptedReply | None:
        with self._lock:
            self.requests.append(RecordedRequest(body))
            if not self.replies:
                self.unscripted += 1
                return None
            return self.replies.popleft()

    @property
    def last(self) -> RecordedRequest | None:
        return self.requests[-1] if self.requests else None


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    payload = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _words(text: str) -> list[str]:
    # A few words per chunk, like a real model, so sentence streaming is exercised.
    words = text.split(" ")
    return [
        " ".join(words[i : i + 3]) + (" " if i + 3 < len(words) else "")
        for i in range(0, len(words), 3)
    ]


async def _stream(reply: ScriptedReply, model: str, script: ScriptedModel) -> AsyncIterator[bytes]:
    cid = "chatcmpl-" + uuid.uuid4().hex[:12]
    if script.delay:
        await asyncio.sleep(script.delay)
    yield _chunk(cid, model, {"role": "assistant", "content": ""})
    if reply.say:
        gate = script.gate
        for piece in _words(reply.say):
            yield _chunk(cid, model, {"content": piece})
            if gate is not None and any(mark in piece for mark in ".?!"):
                script.gate_opened_in_time = await asyncio.to_thread(gate.wait, 5.0)
                gate = None
    calls = reply.calls
    for index, call in enumerate(calls):
        raw = call.raw_args if call.raw_args is not None else json.dumps(call.args or {})
        head = {"index": index, "id": f"call_{uuid.uuid4().hex[:10]}", "type": "function"}
        yield _chunk(
            cid, model, {"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]}
        )
        half = len(raw) // 2
        for part in (raw[:half], raw[half:]):
            if part:
                yield _chunk(
                    cid, model, {"tool_calls": [{"index": index, "function": {"arguments": part}}]}
                )
    yield _chunk(cid, model, {}, "tool_calls" if calls else "stop")
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    yield (
        b"data: "
        + json.dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": usage,
            }
        ).encode()
        + b"\n\n"
    )
    yield b"data: [DONE]\n\n"


async def _hang() -> AsyncIterator[bytes]:
    # Headers go out, then nothing: the client's read timeout is what ends this.
    await asyncio.sleep(HANG_SECONDS)
    yield b""


async def _faulty(kind: str, model: str, script: ScriptedModel) -> AsyncIterator[bytes]:
    cid = "chatcmpl-" + uuid.uuid4().hex[:12]
    if kind == "slow":
        await asyncio.sleep(script.slow_seconds)
        yield _chunk(cid, model, {"role": "assistant", "content": "Sorry, I was slow."}, "stop")
        yield b"data: [DONE]\n\n"
        return
    yield _chunk(cid, model, {"role": "assistant", "content": ""})
    yield _chunk(cid, model, {"content": "Let me just "})
    if kind == "reset":
        raise ConnectionDropped("scripted connection reset mid-stream")
    # garbage: server-sent events whose data is not JSON, then a truncated object.
    yield b"data: {not json at all\n\n"
    yield b'data: {"id": "x", "choices": [{"delta": {"content": "trun\n\n'
    yield b"data: [DONE]\n\n"


def _message(reply: ScriptedReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.say}
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:10]}",
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": c.raw_args if c.raw_args is not None else json.dumps(c.args or {}),
                },
            }
            for c in reply.calls
        ]
    return message


def create_app(script: ScriptedModel) -> FastAPI:
    app = FastAPI(title="scripted OpenAI-compatible model")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": "scripted", "object": "model", "owned_by": "tests"}],
        }

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "body is not JSON"}}, status_code=400)
        fault = script.take_fault(body)
        if fault is not None:
            model = str(body.get("model") or "scripted")
            return StreamingResponse(_faulty(fault, model, script), media_type="text/event-stream")
        reply = script.take(body)
        if reply is None:
            return JSONResponse(
                {"error": {"message": "no scripted reply left", "type": "scripted_model"}},
                status_code=500,
            )
        if reply.error:
            return JSONResponse(
                {"error": {"message": f"scripted error {reply.error}", "type": "scripted"}},
                status_code=reply.error,
            )
        if reply.hang:
            return StreamingResponse(_hang(), media_type="text/event-stream")
        model = str(body.get("model") or "scripted")
        if body.get("stream"):
            return StreamingResponse(_stream(reply, model, script), media_type="text/event-stream")
        if script.delay:
            await asyncio.sleep(script.delay)
        return JSONResponse(
            {
                "id": "chatcmpl-" + uuid.uuid4().hex[:12],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": _message(reply),
                        "finish_reason": "tool_calls" if reply.calls else "stop",
                    }
                ],
            }
        )

    return app


class _QuietDrops(logging.Filter):
    # A dropped connection is the point of the ``reset`` fault, not a server error to print.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class ScriptedModelServer:
    """Runs the app with uvicorn in a background thread; usable from sync and async code."""

    def __init__(self, script: ScriptedModel | None = None, *, port: int = 0) -> None:
        self.script = script or ScriptedModel()
        self.port = port or _free_port()
        config = uvicorn.Config(
            create_app(self.script),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="scripted-model", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedModelServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted model server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
