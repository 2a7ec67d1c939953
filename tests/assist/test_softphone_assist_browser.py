"""The softphone caller's live transcript and suggestions on the agent's desktop, end to end:
``voicebot serve`` with the softphone, both pages in Chromium (tests/queues/test_desktop_browser.py
runs the same journey for the audio bridge). The fake microphone asks the bot for a person, then,
once the agent is put through, asks about paying a bill: those words reach the desktop's assist
panel through the bot's own recogniser, with the knowledge base's suggestions for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser import MIC_RATE, caller_speech, chromium, needs_chromium, resample, write_wav
from tests.queues.test_desktop_browser import (
    CALLER_NUMBER,
    PASSWORD,
    Desk,
    DesktopServer,
    Phone,
    add_agent_with_the_cli,
    always_open_bot,
    run_server,
)

pytestmark = [pytest.mark.timeout(600), needs_chromium]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DesktopServer]:
    tmp = tmp_path_factory.mktemp("assist-journey")
    with run_server(tmp, always_open_bot(tmp / "bot"), phone=True) as running:
        yield running


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Quiet through the greeting, "speak to an agent", then (the file loops, so again and again
    while the caller waits and talks to the agent) "I want to pay my bill"."""

    def said(text: str) -> np.ndarray:
        speech, rate = caller_speech(text)
        return resample(speech, rate, MIC_RATE) * 0.8

    def quiet(seconds: float) -> np.ndarray:
        return np.zeros(int(seconds * MIC_RATE), dtype=np.float32)

    signal = np.concatenate(
        [quiet(5.5), said("speak to an agent"), quiet(5), said("I want to pay my bill"), quiet(4)]
    )
    signal += np.random.default_rng(7).standard_normal(len(signal)).astype(np.float32) * 0.01
    return write_wav(tmp_path_factory.mktemp("mic") / "caller.wav", signal, MIC_RATE)


def assist_of(desk: Desk, entry_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = desk.page.evaluate(
        "id => JSON.parse(JSON.stringify((window.desktopAssist.contacts || {})[id] || {}))",
        entry_id,
    )
    return shown


def test_the_callers_words_and_suggestions_reach_the_agent(
    server: DesktopServer, microphone: Path
) -> None:
    agent = add_agent_with_the_cli(server)
    with chromium(microphone) as browser:
        context = browser.new_context()
        context.grant_permissions(["microphone"], origin=server.url)
        desk = Desk(context.new_page(), server, "agent").open()
        desk.sign_in(agent["username"], PASSWORD)
        desk.signed_in(agent)
        desk.go_available()

        phone = Phone(context.new_page(), server, "caller")
        phone.page.goto(f"{server.url}/phone")
        phone.page.locator("#caller").fill(CALLER_NUMBER)
        phone.page.get_by_role("button", name="Call the bot", exact=True).click()
        phone.wait_for(lambda: phone.state()["queued"] is not None, 120)
        entry_id = phone.state()["queued"]["entry_id"]
        desk.wait_for(lambda: desk.phase() == "offer", 15)
        assert assist_of(desk, entry_id) == {}  # the bot's part is in the screen pop instead

        desk.page.locator("#btn-accept").click()
        phone.wait_for(lambda: phone.state()["agent"] == "connected", 120)
        # the caller's words while talking to the agent, through the recogniser
        desk.wait_for(lambda: bool(assist_of(desk, entry_id).get("transcript")), 90)
        desk.wait_for(
            lambda: any(
                "bill" in s["for_text"] for s in assist_of(desk, entry_id).get("suggestions", [])
            ),
            90,
        )
        shown = assist_of(desk, entry_id)
        suggestion = next(s for s in shown["suggestions"] if "bill" in s["for_text"])
        assert suggestion["media"] == "voice" and suggestion["passages"], suggestion
        assert suggestion["replies"] and suggestion["replies"][0]["kind"] == "extractive"
        assert any(line["text"] == suggestion["for_text"] for line in shown["transcript"])
        panel = desk.page.locator("#assist").inner_text()
        assert suggestion["replies"][0]["text"] in panel

        desk.page.locator("#btn-end").click()
        phone.wait_for(lambda: phone.state()["ended"], 15)
        assert desk.js_errors == [] and phone.js_errors == [], desk.describe() + phone.describe()
