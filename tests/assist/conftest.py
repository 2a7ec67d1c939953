"""The example bot's knowledge base in a real (in-memory) Chroma store, ingested once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from voicebot.config import Settings
from voicebot.knowledge.service import KnowledgeService, open_knowledge


@pytest.fixture(scope="session")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeService:
    data = tmp_path_factory.mktemp("assist-data")
    settings = Settings(bot_dir=REPO, data_dir=data)
    return open_knowledge(settings, REPO / "knowledge", ephemeral=True)


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(bot_dir=REPO, data_dir=tmp_path / "data", **overrides)  # type: ignore[arg-type]
