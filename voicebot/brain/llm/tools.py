"""The tools an LLM is offered on one turn: generated from the flows, and the only way it acts.

The list depends on what the bot is waiting for. In open conversation: one ``start_<flow>`` per
flow, ``search_knowledge``, the trigger intents, a hand-off and an end. In a ``collect``:
``fill_slots`` for that step's slot (and the flow's other open slots, so "account 1234, postcode
SW1A 1AA" fills both). In a menu: ``choose_option``. In an ``llm`` step: the actions it lists.
Whatever the model calls is checked against this list in code (:meth:`Toolbox.check`); the
prompt only explains it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from voicebot.engine.events import Expectation
from voicebot.engine.state import CallState
from voicebot.flows.schema import (
    ActionDef,
    BotDefinition,
    CollectStep,
    EndStep,
    HandoffStep,
    StepBase,
)
from voicebot.nlu.parsers import ParseResult, SlotSpec, get_locale, parse_slot
from voicebot.nlu.parsers.base import MAX_INPUT_CHARS, tokenize
from voicebot.nlu.parsers.digits import digit_runs

ToolKind = Literal[
    "flow", "intent", "fill", "choose", "knowledge", "handoff", "end", "action", "done"
]

SEARCH = "search_knowledge"
FILL = "fill_slots"
CHOOSE = "choose_option"
HANDOFF = "transfer_to_agent"
END = "end_call"
DONE = "task_done"

_JSON_TYPES = {"number": "number", "yes_no": "boolean"}
_NAME = re.compile(r"[^a-zA-Z0-9_-]+")


@dataclass(frozen=True)
class Tool:
    name: str
    kind: ToolKind
    description: str
    parameters: dict[str, Any]
    target: str | None = None  # the flow, intent or action it stands for
    slots: dict[str, SlotSpec] = field(default_factory=dict)  # fill_slots: name -> parser spec

    def schema(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True)
class Refusal:
    """A tool call that was not carried out, and why (logged and put in the transcript)."""

    name: str
    reason: str


def tool_name(prefix: str, name: str) -> str:
    return (prefix + _NAME.sub("_", name))[:64]


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


_REASON = {"type": "string", "description": "Why, in a few words, for the human agent."}


class Toolbox:
    """Builds the per-turn tool lists of one bot (cached by what the bot waits for)."""

    def __init__(self, bot: BotDefinition, *, knowledge: bool) -> None:
        self.bot = bot
        self.knowledge = knowledge
        self._cache: dict[Any, tuple[Tool, ...]] = {}
        handoff_intents = {
            t.intent for t in bot.bot.triggers if t.intent and isinstance(t.step, HandoffStep)
        }
        end_intents = {
            t.intent for t in bot.bot.triggers if t.intent and isinstance(t.step, EndStep)
        }
        self._intents = tuple(self._intent_tools())
        # The generic hand-off and end exist only when no trigger already does that job, so the
        # content team's queue, reason and goodbye are the ones used.
        self._generic: list[Tool] = []
        if not handoff_intents:
            self._generic.append(
                Tool(
                    HANDOFF,
                    "handoff",
                    "Transfer the caller to a human agent: they ask for a person, or you "
                    "cannot help them.",
                    _object({"reason": _REASON}, ["reason"]),
                )
            )
        if not end_intents:
            self._generic.append(
                Tool(
                    END,
                    "end",
                    "End the call when the caller says goodbye or has nothing else.",
                    _object({}, []),
                )
            )
        self._flows = tuple(self._flow_tools())

    # -- the pieces ------------------------------------------------------------------------------

    def _intent_tools(self) -> list[Tool]:
        tools = []
        seen: set[str] = set()
        for trigger in self.bot.bot.triggers:
            intent = trigger.intent
            if intent is None or intent in seen:
                continue
            seen.add(intent)
            about = self.bot.intents.get(intent)
            description = (about.description if about else None) or f"The caller's {intent}."
            examples = about.examples_for(None)[:4] if about else []
            if examples:
                description += " For example: " + "; ".join(f'"{e}"' for e in examples) + "."
            tools.append(
                Tool(tool_name("intent_", intent), "intent", description, _object({}, []), intent)
            )
        return tools

    def _flow_tools(self) -> list[Tool]:
        tools = []
        for name, flow in self.bot.flows.items():
            description = flow.description
            if not description:
                intents = [self.bot.intents.get(i) for i in flow.triggers]
                description = next((i.description for i in intents if i and i.description), None)
            if not description:
                continue  # a flow with neither is only reached from other flows
            tools.append(
                Tool(tool_name("start_", name), "flow", description, _object({}, []), name)
            )
        return tools

    def _search(self) -> list[Tool]:
        if not self.knowledge:
            return []
        return [
            Tool(
                SEARCH,
                "knowledge",
                "Search the company's documents (prices, opening hours, policies, how-tos). "
                "Use it for every factual question; answer only from what it returns.",
                _object(
                    {"query": {"type": "string", "description": "The question, self-contained."}},
                    ["query"],
                ),
            )
        ]

    def _fill(self, expect: Expectation, state: CallState) -> list[Tool]:
        assert expect.slot_name is not None and expect.slot is not None
        slots = {expect.slot_name: expect.slot}
        properties = {expect.slot_name: _slot_property(expect.slot, "the value asked for now")}
        for step in self._open_collects(state):
            if step.collect in slots or step.is_sensitive:
                continue
            spec = _spec(step, state.language)
            slots[step.collect] = spec
            properties[step.collect] = _slot_property(spec, "only if the caller already said it")
        return [
            Tool(
                FILL,
                "fill",
                "Record what the caller said for these details. Give values as spoken, dates "
                "as YYYY-MM-DD, times as HH:MM. Leave out anything the caller did not say.",
                _object(properties, []),
                slots=slots,
            )
        ]

    def _open_collects(self, state: CallState) -> list[CollectStep]:
        if not state.stack:
            return []
        flow = self.bot.flows.get(state.stack[-1].flow)
        steps: list[StepBase] = list(flow.steps) if flow else []
        return [
            s for s in steps if isinstance(s, CollectStep) and state.slots.get(s.collect) is None
        ]

    def _choose(self, expect: Expectation) -> list[Tool]:
        labels = [_option_label(o.index, o.key, o.phrases) for o in expect.options]
        return [
            Tool(
                CHOOSE,
                "choose",
                "The menu option the caller picked.",
                _object({"option": {"type": "string", "enum": labels}}, ["option"]),
            )
        ]

    def _actions(self, names: tuple[str, ...]) -> list[Tool]:
        tools = []
        for name in names:
            definition = self.bot.actions.get(name)
            if definition is None:
                continue
            tools.append(
                Tool(
                    tool_name("", name),
                    "action",
                    definition.description or f"Run '{name}'.",
                    _action_parameters(definition),
                    name,
                )
            )
        return tools

    # -- per turn --------------------------------------------------------------------------------

    def for_turn(self, expect: Expectation, state: CallState) -> tuple[Tool, ...]:
        """The tools offered now. An empty tuple means: do not ask the model at all."""
        if expect.sensitive or expect.kind in ("yes_no", "none"):
            return ()
        if expect.kind == "collect":
            # Depends on which of the flow's slots are still open, so it is not cached.
            return (*self._fill(expect, state), *self._search(), *self._intents, *self._generic)
        key = (expect.kind, expect.options, expect.task)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        tools: list[Tool]
        if expect.kind == "menu":
            tools = [*self._choose(expect), *self._flows, *self._intents, *self._generic]
        elif expect.kind == "llm" and expect.task is not None:
            tools = [*self._actions(expect.task.actions), *self._search(), *self._intents]
            tools += self._generic
            if expect.task.until:
                tools.append(
                    Tool(
                        DONE,
                        "done",
                        f"Call this when: {expect.task.until}",
                        _object({}, []),
                    )
                )
        else:
            tools = [*self._flows, *self._search(), *self._intents, *self._generic]
        result = tuple(tools)
        self._cache[key] = result
        return result


def _spec(step: CollectStep, language: str) -> SlotSpec:
    from voicebot.engine.steps import slot_spec

    return slot_spec(step, step.language or language)


def _slot_property(spec: SlotSpec, note: str) -> dict[str, Any]:
    kind = _JSON_TYPES.get(spec.type, "string")
    about = spec.type
    if spec.type == "digits" and spec.length:
        about = f"{spec.length} digits"
    prop: dict[str, Any] = {"type": kind, "description": f"{about}; {note}"}
    if spec.type == "choice" and spec.choices:
        prop["enum"] = list(spec.choices)
    return prop


def _option_label(index: int, key: str | None, phrases: tuple[str, ...]) -> str:
    label = phrases[0] if phrases else f"option {index + 1}"
    return f"{key}: {label}" if key else label


def _action_parameters(definition: ActionDef) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required = []
    for name, param in definition.parameters.items():
        prop: dict[str, Any] = {"type": param.type}
        if param.description:
            prop["description"] = param.description
        if param.enum:
            prop["enum"] = list(param.enum)
        properties[name] = prop
        if param.required:
            required.append(name)
    return _object(properties, required)


# -- reading what the model sent back ---------------------------------------------------------


class BadArguments(ValueError):
    """The model's arguments were not a JSON object of the declared shape."""


# Bounds on what a model may send back. Real arguments are a few words; anything near these is
# garbage or an attempt to smuggle text into a webhook body, and is refused, not truncated.
MAX_ARGUMENTS_CHARS = 4096
MAX_STRING_CHARS = 500
# A digit string this long names something (an account, a phone number): the caller must have
# said it, so a model cannot swap in someone else's.
GROUNDED_DIGITS = 4
_GROUNDED_TYPES = frozenset({"digits", "phone", "card_number"})


def parse_arguments(raw: str) -> dict[str, Any]:
    if len(raw or "") > MAX_ARGUMENTS_CHARS:
        raise BadArguments(f"arguments are longer than {MAX_ARGUMENTS_CHARS} characters")
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise BadArguments(f"arguments are not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise BadArguments("arguments are not a JSON object")
    return value


def unknown_arguments(tool: Tool, args: dict[str, Any]) -> list[str]:
    """Argument names the tool's schema does not declare (``additionalProperties: false``)."""
    if tool.parameters.get("additionalProperties", True) is not False:
        return []
    declared = tool.parameters.get("properties") or {}
    return sorted(name for name in args if name not in declared)


def check_action_args(
    definition: ActionDef,
    args: dict[str, Any],
    *,
    slots: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model's arguments for an action, checked against its declared parameters.

    A parameter named like a slot the call has already filled (``account_number`` once the
    caller is verified) must carry that slot's value: the model may repeat what the flow
    established, never replace it with another caller's.
    """
    unknown = set(args) - set(definition.parameters)
    if unknown:
        raise BadArguments(f"unknown argument(s) {', '.join(sorted(unknown))}")
    checked: dict[str, Any] = {}
    for name, param in definition.parameters.items():
        if name not in args or args[name] is None:
            if param.required:
                raise BadArguments(f"missing argument '{name}'")
            continue
        value = args[name]
        ok = {
            "string": isinstance(value, str),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }[param.type]
        if not ok or (param.enum and value not in param.enum):
            raise BadArguments(f"argument '{name}' is not a valid {param.type}")
        if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            raise BadArguments(f"argument '{name}' is longer than {MAX_STRING_CHARS} characters")
        known = (slots or {}).get(name)
        if known is not None and not _same(value, known):
            raise BadArguments(f"argument '{name}' differs from the call's {name}")
        checked[name] = value
    return checked


def _same(value: Any, known: Any) -> bool:
    if isinstance(known, bool) or isinstance(value, bool):
        return bool(value == known)
    if isinstance(known, int | float) and isinstance(value, int | float):
        return float(value) == float(known)
    return _compact(str(value)) == _compact(str(known))


def _compact(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def heard_digits(texts: list[str], language: str) -> list[str]:
    """Every digit run the caller spoke or keyed in these turns ("one two three" -> "123")."""
    locale = get_locale(language) or get_locale("en-US")
    assert locale is not None
    runs: list[str] = []
    for text in texts:
        runs += [run.digits for run in digit_runs(tokenize(text[:MAX_INPUT_CHARS]), locale.words)]
    return runs


def grounded(spec: SlotSpec, value: Any, heard: list[str]) -> bool:
    """Whether a digit-string slot value is one the caller actually said or keyed."""
    if spec.type not in _GROUNDED_TYPES:
        return True
    digits = re.sub(r"\D", "", str(value))
    if len(digits) < GROUNDED_DIGITS:
        return True
    return any(digits in run for run in heard)


def read_slots(
    tool: Tool, args: dict[str, Any], *, now: dt.datetime, heard: list[str] | None = None
) -> tuple[dict[str, ParseResult], list[tuple[str, str]]]:
    """Run each value the model gave through the slot's own parser: the model proposes, the
    parsers (lengths, Luhn, dates) decide. With ``heard`` (the digit runs in the caller's
    recent turns), a digit-string value the caller never said is refused too. Returns the
    parsed slots and the names refused, with why."""
    parsed: dict[str, ParseResult] = {}
    refused: list[tuple[str, str]] = []
    for name, value in args.items():
        spec = tool.slots.get(name)
        if spec is None:
            refused.append((name, "not a slot asked for here"))
            continue
        if value is None or value == "":
            continue
        if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            refused.append((name, "value too long"))
            continue
        if heard is not None and not grounded(spec, value, heard):
            refused.append((name, "not what the caller said"))
            continue
        text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        result = parse_slot(spec, text, now=now)
        parsed[name] = result
    return parsed, refused
