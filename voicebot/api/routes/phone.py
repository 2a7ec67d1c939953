"""The browser softphone: a page at ``/phone`` and the call's audio over ``/phone/ws``.

Wire protocol (docs/audio.md has it in full): the browser sends its microphone as binary
16-bit little-endian mono PCM at 16 kHz and JSON text messages (``dtmf``, ``hangup``); the
server sends the bot's audio the same way, at playback pace, and JSON events (``ready``,
``caller`` and ``bot`` transcript lines, states, ``clear`` on barge-in, ``timing``, ``ended``,
``error``). A bad message gets an ``error`` event and is dropped; the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from starlette.websockets import WebSocketState

from voicebot.agent.voice_call import VoiceCall
from voicebot.api.call_legs import CallerLeg, SoftphoneMedia
from voicebot.api.security import MessageRate, socket_origin_allowed, too_many
from voicebot.assist.transcript import LiveTranscript, TranscribedMedia
from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.audio.io import PacedAudioOutput, QueueAudioInput
from voicebot.flows.schema import Hold
from voicebot.handoff.packet import CallerInfo
from voicebot.queues.waiting import QueuedCall

logger = logging.getLogger("voicebot.api.phone")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "phone"
# One message of caller audio: a browser sends 20-40 ms; a second is plenty of slack.
MAX_AUDIO_MESSAGE = CALL_SAMPLE_RATE * 2
MAX_TEXT_MESSAGE = 4096
_DIGITS = re.compile(r"^[0-9*#A-D]{1,32}$")
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")

router = APIRouter(tags=["softphone"])


@router.get("/phone", include_in_schema=False)
def phone_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def _same_origin(websocket: WebSocket) -> bool:
    """Browsers send Origin: a page from another site must not open calls here."""
    return socket_origin_allowed(websocket.headers, websocket.app.state.settings)


@router.websocket("/phone/ws")
async def phone_socket(websocket: WebSocket, caller: str | None = None) -> None:
    app = websocket.app
    if not _same_origin(websocket):
        await websocket.close(code=1008, reason="cross-origin softphone connections are refused")
        return
    await websocket.accept()
    runtime, speech = getattr(app.state, "runtime", None), getattr(app.state, "speech", None)
    if runtime is None or speech is None:
        detail = str(getattr(app.state, "speech_error", None) or "the audio path is not loaded")
        await websocket.send_json({"type": "error", "message": detail})
        await websocket.close(code=1011)
        return
    calls: set[Any] = app.state.calls
    if len(calls) >= runtime.settings.max_calls:
        await websocket.send_json({"type": "error", "message": "too many calls in progress"})
        await websocket.close(code=1013)
        return
    await _run_call(websocket, runtime, speech, calls, caller)


async def _run_call(
    websocket: WebSocket, runtime: Any, speech: Any, calls: set[Any], caller: str | None
) -> None:
    outbox: asyncio.Queue[bytes | dict[str, Any] | None] = asyncio.Queue()
    audio_in = QueueAudioInput(label="softphone", sample_rate=CALL_SAMPLE_RATE)
    audio_out = PacedAudioOutput(
        label="softphone",
        sample_rate=CALL_SAMPLE_RATE,
        deliver=outbox.put_nowait,
        on_clear=lambda: outbox.put_nowait({"type": "clear"}),
    )
    number = caller if caller and _NUMBER.match(caller) else None
    queues = getattr(websocket.app.state, "queues", None)

    def on_event(event: dict[str, Any]) -> None:
        # A handoff to the built-in queues does not end the softphone call: the caller waits
        # on the line for an agent (see _wait_for_agent), so the bot's "ended" is held back.
        if queues is not None and event.get("type") == "ended" and event.get("handoff"):
            return
        outbox.put_nowait(event)

    call = VoiceCall(
        runtime,
        speech,
        audio_in,
        audio_out,
        caller=CallerInfo(number=number, attributes={"channel": "softphone"}),
        on_event=on_event,
    )
    calls.add(call)
    sender = asyncio.create_task(_send_all(websocket, outbox), name="phone-sender")
    receiver: asyncio.Task[None] | None = None
    try:
        outbox.put_nowait(
            {
                "type": "ready",
                "call_id": call.call.state.call_id,
                "sample_rate": CALL_SAMPLE_RATE,
                "bot": runtime.loaded.definition.bot.name,
            }
        )
        await call.start()
        route: dict[str, Any] = {"audio": audio_in.push, "keys": call.press_keys}
        receiver = asyncio.create_task(_receive_all(websocket, route, outbox))
        ended = asyncio.create_task(call.wait_ended())
        await asyncio.wait({receiver, ended}, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        packet = call.call.state.handoff
        if queues is not None:
            # The bot's leg is stored whether or not it ended in a handoff: reports read its
            # sentiment, flows and turn latencies; a handoff's outcome stays the human leg's.
            await _record(queues, call)
        if queues is not None and packet is not None and not receiver.done():
            await _wait_for_agent(
                websocket.app, queues, packet, runtime, speech, route, receiver, outbox
            )
        elif queues is not None and packet is not None:
            entry_id = await queues.entry_for_handoff(packet.id)
            if entry_id is not None:
                await queues.abandon(entry_id)
    except Exception:
        logger.exception("softphone call failed", extra={"call_id": call.call.state.call_id})
        outbox.put_nowait({"type": "error", "message": "the call failed; please call again"})
    finally:
        if receiver is not None:
            receiver.cancel()
        audio_in.close()
        await call.aclose("caller hung up")
        await audio_out.aclose()
        calls.discard(call)
        outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sender, timeout=2)
        sender.cancel()
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _send_all(
    websocket: WebSocket, outbox: asyncio.Queue[bytes | dict[str, Any] | None]
) -> None:
    while True:
        item = await outbox.get()
        if item is None:
            return
        try:
            if isinstance(item, bytes):
                await websocket.send_bytes(item)
            else:
                await websocket.send_text(json.dumps(item))
        except (WebSocketDisconnect, RuntimeError):
            return  # the browser went away; the receiver ends the call


async def _record(queues: Any, call: VoiceCall) -> None:
    """The bot's leg of a softphone call (its transcript is already masked); never fails it."""
    try:
        await queues.record_call(call.call.state, channel="softphone")
    except Exception:
        logger.exception("call not recorded", extra={"call_id": call.call.state.call_id})


async def _wait_for_agent(
    app: Any,
    queues: Any,
    packet: Any,
    runtime: Any,
    speech: Any,
    route: dict[str, Any],
    receiver: asyncio.Task[None],
    outbox: asyncio.Queue[bytes | dict[str, Any] | None],
) -> None:
    """The caller waits on the line as a phone caller does (voicebot/queues/waiting.py): hold
    music, their place and wait spoken, a key for a callback. An agent who accepts joins the
    audio from the desktop, is briefed, and is introduced. Hanging up abandons the entry (or
    ends the agent's call)."""
    entry_id = await queues.entry_for_handoff(packet.id)
    if entry_id is None:  # spooled (database down): the caller was told; the line can close
        outbox.put_nowait({"type": "ended", "reason": "handoff", "handoff": None})
        return
    assignment = await queues.assignment(entry_id)
    queue_name = assignment["queue"] if assignment else packet.queue
    stats = (await queues.stats()).get(queue_name)
    outbox.put_nowait(
        {
            "type": "queued",
            "entry_id": entry_id,
            "queue": queue_name,
            "waiting": stats.waiting if stats else None,
            "estimated_wait": stats.estimated_wait if stats else None,
        }
    )
    leg = CallerLeg(entry_id, outbox.put_nowait)

    async def hang_up() -> None:
        return None  # the wait returns its outcome next, and the line is closed after it

    # While the caller talks to the agent, their words reach the agent's desktop too.
    transcript = LiveTranscript(
        speech.stt, queues.bus.publish, entry_id=entry_id, call_id=packet.call_id
    )
    leg.listener = transcript.push
    softphone = SoftphoneMedia(leg, speech.for_call().tts, hang_up=hang_up)
    media = TranscribedMedia(softphone, transcript)
    config = runtime.loaded.definition.queues.get(queue_name)
    queued = QueuedCall(entry_id, packet, media, queues, hold=config.hold if config else Hold())
    leg.on_agent = lambda identity, present: (
        queued.participant_joined(identity) if present else queued.participant_left(identity)
    )
    leg.on_event = queued.queue_event
    app.state.legs.add(leg)
    route["audio"] = leg.caller_audio
    route["keys"] = queued.keys
    waiting = asyncio.create_task(queued.run(), name="softphone-queue")
    try:
        await asyncio.wait({receiver, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():  # the caller hung up
            queued.caller_left()
        outcome = await waiting
        if not receiver.done():
            reason = _ENDINGS.get(outcome, outcome)
            outbox.put_nowait({"type": "ended", "reason": reason, "handoff": None})
    finally:
        waiting.cancel()
        await media.aclose()
        app.state.legs.remove(leg)


# What the softphone shows when the wait ends without the caller hanging up.
_ENDINGS = {
    "ended": "agent ended the call",
    "callback": "a callback was arranged",
    "gone": "the call was closed",
    "failed": "the call failed (the caller heard why)",
}


async def _receive_all(
    websocket: WebSocket,
    route: dict[str, Any],
    outbox: asyncio.Queue[bytes | dict[str, Any] | None],
) -> None:
    def error(message: str) -> None:
        outbox.put_nowait({"type": "error", "message": message})

    rate = MessageRate()  # text messages only: audio arrives 50 times a second
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message.get("type") == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None and not rate.allow():
            if rate.flooding:
                with contextlib.suppress(Exception):
                    await websocket.close(code=1008, reason=too_many())
                return
            if rate.refused == 1:
                error(too_many() + "; this message and the next ones were dropped")
            continue
        if data is None:
            rate.refused = 0
        if data is not None:
            if len(data) > MAX_AUDIO_MESSAGE:
                error(f"audio messages are at most {MAX_AUDIO_MESSAGE} bytes; this one was dropped")
            elif len(data) % 2:
                error("audio must be 16-bit PCM (an even number of bytes); this one was dropped")
            else:
                route["audio"](data)
            continue
        text = message.get("text") or ""
        if len(text) > MAX_TEXT_MESSAGE:
            error("text messages are at most 4096 characters")
            continue
        try:
            payload = json.loads(text)
        except ValueError:
            error('text messages must be JSON, e.g. {"type": "dtmf", "digits": "1"}')
            continue
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "dtmf":
            digits = str(payload.get("digits", ""))
            if _DIGITS.match(digits):
                route["keys"](digits)
            else:
                error("dtmf digits must be 0-9, *, # or A-D")
        elif kind == "hangup":
            return
        else:
            error(f"unknown message type {kind!r}; expected 'dtmf' or 'hangup'")


def mount_static(app: Any) -> None:
    from fastapi.staticfiles import StaticFiles

    app.mount("/phone/static", StaticFiles(directory=STATIC_DIR), name="phone-static")
