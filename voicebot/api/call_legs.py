"""Softphone callers waiting in a queue on this node, and the bridge to the agent who takes them.

After the bot hands a softphone call to a built-in queue, the caller's WebSocket stays open: they
hear hold music until an agent accepts, then the agent's desktop opens
``/api/desktop/audio/{entry_id}`` on this node and the two are bridged, 16-bit PCM at 16 kHz
both ways. That is what lets the whole journey run on one machine without LiveKit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from voicebot.queues.events import Event

Deliver = Callable[[Any], None]  # bytes (audio) or a dict (a JSON event) to the caller


class CallerLeg:
    def __init__(self, entry_id: str, to_caller: Deliver) -> None:
        self.entry_id = entry_id
        self.to_caller = to_caller
        self.to_agent: Callable[[bytes], None] | None = None
        self.connected = asyncio.Event()  # an agent accepted
        self.finished = asyncio.Event()  # the agent ended the call
        self.agent_name: str | None = None

    def caller_audio(self, pcm: bytes) -> None:
        if self.to_agent is not None:
            self.to_agent(pcm)

    def agent_audio(self, pcm: bytes) -> None:
        self.to_caller(pcm)


class CallLegs:
    """The legs on this node, by queue entry id, kept informed by the queue's events."""

    def __init__(self) -> None:
        self.legs: dict[str, CallerLeg] = {}

    def add(self, leg: CallerLeg) -> None:
        self.legs[leg.entry_id] = leg

    def remove(self, leg: CallerLeg) -> None:
        if self.legs.get(leg.entry_id) is leg:
            del self.legs[leg.entry_id]

    def get(self, entry_id: str) -> CallerLeg | None:
        return self.legs.get(entry_id)

    def on_event(self, event: Event) -> None:
        leg = self.legs.get(str(event.get("entry_id")))
        if leg is None:
            return
        if event.get("type") == "connected":
            leg.connected.set()
            leg.to_caller({"type": "agent", "state": "connected"})
        elif event.get("type") == "wrap_up":
            leg.finished.set()
