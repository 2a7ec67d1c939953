"""The voicebot command, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import REPO, write_bot


def voicebot(*args: str, stdin: str = "", cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_validate_example_bot() -> None:
    done = voicebot("flows", "validate")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 12 flows, 14 intents")


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
