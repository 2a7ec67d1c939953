"""What every ``voicebot`` sub-command shares: the ``--bot`` option, settings and logging."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voicebot.config import Settings

if TYPE_CHECKING:
    from voicebot.flows.schema import BotDefinition

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


def load_definition(settings: Settings) -> BotDefinition:
    """The bot's flows, or exit 1 with each problem as ``path:line:col``."""
    from voicebot.flows.errors import FlowError
    from voicebot.flows.loader import load_bot

    try:
        return load_bot(
            settings.bot_dir, env=settings.flow_env(), max_bytes=settings.max_flow_file_bytes
        ).definition
    except FlowError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None


def run_with_database(settings: Settings, work: Any) -> Any:
    """``await work(db)`` on the settings' database, closed after; exit 2 when unreachable."""
    import asyncio

    from voicebot.store.db import DatabaseUnavailable, open_database

    async def run() -> Any:
        db = await open_database(settings.resolved_database_url)
        try:
            return await work(db)
        finally:
            await db.aclose()

    try:
        return asyncio.run(run())
    except DatabaseUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
