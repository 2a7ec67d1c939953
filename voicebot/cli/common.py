"""What every ``voicebot`` sub-command shares: the ``--bot`` option, settings and logging."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from voicebot.config import Settings

BotOption = Annotated[
    Path | None,
    typer.Option(
        "--bot",
        help="The bot directory (flows/ and knowledge/). Default: $VOICEBOT_BOT_DIR or '.'.",
        file_okay=False,
    ),
]


def settings_for(bot: Path | None) -> Settings:
    settings = Settings()
    if bot is not None:
        settings = settings.model_copy(update={"bot_dir": bot})
    return settings


def setup_logging(settings: Settings, *, quiet: bool = False) -> None:
    from voicebot.observability import configure_logging

    configure_logging(settings, level=logging.WARNING if quiet else None)
