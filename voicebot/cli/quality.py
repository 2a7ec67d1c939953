"""``voicebot quality ...``: the automated quality checks of finished calls (docs/quality.md).

``validate`` checks ``quality/rules.yaml`` like ``flows validate`` checks flows; ``check`` reviews
one stored call now; ``recheck`` scores stored calls again after the rules changed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voicebot.cli.common import BotOption, run_with_database, settings_for

if TYPE_CHECKING:
    from voicebot.config import Settings
    from voicebot.flows.schema import BotDefinition
    from voicebot.quality.review import ReviewResult
    from voicebot.quality.rules import RuleSet

quality_app = typer.Typer(
    help="Automated quality checks of finished calls (quality/rules.yaml).",
    no_args_is_help=True,
)


def _bot_definition(settings: Settings) -> BotDefinition | None:
    """The bot's flows, to check the names the rules use; None when they do not load (then
    ``flows validate`` is the command that explains why)."""
    from voicebot.flows.errors import FlowError
    from voicebot.flows.loader import load_bot

    try:
        return load_bot(
            settings.bot_dir, env=settings.flow_env(), max_bytes=settings.max_flow_file_bytes
        ).definition
    except FlowError:
        return None


def _load(settings: Settings, *, quiet: bool = False) -> tuple[RuleSet, BotDefinition | None]:
    from voicebot.quality.rules import RulesError, load_rules, rules_path

    path = rules_path(settings.bot_dir)
    if not path.is_file():
        typer.echo(f"error: no rule file at {path}", err=True)
        raise typer.Exit(1)
    bot = _bot_definition(settings)
    if bot is None and not quiet:
        typer.echo(
            "warning: the flows do not load (see 'voicebot flows validate'); intent and flow "
            "names in the rules are not checked",
            err=True,
        )
    try:
        rules = load_rules(path, display=path.relative_to(settings.bot_dir), bot=bot)
    except RulesError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"{len(exc.errors)} error(s)", err=True)
        raise typer.Exit(1) from None
    return rules, bot


@quality_app.command("validate")
def validate(bot: BotOption = None) -> None:
    """Check quality/rules.yaml; print each problem as path:line:col (exit 1 if any)."""
    rules, _ = _load(settings_for(bot))
    checks = sorted({r.check for r in rules.rules})
    typer.echo(f"ok: {len(rules.rules)} rules ({', '.join(checks)}), pass score {rules.pass_score}")


@quality_app.command("check")
def check(
    call_id: Annotated[str, typer.Argument(help="The call's id.")],
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    bot: BotOption = None,
) -> None:
    """Review one stored call now (replacing its review) and print the score, the failures
    with the transcript lines that triggered them, and the summary."""
    from voicebot.quality.review import review_call

    if output not in ("text", "json"):
        typer.echo(f"error: --format must be text or json, got '{output}'", err=True)
        raise typer.Exit(2)
    settings = settings_for(bot)
    rules, definition = _load(settings, quiet=True)

    async def work(db: Any) -> ReviewResult | None:
        return await review_call(
            db,
            rules,
            call_id,
            force=True,
            recordings_dir=settings.resolved_recordings_dir,
            bot=definition,
        )

    result: ReviewResult | None = run_with_database(settings, work)
    if result is None:
        typer.echo(f"error: no call '{call_id}'", err=True)
        raise typer.Exit(1)
    if output == "json":
        typer.echo(json.dumps(result.as_json(), indent=2))
        return
    typer.echo(_describe(result))


def _describe(result: ReviewResult) -> str:
    verdict = "passed" if result.passed else "FAILED"
    lines = [
        f"call {result.call_id}: score {result.score}/100, {verdict} "
        f"(pass score {result.pass_score})"
    ]
    if result.failures:
        lines.append("failures:")
    for failure in result.failures:
        mark = ", critical" if failure.critical else ""
        lines.append(f"  - {failure.rule} (-{failure.weight}{mark}): {failure.detail}")
        for seq in failure.lines:
            role, text = result.quotes.get(seq, ("?", ""))
            lines.append(f"      {seq:>3} {role}: {text}")
    if result.not_applicable:
        lines.append("not applicable:")
        lines += [f"  - {rule}: {why}" for rule, why in result.not_applicable.items()]
    if result.passed_rules:
        lines.append("passed: " + ", ".join(result.passed_rules))
    lines.append(f"summary: {result.summary}")
    return "\n".join(lines)


def _parse_day(value: str, option: str) -> dt.datetime:
    """``2026-11-23`` (the day's start, UTC) or an ISO date and time (UTC unless it says)."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: {option} must be a date like 2026-11-23, got '{value}'", err=True)
        raise typer.Exit(2) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@quality_app.command("recheck")
def recheck_command(
    start: Annotated[str, typer.Option("--from", help="First day (2026-11-01) or time, UTC.")],
    end: Annotated[
        str, typer.Option("--to", help="Last day, included (2026-11-30), or time, UTC.")
    ],
    bot: BotOption = None,
) -> None:
    """Score the stored calls that started between --from and --to again with the current
    rules; prints how many."""
    from voicebot.quality.review import recheck

    first = _parse_day(start, "--from")
    last = _parse_day(end, "--to")
    if len(end) == 10:  # a day: all of it
        last += dt.timedelta(days=1)
    if last <= first:
        typer.echo("error: --to is before --from", err=True)
        raise typer.Exit(2)
    settings = settings_for(bot)
    rules, definition = _load(settings, quiet=True)
    tally = {"passed": 0, "failed": 0}

    def count(result: ReviewResult) -> None:
        tally["passed" if result.passed else "failed"] += 1

    async def work(db: Any) -> int:
        return await recheck(
            db,
            rules,
            first,
            last,
            recordings_dir=settings.resolved_recordings_dir,
            bot=definition,
            on_result=count,
        )

    done: int = run_with_database(settings, work)
    typer.echo(f"re-scored {done} calls: {tally['passed']} passed, {tally['failed']} failed")
