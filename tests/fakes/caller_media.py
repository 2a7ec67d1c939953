"""The caller's room as the waiting and transfer state machines see it (``CallerMedia``),
in-process: what was played, to whom, in order. No LiveKit server runs here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class FakeMedia:
    """The caller's room as the machine sees it: what was played, to whom, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.on_brief: Callable[[], None] | None = None
        self.on_say: Callable[[str], None] | None = None
        self.hung_up = asyncio.Event()
        self.speak_for = 0.0  # seconds each line takes to say

    async def start(self) -> None:
        self.log.append(("start", None))

    async def aclose(self) -> None:
        self.log.append(("aclose", None))

    async def hold(self, on: bool) -> None:
        self.log.append(("hold", on))

    async def say(self, text: str) -> None:
        self.log.append(("say", text))
        if self.on_say is not None:
            self.on_say(text)
        try:
            await asyncio.sleep(self.speak_for)
        except asyncio.CancelledError:
            self.log.append(("cut", text))
            raise

    async def brief(self, text: str, agent: str) -> None:
        self.log.append(("brief", (agent, text)))
        if self.on_brief is not None:
            self.on_brief()
        await asyncio.sleep(0.01)

    async def admit(self, agent: str) -> None:
        self.log.append(("admit", agent))

    async def let_speak(self, agent: str) -> None:
        self.log.append(("let_speak", agent))

    async def leave(self) -> None:
        self.log.append(("leave", None))

    async def hang_up(self) -> None:
        self.log.append(("hang_up", None))
        self.hung_up.set()

    def allow_caller(self, track_sid: str) -> None:
        self.log.append(("allow_caller", track_sid))

    def said(self) -> list[str]:
        return [value for kind, value in self.log if kind == "say"]

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.log if kind not in ("start", "aclose", "cut")]
