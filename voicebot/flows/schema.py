"""The flow language as pydantic models: the contract in ../shared/design/flow-language.md.

Every model forbids unknown keys, so a misspelt key is an error with a line number instead of a
setting that silently does nothing. Keys added beyond the contract are marked "extension" and
documented in docs/flows.md.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from voicebot.handoff.packet import CallerInfo

Line = str | list[str]
"""A line to speak in one language; a list picks one at random."""

# extension (docs/languages.md): the same line per declared language, keyed by BCP-47 tag
# (`{en-GB: Hello, es-ES: Hola}`), or `{any: ...}` for text that is the same in every language
LocalText = dict[str, Line]
Text = Line | LocalText
"""A line to speak: plain, or a mapping of language to line."""
LocalLines = list[str] | dict[str, list[str]]
"""Numbered lines (no_input, no_match): a list, or a list per language."""
NEUTRAL = "any"
LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def primary_subtag(language: str) -> str:
    """``es-ES`` -> ``es``: what a voice, a recogniser or an agent's skill is chosen by."""
    return language.split("-", 1)[0].lower()


def _lines_per_language(value: Any) -> Any:
    # `no_match: {es-ES: Perdone}` means a one-line list, as a plain string would.
    if isinstance(value, dict):
        return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
    return [value] if isinstance(value, str) else value


CollectType = Literal[
    "text",
    "digits",
    "number",
    "yes_no",
    "date",
    "time",
    "phone",
    "email",
    "choice",
    "card_number",
    "card",
]
PRIORITIES = ("low", "normal", "high", "urgent")

STEP_KEYS = (
    "say",
    "collect",
    "menu",
    "answer",
    "action",
    "set",
    "handoff",
    "llm",
    "call",
    "end",
    "repeat",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# --- next and branches ----------------------------------------------------------------------


class Branch(_Strict):
    """One branch of a conditional ``next``: ``{if: expr, then: target}`` or ``{else: target}``."""

    condition: str | None = Field(default=None, alias="if")
    then: str | None = None
    otherwise: str | None = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _shape(self) -> Branch:
        if self.otherwise is not None:
            if self.condition is not None or self.then is not None:
                raise PydanticCustomError(
                    "branch_shape", "an 'else' branch cannot also have 'if' or 'then'"
                )
        elif self.condition is None or self.then is None:
            raise PydanticCustomError(
                "branch_shape", "a branch needs 'if' and 'then', or only 'else'"
            )
        return self

    @property
    def target(self) -> str:
        return self.otherwise if self.otherwise is not None else (self.then or "")


Next = str | list[Branch]


# --- steps ----------------------------------------------------------------------------------


class StepBase(_Strict):
    id: str | None = None
    next: Next | None = None
    language: str | None = None  # overrides the flow's and the bot's language for this step

    @property
    def kind(self) -> str:
        raise NotImplementedError


class SayStep(StepBase):
    say: Text
    barge_in: bool = True

    @property
    def kind(self) -> str:
        return "say"


class DtmfRules(_Strict):
    terminator: str = "#"
    max_digits: int | None = Field(default=None, ge=1, le=64)

    @field_validator("terminator")
    @classmethod
    def _one_key(cls, value: str) -> str:
        if value not in ("#", "*", ""):
            raise PydanticCustomError("terminator", "the terminator must be '#', '*' or empty")
        return value


class Rejection(_Strict):
    condition: str = Field(alias="if")
    say: Text


class ChoiceOption(_Strict):
    """A choice with the phrases that pick it (extension of ``choices``)."""

    value: str
    say: list[str] = Field(default_factory=list)

    @field_validator("say", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class CollectStep(StepBase):
    collect: str
    type: CollectType = "text"
    prompt: Text | None = None
    reprompt: Text | None = None
    dtmf: bool | DtmfRules = False
    rejections: list[Rejection] = Field(default_factory=list)
    max_attempts: int | None = Field(default=None, ge=1, le=10)
    on_fail: StepRef | None = None
    sensitive: bool = False
    # true: the engine's "I heard ... Is that right?" in the call's language; or own text
    confirm: bool | Text = False
    length: int | None = Field(default=None, ge=1, le=64)
    min_length: int | None = Field(default=None, ge=1, le=64)
    max_length: int | None = Field(default=None, ge=1, le=64)
    choices: list[str | ChoiceOption] = Field(default_factory=list)
    # extensions
    always_ask: bool = False
    no_input_timeout: float | None = Field(default=None, gt=0, le=120)
    barge_in: bool = True
    # extension, type `card` only: the prompts for the expiry and the security code (the
    # card number's is `prompt`)
    expiry_prompt: Text | None = None
    cvv_prompt: Text | None = None

    @property
    def kind(self) -> str:
        return "collect"

    @model_validator(mode="after")
    def _type_options(self) -> CollectStep:
        if self.type == "choice" and not self.choices:
            raise PydanticCustomError("choices", "a 'choice' collect needs a list of 'choices'")
        if self.type != "choice" and self.choices:
            raise PydanticCustomError("choices", "'choices' only applies to type 'choice'")
        if self.type not in ("digits", "card_number") and (
            self.length or self.min_length or self.max_length
        ):
            raise PydanticCustomError(
                "length", "'length', 'min_length' and 'max_length' apply to type 'digits'"
            )
        if self.type != "card" and (self.expiry_prompt is not None or self.cvv_prompt is not None):
            raise PydanticCustomError(
                "card_prompts", "'expiry_prompt' and 'cvv_prompt' only apply to type 'card'"
            )
        if self.type == "card" and self.sensitive is False and "sensitive" in self.model_fields_set:
            raise PydanticCustomError(
                "card_sensitive", "a 'card' collect is always sensitive; remove 'sensitive: false'"
            )
        return self

    @property
    def is_sensitive(self) -> bool:
        # Card numbers are always sensitive, whatever the file says.
        return self.sensitive or self.type in ("card_number", "card")

    @property
    def keypad_only(self) -> bool:
        """A `card` collect takes keys only: card details must never be spoken into the ASR,
        the transcript or a model."""
        return self.type == "card"

    @property
    def choice_values(self) -> list[str]:
        return [c if isinstance(c, str) else c.value for c in self.choices]


class MenuOption(_Strict):
    key: str | None = None
    # a list of words for every language, or (extension) a list per declared language
    say: LocalLines = Field(default_factory=list)
    next: Next | None = None

    @field_validator("say", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _lines_per_language(value)

    def words(self, language: str | None = None) -> list[str]:
        """The phrases that choose this option in ``language`` (all of them when None)."""
        if isinstance(self.say, list):
            return list(self.say)
        if language is None:
            return [w for words in self.say.values() for w in words]
        return list(self.say.get(language, self.say.get(NEUTRAL, [])))

    @field_validator("key", mode="before")
    @classmethod
    def _key_text(cls, value: Any) -> Any:
        # `key: 1` is an int in YAML; a content designer means the key "1".
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _has_trigger(self) -> MenuOption:
        if self.key is None and not self.say:
            raise PydanticCustomError("option", "a menu option needs a 'key', a 'say' list or both")
        if self.key is not None and not re.fullmatch(r"[0-9*#]", self.key):
            raise PydanticCustomError("option", "a menu 'key' is one keypad key: 0-9, * or #")
        return self


class MenuStep(StepBase):
    menu: str | None
    prompt: Text
    options: list[MenuOption] = Field(min_length=1)
    no_input: LocalLines = Field(default_factory=list)
    no_match: LocalLines = Field(default_factory=list)
    on_fail: StepRef | None = None
    # extensions
    no_input_timeout: float | None = Field(default=None, gt=0, le=120)
    barge_in: bool = True

    @property
    def kind(self) -> str:
        return "menu"


class AnswerStep(StepBase):
    answer: str | None
    filter: list[str] = Field(default_factory=list)
    min_score: float | None = Field(default=None, ge=0, le=1)
    on_no_answer: StepRef | None = None

    @field_validator("filter", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def kind(self) -> str:
        return "answer"


class ActionStep(StepBase):
    action: str
    args: dict[str, Any] = Field(default_factory=dict)
    save: dict[str, Any] = Field(default_factory=dict)
    on_error: StepRef | None = None

    @property
    def kind(self) -> str:
        return "action"


class SetStep(StepBase):
    set: dict[str, Any] = Field(min_length=1)

    @property
    def kind(self) -> str:
        return "set"


class HandoffStep(StepBase):
    handoff: str
    skills: list[str] = Field(default_factory=list)
    priority: str | int = "normal"
    reason: str | None = None
    announce: Text | None = None
    offer_callback_over: int | None = Field(default=None, ge=0)
    closed: StepRef | None = None

    @property
    def kind(self) -> str:
        return "handoff"

    @field_validator("priority")
    @classmethod
    def _priority(cls, value: str | int) -> str | int:
        if isinstance(value, str) and "{{" not in value and value not in PRIORITIES:
            raise PydanticCustomError(
                "priority",
                "priority must be one of {allowed} (or a template)",
                {"allowed": ", ".join(PRIORITIES)},
            )
        return value


class LlmStep(StepBase):
    llm: str
    tools: list[str] = Field(default_factory=list)
    until: str | None = None
    fallback: StepRef | None = None
    # extension: caller turns before the step gives up and runs its fallback (no endless chat)
    max_turns: int = Field(default=8, ge=1, le=50)

    @property
    def kind(self) -> str:
        return "llm"


class CallStep(StepBase):
    call: str

    @property
    def kind(self) -> str:
        return "call"


class EndStep(StepBase):
    end: Text | None
    disposition: str | None = None

    @property
    def kind(self) -> str:
        return "end"


class RepeatStep(StepBase):
    """Extension: repeats the bot's last prompt (used by the `repeat` trigger)."""

    repeat: Literal[True]

    @property
    def kind(self) -> str:
        return "repeat"


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        found = [k for k in STEP_KEYS if k in value]
        return found[0] if len(found) == 1 else None
    if isinstance(value, StepBase):
        return value.kind
    return None


def _check_step_shape(value: Any) -> Any:
    """Explain a step that has no step key, or two, before pydantic gives a vaguer message."""
    if isinstance(value, dict):
        found = [k for k in STEP_KEYS if k in value]
        if not found:
            raise PydanticCustomError(
                "step_kind",
                "a step needs one of the step keys ({keys}); this one has only {given}",
                {"keys": ", ".join(STEP_KEYS), "given": ", ".join(map(str, value)) or "nothing"},
            )
        if len(found) > 1:
            raise PydanticCustomError(
                "step_kind",
                "a step has exactly one step key, but this one has {found}; split it into steps",
                {"found": " and ".join(found)},
            )
    elif not isinstance(value, StepBase):
        raise PydanticCustomError("step_kind", "a step must be a mapping such as 'say: Hello'")
    return value


Step = Annotated[
    Annotated[SayStep, Tag("say")]
    | Annotated[CollectStep, Tag("collect")]
    | Annotated[MenuStep, Tag("menu")]
    | Annotated[AnswerStep, Tag("answer")]
    | Annotated[ActionStep, Tag("action")]
    | Annotated[SetStep, Tag("set")]
    | Annotated[HandoffStep, Tag("handoff")]
    | Annotated[LlmStep, Tag("llm")]
    | Annotated[CallStep, Tag("call")]
    | Annotated[EndStep, Tag("end")]
    | Annotated[RepeatStep, Tag("repeat")],
    Discriminator(_step_kind),
    BeforeValidator(_check_step_shape),
]


# An ``on_*`` value: a step id (or flow name), or an inline step.
StepRef = str | Step

for _model in (CollectStep, MenuStep, AnswerStep, ActionStep, HandoffStep, LlmStep):
    _model.model_rebuild()


class Trigger(_Strict):
    """A global trigger: a condition (``if``) or an ``intent``, plus an inline step."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # In YAML a trigger is written flat (`intent: agent` beside `handoff: general`), not
        # as the condition/intent/step fields it is parsed into.
        return {
            "type": "object",
            "description": "A condition ('if') or an 'intent', plus the keys of one inline step.",
            "properties": {
                "if": {"type": "string", "description": "a condition, e.g. sentiment.anger > 0.8"},
                "intent": {"type": "string", "description": "an intent name"},
                **{key: {} for key in STEP_KEYS},
            },
            "additionalProperties": True,
        }

    condition: str | None = None
    intent: str | None = None
    step: Step

    @model_validator(mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        rest = dict(value)
        condition = rest.pop("if", None)
        intent = rest.pop("intent", None)
        if (condition is None) == (intent is None):
            raise PydanticCustomError(
                "trigger", "a trigger needs either 'if' (a condition) or 'intent', not both"
            )
        _check_step_shape(rest)
        return {"condition": condition, "intent": intent, "step": rest}


# --- bot, intents, queues, actions, flows ---------------------------------------------------

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_days(spec: str) -> list[int]:
    """``mon-fri`` / ``sat`` / ``mon,wed`` to weekday numbers (Monday is 0)."""
    days: list[int] = []
    for part in spec.lower().replace(" ", "").split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            if first not in _DAY_NAMES or last not in _DAY_NAMES:
                raise ValueError(part)
            a, b = _DAY_NAMES.index(first), _DAY_NAMES.index(last)
            days.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif part in _DAY_NAMES:
            days.append(_DAY_NAMES.index(part))
        else:
            raise ValueError(part)
    return days


class Hours(_Strict):
    timezone: str = "UTC"
    weekly: dict[str, str | list[str]]
    holidays: list[dt.date] = Field(default_factory=list)  # extension: closed all day

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "'{tz}' is not a known time zone (e.g. Europe/London)", {"tz": value}
            ) from None
        return value

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for days, ranges in value.items():
            try:
                parse_days(days)
            except ValueError:
                raise PydanticCustomError(
                    "days",
                    "'{days}' is not a day range; write e.g. mon-fri, sat or mon,wed",
                    {"days": days},
                ) from None
            for r in [ranges] if isinstance(ranges, str) else ranges:
                if r != "closed" and not _RANGE.match(r.replace(" ", "")):
                    raise PydanticCustomError(
                        "hours",
                        "'{r}' is not an opening time; write e.g. \"08:00-20:00\" in quotes",
                        {"r": r},
                    )
        return value


class Limits(_Strict):
    no_input_timeout: float = Field(default=6, gt=0, le=120)
    max_no_input: int = Field(default=2, ge=0, le=10)
    max_no_match: int = Field(default=2, ge=0, le=10)
    on_limit: StepRef | None = None


class KnowledgeFallback(_Strict):
    """Extension: answer from the knowledge base when an open request matches no intent."""

    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    filter: list[str] = Field(default_factory=list)


class CallerLookup(_Strict):
    """Extension: an action run when the call starts, before the greeting (a CRM look-up by
    the calling number). Its result fills in ``caller``; a failure or a slow answer leaves the
    caller as they were and the call goes on."""

    action: str
    args: dict[str, Any] = Field(default_factory=dict)
    # caller field (name, vip, or any attribute) -> a template over `result`; without it, the
    # result's own `name`, `vip` and `attributes` are taken
    caller: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=2.0, gt=0, le=10)


class RetentionDays(_Strict):
    """Extension: days each kind of call data is kept before the scheduled purge deletes it;
    none: kept until erased."""

    transcripts: int | None = Field(default=None, ge=1, le=36500)
    recordings: int | None = Field(default=None, ge=1, le=36500)
    handoffs: int | None = Field(default=None, ge=1, le=36500)


class PrivacySettings(_Strict):
    """Extension: data protection settings of the bot (docs/flows.md, "Privacy")."""

    retention_days: RetentionDays = Field(default_factory=RetentionDays)


class BotSettings(_Strict):
    name: str
    language: str = "en-US"
    # extension (docs/languages.md): every language the bot speaks, the default first
    languages: list[str] = Field(default_factory=list)
    voice: str | None = None
    # extension: a TTS voice per language (`{es-ES: es}`); `voice` stays the default language's
    voices: dict[str, str] = Field(default_factory=dict)
    # extension: what the bot says when the caller asks for another language (per language)
    language_changed: Text | None = None
    persona: str | None = None
    greeting: Text = "Hello, how can I help you?"
    # extension (docs/channels.md, "One customer history"): said instead of the greeting to a
    # customer whose last contact, on any channel, was at most returning_within_days ago;
    # templated with caller.last_contact
    returning_greeting: Text | None = None
    returning_within_days: int = Field(default=30, ge=0, le=3650)
    start: str | None = None
    hours: Hours | None = None
    limits: Limits = Field(default_factory=Limits)
    triggers: list[Trigger] = Field(default_factory=list)
    # extensions
    lookup: CallerLookup | None = None
    default_queue: str | None = None
    anything_else: Text = "Is there anything else I can help you with?"
    no_input: LocalLines = Field(default_factory=list)
    no_match: LocalLines = Field(default_factory=list)
    knowledge_fallback: KnowledgeFallback | None = None
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    @model_validator(mode="after")
    def _languages(self) -> BotSettings:
        for tag in [self.language, *self.languages]:
            if not LANGUAGE_TAG.match(tag):
                raise PydanticCustomError(
                    "language",
                    "'{tag}' is not a language tag; write e.g. en-GB or es-ES",
                    {"tag": tag},
                )
        if len(set(self.languages)) != len(self.languages):
            raise PydanticCustomError("languages", "'languages' lists a language twice")
        if (
            self.languages
            and "language" in self.model_fields_set
            and self.language not in self.languages
        ):
            raise PydanticCustomError(
                "languages",
                "'language' is {language}, which is not one of 'languages' ({languages})",
                {"language": self.language, "languages": ", ".join(self.languages)},
            )
        if self.languages and "language" not in self.model_fields_set:
            # the first declared language is the default; code that reads `language` sees it
            object.__setattr__(self, "language", self.languages[0])
        return self

    @property
    def spoken_languages(self) -> list[str]:
        """The declared languages, the default (``language``) first."""
        return [self.language, *[t for t in self.languages if t != self.language]]

    @property
    def default_language(self) -> str:
        return self.spoken_languages[0]

    @property
    def multilingual(self) -> bool:
        return len(self.spoken_languages) > 1


class Intent(_Strict):
    description: str | None = None
    # a list (the default language's), or (extension) a list per declared language
    examples: LocalLines = Field(default_factory=list)

    def examples_for(self, language: str | None, default: str | None = None) -> list[str]:
        """The examples in ``language``; a plain list belongs to the ``default`` language (or
        to every language when no default is given)."""
        if isinstance(self.examples, list):
            return list(self.examples) if default is None or language == default else []
        if language is None:
            return [e for examples in self.examples.values() for e in examples]
        return list(self.examples.get(language, []))


class Hold(_Strict):
    """Extension: what a phone caller hears while waiting in a built-in queue."""

    # a WAV file in the bot directory, looped; none: a quiet generated tune
    music: str | None = None
    # seconds between spoken updates of the caller's place and estimated wait; 0: only once
    announce_every: int = Field(default=60, ge=0, le=3600)
    # the key a caller with a known number presses to be called back instead; none: not offered
    callback_key: str | None = Field(default="1", pattern=r"^[0-9*#]$")
    # seconds an accepting agent has to join the caller's room before the caller goes back to
    # the queue (the agent's browser failed to connect)
    join_timeout: int = Field(default=30, gt=0, le=300)


class QueueAlerts(_Strict):
    """Extension: when the supervisor wallboard colours a queue's tiles. A tile turns ``warn``
    at the figure and ``alert`` at twice it (for the service level: below ``service_level`` is
    ``warn``, 10 points further below is ``alert``)."""

    # seconds the longest-waiting caller has waited; none: the queue's ``sla_seconds``
    longest_wait: int | None = Field(default=None, gt=0)
    waiting: int | None = Field(default=None, gt=0)  # callers waiting
    abandon_rate: float | None = Field(default=None, gt=0, le=100)  # percent, today


class Queue(_Strict):
    skills: list[str] = Field(default_factory=list)
    # extension: a handoff here also needs the skill `lang:<primary subtag of the call's
    # language>` (lang:es), so a Spanish caller reaches an agent who speaks Spanish
    language_skill: bool = False
    # the service level's target: ``service_level`` percent of calls answered within
    # ``sla_seconds`` (extension; none: 20 seconds, the usual 80/20)
    sla_seconds: int | None = Field(default=None, ge=0)
    service_level: int = Field(default=80, gt=0, le=100)  # extension
    alerts: QueueAlerts = Field(default_factory=QueueAlerts)  # extension
    description: str | None = None  # extension
    # extension: on a phone call (LiveKit SIP), hand the caller to this external number or SIP
    # address (an outside ACD or PBX queue) instead of the built-in queues: a cold transfer
    # that carries the handoff id, queue and intent as SIP headers
    transfer: str | None = None
    # extension: `warm` dials a tel: number into a consult room, briefs whoever answers, then
    # bridges them to the caller (voicebot/telephony/phone_transfer.py); `cold` hands over
    transfer_mode: Literal["cold", "warm"] = "cold"
    # extensions for the built-in queues: after `overflow_after` seconds of waiting a caller
    # moves to the `overflow_to` queue (keeping their place by time waited); `aht_seconds` is
    # the handle time the estimated wait assumes until the queue has history of its own
    overflow_after: int | None = Field(default=None, gt=0)
    overflow_to: str | None = None
    aht_seconds: int = Field(default=180, gt=0, le=24 * 3600)
    # extension: phone callers waiting in this built-in queue (hold music, updates, callback)
    hold: Hold = Field(default_factory=Hold)

    @model_validator(mode="after")
    def _warm_needs_a_number(self) -> Queue:
        if self.transfer_mode == "warm" and not (self.transfer or "").startswith("tel:"):
            raise PydanticCustomError(
                "transfer_mode",
                "'transfer_mode: warm' dials a phone number: give 'transfer: tel:+<digits>'",
            )
        return self

    @model_validator(mode="after")
    def _overflow_pair(self) -> Queue:
        if (self.overflow_after is None) != (self.overflow_to is None):
            raise PydanticCustomError(
                "overflow", "'overflow_after' and 'overflow_to' go together: give both or neither"
            )
        return self

    @field_validator("transfer")
    @classmethod
    def _transfer_uri(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(tel:\+?[0-9]{3,15}|sips?:\S+@\S+)", value):
            raise PydanticCustomError(
                "transfer",
                "'transfer' takes tel:+<digits> or sip:user@host, got '{value}'",
                {"value": value},
            )
        return value


class HttpSpec(_Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    timeout: float | None = Field(default=None, gt=0, le=60)
    headers: dict[str, str] = Field(default_factory=dict)  # extension
    retries: int = Field(default=0, ge=0, le=5)  # extension: off by default

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(https?://|\{\{)", value):
            raise PydanticCustomError("url", "the url must start with http:// or https://")
        return value


class ActionParameter(_Strict):
    """Extension: one argument an LLM may pass to an action (an ``llm`` step's tool)."""

    type: Literal["string", "number", "integer", "boolean"] = "string"
    description: str | None = None
    enum: list[str] | None = None
    required: bool = True


class ActionDef(_Strict):
    http: HttpSpec | None = None
    body: Any = None
    python: str | None = None
    description: str | None = None  # extension
    # extensions for actions an LLM may call: their arguments, and a question to the caller
    # before anything with side effects runs (true: "Shall I go ahead and <description>?")
    parameters: dict[str, ActionParameter] = Field(default_factory=dict)
    confirm: bool | str = False
    # extension: the environment variable holding this webhook's signing secret
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _one_kind(self) -> ActionDef:
        if (self.http is None) == (self.python is None):
            raise PydanticCustomError(
                "action_kind", "an action needs exactly one of 'http' or 'python'"
            )
        if self.python is not None and not re.fullmatch(r"[\w.]+:[\w]+", self.python):
            raise PydanticCustomError(
                "python_ref", "'python' must look like 'package.module:function'"
            )
        if self.python is not None and self.body is not None:
            raise PydanticCustomError("body", "'body' only applies to 'http' actions")
        return self


class Flow(_Strict):
    description: str | None = None
    trigger: str | list[str] | None = None
    language: str | None = None
    steps: list[Step] = Field(min_length=1)

    @property
    def triggers(self) -> list[str]:
        if self.trigger is None:
            return []
        return [self.trigger] if isinstance(self.trigger, str) else list(self.trigger)


class BotDefinition(_Strict):
    """All flow files of a bot, merged."""

    bot: BotSettings
    intents: dict[str, Intent] = Field(default_factory=dict)
    queues: dict[str, Queue] = Field(default_factory=dict)
    actions: dict[str, ActionDef] = Field(default_factory=dict)
    flows: dict[str, Flow] = Field(default_factory=dict)


SECTIONS = ("bot", "intents", "queues", "actions", "flows")


# --- conversation tests ---------------------------------------------------------------------


class CallerSpec(CallerInfo):
    """The caller of a conversation test: the packet's caller fields, strictly checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BotExpectation(_Strict):
    contains: str | list[str] | None = None
    not_contains: str | list[str] | None = None
    matches: str | None = None
    within_ms: int | None = Field(default=None, gt=0)
    # extension, `channel: chat` tests: the labels of the buttons shown now, in order
    buttons: list[str] | None = None

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise PydanticCustomError(
                    "regex", "'matches' is not a valid regular expression: {e}", {"e": str(exc)}
                ) from None
        return value


class HandoffExpectation(_Strict):
    queue: str | None = None
    priority: str | None = None
    reason: str | None = None
    summary: str | list[str] | None = None  # extension: text the summary contains
    language: str | None = None  # extension: the packet's language
    skills: list[str] | None = None  # extension: skills the packet must include


class ModelRequestExpectation(_Strict):
    """Extension: checks on the last request the brain sent the (scripted) model."""

    tools: list[str] = Field(default_factory=list)
    not_tools: list[str] = Field(default_factory=list)
    contains: str | list[str] | None = None
    not_contains: str | list[str] | None = None


class Expectation(_Strict):
    language: str | None = None  # extension: the call's current language
    intent: str | None = None
    flow: str | None = None
    step: str | None = None
    slots: dict[str, Any] | None = None
    handoff: HandoffExpectation | bool | None = None
    ended: bool | None = None
    sources: list[str] | None = None
    model: ModelRequestExpectation | None = None  # extension


class QueueStats(_Strict):
    waiting: int = 0
    agents_available: int = 1
    estimated_wait: float | None = None


class ScriptedToolCall(_Strict):
    name: str
    args: dict[str, Any] | None = None
    raw_args: str | None = None  # sent as-is, e.g. to test malformed JSON


class ScriptedReply(_Strict):
    """Extension: one reply of the scripted model in a conversation test.

    ``say`` streams text; ``tool``/``args`` (or ``tools``) call tools; ``error`` answers with
    that HTTP status; ``hang`` never answers (the brain times out).
    """

    say: str | None = None
    tool: str | None = None
    args: dict[str, Any] | None = None
    raw_args: str | None = None
    tools: list[ScriptedToolCall] = Field(default_factory=list)
    error: int | None = Field(default=None, ge=400, le=599)
    hang: bool = False

    @model_validator(mode="after")
    def _something(self) -> ScriptedReply:
        if self.tool is None and (self.args is not None or self.raw_args is not None):
            raise PydanticCustomError("model_reply", "'args' needs a 'tool'")
        if not (self.say or self.tool or self.tools or self.error or self.hang):
            raise PydanticCustomError(
                "model_reply", "a model reply needs 'say', 'tool', 'tools', 'error' or 'hang'"
            )
        return self

    @property
    def calls(self) -> list[ScriptedToolCall]:
        if self.tool is not None:
            return [ScriptedToolCall(name=self.tool, args=self.args, raw_args=self.raw_args)]
        return list(self.tools)


class TestStep(_Strict):
    user: str | None = None
    dtmf: str | None = None
    silence: float | None = Field(default=None, ge=0)
    bot: BotExpectation | None = None
    expect: Expectation | None = None
    # extension: the scripted model's next replies (the test then runs with the LLM brain)
    model: list[ScriptedReply] | None = None
    # extension, `channel: chat` tests: press the button with this value (or label)
    choose: str | None = None

    @field_validator("model", mode="before")
    @classmethod
    def _listify_model(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("dtmf", "choose", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one(self) -> TestStep:
        given = [
            k
            for k in ("user", "dtmf", "silence", "bot", "expect", "model", "choose")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise PydanticCustomError(
                "test_step",
                "a test step is exactly one of user, dtmf, silence, bot, expect, model or choose",
            )
        if self.dtmf is not None and not re.fullmatch(r"[0-9*#A-Da-d]+", self.dtmf):
            raise PydanticCustomError("dtmf", "'dtmf' takes keypad keys: 0-9, *, #")
        return self


class ConversationTest(_Strict):
    name: str
    caller: CallerSpec = Field(default_factory=CallerSpec)
    mocks: dict[str, Any] = Field(default_factory=dict)
    steps: list[TestStep] = Field(min_length=1)
    # extensions
    now: dt.datetime | None = None
    queues: dict[str, QueueStats] = Field(default_factory=dict)
    # skipped by `voicebot flows test --audio`, with the reason (wording the recogniser
    # cannot hear, say); text mode runs it as usual
    text_only: str | None = Field(default=None, min_length=1)
    # extension: the call starts in this language (one the bot declares)
    language: str | None = None
    # extension: `chat` runs the test as a web chat (voicebot/channels/conversation.py): menus
    # as buttons, `choose` steps, `bot: {buttons}` checks, no keypad (docs/channels.md)
    channel: Literal["voice", "chat"] = "voice"

    @model_validator(mode="after")
    def _channel_steps(self) -> ConversationTest:
        for step in self.steps:
            if self.channel == "chat" and (step.dtmf is not None or step.silence is not None):
                raise PydanticCustomError(
                    "test_channel",
                    "a chat has no keypad and no silence: use 'choose' or 'user' steps",
                )
            buttons = step.bot is not None and step.bot.buttons is not None
            if self.channel != "chat" and (step.choose is not None or buttons):
                raise PydanticCustomError(
                    "test_channel", "'choose' and 'bot: {buttons}' need 'channel: chat'"
                )
        return self

    @property
    def uses_model(self) -> bool:
        """A test that scripts model replies runs with the LLM brain against them."""
        return any(step.model is not None for step in self.steps)


class TestFile(_Strict):
    tests: list[ConversationTest] = Field(min_length=1)
