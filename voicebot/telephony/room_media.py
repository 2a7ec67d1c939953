"""The caller's LiveKit room while they wait and while an agent is brought in (``CallerMedia``).

The bot publishes two audio tracks through livekit-agents' ``BackgroundAudioPlayer``:

- the *room* track: hold music, the wait updates and the introduction. Only the caller may
  subscribe to it until the agent is admitted, so a joining agent does not hear the hold music
  over their briefing;
- the *briefing* track: only the agent may subscribe to it, so the caller never hears what is
  said about them.

Who may subscribe to which track is the bot's track subscription permissions, which self-hosted
LiveKit enforces in the SFU. The agent's own microphone is held back by their token (the API
mints it without publish permission) until ``let_speak`` grants it through the room service's
``UpdateParticipant``: until then the caller cannot hear the agent either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from livekit import api, rtc
from livekit.agents import tts as agents_tts
from livekit.agents.voice.background_audio import AudioConfig, BackgroundAudioPlayer, PlayHandle

from voicebot.audio.files import CALL_SAMPLE_RATE
from voicebot.audio.hold import hold_music
from voicebot.speech.frames import speech_frames

logger = logging.getLogger("voicebot.telephony.room")

MIXER_RATE = 48000  # BackgroundAudioPlayer mixes at 48 kHz mono
_FRAME_MS = 20


async def generated_hold_music(rate: int = MIXER_RATE) -> AsyncIterator[rtc.AudioFrame]:
    """The generated tune of the softphone's hold, looped for ever (until stopped)."""
    pcm = hold_music()
    resampler = rtc.AudioResampler(CALL_SAMPLE_RATE, rate, num_channels=1)
    per_frame = CALL_SAMPLE_RATE * _FRAME_MS // 1000
    frames: list[rtc.AudioFrame] = []
    for start in range(0, len(pcm) // 2 - per_frame + 1, per_frame):
        chunk = pcm[start * 2 : (start + per_frame) * 2]
        frames.extend(resampler.push(rtc.AudioFrame(chunk, CALL_SAMPLE_RATE, 1, per_frame)))
    frames.extend(resampler.flush())
    while True:
        for frame in frames:
            yield frame


class RoomMedia:
    """``CallerMedia`` on a LiveKit room (see voicebot/queues/waiting.py)."""

    def __init__(
        self,
        room: rtc.Room,
        lkapi: api.LiveKitAPI,
        engine: agents_tts.TTS[Any],
        *,
        caller: str,
        hang_up: Callable[[], Awaitable[Any]],
        music: Path | None = None,
    ) -> None:
        self.room = room
        self.lkapi = lkapi
        self.engine = engine
        self.caller = caller
        self._hang_up = hang_up
        self.music = music
        self._room_player = BackgroundAudioPlayer()
        self._briefing_player = BackgroundAudioPlayer()
        self._hold: PlayHandle | None = None
        self._holding = False
        self._admitted: str | None = None
        self._briefed: str | None = None
        self._caller_tracks: list[str] = []  # more of the bot's tracks the caller hears
        self._started = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._room_player.start(room=self.room)
        await self._briefing_player.start(room=self.room)
        self._started = True
        self._apply_permissions()

    async def aclose(self) -> None:
        for player in (self._room_player, self._briefing_player):
            with contextlib.suppress(Exception):
                await player.aclose()

    def _apply_permissions(self) -> None:
        """Caller: the room track. The agent being briefed: the briefing track; the agent
        admitted: the room track. Nobody else hears the bot."""
        room_track = self._room_player.publication
        briefing_track = self._briefing_player.publication
        allowed: dict[str, list[str]] = {}
        caller_tracks = [room_track.sid] if room_track is not None else []
        allowed[self.caller] = caller_tracks + self._caller_tracks
        if self._briefed is not None and briefing_track is not None:
            allowed.setdefault(self._briefed, []).append(briefing_track.sid)
        if self._admitted is not None and room_track is not None:
            allowed.setdefault(self._admitted, []).append(room_track.sid)
        self.room.local_participant.set_track_subscription_permissions(
            allow_all_participants=False,
            participant_permissions=[
                rtc.ParticipantTrackPermission(participant_identity=who, allowed_track_sids=sids)
                for who, sids in allowed.items()
                if sids
            ],
        )

    # -- CallerMedia ---------------------------------------------------------------------------

    async def hold(self, on: bool) -> None:
        self._holding = on
        if on and self._hold is None:
            source: Any = (
                AudioConfig(str(self.music), volume=0.6)
                if self.music is not None
                else generated_hold_music()
            )
            self._hold = self._room_player.play(source, loop=self.music is not None)
        elif not on and self._hold is not None:
            self._hold.stop()
            self._hold = None

    async def say(self, text: str) -> None:
        async with self._lock:
            holding = self._holding
            if holding:
                await self.hold(False)
            try:
                speech = speech_frames(self.engine, text, rate=MIXER_RATE)
                handle = self._room_player.play(speech)
                try:
                    await handle.wait_for_playout()
                except asyncio.CancelledError:
                    handle.stop()  # cut short (an agent is coming): not left playing
                    raise
            finally:
                if holding:
                    await self.hold(True)

    async def brief(self, text: str, agent: str) -> None:
        if self._admitted != agent:  # an earlier agent who dropped out hears nothing more
            self._admitted = None
        self._briefed = agent
        self._apply_permissions()
        speech = speech_frames(self.engine, text, rate=MIXER_RATE)
        await self._briefing_player.play(speech).wait_for_playout()

    def allow_caller(self, track_sid: str) -> None:
        """Let the caller hear one more of the bot's tracks (the bridge from a phone agent)."""
        self._caller_tracks.append(track_sid)
        self._apply_permissions()

    async def admit(self, agent: str) -> None:
        self._admitted = agent
        self._apply_permissions()

    async def let_speak(self, agent: str) -> None:
        await self.lkapi.room.update_participant(
            api.UpdateParticipantRequest(
                room=self.room.name,
                identity=agent,
                permission=api.ParticipantPermission(
                    can_subscribe=True,
                    can_publish=True,
                    can_publish_data=False,
                    can_publish_sources=[api.TrackSource.MICROPHONE],
                ),
            )
        )

    async def leave(self) -> None:
        await self.hold(False)
        self._briefed = None
        self._apply_permissions()

    async def hang_up(self) -> None:
        await self._hang_up()
