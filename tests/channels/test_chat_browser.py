"""The chat widget in real Chromium, embedded the way a company site embeds it: the snippet on a
page served from another origin, the launcher, the chat in its frame; typing, a menu button, the
answer; and a reload that resumes the same chat."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Server, chromium, needs_chromium, serve, wait_for
from tests.channels.test_chat import always_open_bot
from tests.queues.servers import free_port

pytestmark = [pytest.mark.timeout(300), needs_chromium]


@contextlib.contextmanager
def company_site(root: Path, bot_url: str, port: int) -> Iterator[str]:
    """A company's page with the snippet, served from its own origin (another loopback port,
    chosen before the bot server starts: it is in VOICEBOT_CHAT_ORIGINS)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Acme</title><link rel='icon' href='data:,'></head>"
        "<body><h1>Acme Telecom help</h1>"
        f"<script src='{bot_url}/chat/widget.js' data-title='Chat with Acme' async></script>"
        "</body></html>",
        encoding="utf-8",
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def chat_frame(page: Any) -> Any:
    return next((f for f in page.frames if "/chat?" in f.url), None)


def chat_state(page: Any) -> dict[str, Any]:
    frame = chat_frame(page)
    if frame is None:
        return {}
    with contextlib.suppress(Exception):
        state: dict[str, Any] = frame.evaluate("window.voicebotChat && window.voicebotChat.state")
        return state or {}
    return {}


def bot_said(page: Any, text: str) -> bool:
    return any(
        line["role"] == "bot" and text in line["text"]
        for line in chat_state(page).get("transcript", [])
    )


def test_the_widget_on_a_company_page_chats_with_buttons(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("widget")
    bot = always_open_bot(tmp / "bot")
    site_port = free_port()
    site_origin = f"http://127.0.0.1:{site_port}"
    settings = {"VOICEBOT_CHAT_ORIGINS": f'["{site_origin}"]', "VOICEBOT_STT": "pocketsphinx"}
    with (
        serve(
            Server,
            tmp,
            bot,
            settings=settings,
            unset=("VOICEBOT_DATABASE_URL", "VOICEBOT_REDIS_URL", "VOICEBOT_LLM_API_KEY"),
            healthy=("queues",),
            timeout=180,
        ) as server,
        company_site(tmp / "site", server.url, site_port) as site,
        chromium() as browser,
    ):
        page = browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        page.goto(site)
        launcher = page.locator("[data-voicebot-chat=launcher]")
        launcher.wait_for(timeout=15_000)
        assert launcher.inner_text() == "Chat with Acme"
        assert chat_frame(page) is None  # nothing loads before the customer asks
        launcher.click()

        def describe() -> str:
            return f"chat state {chat_state(page)}; problems {problems}{server.log()}"

        wait_for(lambda: bot_said(page, "How can I help"), 60, describe)
        assert launcher.get_attribute("aria-expanded") == "true"
        frame = page.frame_locator("#voicebot-chat-frame")
        assert frame.locator("#chat-title").inner_text() == "Chat with Acme"

        frame.locator("#chat-input").fill("main menu")
        frame.locator("#chat-input").press("Enter")
        wait_for(lambda: len(chat_state(page).get("buttons", [])) == 4, 30, describe)
        assert [b["label"] for b in chat_state(page)["buttons"]] == [
            "Billing",
            "Fault",
            "Opening hours",
            "Adviser",
        ]
        frame.get_by_role("button", name="Opening hours").click()
        wait_for(lambda: bot_said(page, "Monday to Friday"), 30, describe)
        state = chat_state(page)
        assert {"role": "customer", "text": "Opening hours"} in state["transcript"]
        assert state["buttons"] == [] and state["typing"] is None
        conversation = state["conversationId"]

        # a reload (or a dropped socket) resumes the same chat, with what was said
        page.reload()
        page.locator("[data-voicebot-chat=launcher]").click()
        wait_for(lambda: chat_state(page).get("conversationId") == conversation, 30, describe)
        wait_for(lambda: bot_said(page, "Monday to Friday"), 30, describe)
        assert not problems, problems
