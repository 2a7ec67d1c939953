"""The dialogue engine: a pure state machine from caller events to bot actions.

``DialogueEngine`` holds a validated bot and nothing per call; ``CallState`` holds the call.
``engine.handle(state, event)`` never raises: an unexpected error becomes a logged event, an
apology and a handoff to the default queue with reason ``technical error``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TypeVar

from voicebot.engine.context import greeting_for
from voicebot.engine.events import (
    ActionCompleted,
    BotAction,
    CallerEvent,
    CallerSaid,
    CallStarted,
    Expectation,
    Interpretation,
    KeysPressed,
    KnowledgeAnswered,
    Listen,
    ModelAnswered,
    ModelReply,
    Say,
    SearchKnowledge,
    Silence,
)
from voicebot.engine.flow_control import TRIGGER_SCOPE
from voicebot.engine.languages import language_changed_line
from voicebot.engine.state import CallState, StepAddress
from voicebot.engine.steps import (
    DEFAULT_NO_INPUT,
    NO_ANSWER,
    PHONE,
    YES_NO,
    StepRunner,
    card_stage,
    collect_expectation,
    in_language,
    llm_expectation,
    menu_expectation,
)
from voicebot.flows.schema import (
    ActionStep,
    AnswerStep,
    BotDefinition,
    CollectStep,
    HandoffStep,
    LlmStep,
    MenuStep,
)
from voicebot.handoff.packet import CallerInfo
from voicebot.nlu.parsers import ParseResult, parse_keypad
from voicebot.privacy.cards import mask_card_data

logger = logging.getLogger("voicebot.engine")
S = TypeVar("S")

OPEN_NO_MATCH = "Sorry, I didn't catch that. Could you say it another way?"
OPEN_NO_INPUT = "Are you still there? How can I help you?"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DialogueEngine:
    """Runs calls through a bot's flows. One instance serves every call of a bot."""

    def __init__(
        self,
        bot: BotDefinition,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
        llm: bool = False,
    ) -> None:
        self.bot = bot
        self.clock = clock
        # With an LLM brain `llm` steps run; without, their `fallback` does.
        self.llm = llm
        self.no_answer = NO_ANSWER
        # The first flow whose `trigger` names an intent is the one that intent starts.
        self.intent_flows: dict[str, str] = {}
        for name, flow in bot.flows.items():
            for intent in flow.triggers:
                self.intent_flows.setdefault(intent, name)
        self.default_queue = self._default_queue()

    def _default_queue(self) -> str:
        if self.bot.bot.default_queue:
            return self.bot.bot.default_queue
        if "general" in self.bot.queues:
            return "general"
        return next(iter(self.bot.queues), "general")

    def new_call(
        self,
        *,
        caller: CallerInfo | None = None,
        call_id: str | None = None,
        language: str | None = None,
    ) -> CallState:
        """A new call, in the bot's default language or in ``language`` (one it declares:
        anything else is a ValueError, never a call in a language the flows lack)."""
        languages = self.bot.bot.spoken_languages
        if language is not None and language not in languages:
            raise ValueError(
                f"language '{language}' is not one of the bot's ({', '.join(languages)})"
            )
        state = CallState(
            caller=caller or CallerInfo(),
            language=language or self.bot.bot.language,
            language_chosen=language is not None,
        )
        if call_id:
            state.call_id = call_id
        return state

    def expectation(self, state: CallState) -> Expectation:
        """What the bot is waiting for, so the brain can read the next turn the right way."""
        waiting = state.waiting
        if waiting is None or state.ended:
            return Expectation("none")
        if waiting.kind in ("confirm", "callback_offer", "llm_confirm"):
            return in_language(YES_NO, state.language)  # "sí" is a yes on a Spanish call
        if waiting.kind == "callback_number":
            return in_language(PHONE, state.language)
        if waiting.kind == "open" or waiting.address is None:
            return Expectation("open")
        step = _Turn(self, state, self.clock()).resolve(waiting.address)
        if isinstance(step, CollectStep):
            return collect_expectation(step, state.language, card_stage(waiting.pending))
        if isinstance(step, MenuStep):
            return menu_expectation(step)
        if isinstance(step, LlmStep) and waiting.kind == "llm":
            return llm_expectation(step, self._render(state, step.llm))
        return Expectation("none")

    def _render(self, state: CallState, text: str) -> str:
        return _Turn(self, state, self.clock()).render(text)

    def handle(self, state: CallState, event: CallerEvent) -> list[BotAction]:
        turn = _Turn(self, state, self.clock())
        try:
            turn.dispatch(event)
        except Exception:
            logger.exception(
                "engine error; handing off", extra={"call_id": state.call_id, "flow": state.flow}
            )
            if not state.ended:
                turn.technical_handoff()
        return turn.out

    def fail(self, state: CallState, reason: str = "technical error") -> list[BotAction]:
        """Used by the runtime when something outside the engine broke during the call."""
        turn = _Turn(self, state, self.clock())
        if not state.ended:
            turn.technical_handoff(reason)
        return turn.out


class _Turn(StepRunner):
    """One caller event's worth of engine work."""

    def dispatch(self, event: CallerEvent) -> None:
        state = self.state
        if state.ended:
            return
        if isinstance(event, CallStarted):
            self.start_call_flow()
        elif isinstance(event, CallerSaid):
            self.caller_said(event)
        elif isinstance(event, KeysPressed):
            self.keys_pressed(event)
        elif isinstance(event, Silence):
            self.silence(event)
        elif isinstance(event, ActionCompleted | KnowledgeAnswered):
            self.result_arrived(event)
        elif isinstance(event, ModelAnswered):
            self.model_answered(event.understood)

    def start_call_flow(self) -> None:
        self.say(greeting_for(self.bot.bot, self.state), prompt=True)
        if self.bot.bot.start:
            self.run_from(self.enter_flow(self.bot.bot.start, replace=True))
        else:
            self.wait_open()

    # -- caller speech and keys ---------------------------------------------------------------

    def caller_said(self, event: CallerSaid) -> None:
        state, understood = self.state, event.understood
        waiting = state.waiting
        sensitive = self._sensitive_wait()
        card = self._card_wait()
        # Words said at a card prompt are kept as nothing at all: they may be the card.
        said = "****" if card else event.text
        state.record("caller", said, self.now, intent=understood.intent, sensitive=sensitive)
        if understood.language is not None and not card:
            changed = self.set_language(understood.language, chosen=understood.language_request)
            if understood.language_request and understood.option is None:
                # "Can we speak Spanish?" is about the call, not a request to act on: confirm
                # in the new language and ask the question the caller is at again.
                self.language_reask(changed)
                return
        # what a knowledge search or an unanswered-question report may see of the turn
        state.last_caller_text = None if sensitive else mask_card_data(event.text)
        self._feel(understood.anger, understood.sentiment)
        for slot, value in understood.extra_slots.items():
            if state.slots.get(slot) is None:
                state.slots[slot] = value
                state.model_filled.add(slot)
        # Model prose first: when it was streamed, the caller has already heard it.
        self.model_spoke(understood.reply)
        if self.model_request(understood):
            return
        consumed = self._consumes(understood.slot, understood.option)
        if self.fire_triggers(
            intent=None if consumed else understood.intent, confidence=understood.confidence
        ):
            return
        if waiting is None:
            return
        kind = waiting.kind
        if card and kind == "collect":
            self.step_input(ParseResult(ok=False, error="keypad_only"))
            return
        if kind == "open":
            self.open_input(
                understood.intent,
                understood.confidence,
                flow=understood.flow,
                reply=understood.reply,
            )
        elif kind == "menu":
            self.menu_speech(
                understood.option, understood.intent, understood.confidence, flow=understood.flow
            )
        elif kind == "llm":
            self.run_from(self.llm_turn(understood, caller_turn=True))
        elif kind == "llm_action":
            pass  # the action is still running; its result decides
        elif (
            kind == "collect"
            and understood.slot is None
            and understood.reply is not None
            and understood.reply.grounded
        ):
            self.resume()  # a side question, answered: ask for the slot again
        else:
            self.step_input(understood.slot)

    def model_answered(self, understood: Interpretation) -> None:
        """The model's move when the engine consulted it (an ``llm`` step, no caller turn)."""
        self.model_spoke(understood.reply)
        if self.model_request(understood):
            return
        if self.fire_triggers(intent=understood.intent, confidence=understood.confidence):
            return
        waiting = self.state.waiting
        if waiting is not None and waiting.kind == "llm":
            self.run_from(self.llm_turn(understood, caller_turn=False))

    def keys_pressed(self, event: KeysPressed) -> None:
        state = self.state
        digits = event.digits.rstrip("#*") or event.digits
        state.record("keypad", digits, self.now, sensitive=self._sensitive_wait())
        if self.fire_triggers(intent=None, confidence=0.0):
            return
        waiting = state.waiting
        if waiting is None:
            return
        if waiting.kind == "menu":
            step = self._waiting_step(MenuStep)
            for i, option in enumerate(step.options):
                if option.key is not None and option.key == digits[:1]:
                    self.run_from(self.menu_choose(step, self._address(), i))
                    return
            self.run_from(self.menu_failed(step, self._address(), no_input=False))
        elif waiting.kind == "open":
            self.open_input(None, 0.0, spoken=False)
        elif waiting.kind == "llm":
            self.say("Please tell me in words.")
            self.out.append(Listen(self.engine.expectation(state), self.timeout_for(None)))
        elif waiting.kind in ("llm_action", "action", "answer", "open_answer"):
            return  # a result is on its way; keys pressed meanwhile change nothing
        elif waiting.kind == "collect" and not (
            self._waiting_step(CollectStep).dtmf or self._waiting_step(CollectStep).keypad_only
        ):
            self.step_input(ParseResult(ok=False, error="keypad_not_allowed"))
        else:
            spec = self.engine.expectation(state).slot
            self.step_input(parse_keypad(spec, digits, now=self.now) if spec else None)

    def silence(self, event: Silence) -> None:
        waiting = self.state.waiting
        if waiting is None or waiting.kind in ("action", "answer", "llm_action", "open_answer"):
            return
        step = self.resolve(waiting.address) if waiting.address else None
        if event.seconds < self.timeout_for(step):
            return
        self.state.record("event", f"no input ({event.seconds:g}s)", self.now)
        if waiting.kind == "open":
            waiting.no_input += 1
            if waiting.no_input > self.bot.bot.limits.max_no_input:
                self.run_from(self.limit("caller could not be understood"))
                return
            self.say(self._line(self.bot.bot.no_input, waiting.no_input, OPEN_NO_INPUT))
            self.wait_open(keep_counts=True)
        elif waiting.kind == "menu":
            self.run_from(
                self.menu_failed(self._waiting_step(MenuStep), self._address(), no_input=True)
            )
        elif waiting.kind == "collect":
            step_c = self._waiting_step(CollectStep)
            self.run_from(self.collect_failed(step_c, self._address(), no_input=True))
        elif waiting.kind == "llm":
            waiting.no_input += 1
            if waiting.no_input > self.bot.bot.limits.max_no_input:
                self.run_from(self.limit("caller could not be understood"))
                return
            self.say(self._line(self.bot.bot.no_input, waiting.no_input, OPEN_NO_INPUT))
            self.out.append(Listen(self.engine.expectation(self.state), self.timeout_for(step)))
        else:
            # Confirmations and the callback offer: silence reads as "no answer yet".
            waiting.no_input += 1
            if waiting.no_input > self.bot.bot.limits.max_no_input:
                self.step_input(ParseResult(ok=False, error="no_input"))
                return
            self.say(DEFAULT_NO_INPUT)
            if self.state.last_prompt:
                self.say(self.state.last_prompt)
            self.out.append(Listen(self.engine.expectation(self.state), self.timeout_for(step)))

    def result_arrived(self, event: ActionCompleted | KnowledgeAnswered) -> None:
        waiting = self.state.waiting
        if isinstance(event, KnowledgeAnswered) and waiting and waiting.kind == "open_answer":
            self.open_answered(event)
            return
        if waiting is None or waiting.address is None:
            return
        if isinstance(event, ActionCompleted) and waiting.kind == "llm_action":
            self.run_from(self.llm_action_done(self._waiting_step(LlmStep), event))
        elif isinstance(event, ActionCompleted) and waiting.kind == "action":
            step_a = self._waiting_step(ActionStep)
            self.run_from(self.action_input(step_a, waiting.address, event))
        elif isinstance(event, KnowledgeAnswered) and waiting.kind == "answer":
            step_k = self._waiting_step(AnswerStep)
            self.run_from(self.answer_input(step_k, waiting.address, event))

    # -- by what the bot waits for ------------------------------------------------------------

    def open_input(
        self,
        intent: str | None,
        confidence: float,
        *,
        spoken: bool = True,
        flow: str | None = None,
        reply: ModelReply | None = None,
    ) -> None:
        waiting = self.state.waiting
        assert waiting is not None
        flow = flow or (self.engine.intent_flows.get(intent) if intent else None)
        if flow is not None:
            self._note_intent(intent or flow, confidence)
            self.run_from(self.enter_flow(flow, replace=True))
            return
        if reply is not None:
            # The model answered (from the documents) or asked the caller to clarify. A
            # clarification counts like a no-match, so a caller cannot be kept talking forever.
            if reply.grounded:
                self.say(self.bot.bot.anything_else, prompt=True)
                self.wait_open()
                return
            waiting.no_match += 1
            if waiting.no_match > self.bot.bot.limits.max_no_match:
                self.run_from(self.limit("caller could not be understood"))
                return
            self.wait_open(keep_counts=True)
            return
        fallback = self.bot.bot.knowledge_fallback
        question = self.state.last_caller_text
        if fallback is not None and question and intent is None and spoken:
            # A request no flow handles may still be a question the documents answer.
            self.out.append(SearchKnowledge(question, tuple(fallback.filter), fallback.min_score))
            waiting.kind = "open_answer"
            return
        self.open_no_match()

    def open_answered(self, found: KnowledgeAnswered) -> None:
        fallback = self.bot.bot.knowledge_fallback
        threshold = fallback.min_score if fallback is not None else 1.0
        assert self.state.waiting is not None
        self.state.waiting.kind = "open"
        if found.text and found.score >= threshold:
            self.say(found.text)
            self.note_sources(found)
            self.say(self.bot.bot.anything_else, prompt=True)
            self.wait_open()
            return
        self.state.last_sources = []
        self.state.note_unanswered(self.state.last_caller_text or "")
        self.open_no_match()

    def open_no_match(self) -> None:
        waiting = self.state.waiting
        assert waiting is not None
        waiting.no_match += 1
        if waiting.no_match > self.bot.bot.limits.max_no_match:
            self.run_from(self.limit("caller could not be understood"))
            return
        self.say(self._line(self.bot.bot.no_match, waiting.no_match, OPEN_NO_MATCH))
        self.wait_open(keep_counts=True)

    def menu_speech(
        self,
        option: int | None,
        intent: str | None,
        confidence: float,
        *,
        flow: str | None = None,
    ) -> None:
        step = self._waiting_step(MenuStep)
        if option is not None and 0 <= option < len(step.options):
            self.run_from(self.menu_choose(step, self._address(), option))
            return
        # A caller who answers a menu with a request of their own ("my internet is down")
        # gets that flow instead of a "press 1 or 2" loop.
        flow = flow or (self.engine.intent_flows.get(intent) if intent else None)
        if flow is not None:
            self._note_intent(intent or flow, confidence)
            self.run_from(self.enter_flow(flow, replace=True))
            return
        self.run_from(self.menu_failed(step, self._address(), no_input=False))

    def step_input(self, parsed: ParseResult | None) -> None:
        waiting = self.state.waiting
        assert waiting is not None and waiting.address is not None
        address = waiting.address
        if waiting.kind == "collect":
            self.run_from(self.collect_input(self._waiting_step(CollectStep), address, parsed))
        elif waiting.kind == "confirm":
            self.run_from(self.confirm_input(self._waiting_step(CollectStep), address, parsed))
        elif waiting.kind == "callback_offer":
            self.run_from(self.callback_input(self._waiting_step(HandoffStep), address, parsed))
        elif waiting.kind == "callback_number":
            self.run_from(
                self.callback_number_input(self._waiting_step(HandoffStep), address, parsed)
            )
        elif waiting.kind == "llm_confirm":
            self.run_from(self.llm_confirm_input(address, parsed))

    # -- triggers -----------------------------------------------------------------------------

    def fire_triggers(self, *, intent: str | None, confidence: float) -> bool:
        """Global triggers, in order; the first that matches runs its inline step."""
        for i, trigger in enumerate(self.bot.bot.triggers):
            if trigger.intent is not None:
                matched = intent == trigger.intent
            else:
                matched = trigger.condition is not None and self.check(trigger.condition)
            if matched:
                if trigger.intent is not None:
                    self._note_intent(trigger.intent, confidence, business=False)
                self.state.record("event", f"trigger {i + 1}", self.now)
                self.run_from((TRIGGER_SCOPE, i, ()))
                return True
        return False

    def resume(self) -> StepAddress | None:
        """After a trigger's step: wait again for what the bot was waiting for."""
        if self.state.ended:
            return None
        waiting = self.state.waiting
        if waiting is None or waiting.kind == "open":
            self.wait_open(keep_counts=True)
            return None
        step = self.resolve(waiting.address) if waiting.address else None
        said = [a.text for a in self.out if isinstance(a, Say)]
        if self.state.last_prompt and (not said or said[-1] != self.state.last_prompt):
            self.say(self.state.last_prompt)  # after a trigger's message, ask again
        self.out.append(Listen(self.engine.expectation(self.state), self.timeout_for(step)))
        return None

    def language_reask(self, changed: bool) -> None:
        """After a language request: say so, then ask again in that language."""
        state = self.state
        if changed:
            custom = self.bot.bot.language_changed
            self.say(custom if custom is not None else language_changed_line(state.language))
        waiting = state.waiting
        if waiting is None:
            return
        step = self.resolve(waiting.address) if waiting.address else None
        if isinstance(step, MenuStep) and waiting.kind == "menu":
            self.say(step.prompt, prompt=True)
            self.out.append(Listen(self.engine.expectation(state), self.timeout_for(step)))
        elif isinstance(step, CollectStep) and waiting.kind == "collect":
            self.say(self._reprompt(step, card_stage(waiting.pending)), prompt=True)
            self.out.append(Listen(self.engine.expectation(state), self.timeout_for(step)))
        elif waiting.kind == "open":
            self.say("How can I help you?", prompt=True)
            self.wait_open(keep_counts=True)
        else:
            self.resume()

    # -- helpers ------------------------------------------------------------------------------

    def _consumes(self, parsed: ParseResult | None, option: int | None) -> bool:
        """Whether the turn already answers the current step (then intent triggers stay quiet)."""
        waiting = self.state.waiting
        if waiting is None or waiting.kind == "open":
            return False
        if waiting.kind == "menu":
            return option is not None
        if waiting.kind == "collect" and waiting.address is not None:
            step = self.resolve(waiting.address)
            # Anything parses as free text, so "talk to a person" at a text prompt must still
            # reach the agent trigger rather than become the answer.
            if isinstance(step, CollectStep) and step.type == "text":
                return False
        return parsed is not None and parsed.ok

    def _sensitive_wait(self) -> bool:
        waiting = self.state.waiting
        if waiting is None or waiting.kind not in ("collect", "confirm") or waiting.address is None:
            return False
        step = self.resolve(waiting.address)
        return isinstance(step, CollectStep) and step.is_sensitive

    def _card_wait(self) -> bool:
        waiting = self.state.waiting
        if waiting is None or waiting.kind not in ("collect", "confirm") or waiting.address is None:
            return False
        step = self.resolve(waiting.address)
        return isinstance(step, CollectStep) and step.keypad_only

    def _feel(self, anger: float, sentiment: float) -> None:
        self.state.anger = anger
        self.state.sentiment = sentiment
        self.state.sentiment_trend.append(sentiment)

    def _note_intent(self, intent: str | None, confidence: float, *, business: bool = True) -> None:
        self.state.last_intent = intent
        if business or self.state.intent is None:
            self.state.intent = intent
            self.state.confidence = confidence

    def _address(self) -> StepAddress:
        waiting = self.state.waiting
        assert waiting is not None and waiting.address is not None
        return waiting.address

    def _waiting_step(self, kind: type[S]) -> S:
        step = self.resolve(self._address())
        if not isinstance(step, kind):
            raise TypeError(f"waiting on a {type(step).__name__}, expected {kind.__name__}")
        return step
