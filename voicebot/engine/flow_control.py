"""Moving through flows: speaking, waiting, ``next``, jumps, calls and returns.

One :class:`FlowControl` lives for one engine turn (one caller event) and collects the bot's
actions for that turn. Step types are in :mod:`voicebot.engine.steps`, event handling in
:mod:`voicebot.engine.dialogue`.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import TYPE_CHECKING, Any

from voicebot.engine.context import expression_context
from voicebot.engine.events import BotAction, Expectation, Listen, Say
from voicebot.engine.languages import builtin_line, local_value
from voicebot.engine.state import CallState, Frame, StepAddress, Waiting, WaitKind
from voicebot.flows import expressions as ex
from voicebot.flows.checks import END
from voicebot.flows.schema import Branch, StepBase, Text

if TYPE_CHECKING:
    from voicebot.engine.dialogue import DialogueEngine

logger = logging.getLogger("voicebot.engine")

TRIGGER_SCOPE = "@trigger"
LIMIT_SCOPE = "@limit"
MAX_STEPS_PER_TURN = 200


class EngineLoop(RuntimeError):
    """A flow went round in circles without waiting for the caller."""


class FlowControl:
    def __init__(self, engine: DialogueEngine, state: CallState, now: dt.datetime) -> None:
        self.engine = engine
        self.bot = engine.bot
        self.state = state
        self.now = now
        self.out: list[BotAction] = []
        self._steps_run = 0
        # How this turn reached where it is: triggers, limits and on_* branches taken, which
        # tell a handoff's reason category (engine/reasons.py).
        self.path: list[str] = []

    # -- expressions ------------------------------------------------------------------------

    def context(self, **extra: Any) -> dict[str, Any]:
        waiting = self.state.waiting
        return expression_context(
            self.state,
            self.bot.bot,
            self.now,
            queues=list(self.bot.queues),
            attempts=waiting.attempts if waiting else 0,
            **extra,
        )

    def render(self, text: str, **extra: Any) -> str:
        try:
            return ex.render(text, self.context(**extra))
        except ex.ExpressionError as exc:
            # A broken template must not silence the bot: speak the literal parts.
            logger.warning("template failed", extra={"error": str(exc), "flow": self.state.flow})
            return " ".join(ex.strip_templates(text).split())

    def check(self, condition: str, **extra: Any) -> bool:
        try:
            return ex.condition(condition, self.context(**extra))
        except ex.ExpressionError as exc:
            logger.warning(
                "condition failed; treated as false",
                extra={"error": str(exc), "condition": condition, "flow": self.state.flow},
            )
            return False

    def value(self, source: Any, **extra: Any) -> Any:
        try:
            return ex.value(source, self.context(**extra))
        except ex.ExpressionError as exc:
            logger.warning("value failed", extra={"error": str(exc), "flow": self.state.flow})
            return None

    # -- output -----------------------------------------------------------------------------

    def local(self, value: Any) -> Any:
        """The current language's version of a per-language value (docs/languages.md)."""
        return local_value(value, self.state.language, self.bot.bot.language)

    def pick(self, text: Text) -> str:
        line: str | list[str] | None = self.local(text)
        if isinstance(line, str):
            return builtin_line(line, self.state.language)
        if not line:
            return ""
        # Seeded by call and position so a call (and a conversation test) is reproducible.
        rng = random.Random(f"{self.state.call_id}:{len(self.state.transcript)}")
        return rng.choice(line)

    def say(
        self, text: Text | None, *, barge_in: bool = True, prompt: bool = False, **extra: Any
    ) -> str:
        if text is None:
            return ""
        line = self.render(self.pick(text), **extra).strip()
        if not line:
            return ""
        self.out.append(Say(line, barge_in=barge_in))
        self.state.record("bot", line, self.now)
        if prompt:
            self.state.last_prompt = line
        return line

    def wait(
        self,
        kind: WaitKind,
        expect: Expectation,
        *,
        address: StepAddress | None = None,
        timeout: float | None = None,
        keep_counts: bool = False,
        terminator: str = "#",
        max_digits: int | None = None,
        pending: Any = None,
    ) -> None:
        previous = self.state.waiting
        waiting = Waiting(kind=kind, address=address, pending=pending)
        if keep_counts and previous is not None:
            waiting.no_input, waiting.no_match = previous.no_input, previous.no_match
            waiting.attempts = previous.attempts
        self.state.waiting = waiting
        limit = timeout or self.bot.bot.limits.no_input_timeout
        self.out.append(Listen(expect, limit, terminator, max_digits))

    def timeout_for(self, step: StepBase | None) -> float:
        own = getattr(step, "no_input_timeout", None)
        return float(own or self.bot.bot.limits.no_input_timeout)

    # -- navigation -------------------------------------------------------------------------

    def resolve(self, address: StepAddress) -> StepBase:
        scope, index, inline = address
        step: Any
        if scope == TRIGGER_SCOPE:
            step = self.bot.bot.triggers[index].step
        elif scope == LIMIT_SCOPE:
            step = self.bot.bot.limits.on_limit
        else:
            step = self.bot.flows[scope].steps[index]
        for key in inline:
            step = getattr(step, key)
        if not isinstance(step, StepBase):
            raise LookupError(f"no step at {address}")
        return step

    def label(self, address: StepAddress) -> str:
        scope, index, inline = address
        step = self.resolve(address)
        name = step.id or f"{index + 1}"
        return f"{scope}.{name}" + "".join(f".{k}" for k in inline)

    def run_from(self, address: StepAddress | None) -> None:
        """Run steps until one waits for the caller or the call leaves the bot."""
        while address is not None and not self.state.ended:
            self._steps_run += 1
            if self._steps_run > MAX_STEPS_PER_TURN:
                raise EngineLoop(f"more than {MAX_STEPS_PER_TURN} steps without a caller turn")
            scope, index, inline = address
            if not scope.startswith("@") and not inline:
                if self.state.stack and self.state.stack[-1].flow == scope:
                    self.state.stack[-1].index = index
                else:
                    self.state.stack.append(Frame(scope, index))
            step = self.resolve(address)
            self.state.steps_reached.append(self.label(address))
            if scope == TRIGGER_SCOPE and not inline:
                self.path.append(f"trigger:{index}")
            elif scope == LIMIT_SCOPE and not inline:
                self.path.append("limit")
            elif inline:
                self.path.append(inline[-1])
            address = self.start_step(step, address)

    def start_step(self, step: StepBase, address: StepAddress) -> StepAddress | None:
        raise NotImplementedError  # provided by StepRunner

    def resume(self) -> StepAddress | None:
        raise NotImplementedError  # provided by the dialogue turn

    def after(self, step: StepBase, address: StepAddress) -> StepAddress | None:
        """Where to go once ``step`` has done its work (its ``next``, else the following step)."""
        nxt = step.next
        if isinstance(nxt, str):
            return self.goto(nxt, address)
        if isinstance(nxt, list):
            chosen = self.branch(nxt)
            if chosen is not None:
                return self.goto(chosen, address)
        return self.fall_through(address)

    def branch(self, branches: list[Branch]) -> str | None:
        for branch in branches:
            if branch.otherwise is not None:
                return branch.otherwise
            if branch.condition is not None and self.check(branch.condition):
                return branch.then
        return None

    def fall_through(self, address: StepAddress) -> StepAddress | None:
        scope, index, inline = address
        if inline:
            # An inline step without `next` carries on as its owner step would have.
            parent: StepAddress = (scope, index, inline[:-1])
            return self.after(self.resolve(parent), parent)
        if scope.startswith("@"):
            return self.resume()
        if index + 1 < len(self.bot.flows[scope].steps):
            return (scope, index + 1, ())
        return self.finish_flow()

    def goto(self, target: str, address: StepAddress) -> StepAddress | None:
        scope = address[0]
        if target == END:
            if scope == TRIGGER_SCOPE:
                return self.resume()  # the trigger's own step is done; carry on with the call
            if scope == LIMIT_SCOPE:
                self.state.stack = []  # the step that hit its limit is abandoned
            return self.finish_flow()
        if not scope.startswith("@"):
            for i, step in enumerate(self.bot.flows[scope].steps):
                if step.id == target:
                    return (scope, i, ())
        if target in self.bot.flows:
            return self.enter_flow(target, replace=True)
        raise LookupError(f"'{target}' is neither a step of '{scope}' nor a flow")

    def enter_flow(self, name: str, *, replace: bool) -> StepAddress:
        self.state.waiting = None
        if replace and self.state.stack:
            self.state.end_flows("left", self.state.stack[-1].flow)
            self.state.stack[-1] = Frame(name, 0)
        elif replace:
            self.state.stack = [Frame(name, 0)]
        else:
            self.state.stack.append(Frame(name, 0))
        self.state.flows_run.append(name)
        self.state.flow_outcomes.append([name, None])
        # A flow may speak another language than the bot (dates and numbers are read by it);
        # in a bot of several languages the call keeps the caller's (docs/languages.md).
        if not self.bot.bot.multilingual:
            self.state.language = self.bot.flows[name].language or self.bot.bot.language
        return (name, 0, ())

    def finish_flow(self) -> StepAddress | None:
        """The current flow is done: return to the flow that called it, or to open talk."""
        if self.state.stack:
            self.state.end_flows("completed", self.state.stack.pop().flow)
        if self.state.stack:
            frame = self.state.stack[-1]
            caller_address: StepAddress = (frame.flow, frame.index, ())
            return self.after(self.resolve(caller_address), caller_address)
        self.say(self.bot.bot.anything_else, prompt=True)
        self.wait_open()
        return None

    def wait_open(self, *, keep_counts: bool = False) -> None:
        for frame in self.state.stack:
            self.state.end_flows("left", frame.flow)
        self.state.stack = []
        self.wait("open", Expectation("open"), keep_counts=keep_counts)
