"""The step a transport runs at the end of a call (a phone transfer), while the line is open."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.audio.conftest import audio_settings
from tests.conftest import write_bot
from voicebot.agent.voice_call import VoiceCall
from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.audio.io import PacedAudioOutput, QueueAudioInput
from voicebot.runtime.bot import BotRuntime
from voicebot.runtime.call import Reply
from voicebot.speech.stack import SpeechStack, build_speech
from voicebot.testing.callers import default_caller_voice, silence, speak

BOT = """\
bot: { name: Tiny, greeting: "Hello. How can I help?" }
queues: { general: {} }
intents: { agent: { examples: [speak to an agent, a real person please] } }
flows:
  agent:
    trigger: agent
    steps:
      - handoff: general
        reason: caller asked
"""


async def test_before_hangup_runs_after_the_handoff_line_with_the_session_open(
    tmp_path: Path,
) -> None:
    write_bot(tmp_path, {"bot.yaml": BOT})
    settings = audio_settings(tmp_path, bot_dir=tmp_path)
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    try:
        await _handoff_call(runtime, speech)
    finally:
        await speech.aclose()
        await runtime.aclose()


async def _handoff_call(runtime: BotRuntime, speech: SpeechStack) -> None:
    audio_in = QueueAudioInput(label="t", sample_rate=CALL_SAMPLE_RATE)
    audio_out = PacedAudioOutput(
        label="t", sample_rate=CALL_SAMPLE_RATE, deliver=lambda _: None, speed=20
    )
    call = VoiceCall(runtime, speech, audio_in, audio_out)
    seen: list[Reply] = []
    spoken: list[str] = []

    async def before_hangup(reply: Reply) -> None:
        seen.append(reply)
        assert not call.ended
        handle = call.session.say("Putting you through now.", allow_interruptions=False)
        await handle.wait_for_playout()
        spoken.append("done")

    call.before_hangup = before_hangup
    await call.start()
    caller = [silence(1.5), speak("speak to an agent", voice=default_caller_voice()), silence(8.0)]
    clock = time.monotonic()
    try:
        for part in caller:
            for i in range(0, len(part), 320):
                if call.ended:
                    break
                audio_in.push(part[i : i + 320].tobytes())
                clock += 0.02
                await asyncio.sleep(max(0.0, clock - time.monotonic()))
        await asyncio.wait_for(call.wait_ended(), 10)
    finally:
        audio_in.close()
        await call.aclose("test over")
        await audio_out.aclose()
    assert len(seen) == 1 and seen[0].handoff is not None
    assert spoken == ["done"]
    said = [m.text_content for m in call.session.history.items if m.type == "message"]
    assert said[-2:] == [
        "Please hold while I put you through to a colleague.",
        "Putting you through now.",
    ]


SENSITIVE_BOT = """\
bot: { name: Tiny, greeting: "Hello.", start: verify }
queues: { general: {} }
flows:
  verify:
    steps:
      - collect: pin
        type: digits
        length: 4
        dtmf: true
        sensitive: true
        prompt: Please key in your PIN.
      - collect: reason
        type: text
        prompt: Thank you. What is the call about?
"""


async def test_the_call_says_before_each_answer_whether_it_is_sensitive(tmp_path: Path) -> None:
    """What a recording pauses on (VOICEBOT_RECORDING): told as each reply is made, so before
    the caller can say or key the answer."""
    write_bot(tmp_path, {"bot.yaml": SENSITIVE_BOT})
    settings = audio_settings(tmp_path, bot_dir=tmp_path)
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    audio_in = QueueAudioInput(label="t", sample_rate=CALL_SAMPLE_RATE)
    audio_out = PacedAudioOutput(
        label="t", sample_rate=CALL_SAMPLE_RATE, deliver=lambda _: None, speed=20
    )
    call = VoiceCall(runtime, speech, audio_in, audio_out)
    told: list[bool] = []

    async def listening(sensitive: bool) -> None:
        told.append(sensitive)

    call.on_listen = listening
    try:
        await call.start()
        deadline = time.monotonic() + 15
        while told != [True] and time.monotonic() < deadline:
            audio_in.push(silence(0.02).tobytes())
            await asyncio.sleep(0.02)
        assert told == [True]  # the PIN prompt: the next input is sensitive
        call.press_keys("1234")
        while len(told) < 2 and time.monotonic() < deadline:
            audio_in.push(silence(0.02).tobytes())
            await asyncio.sleep(0.02)
        assert told == [True, False]  # the next question is not
    finally:
        audio_in.close()
        await call.aclose("test over")
        await audio_out.aclose()
        await speech.aclose()
        await runtime.aclose()
