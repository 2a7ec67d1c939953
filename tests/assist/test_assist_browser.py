"""The assist panel in the real desktop page (system Chromium): the caller's live transcript,
the passages and the suggested replies for what they said, and the page's report that the
suggestion was drawn. The server is a real ``voicebot serve`` (tests/assist/desks.py); the
customer's lines are published on its event bus as a call's live transcript publishes them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from tests.assist.desks import Centre, contact_centre
from tests.browser import CHROMIUM, chromium_args, needs_chromium
from tests.queues.packets import make_packet

pytestmark = [pytest.mark.timeout(300), needs_chromium]


async def state(page: Page) -> Any:
    return await page.evaluate("() => JSON.parse(JSON.stringify(window.desktopAssist))")


async def open_desktop(centre: Centre, page: Page, entry_id: str) -> None:
    """The agent's page, signed in with the session of the agent holding ``entry_id``."""
    await page.context.add_cookies(
        [{"name": "voicebot_session", "value": centre.desks[0].cookie, "url": centre.node.url}]
    )
    await page.goto(f"{centre.node.url}/desktop")
    await page.wait_for_function(
        "id => window.voicebotDesktop && window.voicebotDesktop.current()"
        " && window.voicebotDesktop.current().entry_id === id && window.desktopAssist",
        arg=entry_id,
        timeout=30_000,
    )


async def test_the_panel_shows_the_transcript_and_the_suggestions(tmp_path: Path) -> None:
    async with contact_centre(tmp_path, agents=1) as centre:
        desk = centre.desks[0]
        await desk.send({"type": "state", "state": "available"})
        entry_id = await centre.hand_to(desk)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=False, args=chromium_args()
            )
            try:
                page = await (await browser.new_context()).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await open_desktop(centre, page, entry_id)
                panel = page.locator("#assist")
                assert await panel.is_hidden()  # nothing said yet

                said = time.time()
                await centre.publish(
                    {
                        "type": "caller_transcript",
                        "entry_id": entry_id,
                        "text": "what does the orange light on my hub mean",
                        "at": said,
                    }
                )
                await page.wait_for_function(
                    "() => window.desktopAssist.rendered.length > 0", timeout=60_000
                )
                shown = await state(page)
                contact = shown["contacts"][entry_id]
                assert [line["text"] for line in contact["transcript"]] == [
                    "what does the orange light on my hub mean"
                ]
                [suggestion] = contact["suggestions"]
                [drawn] = shown["rendered"]
                assert drawn["line_id"] == suggestion["line_id"]
                assert drawn["latency_ms"] > 0 and drawn["said_at"] == pytest.approx(said * 1000)

                # what the agent sees: the caller's words, the reply, the passage's title
                assert await panel.is_visible()
                transcript = page.locator("#assist .assist-transcript li")
                assert "orange light" in await transcript.inner_text()
                reply = page.locator("#assist .assist-reply .assist-text").first
                assert "orange" in (await reply.inner_text()).lower()
                title = page.locator("#assist .assist-passages .assist-title").first
                assert "hub lights" in (await title.inner_text()).lower()
                # a call has no chat box to insert into
                assert await page.locator("#assist .assist-reply button").count() == 0

                # the page reports the suggestion drawn (after it recorded it): the server
                # counts it
                deadline = time.monotonic() + 10
                while (figures := (await centre.http.get("/api/assist/latency")).json())[
                    "count"
                ] < 1 and time.monotonic() < deadline:
                    await page.wait_for_timeout(100)
                assert figures["count"] == 1, figures
                assert errors == []
            finally:
                await browser.close()


async def test_insert_puts_a_suggested_reply_in_the_chat_box(tmp_path: Path) -> None:
    async with contact_centre(tmp_path, agents=1) as centre:
        desk = centre.desks[0]
        await desk.send({"type": "state", "state": "available"})
        queued = await centre.http.post(
            "/api/handoffs", json=make_packet("general", channel="chat").model_dump(mode="json")
        )
        assert queued.status_code == 201, queued.text
        entry_id = queued.json()["entry_id"]
        await desk.wait_for(lambda: desk.of("chat_offer"), what="chat offer")
        await desk.send({"type": "accept", "entry_id": entry_id})
        await desk.wait_for(lambda: desk.of("chat_connected"), what="chat connected")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=False, args=chromium_args()
            )
            try:
                page = await (await browser.new_context()).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.context.add_cookies(
                    [{"name": "voicebot_session", "value": desk.cookie, "url": centre.node.url}]
                )
                await page.goto(f"{centre.node.url}/desktop")
                await page.wait_for_function(
                    "id => window.desktop && window.desktop.chats"
                    " && window.desktop.chats[id] && window.desktop.chats[id].status"
                    " === 'connected' && window.desktopAssist",
                    arg=entry_id,
                    timeout=30_000,
                )
                await centre.publish(
                    {
                        "type": "chat_message",
                        "entry_id": entry_id,
                        "call_id": queued.json().get("call_id"),
                        "sender": "customer",
                        "text": "can I still pay you with a cheque",
                        "at": time.time(),
                    }
                )
                await page.wait_for_function(
                    "() => window.desktopAssist.rendered.length > 0", timeout=60_000
                )
                [suggestion] = (await state(page))["contacts"][entry_id]["suggestions"]
                first = suggestion["replies"][0]["text"]
                insert = page.locator("#assist .assist-reply").first.get_by_role(
                    "button", name="Insert"
                )
                await insert.click()
                chat = await page.evaluate(
                    "id => JSON.parse(JSON.stringify(window.desktop.chats[id]))", entry_id
                )
                assert chat["input"] == first, chat
                assert (await state(page))["inserted"] == [{"entry_id": entry_id, "text": first}]
                # put in the box, not sent: the chat has no agent line
                assert not any(line.get("role") == "agent" for line in chat.get("lines", []))
                assert errors == []
            finally:
                await browser.close()
