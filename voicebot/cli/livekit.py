"""``voicebot livekit ...``: set LiveKit up so that phone calls reach the voicebot."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from voicebot.telephony.sip_setup import SetupPlan

livekit_app = typer.Typer(help="Set up LiveKit for phone calls.", no_args_is_help=True)


@livekit_app.callback()
def _livekit() -> None:
    """Set up LiveKit for phone calls."""
    # Without a callback Typer would run the only command without its name ("setup-sip").


@livekit_app.command("setup-sip")
def setup_sip_command(
    number: Annotated[
        str,
        typer.Option(
            "--number",
            help="The phone number callers dial, in E.164 (e.g. +442079460000).",
            show_default=False,
        ),
    ],
    allowed_address: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-address",
            help="An IP address or CIDR range your carrier calls from (repeatable). Without "
            "one, LiveKit accepts calls to the number from anywhere.",
            show_default=False,
        ),
    ] = None,
    trunk_name: Annotated[
        str, typer.Option("--trunk-name", help="The inbound trunk's name in LiveKit.")
    ] = "voicebot",
    agent_name: Annotated[
        str,
        typer.Option("--agent-name", help="The agent to dispatch: the worker's agent_name."),
    ] = "voicebot",
    room_prefix: Annotated[
        str, typer.Option("--room-prefix", help="Each call's room name starts with this.")
    ] = "call-",
    outbound_address: Annotated[
        str | None,
        typer.Option(
            "--outbound-address",
            help="The carrier's SIP host for outgoing calls (e.g. example.pstn.twilio.com): "
            "also set up the outbound trunk that warm transfers to a phone dial through.",
            show_default=False,
        ),
    ] = None,
    outbound_username: Annotated[
        str,
        typer.Option(
            "--outbound-username",
            envvar="VOICEBOT_SIP_OUTBOUND_USERNAME",
            help="The login for outgoing calls at the carrier, if it asks for one.",
        ),
    ] = "",
    outbound_password: Annotated[
        str,
        typer.Option(
            "--outbound-password",
            envvar="VOICEBOT_SIP_OUTBOUND_PASSWORD",
            help="Its password (prefer the environment variable: options show in ps).",
            show_default=False,
        ),
    ] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would change.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="LIVEKIT_URL",
            help="The LiveKit server, e.g. wss://<project>.livekit.cloud.",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="LIVEKIT_API_KEY", help="LiveKit API key."),
    ] = None,
    api_secret: Annotated[
        str | None,
        typer.Option(
            "--api-secret",
            envvar="LIVEKIT_API_SECRET",
            help="LiveKit API secret (prefer the environment variable: options show in ps).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create or update the inbound SIP trunk and dispatch rule that send calls to the bot.

    Each caller gets a room of their own, and the agent is dispatched there by name, so the
    voicebot worker must register with that agent_name. Safe to run again: only what differs
    from LiveKit's current setup is changed. Exits 2 on bad input, 1 if LiveKit fails.
    """
    from voicebot.telephony.sip_setup import (
        SipSetupError,
        check_livekit_url,
        check_sip_host,
        livekit_error_message,
        normalize_addresses,
        normalize_number,
    )

    if not (url and api_key and api_secret):
        settings = {
            "LIVEKIT_URL": url,
            "LIVEKIT_API_KEY": api_key,
            "LIVEKIT_API_SECRET": api_secret,
        }
        missing = [env for env, value in settings.items() if not value]
        typer.echo(
            f"error: missing LiveKit settings: set {', '.join(missing)} "
            "(or pass --url, --api-key, --api-secret)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        url = check_livekit_url(url)
        number = normalize_number(number)
        normalize_addresses(allowed_address or [])
        if outbound_address is not None:
            check_sip_host(outbound_address)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    try:
        plan = asyncio.run(
            _setup(
                url,
                api_key,
                api_secret,
                number=number,
                trunk_name=trunk_name,
                allowed_addresses=allowed_address or [],
                agent_name=agent_name,
                room_prefix=room_prefix,
                dry_run=dry_run,
                outbound=(outbound_address, outbound_username, outbound_password),
            )
        )
    except SipSetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        message = livekit_error_message(exc, url)
        if message is not None:
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None
        if isinstance(exc, ValueError):  # the rest of setup_sip's input checks
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        raise

    for warning in plan.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for line in plan.lines():
        typer.echo(line)
    changes = len(plan.changes)
    if dry_run:
        typer.echo(f"dry run: nothing changed ({changes} change(s) planned)")
    elif changes:
        typer.echo(
            f"done: {changes} change(s); calls to {number} now go to agent {agent_name!r} "
            f"(trunk {plan.trunk_id}, dispatch rule {plan.dispatch_rule_id})"
        )
    else:
        typer.echo("nothing to change: LiveKit is already set up")
    if plan.outbound_trunk_id:
        typer.echo(
            f"warm transfers to a phone: give the workers "
            f"VOICEBOT_SIP_OUTBOUND_TRUNK={plan.outbound_trunk_id}"
        )


async def _setup(
    url: str,
    api_key: str,
    api_secret: str,
    *,
    number: str,
    trunk_name: str,
    allowed_addresses: list[str],
    agent_name: str,
    room_prefix: str,
    dry_run: bool,
    outbound: tuple[str | None, str, str],
) -> SetupPlan:
    from livekit.api import LiveKitAPI

    from voicebot.telephony.sip_setup import setup_sip

    async with LiveKitAPI(url, api_key, api_secret) as api:
        return await setup_sip(
            api,
            number=number,
            trunk_name=trunk_name,
            allowed_addresses=allowed_addresses,
            agent_name=agent_name,
            room_prefix=room_prefix,
            dry_run=dry_run,
            outbound_address=outbound[0],
            outbound_username=outbound[1],
            outbound_password=outbound[2],
        )
