"""Where a handoff packet goes. Every sink delivers before the caller hears "transferring
you", so a crash after that point loses nothing.

`voicebot serve` puts packets in the built-in queues (voicebot/queues/sink.py). Elsewhere
(`voicebot chat`, the LiveKit worker without a shared database) they are appended to a
JSON-lines file in the data directory, written and flushed at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from voicebot.handoff.packet import HandoffPacket

logger = logging.getLogger("voicebot.handoff")


class HandoffSink(Protocol):
    async def deliver(self, packet: HandoffPacket) -> None: ...


class JsonlHandoffSink:
    """Appends each packet as one JSON line to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def deliver(self, packet: HandoffPacket) -> None:
        line = packet.model_dump_json() + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        logger.info(
            "handoff written",
            extra={"handoff_id": packet.id, "queue": packet.queue, "priority": packet.priority},
        )

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()


class CallbackHandoffSink:
    """Hands each packet to a function (the chat command prints it; tests collect it)."""

    def __init__(self, callback: Callable[[HandoffPacket], Awaitable[None] | None]) -> None:
        self.callback = callback

    async def deliver(self, packet: HandoffPacket) -> None:
        outcome = self.callback(packet)
        if outcome is not None:
            await outcome


class FanOutSink:
    def __init__(self, *sinks: HandoffSink) -> None:
        self.sinks = sinks

    async def deliver(self, packet: HandoffPacket) -> None:
        for sink in self.sinks:
            await sink.deliver(packet)
