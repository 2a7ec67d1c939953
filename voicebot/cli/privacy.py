"""``voicebot privacy ...``: erase a caller, purge by the retention periods, manage the keys
that encrypt transcripts and packets at rest (docs/security.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from voicebot.cli.common import BotOption, load_definition, run_with_database, settings_for

privacy_app = typer.Typer(
    help="Data protection: erasure, retention purge, encryption keys.", no_args_is_help=True
)


def _configure_keys(settings: Any) -> None:
    from voicebot.store.encryption import EncryptionError, configure

    secret = settings.encryption_keys
    try:
        configure(secret.get_secret_value() if secret is not None else None)
    except EncryptionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@privacy_app.command("erase")
def erase(
    caller: Annotated[
        str, typer.Option("--caller", help="The caller's number, e.g. +441632960001.")
    ],
    bot: BotOption = None,
) -> None:
    """Remove everything stored about one caller (calls, transcripts, handoffs, queue entries,
    callbacks, reviews, recordings, spooled handoffs); an audit record without the number stays."""
    from voicebot.privacy.erasure import erase_caller, number_matcher

    settings = settings_for(bot)
    _configure_keys(settings)
    try:
        number_matcher(caller)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def work(db: Any) -> Any:
        return await erase_caller(
            db,
            caller,
            data_dir=settings.data_dir,
            recordings_dir=settings.resolved_recordings_dir,
            actor="cli",
        )

    report = run_with_database(settings, work)
    typer.echo(f"erased (reference {report.reference}): {json.dumps(report.counts())}")


@privacy_app.command("purge")
def purge_now(bot: BotOption = None) -> None:
    """Apply the bot's privacy.retention_days now (the API also does this every hour)."""
    from voicebot.privacy.erasure import purge

    settings = settings_for(bot)
    _configure_keys(settings)
    retention = load_definition(settings).bot.privacy.retention_days

    async def work(db: Any) -> Any:
        return await purge(db, retention, recordings_dir=settings.resolved_recordings_dir)

    report = run_with_database(settings, work)
    typer.echo(
        f"purged: transcripts of {report.transcripts} calls, {report.handoffs} handoff packets, "
        f"{report.recordings} recording files"
    )


@privacy_app.command("rotate-key")
def rotate_key(bot: BotOption = None) -> None:
    """Re-encrypt every encrypted column with the first key of VOICEBOT_ENCRYPTION_KEYS (the
    other keys only need to open the old rows; remove them afterwards)."""
    from voicebot.privacy.erasure import rotate_keys
    from voicebot.store.encryption import EncryptionError

    settings = settings_for(bot)
    _configure_keys(settings)
    try:
        done = run_with_database(settings, rotate_keys)
    except EncryptionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo("re-encrypted: " + ", ".join(f"{k} {v}" for k, v in done.items()))


@privacy_app.command("new-key")
def new_key() -> None:
    """Print a new random encryption key (put it first in VOICEBOT_ENCRYPTION_KEYS)."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode("ascii"))
