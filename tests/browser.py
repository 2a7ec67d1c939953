"""What the browser tests share: ``voicebot serve`` for real, headless Chromium, the caller's voice.

Used by tests/audio/test_softphone.py (the softphone alone) and tests/queues/test_desktop_browser.py
(the agent desktop, and the whole journey from the softphone to an agent): both start the server
the same way, drive the system Chromium with a fake microphone playing a WAV made at test time,
and wait on the pages' state hooks rather than on sleeps.

Needs /usr/bin/chromium (the system package; no browser is downloaded): mark such tests with
``needs_chromium``. Speech needs espeak-ng and festival.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from tests.queues.servers import free_port, stop_processes
from voicebot.audio.files import CALL_SAMPLE_RATE as RATE  # what speak() makes
from voicebot.testing.callers import default_caller_voice, speak

REPO = Path(__file__).resolve().parent.parent
VOICEBOT = REPO / ".venv" / "bin" / "voicebot"
CHROMIUM = Path("/usr/bin/chromium")
PCM_RATE = 16000
MIC_RATE = 48000  # what Chromium's fake capture handles best

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system chromium")


# --- the server -----------------------------------------------------------------------------


class Server:
    """A running ``voicebot serve``: its process, port, environment and stderr log."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        log: Path,
        env: dict[str, str],
        bot: Path,
    ) -> None:
        self.process = process
        self.bot = bot
        self.port = port
        self.log_path = log
        self.env = env
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/phone/ws"  # the softphone's

    def log(self) -> str:
        """The end of the server's stderr, to read alongside a failure."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n--- voicebot serve stderr (tail) ---\n" + text[-6000:]

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/health", timeout=5)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


S = TypeVar("S", bound=Server)

# The parts of /health a test may need up, and what to say when one is not.
HEALTH_PARTS = {"queues": "the queues are off", "audio": "the softphone's audio path is off"}


@contextlib.contextmanager
def serve(
    server_class: type[S],
    tmp: Path,
    bot: Path,
    *,
    settings: Mapping[str, str] = {},
    unset: Sequence[str] = (),
    phone: bool = True,
    healthy: Sequence[str] = ("audio",),
    timeout: float,
) -> Iterator[S]:
    """``voicebot serve`` for ``bot`` on a free port, in ``tmp`` (its data and ``serve.log``).

    espeak-ng speaks for the bot and logs are kept to warnings; ``settings`` are more
    environment variables and ``unset`` ones taken out of the inherited environment. Yields once
    ``/health`` answers with the ``healthy`` parts ok (within ``timeout`` s: the softphone loads
    its speech models first); stops the server afterwards.
    """
    port = free_port()
    log = tmp / "serve.log"
    env = {
        **os.environ,
        "VOICEBOT_TTS": "espeak",
        "VOICEBOT_DATA_DIR": str(tmp / "data"),  # SQLite there (voicebot.db) unless told else
        "VOICEBOT_LOG_LEVEL": "WARNING",
        **settings,
    }
    for name in unset:
        env.pop(name, None)
    command = [str(VOICEBOT), "serve", "--bot", str(bot), "--port", str(port)]
    if not phone:
        command.append("--no-phone")
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    running = server_class(process, port, log, env, bot)
    try:
        wait_until_healthy(running, timeout, healthy)
        yield running
    finally:
        stop_processes([process], timeout=10)


def wait_until_healthy(server: Server, timeout: float, parts: Sequence[str]) -> None:
    """Wait for ``/health``, failing the test if the server exits or one of ``parts`` is off."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"voicebot serve exited with {server.process.returncode}{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            health = server.health()
            for part in parts:
                if health[part]["status"] != "ok":
                    pytest.fail(f"{HEALTH_PARTS[part]}: {health}{server.log()}")
            return
        time.sleep(0.5)
    pytest.fail(f"voicebot serve did not answer /health within {timeout:.0f} s{server.log()}")


# --- the caller's voice ---------------------------------------------------------------------


def caller_speech(text: str) -> tuple[np.ndarray, int]:
    """The test caller's speech as float samples in [-1, 1], and their rate (16 kHz).

    Festival's HTS voice where installed (scripts/install.sh does): pocketsphinx hears espeak's
    voices unreliably ("bill" as "real"), which made the softphone test flaky.
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


def microphone_wav(path: Path, text: str) -> Path:
    """A fake microphone's WAV: quiet through the greeting, ``text`` said once, then quiet.

    Under it a little noise, as in any room (about -40 dBFS): over digital silence Chromium's
    gain control winds itself right up and clips the first words, and its noise suppression
    mangles them. Chromium loops the file, which gives the recogniser another go should it
    mishear the first.
    """
    speech, rate = caller_speech(text)
    speech = resample(speech, rate, MIC_RATE) * 0.8
    silence = np.zeros(int(5.5 * MIC_RATE), dtype=np.float32)
    tail = np.zeros(6 * MIC_RATE, dtype=np.float32)
    signal = np.concatenate([silence, speech, tail])
    signal += np.random.default_rng(7).standard_normal(len(signal)).astype(np.float32) * 0.01
    return write_wav(path, signal, MIC_RATE)


# --- the browser ----------------------------------------------------------------------------


def chromium_args(microphone: Path | None = None) -> list[str]:
    """Headless, quiet, and media allowed without asking (from ``microphone`` when given)."""
    args = [
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
    ]
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}")
    return args


@contextlib.contextmanager
def chromium(microphone: Path | None = None) -> Iterator[Any]:
    """The system Chromium (``headless=False``: ``--headless=new`` in its arguments instead)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=False, args=chromium_args(microphone)
        )
        try:
            yield browser
        finally:
            browser.close()


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    describe: Callable[[], str],
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Poll ``check`` until it holds; at ``timeout`` fail the test with ``describe()``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s: {describe()}")
        pause(0.25)


class Page:
    """A page in Chromium with every JavaScript error it raises.

    ``hook`` names the page's state object (``window.phoneState``, ``window.desktop``), which
    tests read rather than scraping the DOM; ``describe`` says what a failure should show.
    """

    hook: str

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
            f"() => JSON.parse(JSON.stringify({self.hook} || null))"
        )
        return value

    def describe(self) -> str:
        raise NotImplementedError

    def wait_for(self, check: Callable[[], bool], timeout: float) -> None:
        # Waiting through the page lets Playwright deliver its events meanwhile.
        wait_for(check, timeout, self.describe, lambda s: self.page.wait_for_timeout(s * 1000))
