"""``voicebot users ...`` and ``voicebot db ...``: the people who sign in to the desktop, and the
database they live in (``VOICEBOT_DATABASE_URL``, default SQLite in the data directory)."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from voicebot.cli.common import BotOption, run_with_database, settings_for

users_app = typer.Typer(help="Agents, supervisors and admins of the desktop.", no_args_is_help=True)
db_app = typer.Typer(help="The database (calls, handoffs, queues, agents).", no_args_is_help=True)

T = TypeVar("T")


def _with_db(bot: Any, work: Callable[[Any], Awaitable[T]]) -> T:
    result: T = run_with_database(settings_for(bot), work)
    return result


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        typer.echo("error: the passwords differ", err=True)
        raise typer.Exit(2)
    return first


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The sign-in name.")],
    role: Annotated[str, typer.Option("--role", help="agent, supervisor or admin.")] = "agent",
    skills: Annotated[
        str,
        typer.Option(
            "--skills", help="Skills with proficiency 1-10: billing:7,general (5 if none)."
        ),
    ] = "",
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    bot: BotOption = None,
) -> None:
    """Add a user who signs in to the agent desktop (asks for the password)."""
    from voicebot.access.audit import audit
    from voicebot.access.users import UserError, add_user, parse_skills

    try:
        parsed = parse_skills(skills)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    password = _read_password(password_stdin)

    async def work(db: Any) -> None:
        await add_user(db, name, password, role=role, display_name=display_name, skills=parsed)
        await audit(db, "user_added", actor="cli", target=name, role=role)

    try:
        _with_db(bot, work)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    described = ", ".join(f"{k}:{v}" for k, v in parsed.items()) or "no skills"
    typer.echo(f"added {role} '{name}' ({described})")


@users_app.command("passwd")
def passwd(
    name: Annotated[str, typer.Argument(help="The sign-in name.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    bot: BotOption = None,
) -> None:
    """Set a user's password."""
    from voicebot.access.audit import audit
    from voicebot.access.users import UserError, set_password

    password = _read_password(password_stdin)

    async def work(db: Any) -> None:
        await set_password(db, name, password)
        await audit(db, "password_set", actor="cli", target=name)

    try:
        _with_db(bot, work)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"password of '{name}' set")


@users_app.command("list")
def list_users(bot: BotOption = None) -> None:
    """Users, roles, skills and current states."""
    from sqlalchemy import select

    from voicebot.store.models import Agent

    async def work(db: Any) -> list[Agent]:
        async with db.session() as session:
            return list((await session.scalars(select(Agent).order_by(Agent.username))).all())

    agents = _with_db(bot, work)
    if not agents:
        typer.echo("no users yet: voicebot users add NAME --role agent --skills general")
    for agent in agents:
        skills = ",".join(f"{k}:{v}" for k, v in agent.skills.items()) or "-"
        active = "" if agent.active else " (disabled)"
        typer.echo(f"{agent.username:<20} {agent.role:<10} {agent.state:<10} {skills}{active}")


@db_app.command("upgrade")
def upgrade(bot: BotOption = None) -> None:
    """Create or migrate the tables (serve does this at start too)."""

    async def work(db: Any) -> str | None:
        revision: str | None = await db.current_revision()
        return revision

    revision = _with_db(bot, work)
    settings = settings_for(bot)
    from voicebot.store.db import Database

    typer.echo(
        f"database {Database(settings.resolved_database_url).describe()} at revision {revision}"
    )


@db_app.command("check")
def check(bot: BotOption = None) -> None:
    """Connect and report the schema revision; exit 2 when the database is unreachable."""
    from voicebot.store.db import DatabaseUnavailable, open_database

    settings = settings_for(bot)

    async def run() -> str:
        db = await open_database(settings.resolved_database_url, migrate=False)
        try:
            return f"{db.describe()}: reachable, revision {await db.current_revision()}"
        finally:
            await db.aclose()

    try:
        typer.echo(asyncio.run(run()))
    except DatabaseUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
