"""Where a caller's turn enters: the livekit-agents ``Agent`` that runs a call through the flows.

``AgentSession`` owns the real-time machinery (speech-to-text, turn detection, interruptions,
text-to-speech, LiveKit rooms or local audio). We plug the dialogue engine into it as the
session's LLM node: :class:`FlowLLM` is an ``llm.LLM`` whose "completion" for a caller turn is
what the flows say. Text turns arrive the standard way (speech recognised, or
``session.run(user_input=...)``); keypad presses, no-input timeouts and the call's start are
queued on the agent and followed by ``generate_reply()``, so they take the same path out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, Agent, APIConnectOptions, llm
from livekit.agents.llm import ChatChunk, ChoiceDelta
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.voice import SpeechHandle

from voicebot.runtime.call import CallRuntime, Reply

logger = logging.getLogger("voicebot.agent")


@dataclass(frozen=True)
class PendingEvent:
    kind: Literal["start", "keys", "silence"]
    digits: str = ""
    seconds: float = 0.0


class FlowLLM(llm.LLM[Any]):
    """The dialogue engine presented to ``AgentSession`` as its LLM."""

    def __init__(self, agent: FlowAgent) -> None:
        super().__init__()
        self._agent = agent

    @property
    def model(self) -> str:
        return "voicebot-flows"

    @property
    def provider(self) -> str:
        return "voicebot"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        return _FlowStream(
            self, self._agent, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


class _FlowStream(llm.LLMStream):
    def __init__(self, flow_llm: FlowLLM, agent: FlowAgent, **kwargs: Any) -> None:
        super().__init__(flow_llm, **kwargs)
        self._agent = agent

    async def _run(self) -> None:
        reply = await self._agent.next_reply(self._chat_ctx)
        for i, line in enumerate(reply.lines):
            # One chunk per line, each ending a sentence, so TTS can start on the first line
            # while later ones are still being sent.
            text = line.text if i == len(reply.lines) - 1 else line.text + " "
            self._event_ch.send_nowait(
                ChatChunk(id=f"flow-{i}", delta=ChoiceDelta(role="assistant", content=text))
            )


class FlowAgent(Agent):
    """One call's agent. Build it with the call's :class:`CallRuntime`."""

    def __init__(self, call: CallRuntime) -> None:
        self.call = call
        self._pending: deque[PendingEvent] = deque()
        self._consumed: set[str] = set()
        self._lock = asyncio.Lock()
        self.replies: list[Reply] = []
        super().__init__(instructions="", llm=FlowLLM(self))

    async def on_enter(self) -> None:
        self.push(PendingEvent("start"))

    # -- events that are not speech --------------------------------------------------------

    def push(self, event: PendingEvent) -> SpeechHandle:
        self._pending.append(event)
        return self.session.generate_reply()

    def press_keys(self, digits: str) -> SpeechHandle:
        return self.push(PendingEvent("keys", digits=digits))

    def caller_silent(self, seconds: float) -> SpeechHandle:
        return self.push(PendingEvent("silence", seconds=seconds))

    # -- the engine's turn -------------------------------------------------------------------

    async def next_reply(self, chat_ctx: llm.ChatContext) -> Reply:
        """Run the engine for the oldest pending event, else for the newest caller text."""
        async with self._lock:
            try:
                reply = await self._next_reply(chat_ctx)
            except Exception:
                logger.exception("agent turn failed", extra={"call_id": self.call.state.call_id})
                reply = Reply()
            self.replies.append(reply)
            return reply

    async def _next_reply(self, chat_ctx: llm.ChatContext) -> Reply:
        if self._pending:
            event = self._pending.popleft()
            if event.kind == "start":
                return await self.call.start()
            if event.kind == "keys":
                return await self.call.keys_pressed(event.digits)
            return await self.call.silence(event.seconds)
        message = next(
            (
                m
                for m in reversed(chat_ctx.items)
                if isinstance(m, llm.ChatMessage) and m.role == "user"
            ),
            None,
        )
        if message is None or message.id in self._consumed:
            return Reply()
        self._consumed.add(message.id)
        return await self.call.caller_said(message.text_content or "")
