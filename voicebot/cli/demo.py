"""``voicebot demo seed`` and ``voicebot demo clear``: a demo contact-centre history in the
database (``VOICEBOT_DATABASE_URL``, default SQLite in the data directory), so the supervisor
page, the reports and the forecast have weeks of calls to show on a fresh install.

The history follows the bot's queues and opening hours (``--bot``); every row it writes is
marked ``demo-`` and ``clear`` removes exactly those (voicebot/demo/history.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from voicebot.cli.common import BotOption, run_with_database, settings_for

demo_app = typer.Typer(help="A demo history of calls, queues and agents.", no_args_is_help=True)

SUPERVISOR = "demo-supervisor"


def _bot(bot: Any) -> tuple[Any, Any]:
    """The bot's queues and hours (exit 1 with the flow errors when the bot does not load)."""
    from voicebot.flows.errors import FlowError
    from voicebot.flows.loader import load_bot

    settings = settings_for(bot)
    try:
        definition = load_bot(
            settings.bot_dir, env=settings.flow_env(), max_bytes=settings.max_flow_file_bytes
        ).definition
    except FlowError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        typer.echo("error: the bot does not load; its queues shape the demo history", err=True)
        raise typer.Exit(1) from None
    if not definition.queues:
        typer.echo("error: the bot has no queues; add some to flows/bot.yaml first", err=True)
        raise typer.Exit(1)
    return definition.queues, definition.bot.hours


@demo_app.command("seed")
def seed(
    days: Annotated[int, typer.Option("--days", min=1, max=400, help="Days of history.")] = 30,
    calls_per_day: Annotated[
        int,
        typer.Option(
            "--calls-per-day", min=1, max=1_000_000, help="Calls on a mean day of the week."
        ),
    ] = 400,
    seed_: Annotated[int, typer.Option("--seed", help="The same seed writes the same rows.")] = 1,
    agents: Annotated[
        int, typer.Option("--agents", min=0, max=5000, help="At least this many demo agents.")
    ] = 12,
    supervisor_password: Annotated[
        str | None,
        typer.Option(
            "--supervisor-password",
            help=f"Create (or reset) the supervisor '{SUPERVISOR}' with this password.",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Remove an earlier demo history first.")
    ] = False,
    bot: BotOption = None,
) -> None:
    """Fill the database with a demo history ending now (demo rows only: ids 'demo-...')."""
    from voicebot.access.audit import audit
    from voicebot.access.users import MIN_PASSWORD, UserError, add_user, set_password
    from voicebot.demo.history import clear_history, demo_rows, seed_history
    from voicebot.store.models import Agent

    if supervisor_password is not None and len(supervisor_password) < MIN_PASSWORD:
        typer.echo(f"error: a password needs at least {MIN_PASSWORD} characters", err=True)
        raise typer.Exit(2)
    queues, hours = _bot(bot)

    async def work(db: Any) -> Any:
        if await demo_rows(db):
            if not replace:
                return None
            await clear_history(db)
        summary = await seed_history(
            db,
            days=days,
            calls_per_day=calls_per_day,
            seed=seed_,
            queues=queues,
            agents=agents,
            hours=hours,
        )
        await audit(db, "demo_seeded", actor="cli", calls=summary.calls, days=days)
        if supervisor_password is not None:
            from sqlalchemy import select

            async with db.session() as session:
                exists = await session.scalar(select(Agent.id).where(Agent.username == SUPERVISOR))
            if exists is None:
                await add_user(
                    db,
                    SUPERVISOR,
                    supervisor_password,
                    role="supervisor",
                    display_name="Demo Supervisor",
                )
                await audit(db, "user_added", actor="cli", target=SUPERVISOR, role="supervisor")
            else:
                await set_password(db, SUPERVISOR, supervisor_password)
                await audit(db, "password_set", actor="cli", target=SUPERVISOR)
        return summary

    try:
        summary = run_with_database(settings_for(bot), work)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if summary is None:
        typer.echo(
            "error: there is a demo history already; run 'voicebot demo clear' first, "
            "or seed again with --replace",
            err=True,
        )
        raise typer.Exit(1)
    rows = ", ".join(f"{count} {table}" for table, count in summary.rows.items() if count)
    typer.echo(
        f"seeded {summary.days} days ({summary.start:%Y-%m-%d} to {summary.end:%Y-%m-%d %H:%M} "
        f"UTC): {summary.calls} calls, {summary.containment:.0%} contained by the bot, "
        f"{summary.handoffs} handoffs, {summary.answered} answered, {summary.abandoned} "
        f"abandoned, {summary.callbacks} callbacks, {summary.agents} demo agents"
    )
    typer.echo(
        f"rows: {rows} ({summary.total_rows} in {summary.seconds:.1f} s, "
        f"{summary.rows_per_second:,.0f} rows/s)"
    )
    if supervisor_password is not None:
        typer.echo(
            f"sign in: run 'voicebot serve', open http://127.0.0.1:8080/supervisor and sign in "
            f"as '{SUPERVISOR}' with the password you gave"
        )
    else:
        typer.echo(
            "to look at it: 'voicebot demo seed --replace --supervisor-password ...' adds the "
            f"supervisor '{SUPERVISOR}', or add your own with 'voicebot users add NAME --role "
            "supervisor'; then 'voicebot serve' and open /supervisor"
        )
    typer.echo("remove it all with 'voicebot demo clear'")


@demo_app.command("clear")
def clear(bot: BotOption = None) -> None:
    """Remove every demo row (calls, queues, agents, 'demo-supervisor'); nothing else."""
    from voicebot.access.audit import audit
    from voicebot.demo.history import clear_history

    async def work(db: Any) -> dict[str, int]:
        removed = await clear_history(db)
        await audit(db, "demo_cleared", actor="cli", rows=sum(removed.values()))
        return removed

    removed = run_with_database(settings_for(bot), work)
    total = sum(removed.values())
    if not total:
        typer.echo("no demo history to remove")
        return
    listed = ", ".join(f"{count} {table}" for table, count in removed.items() if count)
    typer.echo(f"removed {total} demo rows: {listed}")
