"""The supervisor page end to end: ``voicebot serve`` for real, driven by headless Chromium.

One server for the module, on SQLite, with thirty days of demo history (``voicebot demo seed``,
which also makes the ``demo-supervisor``), an agent made with ``voicebot users add``, and one
seeded call given a recording and a failed quality review. The bot is the example bot open
08:00-20:00 every day in a zone where it is about noon now (so "today" on the wallboard has
calls whenever the test runs), and the general queue's ``alerts.waiting: 1``.

1. The wallboard: one row per queue; the waiting count, service level and abandonment read by
   tesseract from a screenshot of a queue row equal the board the page got and the REST board.
2. Live push: a handoff posted to the API reaches the open page over the socket (the page
   never asks for the board again) and the waiting tile turns ``warn``, then ``alert``.
3. Roles: an agent sees the "supervisors only" view; the API answers an agent 403 and nobody
   401; the socket closes 4403 and 4401.
4. Bot performance: the figures are ``/api/reports/bot``'s and the chart was drawn.
5. Reports: calls by queue and 30-minute intervals, table rows equal to the API's; the CSV
   download starts with the UTF-8 byte-order mark and the headings.
6. Calls: the reviewed call's transcript, events, score, failed lines and its recording.

Needs /usr/bin/chromium and /usr/bin/tesseract (scripts/install.sh installs both).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.browser import REPO, VOICEBOT, Page, Server, chromium, needs_chromium, serve
from tests.queues.packets import make_packet
from voicebot.access.sessions import COOKIE
from voicebot.config import Settings
from voicebot.store.db import open_database
from voicebot.store.models import CallReview

TOKEN = "supervisor-browser-test-token"
PASSWORD = "correct horse battery"
SUPERVISOR = "demo-supervisor"  # what ``voicebot demo seed --supervisor-password`` makes
AGENT = "agent-sv-test"
TESSERACT = Path("/usr/bin/tesseract")
ALERTED_QUEUE = "general"  # the queue given ``alerts: { waiting: 1 }``
RECORDING = "segment-001.wav"

needs_tesseract = pytest.mark.skipif(not TESSERACT.exists(), reason="needs tesseract")
pytestmark = [pytest.mark.timeout(180), needs_chromium]


# --- the bot, the history and the server ------------------------------------------------------


def noon_zone(now: dt.datetime) -> str:
    """A fixed-offset zone where it is about midday at ``now``: "today" then has half a day of
    demo calls behind it whenever the test runs (``Etc/GMT-3`` is three hours ahead of UTC)."""
    offset = 12 - now.astimezone(dt.UTC).hour  # -11 to +12, every one a real zone
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def board_bot(root: Path) -> Path:
    """The example bot, open 08:00-20:00 every day in :func:`noon_zone`, with a waiting threshold
    on the general queue. No quality/rules.yaml: the background reviewer stays off, so the
    only review is the one the test writes."""
    shutil.copytree(REPO / "flows", root / "flows")
    shutil.copytree(REPO / "knowledge", root / "knowledge")
    path = root / "flows" / "bot.yaml"
    text = path.read_text(encoding="utf-8")
    zone = noon_zone(dt.datetime.now(dt.UTC))
    patches = [
        (r"(?m)^(\s+timezone:).*$", rf"\1 {zone}"),
        (r"(?m)^(\s+weekly:).*$", r'\1 { mon-sun: "08:00-20:00" }'),
        (r"(?m)^(\s+holidays:).*$", r"\1 []"),
        (r"(?m)^(  general: \{.*)( \})$", r"\1, alerts: { waiting: 1 }\2"),
    ]
    for pattern, replacement in patches:
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, f"bot.yaml has changed shape ({pattern}):\n{text[:2000]}"
    path.write_text(text, encoding="utf-8")
    return root


class BoardServer(Server):
    """The server, and what the tests ask of its API (as the API token or a user)."""

    call_id: str  # the call with a recording and a review
    review: dict[str, Any]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=20, **kwargs)

    def api_json(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        assert response.status_code == expect, (
            f"{method} {path}: {response.status_code} {response.text}{self.log()}"
        )
        return response.json()

    def session_cookie(self, username: str) -> str:
        """A session of ``username`` (signed in through the API, as the page does)."""
        response = httpx.post(
            f"{self.url}/api/auth/login",
            json={"username": username, "password": PASSWORD},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token = response.cookies.get(COOKIE)
        assert token, response.headers
        return token

    def as_user(self, token: str | None, path: str, **params: Any) -> httpx.Response:
        cookies = {COOKIE: token} if token else {}
        return httpx.get(f"{self.url}{path}", params=params, cookies=cookies, timeout=20)


def cli(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(VOICEBOT), *args],
        input=stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"voicebot {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def reviewed_call(data_dir: Path) -> tuple[str, dict[str, Any]]:
    """A seeded call of the last few days that went to a queue, given a recording (a short
    WAV in its recordings folder) and a failed quality review pointing at two of its lines."""
    path = data_dir / "voicebot.db"
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).replace(tzinfo=None).isoformat(" ")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT c.id FROM calls c WHERE c.started_at >= ? AND c.ended_at IS NOT NULL"
            " AND EXISTS (SELECT 1 FROM handoffs h WHERE h.call_id = c.id)"
            " AND EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id)"
            " AND (SELECT count(*) FROM turns t WHERE t.call_id = c.id) >= 4"
            " ORDER BY c.started_at DESC LIMIT 1",
            (since,),
        ).fetchone()
        assert row is not None, "the demo history has no recent call that went to a queue"
        call_id = str(row[0])
        seqs = [
            int(s)
            for (s,) in db.execute(
                "SELECT seq FROM turns WHERE call_id = ? ORDER BY seq", (call_id,)
            )
        ]
    failures = [
        {
            "rule": "asked-twice",
            "description": "The bot asked the caller the same question twice",
            "weight": 20,
            "critical": False,
            "detail": "the bot asked for the account number twice",
            "lines": [seqs[1]],
        },
        {
            "rule": "angry-at-end",
            "description": "The caller was angry at the end of the call",
            "weight": 25,
            "critical": False,
            "detail": "anger 0.9 in the last line",
            "lines": [seqs[-1]],
        },
    ]
    review = {
        "score": 55,
        "passed": False,
        "failures": failures,
        "summary": "Test summary: the caller asked about a bill and was put through.",
    }

    async def write() -> None:
        db = await open_database(Settings(data_dir=data_dir).resolved_database_url)
        try:
            async with db.transaction() as session:
                session.add(
                    CallReview(
                        call_id=call_id,
                        checked_at=dt.datetime.now(dt.UTC),
                        rules="test",
                        **review,
                    )
                )
        finally:
            await db.aclose()

    asyncio.run(write())
    folder = data_dir / "recordings" / call_id
    folder.mkdir(parents=True)
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype("<i2")
    with wave.open(str(folder / RECORDING), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(tone.tobytes())
    return call_id, review


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoardServer]:
    tmp = tmp_path_factory.mktemp("supervisor")
    bot = board_bot(tmp / "bot")
    env = {**os.environ, "VOICEBOT_DATA_DIR": str(tmp / "data"), "VOICEBOT_LOG_LEVEL": "WARNING"}
    for name in ("VOICEBOT_DATABASE_URL", "VOICEBOT_REDIS_URL"):
        env.pop(name, None)
    cli(
        env,
        tmp,
        "demo",
        "seed",
        "--days",
        "30",
        "--calls-per-day",
        "300",
        "--supervisor-password",
        PASSWORD,
        "--bot",
        str(bot),
    )
    cli(
        env,
        tmp,
        "users",
        "add",
        AGENT,
        "--role",
        "agent",
        "--skills",
        "general:5",
        "--display-name",
        "Test Agent",
        "--password-stdin",
        "--bot",
        str(bot),
        stdin=f"{PASSWORD}\n",
    )
    call_id, review = reviewed_call(tmp / "data")
    with serve(
        BoardServer,
        tmp,
        bot,
        settings={"VOICEBOT_API_TOKEN": TOKEN},
        unset=("VOICEBOT_DATABASE_URL", "VOICEBOT_REDIS_URL"),
        phone=False,
        healthy=("queues",),
        timeout=60,
    ) as running:
        running.call_id = call_id
        running.review = review
        yield running


# --- the page ---------------------------------------------------------------------------------


class Board(Page):
    """The supervisor page, with the 401s and 403s Chromium logs that are part of the design,
    and every request the page made for the REST board."""

    hook = "window.supervisor"

    def __init__(self, page: Any, server: BoardServer) -> None:
        self.expected: set[tuple[int, str]] = {(401, "/api/auth/me")}  # before sign-in
        self.board_requests = 0
        super().__init__(page, server)
        page.on("request", self._request)

    def _request(self, request: Any) -> None:
        if request.url.startswith(f"{self.server.url}/api/supervisor/wallboard"):
            self.board_requests += 1

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        path = url.removeprefix(self.server.url).split("?")[0]
        if any(f"status of {code}" in message.text and path == p for code, p in self.expected):
            return
        self.js_errors.append(f"console.error: {message.text} ({url})")

    def describe(self) -> str:
        try:
            state = self.state()
            for big in ("bot", "report", "forecast", "calls", "call"):
                state[big] = "..." if state.get(big) else state.get(big)
            shown = json.dumps(state, indent=1, default=str)[:5000]
        except Exception as exc:  # the page itself is gone
            shown = f"(unreadable: {exc})"
        return f"{self.hook}={shown} js_errors={self.js_errors}{self.server.log()}"

    def text(self, selector: str) -> str:
        return (self.page.locator(selector).first.text_content() or "").strip()

    def visible(self, selector: str) -> bool:
        visible: bool = self.page.locator(selector).is_visible()
        return visible

    def sign_in(self, username: str) -> None:
        self.page.goto(f"{self.server.url}/supervisor")
        self.wait_for(lambda: self.visible("#login-view"), 10)
        self.page.locator("#username").fill(username)
        self.page.locator("#password").fill(PASSWORD)
        self.page.locator("#login-submit").click()

    def signed_in_as_supervisor(self) -> None:
        self.sign_in(SUPERVISOR)
        self.wait_for(lambda: self.state()["connected"] and self.visible("#main"), 20)
        assert not self.visible("#login-view") and not self.visible("#forbidden-view")
        assert self.text("#user-name") == "Demo Supervisor", self.describe()
        assert self.text("#live-label") == "Live", self.describe()

    def tab(self, view: str) -> None:
        self.page.locator(f"#tab-{view}").click()
        self.wait_for(lambda: self.visible(f"#view-{view}"), 5)

    def rows(self, selector: str) -> list[list[str]]:
        """A table's body rows, each the text of its cells."""
        rows: list[list[str]] = self.page.locator(f"{selector} tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))"
        )
        return rows

    def headings(self, selector: str) -> list[str]:
        headings: list[str] = self.page.locator(f"{selector} thead th").evaluate_all(
            "cells => cells.map(c => c.textContent.trim())"
        )
        return headings

    def finish(self) -> None:
        assert self.state()["errors"] == [], self.describe()
        assert self.js_errors == [], self.describe()


@contextlib.contextmanager
def supervisor_page(server: BoardServer, **context: Any) -> Iterator[Board]:
    with chromium() as browser:
        board = Board(browser.new_context(**context).new_page(), server)
        board.signed_in_as_supervisor()
        yield board
        board.finish()


# --- how the page writes figures (supervisor.js), to compare with the API's ------------------


def count(value: Any) -> str:
    return "—" if value is None else str(value)


def rate(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}%"


def js_round(value: float) -> int:
    return math.floor(value + 0.5)  # Math.round: halves go up


def seconds(value: Any) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{js_round(value)} s"
    total = int(value)
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def percent(value: Any) -> str:
    return "—" if value is None else f"{js_round(value)}%"


# --- reading the screen -----------------------------------------------------------------------


def ocr_line(image: Image.Image, whitelist: str = "0123456789%") -> str:
    """What tesseract reads in one line of dark text on a light tile (any of the tile colours:
    binarised first, and given a white margin, which tesseract needs around a glyph)."""
    gray = ImageOps.grayscale(image)
    binary = gray.point(lambda p: 255 if p > 150 else 0)
    padded = ImageOps.expand(binary, border=30, fill=255)
    png = io.BytesIO()
    padded.save(png, format="PNG")
    done = subprocess.run(
        [
            str(TESSERACT),
            "stdin",
            "stdout",
            "--psm",
            "7",
            "-c",
            f"tessedit_char_whitelist={whitelist}",
        ],
        input=png.getvalue(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return "".join(done.stdout.decode().split())


def tile_values(board: Board, queue: str, fields: list[str]) -> dict[str, Image.Image]:
    """One element screenshot of the queue's row, and each tile's figure cut out of it."""
    row = board.page.locator(f'#tiles [data-queue="{queue}"]')
    shot = Image.open(io.BytesIO(row.screenshot()))
    row_box = row.bounding_box()
    scale = shot.width / row_box["width"]
    crops = {}
    for field in fields:
        box = row.locator(f'[data-field="{field}"] .tile-value').bounding_box()
        left, top = box["x"] - row_box["x"], box["y"] - row_box["y"]
        crops[field] = shot.crop(
            (
                round(left * scale),
                round(top * scale),
                round((left + box["width"]) * scale),
                round((top + box["height"]) * scale),
            )
        )
    return crops


# --- 1. the wallboard, read off the screen ----------------------------------------------------


@needs_tesseract
def test_the_wallboard_tiles_show_the_boards_figures(server: BoardServer) -> None:
    # Twice the pixels: tesseract reads 2 rem digits at 2x reliably (and so do people).
    viewport = {"width": 1400, "height": 900}
    with supervisor_page(server, device_scale_factor=2, viewport=viewport) as board:
        rest = server.api_json("GET", "/api/supervisor/wallboard")
        names = [q["name"] for q in rest["queues"]]
        assert sorted(names) == [
            "billing",
            "care",
            "care_languages",
            "general",
            "sales",
            "technical",
        ], names
        shown = board.page.locator("#tiles [data-queue]").evaluate_all(
            "rows => rows.map(r => r.dataset.queue)"
        )
        assert shown == names, (shown, names)
        # The busiest queue today: its service level is a figure, not a dash.
        queue = max(rest["queues"], key=lambda q: q["offered"])
        assert queue["offered"] > 0 and queue["service_level"] is not None, rest["queues"]
        name = queue["name"]

        fields = ["waiting", "service_level", "abandon_rate"]
        for _ in range(3):  # a push landing mid-screenshot redraws the row: take it again
            before = board.state()["updates"]
            crops = tile_values(board, name, fields)
            if board.state()["updates"] == before:
                break
        page_queue = next(q for q in board.state()["wallboard"]["queues"] if q["name"] == name)
        rest_queue = next(q for q in rest["queues"] if q["name"] == name)
        for field in ("waiting", "service_level", "abandon_rate", "offered", "tiles"):
            assert page_queue[field] == rest_queue[field], (field, page_queue, rest_queue)

        seen = {field: ocr_line(crop) for field, crop in crops.items()}
        expected = {
            "waiting": str(page_queue["waiting"]),
            "service_level": percent(page_queue["service_level"]),
            "abandon_rate": percent(page_queue["abandon_rate"]),
        }
        assert seen == expected, f"read {seen} off the screen; the board says {expected}"

        # The levels the board gave are on the tiles, in words as well as colour.
        row = board.page.locator(f'#tiles [data-queue="{name}"]')
        for field, level in page_queue["tiles"].items():
            tile = row.locator(f'[data-field="{field}"]')
            assert tile.get_attribute("data-level") == (level or "none"), (field, level)
            words = {"ok": "OK", "warn": "Warning", "alert": "Alert"}
            if level:
                assert tile.locator(".tile-level").text_content() == words[level]
        agents = row.locator('[data-field="agents"] dd').all_text_contents()
        assert agents == [
            str(page_queue["agents"][k]) for k in ("available", "on_call", "wrap_up", "away")
        ], agents
        assert board.text(
            f'#tiles [data-queue="{name}"] [data-field="callbacks_owed"] .tile-value'
        ) == str(page_queue["callbacks_owed"])
        assert board.text(f'#tiles [data-queue="{name}"] [data-field="asa"] .tile-value') == (
            seconds(page_queue["asa"])
        )
        bot = rest["bot"]
        assert f"Bot today: {bot['calls']} calls" in board.text("#bot-today"), board.describe()
        print(f"\nOCR of the {name} row: {seen}")


# --- 2. a change pushed to the open page ------------------------------------------------------


def waiting_tile(board: Board, queue: str) -> tuple[str, str]:
    tile = board.page.locator(f'#tiles [data-queue="{queue}"] [data-field="waiting"]')
    return (
        tile.locator(".tile-value").text_content() or "",
        tile.get_attribute("data-level") or "",
    )


def test_a_handoff_reaches_the_open_wallboard_and_crosses_the_threshold(
    server: BoardServer,
) -> None:
    with supervisor_page(server) as board:
        rest = server.api_json("GET", "/api/supervisor/wallboard")
        start = next(q for q in rest["queues"] if q["name"] == ALERTED_QUEUE)["waiting"]
        assert start == 0, "a demo history leaves nobody waiting"
        assert waiting_tile(board, ALERTED_QUEUE)[0] == str(start), board.describe()
        requests = board.board_requests
        assert requests == 1, "the page asked for the board more than once before any change"

        expected = {1: "warn", 2: "alert"}
        for added in (1, 2):
            packet = make_packet(ALERTED_QUEUE)
            queued = server.api_json(
                "POST", "/api/handoffs", 201, json=packet.model_dump(mode="json")
            )
            assert queued["queue"] == ALERTED_QUEUE, queued
            want = str(added)
            selector = f'#tiles [data-queue="{ALERTED_QUEUE}"] [data-field="waiting"]'
            board.page.wait_for_function(
                "([selector, want]) => {"
                "  const tile = document.querySelector(selector);"
                "  return tile && tile.querySelector('.tile-value').textContent === want; }",
                arg=[selector, want],
                timeout=10_000,
            )
            value, level = waiting_tile(board, ALERTED_QUEUE)
            # warn at the threshold, alert at twice it (voicebot/analytics/wallboard.py)
            assert (value, level) == (want, expected[added]), board.describe()
            queue = next(
                q for q in board.state()["wallboard"]["queues"] if q["name"] == ALERTED_QUEUE
            )
            assert queue["waiting"] == added and queue["tiles"]["waiting"] == level
            longest = board.text(
                f'#tiles [data-queue="{ALERTED_QUEUE}"] [data-field="longest_wait"] .tile-value'
            )
            assert re.fullmatch(r"\d+:\d\d", longest), longest

        # A callback owed, and an agent of the queue going away (on their desktop's socket).
        row = f'#tiles [data-queue="{ALERTED_QUEUE}"]'
        owed = int(board.text(f'{row} [data-field="callbacks_owed"] .tile-value'))
        server.api_json(
            "POST", "/api/callbacks", 201, json={"number": "+447700900456", "queue": ALERTED_QUEUE}
        )
        board.page.wait_for_function(
            "([selector, want]) => document.querySelector(selector).textContent === want",
            arg=[f'{row} [data-field="callbacks_owed"] .tile-value', str(owed + 1)],
            timeout=10_000,
        )
        desktop = f"ws://127.0.0.1:{server.port}/api/desktop/ws"
        cookie = {"Cookie": f"{COOKIE}={server.session_cookie(AGENT)}"}
        with connect(desktop, additional_headers=cookie, open_timeout=10) as socket:
            socket.send(json.dumps({"type": "state", "state": "away"}))
            board.page.wait_for_function(
                "(row) => document.querySelector(row + ' [data-field=\"away\"] dd')"
                ".textContent === '1'",
                arg=row,
                timeout=10_000,
            )
            agent = board.page.locator(f'#agents tr[data-agent="{AGENT}"]')
            assert agent.locator("th").text_content() == "Test Agent", board.describe()
            assert agent.locator(".agent-state").text_content() == "Away"
            assert agent.locator(".agent-state").get_attribute("data-state") == "away"
            # Time in state ticks on the page between pushes.
            clock = agent.locator("td.num")
            shown = clock.text_content()
            assert re.fullmatch(r"\d+:\d\d", shown or ""), shown
            board.page.wait_for_function(
                "([selector, was]) => document.querySelector(selector).textContent !== was",
                arg=[f'#agents tr[data-agent="{AGENT}"] td.num', shown],
                timeout=5_000,
            )
        # Pushed over the socket: no request for the board since the first.
        assert board.board_requests == requests, board.board_requests


# --- 3. who may see the page -----------------------------------------------------------------


def test_an_agent_sees_supervisors_only(server: BoardServer) -> None:
    with chromium() as browser:
        board = Board(browser.new_context().new_page(), server)
        board.expected.add((403, "/api/supervisor/wallboard"))
        board.sign_in(AGENT)
        board.wait_for(lambda: board.visible("#forbidden-view"), 10)
        assert board.state()["forbidden"] is True, board.describe()
        assert not board.visible("#main") and not board.visible("#login-view")
        assert board.text("#forbidden-title") == "This page is for supervisors"
        assert "Test Agent" in board.text("#forbidden-text"), board.describe()
        assert board.state()["wallboard"] is None, board.describe()
        assert board.js_errors == [], board.describe()


def close_code(url: str, cookie: str | None) -> tuple[int, list[Any]]:
    """How the server closes the supervisor socket, and what it sent before."""
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    received = []
    with connect(url, additional_headers=headers, open_timeout=10, close_timeout=5) as socket:
        try:
            while True:
                received.append(json.loads(socket.recv(timeout=10)))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, closed
            return closed.rcvd.code, received
    raise AssertionError("unreachable")


def test_the_api_and_the_socket_refuse_agents_and_strangers(server: BoardServer) -> None:
    agent = server.session_cookie(AGENT)
    supervisor = server.session_cookie(SUPERVISOR)
    paths = [
        "/api/supervisor/wallboard",
        "/api/reports/bot",
        "/api/reports/calls",
        "/api/reports/intervals",
        "/api/calls",
        f"/api/calls/{server.call_id}",
        f"/api/calls/{server.call_id}/recordings/{RECORDING}",
    ]
    for path in paths:
        assert server.as_user(agent, path).status_code == 403, path
        assert server.as_user(None, path).status_code == 401, path
        assert server.as_user(supervisor, path).status_code == 200, path

    url = f"ws://127.0.0.1:{server.port}/api/supervisor/ws"
    assert close_code(url, agent) == (4403, [])
    assert close_code(url, None) == (4401, [])
    assert close_code(url, "not-a-session") == (4401, [])
    with connect(url, additional_headers={"Cookie": f"{COOKIE}={supervisor}"}) as socket:
        first = json.loads(socket.recv(timeout=10))
        assert first["type"] == "wallboard" and len(first["queues"]) == 6, first
        socket.send(json.dumps({"type": "ping"}))
        while (message := json.loads(socket.recv(timeout=10)))["type"] == "wallboard":
            pass
        assert message == {"type": "pong"}, message


# --- 4. bot performance ----------------------------------------------------------------------


def test_bot_performance_shows_the_bot_report(server: BoardServer) -> None:
    with supervisor_page(server) as board:
        board.tab("bot")
        board.wait_for(lambda: board.state()["bot"] is not None, 15)
        form = board.page.locator("#bot-form")
        period = {
            "from": form.locator("[name=from]").input_value(),
            "to": form.locator("[name=to]").input_value(),
        }
        report = server.api_json("GET", "/api/reports/bot", params=period)
        assert board.state()["bot"] == report, "the page shows another report than the API's"
        assert report["calls"] > 0, report

        figures = dict(
            board.page.locator("#bot-figures .figure").evaluate_all(
                "boxes => boxes.map(b => [b.dataset.field,"
                " b.querySelector('.figure-value').textContent])"
            )
        )
        latency = report["latency_ms"]
        ms = lambda v: "—" if v is None else f"{js_round(v)} ms"  # noqa: E731
        assert figures == {
            "calls": str(report["calls"]),
            "containment_rate": rate(report["containment_rate"]),
            "handoff_rate": rate(report["handoff_rate"]),
            "sentiment": "—"
            if report["sentiment"] is None
            else f"{'+' if report['sentiment'] > 0 else ''}{report['sentiment']:.2f}",
            "latency_p50": ms(latency["p50"]),
            "latency_p95": ms(latency["p95"]),
        }, (figures, report)
        reasons = board.rows("#bot-reasons")
        assert [r[1:] for r in reasons] == [
            [count(r["calls"]), rate(r["share"])] for r in report["handoff_reasons"]
        ], reasons
        intents = board.rows("#bot-intents")
        assert intents == [[r["intent"], count(r["calls"])] for r in report["top_intents"]]

        chart = board.state()["charts"]["bot"]
        assert chart["points"] == len(report["by_day"]) > 0, chart
        assert board.page.locator("#bot-chart canvas").count() > 0, board.describe()


# --- 5. reports ------------------------------------------------------------------------------


# heading -> (key, format), as supervisor.js writes them
REPORT_COLUMNS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "Queue": ("queue", str),
    "Interval": ("interval", str),
    "Calls": ("calls", count),
    "Contained": ("contained", count),
    "Offered": ("offered", count),
    "Answered": ("answered", count),
    "Abandoned": ("abandoned", count),
    "Service level": ("service_level", rate),
    "ASA": ("asa", seconds),
    "AHT": ("aht", seconds),
    "Abandon rate": ("abandon_rate", rate),
}


def check_report(board: Board, server: BoardServer, choice: str, path: str) -> dict[str, Any]:
    form = board.page.locator("#report-form")
    before = board.state()["report"]
    form.locator("[name=report]").select_option(choice)
    board.wait_for(
        lambda: board.state()["report"] != before and not board.state()["loading"]["reports"], 15
    )
    kind, arg = choice.split(":")
    params = {
        "from": form.locator("[name=from]").input_value(),
        "to": form.locator("[name=to]").input_value(),
        "by" if kind == "calls" else "interval": arg,
    }
    report: dict[str, Any] = server.api_json("GET", path, params=params)
    assert board.state()["report"] == report, "the page shows another report than the API's"
    assert report["rows"], report

    headings = board.headings("#report-table")
    assert headings[0] == ("Queue" if kind == "calls" else "Interval"), headings
    rows = [*report["rows"], {**report["totals"], REPORT_COLUMNS[headings[0]][0]: "Total"}]
    want = []
    for row in rows:
        cells = []
        for heading in headings:
            key, fmt = REPORT_COLUMNS[heading]
            cells.append(fmt(row.get(key)) if key in row else "—")
        want.append(cells)
    shown = board.rows("#report-table")
    assert shown == want, (headings, shown[:3], want[:3])
    assert board.state()["charts"]["report"]["points"] == len(report["rows"])
    assert board.page.locator("#report-chart canvas").count() > 0, board.describe()

    # The CSV link: the same report, as a file for a spreadsheet.
    link = board.page.locator("#report-csv")
    assert link.is_visible(), board.describe()
    with board.page.expect_download() as download:
        link.click()
    saved = Path(download.value.path()).read_bytes()
    assert saved.startswith(b"\xef\xbb\xbf"), saved[:40]
    first = saved[3:].decode("utf-8").splitlines()[0].split(",")
    assert first[0] == headings[0] and "Offered" in first and "Answered" in first, first
    lines = saved.decode("utf-8-sig").splitlines()
    assert len(lines) == 1 + len(rows) and lines[-1].startswith("Total,"), lines[-2:]
    csv = server.api("GET", path, params={**params, "format": "csv"})
    assert csv.status_code == 200 and csv.content == saved, "the download is not the API's CSV"
    return report


def small_rates_stay_percentages(board: Board) -> None:
    """Rates are percentages however small: 0.9% abandoned is not a fraction to show as 90%.
    The demo history need not have such a row, so the API's answer gets one on its way."""

    def small(route: Any) -> None:
        response = route.fetch()
        data = response.json()
        data["rows"][0].update(service_level=0.5, abandon_rate=0.9)
        route.fulfill(response=response, json=data)

    board.page.route("**/api/reports/calls?*", small)
    before = board.state()["report"]
    board.page.locator("#report-form [name=report]").select_option("calls:queue")
    board.wait_for(
        lambda: board.state()["report"] != before and not board.state()["loading"]["reports"], 15
    )
    board.page.unroute("**/api/reports/calls?*")
    headings = board.headings("#report-table")
    first = dict(zip(headings, board.rows("#report-table")[0], strict=True))
    assert (first["Service level"], first["Abandon rate"]) == ("0.5%", "0.9%"), first


def test_reports_show_the_apis_rows_and_download_as_csv(server: BoardServer) -> None:
    with supervisor_page(server, accept_downloads=True) as board:
        board.tab("reports")
        board.wait_for(lambda: board.state()["report"] is not None, 15)
        by_queue = check_report(board, server, "calls:queue", "/api/reports/calls")
        assert {r["queue"] for r in by_queue["rows"]} <= {
            "billing",
            "care",
            "care_languages",
            "general",
            "sales",
            "technical",
        }
        intervals = check_report(board, server, "intervals:30", "/api/reports/intervals")
        starts = [r["interval"] for r in intervals["rows"]]
        assert all(re.search(r"T\d\d:(00|30)", s) for s in starts), starts[:5]
        small_rates_stay_percentages(board)


# --- 6. a call in full -----------------------------------------------------------------------


def test_a_call_shows_its_transcript_events_review_and_recording(server: BoardServer) -> None:
    call = server.api_json("GET", f"/api/calls/{server.call_id}")
    review = server.review
    with supervisor_page(server) as board:
        board.tab("calls")
        board.wait_for(lambda: board.state()["calls"] is not None, 15)
        # Only the calls that failed review: the one the test reviewed.
        form = board.page.locator("#calls-form")
        form.locator("[name=failed]").select_option("true")
        form.locator("[name=max_score]").fill("60")
        form.locator("button[type=submit]").click()
        board.wait_for(
            lambda: (
                [c["id"] for c in (board.state()["calls"] or {}).get("calls", [])]
                == [server.call_id]
            ),
            15,
        )
        row = board.page.locator(f'#calls-list tr[data-call="{server.call_id}"]')
        assert row.locator(".score").text_content() == str(review["score"]), board.describe()
        row.get_by_role("button").click()
        board.wait_for(
            lambda: (board.state()["call"] or {}).get("call", {}).get("id") == server.call_id, 15
        )
        assert board.visible("#call-view"), board.describe()
        assert board.text("#call-title") == f"Call {server.call_id}"
        assert board.text("#call-summary") == review["summary"]

        # The score, and each failed rule with the lines it points at.
        assert board.text("#call-score .score") == str(review["score"])
        assert board.page.locator("#call-score .score").get_attribute("data-passed") == "false"
        assert "Failed" in board.text("#call-score .score-line")
        rules = board.page.locator("#call-score [data-rule]").evaluate_all(
            "items => items.map(i => i.dataset.rule)"
        )
        assert rules == [f["rule"] for f in review["failures"]], rules

        lines = board.page.locator("#call-transcript li").evaluate_all(
            "items => items.map(i => ({seq: Number(i.dataset.seq), text: i.textContent,"
            " failed: i.classList.contains('failed'),"
            " why: (i.querySelector('.line-failed') || {}).textContent || ''}))"
        )
        assert [line["seq"] for line in lines] == [t["seq"] for t in call["transcript"]]
        for line, turn in zip(lines, call["transcript"], strict=True):
            assert turn["text"] in line["text"], (line, turn)
        failed = {seq: f["rule"] for f in review["failures"] for seq in f["lines"]}
        assert {line["seq"]: line["why"] for line in lines if line["failed"]} == {
            seq: f"Failed: {rule}" for seq, rule in failed.items()
        }, lines

        events = board.rows("#call-events")
        assert len(events) == len(call["events"]) > 0, events
        assert [e[1] for e in events] == [count(e["kind"]) for e in call["events"]], events

        # The recording: a player with the same-origin URL, which answers with the audio.
        assert board.visible("#call-recordings-box"), board.describe()
        src = board.page.locator("#call-recordings audio").get_attribute("src")
        assert src == f"{server.url}/api/calls/{server.call_id}/recordings/{RECORDING}", src
        audio = board.page.request.get(src)
        assert audio.status == 200, audio.status
        assert audio.headers["content-type"] == "audio/wav", audio.headers
        assert audio.body()[:4] == b"RIFF" and audio.body()[8:12] == b"WAVE"
        assert server.as_user(None, src.removeprefix(server.url)).status_code == 401
