"""What each step type does: where a flow step runs.

Each ``start_<kind>`` runs a step when the flow reaches it and returns where to go next, or
None when the bot now waits for the caller (or for an action's or the knowledge base's
result). The ``<kind>_input`` methods continue a waiting step with what came back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from voicebot.engine.events import (
    ActionCompleted,
    ActionOutcome,
    ConsultModel,
    Expectation,
    Handoff,
    Hangup,
    Interpretation,
    KnowledgeAnswered,
    Listen,
    LlmTask,
    MenuChoice,
    ModelReply,
    RunAction,
    Say,
    SearchKnowledge,
)
from voicebot.engine.flow_control import LIMIT_SCOPE, FlowControl
from voicebot.engine.languages import generated_line
from voicebot.engine.reasons import reason_kind
from voicebot.engine.state import StepAddress, Waiting
from voicebot.flows import expressions as ex
from voicebot.flows.schema import (
    ActionStep,
    AnswerStep,
    CallStep,
    CollectStep,
    DtmfRules,
    EndStep,
    HandoffStep,
    LlmStep,
    MenuOption,
    MenuStep,
    RepeatStep,
    SayStep,
    SetStep,
    StepBase,
    Text,
)
from voicebot.handoff.builder import build_packet, normalise_priority
from voicebot.handoff.packet import Priority
from voicebot.nlu.parsers import ParseResult, SlotSpec, get_locale

DEFAULT_NO_MATCH = "Sorry, I didn't get that."
DEFAULT_NO_INPUT = "Sorry, I didn't hear anything."
DEFAULT_ANNOUNCE = "Please hold while I put you through to a colleague."
TECHNICAL_APOLOGY = (
    "I'm sorry, something went wrong on our side. Let me put you through to a colleague."
)
NO_ANSWER = "I'm sorry, I don't have an answer to that."
YES_NO = Expectation("yes_no", slot=SlotSpec(type="yes_no"), dtmf=True)
PHONE = Expectation("collect", slot=SlotSpec(type="phone"), slot_name="callback_number", dtmf=True)
DEFAULT_MIN_SCORE = 0.35
GOODBYE = "Thank you for calling. Goodbye."
LLM_NO_MATCH = "Sorry, I didn't get that. Could you say it another way?"
# A `card` collect: the number, then the expiry, then the security code, each keyed in.
CARD_STAGE_TYPES = {"number": "card", "expiry": "card_expiry", "cvv": "card_cvv"}
CARD_NEXT = {"number": "expiry", "expiry": "cvv"}
CARD_MAX_KEYS = {"number": 19, "expiry": 4, "cvv": 4}
CARD_PROMPTS = {
    "number": "Please key in your card number on your telephone keypad, then press hash.",
    "expiry": "Now key in the expiry date: two digits for the month and two for the year.",
    "cvv": "Finally, key in the three or four digit security code from the back of the card.",
}
CARD_KEYPAD_ONLY = "For your security, please use your telephone keypad for card details."
CARD_RETRY = {
    "number": "Sorry, that card number doesn't look right.",
    "expiry": "Sorry, that expiry date doesn't look right.",
    "cvv": "Sorry, that security code doesn't look right.",
}


def in_language(expect: Expectation, language: str) -> Expectation:
    """One of the engine's own questions (YES_NO, PHONE) read in the call's language, when
    the parsers know it (docs/languages.md); else as before, in English."""
    slot = expect.slot
    if slot is None or slot.language == language or get_locale(language) is None:
        return expect
    return replace(expect, slot=replace(slot, language=language))


def slot_spec(step: CollectStep, language: str) -> SlotSpec:
    synonyms = {c.value: tuple(c.say) for c in step.choices if not isinstance(c, str) and c.say}
    return SlotSpec(
        type=step.type,
        length=step.length,
        min_length=step.min_length,
        max_length=step.max_length,
        choices=tuple(step.choice_values),
        choice_synonyms=synonyms,
        language=language,
    )


def menu_expectation(step: MenuStep) -> Expectation:
    # The words of every language: a caller may answer "facturación" before the call has
    # noticed they speak Spanish, and one language's option words rarely mean another option.
    options = tuple(MenuChoice(i, o.key, tuple(o.words())) for i, o in enumerate(step.options))
    return Expectation("menu", options=options, dtmf=True)


def llm_expectation(step: LlmStep, instructions: str) -> Expectation:
    until = step.until if step.until and not ex.is_condition(step.until) else None
    return Expectation(
        "llm", task=LlmTask(instructions=instructions, actions=tuple(step.tools), until=until)
    )


def collect_expectation(step: CollectStep, language: str, stage: str | None = None) -> Expectation:
    spec = slot_spec(step, step.language or language)
    if step.type == "card":
        spec = SlotSpec(type=CARD_STAGE_TYPES[stage or "number"], language=spec.language)
    return Expectation(
        "collect",
        slot=spec,
        slot_name=step.collect,
        sensitive=step.is_sensitive,
        dtmf=bool(step.dtmf) or step.keypad_only,
    )


def card_stage(pending: Any) -> str | None:
    """Which part of a `card` collect the caller is keying in (kept in ``Waiting.pending``)."""
    return pending.get("stage") if isinstance(pending, dict) else None


class StepRunner(FlowControl):
    def start_step(self, step: StepBase, address: StepAddress) -> StepAddress | None:
        handler = getattr(self, f"start_{step.kind}")
        result: StepAddress | None = handler(step, address)
        return result

    def run_ref(self, ref: str | StepBase, address: StepAddress, key: str) -> StepAddress | None:
        """Follow an ``on_*`` value: a step id or flow name, or the inline step under ``key``."""
        if isinstance(ref, str):
            self.path.append(key)
            return self.goto(ref, address)
        scope, index, inline = address
        return (scope, index, (*inline, key))

    # -- say, set, call, end, repeat ---------------------------------------------------------

    def start_say(self, step: SayStep, address: StepAddress) -> StepAddress | None:
        self.say(step.say, barge_in=step.barge_in)
        return self.after(step, address)

    def start_set(self, step: SetStep, address: StepAddress) -> StepAddress | None:
        for slot, source in step.set.items():
            if slot == "language":
                # `set: {language: es-ES}` (a language menu): the call's language, not a slot
                self.set_language(str(self.value(source)), chosen=True)
                continue
            self.state.slots[slot] = self.value(source)
        return self.after(step, address)

    def start_call(self, step: CallStep, address: StepAddress) -> StepAddress | None:
        return self.enter_flow(step.call, replace=False)

    def start_end(self, step: EndStep, address: StepAddress) -> StepAddress | None:
        self.state.forget_cards()
        self.say(step.end, barge_in=False)
        self.out.append(Hangup(step.disposition))
        self.state.ended = True
        self.state.end_flows("completed")
        self.state.disposition = step.disposition or "completed"
        self.state.waiting = None
        return None

    def start_repeat(self, step: RepeatStep, address: StepAddress) -> StepAddress | None:
        if self.state.last_prompt:
            self.say(self.state.last_prompt, prompt=True)
        if step.next is None:
            return self.resume()
        return self.after(step, address)

    # -- llm ------------------------------------------------------------------------------------

    def start_llm(self, step: LlmStep, address: StepAddress) -> StepAddress | None:
        if not self.engine.llm:
            return self.llm_give_up(step, address)
        if self._until_met(step):
            return self.after(step, address)
        # The model opens the step itself; the runtime asks it and feeds its answer back.
        self.state.waiting = Waiting("llm", address=address)
        self.out.append(ConsultModel())
        return None

    def _until_met(self, step: LlmStep) -> bool:
        return (
            bool(step.until) and ex.is_condition(step.until or "") and self.check(step.until or "")
        )

    def llm_give_up(self, step: LlmStep, address: StepAddress) -> StepAddress | None:
        self.state.waiting = None
        if step.fallback is not None:
            return self.run_ref(step.fallback, address, "fallback")
        return self.after(step, address)

    def llm_turn(self, understood: Interpretation, *, caller_turn: bool) -> StepAddress | None:
        """The model's move inside an ``llm`` step: an action, done, or just talk."""
        waiting = self.state.waiting
        assert waiting is not None and waiting.address is not None
        address = waiting.address
        step = self.resolve(address)
        assert isinstance(step, LlmStep)
        request = understood.request
        if caller_turn:
            waiting.attempts += 1
        if request is not None and request.kind == "done":
            return self.llm_finish(step, address)
        if request is not None and request.kind == "action" and request.action:
            if request.action not in step.tools:
                # The brain only offers the step's tools; this is the second lock on the door.
                self.state.record("event", f"refused action '{request.action}'", self.now)
            else:
                return self.llm_action(step, address, request.action, request.args)
        if self._until_met(step):
            return self.llm_finish(step, address)
        if waiting.attempts >= step.max_turns:
            return self.llm_give_up(step, address)
        if understood.reply is None and caller_turn:
            waiting.no_match += 1
            if waiting.no_match > self.bot.bot.limits.max_no_match:
                return self.llm_give_up(step, address)
            self.say(LLM_NO_MATCH)
        self.out.append(Listen(self.engine.expectation(self.state), self.timeout_for(step)))
        return None

    def llm_finish(self, step: LlmStep, address: StepAddress) -> StepAddress | None:
        self.state.waiting = None
        return self.after(step, address)

    def llm_action(
        self, step: LlmStep, address: StepAddress, name: str, args: dict[str, Any]
    ) -> StepAddress | None:
        definition = self.bot.actions[name]
        if definition.confirm:
            question = (
                definition.confirm
                if isinstance(definition.confirm, str)
                else f"Shall I go ahead and {_lower_first(definition.description or name)}?"
            )
            self.say(question, prompt=True, args=args)
            self.wait(
                "llm_confirm", YES_NO, address=address, keep_counts=True, pending=(name, args)
            )
            return None
        return self.llm_run(address, name, args)

    def llm_run(self, address: StepAddress, name: str, args: dict[str, Any]) -> StepAddress | None:
        previous = self.state.waiting
        self.out.append(RunAction(name, args))
        self.state.waiting = Waiting(
            "llm_action",
            address=address,
            attempts=previous.attempts if previous else 0,
            pending=name,
        )
        return None

    def llm_confirm_input(
        self, address: StepAddress, parsed: ParseResult | None
    ) -> StepAddress | None:
        waiting = self.state.waiting
        assert waiting is not None
        name, args = waiting.pending
        if parsed is not None and parsed.ok and parsed.value is True:
            return self.llm_run(address, name, args)
        if (parsed is not None and parsed.ok and parsed.value is False) or (
            waiting.no_match >= self.bot.bot.limits.max_no_match
        ):
            self._llm_back(ActionOutcome(name, ok=False, declined=True))
            return None
        waiting.no_match += 1
        self.say("Please say yes or no.")
        if self.state.last_prompt:
            self.say(self.state.last_prompt)
        self.out.append(Listen(YES_NO, self.timeout_for(None)))
        return None

    def llm_action_done(self, step: LlmStep, done: ActionCompleted) -> StepAddress | None:
        waiting = self.state.waiting
        assert waiting is not None and waiting.address is not None
        self.state.forget_cards()
        self.state.result = done.response if done.ok else {"error": done.error or "failed"}
        if self._until_met(step):
            return self.llm_finish(step, waiting.address)
        self._llm_back(ActionOutcome(done.name, done.ok, done.response, done.error))
        return None

    def _llm_back(self, outcome: ActionOutcome) -> None:
        """Tell the model what became of its action; its answer comes back as an event."""
        waiting = self.state.waiting
        assert waiting is not None
        self.state.waiting = Waiting(
            "llm",
            address=waiting.address,
            attempts=waiting.attempts,
            no_input=waiting.no_input,
        )
        self.out.append(ConsultModel(outcome))

    def model_spoke(self, reply: ModelReply | None) -> None:
        """Model prose: already heard if it was streamed, else said now (never as a template:
        the model's words are not flow content)."""
        if reply is None or not reply.text:
            return
        if not reply.spoken:
            self.out.append(Say(reply.text))
        self.state.record("bot", reply.text, self.now)
        if reply.grounded:
            self.note_sources(KnowledgeAnswered(reply.text, 1.0, reply.sources))
        else:
            # A question the model asked is what "repeat" repeats; an answer is not (after a
            # side question in a collect, the collect's prompt is asked again).
            self.state.last_prompt = reply.text

    def model_request(self, understood: Interpretation) -> bool:
        """A hand-off, an end or a failed assistant: done here, whatever the bot waited for."""
        request = understood.request
        if request is None:
            return False
        if request.kind == "unavailable":
            self.technical_handoff("assistant unavailable")
            return True
        if request.kind == "handoff":
            reason = request.reason or "caller asked for a person"
            self.handoff_now(self.engine.default_queue, [], "normal", reason, None, asked=True)
            return True
        if request.kind == "end":
            self.state.forget_cards()
            self.say(GOODBYE, barge_in=False)
            self.out.append(Hangup("completed"))
            self.state.ended = True
            self.state.disposition = "completed"
            self.state.waiting = None
            return True
        return False

    # -- collect -------------------------------------------------------------------------------

    def start_collect(self, step: CollectStep, address: StepAddress) -> StepAddress | None:
        filled = self.state.slots.get(step.collect) is not None and not step.always_ask
        if filled and self._prefilled_ok(step):
            return self.after(step, address)  # never ask a caller twice
        if step.type == "card":
            self.state.forget_cards()  # a second card replaces the first
        self.say(self._prompt(step), barge_in=step.barge_in, prompt=True)
        pending = {"stage": "number"} if step.type == "card" else None
        self._wait_collect(step, address, keep_counts=False, pending=pending)
        return None

    def _prefilled_ok(self, step: CollectStep) -> bool:
        """A value the model caught early still has to pass the step's rejections."""
        if step.collect not in self.state.model_filled:
            return True
        self.state.model_filled.discard(step.collect)
        for rejection in step.rejections:
            if self.check(rejection.condition):
                self.say(rejection.say)
                self.state.slots.pop(step.collect, None)
                return False
        return True

    def _prompt(self, step: CollectStep, stage: str | None = None) -> Text:
        if step.type == "card":
            own = {"number": step.prompt, "expiry": step.expiry_prompt, "cvv": step.cvv_prompt}
            return own[stage or "number"] or CARD_PROMPTS[stage or "number"]
        return step.prompt or f"Please tell me your {step.collect.replace('_', ' ')}."

    def _reprompt(self, step: CollectStep, stage: str | None = None) -> Text:
        if step.type == "card" and stage not in (None, "number"):
            return self._prompt(step, stage)
        return step.reprompt or self._prompt(step, stage)

    def _wait_collect(
        self, step: CollectStep, address: StepAddress, *, keep_counts: bool, pending: Any = None
    ) -> None:
        rules = step.dtmf if isinstance(step.dtmf, DtmfRules) else DtmfRules()
        stage = card_stage(pending)
        max_digits = rules.max_digits or step.length or step.max_length
        if stage is not None:
            max_digits = CARD_MAX_KEYS[stage]
        self.wait(
            "collect",
            collect_expectation(step, self.state.language, stage),
            address=address,
            timeout=self.timeout_for(step),
            keep_counts=keep_counts,
            terminator=rules.terminator,
            max_digits=max_digits,
            pending=pending,
        )

    def _card_progress(
        self, step: CollectStep, address: StepAddress, value: Any
    ) -> dict[str, str] | None:
        """One part of a card keyed in: ask for the next, or the whole card when complete."""
        waiting = self.state.waiting
        assert waiting is not None
        progress = dict(waiting.pending) if isinstance(waiting.pending, dict) else {}
        stage = progress.pop("stage", "number")
        progress[stage] = str(value)
        following = CARD_NEXT.get(stage)
        if following is None:
            return {"number": progress["number"], "expiry": progress["expiry"], "cvv": value}
        self.say(self._prompt(step, following), prompt=True)
        self._wait_collect(
            step, address, keep_counts=True, pending={**progress, "stage": following}
        )
        return None

    def collect_input(
        self, step: CollectStep, address: StepAddress, parsed: ParseResult | None
    ) -> StepAddress | None:
        waiting = self.state.waiting
        assert waiting is not None
        if parsed is None or not parsed.ok:
            return self.collect_failed(
                step, address, no_input=False, error=parsed.error if parsed else None
            )
        value = parsed.value
        if step.type == "card":
            value = self._card_progress(step, address, value)
            if value is None:
                return None
        trial = {**self.state.slots, step.collect: value}
        for rejection in step.rejections:
            if self.check(rejection.condition, slots=trial):
                self.say(rejection.say, slots=trial)
                waiting.attempts += 1
                if waiting.attempts >= self._max_attempts(step):
                    return self.fail(step, address, f"could not get a valid {step.collect}")
                self.say(step.reprompt or self._prompt(step), prompt=True)
                self._wait_collect(step, address, keep_counts=True, pending=self._restart(step))
                return None
        if step.confirm:
            self.say(self._confirmation(step, value), prompt=True, slots=trial)
            self.wait("confirm", YES_NO, address=address, keep_counts=True, pending=value)
            return None
        self.accept(step, value)
        return self.after(step, address)

    def _confirmation(self, step: CollectStep, value: Any) -> Text:
        if not isinstance(step.confirm, bool):
            return step.confirm
        language = self.state.language
        if isinstance(value, dict):
            shown = generated_line("card_ending", language, last=str(value.get("number", ""))[-4:])
        elif step.is_sensitive:
            shown = generated_line("number_ending", language, last=str(value)[-4:])
        elif step.type in ("digits", "phone", "card_number"):
            shown = " ".join(str(value).lstrip("+"))
        elif isinstance(value, bool):
            shown = generated_line("yes" if value else "no", language)
        else:
            shown = str(value)
        return generated_line("confirm", language, shown=shown)

    def confirm_input(
        self, step: CollectStep, address: StepAddress, parsed: ParseResult | None
    ) -> StepAddress | None:
        waiting = self.state.waiting
        assert waiting is not None
        if parsed is not None and parsed.ok and parsed.value is True:
            self.accept(step, waiting.pending)
            return self.after(step, address)
        if parsed is not None and parsed.ok and parsed.value is False:
            waiting.attempts += 1
            if waiting.attempts >= self._max_attempts(step):
                return self.fail(step, address, f"could not confirm the {step.collect}")
            self.say("Sorry about that.")
            self.say(step.reprompt or self._prompt(step), prompt=True)
            self._wait_collect(step, address, keep_counts=True, pending=self._restart(step))
            return None
        waiting.no_match += 1
        if waiting.no_match > self.bot.bot.limits.max_no_match:
            return self.fail(step, address, f"could not confirm the {step.collect}")
        self.say("Please say yes or no.")
        self.say(self._confirmation(step, waiting.pending), prompt=True)
        self.wait("confirm", YES_NO, address=address, keep_counts=True, pending=waiting.pending)
        return None

    def accept(self, step: CollectStep, value: Any) -> None:
        self.state.slots[step.collect] = value
        if step.is_sensitive:
            self.state.sensitive.add(step.collect)
        if step.type == "card":
            self.state.card_slots.add(step.collect)

    @staticmethod
    def _restart(step: CollectStep) -> dict[str, str] | None:
        """A card refused or denied is keyed in again from its number."""
        return {"stage": "number"} if step.type == "card" else None

    def _max_attempts(self, step: CollectStep) -> int:
        return step.max_attempts or self.bot.bot.limits.max_no_match + 1

    def collect_failed(
        self,
        step: CollectStep,
        address: StepAddress,
        *,
        no_input: bool,
        error: str | None = None,
    ) -> StepAddress | None:
        waiting = self.state.waiting
        assert waiting is not None
        pending = waiting.pending if step.type == "card" else None
        stage = card_stage(pending)
        if no_input:
            waiting.no_input += 1
            over = waiting.no_input > self.bot.bot.limits.max_no_input
            apology = DEFAULT_NO_INPUT
        else:
            waiting.no_match += 1
            waiting.attempts += 1
            over = waiting.attempts >= self._max_attempts(step)
            apology = DEFAULT_NO_MATCH
            if step.type == "card":
                apology = (
                    CARD_KEYPAD_ONLY if error == "keypad_only" else CARD_RETRY[stage or "number"]
                )
        if over:
            return self.fail(
                step, address, f"could not get the caller's {step.collect.replace('_', ' ')}"
            )
        self.say(apology)
        self.say(self._reprompt(step, stage), prompt=True)
        self._wait_collect(step, address, keep_counts=True, pending=pending)
        return None

    def set_language(self, language: str, *, chosen: bool) -> bool:
        """Switch the call to ``language`` if the bot speaks it; True when it changed."""
        if language not in self.bot.bot.spoken_languages:
            self.state.record("event", f"language {language} is not one of the bot's", self.now)
            return False
        self.state.language_chosen = self.state.language_chosen or chosen
        if language == self.state.language:
            return False
        self.state.language = language
        self.state.record("event", f"language {language}", self.now)
        return True

    def _line(self, lines: list[str] | dict[str, list[str]], count: int, default: str) -> str:
        lines = self.local(lines) or []
        if not lines:
            return default
        return lines[min(count, len(lines)) - 1]

    def fail(self, step: StepBase, address: StepAddress, reason: str) -> StepAddress | None:
        if self.state.waiting is not None and card_stage(self.state.waiting.pending):
            self.state.waiting.pending = None  # the part of a card keyed in so far
        on_fail = getattr(step, "on_fail", None)
        if on_fail is not None:
            self.state.waiting = None
            return self.run_ref(on_fail, address, "on_fail")
        return self.limit(reason)

    def limit(self, reason: str) -> StepAddress | None:
        """The caller could not be understood: the bot's ``limits.on_limit``, else a handoff."""
        self.state.waiting = None
        on_limit = self.bot.bot.limits.on_limit
        if isinstance(on_limit, StepBase):
            return (LIMIT_SCOPE, 0, ())
        if isinstance(on_limit, str):
            return self.goto(on_limit, (LIMIT_SCOPE, 0, ()))
        self.path.append("limit")
        self.handoff_now(self.engine.default_queue, [], "normal", reason, None)
        return None

    # -- menu ----------------------------------------------------------------------------------

    def start_menu(self, step: MenuStep, address: StepAddress) -> StepAddress | None:
        self.say(step.prompt, barge_in=step.barge_in, prompt=True)
        self.wait(
            "menu",
            menu_expectation(step),
            address=address,
            timeout=self.timeout_for(step),
        )
        return None

    def menu_choose(self, step: MenuStep, address: StepAddress, index: int) -> StepAddress | None:
        option: MenuOption = step.options[index]
        self.state.waiting = None
        if isinstance(option.next, str):
            return self.goto(option.next, address)
        if isinstance(option.next, list):
            chosen = self.branch(option.next)
            if chosen is not None:
                return self.goto(chosen, address)
        return self.after(step, address)

    def menu_failed(
        self, step: MenuStep, address: StepAddress, *, no_input: bool
    ) -> StepAddress | None:
        waiting = self.state.waiting
        assert waiting is not None
        limits = self.bot.bot.limits
        if no_input:
            waiting.no_input += 1
            count, lines = waiting.no_input, self.local(step.no_input) or []
            allowed = len(lines) if lines else limits.max_no_input
            default = DEFAULT_NO_INPUT
        else:
            waiting.no_match += 1
            count, lines = waiting.no_match, self.local(step.no_match) or []
            allowed = len(lines) if lines else limits.max_no_match
            default = DEFAULT_NO_MATCH
        if count > allowed:
            return self.fail(step, address, "the caller did not choose a menu option")
        self.say(self._line(lines, count, default))
        self.say(step.prompt, prompt=True)
        self.wait(
            "menu",
            menu_expectation(step),
            address=address,
            timeout=self.timeout_for(step),
            keep_counts=True,
        )
        return None

    # -- answer --------------------------------------------------------------------------------

    def start_answer(self, step: AnswerStep, address: StepAddress) -> StepAddress | None:
        question = self.render(step.answer) if step.answer else (self.state.last_caller_text or "")
        self.out.append(SearchKnowledge(question, tuple(step.filter), step.min_score))
        self.wait("answer", Expectation("none"), address=address)
        return None

    def answer_input(
        self, step: AnswerStep, address: StepAddress, found: KnowledgeAnswered
    ) -> StepAddress | None:
        self.state.waiting = None
        threshold = step.min_score if step.min_score is not None else DEFAULT_MIN_SCORE
        if found.text and found.score >= threshold:
            self.say(found.text)
            self.note_sources(found)
            return self.after(step, address)
        self.state.last_sources = []
        self.state.note_unanswered(
            self.render(step.answer) if step.answer else (self.state.last_caller_text or "")
        )
        self.say(self.engine.no_answer)
        if step.on_no_answer is not None:
            return self.run_ref(step.on_no_answer, address, "on_no_answer")
        return self.after(step, address)

    def note_sources(self, found: KnowledgeAnswered) -> None:
        """The passages behind an answer: on the turn (tests) and for the handoff packet."""
        self.state.last_sources = list(found.sources)
        known = {s.id for s in self.state.sources}
        self.state.sources.extend(s for s in found.sources if s.id not in known)

    # -- action --------------------------------------------------------------------------------

    def start_action(self, step: ActionStep, address: StepAddress) -> StepAddress | None:
        args = self.value(step.args) or {}
        self.out.append(RunAction(step.action, args))
        self.wait("action", Expectation("none"), address=address)
        return None

    def action_input(
        self, step: ActionStep, address: StepAddress, done: ActionCompleted
    ) -> StepAddress | None:
        self.state.waiting = None
        # Card details go to the one action that follows their collect, and no further.
        self.state.forget_cards()
        if done.ok:
            self.state.result = done.response
            for slot, source in step.save.items():
                self.state.slots[slot] = self.value(source)
            return self.after(step, address)
        self.state.result = {"error": done.error or "failed"}
        if step.on_error is not None:
            return self.run_ref(step.on_error, address, "on_error")
        self.technical_handoff(f"action '{step.action}' failed")
        return None

    # -- handoff -------------------------------------------------------------------------------

    def start_handoff(self, step: HandoffStep, address: StepAddress) -> StepAddress | None:
        if step.closed is not None and not self.context()["hours"]["open"]:
            return self.run_ref(step.closed, address, "closed")
        queue, priority, reason = self._handoff_target(step)
        wait = self.state.queues.get(queue, {}).get("estimated_wait")
        offer = step.offer_callback_over
        if offer is not None and isinstance(wait, int | float) and wait > offer:
            minutes = max(1, round(wait / 60))
            self.say(
                generated_line(
                    "callback_offer" if minutes != 1 else "callback_offer_one",
                    self.state.language,
                    minutes=minutes,
                ),
                prompt=True,
            )
            self.wait("callback_offer", YES_NO, address=address)
            return None
        self.handoff_now(queue, step.skills, priority, reason, step.announce)
        return None

    def _handoff_target(self, step: HandoffStep) -> tuple[str, Priority, str]:
        queue = self.render(step.handoff) if ex.is_template(step.handoff) else step.handoff
        if queue not in self.bot.queues:
            queue = self.engine.default_queue
        priority = normalise_priority(self.value(step.priority))
        reason = self.render(step.reason) if step.reason else "transferred by the flow"
        return queue, priority, reason

    def callback_input(
        self, step: HandoffStep, address: StepAddress, parsed: ParseResult | None
    ) -> StepAddress | None:
        queue, priority, reason = self._handoff_target(step)
        if parsed is None or not parsed.ok or parsed.value is False:
            self.handoff_now(queue, step.skills, priority, reason, step.announce)
            return None
        if self.state.caller.number:
            self.callback_confirmed(step, self.state.caller.number)
            return None
        self.say("What number should we call you back on?", prompt=True)
        self.wait("callback_number", PHONE, address=address)
        return None

    def callback_number_input(
        self, step: HandoffStep, address: StepAddress, parsed: ParseResult | None
    ) -> StepAddress | None:
        waiting = self.state.waiting
        assert waiting is not None
        if parsed is not None and parsed.ok:
            self.callback_confirmed(step, str(parsed.value))
            return None
        waiting.no_match += 1
        if waiting.no_match > self.bot.bot.limits.max_no_match:
            queue, priority, reason = self._handoff_target(step)
            self.handoff_now(queue, step.skills, priority, reason, step.announce)
            return None
        self.say("Sorry, I didn't get that. Please say or key in your phone number.", prompt=True)
        self.wait("callback_number", PHONE, address=address, keep_counts=True)
        return None

    def callback_confirmed(self, step: HandoffStep, number: str) -> None:
        queue, priority, reason = self._handoff_target(step)
        self.state.slots["callback_number"] = number
        self.handoff_now(queue, step.skills, priority, reason, None, callback_number=number)
        self.say(generated_line("callback_confirmed", self.state.language, last=number[-4:]))
        self.out.append(Hangup("callback"))
        self.state.disposition = "callback"
        return None

    def handoff_now(
        self,
        queue: str,
        skills: list[str],
        priority: Priority,
        reason: str,
        announce: Text | None,
        *,
        callback_number: str | None = None,
        silent: bool = False,
        asked: bool = False,
    ) -> None:
        """Hand the call to a queue: the packet goes out before the caller hears the announce."""
        kind = reason_kind(self.path, reason, self.bot.bot.triggers, asked=asked)
        self.state.forget_cards()  # never handed to a person, not even masked
        packet = build_packet(
            self.state,
            self.bot,
            self.now,
            queue=queue,
            skills=list(skills),
            priority=priority,
            reason=reason,
            callback_number=callback_number,
        ).model_copy(update={"reason_kind": kind})
        self.out.append(Handoff(packet))
        self.state.end_flows("handoff")
        self.state.handoff = packet
        self.state.waiting = None
        if callback_number is None and not silent:
            self.say(announce or DEFAULT_ANNOUNCE, barge_in=False)
        self.state.ended = True
        self.state.disposition = self.state.disposition or "handoff"

    def technical_handoff(self, reason: str = "technical error") -> None:
        self.state.errors += 1
        self.path.append("technical")
        self.say(TECHNICAL_APOLOGY, barge_in=False)
        self.handoff_now(self.engine.default_queue, [], "high", reason, None, silent=True)


def _lower_first(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]
