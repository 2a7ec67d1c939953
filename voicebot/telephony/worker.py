"""The LiveKit worker: phone calls that LiveKit's SIP service puts in rooms, answered by the bot.

LiveKit dispatches each call's room to a worker by the agent name (the dispatch rule that
``voicebot livekit setup-sip`` creates names it), and the worker runs the job in a process of
its own. Each process loads the bot and the speech models once, before its job (prewarm), so a
call is answered without loading anything. The call itself is the same ``VoiceCall`` as on the
softphone, on the room's audio.

What has run here: the parts with no server (caller mapping, SIP DTMF, transfers against a fake
of LiveKit's API, the command line). A job in a real LiveKit room has not: no LiveKit server
runs on the development machines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from livekit import rtc
from livekit.agents import AutoSubscribe, JobContext, JobProcess
from livekit.agents.worker import ServerOptions

from voicebot.config import Settings
from voicebot.handoff.packet import CallbackRequest
from voicebot.telephony.sip_call import caller_from_sip, cold_transfer, on_sip_dtmf

if TYPE_CHECKING:
    from voicebot.queues.service import QueueService

logger = logging.getLogger("voicebot.telephony.worker")

DEFAULT_AGENT_NAME = "voicebot"
# A phone line can carry the bot's own voice back (hybrid echo); livekit ignores barge-in for
# this long at the start of a call while its echo canceller settles (its own default).
SIP_AEC_WARMUP = 3.0
_TRANSFER_FAILED = (
    "I'm sorry, I couldn't put you through just now. A colleague will call you back as soon "
    "as possible."
)


class WorkerConfigError(RuntimeError):
    """The worker cannot start: what is missing, said plainly."""


@dataclass
class _Loaded:
    runtime: Any
    speech: Any


def check_credentials(url: str | None, key: str | None, secret: str | None) -> None:
    missing = [
        name
        for name, value in (
            ("LIVEKIT_URL", url),
            ("LIVEKIT_API_KEY", key),
            ("LIVEKIT_API_SECRET", secret),
        )
        if not value
    ]
    if missing:
        raise WorkerConfigError(
            f"{', '.join(missing)} not set: the worker needs the LiveKit server's URL "
            "(ws:// or wss://) and an API key and secret from its config"
        )
    assert url is not None
    if not url.startswith(("ws://", "wss://", "http://", "https://")):
        raise WorkerConfigError(f"LIVEKIT_URL must start with ws:// or wss://, got {url!r}")


async def probe(url: str, key: str, secret: str, *, wait: float = 10.0) -> None:
    """Ask LiveKit something small with these credentials, so a wrong URL, key or secret is
    one clear line at start, not a worker retrying in the background."""
    from livekit import api

    from voicebot.telephony.sip_setup import check_livekit_url, livekit_error_message

    http_url = check_livekit_url(url)
    try:
        async with asyncio.timeout(wait), api.LiveKitAPI(http_url, key, secret) as lkapi:
            await lkapi.room.list_rooms(api.ListRoomsRequest())
    except Exception as exc:
        message = livekit_error_message(exc, http_url)
        if message is None:
            raise
        raise WorkerConfigError(message) from exc


def prewarm(proc: JobProcess) -> None:
    """Load the bot and its speech models in this job process, before a call arrives."""
    proc.userdata["voicebot"] = asyncio.run(_load())


async def _load() -> _Loaded:
    from voicebot.runtime.bot import BotRuntime
    from voicebot.speech.stack import build_speech

    settings = Settings()
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    await speech.prefill()
    return _Loaded(runtime, speech)


async def entrypoint(ctx: JobContext) -> None:
    """One phone call: the caller's room, from the first caller until the call ends."""
    from voicebot.agent.voice_call import VoiceCall

    loaded: _Loaded | None = ctx.proc.userdata.get("voicebot")
    if loaded is None:  # a process that skipped prewarm (dev mode reloads)
        loaded = await _load()
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    participant = await ctx.wait_for_participant(
        kind=[
            rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
            rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
        ]
    )
    is_phone = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    caller = caller_from_sip(participant.attributes, name=participant.name) if is_phone else None
    call = VoiceCall(
        loaded.runtime,
        loaded.speech,
        None,
        None,
        caller=caller,
        call_id=ctx.room.name,
        aec_warmup=SIP_AEC_WARMUP if is_phone else None,
    )
    ctx.room.on("sip_dtmf_received", on_sip_dtmf(participant.identity, call.press_keys))
    transferred = False

    async def before_hangup(reply: Any) -> None:
        nonlocal transferred
        transferred = (
            await _transfer(ctx, call, reply, participant.identity, callbacks)
            if is_phone
            else False
        )

    call.before_hangup = before_hangup

    async def closing(reason: str) -> None:
        await call.aclose(f"job shut down: {reason}")

    ctx.add_shutdown_callback(closing)
    callbacks = await _open_callbacks(loaded.runtime)
    if callbacks is not None:

        async def close_callbacks(_reason: str) -> None:
            await callbacks.aclose()
            await callbacks.db.aclose()

        ctx.add_shutdown_callback(close_callbacks)
    await call.start(room=ctx.room, participant_identity=participant.identity)
    await call.wait_ended()
    if not transferred:
        # the handoff (if any) is recorded by the call; ending the room hangs the phone up
        await ctx.delete_room()
    ctx.shutdown("transferred" if transferred else "call ended")


async def _open_callbacks(runtime: Any) -> QueueService | None:
    """With ``VOICEBOT_DATABASE_URL`` the worker shares the API's database, so a callback it
    owes (a refused transfer) joins the built-in queues, where agents see it. The worker does
    no routing itself: the API nodes do."""
    settings = runtime.settings
    if not settings.database_url:
        return None
    from voicebot.queues.events import bus_for
    from voicebot.store.db import DatabaseUnavailable, open_database

    try:
        db = await open_database(settings.resolved_database_url, migrate=False)
    except DatabaseUnavailable as exc:
        logger.error("owed callbacks cannot be queued", extra={"detail": str(exc)})
        return None
    definition = runtime.loaded.definition
    return QueueService(
        db,
        bus_for(settings, db),
        definition.queues,
        default_queue=definition.bot.default_queue,
        anger_threshold=settings.anger_priority_threshold,
    )


async def _transfer(
    ctx: JobContext, call: Any, reply: Any, identity: str, callbacks: QueueService | None = None
) -> bool:
    """A handoff to a queue with ``transfer``: send the caller there (cold). If the target
    refuses, the caller is told while the line is still open, and the handoff stays recorded;
    with the built-in queues on a shared database, the callback it promises is queued there."""
    packet = reply.handoff
    if packet is None:
        return False
    queue = call.call.bot.loaded.definition.queues.get(packet.queue)
    if queue is None or not queue.transfer:
        return False
    result = await cold_transfer(
        ctx.api, room=ctx.room.name, caller_identity=identity, target=queue.transfer, packet=packet
    )
    if result.ok:
        return True
    logger.warning(
        "the caller could not be transferred; a callback is owed",
        extra={"handoff_id": packet.id, "detail": result.detail},
    )
    if callbacks is not None and packet.caller.number:
        await _queue_callback(callbacks, packet, queue.transfer)
    try:
        await call.session.say(_TRANSFER_FAILED, allow_interruptions=False).wait_for_playout()
    except Exception:  # the caller hung up meanwhile
        logger.info("could not speak the transfer apology", exc_info=True)
    return False


async def _queue_callback(callbacks: QueueService, packet: Any, target: str) -> None:
    """The promised callback, as an entry of the same queue: the caller keeps the place they
    had when they were handed over."""
    owed = packet.model_copy(
        update={
            "id": uuid.uuid4().hex,
            "callback": CallbackRequest(
                number=packet.caller.number, requested_at=packet.created_at
            ),
            "reason": f"{packet.reason} (transfer to {target} failed; call back)",
        }
    )
    try:
        await callbacks.enqueue(owed, channel="sip")
    except Exception:
        logger.exception("the owed callback could not be queued", extra={"handoff_id": packet.id})


def server_options(*, agent_name: str | None = None, drain_timeout: int = 1800) -> ServerOptions:
    """``drain_timeout``: on SIGTERM the worker takes no new calls and waits this long for
    the calls it has (a redeploy must not cut callers off)."""
    return ServerOptions(
        entrypoint_fnc=entrypoint,
        prewarm_fnc=prewarm,
        agent_name=agent_name or os.environ.get("LIVEKIT_AGENT_NAME") or DEFAULT_AGENT_NAME,
        drain_timeout=drain_timeout,
        # loading the bot and the speech models takes longer than livekit's 10 s default
        initialize_process_timeout=120.0,
    )
