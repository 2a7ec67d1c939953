"""One call at run time: feeds caller events to the engine and carries out what it asks.

The engine is pure; this is where its actions meet the world: webhooks run, the knowledge base
is searched, handoff packets are delivered. Nothing here lets an exception reach the audio or
text loop: a failure becomes the engine's apology and a handoff with reason ``technical error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicebot.channels.identity import customer_of
from voicebot.engine.events import (
    ActionCompleted,
    BotAction,
    CallerEvent,
    CallerSaid,
    CallStarted,
    ConsultModel,
    Handoff,
    Hangup,
    Interpretation,
    KeysPressed,
    KnowledgeAnswered,
    Listen,
    ModelAnswered,
    RunAction,
    Say,
    SearchKnowledge,
    Silence,
)
from voicebot.engine.state import CallState
from voicebot.flows import expressions as ex
from voicebot.handoff.packet import HandoffPacket, PastContact
from voicebot.history.contacts import last_contact_view

if TYPE_CHECKING:
    from voicebot.actions.executor import ActionExecutor
    from voicebot.runtime.bot import BotRuntime

logger = logging.getLogger("voicebot.call")

# Receives each line the moment it is ready (the audio path starts TTS on it).
LineSink = Callable[[str], None]

# Webhook results can start further webhooks; a flow that chains more than this in one turn is
# looping (its graph check could not see it because the loop goes through results).
_MAX_FOLLOW_UPS = 50
# The customer history is one indexed query; a database slower than this must not delay hello.
HISTORY_TIMEOUT = 1.0


@dataclass
class Reply:
    """What the bot did in answer to one caller event."""

    lines: list[Say] = field(default_factory=list)
    listen: Listen | None = None
    handoff: HandoffPacket | None = None
    hangup: Hangup | None = None
    on_line: LineSink | None = field(default=None, repr=False, compare=False)

    def add(self, line: Say) -> None:
        self.lines.append(line)
        if self.on_line is not None:
            self.on_line(line.text)

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)

    @property
    def ended(self) -> bool:
        return self.handoff is not None or self.hangup is not None


class CallRuntime:
    def __init__(self, bot: BotRuntime, state: CallState, actions: ActionExecutor) -> None:
        self.bot = bot
        self.state = state
        self.actions = actions
        self.customer_id: str | None = None
        self.past_contacts: list[PastContact] = []

    @property
    def ended(self) -> bool:
        return self.state.ended

    async def start(self, on_line: LineSink | None = None) -> Reply:
        await self._look_up_caller()
        await self._look_up_history()
        return await self._drive(CallStarted(), Reply(on_line=on_line))

    async def _look_up_history(self) -> None:
        """The customer's last contacts on any channel (``caller.history``, the returning
        greeting, the packet's ``history``). Slow or failing, the call goes on without them."""
        caller = self.state.caller
        found = customer_of(caller, region=self.state.language)
        if found is None:
            return
        self.customer_id = found
        lookup = self.bot.history
        if lookup is None:
            return
        try:
            contacts = await asyncio.wait_for(
                lookup(found, self.state.call_id), timeout=HISTORY_TIMEOUT
            )
        except Exception as exc:
            logger.warning(
                "customer history unavailable; going on without it",
                extra={"call_id": self.state.call_id, "detail": type(exc).__name__},
            )
            return
        now = self.bot.local_now()
        self.past_contacts = list(contacts)
        self.state.history = [
            last_contact_view(c, now, language=self.state.language) for c in self.past_contacts
        ]

    async def _look_up_caller(self) -> None:
        """``bot.lookup``: fill in the caller (name, VIP, attributes) before the greeting. A
        failure or a slow answer is logged and the call goes on with what it has."""
        lookup = self.bot.loaded.definition.bot.lookup
        if lookup is None:
            return
        call_id = self.state.call_id
        context = self.bot.engine_context(self.state)
        try:
            args = ex.value(lookup.args, context)
            done = await asyncio.wait_for(
                self.actions.run(lookup.action, args, context), timeout=lookup.timeout
            )
        except Exception as exc:  # a timeout, or a template that failed
            logger.warning(
                "caller lookup failed; going on without it",
                extra={"call_id": call_id, "action": lookup.action, "detail": repr(exc)},
            )
            return
        if not done.ok:
            logger.warning(
                "caller lookup failed; going on without it",
                extra={"call_id": call_id, "action": lookup.action, "detail": done.error},
            )
            return
        result = done.response if isinstance(done.response, dict) else {}
        try:
            if lookup.caller:
                found = ex.value(lookup.caller, {**context, "result": result})
            else:
                found = {k: result[k] for k in ("name", "vip") if k in result}
                attributes = result.get("attributes")
                if isinstance(attributes, dict):
                    found.update(attributes)
        except ex.ExpressionError as exc:
            logger.warning(
                "caller lookup result not understood",
                extra={"call_id": call_id, "action": lookup.action, "detail": str(exc)},
            )
            return
        caller = self.state.caller
        for key, value in found.items():
            if value is None or value == "":
                continue  # the CRM did not say: keep what the call already knows
            if key == "name":
                caller.name = str(value)
            elif key == "vip":
                caller.vip = bool(value)
            elif key != "number":  # the number is the network's, not the CRM's
                caller.attributes[key] = value

    async def caller_said(self, text: str, on_line: LineSink | None = None) -> Reply:
        """One caller utterance. ``on_line`` gets each line as soon as it is ready, including
        the model's sentences while it is still writing the rest."""
        reply = Reply(on_line=on_line)
        text = " ".join(text.split())
        if not text:
            return await self._drive(Silence(0.0), reply)
        expect = self.bot.engine.expectation(self.state)
        try:
            understood = await self.bot.brain.interpret(
                text, expect, self.state, now=self.bot.local_now(), speak=self._speaker(reply)
            )
        except Exception:
            logger.exception(
                "brain failed; turn read as not understood", extra={"call_id": self.state.call_id}
            )
            understood = Interpretation()
        return await self._drive(CallerSaid(text, understood), reply)

    async def keys_pressed(self, digits: str, on_line: LineSink | None = None) -> Reply:
        anger = self.bot.brain.keypad_sentiment(self.state)
        return await self._drive(KeysPressed(digits, anger), Reply(on_line=on_line))

    async def silence(self, seconds: float, on_line: LineSink | None = None) -> Reply:
        return await self._drive(Silence(seconds), Reply(on_line=on_line))

    async def give_up(self, reason: str, on_line: LineSink | None = None) -> Reply:
        """Hand off now, for something the channel cannot do (a chat at a keypad-only step):
        the engine's technical handoff, with ``reason`` on the packet."""
        reply = Reply(on_line=on_line)
        if not self.state.ended:
            await self._perform(self.bot.engine.fail(self.state, reason), reply, follow_ups=False)
            self.bot.brain.end_call(self.state)
        return reply

    @staticmethod
    def _speaker(reply: Reply) -> Callable[[str], None]:
        return lambda text: reply.add(Say(text))

    async def _drive(self, event: CallerEvent, reply: Reply) -> Reply:
        await self._refresh_queue_stats()
        try:
            await self._perform(self.bot.engine.handle(self.state, event), reply)
        except Exception:
            logger.exception(
                "call runtime error; handing off", extra={"call_id": self.state.call_id}
            )
            try:
                await self._perform(self.bot.engine.fail(self.state), reply, follow_ups=False)
            except Exception:
                logger.exception(
                    "could not hand off after an error", extra={"call_id": self.state.call_id}
                )
        if self.state.ended:
            self.bot.brain.end_call(self.state)
        return reply

    async def _refresh_queue_stats(self) -> None:
        if self.bot.queue_stats is None:
            return
        try:
            stats = await asyncio.wait_for(self.bot.queue_stats(), timeout=1.0)
        except Exception as exc:
            # Flows then see the last figures; a slow database must not delay the turn.
            logger.warning("queue figures unavailable", extra={"detail": str(exc)})
            return
        self.state.queues.update({name: dict(figures) for name, figures in stats.items()})

    async def _perform(
        self, actions: list[BotAction], reply: Reply, *, follow_ups: bool = True
    ) -> None:
        queue = list(actions)
        rounds = 0
        while queue:
            action = queue.pop(0)
            result: CallerEvent | None = None
            if isinstance(action, Say):
                reply.add(action)
            elif isinstance(action, Listen):
                reply.listen = action
            elif isinstance(action, Hangup):
                reply.hangup = action
            elif isinstance(action, Handoff):
                reply.handoff = await self._deliver(action.packet)
            elif isinstance(action, RunAction) and follow_ups:
                result = await self._run_action(action)
            elif isinstance(action, SearchKnowledge) and follow_ups:
                result = await self._search(action)
            elif isinstance(action, ConsultModel) and follow_ups:
                result = await self._consult(action, reply)
            if result is not None:
                rounds += 1
                if rounds > _MAX_FOLLOW_UPS:
                    raise RuntimeError("too many actions in one turn")
                queue.extend(self.bot.engine.handle(self.state, result))

    async def _run_action(self, action: RunAction) -> ActionCompleted:
        context = self.bot.engine_context(self.state)
        return await self.actions.run(action.name, action.args, context)

    async def _consult(self, action: ConsultModel, reply: Reply) -> ModelAnswered:
        try:
            understood = await self.bot.brain.follow_up(
                self.bot.engine.expectation(self.state),
                self.state,
                now=self.bot.local_now(),
                outcome=action.outcome,
                speak=self._speaker(reply),
            )
        except Exception:
            logger.exception("brain follow-up failed", extra={"call_id": self.state.call_id})
            understood = Interpretation()
        return ModelAnswered(understood)

    async def _search(self, action: SearchKnowledge) -> KnowledgeAnswered:
        try:
            return await self.bot.knowledge.answer(
                action.question,
                tags=action.tags,
                min_score=action.min_score,
                today=self.bot.local_now().date(),
                **self._language_filter(),
            )
        except Exception:
            logger.exception("knowledge search failed", extra={"call_id": self.state.call_id})
            return KnowledgeAnswered(text=None, score=0.0)

    def _language_filter(self) -> dict[str, str]:
        """A bot of several languages answers from the documents in the call's language."""
        if self.bot.loaded.definition.bot.multilingual:
            return {"language": self.state.language}
        return {}

    async def _deliver(self, packet: HandoffPacket) -> HandoffPacket:
        try:
            summary = await self.bot.brain.summarise(packet, self.state)
        except Exception:
            logger.exception(
                "summary failed; keeping the assembled one", extra={"call_id": self.state.call_id}
            )
            summary = None
        update: dict[str, Any] = {"summary": summary} if summary else {}
        if self.customer_id and not packet.customer_id:
            update |= {"customer_id": self.customer_id, "history": list(self.past_contacts)}
        if update:
            packet = packet.model_copy(update=update)
            self.state.handoff = packet
        try:
            await self.bot.handoffs.deliver(packet)
        except Exception:
            # The caller still hears the transfer; the packet stays on the call's state.
            logger.exception(
                "handoff delivery failed",
                extra={"call_id": self.state.call_id, "handoff_id": packet.id},
            )
        return packet
