"""Runs the conversation tests in ``flows/tests/*.yaml`` through a real text-mode session.

Each test is one call: its caller, mocks, clock and queue statistics are applied, then its steps
are played in order. ``bot`` checks look at what the bot said since the previous caller event,
in order (a check consumes the line it matched); ``expect`` checks look at the call's state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from voicebot.agent.text_session import TextSession, TextTurn
from voicebot.brain.base import Brain
from voicebot.brain.llm import LlmBrain
from voicebot.brain.offline import OfflineBrain
from voicebot.engine.dialogue import DialogueEngine
from voicebot.engine.state import CallState
from voicebot.flows.errors import Position
from voicebot.flows.schema import (
    BotExpectation,
    ConversationTest,
    Expectation,
    HandoffExpectation,
    ModelRequestExpectation,
)
from voicebot.handoff.packet import CallerInfo, HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.runtime.bot import BotRuntime
from voicebot.speech.stack import SpeechStack
from voicebot.testing.audio_session import AudioTestSession
from voicebot.testing.chat_session import ChatTestSession
from voicebot.testing.scripted_model import RecordedRequest, ScriptedModel, ScriptedModelServer

# In conversation tests a scripted model that hangs is given up on after this long.
TEST_MODEL_TIMEOUT = 1.0


@dataclass
class TestOutcome:
    name: str
    passed: bool
    position: Position | None
    failure: str | None = None
    transcript: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    skipped: str | None = None  # why the test did not run (text-only, on audio)
    attempts: int = 1
    first_failure: str | None = None  # when it passed only on a later attempt


@dataclass
class _Heard:
    """What the bot said since the last caller event, and how fast its audio started."""

    text: str
    latency_ms: float | None = None


class _Failed(Exception):
    pass


@dataclass
class AudioOptions:
    """Conversation tests on audio: the loaded speech models and the test caller's voice."""

    speech: SpeechStack
    voice: str = "en-us"
    words_per_minute: int = 140
    # the caller's audio goes through a simulated phone line (voicebot/testing/telephone.py)
    telephone: bool = False


def _texts(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class ConversationTestRunner:
    """Tests without ``model`` steps run with the offline brain whatever is configured (they
    must not depend on a live model); tests with them run the LLM brain against a scripted
    model server started on first use."""

    def __init__(self, runtime: BotRuntime, *, audio: AudioOptions | None = None) -> None:
        """With ``audio``, each test's call runs through the audio path (speech synthesised
        for the caller, VAD, recogniser, TTS) and ``within_ms`` budgets apply."""
        self.runtime = runtime
        self.audio = audio
        # tests may run concurrently (``run_all(jobs=...)``), but the scripted model serves
        # one test's script at a time
        self._model_lock = asyncio.Lock()
        brain = runtime.brain
        self.offline: Brain = brain.offline if isinstance(brain, LlmBrain) else brain
        self._server: ScriptedModelServer | None = None
        self._llm_brain: LlmBrain | None = None

    async def run_all(
        self,
        tests: list[tuple[ConversationTest, Position | None]] | None = None,
        *,
        jobs: int = 1,
        retries: int = 0,
    ) -> list[TestOutcome]:
        """Run ``tests`` (default: all of the bot's), ``jobs`` at a time; outcomes in order.

        A failed test is run again up to ``retries`` times; one that then passes keeps its
        first failure, so a report can call it flaky (on audio, where a recogniser may hear
        the same line differently from one call to the next).
        """
        chosen = self.runtime.loaded.tests if tests is None else tests
        limit = asyncio.Semaphore(max(1, jobs))

        async def one(test: ConversationTest, position: Position | None) -> TestOutcome:
            async with limit:
                outcome = await self.run(test, position)
                first = outcome
                while not outcome.passed and outcome.attempts <= retries:
                    attempts = outcome.attempts + 1
                    outcome = await self.run(test, position)
                    outcome.attempts = attempts
                if outcome.passed and outcome is not first:
                    outcome.first_failure = first.failure
                return outcome

        try:
            return list(await asyncio.gather(*(one(t, p) for t, p in chosen)))
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._llm_brain is not None:
            await self._llm_brain.aclose()
            self._llm_brain = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _model(self) -> tuple[LlmBrain, ScriptedModel]:
        if self._server is None:
            self._server = ScriptedModelServer().start()
        if self._llm_brain is None:
            from voicebot.brain.llm import build_llm_brain

            offline = self.offline
            assert isinstance(offline, OfflineBrain)
            settings = self.runtime.settings.model_copy(
                update={"llm_timeout": TEST_MODEL_TIMEOUT, "llm_model": "scripted"}
            )
            self._llm_brain = build_llm_brain(
                settings,
                self.runtime.loaded.definition,
                offline,
                knowledge=self.runtime.knowledge,
                base_url=self._server.base_url,
            )
        return self._llm_brain, self._server.script

    async def run(self, test: ConversationTest, position: Position | None = None) -> TestOutcome:
        if self.audio is not None and test.text_only:
            return TestOutcome(
                test.name, passed=True, position=position, skipped=f"text only: {test.text_only}"
            )
        if self.audio is not None and test.channel == "chat":
            return TestOutcome(test.name, passed=True, position=position, skipped="a chat test")
        if test.uses_model:
            async with self._model_lock:
                return await self._run(test, position)
        return await self._run(test, position)

    async def _run(self, test: ConversationTest, position: Position | None) -> TestOutcome:
        started = time.perf_counter()
        fixed = test.now if test.now is None or test.now.tzinfo else test.now.replace(tzinfo=dt.UTC)
        script: ScriptedModel | None = None
        brain = self.offline
        if test.uses_model:
            brain, script = self._model()
            script.reset()
        engine = DialogueEngine(
            self.runtime.loaded.definition,
            clock=(lambda: fixed) if fixed is not None else self.runtime.engine.clock,
            llm=brain.uses_llm,
        )
        runtime = replace(
            self.runtime,
            engine=engine,
            brain=brain,
            handoffs=CallbackHandoffSink(lambda _: None),
        )
        caller = CallerInfo(**test.caller.model_dump())
        call = runtime.new_call(
            caller=caller,
            call_id=f"test-{test.name}",
            mocks=test.mocks,
            queues={k: v.model_dump() for k, v in test.queues.items()},
            offline_actions=True,
            language=test.language,
        )
        session: TextSession | AudioTestSession | ChatTestSession
        if test.channel == "chat":
            session = ChatTestSession(runtime, call)
        elif self.audio is not None:
            session = AudioTestSession(
                runtime,
                self.audio.speech,
                call,
                voice=self.audio.voice,
                words_per_minute=self.audio.words_per_minute,
                telephone=self.audio.telephone,
            )
        else:
            session = TextSession(call)
        transcript: list[str] = []
        outcome = TestOutcome(test.name, passed=True, position=position, transcript=transcript)
        try:
            turn = await session.start()
            pending = self._heard(turn, transcript)
            for i, step in enumerate(test.steps, start=1):
                where = f"step {i}"
                if step.user is not None:
                    transcript.append(f"caller: {step.user}")
                    turn = await session.say(step.user)
                    if turn.heard is not None:
                        transcript.append(f"heard:  {turn.heard or '(nothing)'}")
                    pending = self._heard(turn, transcript)
                elif step.dtmf is not None:
                    transcript.append(f"keys:   {step.dtmf}")
                    pending = self._heard(await session.press(step.dtmf), transcript)
                elif step.silence is not None:
                    transcript.append(f"(silence {step.silence:g}s)")
                    pending = self._heard(await session.silence(step.silence), transcript)
                elif step.choose is not None:
                    if not isinstance(session, ChatTestSession):  # the schema checks it
                        raise _Failed(f"{where}: 'choose' needs 'channel: chat'")
                    transcript.append(f"choose: {step.choose}")
                    pending = self._heard(await session.choose(step.choose), transcript)
                elif step.bot is not None:
                    if step.bot.buttons is not None:
                        _check_buttons(step.bot.buttons, session, where)
                    pending = self._check_bot(
                        step.bot, pending, where, timed=self.audio is not None
                    )
                elif step.expect is not None:
                    self._check_state(step.expect, call.state, where)
                    if step.expect.model is not None:
                        _check_model(step.expect.model, script, where)
                elif step.model is not None:
                    if script is None:  # pragma: no cover - uses_model guarantees a script
                        raise _Failed(f"{where}: no scripted model")
                    script.script(step.model)
            if script is not None and script.unscripted:
                raise _Failed(
                    f"the brain asked the model {script.unscripted} more time(s) than the test "
                    "scripted; add 'model' replies"
                )
            if script is not None and script.replies:
                raise _Failed(
                    f"{len(script.replies)} scripted model repl(ies) were never asked for"
                )
            if call.actions.unmocked:
                names = ", ".join(sorted(set(call.actions.unmocked)))
                raise _Failed(f"HTTP action(s) {names} ran without a mock; add them to 'mocks'")
        except _Failed as failure:
            outcome.passed = False
            outcome.failure = str(failure)
        except Exception as exc:  # a crash in a test is a failed test, not a dead runner
            outcome.passed = False
            outcome.failure = f"error: {type(exc).__name__}: {exc}"
        finally:
            await session.aclose()
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        return outcome

    @staticmethod
    def _heard(turn: TextTurn, transcript: list[str]) -> _Heard:
        transcript.extend(f"bot:    {line}" for line in turn.lines)
        if turn.reply.handoff is not None:
            packet = turn.reply.handoff
            transcript.append(
                f"(handoff to {packet.queue}, priority {packet.priority}: {packet.reason})"
            )
        if turn.reply.hangup is not None:
            transcript.append("(call ended)")
        return _Heard(" ".join(turn.lines), turn.latency_ms)

    @staticmethod
    def _check_bot(expect: BotExpectation, heard: _Heard, where: str, *, timed: bool) -> _Heard:
        """Check what the bot said since the last caller event; return what is left after it.

        A check consumes the text up to the end of what it matched, so two checks in a row
        look for two things said in that order. ``within_ms`` applies on audio (``timed``).
        """
        if timed and expect.within_ms is not None:
            if heard.latency_ms is None:
                raise _Failed(f"{where}: no bot audio was timed against within_ms")
            if heard.latency_ms > expect.within_ms:
                raise _Failed(
                    f"{where}: the bot's audio started {heard.latency_ms:.0f} ms after the "
                    f"caller finished, over within_ms {expect.within_ms}"
                )
        pending = heard.text
        contains = _texts(expect.contains)
        lowered = pending.lower()
        for text in _texts(expect.not_contains):
            if text.lower() in lowered:
                raise _Failed(f"{where}: the bot said {text!r}, which it should not: {pending!r}")
        end = 0
        missing = []
        for text in contains:
            found = lowered.find(text.lower())
            if found < 0:
                missing.append(repr(text))
            else:
                end = max(end, found + len(text))
        if expect.matches is not None:
            match = re.search(expect.matches, pending)
            if match is None:
                missing.append(f"a match for /{expect.matches}/")
            else:
                end = max(end, match.end())
        if missing:
            said = pending if pending else "nothing"
            raise _Failed(
                f"{where}: expected the bot to say {' and '.join(missing)}, but it said: {said}"
            )
        return _Heard(pending[end:], heard.latency_ms)

    @staticmethod
    def _check_state(expect: Expectation, state: CallState, where: str) -> None:
        problems: list[str] = []
        if expect.language is not None and state.language != expect.language:
            problems.append(f"language is {state.language!r}, expected {expect.language!r}")
        if expect.intent is not None and expect.intent not in (state.intent, state.last_intent):
            problems.append(
                f"intent is {state.last_intent or state.intent!r}, expected {expect.intent!r}"
            )
        if expect.flow is not None:
            active = [f.flow for f in state.stack]
            if expect.flow not in active and not (
                not active and state.flows_run[-1:] == [expect.flow]
            ):
                problems.append(
                    f"flow is {active or state.flows_run[-1:]}, expected {expect.flow!r}"
                )
        if expect.step is not None:
            reached = [label.rsplit(".", 1)[-1] for label in state.steps_reached[-1:]]
            if expect.step not in reached:
                problems.append(f"step is {reached}, expected {expect.step!r}")
        for slot, wanted in (expect.slots or {}).items():
            actual = state.slots.get(slot)
            if not _same(actual, wanted):
                shown = "****" if slot in state.sensitive else repr(actual)
                problems.append(f"slot {slot!r} is {shown}, expected {wanted!r}")
        if expect.handoff is not None:
            problems.extend(_check_handoff(expect.handoff, state.handoff))
        if expect.ended is not None and state.ended != expect.ended:
            problems.append(f"the call has {'' if state.ended else 'not '}ended")
        if expect.sources is not None:
            got = [s.file or s.title or s.id for s in state.last_sources]
            for source in expect.sources:
                if not any(source in str(g) for g in got):
                    problems.append(f"source {source!r} not among {got}")
        if problems:
            raise _Failed(f"{where}: " + "; ".join(problems))


def _check_buttons(wanted: list[str], session: object, where: str) -> None:
    """``bot: {buttons: [...]}``: the labels of the buttons a chat shows now, in order."""
    shown = [b.label for b in session.buttons] if isinstance(session, ChatTestSession) else []
    if [w.lower() for w in wanted] != [s.lower() for s in shown]:
        raise _Failed(f"{where}: expected the buttons {wanted}, but the chat shows {shown}")


def _check_handoff(expected: HandoffExpectation | bool, packet: HandoffPacket | None) -> list[str]:
    if isinstance(expected, bool):
        if expected and packet is None:
            return ["no handoff was made"]
        if not expected and packet is not None:
            return [f"a handoff to {packet.queue!r} was made"]
        return []
    if packet is None:
        return ["no handoff was made"]
    problems = []
    for text in _texts(expected.summary):
        if text.lower() not in packet.summary.lower():
            problems.append(f"handoff summary {packet.summary!r} does not contain {text!r}")
    for key in ("queue", "priority", "reason"):
        wanted = getattr(expected, key)
        actual = getattr(packet, key)
        if wanted is not None and (
            wanted != actual if key != "reason" else wanted.lower() not in actual.lower()
        ):
            problems.append(f"handoff {key} is {actual!r}, expected {wanted!r}")
    if expected.language is not None and packet.language != expected.language:
        problems.append(f"handoff language is {packet.language!r}, expected {expected.language!r}")
    missing = [s for s in expected.skills or [] if s not in packet.skills]
    if missing:
        problems.append(f"handoff skills {packet.skills} lack {missing}")
    return problems


def _same(actual: Any, wanted: Any) -> bool:
    if actual == wanted:
        return True
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return False
    if isinstance(actual, int | float) and isinstance(wanted, int | float):
        return abs(float(actual) - float(wanted)) < 1e-9
    return str(actual).strip().lower() == str(wanted).strip().lower()


def _check_model(
    expected: ModelRequestExpectation, script: ScriptedModel | None, where: str
) -> None:
    request: RecordedRequest | None = script.last if script is not None else None
    if request is None:
        raise _Failed(f"{where}: the model was not asked anything")
    problems = []
    offered = request.tools
    for tool in expected.tools:
        if tool not in offered:
            problems.append(f"tool {tool!r} was not offered (offered: {', '.join(offered)})")
    for tool in expected.not_tools:
        if tool in offered:
            problems.append(f"tool {tool!r} was offered")
    sent = request.text.lower()
    for text in _texts(expected.contains):
        if text.lower() not in sent:
            problems.append(f"the request does not contain {text!r}")
    for text in _texts(expected.not_contains):
        if text.lower() in sent:
            problems.append(f"the request contains {text!r}")
    if problems:
        raise _Failed(f"{where}: model request: " + "; ".join(problems))
