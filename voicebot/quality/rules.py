"""The quality rule file (``quality/rules.yaml`` in the bot directory), read and validated.

The content team writes the rules, so mistakes are reported like flow mistakes: every problem
of a file at once, each as ``path:line:col: message`` in plain words. The YAML reading and the
translation of pydantic's errors are the flows' own (voicebot/flows/), not a second copy.

Each rule names one ``check`` (voicebot/quality/checks.py) and carries that check's own
parameters; a key another check would take is an unknown key here, with a line number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from voicebot.flows.errors import FlowError, FlowIssue, Position
from voicebot.flows.loader import _unknown_key, _validate
from voicebot.flows.schema import BotDefinition
from voicebot.flows.yaml_source import SourceMap, read_yaml

RULES_FILE = Path("quality") / "rules.yaml"
DEFAULT_PASS_SCORE = 80

Leg = Literal["bot", "agent", "any"]
FlowOutcome = Literal["abandoned", "left", "handoff"]
RuleId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RulesError(FlowError):
    """The rule file cannot be used; ``str()`` is one ``path:line:col: message`` per line."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: RuleId
    description: str = ""
    weight: int = Field(default=10, ge=0, le=100)
    critical: bool = False
    leg: Leg = "any"

    # The legs a check can look at; a rule asking for another is a mistake in the file.
    legs: ClassVar[tuple[str, ...]] = ("bot", "any")

    def params(self) -> dict[str, Any]:
        """The check's own parameters (what the rule says besides the common keys)."""
        common = {"id", "description", "weight", "critical", "leg", "check"}
        return self.model_dump(exclude=common, mode="json")


class VerifiedBefore(_Rule):
    """The caller was verified before the bot gave out what needs verification."""

    check: Literal["verified_before"]
    intents: list[Name] = Field(default_factory=list)
    flows: list[Name] = Field(default_factory=list)
    verify_flow: Name | None = "verify"
    slot: Name | None = None
    reads: Name | None = None
    verified_line: Name | None = None


class RepeatedQuestion(_Rule):
    """The caller said the same thing twice (the bot did not get it the first time)."""

    check: Literal["repeated_question"]
    similarity: float = Field(default=0.8, gt=0, le=1)
    min_words: int = Field(default=3, ge=1, le=50)


class Silence(_Rule):
    """Dead air: the bot took longer than ``seconds`` to answer, or the line went quiet."""

    check: Literal["silence"]
    seconds: float = Field(default=8.0, gt=0, le=600)
    no_input: bool = True


class AngerAtEnd(_Rule):
    """The caller was angry at the end of the bot's leg."""

    check: Literal["anger_at_end"]
    threshold: float = Field(default=0.6, ge=0, le=1)


class HandoffWithoutSummary(_Rule):
    """A handoff reached the agent without a summary worth reading."""

    check: Literal["handoff_without_summary"]
    min_words: int = Field(default=3, ge=1, le=200)


class TalkOver(_Rule):
    """The agent talked over the caller (needs a two-channel recording)."""

    check: Literal["talk_over"]
    seconds: float = Field(default=1.5, gt=0, le=60)
    threshold_db: float = Field(default=-35.0, ge=-90, le=0)
    caller_channel: int = Field(default=0, ge=0, le=1)
    legs: ClassVar[tuple[str, ...]] = ("agent", "any")


class NoAnswer(_Rule):
    """The knowledge base had no answer for a caller's question."""

    check: Literal["no_answer"]
    allowed: int = Field(default=0, ge=0, le=100)


class FlowAbandoned(_Rule):
    """A flow was left unfinished (the caller hung up in it, or it ended the listed way)."""

    check: Literal["flow_abandoned"]
    flows: list[Name] = Field(default_factory=list)
    outcomes: list[FlowOutcome] = Field(default_factory=lambda: list[FlowOutcome](["abandoned"]))


class DispositionMissing(_Rule):
    """An agent finished the call without a disposition code."""

    check: Literal["disposition_missing"]
    legs: ClassVar[tuple[str, ...]] = ("agent", "any")


Rule = (
    VerifiedBefore
    | RepeatedQuestion
    | Silence
    | AngerAtEnd
    | HandoffWithoutSummary
    | TalkOver
    | NoAnswer
    | FlowAbandoned
    | DispositionMissing
)
CHECKS: dict[str, type[_Rule]] = {
    "verified_before": VerifiedBefore,
    "repeated_question": RepeatedQuestion,
    "silence": Silence,
    "anger_at_end": AngerAtEnd,
    "handoff_without_summary": HandoffWithoutSummary,
    "talk_over": TalkOver,
    "no_answer": NoAnswer,
    "flow_abandoned": FlowAbandoned,
    "disposition_missing": DispositionMissing,
}


class _FileHead(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    pass_score: int = Field(default=DEFAULT_PASS_SCORE, ge=0, le=100)
    rules: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True)
class RuleSet:
    """A validated rule file. ``digest`` identifies the rules that scored a review."""

    path: Path
    pass_score: int
    rules: tuple[Rule, ...]

    @property
    def digest(self) -> str:
        """SHA-256 of the rules' content: the same rules give the same hash, whatever the
        comments and layout of the file."""
        content = {
            "pass_score": self.pass_score,
            "rules": [r.model_dump(mode="json") for r in self.rules],
        }
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def rules_path(bot_dir: Path) -> Path:
    return bot_dir / RULES_FILE


def load_rules(
    path: Path,
    *,
    display: Path | None = None,
    bot: BotDefinition | None = None,
    env: Mapping[str, str] | None = None,
) -> RuleSet:
    """Read and validate a rule file; raises :class:`RulesError` with every problem found.

    ``display`` is the path shown in messages (``quality/rules.yaml``); with ``bot``, the
    intents and flows the rules name must exist in it.
    """
    shown = display or path
    data, smap, issues = read_yaml(path, display=shown, env=env)
    if data is None:
        if not issues:
            issues.append(FlowIssue(Position(shown, 1, 1), "the rule file is empty"))
        raise RulesError(issues)
    if not isinstance(data, dict):
        issues.append(FlowIssue(smap.locate(()), "a rule file must be a mapping (rules: ...)"))
        raise RulesError(issues)
    head = _validate(_FileHead, data, smap, issues)
    if head is None:
        raise RulesError(issues)
    rules: list[Rule] = []
    first_at: dict[str, Position | None] = {}
    for i, raw in enumerate(head.rules):
        rule = _validate_rule(raw, i, smap, issues)
        if rule is None:
            continue
        where = smap.locate(("rules", i, "id"))
        if rule.id in first_at:
            issues.append(
                FlowIssue(where, f"rule '{rule.id}' is defined twice (also at {first_at[rule.id]})")
            )
            continue
        first_at[rule.id] = where
        if bot is not None:
            issues.extend(_check_names(rule, i, smap, bot))
        rules.append(rule)
    if [i for i in issues if not i.warning]:
        raise RulesError(issues)
    return RuleSet(path=path, pass_score=head.pass_score, rules=tuple(rules))


def _validate_rule(
    raw: dict[str, Any], index: int, smap: SourceMap, issues: list[FlowIssue]
) -> Rule | None:
    prefix = ("rules", index)
    check = raw.get("check")
    if check is None:
        issues.append(FlowIssue(smap.locate(prefix), "missing required key 'check'"))
        return None
    if not isinstance(check, str) or check not in CHECKS:
        message = _unknown_key(str(check), tuple(CHECKS), "check")
        issues.append(FlowIssue(smap.locate((*prefix, "check")), message))
        return None
    model = CHECKS[check]
    rule = _validate(model, raw, smap, issues, prefix=prefix)
    if rule is None:
        return None
    if rule.leg not in rule.legs:
        issues.append(
            FlowIssue(
                smap.locate((*prefix, "leg")),
                f"check '{check}' cannot look at the {rule.leg} leg; 'leg' must be one of: "
                + ", ".join(rule.legs),
            )
        )
        return None
    if isinstance(rule, VerifiedBefore):
        if not rule.intents and not rule.flows:
            issues.append(
                FlowIssue(smap.locate(prefix), "verified_before needs 'intents' or 'flows'")
            )
            return None
        if not (rule.verify_flow or rule.slot or rule.verified_line):
            issues.append(
                FlowIssue(
                    smap.locate(prefix),
                    "verified_before needs a way to tell a verified caller: "
                    "'verify_flow', 'slot' or 'verified_line'",
                )
            )
            return None
    return rule  # type: ignore[return-value]


def _check_names(rule: Rule, index: int, smap: SourceMap, bot: BotDefinition) -> list[FlowIssue]:
    """Intents and flows a rule names must exist in the bot: a misspelt name would make the
    rule never apply, which no one would notice."""
    issues: list[FlowIssue] = []
    names: list[tuple[str, int | None, str, str]] = []  # key, list index, kind, name
    if isinstance(rule, VerifiedBefore):
        names += [("intents", i, "intent", n) for i, n in enumerate(rule.intents)]
        names += [("flows", i, "flow", n) for i, n in enumerate(rule.flows)]
        if rule.verify_flow and "verify_flow" in rule.model_fields_set:
            names.append(("verify_flow", None, "flow", rule.verify_flow))
    elif isinstance(rule, FlowAbandoned):
        names += [("flows", i, "flow", n) for i, n in enumerate(rule.flows)]
    for key, i, kind, name in names:
        known = bot.intents if kind == "intent" else bot.flows
        if name in known:
            continue
        path = ("rules", index, key) if i is None else ("rules", index, key, i)
        message = f"rule '{rule.id}' names {kind} '{name}', which the bot does not define"
        close = _unknown_key(name, tuple(known), kind)
        if "did you mean" in close:
            message += close[close.index(" (did you mean") :]
        issues.append(FlowIssue(smap.locate(path), message))
    return issues


__all__ = [
    "CHECKS",
    "DEFAULT_PASS_SCORE",
    "RULES_FILE",
    "AngerAtEnd",
    "DispositionMissing",
    "FlowAbandoned",
    "HandoffWithoutSummary",
    "Leg",
    "NoAnswer",
    "RepeatedQuestion",
    "Rule",
    "RuleSet",
    "RulesError",
    "Silence",
    "TalkOver",
    "VerifiedBefore",
    "load_rules",
    "rules_path",
]
