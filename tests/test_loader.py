"""The flow loader: one test per kind of mistake a content designer can make."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, write_bot
from voicebot.flows.errors import FlowError
from voicebot.flows.loader import load_bot

BASE = """\
bot:
  name: Test
queues:
  general: {}
intents:
  hello: { examples: [hello] }
"""


def errors(tmp_path: Path, files: dict[str, str], env: dict[str, str] | None = None) -> list[str]:
    write_bot(tmp_path, files)
    with pytest.raises(FlowError) as caught:
        load_bot(tmp_path, env=env or {})
    return [str(i) for i in caught.value.errors]


def test_example_bot_loads_without_errors_or_warnings() -> None:
    loaded = load_bot(REPO, env={}, with_tests=True)
    assert len(loaded.definition.flows) >= 6
    assert len(loaded.definition.intents) >= 12
    assert len(loaded.tests) >= 20
    assert loaded.warnings == []


def test_malformed_yaml_points_at_line_and_column(tmp_path: Path) -> None:
    found = errors(tmp_path, {"bot.yaml": BASE + "flows:\n  f:\n    steps: [ {say: hi}\n"})
    assert len(found) == 1
    assert found[0].startswith("flows/bot.yaml:") and "invalid YAML" in found[0]


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        {"bot.yaml": BASE + "flows:\n  f:\n    steps:\n      - say: hi\n        bargein: false\n"},
    )
    assert found == ["flows/bot.yaml:11:9: unknown key 'bargein' (did you mean 'barge_in'?)"]


def test_wrong_type_is_said_in_plain_words(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        {
            "bot.yaml": BASE
            + "flows:\n  f:\n    steps:\n      - say: hi\n        barge_in: sometimes\n"
        },
    )
    assert found == ["flows/bot.yaml:11:19: 'barge_in' should be true or false (got 'sometimes')"]


def test_step_without_a_step_key(tmp_path: Path) -> None:
    found = errors(tmp_path, {"bot.yaml": BASE + "flows:\n  f:\n    steps:\n      - prompt: hi\n"})
    assert "flows/bot.yaml:10:9: a step needs one of the step keys" in found[0]


def test_dangling_next_names_flow_and_target(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        {
            "bot.yaml": BASE
            + "flows:\n  pay:\n    steps:\n      - id: ask\n        say: hi\n        next: confirm\n"
        },
    )
    assert found == [
        "flows/bot.yaml:12:15: step 'ask' in flow 'pay' goes to 'confirm', which is not a step or flow that exists"
    ]


def test_unreachable_step(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        {
            "bot.yaml": BASE
            + "flows:\n  f:\n    steps:\n      - say: a\n        next: end\n      - say: b\n"
        },
    )
    assert (
        len(found) == 1
        and "can never be reached" in found[0]
        and found[0].startswith("flows/bot.yaml:12:9")
    )


def test_unknown_action_queue_intent_and_slot(tmp_path: Path) -> None:
    text = (
        BASE
        + """\
flows:
  f:
    trigger: helo
    steps:
      - action: lookup
      - say: "{{ slots.acount }}"
      - handoff: genral
"""
    )
    found = errors(tmp_path, {"bot.yaml": text})
    joined = "\n".join(found)
    assert "uses intent 'helo', which is not defined (did you mean 'hello'?)" in joined
    assert "calls action 'lookup', which is not defined" in joined
    assert "uses slot 'acount', which no step ever fills" in joined
    assert "hands off to queue 'genral', which is not defined (did you mean 'general'?)" in joined
    assert len(found) == 4


def test_bad_expression_and_unknown_name(tmp_path: Path) -> None:
    text = (
        BASE
        + """\
flows:
  f:
    steps:
      - say: hi
        next:
          - if: "slots.x =="
            then: end
      - say: "{{ customer.name }}"
"""
    )
    found = errors(tmp_path, {"bot.yaml": text})
    assert any("condition that does not parse" in e for e in found)
    assert any("uses 'customer', which is not a known name" in e for e in found)


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    big = BASE + "# " + "x" * (1024 * 1024) + "\n"
    found = errors(tmp_path, {"bot.yaml": big})
    assert found[0].startswith("flows/bot.yaml:1:1: file is") and "limit" in found[0]


def test_alias_bomb_is_refused_without_expanding(tmp_path: Path) -> None:
    bomb = BASE + 'a: &a ["lol","lol"]\nb: [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    found = errors(tmp_path, {"bot.yaml": bomb})
    assert found == ["flows/bot.yaml:7:4: anchors (&name) are not allowed"]


def test_yaml_tags_are_refused(tmp_path: Path) -> None:
    found = errors(tmp_path, {"bot.yaml": BASE + "x: !!python/object/apply:os.system [ls]\n"})
    assert "YAML tags" in found[0]


def test_duplicate_flow_in_two_files_names_both(tmp_path: Path) -> None:
    flow = "flows:\n  f:\n    steps:\n      - say: hi\n"
    found = errors(tmp_path, {"bot.yaml": BASE + flow, "more.yaml": flow})
    assert found == ["flows/more.yaml:2:3: flow 'f' is defined twice (also at flows/bot.yaml:8:3)"]


def test_missing_environment_variable(tmp_path: Path) -> None:
    text = BASE + 'actions:\n  a: { http: { url: "${BACKEND_URL}/x" } }\n'
    found = errors(tmp_path, {"bot.yaml": text})
    assert found[0] == (
        "flows/bot.yaml:8:21: environment variable 'BACKEND_URL' is not set (used as ${BACKEND_URL})"
    )


def test_environment_variable_and_default(tmp_path: Path) -> None:
    text = (
        BASE
        + 'actions:\n  a: { http: { url: "${BACKEND_URL}/x" } }\n  b: { http: { url: "${OTHER:-http://h}/y" } }\n'
    )
    write_bot(tmp_path, {"bot.yaml": text})
    loaded = load_bot(tmp_path, env={"BACKEND_URL": "https://crm.example"})
    assert loaded.definition.actions["a"].http.url == "https://crm.example/x"  # type: ignore[union-attr]
    assert loaded.definition.actions["b"].http.url == "http://h/y"  # type: ignore[union-attr]


def test_all_errors_of_all_files_are_reported_together(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        {
            "bot.yaml": BASE + "flows:\n  a:\n    steps:\n      - say: hi\n        bogus: 1\n",
            "b.yaml": "flows:\n  b:\n    steps:\n      - call: nowhere\n",
            "c.yaml": "intents:\n  x: [not, a, mapping]\n",
        },
    )
    assert len(found) == 3
    assert {e.split(":")[0] for e in found} == {"flows/bot.yaml", "flows/b.yaml", "flows/c.yaml"}


def test_no_bot_section(tmp_path: Path) -> None:
    found = errors(tmp_path, {"x.yaml": "queues:\n  general: {}\n"})
    assert "no 'bot:' section" in found[0]


def test_yes_and_no_stay_words_and_times_stay_text(tmp_path: Path) -> None:
    text = BASE + 'flows:\n  f:\n    steps:\n      - say: no\n      - say: "ok"\n'
    text = text.replace(
        "name: Test",
        "name: Test\n  hours: { timezone: Europe/London, weekly: { mon-fri: 08:00-20:00 } }",
    )
    write_bot(tmp_path, {"bot.yaml": text})
    loaded = load_bot(tmp_path, env={})
    assert loaded.definition.flows["f"].steps[0].say == "no"  # type: ignore[union-attr]


def test_conversation_test_referring_to_unknown_names(tmp_path: Path) -> None:
    write_bot(
        tmp_path,
        {
            "bot.yaml": BASE + "flows:\n  f:\n    trigger: hello\n    steps:\n      - say: hi\n",
            "tests/t.yaml": "tests:\n  - name: t\n    steps:\n      - user: hello\n      - expect: { flow: g, intent: bye }\n",
        },
    )
    with pytest.raises(FlowError) as caught:
        load_bot(tmp_path, env={}, with_tests=True)
    messages = [str(i) for i in caught.value.errors]
    assert any("expects flow 'g'" in m for m in messages)
    assert any("expects intent 'bye'" in m for m in messages)


def test_two_flows_started_by_one_intent(tmp_path: Path) -> None:
    flows = "flows:\n  a:\n    trigger: hello\n    steps: [{say: a}]\n  b:\n    trigger: hello\n    steps: [{say: b}]\n"
    found = errors(tmp_path, {"bot.yaml": BASE + flows})
    assert found == [
        "flows/bot.yaml:12:14: flow 'b' and flow 'a' are both started by intent 'hello'; an intent can start only one flow"
    ]


def test_intent_with_nothing_to_recognise_it_by(tmp_path: Path) -> None:
    found = errors(tmp_path, {"bot.yaml": BASE + "  empty: {}\n"})
    assert found == [
        "flows/bot.yaml:7:10: intent 'empty' has neither examples nor a description, so nothing can recognise it"
    ]
