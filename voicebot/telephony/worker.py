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
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livekit import rtc
from livekit.agents import AutoSubscribe, JobContext, JobProcess
from livekit.agents.worker import ServerOptions

from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.config import Settings
from voicebot.flows.schema import Hold
from voicebot.handoff.packet import CallbackRequest, HandoffPacket
from voicebot.handoff.sinks import HandoffSink
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
    warm = [n for n, q in runtime.loaded.definition.queues.items() if q.transfer_mode == "warm"]
    if warm and not settings.sip_outbound_trunk:
        logger.warning(
            "warm transfers to a phone need VOICEBOT_SIP_OUTBOUND_TRUNK; they are cold until set",
            extra={"detail": ", ".join(warm)},
        )
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
    queues = await _open_queues(loaded.runtime)
    if queues is not None:

        async def close_queues(_reason: str) -> None:
            await queues.bus.aclose()
            await queues.db.aclose()

        ctx.add_shutdown_callback(close_queues)
    call = VoiceCall(
        loaded.runtime,
        loaded.speech,
        None,
        None,
        caller=caller,
        call_id=ctx.room.name,
        aec_warmup=SIP_AEC_WARMUP if is_phone else None,
    )
    # The caller's keys go to the conversation, then to the queue while they wait.
    keypad: dict[str, Callable[[str], None]] = {"press": call.press_keys}
    ctx.room.on(
        "sip_dtmf_received", on_sip_dtmf(participant.identity, lambda keys: keypad["press"](keys))
    )
    transferred = False

    async def before_hangup(reply: Any) -> None:
        nonlocal transferred
        transferred = (
            await _transfer(ctx, call, reply, participant.identity, queues) if is_phone else False
        )

    call.before_hangup = before_hangup
    recorder = await _start_recording(ctx, loaded.runtime.settings, call) if is_phone else None

    async def closing(reason: str) -> None:
        await call.aclose(f"job shut down: {reason}")

    ctx.add_shutdown_callback(closing)
    await call.start(room=ctx.room, participant_identity=participant.identity)
    await call.wait_ended()
    outcome = "transferred"
    if not transferred:
        outcome = await _after_conversation(ctx, loaded, queues, call, participant, keypad)
    if recorder is not None:
        await recorder.stop()
        logger.info("call recording", extra={"detail": recorder.report()})
    if not transferred:
        # ending the room hangs the phone up (a no-op when the queue already did)
        with contextlib.suppress(Exception):
            await ctx.delete_room()
    ctx.shutdown(outcome)


async def _after_conversation(
    ctx: JobContext,
    loaded: _Loaded,
    queues: QueueService | None,
    call: Any,
    caller: rtc.RemoteParticipant,
    keypad: dict[str, Callable[[str], None]],
) -> str:
    """What follows the bot's part of a call that was not transferred: a warm transfer to a
    phone, the wait in a built-in queue, or (no handoff) storing the call."""
    packet = call.call.state.handoff
    if queues is not None:
        # The bot's leg is stored whether or not it ended in a handoff: reports read its
        # sentiment, flows and turn latencies; a handoff's outcome stays the human leg's.
        await _record_call(queues, call)
    try:
        if packet is not None and _warm_phone_target(loaded.runtime, packet):
            return await _warm_to_phone(ctx, loaded, queues, packet, caller)
        if (
            queues is not None
            and packet is not None
            and _waits_in_built_in_queue(loaded.runtime, packet)
        ):
            return await _wait_in_queue(ctx, loaded, queues, packet, caller, keypad)
    except Exception:
        # The room could not be set up for the wait or the transfer: the caller is hung up on
        # next, and their place becomes a callback rather than an entry nobody is behind.
        logger.exception("the handoff could not be carried out", extra={"call_id": ctx.room.name})
        if queues is not None and packet is not None:
            await _owe_callback(queues, packet)
        return "handoff failed"
    return "call ended"


async def _start_recording(ctx: JobContext, settings: Settings, call: Any) -> Any:
    """With ``VOICEBOT_RECORDING=calls`` the call is recorded by LiveKit Egress from the start,
    paused while the caller gives a sensitive answer (a ``collect`` of a sensitive slot) and
    resumed after; the segments and gaps are logged with the call."""
    if settings.recording != "calls":
        return None
    from voicebot.telephony.recording import CallRecorder, SensitiveGate

    recorder = CallRecorder(ctx.api, ctx.room.name, filepath=settings.recording_filepath)
    if not await recorder.start():
        return recorder  # logged; the call goes on unrecorded
    gate = SensitiveGate(recorder)

    async def listening(sensitive: bool) -> None:
        if not await gate.listening(sensitive) and sensitive:
            # the egress may still be running: say so loudly (the caller is not told; the
            # recording must be reviewed and the segment redacted)
            logger.error(
                "a sensitive answer may have been recorded",
                extra={"call_id": call.call.state.call_id},
            )

    call.on_listen = listening
    return recorder


def _warm_phone_target(runtime: Any, packet: HandoffPacket) -> str | None:
    """The number a phone caller's handoff is warm-transferred to, if it is one: the queue
    says ``transfer_mode: warm`` and the worker has an outbound trunk to dial it with."""
    queue = runtime.loaded.definition.queues.get(packet.queue)
    if queue is None or queue.transfer is None or queue.transfer_mode != "warm":
        return None
    if packet.caller.attributes.get("channel") != "sip":
        return None
    if not runtime.settings.sip_outbound_trunk:
        return None  # warned at start-up; the transfer is cold
    return str(queue.transfer)


async def _warm_to_phone(
    ctx: JobContext,
    loaded: _Loaded,
    queues: QueueService | None,
    packet: HandoffPacket,
    caller: rtc.RemoteParticipant,
    *,
    media: Any = None,
    consult: Any = None,
) -> str:
    """Dial the queue's number into a consult room, brief whoever answers, and bridge them to
    the caller. A number that does not answer gets the apology and the owed callback."""
    from voicebot.telephony.phone_transfer import (
        LiveKitConsult,
        PhoneTransfer,
        consult_room_name,
        consult_token,
    )
    from voicebot.telephony.room_media import RoomMedia

    runtime = loaded.runtime
    settings = runtime.settings
    target = _warm_phone_target(runtime, packet)
    assert target is not None
    room = consult_room_name(ctx.room.name)
    queue = runtime.loaded.definition.queues[packet.queue]

    async def hang_up() -> None:
        await ctx.delete_room()

    engine: Any = None
    if media is None or consult is None:
        engine = loaded.speech.for_call().tts
    if media is None:
        media = RoomMedia(
            ctx.room,
            ctx.api,
            engine,
            caller=caller.identity,
            hang_up=hang_up,
            music=_hold_music(settings.bot_dir, queue.hold.music),
        )
    if consult is None:
        secret = settings.livekit_api_secret.get_secret_value()
        consult = LiveKitConsult(
            url=settings.livekit_url,
            token=consult_token(settings.livekit_api_key, secret, room),
            engine=engine,
            caller_room=ctx.room,
            caller_identity=caller.identity,
            allow_caller=media.allow_caller,
        )
    transfer = PhoneTransfer(
        ctx.api,
        packet,
        media,
        consult,
        room,
        trunk_id=str(settings.sip_outbound_trunk),
        target=target,
        team=packet.queue.replace("_", " "),
    )

    def left(participant: rtc.RemoteParticipant) -> None:
        if participant.identity == caller.identity:
            transfer.caller_left()

    ctx.room.on("participant_disconnected", left)
    if caller.identity not in ctx.room.remote_participants:
        transfer.caller_left()
    try:
        await media.start()
        outcome, result = await transfer.run()
        if outcome == "refused":
            await media.hold(False)
            await media.say(_TRANSFER_FAILED)
            if queues is not None and packet.caller.number:
                await _queue_callback(queues, packet, target)
    finally:
        ctx.room.off("participant_disconnected", left)
        with contextlib.suppress(Exception):
            await consult.aclose()
        await media.aclose()
    logger.info(
        "warm transfer to a phone",
        extra={"handoff_id": packet.id, "detail": f"{outcome}: {result.detail}"},
    )
    return f"warm transfer: {outcome}"


def _waits_in_built_in_queue(runtime: Any, packet: HandoffPacket) -> bool:
    """A phone caller handed to a queue without ``transfer`` waits for an agent in their room."""
    queue = runtime.loaded.definition.queues.get(packet.queue)
    return packet.caller.attributes.get("channel") == "sip" and not (queue and queue.transfer)


class _PhoneHandoffs:
    """Where the worker's handoffs go: a phone caller for the built-in queues is queued there
    (before they hear the handoff line). A transfer's packet goes to the JSON-lines file as
    before and is stored without a queue entry, so no agent here is offered a call that went
    elsewhere, while the desktop it went to can fetch it by the id in the SIP headers."""

    def __init__(
        self,
        runtime: Any,
        queued: HandoffSink,
        other: HandoffSink,
        service: QueueService | None = None,
    ) -> None:
        self.runtime = runtime
        self.queued = queued
        self.other = other
        self.service = service

    async def deliver(self, packet: HandoffPacket) -> None:
        if _waits_in_built_in_queue(self.runtime, packet):
            await self.queued.deliver(packet)
            return
        await self.other.deliver(packet)
        if self.service is not None:
            try:
                await asyncio.wait_for(
                    self.service.record_handoff(packet, channel="sip", outcome="transferred"),
                    timeout=5.0,
                )
            except Exception as exc:  # the file has it; the transfer must not wait
                logger.error(
                    "the transferred handoff was not stored",
                    extra={"handoff_id": packet.id, "detail": str(exc)},
                )


async def _open_queues(runtime: Any) -> QueueService | None:
    """With ``VOICEBOT_DATABASE_URL`` the worker shares the API's database: phone callers wait
    in the built-in queues (agents take them from the desktop), and a callback it owes (a
    refused transfer) is queued there too. The API nodes do the routing; the worker listens to
    the queues' events so that it knows at once when an agent accepts its caller."""
    settings = runtime.settings
    if not settings.database_url:
        return None
    from voicebot.history.contacts import history_lookup
    from voicebot.queues.events import bus_for
    from voicebot.queues.service import QueueService
    from voicebot.queues.sink import QueueHandoffSink
    from voicebot.store.db import DatabaseUnavailable, open_database

    try:
        db = await open_database(settings.resolved_database_url, migrate=False)
    except DatabaseUnavailable as exc:
        logger.error("the built-in queues are unavailable", extra={"detail": str(exc)})
        return None
    definition = runtime.loaded.definition
    service = QueueService(
        db,
        bus_for(settings, db),
        definition.queues,
        default_queue=definition.bot.default_queue,
        offer_timeout=settings.offer_timeout,
        wrap_up_seconds=settings.wrap_up_seconds,
        max_chats=settings.max_chats,
        anger_threshold=settings.anger_priority_threshold,
    )
    try:
        await service.bus.start()
    except Exception as exc:  # the queue is polled as well: events only make it prompt
        logger.warning("queue events unavailable; polling", extra={"detail": str(exc)})
    sink = QueueHandoffSink(service, settings.data_dir / "handoff-spool.jsonl")
    runtime.handoffs = _PhoneHandoffs(runtime, sink, runtime.handoffs, service)
    runtime.queue_stats = service.flow_stats
    runtime.history = history_lookup(db)
    return service


async def _wait_in_queue(
    ctx: JobContext,
    loaded: _Loaded,
    queues: QueueService,
    packet: HandoffPacket,
    caller: rtc.RemoteParticipant,
    keypad: dict[str, Callable[[str], None]],
    media: Any = None,
    caller_audio: Callable[[], AsyncIterator[rtc.AudioFrame]] | None = None,
) -> str:
    """The caller waits in their room for an agent, who joins it from the desktop. ``media``:
    the room's audio and permissions (``RoomMedia`` unless a test brings its own);
    ``caller_audio``: the caller's microphone track, for the live transcript the agent's
    desktop shows (the caller's track in the room unless a test brings its own)."""
    from voicebot.assist.transcript import LiveTranscript, TranscribedMedia
    from voicebot.queues.waiting import QueuedCall
    from voicebot.telephony.room_media import RoomMedia

    entry_id = await queues.entry_for_handoff(packet.id)
    if entry_id is None:
        # spooled (the database is down): the packet is kept and will be queued, but nobody
        # could join this call; the caller heard the handoff line and is let go
        return "handoff spooled"
    runtime = loaded.runtime
    queue = runtime.loaded.definition.queues.get(queues.resolve_queue(packet.queue))
    hold = queue.hold if queue is not None else Hold()
    music = _hold_music(runtime.settings.bot_dir, hold.music)

    async def hang_up() -> None:
        await ctx.delete_room()

    if media is None:
        media = RoomMedia(
            ctx.room,
            ctx.api,
            loaded.speech.for_call().tts,
            caller=caller.identity,
            hang_up=hang_up,
            music=music,
        )
    if loaded.speech is not None:
        transcript = LiveTranscript(
            loaded.speech.stt, queues.bus.publish, entry_id=entry_id, call_id=packet.call_id
        )
        media = TranscribedMedia(
            media, transcript, audio=caller_audio or (lambda: _microphone(caller))
        )
    queued = QueuedCall(entry_id, packet, media, queues, hold=hold)
    keypad["press"] = queued.keys

    def joined(participant: rtc.RemoteParticipant) -> None:
        queued.participant_joined(participant.identity)

    def left(participant: rtc.RemoteParticipant) -> None:
        if participant.identity == caller.identity:
            queued.caller_left()
        else:
            queued.participant_left(participant.identity)

    ctx.room.on("participant_connected", joined)
    ctx.room.on("participant_disconnected", left)
    queues.bus.subscribe(queued.queue_event)
    for participant in list(ctx.room.remote_participants.values()):
        joined(participant)
    if caller.identity not in ctx.room.remote_participants:
        queued.caller_left()  # hung up during the handoff line
    try:
        await media.start()
        outcome = await queued.run()
    finally:
        ctx.room.off("participant_connected", joined)
        ctx.room.off("participant_disconnected", left)
        await media.aclose()
    logger.info(
        "the caller left the queue",
        extra={"handoff_id": packet.id, "detail": f"{outcome}: {' > '.join(queued.history)}"},
    )
    return f"queue: {outcome}"


async def _microphone(caller: rtc.RemoteParticipant) -> AsyncIterator[rtc.AudioFrame]:
    """The caller's audio as the recogniser takes it (16 kHz mono)."""
    stream = rtc.AudioStream.from_participant(
        participant=caller,
        track_source=rtc.TrackSource.SOURCE_MICROPHONE,
        sample_rate=CALL_SAMPLE_RATE,
        num_channels=1,
    )
    try:
        async for event in stream:
            yield event.frame
    finally:
        await stream.aclose()


def _hold_music(bot_dir: Path, name: str | None) -> Path | None:
    if name is None:
        return None
    path = (bot_dir / name).resolve()
    if not path.is_file():
        logger.warning("hold music not found; the generated tune plays", extra={"detail": name})
        return None
    return path


async def _owe_callback(queues: QueueService, packet: HandoffPacket) -> None:
    try:
        entry_id = await queues.entry_for_handoff(packet.id)
        number = packet.caller.number
        if entry_id is None:
            if number:
                await _queue_callback(queues, packet, packet.queue)
            return
        if not (number and await queues.to_callback(entry_id, number)):
            await queues.abandon(entry_id, reason="the bot failed")
    except Exception:
        logger.exception("the failed handoff's callback was not queued")


async def _record_call(queues: QueueService, call: Any) -> None:
    """The bot's leg of a phone call, stored as on the softphone (never fails the call)."""
    try:
        await queues.record_call(call.call.state, channel="sip")
    except Exception:
        call_id = getattr(call.call.state, "call_id", None)
        logger.exception("call not recorded", extra={"call_id": call_id})


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
    if _warm_phone_target(call.call.bot, packet):
        return False  # dialled after the conversation has closed (_warm_to_phone)
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
