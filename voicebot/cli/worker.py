"""``voicebot worker start|dev``: the LiveKit worker that answers phone calls."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

worker_app = typer.Typer(
    help="Answer calls in LiveKit rooms (phone calls through LiveKit SIP).", no_args_is_help=True
)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="LIVEKIT_URL", help="The LiveKit server (ws:// or wss://)."),
]
KeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar="LIVEKIT_API_KEY", help="LiveKit API key.")
]
SecretOption = Annotated[
    str | None,
    typer.Option(
        "--api-secret", envvar="LIVEKIT_API_SECRET", help="LiveKit API secret.", show_default=False
    ),
]
AgentNameOption = Annotated[
    str,
    typer.Option(
        "--agent-name",
        envvar="LIVEKIT_AGENT_NAME",
        help="The name LiveKit dispatches calls to (the dispatch rule's agent).",
    ),
]


def _run(
    url: str | None, key: str | None, secret: str | None, agent_name: str, *, dev: bool, drain: int
) -> None:
    from livekit.agents import AgentServer
    from livekit.agents.cli import cli as lk_cli
    from livekit.agents.cli import proto

    from voicebot.telephony.worker import (
        WorkerConfigError,
        check_credentials,
        probe,
        server_options,
    )

    try:
        check_credentials(url, key, secret)
        assert url is not None and key is not None and secret is not None
        asyncio.run(probe(url, key, secret))
    except (WorkerConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    server = AgentServer.from_server_options(
        server_options(agent_name=agent_name, drain_timeout=drain)
    )
    # livekit-agents' own runner: signal handling (SIGTERM drains the running calls first),
    # logging and reconnects; its command line is deprecated, the runner is what it calls
    lk_cli._run_worker(
        server=server,
        args=proto.CliArgs(
            log_level="DEBUG" if dev else "INFO",
            url=url,
            api_key=key,
            api_secret=secret,
            dev=dev,
            log_format="colored" if dev else "json",
        ),
    )


@worker_app.command("start")
def start(
    url: UrlOption = None,
    api_key: KeyOption = None,
    api_secret: SecretOption = None,
    agent_name: AgentNameOption = "voicebot",
    drain_timeout: Annotated[
        int, typer.Option("--drain-timeout", help="Seconds SIGTERM waits for calls to end.")
    ] = 1800,
) -> None:
    """Run the worker for production: JSON logs, calls taken while the machine has room."""
    _run(url, api_key, api_secret, agent_name, dev=False, drain=drain_timeout)


@worker_app.command("dev")
def dev(
    url: UrlOption = None,
    api_key: KeyOption = None,
    api_secret: SecretOption = None,
    agent_name: AgentNameOption = "voicebot",
) -> None:
    """Run the worker for development: readable debug logs, no load limit."""
    _run(url, api_key, api_secret, agent_name, dev=True, drain=30)
