"""A call on audio: the flows' agent in a livekit-agents ``AgentSession`` with VAD, ASR and TTS.

The session does the real-time work (voice activity, endpointing, interruptions, sentence
streaming to TTS). This adds what a phone call needs on top:

- keypad: in-band tones detected in the caller's audio and out-of-band presses, gathered per
  the step's rules and handed to the engine;
- ``barge_in: false``: a reply holding such a line cannot be interrupted;
- no-input: after the bot finishes speaking, the step's ``no_input_timeout`` of caller silence
  becomes the engine's no-input event;
- the end of the call once a goodbye or handoff announcement has played;
- per-turn timings, from the end of the caller's speech to the first bot audio, with the parts
  in between, logged and kept on the call record.

The transport (a WAV simulation, the browser softphone, a LiveKit room) only supplies an
``io.AudioInput`` and ``io.AudioOutput``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, llm
from livekit.agents.voice import SpeechHandle, io, room_io
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    CloseEvent,
    ConversationItemAddedEvent,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
)
from livekit.agents.voice.turn import EndpointingOptions, TurnDetectionMode

from voicebot.agent.flow_agent import FlowAgent
from voicebot.agent.keypad import InbandDtmfInput, KeypadCollector
from voicebot.engine.events import Listen
from voicebot.handoff.packet import CallerInfo
from voicebot.nlu.parsers.base import tokenize
from voicebot.nlu.parsers.digits import digit_runs
from voicebot.nlu.parsers.lang import ENGLISH, get_locale
from voicebot.runtime.call import CallRuntime, LineSink, Reply
from voicebot.speech.stack import SpeechStack
from voicebot.speech.tts.languages import VoiceChoice

logger = logging.getLogger("voicebot.call.audio")

# After the last line of a goodbye or handoff has played, the line stays open this long.
_HANGUP_AFTER = 0.3

CallEvent = dict[str, Any]


@dataclass
class TurnTiming:
    """One bot answer on the call's clock (``time.time()`` seconds); ms figures derived."""

    kind: str  # "speech" (the caller spoke), "keys", "silence", "start"
    started: float  # end of caller speech, key press, or no-input timeout
    transcript_at: float | None = None
    committed_at: float | None = None  # the turn was taken as complete
    brain_started: float | None = None
    brain_done: float | None = None
    tts_first_byte_ms: float | None = None
    first_audio_at: float | None = None
    caller_text: str = ""  # masked, as the call's transcript holds it
    # what ended a spoken turn: "detector" (Smart Turn), "digits" (a digit collect's long
    # wait, the detector held), "timers" (the silence timers alone)
    ended_by: str | None = None

    def report(self) -> dict[str, Any]:
        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000, 1)

        after = self.committed_at or self.started
        return {
            "kind": self.kind,
            "caller": self.caller_text,
            "ended_by": self.ended_by,
            "endpointing_ms": ms(self.started, self.committed_at),
            "asr_ms": ms(self.started, self.transcript_at),
            "brain_ms": ms(self.brain_started, self.brain_done),
            "tts_first_byte_ms": (
                round(self.tts_first_byte_ms, 1) if self.tts_first_byte_ms is not None else None
            ),
            "processing_ms": ms(after, self.first_audio_at),
            "total_ms": ms(self.started, self.first_audio_at),
        }


class VoiceAgent(FlowAgent):
    """The flows' agent, telling its call about each reply as it is made."""

    def __init__(self, voice_call: VoiceCall) -> None:
        super().__init__(voice_call.call)
        self._voice_call = voice_call

    async def next_reply(self, chat_ctx: llm.ChatContext, on_line: LineSink | None = None) -> Reply:
        started = time.time()
        reply = await super().next_reply(chat_ctx, on_line)
        self._voice_call._replied(reply, started, time.time(), _current_speech(self))
        return reply


# Slots the caller gives digit by digit (account and card numbers, PINs, phone numbers).
_DIGIT_SLOTS = frozenset({"digits", "number", "phone", "card_number"})


def _collects_digits(listen: Listen | None) -> bool:
    if listen is None or listen.expect.kind != "collect":
        return False
    slot = listen.expect.slot
    return listen.expect.sensitive or (slot is not None and slot.type in _DIGIT_SLOTS)


def _count_digits(text: str, language: str) -> int:
    """Digits in a transcript, spoken or written, read as the digits parser reads them ("double
    five" is two, "seventeen" two, a written "1234" four)."""
    locale = get_locale(language)
    words = locale.words if locale is not None else ENGLISH
    return sum(len(run.digits) for run in digit_runs(tokenize(text), words))


def _current_speech(agent: FlowAgent) -> SpeechHandle | None:
    # The speech this reply belongs to: livekit keeps it in a context variable for the
    # duration of a generation (its function tools read it the same way).
    from livekit.agents.voice.agent_activity import _SpeechHandleContextVar

    handle = _SpeechHandleContextVar.get(None)
    if handle is None:
        with contextlib.suppress(RuntimeError):
            handle = agent.session.current_speech
    return handle


class VoiceCall:
    """One caller on one audio transport."""

    def __init__(
        self,
        runtime: Any,
        speech: SpeechStack,
        audio_in: io.AudioInput | None,
        audio_out: io.AudioOutput | None,
        *,
        caller: CallerInfo | None = None,
        call_id: str | None = None,
        on_event: Callable[[CallEvent], None] | None = None,
        inband_dtmf: bool = True,
        aec_warmup: float | None = None,
        call: CallRuntime | None = None,
    ) -> None:
        # ``call``: one already set up (conversation tests bring their mocks and clock)
        self.call = call if call is not None else runtime.new_call(caller=caller, call_id=call_id)
        self.speech = speech
        self.timings: list[TurnTiming] = []
        self._on_event = on_event
        self._ended = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reply_generation = 0
        self._listen: Listen | None = None
        self._no_input: asyncio.TimerHandle | None = None
        self._open_turn: TurnTiming | None = None
        self._last_brain: tuple[float, float] | None = None
        self.keypad = KeypadCollector(self._keys_ready)
        # run after the last line of a goodbye or handoff has played, before the line closes
        self.before_hangup: Callable[[Reply], Awaitable[None]] | None = None
        # told, as each reply is made, whether the caller's next words are sensitive (a card
        # number, a PIN): a recording pauses before the caller can say them
        self.on_listen: Callable[[bool], Awaitable[Any]] | None = None
        self.agent = VoiceAgent(self)
        settings = runtime.settings
        # each reply is synthesised in the call's language at that moment: a caller who
        # switches to Spanish hears the Spanish voice from the next line on
        self.plugins = plugins = speech.for_call(
            lambda: self.call.state.language, on_switch=self._voice_switched
        )
        self.turn_detector = plugins.turn
        self._min_delay = settings.turn_min_delay
        self._max_delay = max(settings.turn_max_delay, settings.turn_min_delay)
        self._current_max_delay = self._max_delay
        self._digits_heard = ""  # a digit collect's final transcripts in this turn
        self._digit_delay = max(settings.turn_digit_delay, settings.turn_min_delay)
        if plugins.turn is not None:
            # the detector decides: a complete-sounding turn is answered after the short delay,
            # an unfinished one after the long one (new speech cancels either wait)
            turn_detection: TurnDetectionMode = plugins.turn
            endpointing: EndpointingOptions = {
                "mode": "fixed",
                "min_delay": settings.turn_min_delay,
                "max_delay": self._max_delay,
            }
        else:
            turn_detection = "vad"
            endpointing = {
                "mode": "fixed",
                "min_delay": settings.endpointing_delay,
                "max_delay": max(3.0, settings.endpointing_delay),
            }
        self.session: AgentSession[None] = AgentSession(
            stt=plugins.stt,
            vad=plugins.vad,
            tts=plugins.tts,
            turn_handling={
                "turn_detection": turn_detection,
                "endpointing": endpointing,
                "interruption": {
                    "enabled": True,
                    "mode": "vad",
                    "min_duration": 0.4,
                    "resume_false_interruption": False,
                    "false_interruption_timeout": None,
                },
                # replies run the flows (webhooks, slot filling): never on a guess
                "preemptive_generation": {"enabled": False},
            },
            user_away_timeout=None,
            # livekit ignores barge-in for the first seconds of a call while an echo canceller
            # settles; local transports carry no echo (the browser cancels its own), and a
            # caller who talks over the greeting must be heard
            aec_warmup_duration=aec_warmup,
        )
        self._inband_dtmf = inband_dtmf
        # None: the audio is a LiveKit room's, set up by ``start(room=...)``
        if audio_in is not None:
            self.session.input.audio = (
                InbandDtmfInput(audio_in, self.keypad.press) if inband_dtmf else audio_in
            )
        if audio_out is not None:
            self.session.output.audio = audio_out
            audio_out.on("playback_started", self._on_playback_started)
        self.session.on("user_input_transcribed", self._on_transcribed)
        self.session.on("conversation_item_added", self._on_item)
        self.session.on("agent_state_changed", self._on_agent_state)
        self.session.on("user_state_changed", self._on_user_state)
        self.session.on("close", self._on_close)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(
        self, *, room: rtc.Room | None = None, participant_identity: str | None = None
    ) -> None:
        """Start the call; with ``room``, on that LiveKit room's audio (livekit's RoomIO), with
        the caller ``participant_identity`` (a SIP participant included)."""
        if room is None:
            await self.session.start(self.agent, record=False)
            return
        options = room_io.RoomOptions(
            participant_kinds=[
                rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
                rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
            ],
            # the bot's transcript is the call record's, masked; not sent to the room as text
            text_output=False,
        )
        if participant_identity:
            options.participant_identity = participant_identity
        await self.session.start(self.agent, room=room, room_options=options, record=False)
        if self._inband_dtmf and self.session.input.audio is not None:
            self.session.input.audio = InbandDtmfInput(self.session.input.audio, self.keypad.press)
        if self.session.output.audio is not None:
            self.session.output.audio.on("playback_started", self._on_playback_started)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def aclose(self, reason: str = "closed") -> None:
        """End the call now (the caller hung up, or the server stops)."""
        if self._closing:
            await self._ended.wait()
            return
        self._closing = True
        self._cancel_no_input()
        self.keypad.close()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:  # the hangup after a goodbye closes the call from a task
                task.cancel()
        with contextlib.suppress(Exception):
            await self.session.aclose()
        if not self._ended.is_set():
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self._ended.is_set():
            return
        self._ended.set()
        self._emit({"type": "ended", "reason": reason, "handoff": self._handoff_summary()})

    def _handoff_summary(self) -> dict[str, Any] | None:
        packet = self.call.state.handoff
        if packet is None:
            return None
        return {"queue": packet.queue, "reason": packet.reason, "handoff_id": packet.id}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- keypad -------------------------------------------------------------------------------

    def press_keys(self, keys: str) -> None:
        """Key presses that arrived out of band (the softphone's keypad, SIP DTMF)."""
        self.keypad.press(keys)

    def _keys_ready(self, digits: str) -> None:
        if self._closing or self.ended:
            return
        self._cancel_no_input()
        self._open_turn = TurnTiming(kind="keys", started=time.time(), committed_at=time.time())
        self._emit({"type": "keys", "digits": "*" * len(digits)})
        self.agent.press_keys(digits)

    # -- replies ------------------------------------------------------------------------------

    def _replied(
        self, reply: Reply, started: float, done: float, handle: SpeechHandle | None
    ) -> None:
        self._reply_generation += 1
        generation = self._reply_generation
        self._cancel_no_input()
        self.keypad.expect(reply.listen)
        self._listen = reply.listen
        self._digits_heard = ""
        if self.turn_detector is not None:
            # digits come with pauses ("1234... 5678") and the model may hear "1234" as a
            # finished turn: a digit collect does not ask it ("not complete" at once) and
            # waits its own long delay through every pause
            digits = _collects_digits(reply.listen)
            self.turn_detector.hold = digits
            self._set_max_delay(self._digit_delay if digits else self._max_delay)
        if self.on_listen is not None:
            sensitive = reply.listen is not None and reply.listen.expect.sensitive
            self._spawn(self.on_listen(sensitive))
        self._last_brain = (started, done)
        turn = self._open_turn
        if handle is not None and any(not line.barge_in for line in reply.lines):
            with contextlib.suppress(RuntimeError):
                handle.allow_interruptions = False
        if not reply.lines and turn is not None and turn.first_audio_at is None:
            self._open_turn = None  # nothing to say: no latency to measure
        self._spawn(self._after_playout(handle, reply, generation))

    async def _after_playout(
        self, handle: SpeechHandle | None, reply: Reply, generation: int
    ) -> None:
        if handle is not None:
            with contextlib.suppress(Exception):
                await handle.wait_for_playout()
        if generation != self._reply_generation:
            return
        if reply.ended or self.call.ended:
            await asyncio.sleep(_HANGUP_AFTER)
            if self.before_hangup is not None:
                # e.g. a phone transfer, which may still need the session to tell the caller
                try:
                    await self.before_hangup(reply)
                except Exception:
                    logger.exception("the end-of-call step failed")
            reason = "handoff" if reply.handoff is not None else "hangup"
            self._spawn(self.aclose(reason))
            return
        self._arm_no_input()

    def _set_max_delay(self, seconds: float) -> None:
        if seconds != self._current_max_delay:
            self._current_max_delay = seconds
            self.session.update_options(endpointing_opts={"max_delay": seconds})

    def _digits_complete(self, transcript: str) -> None:
        # A digit collect of known length is over once that many digits are heard: answered
        # at once, not after the long wait. The session reads the delay when this final
        # transcript's end-of-turn check starts, which is just after this event.
        self._digits_heard += f" {transcript}"
        listen = self._listen
        slot = listen.expect.slot if listen is not None else None
        length = slot.length or slot.max_length if slot is not None else None
        if length and _count_digits(self._digits_heard, self.call.state.language) >= length:
            self._set_max_delay(self._min_delay)

    # -- no input -----------------------------------------------------------------------------

    def _arm_no_input(self) -> None:
        self._cancel_no_input()
        listen = self._listen
        if listen is None or self._closing or self.session.user_state == "speaking":
            return
        generation = self._reply_generation
        loop = asyncio.get_running_loop()
        self._no_input = loop.call_later(listen.timeout, self._no_input_fired, generation, listen)

    def _cancel_no_input(self) -> None:
        if self._no_input is not None:
            self._no_input.cancel()
            self._no_input = None

    def _no_input_fired(self, generation: int, listen: Listen) -> None:
        self._no_input = None
        if generation != self._reply_generation or self._closing or self.keypad.buffered:
            return
        self._open_turn = TurnTiming(kind="silence", started=time.time(), committed_at=time.time())
        self.agent.caller_silent(listen.timeout)

    def _voice_switched(self, choice: VoiceChoice) -> None:
        language, voice = choice
        logger.info(
            "the call's voice follows its language",
            extra={"call_id": self.call.state.call_id, "language": language, "voice": voice},
        )
        self._emit({"type": "voice", "language": language, "voice": voice})

    # -- session events -----------------------------------------------------------------------

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "speaking":
            self._cancel_no_input()
        elif event.old_state == "speaking" and self.session.agent_state == "listening":
            # speech that came to nothing (a cough, a word the recogniser dropped) must not
            # leave the caller without a no-input reprompt
            self._arm_no_input()
        self._emit({"type": "caller_state", "state": event.new_state})

    def _on_agent_state(self, event: AgentStateChangedEvent) -> None:
        self._emit({"type": "bot_state", "state": event.new_state})

    def _on_transcribed(self, event: UserInputTranscribedEvent) -> None:
        self._emit({"type": "caller", "text": event.transcript, "final": event.is_final})
        detector = self.turn_detector
        if event.is_final and event.transcript and detector is not None and detector.hold:
            self._digits_complete(event.transcript)
        turn = self._open_turn
        if event.is_final and event.transcript and turn is not None and turn.transcript_at is None:
            turn.transcript_at = time.time()

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, llm.ChatMessage):
            return
        metrics = item.metrics
        if item.role == "user" and "stopped_speaking_at" in metrics:
            # livekit's own measurements of the caller's turn, taken when it was committed
            ended = metrics["stopped_speaking_at"]
            self._open_turn = TurnTiming(
                kind="speech",
                started=ended,
                transcript_at=ended + metrics.get("transcription_delay", 0.0),
                committed_at=ended + metrics.get("end_of_turn_delay", 0.0),
                ended_by=self._turn_ender(),
            )
        elif item.role == "assistant":
            if "tts_node_ttfb" in metrics and self.timings:
                # known only once the reply has played; it completes the turn's record
                last = self.timings[-1]
                if last.tts_first_byte_ms is None:
                    last.tts_first_byte_ms = metrics["tts_node_ttfb"] * 1000
                    if self.call.state.timings:
                        self.call.state.timings[-1].update(last.report())
            if item.text_content:
                self._emit(
                    {"type": "bot", "text": item.text_content, "interrupted": item.interrupted}
                )

    def _turn_ender(self) -> str:
        if self.turn_detector is None:
            return "timers"
        return "digits" if self.turn_detector.last_held else "detector"

    def _on_playback_started(self, event: io.PlaybackStartedEvent) -> None:
        turn = self._open_turn
        if turn is None:
            if not self.timings:
                turn = TurnTiming(kind="start", started=event.created_at)
            else:
                return
        self._open_turn = None
        turn.first_audio_at = event.created_at
        if self._last_brain is not None and self._last_brain[0] >= turn.started - 0.001:
            # the engine's work for this turn (the user message may be logged after it ran)
            turn.brain_started, turn.brain_done = self._last_brain
        turn.caller_text = self._last_caller_line() if turn.kind == "speech" else ""
        self.timings.append(turn)
        report = turn.report()
        logger.info(
            "turn timing",
            extra={
                "call_id": self.call.state.call_id,
                **{k: v for k, v in report.items() if k != "caller"},
            },
        )
        self.call.state.timings.append(report)
        self._emit({"type": "timing", **report})

    def _last_caller_line(self) -> str:
        for line in reversed(self.call.state.transcript):
            if line.role == "caller":
                return str(line.text)
        return ""

    def _on_close(self, event: CloseEvent) -> None:
        if event.error is not None:
            logger.warning(
                "the audio session closed on an error",
                extra={"call_id": self.call.state.call_id, "detail": str(event.error)},
            )
        self._finish("error" if event.error is not None else "closed")

    def _emit(self, event: CallEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            logger.warning("a call event listener failed", exc_info=True)

    def report(self) -> dict[str, Any]:
        state = self.call.state
        return {
            "call_id": state.call_id,
            "speech": self.speech.labels,
            "transcript": [{"role": line.role, "text": line.text} for line in state.transcript],
            "turns": [t.report() for t in self.timings],
            "ended": self.ended,
        }
