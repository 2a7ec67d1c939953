"""The softphone's side of waiting and of the warm transfer (``SoftphoneMedia``, ``CallerLeg``):
who hears what, with real speech. The whole journey in a browser is in test_desktop_browser.py."""

from __future__ import annotations

import asyncio
from typing import Any

from voicebot.api.call_legs import CallerLeg, CallLegs, SoftphoneMedia
from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.speech.tts import EspeakTTS

SECOND = CALL_SAMPLE_RATE * 2


class Ends:
    def __init__(self) -> None:
        self.caller: list[Any] = []
        self.agent: list[bytes] = []

    def caller_audio(self) -> int:
        return sum(len(x) for x in self.caller if isinstance(x, bytes))

    def agent_audio(self) -> int:
        return sum(len(x) for x in self.agent)


def wired() -> tuple[CallerLeg, SoftphoneMedia, Ends, list[tuple[str, bool]]]:
    ends = Ends()
    leg = CallerLeg("entry-1", ends.caller.append)
    seen: list[tuple[str, bool]] = []
    leg.on_agent = lambda identity, present: seen.append((identity, present))

    async def hang_up() -> None:
        return None

    return leg, SoftphoneMedia(leg, EspeakTTS(), hang_up=hang_up), ends, seen


async def test_the_briefing_reaches_the_agent_only_and_nobody_hears_the_other_before() -> None:
    leg, media, ends, seen = wired()
    leg.attach_agent(7, ends.agent.append)
    assert seen == [("agent-7", True)]
    leg.caller_audio(b"\x01\x00" * 160)
    leg.agent_audio(b"\x02\x00" * 160)
    assert ends.agent == [] and ends.caller == []  # not bridged yet
    await media.brief("General call. Ann, about a bill.", "agent-7")
    assert ends.agent_audio() > SECOND // 2 and ends.caller == []
    briefed = ends.agent_audio()
    await media.say("You are number one in the queue.")  # before the introduction
    assert ends.agent_audio() == briefed and ends.caller_audio() > SECOND // 2
    await media.admit("agent-7")
    heard = ends.caller_audio()
    await media.say("I'm putting you through to Alice now.")  # both hear the introduction
    assert ends.agent_audio() > briefed and ends.caller_audio() > heard
    await media.let_speak("agent-7")
    assert {"type": "agent", "state": "connected"} in ends.caller
    leg.caller_audio(b"\x01\x00" * 160)
    leg.agent_audio(b"\x02\x00" * 160)
    assert ends.agent[-1] == b"\x01\x00" * 160 and ends.caller[-1] == b"\x02\x00" * 160
    leg.detach_agent(ends.agent.append)  # another connection's callback: not this one
    assert seen == [("agent-7", True)]
    to_agent = leg.to_agent
    assert to_agent is not None
    leg.detach_agent(to_agent)
    assert seen[-1] == ("agent-7", False) and not leg.bridged


async def test_hold_music_plays_in_real_time_and_stops() -> None:
    _leg, media, ends, _seen = wired()
    await media.hold(True)
    await asyncio.sleep(1.0)
    await media.hold(False)
    played = ends.caller_audio()
    # about a second, plus the 0.2 s sent ahead so playback never runs dry
    assert 0.9 * SECOND < played < 1.5 * SECOND
    await asyncio.sleep(0.3)
    assert ends.caller_audio() == played


def test_queue_events_reach_the_leg_of_their_entry() -> None:
    legs = CallLegs()
    leg, _media, _ends, _seen = wired()
    got: list[dict[str, Any]] = []
    leg.on_event = got.append
    legs.add(leg)
    legs.on_event({"type": "connected", "entry_id": "entry-1"})
    legs.on_event({"type": "connected", "entry_id": "someone-else"})
    assert got == [{"type": "connected", "entry_id": "entry-1"}]
    legs.remove(leg)
    assert legs.get("entry-1") is None
