"""A flow's webhook fails (too slow, or 5xx) on a real server on loopback: the step's on_error runs.

The webhooks are real HTTP requests from the call to an aiohttp server on loopback; the server
records every request, so a test cannot pass because the webhook was never called. Without an
``on_error`` the call gets the documented apology and a handoff (docs/flows.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import Bot, write_bot

pytestmark = pytest.mark.timeout(60)

TURN_DEADLINE = 20.0


@dataclass
class Backend:
    url: str
    seen: list[str] = field(default_factory=list)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend("")

    async def slow(request: web.Request) -> web.Response:
        server.seen.append(request.path)
        await asyncio.sleep(10)  # far beyond the action's timeout
        return web.json_response({"status": "ok"})

    async def broken(request: web.Request) -> web.Response:
        server.seen.append(request.path)
        return web.Response(status=int(request.match_info["code"]), text="backend down")

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/status/{code}", broken)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


def bot_yaml(base: str) -> str:
    return f"""\
bot:
  name: Test
  greeting: Hello. How can I help?
  limits: {{ no_input_timeout: 5, max_no_input: 1, max_no_match: 1 }}
queues:
  general: {{ skills: [general] }}
intents:
  pay: {{ examples: [I want to pay my bill, make a payment] }}
  outage: {{ examples: [is there an outage, my internet is down] }}
  order: {{ examples: [where is my order, track my parcel] }}
actions:
  charge: {{ http: {{ method: POST, url: "{base}/slow", timeout: 0.3 }} }}
  outage_check: {{ http: {{ method: POST, url: "{base}/status/503", timeout: 2 }} }}
  track: {{ http: {{ method: POST, url: "{base}/status/500", timeout: 2 }} }}
flows:
  pay:
    trigger: pay
    steps:
      - action: charge
        on_error: {{ say: "Sorry, the payment system is slow today and nothing was taken." }}
      - say: Is there anything else?
  outage:
    trigger: outage
    steps:
      - action: outage_check
        on_error: {{ handoff: general, reason: outage check failed }}
      - say: There is no outage.
  order:
    trigger: order
    steps:
      - action: track
      - say: Your order is on its way.
"""


@pytest.fixture
async def bot(backend: Backend, tmp_path: Path) -> AsyncIterator[Bot]:
    write_bot(tmp_path, {"bot.yaml": bot_yaml(backend.url)})
    made = Bot(tmp_path)
    yield made
    await made.runtime.aclose()  # its webhook client, before the loop closes


def problems(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.name.startswith("voicebot") and (r.exc_info or r.levelno >= logging.ERROR)
    ]


async def test_a_webhook_timeout_runs_on_error_and_the_flow_goes_on(
    bot: Bot, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    call = bot.runtime.new_call(offline_actions=False)
    await call.start()
    with caplog.at_level(logging.INFO, logger="voicebot"):
        reply = await asyncio.wait_for(call.caller_said("I want to pay my bill"), TURN_DEADLINE)
    assert backend.seen == ["/slow"]
    assert "payment system is slow" in reply.text
    assert "anything else" in reply.text  # the step after the action ran
    assert not reply.ended and reply.handoff is None and bot.packets == []
    finished = [r for r in caplog.records if r.getMessage() == "action finished"]
    assert [(r.action, r.ok, r.error) for r in finished] == [("charge", False, "timeout")]  # type: ignore[attr-defined]
    assert problems(caplog.records) == []


async def test_a_webhook_5xx_runs_on_error_which_hands_off(
    bot: Bot, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    call = bot.runtime.new_call(offline_actions=False)
    await call.start()
    with caplog.at_level(logging.INFO, logger="voicebot"):
        reply = await asyncio.wait_for(call.caller_said("is there an outage"), TURN_DEADLINE)
    assert backend.seen == ["/status/503"]
    assert reply.handoff is not None
    assert reply.handoff.reason == "outage check failed"
    assert "no outage" not in reply.text
    assert [p.reason for p in bot.packets] == ["outage check failed"]
    assert problems(caplog.records) == []


async def test_a_webhook_5xx_without_on_error_apologises_and_hands_off(
    bot: Bot, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    call = bot.runtime.new_call(offline_actions=False)
    await call.start()
    with caplog.at_level(logging.INFO, logger="voicebot"):
        reply = await asyncio.wait_for(call.caller_said("where is my order"), TURN_DEADLINE)
    assert backend.seen == ["/status/500"]
    assert "something went wrong on our side" in reply.text
    assert reply.handoff is not None
    assert reply.handoff.priority == "high"
    assert reply.handoff.reason == "action 'track' failed"
    assert "on its way" not in reply.text
    assert problems(caplog.records) == []
