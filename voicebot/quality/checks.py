"""The checks a rule can name, each a pure function of a finished call's stored record.

A check returns the failures it found (empty: the call passed it) or :class:`NotApplicable`
when the call gives it nothing to look at: no handoff for ``handoff_without_summary``, no
two-channel recording for ``talk_over``, no agent leg for a rule about the agent. A rule that
does not apply neither fails nor passes the call and costs no points.

``lines`` in a failure are the ``seq`` numbers of the transcript lines (``turns``) that
triggered it, so a reviewer can read them in context.
"""

from __future__ import annotations

import difflib
import itertools
import re
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.privacy.masking import mask_pii
from voicebot.quality.rules import (
    AngerAtEnd,
    DispositionMissing,
    FlowAbandoned,
    HandoffWithoutSummary,
    NoAnswer,
    RepeatedQuestion,
    Rule,
    RuleSet,
    Silence,
    TalkOver,
    VerifiedBefore,
)
from voicebot.store.models import Call, CallEvent, Disposition, Handoff, QueueEntry, Turn

_NO_INPUT = re.compile(r"^no input \((\d+(?:\.\d+)?)s\)$")
_WORD = re.compile(r"[\w']+")


@dataclass
class CallRecord:
    """Everything stored about one call, both legs, as the checks read it."""

    call: Call
    turns: list[Turn] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)  # in the order they were written
    handoffs: list[Handoff] = field(default_factory=list)
    entries: list[QueueEntry] = field(default_factory=list)
    dispositions: list[Disposition] = field(default_factory=list)
    recordings: list[Path] = field(default_factory=list)  # WAV files of the call, if any
    agents: dict[int, str] = field(default_factory=dict)  # agent id -> display name

    @property
    def has_bot_leg(self) -> bool:
        return bool(self.turns) or self.call.bot_ended_at is not None

    @property
    def has_agent_leg(self) -> bool:
        return any(e.connected_at is not None for e in self.entries)

    def flows(self) -> list[tuple[str, str]]:
        """Each flow run and how it ended, in the order the flows started."""
        return [(e.name or "", e.label or "") for e in self.events if e.kind == "flow"]


@dataclass(frozen=True)
class Failure:
    """One way a call failed a rule."""

    rule: str
    description: str
    weight: int
    critical: bool
    detail: str
    lines: list[int]

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "description": self.description,
            "weight": self.weight,
            "critical": self.critical,
            "detail": self.detail,
            "lines": list(self.lines),
        }


@dataclass(frozen=True)
class NotApplicable:
    """The call gives the check nothing to look at (skipped: neither passed nor failed)."""

    reason: str


@dataclass(frozen=True)
class Finding:
    """What a check found, before the rule's weight and wording are put on it."""

    detail: str
    lines: list[int] = field(default_factory=list)


@dataclass
class Evaluation:
    """A call scored against a rule set."""

    score: int
    passed: bool
    failures: list[Failure]
    not_applicable: dict[str, str]  # rule id -> why it was skipped
    passed_rules: list[str]


CheckResult = list[Finding] | NotApplicable


def evaluate(rules: RuleSet, record: CallRecord) -> Evaluation:
    """Run every rule: score = 100 minus the weights of the rules failed (each rule once, however
    often it failed), at least 0; the call passes at ``pass_score`` when no critical rule
    failed."""
    failures: list[Failure] = []
    skipped: dict[str, str] = {}
    passed_rules: list[str] = []
    lost = 0
    critical_failed = False
    for rule in rules.rules:
        result = run_check(rule, record)
        if isinstance(result, NotApplicable):
            skipped[rule.id] = result.reason
            continue
        if not result:
            passed_rules.append(rule.id)
            continue
        lost += rule.weight
        critical_failed = critical_failed or rule.critical
        failures += [
            Failure(
                rule=rule.id,
                description=rule.description,
                weight=rule.weight,
                critical=rule.critical,
                detail=f.detail,
                lines=sorted(set(f.lines)),
            )
            for f in result
        ]
    score = max(0, 100 - lost)
    return Evaluation(
        score=score,
        passed=score >= rules.pass_score and not critical_failed,
        failures=failures,
        not_applicable=skipped,
        passed_rules=passed_rules,
    )


def run_check(rule: Rule, record: CallRecord) -> CheckResult:
    """One rule on one call, after the rule's ``leg`` is matched against the call's legs."""
    if rule.leg == "bot" and not record.has_bot_leg:
        return NotApplicable("the call has no bot leg")
    if rule.leg == "agent" and not record.has_agent_leg:
        return NotApplicable("no agent took the call")
    check: Callable[[Any, CallRecord], CheckResult] = _CHECKS[type(rule)]
    return check(rule, record)


# --- the checks -----------------------------------------------------------------------------


def verified_before(rule: VerifiedBefore, record: CallRecord) -> CheckResult:
    """Calls about ``intents`` (a caller line or the call's intent) or running ``flows`` must
    show the caller verified (the ``verify_flow`` completed, the handoff's ``slot`` is true or
    the bot said ``verified_line``) before the bot said ``reads``."""
    turns = record.turns
    asked = [t for t in turns if t.role == "caller" and t.intent in rule.intents]
    ran = [name for name, _ in record.flows() if name in rule.flows]
    if not asked and not ran and record.call.intent not in rule.intents:
        return NotApplicable("the call was not about " + ", ".join([*rule.intents, *rule.flows]))
    reads = _first_bot_line(turns, rule.reads) if rule.reads else None
    if rule.reads and reads is None:
        return []  # the guarded information was never read out
    # The line that would have needed verification: the read-out, else the request.
    guarded = reads or (asked[0] if asked else None)
    lines = [guarded.seq] if guarded is not None else []
    if rule.verified_line:
        marker = _first_bot_line(turns, rule.verified_line)
        if marker is not None and (reads is None or marker.seq < reads.seq):
            return []
    # Flow events carry no time: with a read-out line, only the verified line shows the order.
    ordered = bool(rule.reads and rule.verified_line)
    if (
        rule.verify_flow
        and not ordered
        and any(n == rule.verify_flow and o == "completed" for n, o in record.flows())
    ):
        return []
    if rule.slot and any(_truthy(_packet_slot(h.packet, rule.slot)) for h in record.handoffs):
        return []
    how = []
    if rule.verify_flow:
        how.append(f"flow '{rule.verify_flow}' did not complete")
    if rule.verified_line:
        how.append("the bot never confirmed verification before it")
    if rule.slot:
        how.append(f"slot '{rule.slot}' was not true")
    what = "read out" if reads is not None else "asked for"
    return [Finding(f"{what} without verification: " + "; ".join(how), lines)]


def repeated_question(rule: RepeatedQuestion, record: CallRecord) -> CheckResult:
    """Two caller lines of at least ``min_words`` words whose words match by ``similarity``
    (0..1): the caller had to ask again."""
    said = [
        (t, words)
        for t in record.turns
        if t.role == "caller" and len(words := _words(t.text)) >= rule.min_words
    ]
    if not said:
        return NotApplicable("the caller said nothing long enough to compare")
    findings: list[Finding] = []
    repeated: set[int] = set()
    for i, (later, later_words) in enumerate(said):
        if later.seq in repeated:
            continue
        for earlier, earlier_words in said[:i]:
            ratio = difflib.SequenceMatcher(None, earlier_words, later_words).ratio()
            if ratio >= rule.similarity:
                repeated.add(later.seq)
                findings.append(
                    Finding(
                        f"the caller said the same thing again (line {earlier.seq} and line "
                        f"{later.seq}, {ratio:.0%} alike)",
                        [earlier.seq, later.seq],
                    )
                )
                break
    return findings


def silence(rule: Silence, record: CallRecord) -> CheckResult:
    """The bot answered a caller line more than ``seconds`` after it, or (``no_input``) the
    bot's own no-input timer of at least ``seconds`` ran out."""
    turns = record.turns
    if not turns:
        return NotApplicable("no transcript")
    findings: list[Finding] = []
    for before, after in itertools.pairwise(turns):
        if before.role in ("caller", "keypad") and after.role == "bot":
            gap = (after.at - before.at).total_seconds()
            if gap > rule.seconds:
                findings.append(
                    Finding(f"{gap:.1f} s before the bot answered", [before.seq, after.seq])
                )
    if rule.no_input:
        for t in turns:
            match = _NO_INPUT.match(t.text) if t.role == "event" else None
            if match and float(match.group(1)) >= rule.seconds:
                findings.append(
                    Finding(f"{float(match.group(1)):g} s of silence on the line", [t.seq])
                )
    return findings


def anger_at_end(rule: AngerAtEnd, record: CallRecord) -> CheckResult:
    """The anger at the caller's last turn (0..1, stored with the bot leg) was ``threshold``
    or more."""
    anger = record.call.anger
    if anger is None:
        return NotApplicable("no anger measured for the call")
    if anger < rule.threshold:
        return []
    last = next((t.seq for t in reversed(record.turns) if t.role == "caller"), None)
    return [Finding(f"anger {anger:.2f} at the end", [last] if last is not None else [])]


def handoff_without_summary(rule: HandoffWithoutSummary, record: CallRecord) -> CheckResult:
    """Each handoff's packet has a summary of at least ``min_words`` words."""
    if not record.handoffs:
        return NotApplicable("the call was not handed off")
    findings: list[Finding] = []
    for handoff in record.handoffs:
        summary = handoff.packet.get("summary") if isinstance(handoff.packet, dict) else None
        if len(_words(summary if isinstance(summary, str) else "")) >= rule.min_words:
            continue
        before = [t.seq for t in record.turns if t.at <= handoff.created_at]
        findings.append(
            Finding(
                f"handoff to {handoff.queue} without a summary",
                before[-1:] if before else [],
            )
        )
    return findings


def talk_over(rule: TalkOver, record: CallRecord) -> CheckResult:
    """In a two-channel recording (caller on ``caller_channel``, agent on the other), both
    spoke at once for ``seconds`` or more."""
    stereo = [p for p in record.recordings if _channels(p) == 2]
    if not stereo:
        return NotApplicable("no two-channel recording of the call")
    findings: list[Finding] = []
    for path in stereo:
        for start, length in overlaps(
            path, caller_channel=rule.caller_channel, threshold_db=rule.threshold_db
        ):
            if length >= rule.seconds:
                findings.append(
                    Finding(
                        f"agent talked over the caller for {length:.1f} s at "
                        f"{_clock(start)} in {path.name}"
                    )
                )
    return findings


def no_answer(rule: NoAnswer, record: CallRecord) -> CheckResult:
    """More than ``allowed`` caller questions the knowledge base could not answer."""
    questions = [e.name or "" for e in record.events if e.kind == "no_answer"]
    if len(questions) <= rule.allowed:
        return []
    findings = []
    for question in questions:
        wanted = _words(question)
        lines = [
            t.seq for t in record.turns if t.role == "caller" and _words(mask_pii(t.text)) == wanted
        ]
        findings.append(Finding(f'no answer for "{question}"', lines[:1]))
    return findings


def flow_abandoned(rule: FlowAbandoned, record: CallRecord) -> CheckResult:
    """A flow (any, or one of ``flows``) ended one of the ``outcomes`` ways."""
    runs = [(n, o) for n, o in record.flows() if not rule.flows or n in rule.flows]
    if not runs:
        return NotApplicable("none of the flows ran")
    last = [t.seq for t in record.turns if t.role in ("caller", "bot")][-1:]
    return [
        Finding(f"flow '{name}' ended {outcome}", last)
        for name, outcome in runs
        if outcome in rule.outcomes
    ]


def disposition_missing(rule: DispositionMissing, record: CallRecord) -> CheckResult:
    """Every queue entry an agent took has a disposition code."""
    taken = [e for e in record.entries if e.connected_at is not None]
    if not taken:
        return NotApplicable("no agent took the call")
    coded = {d.entry_id for d in record.dispositions if d.code.strip()}
    return [
        Finding(f"{record.agents.get(e.agent_id or 0, 'the agent')} left no disposition code")
        for e in taken
        if e.id not in coded
    ]


_CHECKS: dict[type[Any], Callable[[Any, CallRecord], CheckResult]] = {
    VerifiedBefore: verified_before,
    RepeatedQuestion: repeated_question,
    Silence: silence,
    AngerAtEnd: anger_at_end,
    HandoffWithoutSummary: handoff_without_summary,
    TalkOver: talk_over,
    NoAnswer: no_answer,
    FlowAbandoned: flow_abandoned,
    DispositionMissing: disposition_missing,
}


# --- audio ----------------------------------------------------------------------------------

_FRAME_SECONDS = 0.02
# A pause shorter than this inside speech is still speech (breaths, plosives).
_HANGOVER_FRAMES = 10


def overlaps(
    path: Path, *, caller_channel: int = 0, threshold_db: float = -35.0
) -> list[tuple[float, float]]:
    """Where both channels of a 16-bit WAV have speech at once: ``(start s, length s)``.

    The voice activity is frame energy above ``threshold_db`` (dBFS), smoothed so that short
    pauses inside a sentence do not split it. Read in one go: the caller and agent legs of a
    call are minutes long, a few MB of PCM.
    """
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 2 or wav.getsampwidth() != 2:
            raise ValueError(f"{path.name}: expected 16-bit two-channel WAV")
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    frame = max(1, int(rate * _FRAME_SECONDS))
    count = len(pcm) // frame
    if count == 0:
        return []
    frames = pcm[: count * frame].astype(np.float64).reshape(count, frame, 2) / 32768.0
    rms = np.sqrt(np.mean(frames**2, axis=1))  # (count, 2)
    active = 20 * np.log10(np.maximum(rms, 1e-9)) > threshold_db
    caller = _hangover(active[:, caller_channel])
    agent = _hangover(active[:, 1 - caller_channel])
    both = caller & agent
    result: list[tuple[float, float]] = []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], both.astype(np.int8), [0]))))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        result.append((start * _FRAME_SECONDS, (end - start) * _FRAME_SECONDS))
    return result


def _hangover(active: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Speech stays on for a few frames after the energy drops."""
    held = active.copy()
    for shift in range(1, _HANGOVER_FRAMES + 1):
        held[shift:] |= active[:-shift]
    return held


def _channels(path: Path) -> int:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnchannels() if wav.getsampwidth() == 2 else 0
    except (OSError, EOFError, wave.Error):
        return 0


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


# --- helpers --------------------------------------------------------------------------------


def _words(text: str | None) -> list[str]:
    return _WORD.findall((text or "").lower())


def _first_bot_line(turns: Sequence[Turn], phrase: str | None) -> Turn | None:
    wanted = " ".join(_words(phrase))
    for t in turns:
        if t.role == "bot" and wanted and wanted in " ".join(_words(t.text)):
            return t
    return None


def _packet_slot(packet: Any, slot: str) -> Any:
    if not isinstance(packet, dict):
        return None
    slots = packet.get("slots")
    if isinstance(slots, dict) and slot in slots:
        return slots[slot]
    return packet.get(slot)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


__all__ = [
    "CallRecord",
    "CheckResult",
    "Evaluation",
    "Failure",
    "Finding",
    "NotApplicable",
    "evaluate",
    "overlaps",
    "run_check",
]
