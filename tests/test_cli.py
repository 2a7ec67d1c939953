"""The voicebot command, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import REPO, write_bot

# Commands write their knowledge index under the data directory; keep it out of the checkout.
_DATA = tempfile.mkdtemp(prefix="voicebot-cli-")


def voicebot(
    *args: str, stdin: str = "", cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "VOICEBOT_DATA_DIR": _DATA, **(env or {})},
    )


def test_validate_example_bot() -> None:
    done = voicebot("flows", "validate")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 14 flows, 15 intents")


def test_validate_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    write_bot(
        tmp_path,
        {
            "bot.yaml": "bot:\n  name: x\nflows:\n  f:\n    steps:\n      - say: hi\n        nxt: end\n      - call: nowhere\n"
        },
    )
    done = voicebot("flows", "validate", "--bot", str(tmp_path))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert "flows/bot.yaml:7:9: unknown key 'nxt' (did you mean 'next'?)" in lines
    assert lines[-1] == "1 error(s)"
    assert "Traceback" not in done.stderr


def test_flows_test_with_junit(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    done = voicebot("flows", "test", "--junit", str(junit), "-k", "menu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  press-or-say menu by keypad to opening hours" in done.stdout
    suite = ET.parse(junit).getroot()
    assert int(suite.get("tests", "0")) >= 3 and suite.get("failures") == "0"


def test_flows_test_failure_exits_1(tmp_path: Path) -> None:
    write_bot(
        tmp_path,
        {
            "bot.yaml": "bot:\n  name: x\n  greeting: Hi there\n",
            "tests/t.yaml": "tests:\n  - name: greets\n    steps:\n      - bot: { contains: Goodbye }\n",
        },
    )
    done = voicebot("flows", "test", "--bot", str(tmp_path))
    assert done.returncode == 1
    assert "FAIL  greets" in done.stdout and "bot:    Hi there" in done.stdout


def test_nlu_classify_json_lines() -> None:
    done = voicebot("nlu", "classify", stdin="what's my balance\n\nblue elephants dance\n")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows[0]["intent"] == "check_balance" and rows[0]["confidence"] > 0.55
    assert rows[1] == {
        "text": "blue elephants dance",
        "intent": None,
        "confidence": rows[1]["confidence"],
    }


def test_chat_scripted_from_stdin_prints_the_packet() -> None:
    done = voicebot("chat", stdin="my phone was stolen\n12345678\nSW1A 1AA\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "bot: Thanks for calling Acme Telecom" in out
    assert "Your SIM is blocked." in out
    packet = json.loads(out[out.index("--- handoff packet ---") + 22 :].strip().split("\nbot:")[0])
    assert packet["queue"] == "care" and packet["slots"]["account_number"] == "12345678"


def test_schema_export() -> None:
    done = voicebot("flows", "schema")
    schema = json.loads(done.stdout)
    assert "flows" in schema["properties"] and "bot" in schema["properties"]


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["chat", "--help"],
        ["flows", "validate", "--help"],
        ["flows", "test", "--help"],
        ["flows", "schema", "--help"],
        ["nlu", "classify", "--help"],
        ["models", "download", "--help"],
    ):
        done = voicebot(*args)
        assert done.returncode == 0 and "Usage" in done.stdout, args


# -- knowledge ---------------------------------------------------------------------------------


def test_knowledge_ingest_search_answer_and_list(tmp_path: Path) -> None:
    from tests.knowledge.conftest import DOCS, write_docs

    docs = write_docs(tmp_path / "knowledge", {**DOCS, "broken.pdf": b"%PDF-1.4 nope"})
    env = {"VOICEBOT_DATA_DIR": str(tmp_path / "data")}
    first = voicebot("knowledge", "ingest", "--bot", str(tmp_path), env=env)
    assert first.returncode == 1  # one file could not be ingested; the others were
    assert first.stdout.splitlines()[0] == (
        "added 5, changed 0, unchanged 0, removed 0; 7 chunks written"
    )
    assert "error     broken.pdf: is a broken PDF" in first.stderr

    (docs / "broken.pdf").unlink()
    second = voicebot("knowledge", "ingest", str(docs), "--json", env=env)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert (report["unchanged"], report["chunks_written"], report["errors"]) == (5, 0, 0)

    found = voicebot(
        "knowledge", "search", "price of a paper bill", "-k", "2", "--bot", str(tmp_path), env=env
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("1. ")
    assert "Paper bills  (paper-bills.md › Paper bills > What a paper bill costs)" in found.stdout

    tagged = voicebot(
        "knowledge",
        "search",
        "costs",
        "--tag",
        "payments",
        "--json",
        "--bot",
        str(tmp_path),
        env=env,
    )
    assert {p["source"] for p in json.loads(tagged.stdout)} == {"top-up.txt"}

    said = voicebot(
        "knowledge",
        "answer",
        "are paper bills free for pensioners",
        "--bot",
        str(tmp_path),
        env=env,
    )
    assert (
        said.stdout.splitlines()[0]
        == "Paper bills are free if you are aged 75 or over, or registered blind."
    )
    assert "source: paper-bills.md › Paper bills > Free paper bills" in said.stdout
    unknown = voicebot(
        "knowledge", "answer", "who won the football", "--bot", str(tmp_path), env=env
    )
    assert unknown.returncode == 1 and "no answer" in unknown.stdout

    listed = voicebot("knowledge", "list", "--bot", str(tmp_path), env=env)
    assert (
        "summer-offer.md  1 chunks  Summer roaming offer  [roaming]  valid until 2025-09-30"
        in listed.stdout
    )
    assert listed.stdout.rstrip().endswith("5 documents")


def test_knowledge_with_a_chroma_server_that_is_down(tmp_path: Path) -> None:
    done = voicebot(
        "knowledge",
        "search",
        "anything",
        "--bot",
        str(tmp_path),
        env={"VOICEBOT_CHROMA_URL": "http://127.0.0.1:9"},
    )
    assert done.returncode == 1
    assert "The Chroma server at http://127.0.0.1:9 is not reachable" in done.stderr
    assert "Traceback" not in done.stderr


def test_chat_answers_from_the_example_knowledge() -> None:
    done = voicebot("chat", stdin="how long do you keep recordings of my calls\n")
    assert done.returncode == 0, done.stderr
    assert "Call recordings are kept for 12 months" in done.stdout
