"""The seam between the dialogue engine and whatever understands the caller.

The engine decides what happens; a brain only reads caller turns (intent, slot values,
sentiment, menu choice) and writes prose (handoff summaries). The offline brain does this with
embeddings and parsers; an LLM brain plugs in behind the same protocol.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from voicebot.engine.events import ActionOutcome, Expectation, Interpretation
from voicebot.engine.state import CallState
from voicebot.handoff.packet import HandoffPacket

# Hands one finished sentence to text-to-speech while the brain is still working on the turn.
Speaker = Callable[[str], None]


class Brain(Protocol):
    @property
    def name(self) -> str:
        """Shown to the user, e.g. by ``voicebot chat`` ("offline", "llm: gpt-4o-mini")."""
        ...

    @property
    def uses_llm(self) -> bool:
        """Whether ``llm`` steps run (True) or their ``fallback`` does (False)."""
        ...

    async def interpret(
        self,
        text: str,
        expect: Expectation,
        call: CallState,
        *,
        now: dt.datetime,
        speak: Speaker | None = None,
    ) -> Interpretation:
        """Read one caller utterance in the light of what the bot is waiting for.

        ``now`` is the call's clock in the bot's time zone ("tomorrow" is read against it).
        A brain that writes prose may hand sentences to ``speak`` as they are ready; it then
        marks its reply ``spoken``.
        """
        ...

    async def follow_up(
        self,
        expect: Expectation,
        call: CallState,
        *,
        now: dt.datetime,
        outcome: ActionOutcome | None = None,
        speak: Speaker | None = None,
    ) -> Interpretation:
        """The brain's next move without a caller turn (an ``llm`` step starting, or the
        outcome of an action it asked for)."""
        ...

    def keypad_sentiment(self, call: CallState) -> float:
        """The anger level to carry through a keypad-only turn (no words to read)."""
        ...

    async def summarise(self, packet: HandoffPacket, call: CallState) -> str | None:
        """A summary for the agent, or None to keep the one assembled from the flow."""
        ...

    def end_call(self, call: CallState) -> None:
        """Forget per-call state (sentiment history)."""
        ...
