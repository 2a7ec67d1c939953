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

_MAX_CHATS_HELP = (
    "Chats held at once besides one call (0-20, 0: no chats), or 'default' for VOICEBOT_MAX_CHATS."
)


def _parse_max_chats(value: str | None) -> tuple[bool, int | None]:
    """(given, value): 'default' clears the agent's own figure."""
    if value is None:
        return False, None
    if value.strip().lower() == "default":
        return True, None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 20:
        typer.echo(f"error: --max-chats takes 0-20 or 'default', got '{value}'", err=True)
        raise typer.Exit(2)
    return True, number


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
    max_chats: Annotated[str | None, typer.Option("--max-chats", help=_MAX_CHATS_HELP)] = None,
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
    chats_given, chats = _parse_max_chats(max_chats)
    password = _read_password(password_stdin)

    async def work(db: Any) -> None:
        await add_user(db, name, password, role=role, display_name=display_name, skills=parsed)
        if chats_given:
            await _change(db, name, {"max_chats": chats})
        await audit(db, "user_added", actor="cli", target=name, role=role)

    try:
        _with_db(bot, work)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    described = ", ".join(f"{k}:{v}" for k, v in parsed.items()) or "no skills"
    typer.echo(f"added {role} '{name}' ({described})")


async def _change(db: Any, name: str, fields: dict[str, Any]) -> None:
    from sqlalchemy import select

    from voicebot.access.users import UserError
    from voicebot.store.models import Agent

    async with db.transaction() as session:
        agent = await session.scalar(select(Agent).where(Agent.username == name).with_for_update())
        if agent is None:
            raise UserError(f"no user '{name}'")
        for key, value in fields.items():
            setattr(agent, key, value)


@users_app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="The sign-in name.")],
    skills: Annotated[
        str | None,
        typer.Option("--skills", help="Replace the skills: billing:7,general (5 if none)."),
    ] = None,
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    max_chats: Annotated[str | None, typer.Option("--max-chats", help=_MAX_CHATS_HELP)] = None,
    bot: BotOption = None,
) -> None:
    """Change a user's skills, display name or chat capacity (what is not given stays)."""
    from voicebot.access.audit import audit
    from voicebot.access.users import UserError, parse_skills

    fields: dict[str, Any] = {}
    try:
        if skills is not None:
            fields["skills"] = parse_skills(skills)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if display_name is not None:
        fields["display_name"] = display_name
    chats_given, chats = _parse_max_chats(max_chats)
    if chats_given:
        fields["max_chats"] = chats
    if not fields:
        typer.echo("error: nothing to change (--skills, --display-name, --max-chats)", err=True)
        raise typer.Exit(2)

    async def work(db: Any) -> None:
        await _change(db, name, fields)
        await audit(db, "user_changed", actor="cli", target=name, fields=sorted(fields))

    try:
        _with_db(bot, work)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    shown = {k: ("default" if v is None and k == "max_chats" else v) for k, v in fields.items()}
    typer.echo(f"updated '{name}': " + ", ".join(f"{k} {v}" for k, v in sorted(shown.items())))


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
        chats = "" if agent.max_chats is None else f" (max {agent.max_chats} chats)"
        typer.echo(
            f"{agent.username:<20} {agent.role:<10} {agent.state:<10} {skills}{chats}{active}"
        )


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
