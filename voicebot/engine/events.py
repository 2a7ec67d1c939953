"""What goes into the dialogue engine (caller events) and what comes out (bot actions).

The engine is pure: it never speaks, waits or calls the network itself. It turns one event into
a list of actions; the call runtime performs them and feeds results (an action's response, a
knowledge answer) back in as events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from voicebot.handoff.packet import HandoffPacket, Source
    from voicebot.nlu.parsers import ParseResult, SlotSpec


# --- what the bot is waiting for (tells the brain how to read the next turn) ----------------


@dataclass(frozen=True)
class MenuChoice:
    index: int
    key: str | None
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class Expectation:
    """What the next caller turn should contain.

    ``open``: anything (intent recognition); ``collect``: a slot of ``slot`` type; ``menu``: one
    of ``options``; ``yes_no``: a confirmation.
    """

    kind: Literal["open", "collect", "menu", "yes_no", "llm", "none"]
    slot: SlotSpec | None = None
    slot_name: str | None = None
    options: tuple[MenuChoice, ...] = ()
    sensitive: bool = False
    dtmf: bool = False
    task: LlmTask | None = None


@dataclass(frozen=True)
class LlmTask:
    """An ``llm`` step as the brain sees it: what to do and which actions it may run."""

    instructions: str
    actions: tuple[str, ...] = ()
    until: str | None = None  # a description the model decides on (a condition is the engine's)


# --- the brain's reading of a caller turn ---------------------------------------------------


@dataclass(frozen=True)
class Interpretation:
    """What the brain understood from one caller utterance."""

    intent: str | None = None
    confidence: float = 0.0
    anger: float = 0.0
    sentiment: float = 0.0
    slot: ParseResult | None = None
    option: int | None = None
    extra_slots: dict[str, Any] = field(default_factory=dict)
    # What an LLM brain adds: a flow it chose by description, prose it wrote, a request it made.
    flow: str | None = None
    reply: ModelReply | None = None
    request: ModelRequest | None = None
    # The language the turn was read in (None: the call's, unchanged), and whether the caller
    # asked for it by name ("can we speak Spanish?"): docs/languages.md
    language: str | None = None
    language_request: bool = False


@dataclass(frozen=True)
class ModelReply:
    """Prose from the model. ``spoken``: already streamed to TTS sentence by sentence while the
    model was writing, so the engine only records it. ``grounded``: an answer built on the
    knowledge passages in ``sources``."""

    text: str
    sources: tuple[Source, ...] = ()
    spoken: bool = False
    grounded: bool = False


@dataclass(frozen=True)
class ModelRequest:
    """Something the model asked the flows to do through one of the tools it was offered.

    ``handoff``/``end``: the generic tools (when no trigger covers them); ``action``: an
    ``llm`` step's action; ``done``: the ``llm`` step's ``until`` is met; ``unavailable``: the
    model failed too often in this call.
    """

    kind: Literal["handoff", "end", "action", "done", "unavailable"]
    reason: str | None = None
    queue: str | None = None
    action: str | None = None
    args: dict[str, Any] = field(default_factory=dict)


# --- caller events --------------------------------------------------------------------------


@dataclass(frozen=True)
class CallStarted:
    pass


@dataclass(frozen=True)
class CallerSaid:
    text: str
    understood: Interpretation


@dataclass(frozen=True)
class KeysPressed:
    digits: str
    anger: float = 0.0


@dataclass(frozen=True)
class Silence:
    seconds: float


@dataclass(frozen=True)
class ActionCompleted:
    name: str
    ok: bool
    response: Any = None
    error: str | None = None


@dataclass(frozen=True)
class ModelAnswered:
    """The model's reading after the engine consulted it without a caller turn: on entering an
    ``llm`` step, after one of its actions ran, or after the caller declined one."""

    understood: Interpretation


@dataclass(frozen=True)
class KnowledgeAnswered:
    text: str | None
    score: float
    sources: tuple[Source, ...] = ()


CallerEvent = (
    CallStarted
    | CallerSaid
    | KeysPressed
    | Silence
    | ActionCompleted
    | KnowledgeAnswered
    | ModelAnswered
)


# --- bot actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    text: str
    barge_in: bool = True


@dataclass(frozen=True)
class Listen:
    """The bot now waits for the caller; ``timeout`` seconds of silence is a no-input."""

    expect: Expectation
    timeout: float
    dtmf_terminator: str = "#"
    dtmf_max_digits: int | None = None


@dataclass(frozen=True)
class RunAction:
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class SearchKnowledge:
    question: str
    tags: tuple[str, ...] = ()
    min_score: float | None = None


@dataclass(frozen=True)
class ConsultModel:
    """Ask the brain for its next move in an ``llm`` step. ``outcome`` tells the model what
    happened to the action it asked for (its result, an error, or that the caller declined)."""

    outcome: ActionOutcome | None = None


@dataclass(frozen=True)
class ActionOutcome:
    action: str
    ok: bool
    response: Any = None
    error: str | None = None
    declined: bool = False


@dataclass(frozen=True)
class Handoff:
    packet: HandoffPacket


@dataclass(frozen=True)
class Hangup:
    disposition: str | None = None


BotAction = Say | Listen | RunAction | SearchKnowledge | ConsultModel | Handoff | Hangup
