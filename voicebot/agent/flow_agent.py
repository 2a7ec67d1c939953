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

from voicebot.runtime.call import CallRuntime, LineSink, Reply

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
        sent = 0

        def send(line: str) -> None:
            # One chunk per line, sent the moment the line exists (a model's first sentence
            # while it is still writing the second), so TTS starts on it straight away.
            nonlocal sent
            text = line if sent == 0 else " " + line
            self._event_ch.send_nowait(
                ChatChunk(id=f"flow-{sent}", delta=ChoiceDelta(role="assistant", content=text))
            )
            sent += 1

        await self._agent.next_reply(self._chat_ctx, send)


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

    async def next_reply(self, chat_ctx: llm.ChatContext, on_line: LineSink | None = None) -> Reply:
        """Run the engine for the oldest pending event, else for the newest caller text."""
        async with self._lock:
            try:
                reply = await self._next_reply(chat_ctx, on_line)
            except Exception:
                logger.exception("agent turn failed", extra={"call_id": self.call.state.call_id})
                reply = Reply()
            self.replies.append(reply)
            return reply

    async def _next_reply(self, chat_ctx: llm.ChatContext, on_line: LineSink | None) -> Reply:
        if self._pending:
            event = self._pending.popleft()
            if event.kind == "start":
                return await self.call.start(on_line)
            if event.kind == "keys":
                return await self.call.keys_pressed(event.digits, on_line)
            return await self.call.silence(event.seconds, on_line)
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
        reply = await self.call.caller_said(message.text_content or "", on_line)
        self._mask_history(message)
        return reply

    def _mask_history(self, message: llm.ChatMessage) -> None:
        """The session keeps its own copy of what the caller said; a sensitive answer (a card
        number, a PIN) is replaced there by the masked text the call's transcript holds."""
        said = next(
            (line for line in reversed(self.call.state.transcript) if line.role == "caller"), None
        )
        if said is None or said.text == (message.text_content or ""):
            return
        masked: list[llm.ChatContent] = [said.text]
        message.content = masked
        for ctx in (self._chat_ctx, self.session.history):
            for item in ctx.items:
                if item.id == message.id and isinstance(item, llm.ChatMessage):
                    item.content = masked
