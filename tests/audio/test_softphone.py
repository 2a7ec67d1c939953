"""The browser softphone end to end: ``voicebot serve`` for real, driven by headless Chromium.

Chromium's fake microphone plays a WAV made at test time by the test caller's voice (Festival's
HTS voice, else espeak-ng): silence while the greeting plays, then "I want to pay my bill". The page sends it over /phone/ws; the server
recognises it offline (pocketsphinx), runs the example bot's pay-bill flow and speaks the
reply with espeak-ng. The page's ``window.phoneState`` hook is read instead of scraping the
DOM. A second test throws bad input at the WebSocket itself and drops a call mid-word.

Needs /usr/bin/chromium (the system package; no browser is downloaded), espeak-ng and festival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import sync_playwright
from websockets.asyncio.client import connect

from voicebot.testing.callers import RATE, default_caller_voice, speak

REPO = Path(__file__).resolve().parent.parent.parent
VOICEBOT = REPO / ".venv" / "bin" / "voicebot"
CHROMIUM = Path("/usr/bin/chromium")
PCM_RATE = 16000
MIC_RATE = 48000  # what Chromium's fake capture handles best

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system chromium"),
]


# --- the server -----------------------------------------------------------------------------


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/phone/ws"

    def log(self) -> str:
        """The end of the server's stderr, to read alongside a failure."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n--- voicebot serve stderr (tail) ---\n" + text[-6000:]

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/health", timeout=5)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("softphone")
    port = free_port()
    log = tmp / "serve.log"
    env = {
        **os.environ,
        "VOICEBOT_TTS": "espeak",
        "VOICEBOT_DATA_DIR": str(tmp / "data"),
        "VOICEBOT_LOG_LEVEL": "WARNING",
    }
    command = [str(VOICEBOT), "serve", "--bot", str(REPO), "--port", str(port)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    running = Server(process, port, log)
    try:
        wait_until_healthy(running, timeout=60)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(server: Server, timeout: float) -> None:
    """The server loads its speech models before answering; that takes a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"voicebot serve exited with {server.process.returncode}{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            health = server.health()
            if health["audio"]["status"] != "ok":
                pytest.fail(f"the softphone's audio path is off: {health}{server.log()}")
            return
        time.sleep(0.5)
    pytest.fail(f"voicebot serve did not answer /health within {timeout:.0f} s{server.log()}")


# --- audio ----------------------------------------------------------------------------------


def espeak(text: str) -> tuple[np.ndarray, int]:
    """The test caller's speech as float samples in [-1, 1], and their rate (16 kHz).

    Festival's HTS voice where installed (scripts/install.sh does): pocketsphinx hears espeak's
    voices unreliably ("bill" as "real"), which made this test flaky.
    """
    samples = speak(text, voice=default_caller_voice())
    return samples.astype(np.float32) / 32768, RATE


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear interpolation: plenty for speech a recogniser hears at 16 kHz anyway."""
    duration = len(samples) / rate
    positions = np.arange(int(duration * target)) / target
    resampled: np.ndarray = np.interp(positions, np.arange(len(samples)) / rate, samples)
    return resampled.astype(np.float32)


def to_pcm16(samples: np.ndarray) -> bytes:
    pcm: bytes = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return pcm


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(to_pcm16(samples))
    return path


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone: quiet through the greeting, the request, then quiet again.

    Under it a little noise, as in any room (about -40 dBFS): over digital silence Chromium's
    gain control winds itself right up and clips the first words, and its noise suppression
    mangles them. Chromium loops the file, which gives the recogniser another go should it
    mishear the first.
    """
    speech, rate = espeak("I want to pay my bill")
    speech = resample(speech, rate, MIC_RATE) * 0.8
    silence = np.zeros(int(5.5 * MIC_RATE), dtype=np.float32)
    tail = np.zeros(6 * MIC_RATE, dtype=np.float32)
    signal = np.concatenate([silence, speech, tail])
    signal += np.random.default_rng(7).standard_normal(len(signal)).astype(np.float32) * 0.01
    path = tmp_path_factory.mktemp("mic") / "caller.wav"
    return write_wav(path, signal, MIC_RATE)


# --- the browser test -----------------------------------------------------------------------


def chromium_args(wav: Path) -> list[str]:
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    describe: Callable[[], str],
    pause: Callable[[float], None] = time.sleep,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s: {describe()}")
        pause(0.25)


class Phone:
    """The softphone page in Chromium, with every JavaScript error it raises."""

    def __init__(self, page: Any, server: Server) -> None:
        self.page = page
        self.server = server
        self.js_errors: list[str] = []
        page.on("pageerror", lambda error: self.js_errors.append(f"pageerror: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.js_errors.append(f"console.error: {message.text}")

    def state(self) -> dict[str, Any]:
        value: dict[str, Any] = self.page.evaluate(
            "() => JSON.parse(JSON.stringify(window.phoneState))"
        )
        return value

    def describe(self) -> str:
        state = json.dumps(self.state(), indent=1)
        return f"phoneState={state} js_errors={self.js_errors}{self.server.log()}"

    def wait_for(self, check: Callable[[], bool], timeout: float) -> None:
        # Waiting through the page lets Playwright deliver its events meanwhile.
        wait_for(check, timeout, self.describe, lambda s: self.page.wait_for_timeout(s * 1000))

    def button(self, name: str) -> Any:
        return self.page.get_by_role("button", name=name, exact=True)

    def text(self, selector: str) -> str:
        text: str = self.page.locator(selector).inner_text()
        return text


@contextlib.contextmanager
def chromium_phone(server: Server, microphone: Path) -> Iterator[Phone]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=False, args=chromium_args(microphone)
        )
        try:
            context = browser.new_context()
            context.grant_permissions(["microphone"], origin=server.url)
            yield Phone(context.new_page(), server)
        finally:
            browser.close()


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
        await ws.send(bytes(1024 * 1024))  # a megabyte in one message
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

    # A caller who vanishes mid-word: no hangup, no close handshake, just gone.
    speech, rate = await asyncio.to_thread(espeak, "I want to pay my bill")
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
