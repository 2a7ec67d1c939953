"""``voicebot forecast``: calls per interval for the next days and the agents each needs, from
the stored history, with the method's error on the last days of that history
(voicebot/analytics/forecast.py; docs/forecast.md)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Annotated, Any

import typer

from voicebot.cli.common import BotOption, load_definition, settings_for


def forecast_command(
    days: Annotated[int, typer.Option("--days", help="Days to forecast, from today (1-60).")] = 7,
    interval: Annotated[int, typer.Option("--interval", help="Minutes: 15, 30 or 60.")] = 60,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", help="Only this queue ('all': every call the bot took); repeat."),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone. Default: the bot's hours.timezone.")
    ] = None,
    held_back: Annotated[
        int, typer.Option("--held-back", help="Days of history kept back to measure the error.")
    ] = 7,
    bot: BotOption = None,
) -> None:
    """Forecast calls and agents needed per interval, with the error on held-back history."""
    from voicebot.analytics.forecast import check_request, forecast
    from voicebot.analytics.period import ReportError, zone
    from voicebot.store.db import DatabaseUnavailable, open_database

    if output not in ("table", "csv", "json"):
        typer.echo(f"error: --format must be table, csv or json, got '{output}'", err=True)
        raise typer.Exit(2)
    settings = settings_for(bot)
    definition = load_definition(settings)
    try:
        check_request(days, interval, held_back)
        zone_ = zone(tz or (definition.bot.hours.timezone if definition.bot.hours else None))
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def run() -> dict[str, Any]:
        db = await open_database(settings.resolved_database_url)
        try:
            async with db.session() as session:
                result = await forecast(
                    session,
                    queues=definition.queues,
                    days=days,
                    interval=interval,
                    names=queue or (),
                    tz=zone_,
                    held_back=held_back,
                )
            return result.as_json()
        finally:
            await db.aclose()

    try:
        data = asyncio.run(run())
    except DatabaseUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if output == "json":
        typer.echo(json.dumps(data, indent=2))
    elif output == "csv":
        typer.echo(to_csv(data), nl=False)
    else:
        typer.echo(to_table(data))


def to_csv(data: dict[str, Any]) -> str:
    """One row per queue and interval, with a header (opens in a spreadsheet)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["queue", "start", "calls", "agents", "aht", "sla_seconds", "service_level"])
    for queue in data["queues"]:
        for item in queue["intervals"]:
            writer.writerow(
                [
                    queue["name"],
                    item["start"],
                    item["calls"],
                    "" if item["agents"] is None else item["agents"],
                    "" if queue["aht"] is None else queue["aht"],
                    "" if queue["sla_seconds"] is None else queue["sla_seconds"],
                    "" if queue["service_level"] is None else queue["service_level"],
                ]
            )
    return buffer.getvalue()


def to_table(data: dict[str, Any]) -> str:
    """Per queue: each day's total and peak, then the intervals that expect calls."""
    lines = [
        f"forecast from {data['from']} for {data['days']} days, {data['interval']}-minute "
        f"intervals ({data['tz']}); history: {data['history_days']} days",
        f"method: {data['method']}",
    ]
    for queue in data["queues"]:
        target = (
            f"target {queue['service_level']}% in {queue['sla_seconds']} s, AHT {queue['aht']} s"
            if queue["aht"] is not None
            else "every call the bot took (no agents)"
        )
        lines += ["", f"{queue['name']}: {target}"]
        lines.append(f"  {'day':<12}{'calls':>9}{'peak agents':>13}")
        for day in queue["days"]:
            peak = "-" if day["peak_agents"] is None else str(day["peak_agents"])
            lines.append(f"  {day['day']:<12}{day['calls']:>9.1f}{peak:>13}")
        lines.append(f"  {'interval':<22}{'calls':>9}{'agents':>8}")
        quiet = 0
        for item in queue["intervals"]:
            if item["calls"] < 0.05:
                quiet += 1
                continue
            agents = "-" if item["agents"] is None else str(item["agents"])
            start = item["start"][:16].replace("T", " ")
            lines.append(f"  {start:<22}{item['calls']:>9.2f}{agents:>8}")
        if quiet:
            lines.append(f"  ({quiet} intervals with no calls expected not shown)")
    error = data["error"]
    lines.append("")
    if error is None:
        lines.append(f"error: not measured ({data['error_note']})")
    else:
        lines.append(
            f"error on the last {error['held_back_days']} days held back: "
            f"per interval WAPE {_pct(error['wape'])}, MAPE {_pct(error['mape'])}; "
            f"per day WAPE {_pct(error['daily']['wape'])}, MAPE {_pct(error['daily']['mape'])}"
        )
        for name, figures in error["per_queue"].items():
            lines.append(
                f"  {name:<12} interval WAPE {_pct(figures['wape']):>7}  MAPE "
                f"{_pct(figures['mape']):>7}   day WAPE {_pct(figures['daily']['wape']):>7}  "
                f"MAPE {_pct(figures['daily']['mape']):>7}"
            )
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"
