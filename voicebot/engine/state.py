"""The state of one call as the dialogue engine sees it: position, slots, counters, transcript.

Plain dataclasses with no behaviour beyond bookkeeping, so a call's state can be inspected by
tests, summarised for a handoff and (later) stored.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from voicebot.handoff.packet import CallerInfo, HandoffPacket, Source, TranscriptLine
from voicebot.privacy.cards import mask_card_data
from voicebot.privacy.masking import mask_pii, mask_value, redact

# A step is addressed by its scope (a flow name, or "@trigger"/"@limit" for the bot's own
# inline steps), its index in that scope and the chain of ``on_*`` keys leading to an inline
# step: ("pay_bill", 2, ("on_error",)) is the inline step in on_error of step 3 of pay_bill.
StepAddress = tuple[str, int, tuple[str, ...]]

WaitKind = Literal[
    "open",
    "open_answer",
    "collect",
    "confirm",
    "menu",
    "action",
    "answer",
    "callback_offer",
    "callback_number",
    "llm",
    "llm_action",
    "llm_confirm",
]


@dataclass
class Frame:
    """One flow being run; frames below the top are flows waiting for a ``call`` to return."""

    flow: str
    index: int


@dataclass
class Waiting:
    """What the bot is waiting for, and how the caller has fared so far at this point."""

    kind: WaitKind
    address: StepAddress | None = None
    no_input: int = 0
    no_match: int = 0
    attempts: int = 0
    pending: Any = None


@dataclass
class CallState:
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    caller: CallerInfo = field(default_factory=CallerInfo)
    language: str = "en-US"
    # The language was chosen (a menu, a `set`, the caller asked by name, the test or channel
    # started in it): detection then needs stronger evidence to change it.
    language_chosen: bool = False
    stack: list[Frame] = field(default_factory=list)
    waiting: Waiting | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    sensitive: set[str] = field(default_factory=set)
    # Slots the LLM filled ahead of their collect step; the step still checks its rejections.
    model_filled: set[str] = field(default_factory=set)
    # Slots a `card` collect filled: handed to the next action, then dropped (PCI DSS).
    card_slots: set[str] = field(default_factory=set)
    result: Any = None
    intent: str | None = None
    last_intent: str | None = None
    confidence: float = 0.0
    anger: float = 0.0
    sentiment: float = 0.0
    sentiment_trend: list[float] = field(default_factory=list)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    transcript: list[TranscriptLine] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    last_sources: list[Source] = field(default_factory=list)
    steps_reached: list[str] = field(default_factory=list)
    flows_run: list[str] = field(default_factory=list)
    last_prompt: str | None = None
    last_caller_text: str | None = None
    handoff: HandoffPacket | None = None
    ended: bool = False
    disposition: str | None = None
    errors: int = 0
    # per-turn latency on the audio path (end of caller speech to first bot audio, and parts)
    timings: list[dict[str, Any]] = field(default_factory=list)
    # For analytics: each flow run and how it ended ("completed", "handoff", "left" for another
    # flow or open talk; None while it runs, read as "abandoned" if the call ends then), and
    # the questions the knowledge base had no answer for (masked as the transcript is).
    flow_outcomes: list[list[Any]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    # The customer's last contacts on any channel, newest first, as flows see them
    # (``caller.history``; voicebot/history/contacts.py), looked up at call start.
    history: list[dict[str, Any]] = field(default_factory=list)

    def end_flows(self, outcome: str, flow: str | None = None) -> None:
        """Close the open runs of ``flow`` (the latest one), or of every flow."""
        for run in reversed(self.flow_outcomes):
            if run[1] is None and (flow is None or run[0] == flow):
                run[1] = outcome
                if flow is not None:
                    return

    def note_unanswered(self, question: str) -> None:
        text = mask_pii(redact(" ".join(question.split()), self.secrets()))
        if text:
            self.unanswered.append(text[:200])

    @property
    def flow(self) -> str | None:
        return self.stack[-1].flow if self.stack else None

    def secrets(self) -> list[Any]:
        found: list[Any] = []
        for name in self.sensitive:
            value = self.slots.get(name)
            if isinstance(value, dict):  # a card: its number, expiry and security code
                found.extend(v for v in value.values() if v is not None)
                expiry = str(value.get("expiry") or "")
                if len(expiry) == 4:
                    found.append(f"{expiry[:2]}/{expiry[2:]}")
            elif value is not None:
                found.append(value)
        return found

    def masked_slots(self) -> dict[str, Any]:
        return {
            name: _masked(value) if name in self.sensitive else value
            for name, value in self.slots.items()
        }

    def forget_cards(self) -> None:
        """Drop the card details a `card` collect gathered (after their action, at a handoff,
        at the end of the call): they never outlive the step that needs them."""
        for name in self.card_slots:
            self.slots.pop(name, None)
            self.sensitive.discard(name)
        self.card_slots.clear()
        if self.waiting is not None and isinstance(self.waiting.pending, dict):
            self.waiting.pending = None  # a card half keyed in when the call left the step

    def record(
        self,
        role: Literal["caller", "bot", "keypad", "event"],
        text: str,
        at: dt.datetime,
        *,
        intent: str | None = None,
        sensitive: bool = False,
    ) -> None:
        """Add a transcript line, masked: a sensitive answer, and every known secret."""
        shown = mask_value(text) if sensitive else mask_card_data(redact(text, self.secrets()))
        self.transcript.append(TranscriptLine(role=role, text=shown, at=at, intent=intent))


def _masked(value: Any) -> Any:
    if isinstance(value, dict):  # a card: only the last four digits of its number
        return mask_value(value.get("number"))
    return mask_value(value)
