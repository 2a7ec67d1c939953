"""Call recording through LiveKit Egress, left paused while the caller gives sensitive input.

A phone call is a LiveKit room; its recording is an audio-only room composite egress writing an
OGG file. Egress cannot pause, so pausing stops the current egress and resuming starts a new
one writing the next segment file (``{segment}`` in the path template). The call record lists
the segments; the gaps between them are exactly the sensitive input (card numbers, PINs).

Nothing here raises on a LiveKit failure: a failed start or resume leaves the call unrecorded
(state "failed") and is logged. A pause that cannot be confirmed is the one failure that
matters for privacy, and it is reported to the caller of :meth:`CallRecorder.pause` (see
there). Log lines never carry the room name, which for SIP calls holds the caller's number
(LiveKit's individual dispatch rule names rooms ``<prefix>_<number>_<random>``).

Egress starts asynchronously: the first second or so after a (re)start may be missing from a
segment. That loses a little audio; it never records more than asked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiohttp
from livekit import api

logger = logging.getLogger("voicebot.telephony.recording")

DEFAULT_FILEPATH = "recordings/{room}/{room}-{segment:02d}.ogg"
DEFAULT_TIMEOUT = 10.0

State = Literal["idle", "recording", "paused", "stopped", "failed"]
T = TypeVar("T")

# Why a segment ended, besides the reason a pause gives.
ENDED_STOP = "stop"  # the call's recording was stopped (end of call)
ENDED_BY_SERVER = "ended"  # egress had already ended on its own (failure, limit, room closed)
ENDED_START_FAILED = "start_failed"  # an egress started although its start reported failure
ENDED_STOP_FAILED = "stop_failed"  # stop() could not stop it: it runs until the room closes


@dataclass
class Segment:
    """One egress: one file of the call's recording."""

    egress_id: str
    filepath: str
    started_at: float  # clock() seconds
    ended_at: float | None = None
    ended_because: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "egress_id": self.egress_id,
            "filepath": self.filepath,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "ended_because": self.ended_because,
        }


@dataclass
class _Gap:
    reason: str
    start: float
    end: float | None = None


class _KeepUnknown(dict[str, Any]):
    """Leaves placeholders other than ours (egress's own ``{time}``, ``{room_id}``) in place."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat()


def _error_fields(exc: BaseException) -> dict[str, Any]:
    """What a log line may say about a failure: codes and types, never LiveKit's free text
    (which can quote the room name)."""
    if isinstance(exc, api.ServerError):
        return {"error_code": exc.code, "http_status": exc.status}
    return {"error_type": type(exc).__name__}


def _refused(exc: BaseException) -> bool:
    """Whether LiveKit definitely did not act on the request: a 4xx answer, or no connection.

    A 5xx, a timeout or a connection dropped mid-request may come after the server did act.
    """
    if isinstance(exc, aiohttp.ClientConnectorError):
        return True
    return isinstance(exc, api.ServerError) and 400 <= exc.status < 500


def _not_running(exc: BaseException) -> bool:
    """StopEgress answers for an egress that no longer records: livekit-server says
    failed_precondition for one that has ended (ENDING, COMPLETE, FAILED, ...), not_found for
    one it does not know."""
    return isinstance(exc, api.ServerError) and exc.code in ("failed_precondition", "not_found")


class CallRecorder:
    """The recording of one call (one room), in segments around sensitive input.

    Every method is serialised by a lock, so a pause and a resume (or a stop at hang-up)
    never overlap, and each is idempotent: pausing when paused, resuming when not paused and
    stopping when stopped do nothing.
    """

    def __init__(
        self,
        lkapi: api.LiveKitAPI,
        room: str,
        *,
        filepath: str = DEFAULT_FILEPATH,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        # A bad template is a configuration error: raise it now, not in the middle of a call.
        first, second = (filepath.format_map(_KeepUnknown(room=room, segment=n)) for n in (1, 2))
        if first == second:
            raise ValueError("the recording filepath must contain {segment}")
        self._lkapi = lkapi
        self.room = room
        self.filepath = filepath
        self._clock = clock
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self.state: State = "idle"
        self.segments: list[Segment] = []
        self._gaps: list[_Gap] = []
        self._pause_failures: list[tuple[float, str]] = []
        self._attempted: list[str] = []  # every filepath asked for, started or not
        self._unsure = False  # a start may have left an egress we have no id for

    @property
    def current(self) -> Segment | None:
        """The segment being recorded, if any."""
        if self.state == "recording" and self.segments:
            return self.segments[-1]
        return None

    # --- the public operations -----------------------------------------------------------------

    async def start(self) -> bool:
        """Start recording (the first segment). True when the call is being recorded."""
        async with self._lock:
            if self.state == "idle":
                await self._start_segment()
            return self.state == "recording"

    async def pause(self, reason: str) -> bool:
        """Stop recording before sensitive input; ``reason`` names it (a step name such as
        "card_number", never what the caller said). True when nothing is being recorded.

        The safe behaviour when LiveKit cannot confirm the stop: retry once, then return False,
        log an error and count the failure in the report, staying in state "recording" (which
        is the truth as far as we know). The caller must not then take the sensitive input by
        voice as if it were unrecorded: it should take another route (transfer to an agent,
        a secure payment line) or tell the caller. Pretending to be paused would silently
        record a card number, which is the one outcome worse than a missing recording.
        """
        async with self._lock:
            if self.state == "recording":
                if not await self._stop_segment(reason, retries=1):
                    self._pause_failures.append((self._clock(), reason))
                    logger.error(
                        "recording could not be paused",
                        extra={"reason": reason, "egress_id": self.segments[-1].egress_id},
                    )
                    return False
                self.state = "paused"
                self._gaps.append(_Gap(reason, self._clock()))
                return True
            # state "failed" after an unclear start: make sure no stray egress is recording
            if self._unsure and not await self._sweep():
                self._pause_failures.append((self._clock(), reason))
                logger.error("recording could not be paused", extra={"reason": reason})
                return False
            return True

    async def resume(self) -> bool:
        """Start the next segment after a pause. True when the call is being recorded."""
        async with self._lock:
            if self.state == "paused":
                if self._gaps and self._gaps[-1].end is None:
                    self._gaps[-1].end = self._clock()
                await self._start_segment()
            return self.state == "recording"

    async def stop(self) -> None:
        """Stop recording for good (the end of the call)."""
        async with self._lock:
            if self.state == "recording":
                await self._stop_segment(ENDED_STOP, retries=1, final=True)
            elif self.state == "paused" and self._gaps and self._gaps[-1].end is None:
                self._gaps[-1].end = self._clock()
            if self._unsure:
                await self._sweep()
            if self.state != "failed":
                self.state = "stopped"

    def report(self) -> dict[str, Any]:
        """The recording for the call record: segments, the gaps left out, and failures."""
        return {
            "state": self.state,
            "segments": [segment.as_dict() for segment in self.segments],
            "gaps": [
                {"reason": gap.reason, "from": _iso(gap.start), "to": _iso(gap.end)}
                for gap in self._gaps
            ],
            "pause_failures": [
                {"at": _iso(at), "reason": reason} for at, reason in self._pause_failures
            ],
        }

    # --- egress --------------------------------------------------------------------------------

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        async with asyncio.timeout(self._timeout):
            return await request()

    async def _start_segment(self) -> None:
        filepath = self.filepath.format_map(
            _KeepUnknown(room=self.room, segment=len(self._attempted) + 1)
        )
        self._attempted.append(filepath)
        request = api.RoomCompositeEgressRequest(
            room_name=self.room,
            audio_only=True,
            file_outputs=[
                api.EncodedFileOutput(file_type=api.EncodedFileType.OGG, filepath=filepath)
            ],
        )
        try:
            info = await self._call(lambda: self._lkapi.egress.start_room_composite_egress(request))
        except Exception as exc:
            self.state = "failed"
            logger.error("recording could not be started", extra=_error_fields(exc))
            if not _refused(exc):  # LiveKit may have started it after all
                self._unsure = True
                await self._sweep()
            return
        self.segments.append(Segment(info.egress_id, filepath, self._clock()))
        self.state = "recording"

    async def _stop_egress(self, egress_id: str, retries: int) -> str | None:
        """Stop one egress: why its segment ended, or None when it may still be recording."""
        for attempt in range(retries + 1):
            try:
                await self._call(
                    lambda: self._lkapi.egress.stop_egress(
                        api.StopEgressRequest(egress_id=egress_id)
                    )
                )
            except Exception as exc:
                if _not_running(exc):  # it had ended already (or an earlier try got through)
                    return ENDED_BY_SERVER if attempt == 0 else ""
                logger.warning(
                    "stopping the recording failed",
                    extra={"egress_id": egress_id, "attempt": attempt + 1, **_error_fields(exc)},
                )
                continue
            return ""
        return None

    async def _stop_segment(self, because: str, *, retries: int, final: bool = False) -> bool:
        segment = self.segments[-1]
        ended = await self._stop_egress(segment.egress_id, retries)
        if ended is None:
            if not final:
                return False
            # Hanging up ends the room, and with it the egress: nothing more is lost by
            # letting it run out, but the record says so.
            logger.error("recording could not be stopped", extra={"egress_id": segment.egress_id})
            ended = ENDED_STOP_FAILED
        segment.ended_at = self._clock()
        segment.ended_because = ended or because
        return True

    async def _sweep(self) -> bool:
        """Stop any egress of ours that a failed start left running. True when none is left."""
        try:
            listed = await self._call(
                lambda: self._lkapi.egress.list_egress(
                    api.ListEgressRequest(room_name=self.room, active=True)
                )
            )
        except Exception as exc:
            logger.error("could not check for a stray recording", extra=_error_fields(exc))
            return False
        known = {segment.egress_id for segment in self.segments}
        ok = True
        for info in listed.items:
            outputs = {output.filepath for output in info.room_composite.file_outputs}
            if info.egress_id in known or not outputs & set(self._attempted):
                continue
            stray = Segment(info.egress_id, next(iter(outputs)), self._clock())
            if await self._stop_egress(info.egress_id, retries=1) is None:
                ok = False
                continue
            stray.ended_at = self._clock()
            stray.ended_because = ENDED_START_FAILED
            self.segments.append(stray)
        if ok:
            self._unsure = False
        return ok


class SensitiveGate:
    """Pauses a recording while the bot listens for sensitive input, and resumes it after.

    Fed one notification per collect step (``await gate.listening(step.sensitive)``); the
    calls are serialised, so a quick sensitive / non-sensitive sequence is applied in order.
    Only a pause the gate made is resumed by it.
    """

    def __init__(self, recorder: CallRecorder) -> None:
        self.recorder = recorder
        self._lock = asyncio.Lock()
        self._paused = False

    async def listening(self, sensitive: bool, reason: str = "sensitive") -> bool:
        """The bot starts listening for input. True when the recording is safe for it: for
        sensitive input that nothing is being recorded (see :meth:`CallRecorder.pause`)."""
        async with self._lock:
            if sensitive:
                ok = await self.recorder.pause(reason)
                self._paused = self._paused or (ok and self.recorder.state == "paused")
                return ok
            if self._paused:
                self._paused = False
                await self.recorder.resume()
            return True
