"""The rule file: the example bot's rules load, and each mistake is reported at its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from voicebot.flows.loader import load_bot
from voicebot.quality.rules import RulesError, RuleSet, Silence, load_rules, rules_path

REPO = Path(__file__).resolve().parent.parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "quality" / "rules.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def errors(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_rules(path, display=Path("quality/rules.yaml"), **kwargs)  # type: ignore[arg-type]
    return str(caught.value).splitlines()


def test_the_example_bots_rules_load_against_its_flows() -> None:
    bot = load_bot(REPO).definition
    rules = load_rules(rules_path(REPO), bot=bot)
    assert rules.pass_score == 80
    checks = {r.check for r in rules.rules}
    assert checks == {
        "verified_before",
        "repeated_question",
        "silence",
        "anger_at_end",
        "handoff_without_summary",
        "talk_over",
        "no_answer",
        "flow_abandoned",
        "disposition_missing",
    }
    balance = next(r for r in rules.rules if r.id == "verified-before-balance")
    assert balance.critical and "check_balance" in balance.intents  # type: ignore[union-attr]


def test_defaults_and_parameters(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - id: quiet
            check: silence
        """,
    )
    rules = load_rules(path)
    assert rules.pass_score == 80
    (rule,) = rules.rules
    assert isinstance(rule, Silence)
    assert (rule.weight, rule.critical, rule.leg, rule.seconds) == (10, False, "any", 8.0)


def test_unknown_check_bad_type_and_unknown_key_each_at_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pass_score: 70
        rules:
          - id: a
            check: silense
          - id: b
            check: silence
            seconds: eight
          - id: c
            check: anger_at_end
            threshhold: 0.5
          - id: d
            check: handoff_without_summary
            critical: "yes"
        """,
    )
    assert errors(path) == [
        "quality/rules.yaml:4:12: unknown check 'silense' (did you mean 'silence'?)",
        "quality/rules.yaml:7:14: 'seconds' should be a number (got 'eight')",
        "quality/rules.yaml:10:5: unknown key 'threshhold' (did you mean 'threshold'?)",
        "quality/rules.yaml:13:15: 'critical' should be true or false (got 'yes')",
    ]


def test_structure_mistakes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pass_scor: 70
        rules: []
        """,
    )
    lines = errors(path)
    assert (
        lines[0] == "quality/rules.yaml:1:1: unknown key 'pass_scor' (did you mean 'pass_score'?)"
    )
    assert lines[1].startswith("quality/rules.yaml:2:8: 'rules'")

    path = write(tmp_path, "rules:\n  - id: x\n    weight: 5\n")
    assert errors(path) == ["quality/rules.yaml:2:5: missing required key 'check'"]

    path = write(tmp_path, "rules:\n  - id: x\n    check: silence\n   weight: 5\n")
    (line,) = errors(path)
    assert line.startswith("quality/rules.yaml:4:") and "invalid YAML" in line


def test_rule_level_mistakes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - id: same
            check: silence
          - id: same
            check: no_answer
          - id: over
            check: talk_over
            leg: bot
          - id: codes
            check: disposition_missing
            weight: 500
          - id: verify
            check: verified_before
        """,
    )
    assert errors(path) == [
        "quality/rules.yaml:4:9: rule 'same' is defined twice (also at quality/rules.yaml:2:9)",
        "quality/rules.yaml:8:10: check 'talk_over' cannot look at the bot leg; 'leg' must be "
        "one of: agent, any",
        "quality/rules.yaml:11:13: 'weight': input should be less than or equal to 100",
        "quality/rules.yaml:12:5: verified_before needs 'intents' or 'flows'",
    ]


def test_names_are_checked_against_the_bot(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - id: balance
            check: verified_before
            intents: [check_balanse]
            verify_flow: verifyy
          - id: left
            check: flow_abandoned
            flows: [pay_bill, nowhere]
        """,
    )
    bot = load_bot(REPO).definition
    assert errors(path, bot=bot) == [
        "quality/rules.yaml:4:15: rule 'balance' names intent 'check_balanse', which the bot "
        "does not define (did you mean 'check_balance'?)",
        "quality/rules.yaml:5:18: rule 'balance' names flow 'verifyy', which the bot does not "
        "define (did you mean 'verify'?)",
        "quality/rules.yaml:8:23: rule 'left' names flow 'nowhere', which the bot does not define",
    ]
    load_rules(path)  # without the bot the names are not checked


def test_digest_follows_the_rules_not_the_layout(tmp_path: Path) -> None:
    a = write(tmp_path / "a", "rules:\n  - {id: q, check: silence, seconds: 8}\n")
    b = write(tmp_path / "b", "# quiet\nrules:\n  - id: q\n    check: silence\n    seconds: 8.0\n")
    c = write(tmp_path / "c", "rules:\n  - {id: q, check: silence, seconds: 9}\n")
    digest: list[str] = [load_rules(p).digest for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]
    assert len(digest[0]) == 64
    assert isinstance(load_rules(a), RuleSet)


def test_unsafe_yaml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - &r {id: q, check: silence}\n  - *r\n")
    (line,) = errors(path)
    assert line == "quality/rules.yaml:2:5: anchors (&name) are not allowed"
