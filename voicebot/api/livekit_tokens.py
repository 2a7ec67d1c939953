"""LiveKit access tokens for agent desktops joining a phone caller's room.

A phone caller (SIP via LiveKit) waits in the room named by their call id. When an agent accepts
the call, their desktop asks ``POST /api/entries/{entry_id}/livekit`` for a token and joins that
room as ``agent-<agent id>``. The worker recognises the agent by that identity (and by the
``voicebot.role`` attribute), briefs them privately, then lets them speak.
"""

from __future__ import annotations

from datetime import timedelta

from livekit import api

from voicebot.config import Settings
from voicebot.queues.waiting import agent_identity

ROLE_ATTRIBUTE = "voicebot.role"
ENTRY_ATTRIBUTE = "voicebot.entry_id"
# Long enough to join with; once in the room, a participant's connection outlives its token.
TOKEN_TTL = timedelta(minutes=5)


class LiveKitNotConfigured(RuntimeError):
    """The API has no LiveKit URL, key or secret."""


def mint_agent_token(
    settings: Settings,
    *,
    room: str,
    agent_id: int,
    agent_name: str,
    entry_id: str,
    ttl: timedelta = TOKEN_TTL,
) -> str:
    """A token that lets the agent into ``room``, hearing but not yet heard.

    ``can_publish`` is False on purpose: the worker first plays the agent a private spoken
    briefing, and only then grants publishing (UpdateParticipant) and introduces them to the
    caller. Were the agent able to publish from the start, the caller would hear them before
    being put through. Data messages are off too: the desktop has nothing to send to the room.
    """
    secret = settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else ""
    if not (settings.livekit_api_key and secret):
        raise LiveKitNotConfigured("LIVEKIT_API_KEY and LIVEKIT_API_SECRET are not set")
    token = (
        api.AccessToken(settings.livekit_api_key, secret)
        .with_identity(agent_identity(agent_id))
        .with_name(agent_name)
        .with_attributes({ROLE_ATTRIBUTE: "agent", ENTRY_ATTRIBUTE: entry_id})
        .with_ttl(ttl)
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=False,
                can_subscribe=True,
                can_publish_data=False,
            )
        )
    )
    return token.to_jwt()
