"""The LLM brain: any OpenAI-compatible model, through livekit-agents' OpenAI plugin.

The model reads each caller turn together with the tools the flows allow at that point
(:mod:`voicebot.brain.llm.tools`) and answers with tool calls and/or speech. The brain turns
that into an :class:`Interpretation` for the engine, which stays in charge: a flow the model
picked starts only because the engine starts it, a slot value is kept only if the slot's parser
accepts it, a tool that was not offered is refused and logged.

Turns that must not reach the model (a sensitive collect, a yes/no confirmation) and turns where
the model fails (timeout, error, malformed arguments) are read by the offline brain instead;
``llm_max_failures`` failures in a call ask the engine to hand off ("assistant unavailable").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from livekit.agents import APIConnectOptions, APIError, llm
from livekit.agents.types import NOT_GIVEN

from voicebot.brain.base import Speaker
from voicebot.brain.llm import prompt
from voicebot.brain.llm.speech import SentenceStream, cited
from voicebot.brain.llm.tools import (
    BadArguments,
    Refusal,
    Tool,
    Toolbox,
    check_action_args,
    heard_digits,
    parse_arguments,
    read_slots,
    unknown_arguments,
)
from voicebot.brain.offline import OfflineBrain
from voicebot.engine.context import bot_timezone, is_open
from voicebot.engine.events import (
    ActionOutcome,
    Expectation,
    Interpretation,
    ModelReply,
    ModelRequest,
)
from voicebot.engine.state import CallState
from voicebot.flows.schema import BotDefinition
from voicebot.handoff.packet import HandoffPacket, Source
from voicebot.knowledge.base import KnowledgeBase
from voicebot.privacy.masking import redact

logger = logging.getLogger("voicebot.brain")

MAX_ROUNDS = 3
PASSAGES = 4
DEFAULT_MIN_SCORE = 0.35
NO_ANSWER = "I'm sorry, I don't have an answer to that."
MODEL_CONFIDENCE = 0.9
# Where the model may speak freely; elsewhere only a grounded answer is spoken and the flow's
# own prompts do the talking.
_FREE_SPEECH = ("open", "llm")


class ModelFailed(Exception):
    """The model could not be used for this turn (timeout, HTTP error, bad tool arguments)."""


@dataclass
class _Completion:
    text: SentenceStream
    calls: list[llm.FunctionToolCall] = field(default_factory=list)


@dataclass
class TurnTiming:
    """Where the brain's latest turn's time went (diagnostics for the overhead benchmark; with
    concurrent calls it describes whichever turn started last)."""

    model_ms: float = 0.0  # waiting on the model's HTTP stream before the first sentence
    first_sentence_at: float | None = None  # perf_counter() when the first sentence went out


@dataclass
class _CallMemory:
    failures: int = 0
    pending: llm.FunctionCall | None = None  # the action call waiting for its outcome


class LlmBrain:
    def __init__(
        self,
        bot: BotDefinition,
        model: llm.LLM[Any],
        offline: OfflineBrain,
        *,
        knowledge: KnowledgeBase | None = None,
        timeout: float = 4.0,
        max_failures: int = 3,
        agent_language: str = "English",
        label: str | None = None,
    ) -> None:
        self.bot = bot
        self.model = model
        self.offline = offline
        self.knowledge = knowledge
        self.timeout = timeout
        self.max_failures = max_failures
        self.agent_language = agent_language
        self.toolbox = Toolbox(bot, knowledge=knowledge is not None)
        self._label = label or f"llm: {model.model}"
        self._calls: dict[str, _CallMemory] = {}
        self._conn = APIConnectOptions(max_retry=0, timeout=timeout)
        fallback = bot.bot.knowledge_fallback
        self._search_tags = tuple(fallback.filter) if fallback else ()
        self._min_score = fallback.min_score if fallback else DEFAULT_MIN_SCORE
        self.timing = TurnTiming()

    @property
    def name(self) -> str:
        return self._label

    @property
    def uses_llm(self) -> bool:
        return True

    def _memory(self, call: CallState) -> _CallMemory:
        return self._calls.setdefault(call.call_id, _CallMemory())

    # -- the Brain protocol ----------------------------------------------------------------------

    async def interpret(
        self,
        text: str,
        expect: Expectation,
        call: CallState,
        *,
        now: dt.datetime,
        speak: Speaker | None = None,
    ) -> Interpretation:
        self.timing = TurnTiming()
        tools = self.toolbox.for_turn(expect, call)
        if not tools:
            # Sensitive answers and confirmations are for the parsers alone.
            return await self.offline.interpret(text, expect, call, now=now)
        anger, score = self.offline.feel(call, text)
        decision = self.offline.read_language(text, call)
        # The prompt asks for the language the caller now speaks; the engine records the
        # change from the interpretation returned (a copy here: the call is the engine's).
        speaking = call
        if decision is not None and decision.language != call.language:
            speaking = replace(call, language=decision.language)
        system = prompt.system_prompt(self.bot, speaking, expect, now, self._open(now))
        ctx = prompt.conversation(call, system, caller_text=text)
        try:
            understood = await self._converse(ctx, tools, expect, call, now, speak, text)
        except ModelFailed as exc:
            return await self._fallback(exc, text, expect, call, now)
        if decision is not None:
            understood = replace(
                understood, language=decision.language, language_request=decision.requested
            )
        return replace(understood, anger=anger, sentiment=score)

    async def follow_up(
        self,
        expect: Expectation,
        call: CallState,
        *,
        now: dt.datetime,
        outcome: ActionOutcome | None = None,
        speak: Speaker | None = None,
    ) -> Interpretation:
        self.timing = TurnTiming()
        tools = self.toolbox.for_turn(expect, call)
        system = prompt.system_prompt(self.bot, call, expect, now, self._open(now))
        ctx = prompt.conversation(call, system)
        memory = self._memory(call)
        pending, memory.pending = memory.pending, None
        if outcome is not None and pending is not None:
            ctx.insert(pending)
            ctx.insert(
                llm.FunctionCallOutput(
                    call_id=pending.call_id,
                    name=pending.name,
                    output=prompt.tool_output(_outcome_text(outcome), call),
                    is_error=not outcome.ok,
                )
            )
        elif outcome is None:
            ctx.add_message(
                role="system",
                content="This part of the call starts now: say your first sentence to the caller.",
            )
        try:
            return await self._converse(ctx, tools, expect, call, now, speak)
        except ModelFailed as exc:
            self._failed(call, exc)
            if self._memory(call).failures >= self.max_failures:
                return Interpretation(request=ModelRequest("unavailable"))
            return Interpretation()

    def keypad_sentiment(self, call: CallState) -> float:
        return self.offline.keypad_sentiment(call)

    async def summarise(self, packet: HandoffPacket, call: CallState) -> str | None:
        if self._memory(call).failures >= self.max_failures:
            return None
        facts = {
            "reason for handoff": packet.reason,
            "queue": packet.queue,
            "intent": packet.intent.name,
            "details": packet.slots,
            "verified": packet.verified,
            "caller anger (0-1)": round(packet.sentiment.anger, 2),
            "documents used": [s.title for s in packet.sources],
            "transcript": [f"{line.role}: {line.text}" for line in packet.transcript[-30:]],
        }
        ctx = prompt.summary_request(facts, self.agent_language, call)
        try:
            done = await self._complete(ctx, (), SentenceStream(lambda _: None))
        except ModelFailed as exc:
            logger.warning(
                "summary not written; keeping the assembled one",
                extra={"call_id": call.call_id, "error": str(exc)},
            )
            return None
        done.text.close()
        sentences = done.text.spoken[:4]
        if not sentences:
            return None
        return redact(" ".join(sentences), call.secrets())

    def end_call(self, call: CallState) -> None:
        self._calls.pop(call.call_id, None)
        self.offline.end_call(call)

    async def aclose(self) -> None:
        await self.model.aclose()

    # -- one turn --------------------------------------------------------------------------------

    async def _converse(
        self,
        ctx: llm.ChatContext,
        tools: tuple[Tool, ...],
        expect: Expectation,
        call: CallState,
        now: dt.datetime,
        speak: Speaker | None,
        caller_text: str = "",
    ) -> Interpretation:
        offered = {t.name: t for t in tools}
        free = expect.kind in _FREE_SPEECH
        result = Interpretation()
        sources: tuple[Source, ...] = ()
        grounded = False
        searched = False
        question = ""
        passages_given: list[Any] = []
        spoken: list[str] = []

        def say(line: str) -> None:
            spoken.append(line)
            if self.timing.first_sentence_at is None:
                self.timing.first_sentence_at = time.perf_counter()
            if speak is not None:
                speak(line)

        for _ in range(MAX_ROUNDS):
            stream = SentenceStream(say if (free or searched) else _drop, need_citation=searched)
            done = await self._complete(ctx, tuple(offered.values()), stream)
            stream.close()
            if searched:
                # The answer round offers no tools: a call here is what an injected passage
                # would ask for, and is refused like any tool that was not offered.
                for function_call in done.calls:
                    self._refuse(
                        call, Refusal(function_call.name, "not offered at this point"), now
                    )
                grounded, sources = self._cite(stream, passages_given)
                if not grounded:
                    result = await self._extract(result, question, call, now, say)
                    return result
                break
            follow = None
            for function_call in done.calls:
                tool = offered.get(function_call.name)
                if tool is None:
                    self._refuse(
                        call, Refusal(function_call.name, "not offered at this point"), now
                    )
                    continue
                args = self._arguments(function_call)
                for name in unknown_arguments(tool, args):
                    # e.g. transfer_to_agent with a queue or priority: the flows choose those.
                    self._refuse(call, Refusal(f"{tool.name}.{name}", "not an argument"), now)
                    args.pop(name)
                if tool.kind == "knowledge":
                    follow = (function_call, str(args.get("query") or ""))
                    continue
                result = self._apply(
                    result, tool, args, function_call, expect, call, now, caller_text
                )
            if follow is None or result.flow or result.request:
                break
            function_call, question = follow
            question = question or caller_text
            passages_given = await self._passages(question, now)
            if not passages_given:
                say(NO_ANSWER)
                break
            ctx.insert(function_call_item(function_call))
            ctx.insert(
                llm.FunctionCallOutput(
                    call_id=function_call.call_id,
                    name=function_call.name,
                    output=prompt.tool_output(prompt.passages(passages_given), call),
                    is_error=False,
                )
            )
            offered = {}  # the answer round writes prose only
            searched = True
        if spoken:
            text = " ".join(spoken)
            result = replace(
                result,
                reply=ModelReply(
                    text, sources=sources, spoken=speak is not None, grounded=grounded
                ),
            )
        return result

    def _apply(
        self,
        result: Interpretation,
        tool: Tool,
        args: dict[str, Any],
        function_call: llm.FunctionToolCall,
        expect: Expectation,
        call: CallState,
        now: dt.datetime,
        caller_text: str = "",
    ) -> Interpretation:
        if tool.kind == "flow":
            flow = self.bot.flows[tool.target or ""]
            return replace(
                result,
                flow=tool.target,
                intent=flow.triggers[0] if flow.triggers else result.intent,
                confidence=MODEL_CONFIDENCE,
            )
        if tool.kind == "intent":
            return replace(result, intent=tool.target, confidence=MODEL_CONFIDENCE)
        if tool.kind == "fill":
            heard = heard_digits(_caller_turns(call, caller_text), call.language)
            parsed, refused = read_slots(tool, args, now=now.replace(tzinfo=None), heard=heard)
            for name, why in refused:
                self._refuse(call, Refusal(f"{tool.name}.{name}", why), now)
            current = parsed.pop(expect.slot_name or "", None)
            extra = {name: p.value for name, p in parsed.items() if p.ok}
            return replace(result, slot=current or result.slot, extra_slots=extra)
        if tool.kind == "choose":
            labels = tool.parameters["properties"]["option"]["enum"]
            choice = args.get("option")
            option = labels.index(choice) if choice in labels else None
            return replace(result, option=option)
        if tool.kind == "handoff":
            reason = " ".join(str(args.get("reason") or "caller asked for a person").split())
            return replace(result, request=ModelRequest("handoff", reason=reason[:120]))
        if tool.kind == "end":
            return replace(result, request=ModelRequest("end"))
        if tool.kind == "done":
            return replace(result, request=ModelRequest("done"))
        # An llm step's action: checked against its declared parameters before it may run.
        definition = self.bot.actions[tool.target or ""]
        try:
            checked = check_action_args(definition, args, slots=call.slots)
        except BadArguments as exc:
            self._refuse(call, Refusal(tool.name, str(exc)), now)
            raise ModelFailed(f"tool {tool.name}: {exc}") from None
        self._memory(call).pending = function_call_item(function_call)
        return replace(result, request=ModelRequest("action", action=tool.target, args=checked))

    def _arguments(self, function_call: llm.FunctionToolCall) -> dict[str, Any]:
        try:
            return parse_arguments(function_call.arguments)
        except BadArguments as exc:
            raise ModelFailed(f"tool {function_call.name}: {exc}") from None

    async def _passages(self, question: str, now: dt.datetime) -> list[Any]:
        if self.knowledge is None or not question:
            return []
        try:
            found = await self.knowledge.passages(
                question, k=PASSAGES, tags=self._search_tags, today=now.date()
            )
        except Exception:
            logger.exception("knowledge search failed")
            return []
        return [p for p in found if p.score >= self._min_score]

    def _cite(self, stream: SentenceStream, passages: list[Any]) -> tuple[bool, tuple[Source, ...]]:
        numbers = [n for n in cited(" ".join(stream.raw)) if 1 <= n <= len(passages)]
        if not stream.spoken or not numbers:
            return False, ()
        sources = tuple(
            Source(
                id=passages[n - 1].id,
                title=passages[n - 1].title,
                file=passages[n - 1].source,
                heading=passages[n - 1].heading or None,
                score=passages[n - 1].score,
            )
            for n in numbers
        )
        return True, sources

    async def _extract(
        self,
        result: Interpretation,
        question: str,
        call: CallState,
        now: dt.datetime,
        say: Speaker,
    ) -> Interpretation:
        """The model's answer cited nothing: speak the extract from the best passage instead."""
        logger.warning(
            "model answer cited no passage; using the extractive answer",
            extra={"call_id": call.call_id},
        )
        call.record("event", "model answer without citations discarded", now)
        found = None
        if self.knowledge is not None:
            found = await self.knowledge.answer(
                question, tags=self._search_tags, min_score=self._min_score, today=now.date()
            )
        if found is None or not found.text:
            say(NO_ANSWER)
            return replace(result, reply=ModelReply(NO_ANSWER, spoken=True))
        say(found.text)
        return replace(
            result,
            reply=ModelReply(found.text, sources=found.sources, spoken=True, grounded=True),
        )

    # -- talking to the model --------------------------------------------------------------------

    async def _complete(
        self, ctx: llm.ChatContext, tools: tuple[Tool, ...], text: SentenceStream
    ) -> _Completion:
        done = _Completion(text)
        function_tools: list[llm.Tool] = [
            llm.function_tool(_never_called, raw_schema=t.schema()) for t in tools
        ]
        stream = self.model.chat(
            chat_ctx=ctx,
            tools=list(function_tools),
            conn_options=self._conn,
            tool_choice="auto" if function_tools else NOT_GIVEN,
        )
        # The per-request timeout covers a silent server; this one covers a server that
        # trickles forever.
        deadline = time.perf_counter() + self.timeout * 2.5
        try:
            async with stream:
                iterator = stream.__aiter__()
                while True:
                    waited = time.perf_counter()
                    remaining = deadline - waited
                    if remaining <= 0:
                        raise TimeoutError
                    try:
                        chunk = await asyncio.wait_for(iterator.__anext__(), remaining)
                    except StopAsyncIteration:
                        break
                    if self.timing.first_sentence_at is None:
                        self.timing.model_ms += (time.perf_counter() - waited) * 1000
                    if chunk.delta is None:
                        continue
                    if chunk.delta.tool_calls:
                        done.calls.extend(chunk.delta.tool_calls)
                    if chunk.delta.content:
                        text.feed(chunk.delta.content)
        except (APIError, TimeoutError) as exc:
            raise ModelFailed(f"{type(exc).__name__}: {exc}") from exc
        return done

    # -- failures --------------------------------------------------------------------------------

    def _failed(self, call: CallState, exc: Exception) -> None:
        memory = self._memory(call)
        memory.failures += 1
        logger.warning(
            "model failed; this turn uses the offline brain",
            extra={"call_id": call.call_id, "error": str(exc), "failures": memory.failures},
        )

    async def _fallback(
        self, exc: Exception, text: str, expect: Expectation, call: CallState, now: dt.datetime
    ) -> Interpretation:
        self._failed(call, exc)
        understood = await self.offline.interpret(text, expect, call, now=now)
        if self._memory(call).failures >= self.max_failures:
            return replace(understood, request=ModelRequest("unavailable"))
        return understood

    def _refuse(self, call: CallState, refusal: Refusal, now: dt.datetime) -> None:
        logger.warning(
            "model tool call refused",
            extra={"call_id": call.call_id, "tool": refusal.name, "reason": refusal.reason},
        )
        call.record("event", f"refused tool '{refusal.name}': {refusal.reason}", now)

    def _open(self, now: dt.datetime) -> bool:
        return is_open(self.bot.bot.hours, now.astimezone(bot_timezone(self.bot.bot)))


def function_call_item(call: llm.FunctionToolCall) -> llm.FunctionCall:
    return llm.FunctionCall(call_id=call.call_id, name=call.name, arguments=call.arguments or "{}")


async def _never_called(**_: Any) -> None:
    # The brain reads tool calls itself; livekit's tool execution is not used.
    raise RuntimeError("tools are dispatched by the brain")


def _drop(_: str) -> None:
    pass


def _caller_turns(call: CallState, text: str) -> list[str]:
    """What the caller said or keyed recently, this turn included (masked where sensitive)."""
    lines = [
        line.text
        for line in call.transcript[-prompt.HISTORY_LINES :]
        if line.role in ("caller", "keypad")
    ]
    return [*lines, text] if text else lines


def _outcome_text(outcome: ActionOutcome) -> Mapping[str, Any] | str:
    if outcome.declined:
        return "The caller said no; the action was not run."
    if outcome.ok:
        return {"ok": True, "result": outcome.response}
    return {"ok": False, "error": outcome.error or "failed"}
