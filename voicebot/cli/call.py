"""``voicebot call simulate``: a whole audio call from a recording, with its timings."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from voicebot.cli.common import BotOption, settings_for, setup_logging

call_app = typer.Typer(help="Calls on audio, without a phone line.", no_args_is_help=True)


@call_app.command("simulate")
def simulate(
    audio: Annotated[
        Path,
        typer.Option(
            "--audio",
            help="The caller's side: a WAV (any rate, width, channels), MP3, FLAC or OGG file.",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the bot's side here (16 kHz mono WAV).")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write the transcript and per-turn timings here (JSON)."),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Feed the caller's speech as fast as it is recognised; pauses keep their length.",
        ),
    ] = False,
    caller: Annotated[str | None, typer.Option("--caller", help="The caller's number.")] = None,
    bot: BotOption = None,
) -> None:
    """Run a call: the recording is the caller; print the conversation and turn latencies."""
    from voicebot.audio.files import AudioFile, AudioFileError
    from voicebot.cli.main import _load_runtime, _open_knowledge

    settings = settings_for(bot)
    setup_logging(settings, quiet=True)
    try:
        recording = AudioFile(audio)
    except AudioFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"caller audio: {recording.describe()}", err=True)
    runtime = _load_runtime(settings, knowledge=_open_knowledge(settings))
    try:
        result = asyncio.run(_simulate(settings, runtime, recording, out, fast, caller))
    except _SpeechUnavailable as exc:
        typer.echo(f"error: the audio path could not start: {exc}", err=True)
        raise typer.Exit(1) from None
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result, indent=2), encoding="utf-8")
    _print_summary(result)


class _SpeechUnavailable(RuntimeError):
    pass


async def _simulate(
    settings: Any,
    runtime: Any,
    recording: Any,
    out: Path | None,
    fast: bool,
    caller: str | None,
) -> dict[str, Any]:
    from voicebot.audio.simulation import simulate_call
    from voicebot.handoff.packet import CallerInfo
    from voicebot.speech.stack import build_speech

    try:
        speech = await build_speech(settings, runtime.loaded.definition)
        await speech.prefill()
    except Exception as exc:
        raise _SpeechUnavailable(str(exc)) from exc
    typer.echo(f"(speech: {speech.describe()}; brain: {runtime.brain.name})", err=True)
    try:
        return await simulate_call(
            runtime,
            speech,
            recording,
            out=out,
            fast=fast,
            caller=CallerInfo(number=caller),
            on_event=_show_event,
        )
    finally:
        await speech.aclose()
        await runtime.aclose()


def _show_event(event: dict[str, Any]) -> None:
    kind = event.get("type")
    if kind == "caller" and event.get("final") and event.get("text"):
        typer.echo(f"caller: {event['text']}")
    elif kind == "bot":
        cut = " [interrupted]" if event.get("interrupted") else ""
        typer.echo(f"bot: {event['text']}{cut}")
    elif kind == "keys":
        typer.echo(f"caller: (pressed {len(event['digits'])} key(s))")
    elif kind == "ended":
        handoff = event.get("handoff")
        where = f" to queue {handoff['queue']}" if handoff else ""
        typer.echo(f"(call ended: {event['reason']}{where})")
    sys.stdout.flush()


def _print_summary(result: dict[str, Any]) -> None:
    turns = [t for t in result["turns"] if t["kind"] == "speech" and t["total_ms"] is not None]
    if not turns:
        typer.echo("(no caller turns were answered)", err=True)
        return
    totals = sorted(t["total_ms"] for t in turns)
    processing = sorted(t["processing_ms"] for t in turns)
    typer.echo(
        f"{len(turns)} caller turn(s): end of speech to first bot audio, median "
        f"{totals[len(totals) // 2]:.0f} ms (processing after endpointing "
        f"{processing[len(processing) // 2]:.0f} ms)",
        err=True,
    )
