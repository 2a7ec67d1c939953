"""A call in text mode: a real ``AgentSession`` in-process, no room, no audio.

``voicebot chat`` and the conversation tests talk to the bot through this, so they exercise the
same agent that runs on audio and on LiveKit, not a shortcut around it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from livekit.agents import AgentSession
from livekit.agents.llm import ChatMessage
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.events import ConversationItemAddedEvent

from voicebot.agent.flow_agent import FlowAgent
from voicebot.runtime.call import CallRuntime, Reply


@dataclass
class TextTurn:
    """The bot's answer to one caller event, as it came out of the session."""

    lines: list[str]
    reply: Reply
    latency_ms: float | None  # None: the bot said nothing to measure
    heard: str | None = None  # on audio: what the recogniser made of the caller

    @property
    def text(self) -> str:
        return " ".join(self.lines)


class TextSession:
    def __init__(self, call: CallRuntime) -> None:
        self.call = call
        self.agent = FlowAgent(call)
        self.session: AgentSession[None] = AgentSession()
        self._lines: list[str] = []
        self.session.on("conversation_item_added", self._on_item)

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if isinstance(item, ChatMessage) and item.role == "assistant" and item.text_content:
            self._lines.append(item.text_content)

    async def start(self) -> TextTurn:
        self._lines = []
        started = asyncio.get_running_loop().time()
        run = await self.session.start(self.agent, capture_run=True, record=False)
        await run
        latency = (asyncio.get_running_loop().time() - started) * 1000
        reply = self.agent.replies[-1] if self.agent.replies else Reply()
        return TextTurn(lines=list(self._lines), reply=reply, latency_ms=latency)

    async def say(self, text: str) -> TextTurn:
        return await self._collect(self.session.run(user_input=text))

    async def press(self, digits: str) -> TextTurn:
        return await self._collect(self.agent.press_keys(digits))

    async def silence(self, seconds: float) -> TextTurn:
        return await self._collect(self.agent.caller_silent(seconds))

    async def _collect(self, waitable: SpeechHandle | object) -> TextTurn:
        self._lines = []
        started = asyncio.get_running_loop().time()
        before = len(self.agent.replies)
        await waitable  # type: ignore[misc]
        latency = (asyncio.get_running_loop().time() - started) * 1000
        reply = self.agent.replies[-1] if len(self.agent.replies) > before else Reply()
        return TextTurn(lines=list(self._lines), reply=reply, latency_ms=latency)

    @property
    def ended(self) -> bool:
        return self.call.ended

    async def aclose(self) -> None:
        await self.session.aclose()
