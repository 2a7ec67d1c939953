"""The agent desktop end to end: ``voicebot serve`` for real, driven by headless Chromium.

1. Sign-in (a wrong password first), availability, and a handoff made by a real text
   conversation with the example bot (in process) and posted to ``/api/handoffs``: the screen
   pop, accept, end, wrap-up; then the entry and the audit log through the REST API.
2. A second window of the same agent takes the desktop over (close code 4001) and back.
3. The whole journey on one machine: a softphone caller asks the bot for a person, waits in
   the queue, the agent's desktop gets the offer, accepts, and the two talk through the audio
   bridge (PCM both ways); the agent ends the call and wraps up.

The pages' ``window.desktop`` and ``window.phoneState`` hooks are read rather than scraping the
DOM for state; what the agent sees (the pop, the forms, the messages) is read from the DOM.

Needs /usr/bin/chromium (the system package; no browser is downloaded); the journey also needs
espeak-ng and festival, as tests/audio/test_softphone.py does. Both start the server, Chromium
and the test caller's voice with tests/browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import (
    PCM_RATE,
    REPO,
    VOICEBOT,
    Page,
    Server,
    chromium,
    microphone_wav,
    needs_chromium,
    serve,
)
from voicebot.config import Settings
from voicebot.engine.context import is_open
from voicebot.flows.loader import load_bot
from voicebot.handoff.packet import CallerInfo, HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.runtime.bot import BotRuntime

TOKEN = "desktop-browser-test-token"
PASSWORD = "correct horse battery"
CALLER_NUMBER = "+447700900123"
CALLER_NAME = "Ann Example"
CARD = "4111111111111111"
SECOND = PCM_RATE * 2  # bytes of one second of 16-bit PCM at 16 kHz

pytestmark = [pytest.mark.timeout(180), needs_chromium]


# --- the server -----------------------------------------------------------------------------


class DesktopServer(Server):
    """The server with the REST API's token, and what the tests ask of its API and database."""

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A REST call with the API token (an external CRM or supervisor tool)."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def api_json(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        assert response.status_code == expect, (
            f"{method} {path}: {response.status_code} {response.text}{self.log()}"
        )
        return response.json()

    def dispositions(self, entry_id: str) -> list[tuple[int, str, str]]:
        """The wrap-ups saved for an entry (agent, code, notes): no endpoint lists them, so
        they are read from the server's SQLite database, read-only."""
        path = Path(self.env["VOICEBOT_DATA_DIR"]) / "voicebot.db"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT agent_id, code, notes FROM dispositions WHERE entry_id = ?", (entry_id,)
            ).fetchall()
        return [(int(a), str(c), str(n)) for a, c, n in rows]

    def add_agent(self, skills: dict[str, int]) -> dict[str, Any]:
        """An agent made through the REST API (admin: the API token)."""
        name = f"agent-{uuid.uuid4().hex[:8]}"
        body = {"username": name, "password": PASSWORD, "display_name": f"Agent {name[-4:]}"}
        agent: dict[str, Any] = self.api_json(
            "POST", "/api/agents", 201, json={**body, "role": "agent", "skills": skills}
        )
        assert agent["username"] == name and agent["skills"] == skills, agent
        return agent


@contextlib.contextmanager
def run_server(tmp: Path, bot: Path, *, phone: bool) -> Iterator[DesktopServer]:
    """The server on SQLite in ``tmp``, with a 30 s offer timeout and a 60 s wrap-up; without
    the softphone (``phone=False``) it loads no speech models and starts quickly."""
    settings = {
        "VOICEBOT_API_TOKEN": TOKEN,
        "VOICEBOT_OFFER_TIMEOUT": "30",
        "VOICEBOT_WRAP_UP_SECONDS": "60",
    }
    with serve(
        DesktopServer,
        tmp,
        bot,
        settings=settings,
        unset=("VOICEBOT_DATABASE_URL", "VOICEBOT_REDIS_URL"),
        phone=phone,
        healthy=("queues", "audio") if phone else ("queues",),
        timeout=90 if phone else 30,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def desktop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DesktopServer]:
    """The API, queues and desktop only (no speech models): quick to start."""
    with run_server(tmp_path_factory.mktemp("desktop"), REPO, phone=False) as server:
        yield server


def always_open_bot(root: Path) -> Path:
    """The example bot with its opening hours widened to every day, all day.

    Asking for a person out of hours gets the opening times instead of a transfer (bot.yaml's
    agent trigger has ``closed:``), and ``serve`` runs on the real clock; the journey test must
    not depend on when it runs. Everything else is the repository's bot, copied unchanged.
    """
    shutil.copytree(REPO / "flows", root / "flows")
    shutil.copytree(REPO / "knowledge", root / "knowledge")
    path = root / "flows" / "bot.yaml"
    text = path.read_text(encoding="utf-8")
    patched, weekly = re.subn(r"(?m)^(\s+weekly:).*$", r'\1 { mon-sun: "00:00-00:00" }', text)
    patched, holidays = re.subn(r"(?m)^(\s+holidays:).*$", r"\1 []", patched)
    assert weekly == 1 and holidays == 1, f"bot.yaml's hours have changed shape:\n{text[:1200]}"
    path.write_text(patched, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def phone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DesktopServer]:
    """The full server: softphone (speech models), queues and desktop."""
    tmp = tmp_path_factory.mktemp("journey")
    bot = always_open_bot(tmp / "bot")
    with run_server(tmp, bot, phone=True) as server:
        yield server


# --- a simulated call's handoff -------------------------------------------------------------


def an_open_hour() -> dt.datetime:
    """A past weekday at 10:00 UTC when the example bot's advisers are in (not a holiday): the
    conversation runs on that clock, so asking for a person is a transfer whenever it runs."""
    hours = load_bot(REPO).definition.bot.hours
    day = dt.datetime.now(dt.UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    for back in range(1, 30):
        candidate = day - dt.timedelta(days=back)
        if candidate.weekday() < 5 and is_open(hours, candidate):
            return candidate
    raise AssertionError("the example bot is never open on a weekday morning")


async def simulated_call(data_dir: Path) -> tuple[HandoffPacket, list[str]]:
    """A text conversation with the example bot: the caller pays a bill, keys in a card, then
    asks for a person. Returns the handoff packet and what the bot said."""
    packets: list[HandoffPacket] = []
    now = an_open_hour()
    runtime = BotRuntime.load(
        Settings(bot_dir=REPO, data_dir=data_dir),
        clock=lambda: now,
        handoffs=CallbackHandoffSink(packets.append),
    )
    said: list[str] = []
    try:
        call = runtime.new_call(caller=CallerInfo(number=CALLER_NUMBER, name=CALLER_NAME))
        said.append((await call.start()).text)
        said.append((await call.caller_said("I want to pay my bill")).text)
        said.append((await call.keys_pressed("12345678")).text)
        said.append((await call.caller_said("SW1A 1AA")).text)
        said.append((await call.caller_said("fifty pounds")).text)
        said.append((await call.keys_pressed(f"{CARD}#")).text)
        last = await call.caller_said("I want to speak to a person")
        said.append(last.text)
    finally:
        await runtime.aclose()
    assert last.handoff is not None and len(packets) == 1, f"no handoff; the bot said {said}"
    return packets[0], said


# --- the browser ----------------------------------------------------------------------------


# Every WebSocket's close code (the takeover check wants 4001), and the binary audio each one
# received: bytes, and bytes in messages loud enough to be speech (peak over LOUD), so a test
# can tell a voice from silence or hold music.
# Measured through Chromium's capture (noise suppression, gain control): the room noise peaks
# near 0.03, hold music near 0.09, the test caller's speech at 0.3-0.9.
LOUD = 0.15
SOCKET_PROBE = """
(() => {
  const Native = window.WebSocket;
  window.__wsCloses = [];
  window.__wsAudio = {};
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const path = new URL(this.url).pathname;
      this.addEventListener("close", (event) => {
        window.__wsCloses.push({ url: this.url, code: event.code, reason: event.reason });
      });
      this.addEventListener("message", (event) => {
        if (!(event.data instanceof ArrayBuffer)) return;
        const samples = new Int16Array(event.data, 0, event.data.byteLength >> 1);
        let peak = 0;
        for (let i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
        const seen = (window.__wsAudio[path] ||= { bytes: 0, loudBytes: 0, peak: 0 });
        seen.bytes += event.data.byteLength;
        seen.peak = Math.max(seen.peak, peak / 32768);
        if (peak / 32768 > LOUD) seen.loudBytes += event.data.byteLength;
      });
    }
  };
})();
""".replace("LOUD", str(LOUD))


class BrowserPage(Page):
    """A page in Chromium with every JavaScript error it raises (and the 401s it may expect),
    and what its WebSockets saw (``SOCKET_PROBE``)."""

    hook = "window.desktop"

    def __init__(self, page: Any, server: DesktopServer, name: str) -> None:
        self.name = name
        self.expected_401: set[str] = set()
        self.seen_401: list[str] = []
        page.add_init_script(SOCKET_PROBE)
        super().__init__(page, server)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        path = url.removeprefix(self.server.url)
        # A fetch answered 401 is logged by Chromium itself; some are part of the design.
        if "status of 401" in message.text and path in self.expected_401:
            self.seen_401.append(path)
            return
        self.js_errors.append(f"console.error: {message.text} ({url})")

    def closes(self) -> list[dict[str, Any]]:
        closes: list[dict[str, Any]] = self.page.evaluate("() => window.__wsCloses || []")
        return closes

    def audio_in(self, prefix: str) -> dict[str, float]:
        """What the page's WebSockets whose path starts with ``prefix`` received as audio."""
        seen: dict[str, dict[str, float]] = self.page.evaluate("() => window.__wsAudio")
        total = {"bytes": 0.0, "loudBytes": 0.0, "peak": 0.0}
        for path, figures in seen.items():
            if path.startswith(prefix):
                total["bytes"] += figures["bytes"]
                total["loudBytes"] += figures["loudBytes"]
                total["peak"] = max(total["peak"], figures["peak"])
        return total

    def describe(self) -> str:
        try:
            state = self.state()
            state.pop("queues", None)
            shown = json.dumps(state, indent=1, default=str)[:4000]
            closes = self.closes()
            closes.append({"audio": self.page.evaluate("() => window.__wsAudio")})
        except Exception as exc:  # the page itself is gone
            shown, closes = f"(unreadable: {exc})", []
        return (
            f"[{self.name}] {self.hook}={shown} closes={closes} js_errors={self.js_errors}"
            f"{self.server.log()}"
        )

    def text(self, selector: str) -> str:
        """The element's text as written (not as styled: headings are shown upper case)."""
        text: str = self.page.locator(selector).text_content() or ""
        return text.strip()

    def visible(self, selector: str) -> bool:
        visible: bool = self.page.locator(selector).is_visible()
        return visible


class Desk(BrowserPage):
    """The agent desktop page."""

    def __init__(self, page: Any, server: DesktopServer, name: str = "desktop") -> None:
        super().__init__(page, server, name)
        # Before sign-in the page asks who is signed in: nobody yet.
        self.expected_401.add("/api/auth/me")

    def open(self) -> Desk:
        self.page.goto(f"{self.server.url}/desktop")
        return self

    def sign_in(self, username: str, password: str) -> None:
        self.page.locator("#username").fill(username)
        self.page.locator("#password").fill(password)
        self.page.locator("#login-submit").click()

    def signed_in(self, agent: dict[str, Any]) -> None:
        self.wait_for(lambda: self.state()["connected"] and self.state()["state"] is not None, 15)
        assert self.visible("#agent-bar") and not self.visible("#login-view"), self.describe()
        assert self.text("#agent-name") == agent["display_name"], self.describe()
        assert self.text("#login-error") == "", self.describe()

    def go_available(self) -> None:
        assert self.page.locator("#btn-available").is_enabled(), self.describe()
        self.page.locator("#btn-available").click()
        self.wait_for(lambda: self.state()["state"] == "available", 10)
        assert "Available" in self.text("#state-label"), self.describe()
        assert self.page.locator("#state").get_attribute("data-state") == "available"

    def phase(self) -> str:
        phase: str = self.page.evaluate("() => window.desktop.phase")
        return phase

    def wrap_up(self, code: str, notes: str) -> None:
        self.wait_for(lambda: self.phase() == "wrapup", 10)
        assert self.visible("#wrapup-form") and not self.visible("#offer"), self.describe()
        assert "Time left" in self.text("#wrapup-countdown"), self.describe()
        assert "you ended the call" in self.text("#wrapup-context"), self.describe()
        codes = self.page.locator("#wrapup-code option").evaluate_all(
            "options => options.map(o => o.value)"
        )
        assert code in codes, codes
        self.page.locator("#wrapup-code").select_option(code)
        self.page.locator("#wrapup-notes").fill(notes)
        self.page.locator("#btn-wrapup").click()
        self.wait_for(lambda: self.state()["state"] == "available" and self.phase() == "idle", 10)
        assert not self.visible("#wrapup-form") and self.visible("#idle"), self.describe()
        assert self.text("#idle-title") == "Waiting for calls", self.describe()


class Phone(BrowserPage):
    """The softphone page."""

    hook = "window.phoneState"


# --- 1. the desktop with a simulated call's handoff ------------------------------------------


def test_sign_in_offer_accept_end_and_wrap_up(
    desktop_server: DesktopServer, tmp_path: Path
) -> None:
    server = desktop_server
    agent = server.add_agent({"general": 5, "billing": 5})
    packet, said = asyncio.run(simulated_call(tmp_path / "bot-data"))
    # The packet is what the agent will be shown: the card number is masked in it already.
    assert packet.queue == "general" and packet.reason == "caller asked for a person", packet
    assert packet.slots["card_number"] == "****1111", packet.slots
    assert CARD not in packet.model_dump_json(), "the card number leaked into the packet"

    with chromium() as browser:
        desk = Desk(browser.new_context().new_page(), server).open()
        desk.wait_for(lambda: desk.visible("#login-view"), 10)
        assert desk.state()["user"] is None, desk.describe()

        # A wrong password, and a name that does not exist: the same generic message.
        desk.expected_401.add("/api/auth/login")
        desk.sign_in(agent["username"], "not the password")
        desk.wait_for(lambda: desk.text("#login-error") != "", 10)
        assert desk.text("#login-error") == "wrong username or password", desk.describe()
        desk.sign_in("nobody-" + agent["username"], PASSWORD)
        desk.wait_for(lambda: desk.page.locator("#login-submit").is_enabled(), 10)
        assert desk.text("#login-error") == "wrong username or password", desk.describe()
        assert desk.visible("#login-view") and not desk.visible("#desktop"), desk.describe()

        desk.sign_in(agent["username"], PASSWORD)
        desk.signed_in(agent)
        assert desk.state()["state"] == "offline", desk.describe()
        assert "general 5" in desk.text("#agent-skills"), desk.describe()
        desk.go_available()
        # The queues this agent has the skills for, and no others.
        desk.wait_for(lambda: desk.page.locator("#queues [data-queue]").count() > 0, 5)
        shown = desk.page.locator("#queues [data-queue]").evaluate_all(
            "cards => cards.map(c => c.dataset.queue)"
        )
        assert sorted(shown) == ["billing", "general"], shown

        queued = server.api_json("POST", "/api/handoffs", 201, json=packet.model_dump(mode="json"))
        assert queued["handoff_id"] == packet.id and queued["queue"] == "general", queued
        entry_id = queued["entry_id"]

        # The screen pop.
        desk.wait_for(lambda: desk.phase() == "offer", 10)
        assert desk.state()["state"] == "offered", desk.describe()
        assert desk.state()["current"]["entry_id"] == entry_id, desk.describe()
        assert desk.visible("#offer") and desk.visible("#btn-accept"), desk.describe()
        assert desk.text("#pop-heading") == "Incoming call"
        assert desk.text("#pop-caller-name") == CALLER_NAME
        assert desk.text("#pop-caller-number") == CALLER_NUMBER
        assert not desk.visible("#pop-vip"), "a caller who is not a VIP shows as one"
        assert "Verified" in desk.text("#pop-verified")
        assert packet.intent.name and packet.intent.name in desk.text("#pop-intent")
        assert desk.text("#pop-queue") == "general"
        assert desk.text("#pop-reason") == "caller asked for a person"
        assert desk.text("#pop-summary") == packet.summary
        assert "Answer within" in desk.text("#pop-countdown"), desk.describe()
        lines = desk.page.locator("#pop-transcript li").all_inner_texts()
        assert len(lines) == len(packet.transcript), lines
        for shown_line, line in zip(lines, packet.transcript, strict=True):
            assert line.text in shown_line, (shown_line, line)
        assert any("I want to speak to a person" in line for line in lines), lines
        assert any("Please key in your card number" in line for line in lines), lines
        slots = dict(
            desk.page.locator("#pop-slots tr").evaluate_all(
                "rows => rows.map(r => [r.querySelector('th').title,"
                " r.querySelector('td').textContent])"
            )
        )
        assert slots["card_number"] == "****1111", slots
        assert slots["account_number"] == "12345678", slots  # not marked sensitive in the flows
        pop = desk.text("#offer")
        assert CARD not in pop and CARD[-8:] not in pop, "the card number is on screen"

        desk.page.locator("#btn-accept").click()
        desk.wait_for(lambda: desk.state()["state"] == "busy" and desk.phase() == "connected", 10)
        assert desk.text("#pop-heading") == "On call"
        assert not desk.visible("#btn-accept") and desk.visible("#btn-end"), desk.describe()
        # A handoff from elsewhere has no audio here: the agent is told where it is.
        assert "not in the browser" in desk.text("#audio-status"), desk.describe()

        desk.page.locator("#btn-end").click()
        desk.wait_for(lambda: desk.state()["state"] == "wrap_up", 10)
        notes = "Took the payment details; caller wanted reassurance."
        desk.wrap_up("follow_up", notes)
        assert desk.state()["errors"] == [], desk.describe()
        assert desk.js_errors == [], desk.describe()
        # The 401s Chromium logged: "who is signed in?" before sign-in, and the two failures.
        assert sorted(desk.seen_401) == ["/api/auth/login", "/api/auth/login", "/api/auth/me"]

    handoff = server.api_json("GET", f"/api/handoffs/{packet.id}")
    entry = handoff["entry"]
    assert entry["id"] == entry_id and entry["status"] == "done", entry
    assert entry["agent_id"] == agent["id"] and entry["end_reason"] == "agent ended", entry
    assert handoff["packet"]["slots"]["card_number"] == "****1111", handoff["packet"]["slots"]
    assert server.dispositions(entry_id) == [(agent["id"], "follow_up", notes)]

    events = server.api_json("GET", "/api/audit", params={"limit": 5000})
    mine = [e for e in events if e["actor"] == agent["username"]]
    sign_ins = sorted(e["success"] for e in mine if e["action"] == "sign_in")
    assert sign_ins == [False, True], mine
    stranger = [e for e in events if e["actor"] == "nobody-" + agent["username"]]
    assert [(e["action"], e["success"]) for e in stranger] == [("sign_in", False)], stranger
    accepts = [e for e in mine if e["action"] == "accept"]
    assert [(e["target"], e["success"]) for e in accepts] == [(entry_id, True)], mine
    print(f"\nthe bot said: {said}")


# --- 2. a second window takes the desktop over -----------------------------------------------


def test_a_second_window_takes_the_desktop_over(desktop_server: DesktopServer) -> None:
    server = desktop_server
    agent = server.add_agent({"general": 5})
    with chromium() as browser:
        first = Desk(browser.new_context().new_page(), server, "first window").open()
        first.sign_in(agent["username"], PASSWORD)
        first.signed_in(agent)
        first.go_available()

        # Another window (another browser profile: its own session) signs in as the same agent.
        second = Desk(browser.new_context().new_page(), server, "second window").open()
        second.sign_in(agent["username"], PASSWORD)
        second.signed_in(agent)
        # The agent's state goes with them: a takeover is not the agent leaving.
        assert second.state()["state"] == "available", second.describe()

        first.wait_for(lambda: first.visible("#banner"), 10)
        assert first.text("#banner-text") == "The desktop was opened in another window"
        assert first.text("#banner-action") == "Use this window"
        assert first.text("#idle-title") == "In use in another window", first.describe()
        assert first.state()["connected"] is False, first.describe()
        control = [c for c in first.closes() if c["url"].endswith("/api/desktop/ws")]
        assert [c["code"] for c in control] == [4001], first.describe()
        assert first.page.evaluate("() => document.getElementById('desktop').inert") is True
        assert second.state()["connected"] is True and not second.visible("#banner")
        assert server.health()["queues"]["desktops"] == 1, server.health()

        # The first window takes it back; now the second one is told.
        first.page.locator("#banner-action").click()
        first.wait_for(lambda: first.state()["connected"], 10)
        second.wait_for(lambda: second.visible("#banner"), 10)
        assert second.text("#banner-text") == "The desktop was opened in another window"
        assert first.state()["state"] == "available" and not first.visible("#banner")
        assert [c["code"] for c in second.closes() if "/desktop/ws" in c["url"]] == [4001]
        # A window that was taken over does not reconnect by itself (no tug of war).
        second.page.wait_for_timeout(2500)
        assert second.state()["connected"] is False, second.describe()
        assert first.state()["connected"] is True, first.describe()
        assert first.js_errors == [] and second.js_errors == [], (
            first.describe() + second.describe()
        )


# --- 3. the journey: caller, bot, queue, agent, conversation ----------------------------------


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone (both pages'): quiet through the greeting, then a request for a
    person in the test caller's voice, then quiet. Chromium loops the file, which gives the
    recogniser another go, and keeps the caller talking to the agent later."""
    return microphone_wav(tmp_path_factory.mktemp("mic") / "caller.wav", "speak to an agent")


def add_agent_with_the_cli(server: DesktopServer) -> dict[str, Any]:
    """An agent made with ``voicebot users add``, on the server's database."""
    name = f"agent-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [str(VOICEBOT), "users", "add", name, "--role", "agent", "--skills", "general:5",
         "--display-name", "Journey Agent", "--password-stdin", "--bot", str(server.bot)],
        input=f"{PASSWORD}\n", env=server.env, cwd=server.log_path.parent, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"voicebot users add: {done.stdout}{done.stderr}"
    agents = server.api_json("GET", "/api/agents")
    agent: dict[str, Any] = next(a for a in agents if a["username"] == name)
    assert agent["skills"] == {"general": 5}, agent
    return agent


@pytest.mark.timeout(600)
def test_the_journey_from_caller_to_agent(phone_server: DesktopServer, caller_wav: Path) -> None:
    server = phone_server
    agent = add_agent_with_the_cli(server)
    started = time.monotonic()
    with chromium(caller_wav) as browser:
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
        phone.wait_for(lambda: phone.state()["connected"], 15)

        # The bot hears the request and hands the call to the general queue; the line stays up.
        phone.wait_for(lambda: phone.state()["queued"] is not None, 90)
        queued_after = time.monotonic() - started
        queued = phone.state()["queued"]
        assert queued["queue"] == "general", phone.describe()
        assert phone.state()["ended"] is False and phone.state()["agent"] is None
        assert "Waiting for an agent" in phone.text("#status"), phone.describe()
        lines = phone.state()["transcript"]
        said = [line["text"] for line in lines if line["role"] == "caller"]
        assert said, f"the bot heard nothing: {phone.describe()}"
        assert any("put you through" in line["text"] for line in lines if line["role"] == "bot")

        # The agent's screen pop: this caller, with the conversation so far.
        desk.wait_for(lambda: desk.phase() == "offer", 15)
        current = desk.state()["current"]
        assert current["entry_id"] == queued["entry_id"], desk.describe()
        assert current["audio_url"] == f"/api/desktop/audio/{queued['entry_id']}", current
        assert desk.text("#pop-caller-number") == CALLER_NUMBER, desk.describe()
        assert desk.text("#pop-queue") == "general"
        assert desk.text("#pop-reason") == "caller asked for a person"
        transcript = desk.text("#pop-transcript")
        assert "Thanks for calling Acme Telecom" in transcript, transcript
        assert said[-1] in transcript, (said, transcript)
        # Hold music meanwhile: the caller hears something.
        held = phone.state()["botAudioBytes"]
        phone.wait_for(lambda: phone.state()["botAudioBytes"] > held + SECOND, 10)

        desk.page.locator("#btn-accept").click()
        accepted = time.monotonic()
        desk.wait_for(lambda: desk.state()["state"] == "busy" and desk.phase() == "connected", 10)
        # Accepting was a click: the audio connects without another one.
        desk.wait_for(lambda: desk.state()["audio"]["connected"], 10)
        assert desk.text("#audio-status") == "Audio connected.", desk.describe()
        # The agent is briefed first: they hear the bot, the caller still hears hold music, and
        # neither hears the other until the bot has introduced the agent.
        desk.wait_for(lambda: desk.state()["audio"]["bytesIn"] > SECOND, 20)
        assert phone.state()["agent"] is None, phone.describe()
        assert desk.state()["audio"]["bytesOut"] > 0  # the agent's microphone is on, unheard
        phone.wait_for(lambda: phone.state()["agent"] == "connected", 90)
        introduced_after = time.monotonic() - accepted
        assert "with an agent" in phone.text("#status"), phone.describe()
        bot_lines = [line["text"] for line in phone.state()["transcript"] if line["role"] == "bot"]
        assert bot_lines, phone.describe()

        # Audio both ways. Hold music stops on connect (at most ~0.3 s was already on its way),
        # so what reaches the caller's page from here on is the agent's microphone.
        desk.page.wait_for_timeout(1000)
        caller_heard = phone.state()["botAudioBytes"]
        caller_loud = phone.audio_in("/phone/ws")["loudBytes"]  # the bot's voice, before
        agent_sent = desk.state()["audio"]["bytesOut"]
        desk.wait_for(lambda: desk.state()["audio"]["bytesIn"] > 3 * SECOND, 20)
        desk.wait_for(lambda: desk.state()["audio"]["bytesOut"] > agent_sent + 3 * SECOND, 20)
        phone.wait_for(lambda: phone.state()["botAudioBytes"] > caller_heard + 3 * SECOND, 20)
        audio = desk.state()["audio"]
        heard = phone.state()["botAudioBytes"] - caller_heard
        sent = audio["bytesOut"] - agent_sent
        # What the agent sent arrived, give or take what was in flight.
        assert heard > 0.5 * sent, (heard, sent, desk.describe(), phone.describe())
        # And it is speech, not silence: the WAV loops every 13 s or so, speaking for 1.5 s.
        desk.wait_for(lambda: desk.audio_in("/api/desktop/audio/")["loudBytes"] > 0, 30)
        phone.wait_for(lambda: phone.audio_in("/phone/ws")["loudBytes"] > caller_loud, 30)
        assert audio["micError"] is None and audio["muted"] is False, desk.describe()
        assert desk.state()["errors"] == [] and phone.state()["errors"] == [], (
            desk.describe() + phone.describe()
        )

        # The agent ends the call: the caller's line closes, the agent wraps up.
        desk.page.locator("#btn-end").click()
        phone.wait_for(lambda: phone.state()["ended"], 10)
        assert phone.state()["endReason"] == "agent ended the call", phone.describe()
        assert phone.page.get_by_role("button", name="Call the bot", exact=True).is_visible()
        notes = "Caller wanted a person; sorted on the call."
        desk.wrap_up("resolved", notes)
        assert desk.state()["audio"]["connected"] is False, desk.describe()
        assert desk.js_errors == [] and phone.js_errors == [], desk.describe() + phone.describe()
        agent_heard = desk.audio_in("/api/desktop/audio/")
        caller_heard_all = phone.audio_in("/phone/ws")
    print(
        f"\njourney: queued after {queued_after:.1f} s, briefed and introduced "
        f"{introduced_after:.1f} s after accepting, {time.monotonic() - started:.1f} s in "
        f"all; caller said {said}; agent heard {agent_heard}, sent {audio['bytesOut']} bytes; "
        f"caller's page received {caller_heard_all} (bot, hold music and agent)"
    )

    rows = server.api_json("GET", "/api/handoffs", params={"status": "done"})
    row = next((r for r in rows if r["entry"]["id"] == queued["entry_id"]), None)
    assert row is not None, rows
    assert row["entry"]["agent_id"] == agent["id"], row
    assert row["entry"]["end_reason"] == "agent ended", row
    assert server.dispositions(queued["entry_id"]) == [(agent["id"], "resolved", notes)]
    events = server.api_json("GET", "/api/audit", params={"actor": agent["username"]})
    assert ("accept", queued["entry_id"], True) in [
        (e["action"], e["target"], e["success"]) for e in events
    ], events
    # The softphone call is over on the server too.
    deadline = time.monotonic() + 10
    while (calls := server.health()["audio"]["calls"]) != 0:
        assert time.monotonic() < deadline, f"{calls} calls still open{server.log()}"
        time.sleep(0.25)
