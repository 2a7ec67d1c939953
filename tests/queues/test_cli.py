"""`voicebot users`, `voicebot db` and `voicebot serve` with a database that is not there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

VOICEBOT = [sys.executable, "-m", "voicebot"]


def run(
    args: list[str], tmp_path: Path, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    # A database URL from the developer's shell must not leak into the test.
    environment = {k: v for k, v in os.environ.items() if k != "VOICEBOT_DATABASE_URL"}
    environment.update(VOICEBOT_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [*VOICEBOT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        timeout=120,
    )


def test_users_add_list_and_passwd(tmp_path: Path) -> None:
    added = run(
        [
            "users",
            "add",
            "alice",
            "--role",
            "agent",
            "--skills",
            "billing:7,general",
            "--password-stdin",
        ],
        tmp_path,
        stdin="long enough\n",
    )
    assert added.returncode == 0, added.stderr
    assert "added agent 'alice' (billing:7, general:5)" in added.stdout
    again = run(["users", "add", "alice", "--password-stdin"], tmp_path, stdin="long enough\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    short = run(["users", "add", "bob", "--password-stdin"], tmp_path, stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    bad_role = run(
        ["users", "add", "bob", "--role", "boss", "--password-stdin"],
        tmp_path,
        stdin="long enough\n",
    )
    assert bad_role.returncode == 2 and "agent, supervisor, admin" in bad_role.stderr
    bad_skill = run(
        ["users", "add", "bob", "--skills", "x:11", "--password-stdin"],
        tmp_path,
        stdin="long enough\n",
    )
    assert bad_skill.returncode == 2 and "1-10" in bad_skill.stderr
    listed = run(["users", "list"], tmp_path)
    assert "alice" in listed.stdout and "billing:7,general:5" in listed.stdout
    changed = run(["users", "passwd", "alice", "--password-stdin"], tmp_path, stdin="another one\n")
    assert changed.returncode == 0 and "password of 'alice' set" in changed.stdout
    checked = run(["db", "check"], tmp_path)
    assert checked.returncode == 0 and "revision 0004" in checked.stdout  # the newest migration


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/voicebot"
    for args in (["db", "check"], ["users", "list"], ["serve", "--no-phone", "--port", "8799"]):
        result = run(args, tmp_path, VOICEBOT_DATABASE_URL=url)
        assert result.returncode == 2, (args, result.stderr)
        assert (
            "cannot reach the database at postgresql+asyncpg://postgres@127.0.0.1:1"
            in result.stderr
        )
        assert "Traceback" not in result.stderr
    wrong = run(["db", "check"], tmp_path, VOICEBOT_DATABASE_URL="mysql://x@y/z")
    assert wrong.returncode == 2 and "unsupported database 'mysql'" in wrong.stderr
