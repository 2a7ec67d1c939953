"""Suggestions reach the desktop of the agent holding the contact, and no other: a real
``voicebot serve`` on PostgreSQL, two agents' desktops on real WebSockets, and customer lines
published on the event bus as the chat relay (``chat_message``) and a voice call's live
transcript (``caller_transcript``) publish them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.assist.desks import contact_centre

pytestmark = pytest.mark.timeout(300)


async def test_lines_of_a_held_contact_reach_its_agent_only(tmp_path: Path) -> None:
    async with contact_centre(tmp_path, agents=2) as centre:
        alice, bob = centre.desks
        await alice.send({"type": "state", "state": "available"})
        entry_id = await centre.hand_to(alice)
        await bob.send({"type": "state", "state": "available"})  # free, and not holding it

        said = time.time()
        await centre.publish(
            {
                "type": "caller_transcript",
                "entry_id": entry_id,
                "text": "do you charge me for sending the bill in the post",
                "at": said,
            }
        )
        [line] = await alice.wait_for(lambda: alice.of("transcript"), what="transcript")
        assert line["role"] == "caller" and line["entry_id"] == entry_id
        assert line["text"] == "do you charge me for sending the bill in the post"
        [assist] = await alice.wait_for(lambda: alice.of("assist"), what="assist")
        assert assist["entry_id"] == entry_id and assist["media"] == "voice"
        assert assist["for_text"] == line["text"] and assist["said_at"] == pytest.approx(said)
        assert assist["passages"][0]["file"] == "paper-bills.md"
        assert assist["replies"] and "£1.50" in assist["replies"][0]["text"]
        assert assist["computed_ms"] >= 0

        # an agent's own line is no question to answer; the customer's next one is
        await centre.publish(
            {"type": "chat_message", "entry_id": entry_id, "sender": "agent", "text": "hello"}
        )
        await centre.publish(
            {
                "type": "chat_message",
                "entry_id": entry_id,
                "sender": "customer",
                "text": "what does the orange light on my hub mean",
                "at": "2026-01-05T10:00:00+00:00",
            }
        )
        await alice.wait_for(lambda: len(alice.of("assist")) == 2, what="second assist")
        second = alice.of("assist")[1]
        assert second["for_text"] == "what does the orange light on my hub mean"
        assert second["passages"][0]["file"] == "router-lights.html"
        assert len(alice.of("transcript")) == 1  # a chat line is shown by the chat pane
        await bob.send({"type": "ping"})
        await bob.wait_for(lambda: bob.of("pong"), what="pong")
        assert not bob.of("assist") and not bob.of("transcript")

        # the desktop's report of the suggestion drawn: the latency is kept for that agent
        rendered = (said + 0.25) * 1000
        refused = await centre.post_as(
            bob, "/api/assist/rendered", {"line_id": assist["line_id"], "rendered_at": rendered}
        )
        assert refused.status_code == 404, refused.text
        reported = await centre.post_as(
            alice, "/api/assist/rendered", {"line_id": assist["line_id"], "rendered_at": rendered}
        )
        assert reported.status_code == 200, reported.text
        assert reported.json()["latency_ms"] == pytest.approx(250, abs=1)
        figures = (await centre.http.get("/api/assist/latency")).json()
        assert figures["count"] == 1 and figures["p95_ms"] == pytest.approx(250, abs=1)


async def test_lines_of_a_contact_nobody_holds_are_dropped(tmp_path: Path) -> None:
    async with contact_centre(tmp_path, agents=1) as centre:
        [alice] = centre.desks
        await alice.send({"type": "state", "state": "available"})
        await centre.publish(
            {"type": "caller_transcript", "entry_id": "no-such-entry", "text": "paper bills"}
        )
        entry_id = await centre.hand_to(alice)
        await centre.publish(
            {"type": "caller_transcript", "entry_id": entry_id, "text": "hello"}  # small talk
        )
        await centre.publish(
            {"type": "caller_transcript", "entry_id": entry_id, "text": "can I pay by cheque"}
        )
        await alice.wait_for(lambda: alice.of("assist"), what="assist")
        # both lines of the held call were shown; only the question got a suggestion
        assert [m["text"] for m in alice.of("transcript")] == ["hello", "can I pay by cheque"]
        [assist] = alice.of("assist")
        assert assist["for_text"] == "can I pay by cheque"
