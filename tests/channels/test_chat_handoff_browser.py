"""From the chat widget to an agent's desktop, in real Chromium (``voicebot serve`` for real).

A customer on /chat asks the example bot for a person; the agent's desktop, in a second page,
gets the chat offer marked as a chat with its screen pop, and accepts it; the customer sees
the agent join; they write to each other both ways (the customer's typing shows on the
desktop); the assist hook puts a reply in the box without sending it; the agent ends the chat
and wraps it up, and the customer is told. Both pages are read through their state hooks
(``window.voicebotChat.state`` on the widget, ``window.desktop.chats`` on the desktop) and
what the agent sees through the DOM.

Needs /usr/bin/chromium (the system package; no browser is downloaded); no speech.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Page, chromium, needs_chromium, serve
from tests.channels.test_chat import always_open_bot
from tests.queues.test_desktop_browser import PASSWORD, TOKEN, Desk, DesktopServer

pytestmark = [pytest.mark.timeout(300), needs_chromium]


class Widget(Page):
    """The customer's chat page."""

    hook = "window.voicebotChat && window.voicebotChat.state"

    def describe(self) -> str:
        try:
            shown = json.dumps(self.state(), indent=1, default=str)[:3000]
        except Exception as exc:  # the page itself is gone
            shown = f"(unreadable: {exc})"
        return f"[widget] state={shown} js_errors={self.js_errors}{self.server.log()}"

    def lines(self, role: str) -> list[str]:
        return [line["text"] for line in self.state()["transcript"] if line["role"] == role]

    def write(self, text: str) -> None:
        self.page.locator("#chat-input").fill(text)
        self.page.locator("#chat-send").click()


def chats(desk: Desk) -> dict[str, Any]:
    value: dict[str, Any] = desk.page.evaluate(
        "() => JSON.parse(JSON.stringify(window.desktop.chats || {}))"
    )
    return value


def only_chat(desk: Desk) -> dict[str, Any]:
    held = list(chats(desk).values())
    assert len(held) == 1, desk.describe()
    return held[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DesktopServer]:
    # With the bot's runtime (the chat needs it, as the softphone does), on SQLite.
    tmp = tmp_path_factory.mktemp("chat-handoff")
    settings = {
        "VOICEBOT_API_TOKEN": TOKEN,
        "VOICEBOT_OFFER_TIMEOUT": "30",
        "VOICEBOT_WRAP_UP_SECONDS": "60",
        "VOICEBOT_STT": "pocketsphinx",
    }
    with serve(
        DesktopServer,
        tmp,
        always_open_bot(tmp / "bot"),
        settings=settings,
        unset=("VOICEBOT_DATABASE_URL", "VOICEBOT_REDIS_URL", "VOICEBOT_LLM_API_KEY"),
        healthy=("queues",),
        timeout=180,
    ) as running:
        yield running


def test_a_customer_in_the_widget_reaches_an_agent_on_the_desktop(
    server: DesktopServer, tmp_path: Path
) -> None:
    agent = server.add_agent({"general": 5})
    with chromium() as browser:
        desk = Desk(browser.new_context().new_page(), server, "desktop").open()
        desk.sign_in(agent["username"], PASSWORD)
        desk.signed_in(agent)
        desk.go_available()
        assert not desk.visible("#chats"), desk.describe()

        # Its own context: the customer shares no cookie with the agent.
        widget = Widget(browser.new_context().new_page(), server)
        widget.page.goto(f"{server.url}/chat")
        widget.wait_for(lambda: widget.state()["phase"] == "bot" and widget.lines("bot"), 30)
        widget.write("I want to talk to a person")
        widget.wait_for(lambda: widget.state()["phase"] == "queued", 30)

        # The offer: a chat, with the bot's screen pop, beside an idle call panel.
        desk.wait_for(lambda: len(chats(desk)) == 1, 15)
        offer = only_chat(desk)
        assert offer["status"] == "offered", desk.describe()
        pane = desk.page.locator(f".chat-pane[data-entry-id='{offer['entryId']}']")
        assert pane.locator(".chat-phase").text_content() == "Incoming chat", desk.describe()
        assert pane.locator(".badge.kind").text_content() == "Chat", desk.describe()
        assert pane.locator(".chat-pop").is_visible(), desk.describe()
        facts = pane.locator(".facts").text_content() or ""
        assert "Web chat" in facts and "general" in facts, facts
        assert pane.locator(".history").is_visible(), desk.describe()  # the last contacts
        assert desk.state()["state"] == "available" and desk.phase() == "idle", desk.describe()
        assert desk.visible("#chats") and desk.text("#chats-count") == "0 / 3", desk.describe()

        pane.locator("[data-action='accept']").click()
        desk.wait_for(lambda: only_chat(desk)["status"] == "connected", 15)
        # The customer is told who joined.
        widget.wait_for(lambda: widget.state()["agent"] is not None, 15)
        assert widget.state()["phase"] == "agent", widget.describe()
        assert any(agent["display_name"] in line for line in widget.lines("system")), (
            widget.describe()
        )
        # The pane opens with the conversation so far: the bot's part and the join.
        held = only_chat(desk)
        customer_lines = [line["text"] for line in held["lines"] if line["role"] == "caller"]
        assert "I want to talk to a person" in customer_lines, desk.describe()
        assert any(line["role"] == "bot" for line in held["lines"]), desk.describe()
        desk.wait_for(
            lambda: any(
                line["role"] == "event" and "joined the chat" in line["text"]
                for line in only_chat(desk)["lines"]
            ),
            10,
        )
        assert desk.state()["state"] == "available", desk.describe()  # no voice state change
        assert desk.text("#chats-count") == "1 / 3", desk.describe()

        # The agent writes; the customer reads it.
        pane.locator(".chat-input").fill("Hello, I'm looking at your account now.")
        pane.locator("[data-action='send']").click()
        widget.wait_for(
            lambda: "Hello, I'm looking at your account now." in widget.lines("agent"), 15
        )
        desk.wait_for(
            lambda: any(
                line["role"] == "agent" and line["text"].startswith("Hello, I'm looking")
                for line in only_chat(desk)["lines"]
            ),
            10,
        )
        assert pane.locator(".chat-input").input_value() == "", desk.describe()

        # The customer types (the desktop shows it), then writes back.
        widget.page.locator("#chat-input").press_sequentially("Thank", delay=50)
        desk.wait_for(lambda: only_chat(desk)["typing"], 10)
        assert pane.locator(".chat-typing").is_visible(), desk.describe()
        widget.page.locator("#chat-input").fill("Thank you, my bill doubled.")
        widget.page.locator("#chat-send").click()
        desk.wait_for(
            lambda: any(
                line["role"] == "caller" and line["text"] == "Thank you, my bill doubled."
                for line in only_chat(desk)["lines"]
            ),
            15,
        )

        # What the assist module calls: the reply is in the box, not sent.
        sent_before = len(widget.lines("agent"))
        inserted = desk.page.evaluate(
            "id => window.insertIntoChat(id, 'Your bill doubled because the discount ended.')",
            held["entryId"],
        )
        assert inserted is True, desk.describe()
        assert pane.locator(".chat-input").input_value() == (
            "Your bill doubled because the discount ended."
        ), desk.describe()
        assert desk.page.evaluate("() => window.insertIntoChat('no-such-chat', 'x')") is False
        desk.page.wait_for_timeout(500)
        assert len(widget.lines("agent")) == sent_before, widget.describe()
        pane.locator(".chat-input").press("Enter")  # Enter sends
        widget.wait_for(
            lambda: "Your bill doubled because the discount ended." in widget.lines("agent"), 15
        )

        # Too long: said on the desktop, nothing sent.
        pane.locator(".chat-input").evaluate("(box, text) => { box.value = text; }", "z" * 2001)
        pane.locator("[data-action='send']").click()
        desk.wait_for(lambda: "at most 2000" in only_chat(desk)["error"], 5)
        pane.locator(".chat-input").fill("")

        # The agent ends the chat: the customer is told; the pane's wrap-up, then it closes.
        pane.locator("[data-action='end']").click()
        desk.wait_for(lambda: only_chat(desk)["status"] == "wrap_up", 10)
        widget.wait_for(lambda: widget.state()["closedBy"] == "agent", 15)
        assert widget.state()["phase"] == "closed", widget.describe()
        assert pane.locator(".chat-wrapup").is_visible(), desk.describe()
        assert desk.state()["state"] == "available", desk.describe()
        pane.locator(".chat-wrapup select").select_option("resolved")
        pane.locator(".chat-wrapup textarea").fill("explained the discount")
        pane.locator("[data-action='wrap-up']").click()
        desk.wait_for(lambda: chats(desk) == {}, 10)
        assert not desk.visible("#chats"), desk.describe()

        assert desk.js_errors == [], desk.describe()
        assert widget.js_errors == [], widget.describe()
    entry_id = held["entryId"]
    assert server.dispositions(entry_id) == [(agent["id"], "resolved", "explained the discount")]
