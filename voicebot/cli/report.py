"""``voicebot report``: the historical reports from the stored calls (voicebot/analytics/
reports.py; docs/reports.md): calls by day, hour, queue, intent or agent, interval reports and
the bot's performance, as a table, CSV for a spreadsheet or JSON."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated, Any

import typer

from voicebot.cli.common import BotOption, load_definition, settings_for


def report_command(
    start: Annotated[
        str | None, typer.Option("--from", help="First local date (YYYY-MM-DD), included.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last local date, included. Default: today.")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="day, hour, queue, intent or agent.")] = "day",
    interval: Annotated[
        int | None,
        typer.Option("--interval", help="An interval report instead: 15, 30 or 60 minutes."),
    ] = None,
    bot_report: Annotated[
        bool,
        typer.Option("--bot-performance", help="The bot's performance: containment, reasons, ..."),
    ] = False,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", help="Only this queue; repeat for several.")
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", help="Only this channel (sip, softphone, chat, ...); repeat."),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone. Default: the bot's hours.timezone.")
    ] = None,
    bot: BotOption = None,
) -> None:
    """Report on the stored calls: by day, hour, queue, intent or agent; intervals; the bot."""
    from voicebot.analytics import reports
    from voicebot.analytics.period import ReportError, parse_period, zone
    from voicebot.store.db import DatabaseUnavailable, open_database

    if output not in ("table", "csv", "json"):
        typer.echo(f"error: --format must be table, csv or json, got '{output}'", err=True)
        raise typer.Exit(2)
    if bot_report and interval is not None:
        typer.echo("error: give --bot-performance or --interval, not both", err=True)
        raise typer.Exit(2)
    settings = settings_for(bot)
    definition = load_definition(settings)
    try:
        zone_ = zone(tz or (definition.bot.hours.timezone if definition.bot.hours else None))
        period = parse_period(start, end, tz=zone_, today=dt.datetime.now(zone_).date())
        flt = reports.make_filter(
            period, queues=queue or (), channels=channel or (), known=definition.queues
        )
        if interval is not None and interval not in reports.INTERVALS:
            raise ReportError(f"--interval must be 15, 30 or 60, got {interval}")
        if by not in reports.BY:
            raise ReportError(f"--by must be one of {', '.join(reports.BY)}, got '{by}'")
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def run() -> Any:
        db = await open_database(settings.resolved_database_url)
        try:
            async with db.session() as session:
                if bot_report:
                    return await reports.bot_report(session, flt)
                if interval is not None:
                    return await reports.interval_report(
                        session, flt, interval=interval, queues=definition.queues
                    )
                return await reports.calls_report(session, flt, by=by, queues=definition.queues)
        finally:
            await db.aclose()

    try:
        result = asyncio.run(run())
    except (DatabaseUnavailable, ReportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if isinstance(result, dict):  # the bot report
        if output == "json":
            typer.echo(json.dumps(result, indent=2))
        elif output == "csv":
            typer.echo(reports.bot_csv(result), nl=False)
        else:
            typer.echo(reports.bot_table(result))
        return
    if output == "json":
        typer.echo(json.dumps(result.as_json(), indent=2))
    elif output == "csv":
        typer.echo(result.to_csv(), nl=False)
    else:
        typer.echo(result.to_table())
