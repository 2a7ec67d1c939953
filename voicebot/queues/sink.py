"""The handoff sink of the built-in queues: a packet becomes a queue entry before the caller
hears "transferring you".

If the database cannot be written (down, or slower than ``timeout``), the caller is still
transferred: the packet goes to a spool file in the data directory, written and flushed at once,
and a background task retries it until the database takes it. A spooled packet keeps its id, so
a retry that races a late first write queues the call once (enqueue is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from voicebot.handoff.packet import HandoffPacket
from voicebot.queues.service import QueueService

logger = logging.getLogger("voicebot.queues.sink")


class QueueHandoffSink:
    def __init__(
        self,
        service: QueueService,
        spool: Path,
        *,
        timeout: float = 5.0,
        audio_node: str | None = None,
    ) -> None:
        self.service = service
        self.spool = spool
        self.timeout = timeout
        self.audio_node = audio_node
        self._lock = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None

    async def deliver(self, packet: HandoffPacket) -> None:
        # Softphone calls stay on this node while they wait: the desktop joins their audio here.
        local_audio = packet.caller.attributes.get("channel") == "softphone"
        try:
            await asyncio.wait_for(
                self.service.enqueue(packet, audio_node=self.audio_node if local_audio else None),
                timeout=self.timeout,
            )
        except Exception as exc:
            await self.keep(packet, str(exc) or type(exc).__name__)

    async def keep(self, packet: HandoffPacket, reason: str) -> None:
        """Keep ``packet`` in the spool file and retry it in the background until it is queued
        (the API's POST /api/handoffs uses this too while the database is down)."""
        logger.error(
            "queue write failed; the handoff is spooled and will be retried",
            extra={"handoff_id": packet.id, "detail": reason},
        )
        async with self._lock:
            await asyncio.to_thread(self._append, packet.model_dump_json())
        self._start_retry()

    def _append(self, line: str) -> None:
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with self.spool.open("a", encoding="utf-8") as file:
            file.write(line + "\n")
            file.flush()

    def _start_retry(self) -> None:
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._retry_loop(), name="handoff-retry")

    async def replay(self) -> int:
        """Deliver what the spool holds; returns how many packets are still waiting."""
        async with self._lock:
            if not self.spool.exists():
                return 0
            lines = [
                line for line in self.spool.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
            left: list[str] = []
            for line in lines:
                try:
                    packet = HandoffPacket.model_validate_json(line)
                except ValueError:
                    logger.error(
                        "unreadable spooled handoff kept aside", extra={"detail": line[:80]}
                    )
                    self._append_to(self.spool.with_suffix(".bad"), line)
                    continue
                try:
                    await self.service.enqueue(packet)
                except Exception:
                    left.append(line)
            if left:
                self.spool.write_text("\n".join(left) + "\n", encoding="utf-8")
            else:
                self.spool.unlink()
            return len(left)

    @staticmethod
    def _append_to(path: Path, line: str) -> None:
        with path.open("a", encoding="utf-8") as file:
            file.write(line + "\n")

    async def _retry_loop(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                left = await self.replay()
            except Exception:
                logger.exception("spool replay failed")
                left = 1
            if left == 0:
                logger.info("spooled handoffs delivered")
                return
            delay = min(delay * 2, 30.0)

    async def aclose(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry


def read_spool(path: Path) -> list[dict[str, object]]:
    """The spooled packets (for `voicebot db status` and tests)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
