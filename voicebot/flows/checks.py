"""The second validation pass: references between flows, steps, intents, queues and actions.

The schema pass proved every file has the right shape; this pass proves the pieces fit:
every ``next`` lands somewhere, every step can be reached, every name used is defined, and every
template and condition parses and uses only names that exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voicebot.flows import expressions as ex
from voicebot.flows.errors import FlowIssue
from voicebot.flows.schema import NEUTRAL as ANY_LANGUAGE
from voicebot.flows.schema import (
    ActionStep,
    AnswerStep,
    Branch,
    CallStep,
    CollectStep,
    ConversationTest,
    EndStep,
    Flow,
    HandoffExpectation,
    HandoffStep,
    LlmStep,
    MenuStep,
    RepeatStep,
    SayStep,
    SetStep,
    StepBase,
)
from voicebot.flows.yaml_source import PathKey, SourceMap

if TYPE_CHECKING:
    from voicebot.flows.loader import LoadedBot

END = "end"
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})


def step_label(step: StepBase, index: int) -> str:
    return f"'{step.id}'" if step.id else f"{index + 1} ({step.kind})"


def known_slots(flows: dict[str, Flow]) -> set[str]:
    """Every slot that some step can fill: collect, set and action ``save``."""
    slots: set[str] = {"callback_number"}  # filled by the callback offer of a handoff
    for flow in flows.values():
        for step, _ in walk_steps(flow):
            if isinstance(step, CollectStep):
                slots.add(step.collect)
            elif isinstance(step, SetStep):
                slots.update(step.set)
            elif isinstance(step, ActionStep):
                slots.update(step.save)
    return slots


def inline_steps(step: StepBase) -> Iterator[tuple[str, StepBase]]:
    """The inline steps held in a step's ``on_*`` keys (``on_fail: {handoff: billing}``)."""
    for key in ("on_fail", "on_error", "on_no_answer", "on_limit", "closed", "fallback"):
        value = getattr(step, key, None)
        if isinstance(value, StepBase):
            yield key, value


def walk_steps(flow: Flow) -> Iterator[tuple[StepBase, PathKey]]:
    """Every step of a flow, inline ones included, with its path below the flow."""

    def visit(step: StepBase, path: PathKey) -> Iterator[tuple[StepBase, PathKey]]:
        yield step, path
        for key, inner in inline_steps(step):
            yield from visit(inner, (*path, key))

    for i, step in enumerate(flow.steps):
        yield from visit(step, ("steps", i))


def targets(step: StepBase) -> Iterator[tuple[str, PathKey]]:
    """Every place a step can go by name, with the path of the key that names it."""
    yield from _next_targets(step.next, ("next",))
    if isinstance(step, MenuStep):
        for i, option in enumerate(step.options):
            yield from _next_targets(option.next, ("options", i, "next"))
    for key in ("on_fail", "on_error", "on_no_answer", "on_limit", "closed", "fallback"):
        value = getattr(step, key, None)
        if isinstance(value, str):
            yield value, (key,)


def _next_targets(value: str | list[Branch] | None, path: PathKey) -> Iterator[tuple[str, PathKey]]:
    if isinstance(value, str):
        yield value, path
    elif isinstance(value, list):
        for i, branch in enumerate(value):
            key = "else" if branch.otherwise is not None else "then"
            yield branch.target, (*path, i, key)


def falls_through(step: StepBase) -> bool:
    """Whether running the step can continue with the step written after it."""
    if isinstance(step, EndStep | RepeatStep):
        return False
    if isinstance(step, HandoffStep):
        return False
    if isinstance(step.next, str):
        return False
    if isinstance(step.next, list) and any(b.otherwise is not None for b in step.next):
        return False
    if isinstance(step, MenuStep):
        return any(o.next is None for o in step.options)
    return True


@dataclass
class _Checker:
    bot: LoadedBot
    source_map: SourceMap
    broken: set[str]

    def __post_init__(self) -> None:
        d = self.bot.definition
        self.issues: list[FlowIssue] = []
        self.slots = known_slots(d.flows)

    def error(
        self, path: PathKey, message: str, *, warning: bool = False, key: bool = False
    ) -> None:
        position = self.source_map.key(path) if key else self.source_map.locate(path)
        self.issues.append(FlowIssue(position, message, warning=warning))

    # -- names ------------------------------------------------------------------------------

    def queue(self, name: str, path: PathKey, where: str, verb: str = "hands off") -> None:
        if name in self.broken:
            return
        if name not in self.bot.definition.queues and not ex.is_template(name):
            self.error(
                path,
                f"{where} {verb} to queue '{name}', which is not defined"
                + self._hint(name, self.bot.definition.queues),
            )

    def intent(self, name: str, path: PathKey, where: str) -> None:
        if name not in self.bot.definition.intents and name not in self.broken:
            self.error(
                path,
                f"{where} uses intent '{name}', which is not defined"
                + self._hint(name, self.bot.definition.intents),
            )

    def _hint(self, name: str, options: Any) -> str:
        import difflib

        close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
        return f" (did you mean '{close[0]}'?)" if close else ""

    def template(self, text: Any, path: PathKey, where: str) -> None:
        if isinstance(text, list):
            for i, item in enumerate(text):
                self.template(item, (*path, i), where)
            return
        if isinstance(text, dict):
            for k, item in text.items():
                self.template(item, (*path, k), where)
            return
        if not isinstance(text, str) or not ex.is_template(text):
            return
        try:
            refs = ex.check_template(text)
        except ex.ExpressionError as exc:
            self.error(path, f"{where} has a template that does not parse: {exc}")
            return
        self._refs(refs, path, where)

    def spoken(self, value: Any, path: PathKey, where: str, *, what: str = "text") -> None:
        """Text the bot speaks (or words a caller says) must exist in every declared language
        and in no other (docs/languages.md). A plain value is the default language's."""
        if value is None:
            return
        languages = self.bot.definition.bot.spoken_languages
        declared = ", ".join(languages)
        if not isinstance(value, dict):
            for language in languages[1:]:
                if what == "text" or not isinstance(value, list):
                    self.error(path, f"{where} has no {language} {what}")
            return
        for language in value:
            if language != ANY_LANGUAGE and language not in languages:
                self.error(
                    (*path, language),
                    f"{where} has {what} in '{language}', which is not a language of the bot "
                    f"(bot.languages: {declared})",
                    key=True,
                )
        if ANY_LANGUAGE in value:
            if len(value) > 1:
                self.error(
                    (*path, ANY_LANGUAGE),
                    f"{where} has '{ANY_LANGUAGE}' (the same {what} in every language) and "
                    "per-language text: keep one or the other",
                    key=True,
                )
            return
        for language in languages:
            if language not in value:
                self.error(path, f"{where} has no {language} {what}")

    def language(self, value: Any, path: PathKey, where: str) -> None:
        if not isinstance(value, str) or ex.is_template(value):
            return
        languages = self.bot.definition.bot.spoken_languages
        if value not in languages:
            self.error(
                path,
                f"{where} sets language '{value}', which is not a language of the bot "
                f"(bot.languages: {', '.join(languages)})",
            )

    def condition(self, text: str, path: PathKey, where: str) -> None:
        try:
            refs = ex.check_condition(text)
        except ex.ExpressionError as exc:
            self.error(path, f"{where} has a condition that does not parse: {exc}")
            return
        self._refs(refs, path, where)

    def _refs(self, refs: ex.References, path: PathKey, where: str) -> None:
        for root in sorted(refs.roots - ex.ROOT_NAMES - _JINJA_GLOBALS):
            self.error(
                path,
                f"{where} uses '{root}', which is not a known name "
                f"(use one of: {', '.join(sorted(ex.ROOT_NAMES))})",
            )
        for slot in sorted(refs.slots - self.slots):
            self.error(
                path,
                f"{where} uses slot '{slot}', which no step ever fills"
                + self._hint(slot, self.slots),
            )

    # -- the bot ----------------------------------------------------------------------------

    def run(self) -> list[FlowIssue]:
        d = self.bot.definition
        b = d.bot
        if b.start is not None and b.start not in d.flows:
            self.error(
                ("bot", "start"),
                f"the bot starts with flow '{b.start}', which does not exist"
                + self._hint(b.start, d.flows),
            )
        if b.default_queue is not None:
            self.queue(b.default_queue, ("bot", "default_queue"), "the bot's default_queue")
        if b.lookup is not None:
            if b.lookup.action not in d.actions and b.lookup.action not in self.broken:
                self.error(
                    ("bot", "lookup", "action"),
                    f"the caller lookup calls action '{b.lookup.action}', which is not defined"
                    + self._hint(b.lookup.action, d.actions),
                )
            self.template(b.lookup.args, ("bot", "lookup", "args"), "the caller lookup")
            self.template(b.lookup.caller, ("bot", "lookup", "caller"), "the caller lookup")
        if not d.queues:
            self.error(
                ("bot",), "no queues are defined; a handoff needs at least one queue", warning=True
            )
        for name, queue in d.queues.items():
            if queue.overflow_to is not None:
                self.queue(
                    queue.overflow_to,
                    ("queues", name, "overflow_to"),
                    f"queue '{name}'",
                    "overflows",
                )
                if queue.overflow_to == name:
                    self.error(
                        ("queues", name, "overflow_to"), f"queue '{name}' overflows to itself"
                    )
        self.template(b.greeting, ("bot", "greeting"), "the greeting")
        if b.returning_greeting is not None:
            self.template(
                b.returning_greeting, ("bot", "returning_greeting"), "the returning greeting"
            )
        for key in (
            "greeting",
            "returning_greeting",
            "anything_else",
            "no_input",
            "no_match",
            "language_changed",
        ):
            if key == "greeting" or key in b.model_fields_set:
                self.spoken(getattr(b, key), ("bot", key), f"bot.{key}")
        for language in b.voices:
            if language not in b.spoken_languages:
                self.error(
                    ("bot", "voices", language),
                    f"bot.voices has a voice for '{language}', which is not a language of the "
                    f"bot (bot.languages: {', '.join(b.spoken_languages)})",
                    key=True,
                )
        for i, trigger in enumerate(b.triggers):
            path: PathKey = ("bot", "triggers", i)
            where = f"trigger {i + 1}"
            if trigger.intent is not None:
                self.intent(trigger.intent, (*path, "intent"), where)
            if trigger.condition is not None:
                self.condition(trigger.condition, (*path, "if"), where)
            self.step(trigger.step, path, where, None)
        if isinstance(b.limits.on_limit, StepBase):
            self.step(b.limits.on_limit, ("bot", "limits", "on_limit"), "limits.on_limit", None)
        elif isinstance(b.limits.on_limit, str):
            self.target(b.limits.on_limit, ("bot", "limits", "on_limit"), "limits.on_limit", None)
        started_by: dict[str, str] = {}
        for name, flow in d.flows.items():
            for starter in flow.triggers:
                if starter in started_by:
                    self.error(
                        ("flows", name, "trigger"),
                        f"flow '{name}' and flow '{started_by[starter]}' are both started by "
                        f"intent '{starter}'; an intent can start only one flow",
                    )
                started_by.setdefault(starter, name)
        for name, intent in d.intents.items():
            if not intent.examples and not intent.description:
                self.error(
                    ("intents", name),
                    f"intent '{name}' has neither examples nor a description, "
                    "so nothing can recognise it",
                )
            elif not intent.examples:
                self.error(
                    ("intents", name),
                    f"intent '{name}' has no examples, so it can only be recognised with an LLM",
                    warning=True,
                )
            else:
                self.intent_languages(name, intent.examples)
        for name, flow in d.flows.items():
            self.flow(name, flow)
        return self.issues

    def intent_languages(self, name: str, examples: list[str] | dict[str, list[str]]) -> None:
        languages = self.bot.definition.bot.spoken_languages
        given = set(examples) if isinstance(examples, dict) else {languages[0]}
        for language in given - set(languages):
            self.error(
                ("intents", name, "examples", language),
                f"intent '{name}' has examples in '{language}', which is not a language of the "
                f"bot (bot.languages: {', '.join(languages)})",
                key=True,
            )
        for language in languages:
            if language not in given:
                self.error(
                    ("intents", name, "examples"),
                    f"intent '{name}' has no {language} examples, so a caller speaking "
                    f"{language} can only start it with an LLM",
                    warning=True,
                )

    def flow(self, name: str, flow: Flow) -> None:
        base: PathKey = ("flows", name)
        for trigger in flow.triggers:
            self.intent(trigger, (*base, "trigger"), f"flow '{name}'")
        ids: dict[str, int] = {}
        for i, step in enumerate(flow.steps):
            if step.id is None:
                continue
            if step.id in ids:
                self.error(
                    (*base, "steps", i, "id"),
                    f"step id '{step.id}' is used twice in flow '{name}' "
                    f"(also step {ids[step.id] + 1})",
                )
            elif step.id == END:
                self.error((*base, "steps", i, "id"), "'end' is reserved and cannot be a step id")
            ids[step.id] = i
        for each, path in walk_steps(flow):
            index = path[1]
            assert isinstance(index, int)
            label = step_label(each, index) if len(path) == 2 else f"inline {each.kind}"
            where = f"step {label} in flow '{name}'"
            self.step(each, (*base, *path), where, (name, flow, ids))
        self.reachability(name, flow, ids)

    def target(
        self, target: str, path: PathKey, where: str, scope: tuple[str, Flow, dict[str, int]] | None
    ) -> None:
        if target == END or target in self.bot.definition.flows or target in self.broken:
            return
        if scope is not None and target in scope[2]:
            return
        names = list(self.bot.definition.flows) + (list(scope[2]) if scope else [])
        what = "step or flow" if scope else "flow"
        self.error(
            path,
            f"{where} goes to '{target}', which is not a {what} that exists"
            + self._hint(target, names),
        )

    def step(
        self,
        step: StepBase,
        path: PathKey,
        where: str,
        scope: tuple[str, Flow, dict[str, int]] | None,
    ) -> None:
        d = self.bot.definition
        for target, rel in targets(step):
            self.target(target, (*path, *rel), where, scope)
        if isinstance(step.next, list):
            for i, branch in enumerate(step.next):
                if branch.condition is not None:
                    self.condition(branch.condition, (*path, "next", i, "if"), where)
        for key, inner in inline_steps(step):
            if scope is None:  # triggers and limits: inline steps are checked here
                self.step(inner, (*path, key), where, None)
        if step.language is not None:
            self.language(step.language, (*path, "language"), where)
        if isinstance(step, SayStep):
            self.template(step.say, (*path, "say"), where)
            self.spoken(step.say, (*path, "say"), where)
        elif isinstance(step, CollectStep):
            for key in ("prompt", "reprompt", "expiry_prompt", "cvv_prompt"):
                self.template(getattr(step, key), (*path, key), where)
                self.spoken(getattr(step, key), (*path, key), f"{where}: its {key}")
            if not isinstance(step.confirm, bool):
                self.template(step.confirm, (*path, "confirm"), where)
                self.spoken(step.confirm, (*path, "confirm"), f"{where}: its confirm")
            for i, rejection in enumerate(step.rejections):
                self.condition(rejection.condition, (*path, "rejections", i, "if"), where)
                self.template(rejection.say, (*path, "rejections", i, "say"), where)
                self.spoken(
                    rejection.say, (*path, "rejections", i, "say"), f"{where}: rejection {i + 1}"
                )
            if step.length and (step.min_length or step.max_length):
                self.error(
                    (*path, "length"),
                    f"{where}: use 'length' or 'min_length'/'max_length', not both",
                )
            if step.min_length and step.max_length and step.min_length > step.max_length:
                self.error((*path, "min_length"), f"{where}: min_length is larger than max_length")
        elif isinstance(step, MenuStep):
            self.template(step.prompt, (*path, "prompt"), where)
            self.spoken(step.prompt, (*path, "prompt"), f"{where}: its prompt")
            for key in ("no_input", "no_match"):
                if key in step.model_fields_set:
                    self.spoken(getattr(step, key), (*path, key), f"{where}: its {key}")
            keys: dict[str, int] = {}
            for i, option in enumerate(step.options):
                if isinstance(option.say, dict):
                    self.spoken(
                        option.say,
                        (*path, "options", i, "say"),
                        f"{where}: option {i + 1}",
                        what="words",
                    )
                if option.key is not None:
                    if option.key in keys:
                        self.error(
                            (*path, "options", i, "key"),
                            f"{where}: key '{option.key}' is used by two options",
                        )
                    keys[option.key] = i
        elif isinstance(step, AnswerStep):
            if step.answer:
                self.template(step.answer, (*path, "answer"), where)
        elif isinstance(step, ActionStep):
            if step.action not in d.actions and step.action not in self.broken:
                self.error(
                    (*path, "action"),
                    f"{where} calls action '{step.action}', which is not defined"
                    + self._hint(step.action, d.actions),
                )
            self.template(step.args, (*path, "args"), where)
            self.template(step.save, (*path, "save"), where)
        elif isinstance(step, SetStep):
            self.template(step.set, (*path, "set"), where)
            if "language" in step.set:
                self.language(step.set["language"], (*path, "set", "language"), where)
        elif isinstance(step, HandoffStep):
            self.queue(step.handoff, (*path, "handoff"), where)
            if isinstance(step.priority, str):
                self.template(step.priority, (*path, "priority"), where)
            self.template(step.announce, (*path, "announce"), where)
            self.spoken(step.announce, (*path, "announce"), f"{where}: its announce")
            self.template(step.reason, (*path, "reason"), where)
        elif isinstance(step, LlmStep):
            for i, tool in enumerate(step.tools):
                if tool not in d.actions:
                    self.error(
                        (*path, "tools", i),
                        f"{where} allows tool '{tool}', which is not a defined action",
                    )
            if step.fallback is None:
                self.error(
                    path,
                    f"{where} is an llm step without 'fallback'; "
                    "with no LLM configured it does nothing",
                    warning=True,
                )
        elif isinstance(step, CallStep):
            if step.call not in d.flows and step.call not in self.broken:
                self.error(
                    (*path, "call"),
                    f"{where} calls flow '{step.call}', which does not exist"
                    + self._hint(step.call, d.flows),
                )
        elif isinstance(step, EndStep):
            self.template(step.end, (*path, "end"), where)
            self.spoken(step.end, (*path, "end"), where)

    def reachability(self, name: str, flow: Flow, ids: dict[str, int]) -> None:
        reached = {0}
        todo = [0]
        while todo:
            i = todo.pop()
            step = flow.steps[i]
            following: list[int] = []
            if falls_through(step) and i + 1 < len(flow.steps):
                following.append(i + 1)
            all_targets = list(targets(step))
            for _, inner in inline_steps(step):
                all_targets.extend(targets(inner))
                if falls_through(inner) and inner.next is None and i + 1 < len(flow.steps):
                    following.append(i + 1)
            following += [ids[t] for t, _ in all_targets if t in ids]
            for j in following:
                if j not in reached:
                    reached.add(j)
                    todo.append(j)
        for i, step in enumerate(flow.steps):
            if i not in reached:
                self.error(
                    ("flows", name, "steps", i),
                    f"step {step_label(step, i)} in flow '{name}' can never be reached: the step "
                    "before it always goes elsewhere and no step jumps to it",
                )


def check_graph(bot: LoadedBot, broken: set[str] | None = None) -> list[FlowIssue]:
    """Check references; names in ``broken`` failed the schema pass and count as defined."""
    return _Checker(bot, bot.source_map, broken or set()).run()


def check_tests(
    bot: LoadedBot, test: ConversationTest, smap: SourceMap, base: PathKey
) -> list[FlowIssue]:
    """Names used by a conversation test must exist in the bot, or the test could never pass."""
    d = bot.definition
    issues: list[FlowIssue] = []
    slots = known_slots(d.flows)
    step_ids = {s.id for f in d.flows.values() for s, _ in walk_steps(f) if s.id}

    def err(path: PathKey, message: str) -> None:
        issues.append(FlowIssue(smap.locate((*base, *path)), f"test '{test.name}': {message}"))

    languages = d.bot.spoken_languages
    if test.language is not None and test.language not in languages:
        err(
            ("language",),
            f"starts in '{test.language}', which is not a language of the bot "
            f"(bot.languages: {', '.join(languages)})",
        )
    for name in test.mocks:
        if name not in d.actions:
            err(("mocks", name), f"mocks action '{name}', which is not defined")
    for name in test.queues:
        if name not in d.queues:
            err(("queues", name), f"sets statistics for queue '{name}', which is not defined")
    for i, step in enumerate(test.steps):
        e = step.expect
        if e is None:
            continue
        path: PathKey = ("steps", i, "expect")
        if e.language is not None and e.language not in languages:
            err(
                (*path, "language"),
                f"expects language '{e.language}', which is not a language of the bot",
            )
        if e.intent is not None and e.intent not in d.intents:
            err((*path, "intent"), f"expects intent '{e.intent}', which is not defined")
        if e.flow is not None and e.flow not in d.flows:
            err((*path, "flow"), f"expects flow '{e.flow}', which does not exist")
        if e.step is not None and e.step not in step_ids:
            err((*path, "step"), f"expects step '{e.step}', which no flow has")
        if e.slots:
            for slot in e.slots:
                if slot not in slots:
                    err((*path, "slots", slot), f"expects slot '{slot}', which no step fills")
        handoff = e.handoff
        if isinstance(handoff, HandoffExpectation) and handoff.queue not in (None, *d.queues):
            err(
                (*path, "handoff", "queue"),
                f"expects queue '{handoff.queue}', which is not defined",
            )
    return issues
