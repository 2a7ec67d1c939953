"""The API starts the reviewer when the bot has quality rules, and serves on without it when the
rule file is malformed."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from tests.quality.seed import Seed, seed_call
from voicebot.api.app import create_app
from voicebot.config import Settings
from voicebot.quality.review import PENDING, Reviewer
from voicebot.store.db import open_database
from voicebot.store.models import CallReview


def settings_with(tmp_path: Path, rules: str | None) -> Settings:
    if rules is not None:
        (tmp_path / "quality").mkdir()
        (tmp_path / "quality" / "rules.yaml").write_text(rules)
    return Settings(data_dir=tmp_path / "data", bot_dir=tmp_path, api_token=SecretStr("tok-1"))


def review_of(settings: Settings, call_id: str) -> CallReview | None:
    async def read() -> CallReview | None:
        db = await open_database(settings.resolved_database_url)
        try:
            async with db.session() as session:
                return await session.scalar(select(CallReview).where(CallReview.call_id == call_id))
        finally:
            await db.aclose()

    return asyncio.run(read())


def test_the_api_reviews_finished_calls(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path, "pass_score: 90\nrules:\n  - {id: angry, check: anger_at_end, weight: 20}\n"
    )

    async def seed() -> str:
        db = await open_database(settings.resolved_database_url)
        try:
            return await seed_call(db, Seed(turns=[("caller", "grr", 1, None)], anger=0.95))
        finally:
            await db.aclose()

    call_id = asyncio.run(seed())
    app = create_app(settings, queues={})
    app.state.knowledge_error = "off in these tests"
    with TestClient(app) as client:
        assert isinstance(app.state.reviewer, Reviewer)
        assert client.get("/health").status_code == 200
        review = None
        for _ in range(400):  # polls the database; not a limit on how fast the reviewer is
            review = review_of(settings, call_id)
            if review is not None and review.rules != PENDING:
                break
            time.sleep(0.025)
    assert review is not None and (review.score, review.passed) == (80, False)
    assert review.failures[0]["rule"] == "angry"


def test_a_malformed_rule_file_is_logged_and_the_api_serves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_with(tmp_path, "rules:\n  - id: x\n    check: silence\n    secs: 3\n")
    app = create_app(settings, queues={})
    app.state.knowledge_error = "off in these tests"
    with caplog.at_level(logging.ERROR, logger="voicebot.quality"), TestClient(app) as client:
        assert app.state.reviewer is None
        assert client.get("/health").json()["queues"]["status"] == "ok"
    (record,) = [r for r in caplog.records if r.name == "voicebot.quality"]
    assert record.getMessage() == "quality checks are off: the rule file has errors"
    assert "quality/rules.yaml:4:5: unknown key 'secs'" in record.detail  # type: ignore[attr-defined]


def test_no_rule_file_no_reviewer(tmp_path: Path) -> None:
    app = create_app(settings_with(tmp_path, None), queues={})
    app.state.knowledge_error = "off in these tests"
    with TestClient(app):
        assert app.state.reviewer is None
