"""The browser softphone end to end: ``voicebot serve`` for real, driven by headless Chromium.

Chromium's fake microphone plays a WAV made at test time by the test caller's voice (Festival's
HTS voice, else espeak-ng): silence while the greeting plays, then "I want to pay my bill". The page sends it over /phone/ws; the server
recognises it offline (pocketsphinx), runs the example bot's pay-bill flow and speaks the
reply with espeak-ng. The page's ``window.phoneState`` hook is read instead of scraping the
DOM. A second test throws bad input at the WebSocket itself and drops a call mid-word.

Needs /usr/bin/chromium (the system package; no browser is downloaded), espeak-ng and festival.
The server, the browser and the caller's voice come from tests/browser.py, as for the agent
desktop's browser test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.browser import (
    PCM_RATE,
    REPO,
    Page,
    Server,
    caller_speech,
    chromium,
    microphone_wav,
    needs_chromium,
    resample,
    serve,
    to_pcm16,
)
from voicebot.api.security import WS_MAX_BYTES

pytestmark = [pytest.mark.timeout(180), needs_chromium]


# --- the server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The example bot with its softphone: the speech models load before /health answers."""
    with serve(Server, tmp_path_factory.mktemp("softphone"), REPO, timeout=60) as running:
        yield running


# --- audio ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone: quiet through the greeting, the request, then quiet again."""
    return microphone_wav(tmp_path_factory.mktemp("mic") / "caller.wav", "I want to pay my bill")


# --- the browser test -----------------------------------------------------------------------


class Phone(Page):
    """The softphone page in Chromium, with every JavaScript error it raises."""

    hook = "window.phoneState"

    def describe(self) -> str:
        state = json.dumps(self.state(), indent=1)
        return f"phoneState={state} js_errors={self.js_errors}{self.server.log()}"

    def button(self, name: str) -> Any:
        return self.page.get_by_role("button", name=name, exact=True)

    def text(self, selector: str) -> str:
        text: str = self.page.locator(selector).inner_text()
        return text


@contextlib.contextmanager
def chromium_phone(server: Server, microphone: Path) -> Iterator[Phone]:
    with chromium(microphone) as browser:
        context = browser.new_context()
        context.grant_permissions(["microphone"], origin=server.url)
        yield Phone(context.new_page(), server)


def conversation_done(lines: list[dict[str, str]]) -> bool:
    """The greeting, the caller asking to pay, and after it the bot asking for the account."""
    said = [(line["role"], line["text"].lower()) for line in lines]
    if not any(role == "bot" and "thanks for calling" in text for role, text in said):
        return False
    asked = next(
        (i for i, (role, text) in enumerate(said) if role == "caller" and "bill" in text), None
    )
    return asked is not None and any(
        role == "bot" and "account" in text for role, text in said[asked + 1 :]
    )


def test_a_call_from_the_browser(server: Server, caller_wav: Path) -> None:
    started = time.monotonic()
    with chromium_phone(server, caller_wav) as phone:
        phone.page.goto(f"{server.url}/phone")
        assert phone.state()["connected"] is False
        phone.button("Call the bot").click()
        phone.wait_for(lambda: phone.state()["connected"], 10)
        assert phone.state()["callId"], phone.describe()

        phone.wait_for(lambda: conversation_done(phone.state()["transcript"]), 40)
        answered = time.monotonic() - started
        # Half a second of the bot's voice at least (the greeting alone is several).
        assert phone.state()["botAudioBytes"] > PCM_RATE, phone.describe()
        assert phone.button("Hang up").is_visible()
        assert "In call" in phone.text("#status")

        phone.button("Key 1").click()
        # The server echoes the keys it holds (masked): the press went there and back.
        phone.wait_for(lambda: phone.text("#keys") != "", 5)
        assert phone.js_errors == [], phone.describe()

        phone.button("Hang up").click()
        phone.wait_for(lambda: phone.state()["ended"], 5)
        final = phone.state()
        assert final["endReason"] == "hangup", phone.describe()
        assert "Call ended" in phone.text("#status")
        assert phone.button("Call the bot").is_visible()
        assert phone.js_errors == [], phone.describe()
    print(
        f"\nbrowser call: answered after {answered:.1f} s, {time.monotonic() - started:.1f} s "
        f"in all; transcript: {final['transcript']}"
    )


async def next_event(ws: Any, within: float) -> dict[str, Any] | None:
    """The next JSON event, skipping bot audio; None on timeout."""
    deadline = asyncio.get_running_loop().time() + within
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            message = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            return None
        if isinstance(message, str):
            event: dict[str, Any] = json.loads(message)
            return event
    return None


async def events_until(
    ws: Any, done: Callable[[list[dict[str, Any]]], bool], within: float
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + within
    while not done(events):
        left = deadline - asyncio.get_running_loop().time()
        event = await next_event(ws, left) if left > 0 else None
        if event is None:
            break
        events.append(event)
    return events


async def test_the_websocket_survives_bad_input(server: Server) -> None:
    def errors(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [event for event in events if event["type"] == "error"]

    async with connect(server.ws_url, max_size=None) as ws:
        ready = await next_event(ws, 10)
        assert ready is not None and ready["type"] == "ready", ready

        await ws.send("this is not json")
        await ws.send(json.dumps({"type": "teleport", "to": "mars"}))
        await ws.send(b"\x01\x02\x03")  # odd length: not 16-bit samples
        # Over the 1 s audio limit but under the socket's (WS_MAX_BYTES): answered, not fatal.
        await ws.send(bytes(200 * 1024))
        seen = await events_until(ws, lambda events: len(errors(events)) >= 4, 15)
        problems = errors(seen)
        assert len(problems) == 4, f"{seen}{server.log()}"
        assert all(isinstance(event.get("message"), str) and event["message"] for event in problems)
        assert not any(event["type"] == "ended" for event in seen), seen

        # Still a working call: let the greeting finish, then a key press gets an answer.
        if not any(event["type"] == "bot" for event in seen):
            seen += await events_until(
                ws, lambda events: any(event["type"] == "bot" for event in events), 20
            )
        await ws.send(json.dumps({"type": "dtmf", "digits": "1"}))
        after = await events_until(
            ws, lambda events: any(event["type"] == "bot" for event in events), 20
        )
        kinds = [event["type"] for event in after]
        assert "keys" in kinds and "bot" in kinds, (
            f"the key press went unanswered: {after}{server.log()}"
        )
        assert not any(kind in ("ended", "error") for kind in kinds), after

    # A message over the socket's limit is refused before it is read into memory: that one
    # socket closes with 1009 and a reason; the server goes on.
    async with connect(server.ws_url, max_size=None) as ws:
        ready = await next_event(ws, 10)
        assert ready is not None and ready["type"] == "ready", ready
        await ws.send(bytes(WS_MAX_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(100):
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value

    # A caller who vanishes mid-word: no hangup, no close handshake, just gone.
    speech, rate = await asyncio.to_thread(caller_speech, "I want to pay my bill")
    start = int(np.argmax(np.abs(speech) > 0.02))  # skip espeak's lead-in silence
    pcm = to_pcm16(resample(speech[start:], rate, PCM_RATE)[: PCM_RATE // 2])
    async with connect(server.ws_url) as ws:
        ready = await next_event(ws, 10)
        assert ready is not None and ready["type"] == "ready", ready
        chunk = PCM_RATE // 50 * 2  # 20 ms
        for offset in range(0, len(pcm), chunk):
            await ws.send(pcm[offset : offset + chunk])
            await asyncio.sleep(0.02)
        ws.transport.abort()

    health = await asyncio.to_thread(server.health)
    assert health["status"] == "ok", health
    async with connect(server.ws_url) as ws:
        ready = await next_event(ws, 10)
        assert ready is not None and ready["type"] == "ready", f"{ready}{server.log()}"
        await ws.send(json.dumps({"type": "hangup"}))

    # Every call was cleaned up, the dropped one included.
    deadline = time.monotonic() + 10
    while (calls := (await asyncio.to_thread(server.health))["audio"]["calls"]) != 0:
        assert time.monotonic() < deadline, f"{calls} calls still open{server.log()}"
        await asyncio.sleep(0.25)
    assert server.process.poll() is None, server.log()
