"""``voicebot quality ...`` as a user runs it, against a real SQLite database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

from typer.testing import CliRunner

from tests.quality.seed import T0, Leg, Seed, seed_call
from tests.quality.test_review import LEAKY
from voicebot.cli.main import app
from voicebot.store.db import open_database

REPO = Path(__file__).resolve().parent.parent.parent


def run(args: list[str], tmp_path: Path) -> tuple[int, str, str]:
    env = {
        "VOICEBOT_DATA_DIR": str(tmp_path / "data"),
        "VOICEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}",
    }
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


def seed(tmp_path: Path, *seeds: Seed) -> list[str]:
    async def work() -> list[str]:
        db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}")
        try:
            return [await seed_call(db, s) for s in seeds]
        finally:
            await db.aclose()

    return asyncio.run(work())


def test_validate_the_example_bot(tmp_path: Path) -> None:
    code, out, err = run(["quality", "validate", "--bot", str(REPO)], tmp_path)
    assert code == 0, err
    assert out.startswith("ok: 10 rules (") and "pass score 80" in out


def test_validate_a_malformed_file_exits_1_with_positions(tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    (bot / "quality").mkdir(parents=True)
    (bot / "quality" / "rules.yaml").write_text(
        "rules:\n  - id: a\n    check: silence\n    seconds: [8]\n  - id: b\n    check: nope\n"
    )
    code, out, err = run(["quality", "validate", "--bot", str(bot)], tmp_path)
    assert code == 1 and out == ""
    assert "quality/rules.yaml:4:14: 'seconds' should be a number" in err
    assert "quality/rules.yaml:6:12: unknown check 'nope'" in err
    assert "2 error(s)" in err

    code, _, err = run(["quality", "validate", "--bot", str(tmp_path / "empty")], tmp_path)
    assert code == 1 and "no rule file at" in err


def test_check_one_call_as_text_and_json(tmp_path: Path) -> None:
    (call_id,) = seed(tmp_path, LEAKY)
    code, out, err = run(["quality", "check", call_id, "--bot", str(REPO)], tmp_path)
    assert code == 0, err
    assert f"call {call_id}: score " in out and "FAILED" in out
    assert "verified-before-balance (-50, critical)" in out
    assert "6 bot: Your balance is 42 pounds." in out
    assert "talk-over: no two-channel recording of the call" in out
    # the bot's own words for the intent, from flows/intents.yaml
    assert "summary: Sam Jones called about:" in out

    code, out, _ = run(
        ["quality", "check", call_id, "--format", "json", "--bot", str(REPO)], tmp_path
    )
    assert code == 0
    data = json.loads(out)
    assert data["call_id"] == call_id and data["passed"] is False
    failed = {f["rule"]: f for f in data["failures"]}
    assert failed["verified-before-balance"]["lines"] == [6]
    assert "900123" not in out

    code, _, err = run(["quality", "check", "nope", "--bot", str(REPO)], tmp_path)
    assert code == 1 and "no call 'nope'" in err


def test_recheck_a_period(tmp_path: Path) -> None:
    seed(
        tmp_path,
        Seed(started=T0, leg=Leg()),
        Seed(started=T0 + dt.timedelta(hours=10), anger=0.9, flows=[("pay_bill", "abandoned")]),
        Seed(started=T0 + dt.timedelta(days=2)),
    )
    day = T0.date().isoformat()
    code, out, err = run(
        ["quality", "recheck", "--from", day, "--to", day, "--bot", str(REPO)], tmp_path
    )
    assert code == 0, err
    assert out.strip() == "re-scored 2 calls: 1 passed, 1 failed"
    code, _, err = run(
        ["quality", "recheck", "--from", "soon", "--to", day, "--bot", str(REPO)], tmp_path
    )
    assert code == 2 and "--from must be a date" in err
