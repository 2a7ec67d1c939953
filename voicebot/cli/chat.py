"""``voicebot chat``: a call in the terminal, through the same agent that runs on audio."""

from __future__ import annotations

import asyncio
import re
import sys

import typer

from voicebot.agent.text_session import TextSession, TextTurn
from voicebot.handoff.packet import CallerInfo, HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink, FanOutSink
from voicebot.runtime.bot import BotRuntime

_KEYS = re.compile(r"^(?:#|/dtmf\s+)([0-9*#A-Da-d]+)$")
_SILENCE = re.compile(r"^/silence(?:\s+(\d+(?:\.\d+)?))?$")
HELP = (
    "Type what the caller says. '#1234' or '/dtmf 1234' presses keys, '/silence [seconds]' stays "
    "quiet, '/quit' hangs up."
)


def _print_packet(packet: HandoffPacket) -> None:
    typer.echo("--- handoff packet ---", err=False)
    typer.echo(packet.model_dump_json(indent=2))


async def run_chat(runtime: BotRuntime, *, caller_number: str | None, interactive: bool) -> int:
    runtime.handoffs = FanOutSink(runtime.handoffs, CallbackHandoffSink(_print_packet))
    call = runtime.new_call(caller=CallerInfo(number=caller_number))
    session = TextSession(call)
    if interactive:
        typer.echo(f"{runtime.loaded.definition.bot.name} (brain: {runtime.brain.name}). {HELP}")
    else:
        typer.echo(f"(brain: {runtime.brain.name})", err=True)
    try:
        _show(await session.start())
        while not session.ended:
            line = await _read_line(interactive)
            if line is None or line.strip() == "/quit":
                break
            text = line.strip()
            if not text:
                continue
            if not interactive:
                typer.echo(f"caller: {text}")
            if keys := _KEYS.match(text):
                turn = await session.press(keys.group(1))
            elif silence := _SILENCE.match(text):
                seconds = float(silence.group(1)) if silence.group(1) else _timeout(runtime)
                turn = await session.silence(seconds)
            elif text.startswith("/"):
                typer.echo(HELP)
                continue
            else:
                turn = await session.say(text)
            _show(turn)
    finally:
        await session.aclose()
        await runtime.aclose()
    return 0


def _timeout(runtime: BotRuntime) -> float:
    """'/silence' with no number: just long enough to be a no-input anywhere in the bot."""
    return runtime.loaded.definition.bot.limits.no_input_timeout + 1


def _show(turn: TextTurn) -> None:
    for line in turn.lines:
        typer.echo(f"bot: {line}")
    if turn.reply.hangup is not None:
        typer.echo("(the bot hung up)")


async def _read_line(interactive: bool) -> str | None:
    prompt = "you: " if interactive else ""

    def read() -> str | None:
        try:
            return input(prompt) if interactive else sys.stdin.readline() or None
        except EOFError:
            return None

    return await asyncio.to_thread(read)
