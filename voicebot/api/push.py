"""A browser page's WebSocket that the server pushes to: an outbox and one sender task per
connection, so one slow browser never holds up the others (the desktop hub and the supervisor
hub both push through these)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import WebSocket


class PushConnection:
    # Droppable messages (views and boards that the next one replaces) are skipped when this
    # many wait unsent: the browser stopped reading.
    outbox_limit = 500

    def __init__(self, websocket: WebSocket, *, name: str = "push-sender") -> None:
        self.websocket = websocket
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_all(), name=name)

    def send(self, message: dict[str, Any]) -> None:
        self.send_text(json.dumps(message, default=str))

    def send_text(self, text: str, *, droppable: bool = False) -> None:
        if droppable and self.outbox.qsize() > self.outbox_limit:
            return
        self.outbox.put_nowait(text)

    async def _send_all(self) -> None:
        while True:
            text = await self.outbox.get()
            if text is None:
                return
            try:
                await self.websocket.send_text(text)
            except Exception:
                return

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._sender, timeout=2)
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)
