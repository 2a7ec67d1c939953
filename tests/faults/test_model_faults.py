"""The LLM brain's model fails on the wire: every turn still gets an answer, and the call goes on.

The scripted OpenAI-compatible server (voicebot/testing/scripted_model.py) fails in the ways a
real one does: a reply slower than the brain's timeout, a connection dropped mid-stream, chunks
that are not JSON, HTTP 500 and 429. Each such turn is read by the offline brain (the caller
asked for their balance and is asked for their account number, as without a model); the third
failure in a call hands it off with reason ``assistant unavailable``. No exception escapes
``caller_said`` and nothing the brain logs carries a traceback: a failure is a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MONDAY_10AM, REPO
from voicebot.config import Settings
from voicebot.handoff.packet import HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.knowledge.service import open_knowledge
from voicebot.runtime.bot import BotRuntime
from voicebot.testing.scripted_model import ScriptedModel, ScriptedModelServer

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 0.5  # the brain's per-request timeout, seconds
TURN_DEADLINE = 20.0  # a turn that takes longer than this has hung, whatever the fault


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


@pytest.fixture
def script(server: ScriptedModelServer) -> Iterator[ScriptedModel]:
    server.script.reset()
    server.script.slow_seconds = TIMEOUT * 20
    yield server.script
    server.script.reset()


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    settings = Settings(bot_dir=REPO, data_dir=tmp_path_factory.mktemp("kb"))
    return open_knowledge(settings, REPO / "knowledge", ephemeral=True)


@pytest.fixture
async def runtime(server: ScriptedModelServer, knowledge, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings(
        bot_dir=REPO,
        data_dir=tmp_path,
        llm_base_url=server.base_url,
        llm_model="scripted-model",
        llm_timeout=TIMEOUT,
    )
    packets: list[HandoffPacket] = []
    bot = BotRuntime.load(
        settings,
        clock=lambda: MONDAY_10AM,
        handoffs=CallbackHandoffSink(packets.append),
        knowledge=knowledge,
    )
    bot.packets = packets  # type: ignore[attr-defined]
    yield bot
    await bot.aclose()


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    """The product's log records that carry an exception (an unhandled failure's mark)."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.name.startswith("voicebot") and (r.exc_info or r.levelno >= logging.ERROR)
    ]


@pytest.mark.parametrize("fault", ["slow", "reset", "garbage", "500", "429"])
async def test_a_failing_model_turn_is_read_by_the_offline_brain(
    fault: str, runtime: BotRuntime, script: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    call = runtime.new_call(offline_actions=False)
    await call.start()
    if fault.isdigit():
        script.script([{"error": int(fault)}])
    else:
        script.fault(fault)
    with caplog.at_level(logging.WARNING):
        reply = await asyncio.wait_for(call.caller_said("what's my balance"), TURN_DEADLINE)
    assert len(script.requests) == 1, "the faulty reply was asked for"
    assert "account number" in reply.text  # the offline classifier took the turn
    assert not reply.ended and reply.handoff is None
    failed = [r for r in caplog.records if r.getMessage().startswith("model failed")]
    assert len(failed) == 1, [r.getMessage() for r in caplog.records]
    assert tracebacks(caplog.records) == []
    # The call goes on with the model once it answers again.
    script.script([{"tool": "fill_slots", "args": {"account_number": "12345678"}}])
    following = await asyncio.wait_for(call.caller_said("12345678"), TURN_DEADLINE)
    assert "postcode" in following.text
    assert call.state.slots.get("account_number") == "12345678"


async def test_three_different_failures_hand_the_call_off(
    runtime: BotRuntime, script: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    call = runtime.new_call(offline_actions=False)
    await call.start()
    with caplog.at_level(logging.WARNING):
        script.fault("reset")
        first = await asyncio.wait_for(call.caller_said("erm so the thing is"), TURN_DEADLINE)
        assert not first.ended and first.handoff is None
        script.fault("garbage")
        second = await asyncio.wait_for(call.caller_said("hmm"), TURN_DEADLINE)
        assert not second.ended and second.handoff is None
        script.fault("slow")
        third = await asyncio.wait_for(call.caller_said("are you there"), TURN_DEADLINE)
    assert third.handoff is not None
    assert third.handoff.reason == "assistant unavailable"
    assert third.handoff.priority == "high"
    assert [p.reason for p in runtime.packets] == ["assistant unavailable"]  # type: ignore[attr-defined]
    assert third.text.strip(), "the caller hears something before the transfer"
    assert tracebacks(caplog.records) == []
    assert script.unscripted == 0  # no summary is asked of a model that failed three times
