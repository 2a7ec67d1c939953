"""A caller waiting on the line in a built-in queue, and the warm transfer to the agent who
takes them: a phone caller in their LiveKit room, or a softphone caller on their WebSocket.

After the bot hands the call to a built-in queue, the caller stays on the line. This drives
what happens there, as a small state machine over events:

- **waiting**: hold music; every ``hold.announce_every`` seconds the caller hears their place and
  estimated wait, and, when their number is known, that a key (``hold.callback_key``) turns the
  wait into a callback that keeps their place. Hanging up abandons the entry.
- **joining**: an agent accepted on the desktop, which joins the call: the LiveKit room with a
  token from the API (``POST /api/entries/{id}/livekit``), or the softphone caller's audio
  (``/api/desktop/audio/{id}``). If the agent has not joined within ``hold.join_timeout``
  seconds, the caller goes back to their place.
- **briefing**: the agent hears a short spoken briefing that the caller does not (the caller
  still hears hold music), and the caller cannot hear the agent yet.
- **introducing**: the bot tells the caller who they are speaking to, lets the agent speak and
  leaves the conversation.
- **connected**: the bot says nothing more but keeps watching. If the agent drops out (the
  browser closed) the bot takes the caller back: an apology, and the front of the queue. When
  the agent ends the call (wrap-up), the caller is hung up on.

The media side is a ``CallerMedia``: ``RoomMedia`` (voicebot/telephony/room_media.py) on
LiveKit, where nothing depends on LiveKit Cloud (no ``MoveParticipant``: the agent joins the
caller's own room, and the briefing's privacy rests on track subscription permissions and the
agent's publish permission, which self-hosted LiveKit has); ``SoftphoneMedia``
(voicebot/api/call_legs.py) on the softphone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from voicebot.flows.schema import Hold
from voicebot.handoff.packet import HandoffPacket
from voicebot.privacy.masking import mask_value

logger = logging.getLogger("voicebot.telephony.queue")

AGENT_IDENTITY_PREFIX = "agent-"
# How often the queue is read even without an event: the worker may not share the API's event
# bus (SQLite), and a missed event must not leave a caller on hold with an agent waiting.
POLL_SECONDS = 2.0


# Anger from this level is mentioned in the briefing (the queues' own priority threshold).
UPSET = 0.7


def agent_identity(agent_id: int) -> str:
    """The LiveKit identity of an agent's desktop in a caller's room (the API's token has it)."""
    return f"{AGENT_IDENTITY_PREFIX}{agent_id}"


class CallerMedia(Protocol):
    """What waiting and the warm transfer need from the caller's room."""

    async def hold(self, on: bool) -> None: ...

    async def say(self, text: str) -> None:
        """Speak to the room (the caller, and an agent once introduced); returns when played."""

    async def brief(self, text: str, agent: str) -> None:
        """Speak to ``agent`` only; returns when played."""

    async def admit(self, agent: str) -> None:
        """Let the agent hear what the bot says to the room (the introduction)."""

    async def let_speak(self, agent: str) -> None:
        """Allow the agent to publish their microphone."""

    async def leave(self) -> None:
        """Stop the bot's audio; it stays in the room, silent, to watch over the call."""

    async def hang_up(self) -> None: ...


class Queues(Protocol):
    """The parts of ``QueueService`` used here."""

    async def place(self, entry_id: str) -> dict[str, Any] | None: ...

    async def abandon(self, entry_id: str, *, reason: str = ...) -> str | None: ...

    async def return_to_queue(self, entry_id: str, *, reason: str) -> bool: ...

    async def to_callback(self, entry_id: str, number: str) -> bool: ...


@dataclass
class Wording:
    """What the caller and the agent hear (English; the bot's own lines come from the flows)."""

    place: str = "You are number {position} in the queue."
    wait: str = "The estimated wait is about {minutes}."
    wait_short: str = "You should be answered very shortly."
    callback: str = (
        "If you would rather we called you back, press {key} at any time and you will keep "
        "your place."
    )
    callback_done: str = (
        "Thank you. We will call you back on the number ending {last_digits}, in your turn. "
        "Goodbye."
    )
    callback_failed: str = "I'm sorry, I could not arrange that. Please stay on the line."
    # A whisper of a few seconds, not the summary: the screen pop has everything else.
    briefing: str = "{queue} call{vip}. {who}, about {about}.{mood} Waited {waited}."
    upset: str = " The caller sounds upset."
    introduce: str = "Thank you for waiting. I'm putting you through to {agent} now."
    agent_lost: str = (
        "I'm sorry, we lost the connection to your colleague. You are back at the front of the "
        "queue; please stay on the line."
    )
    failed: str = "I'm sorry, something has gone wrong on our side. Please call again later."
    failed_callback: str = (
        "I'm sorry, something has gone wrong on our side. We will call you back, in your turn."
    )
    agent_late: str = (
        "I'm sorry for the wait. You are still at the front of the queue; please stay on the line."
    )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("a wait update could not be spoken", exc_info=task.exception())


def minutes_phrase(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


@dataclass
class QueuedCall:
    """One phone caller from the moment their entry exists until they leave the room."""

    entry_id: str
    packet: HandoffPacket
    media: CallerMedia
    queues: Queues
    hold: Hold = field(default_factory=Hold)
    wording: Wording = field(default_factory=Wording)
    clock: Callable[[], float] = time.monotonic
    poll_seconds: float = POLL_SECONDS
    grace: float = 2.0
    state: str = "waiting"
    outcome: str | None = None
    history: list[str] = field(default_factory=list)
    _inbox: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    _agent: str | None = None  # the expected agent's identity
    _agent_name: str | None = None
    _present: set[str] = field(default_factory=set)  # agent identities in the room
    _caller_gone: bool = False
    _next_announce: float | None = None
    _next_poll: float = 0.0
    _join_deadline: float | None = None
    _speaking: asyncio.Task[None] | None = None  # an update being spoken

    # -- events, from the room and the queue's bus -----------------------------------------------

    def caller_left(self) -> None:
        self._inbox.put_nowait(("caller_left", None))

    def participant_joined(self, identity: str) -> None:
        if identity.startswith(AGENT_IDENTITY_PREFIX):
            self._inbox.put_nowait(("agent_joined", identity))

    def participant_left(self, identity: str) -> None:
        if identity.startswith(AGENT_IDENTITY_PREFIX):
            self._inbox.put_nowait(("agent_left", identity))

    def keys(self, digits: str) -> None:
        self._inbox.put_nowait(("keys", digits))

    def queue_event(self, event: dict[str, Any]) -> None:
        """A queue event; those about this entry make the state be read now, not at the poll."""
        if event.get("entry_id") == self.entry_id:
            self._inbox.put_nowait(("queue", event.get("type")))

    # -- the machine ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Until the caller leaves the queue's hands; returns the outcome: ``abandoned``,
        ``callback``, ``ended`` (the agent finished, or the caller hung up on them), ``gone``
        (the entry ended elsewhere) or ``failed``."""
        try:
            await self._enter("waiting")
            await self.media.hold(True)
            await self._announce(first=True)
            self._next_announce = self._announce_due()
            while self.outcome is None:
                kind, value = await self._next_event()
                if kind == "caller_left":
                    await self._caller_left()
                elif kind == "agent_joined":
                    self._present.add(value)
                elif kind == "agent_left":
                    self._present.discard(value)
                await self._step(kind, value)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the queued call failed", extra={"detail": self.entry_id})
            self.outcome = "failed"
            await self._quiet()
            await self._fail()
        finally:
            await self._quiet()
        return self.outcome or "gone"

    async def _fail(self) -> None:
        """Something broke: the caller must not be left on silent hold. They hear an apology;
        with a known number their place becomes a callback, else the entry is closed (nobody
        would be in the room for an agent to join). The job's end then hangs up."""
        number = self.packet.caller.number
        with contextlib.suppress(Exception):
            await self.queues.return_to_queue(self.entry_id, reason="the bot failed")
        try:
            kept = bool(number) and await self.queues.to_callback(self.entry_id, str(number))
            if not kept:
                await self.queues.abandon(self.entry_id, reason="the bot failed")
        except Exception:
            logger.exception("the failed call's entry was left as it was")
            kept = False
        with contextlib.suppress(Exception):
            await self.media.hold(False)
            await self.media.say(self.wording.failed_callback if kept else self.wording.failed)

    async def _next_event(self) -> tuple[str, Any]:
        """The next event, or ``tick`` when a timer (announcement, poll, join deadline) is due."""
        timers = [self._next_poll]
        if self.state == "waiting" and self._next_announce is not None:
            timers.append(self._next_announce)
        if self.state == "joining" and self._join_deadline is not None:
            timers.append(self._join_deadline)
        timeout = max(0.0, min(timers) - self.clock())
        try:
            return await asyncio.wait_for(self._inbox.get(), timeout=timeout)
        except TimeoutError:
            return "tick", None

    async def _step(self, kind: str, value: Any) -> None:
        if self.outcome is not None:
            return
        now = self.clock()
        # A queue event about this entry is read at once; otherwise the queue is polled.
        read_queue = kind == "queue" or (kind == "tick" and now >= self._next_poll)
        if read_queue:
            self._next_poll = now + self.poll_seconds
        if self.state == "waiting":
            if kind == "keys":
                await self._keys(value)
            elif read_queue:
                await self._check_queue()
            due = self._next_announce
            if self.state == "waiting" and due is not None and self.clock() >= due:
                await self._announce()
                self._next_announce = self._announce_due()
        if self.state == "joining":
            if self._agent in self._present:
                self._join_deadline = None
                await self._connect()
            elif self._join_deadline is not None and now >= self._join_deadline:
                await self._back_to_queue(
                    "the agent did not join the call", self.wording.agent_late
                )
            elif read_queue:
                await self._check_still_ours()
        elif self.state == "connected" and (
            (kind == "agent_left" and value == self._agent) or read_queue
        ):
            if kind == "agent_left":
                # pressing End call both ends the entry and leaves the room; the two may
                # arrive in either order, so the entry is read after a moment
                await asyncio.sleep(self.grace)
            if await self._agent_finished():
                return
            # a desktop that reconnected within the moment (a reloaded page) is still there
            if kind == "agent_left" and self._agent not in self._present_now():
                await self._back_to_queue(
                    "the agent dropped out of the call", self.wording.agent_lost
                )

    async def _enter(self, state: str) -> None:
        self.state = state
        self.history.append(state)
        logger.info("queued call", extra={"detail": f"{self.entry_id}: {state}"})

    def _announce_due(self) -> float | None:
        every = self.hold.announce_every
        return self.clock() + every if every > 0 else None

    async def _announce(self, *, first: bool = False) -> None:
        place = await self.queues.place(self.entry_id)
        if place is None or place["status"] not in ("waiting", "offered"):
            return
        lines = [self.wording.place.format(position=place["position"])]
        wait = place.get("estimated_wait")
        if wait is not None:
            lines.append(
                self.wording.wait.format(minutes=minutes_phrase(wait))
                if wait >= 45
                else self.wording.wait_short
            )
        if self._can_call_back() and (first or wait is None or wait >= 45):
            lines.append(self.wording.callback.format(key=self.hold.callback_key))
        # Spoken in the background: an agent who accepts, or a key pressed, cuts it short
        # rather than waiting for the sentence to end.
        await self._quiet()
        self._speaking = asyncio.create_task(self.media.say(" ".join(lines)))
        self._speaking.add_done_callback(_log_failure)

    async def _quiet(self) -> None:
        """Stop an update that is still being spoken."""
        speaking, self._speaking = self._speaking, None
        if speaking is not None and not speaking.done():
            speaking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await speaking

    def _can_call_back(self) -> bool:
        return bool(self.hold.callback_key and self.packet.caller.number)

    async def _keys(self, digits: str) -> None:
        key = self.hold.callback_key
        if key is None or not self._can_call_back() or key not in digits:
            return
        number = self.packet.caller.number
        assert number is not None
        if await self.queues.to_callback(self.entry_id, number):
            digits_shown = mask_value(number)[-4:]
            await self._quiet()
            await self.media.hold(False)
            await self.media.say(self.wording.callback_done.format(last_digits=digits_shown))
            self.outcome = "callback"
            await self.media.hang_up()
        else:
            # an agent took the call meanwhile, or the entry ended: read it now
            await self._check_queue()
            if self.state == "waiting":
                await self.media.say(self.wording.callback_failed)

    async def _check_queue(self) -> None:
        place = await self.queues.place(self.entry_id)
        if place is None or place["status"] in ("abandoned", "done", "wrap_up"):
            self.outcome = "gone"
            await self._quiet()
            await self.media.hang_up()
            return
        if place["status"] == "connected" and place.get("agent_id") is not None:
            self._agent = agent_identity(int(place["agent_id"]))
            self._agent_name = place.get("agent_name")
            self._join_deadline = self.clock() + self.hold.join_timeout
            await self._quiet()
            await self._enter("joining")

    async def _check_still_ours(self) -> None:
        place = await self.queues.place(self.entry_id)
        if place is None or place["status"] != "connected":
            # the agent ended the call before joining (or a supervisor moved it): read again
            self._agent = None
            await self._enter("waiting")
            await self._check_queue()

    async def _connect(self) -> None:
        agent = self._agent
        assert agent is not None
        await self._enter("briefing")
        await self.media.brief(self._briefing(), agent)
        if not await self._still_there(agent):
            return
        await self._enter("introducing")
        await self.media.hold(False)
        await self.media.admit(agent)
        name = (self._agent_name or "a colleague").split()[0]
        await self.media.say(self.wording.introduce.format(agent=name))
        if not await self._still_there(agent):
            return
        await self.media.let_speak(agent)
        await self.media.leave()
        await self._enter("connected")

    async def _still_there(self, agent: str) -> bool:
        """After each spoken part of the transfer: a caller who hung up is dealt with by the
        loop; an agent who dropped out sends the caller back to their place."""
        present = self._present_now()
        if self._caller_gone:
            return False
        if agent not in present:
            await self._back_to_queue(
                "the agent dropped out during the transfer", self.wording.agent_lost
            )
            return False
        return True

    def _present_now(self) -> set[str]:
        """Who is in the room, with the events that came in while the bot was speaking."""
        pending: list[tuple[str, Any]] = []
        while not self._inbox.empty():
            kind, value = self._inbox.get_nowait()
            if kind == "agent_joined":
                self._present.add(value)
            elif kind == "agent_left":
                self._present.discard(value)
            elif kind == "caller_left":
                self._caller_gone = True
            pending.append((kind, value))
        for item in pending:  # the rest are dealt with by the loop, in order
            self._inbox.put_nowait(item)
        return self._present

    def _briefing(self) -> str:
        packet = self.packet
        waited = time.time() - packet.created_at.timestamp()
        return self.wording.briefing.format(
            queue=packet.queue.replace("_", " ").capitalize(),
            vip=", VIP" if packet.caller.vip else "",
            who=packet.caller.name or "The caller",
            about=(packet.intent.name or "no clear reason").replace("_", " "),
            mood=self.wording.upset if packet.sentiment.anger >= UPSET else "",
            waited=minutes_phrase(waited) if waited >= 60 else "under a minute",
        )

    async def _back_to_queue(self, reason: str, apology: str) -> None:
        await self._quiet()
        await self.queues.return_to_queue(self.entry_id, reason=reason)
        self._agent = None
        self._agent_name = None
        self._join_deadline = None
        self._next_announce = self._announce_due()
        await self._enter("waiting")
        await self.media.hold(False)
        await self.media.say(apology)
        await self.media.hold(True)

    async def _agent_finished(self) -> bool:
        """The agent ended the call (the entry is in wrap-up or done): hang up on the caller."""
        place = await self.queues.place(self.entry_id)
        if place is not None and place["status"] == "connected":
            return False
        self.outcome = "ended"
        await self.media.hang_up()
        return True

    async def _caller_left(self) -> None:
        await self._quiet()
        previous = await self.queues.abandon(self.entry_id, reason="caller hung up")
        # waiting or offered: an abandoned entry; with an agent: their call ends (wrap-up)
        self.outcome = "ended" if previous == "connected" else "abandoned"
