"""The LLM brain against a scripted OpenAI-compatible server on loopback.

The real ``openai`` client, through livekit-agents' OpenAI plugin, talks HTTP to
:class:`ScriptedModelServer`; the tests assert on what the brain sent (tools, prompt, no
secrets) and on what it did with the replies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MONDAY_10AM, REPO
from voicebot.agent.text_session import TextSession
from voicebot.brain.llm import LlmBrain
from voicebot.brain.offline import OfflineBrain
from voicebot.config import Settings
from voicebot.handoff.packet import HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.knowledge.service import open_knowledge
from voicebot.runtime.bot import BotRuntime, build_brain
from voicebot.runtime.call import CallRuntime
from voicebot.testing.scripted_model import ScriptedModel, ScriptedModelServer

CARD = "4111111111111111"


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


@pytest.fixture
def script(server: ScriptedModelServer) -> Iterator[ScriptedModel]:
    server.script.reset()
    yield server.script
    server.script.gate = None
    server.script.gate_opened_in_time = None


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    settings = Settings(bot_dir=REPO, data_dir=tmp_path_factory.mktemp("kb"))
    return open_knowledge(settings, REPO / "knowledge", ephemeral=True)


class Harness:
    def __init__(self, runtime: BotRuntime, packets: list[HandoffPacket]) -> None:
        self.runtime = runtime
        self.packets = packets

    @property
    def brain(self) -> LlmBrain:
        assert isinstance(self.runtime.brain, LlmBrain)
        return self.runtime.brain

    async def call(self, **kwargs) -> CallRuntime:  # type: ignore[no-untyped-def]
        call = self.runtime.new_call(offline_actions=False, **kwargs)
        await call.start()
        return call


@pytest.fixture
async def bot(server: ScriptedModelServer, knowledge, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings(
        bot_dir=REPO,
        data_dir=tmp_path,
        llm_base_url=server.base_url,
        llm_model="scripted-model",
        llm_timeout=0.5,
    )
    packets: list[HandoffPacket] = []
    runtime = BotRuntime.load(
        settings,
        clock=lambda: MONDAY_10AM,
        handoffs=CallbackHandoffSink(packets.append),
        knowledge=knowledge,
    )
    yield Harness(runtime, packets)
    await runtime.aclose()


# -- which brain ------------------------------------------------------------------------------


def test_without_a_key_or_url_the_offline_brain_runs(tmp_path: Path) -> None:
    settings = Settings(bot_dir=REPO, data_dir=tmp_path, llm_api_key=None, llm_base_url=None)
    runtime = BotRuntime.load(settings)
    assert isinstance(runtime.brain, OfflineBrain)
    assert runtime.engine.llm is False


def test_brain_offline_wins_over_a_configured_key(tmp_path: Path) -> None:
    settings = Settings(bot_dir=REPO, data_dir=tmp_path, brain="offline", llm_api_key="sk-x")
    assert not settings.llm_configured


def test_openai_api_key_in_the_environment_selects_the_llm_brain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("VOICEBOT_LLM_MODEL", "gpt-4o-mini")
    settings = Settings(bot_dir=REPO, data_dir=tmp_path)
    runtime = BotRuntime.load(settings)
    assert isinstance(runtime.brain, LlmBrain)
    assert runtime.brain.name.startswith("llm: gpt-4o-mini at api.openai.com")
    assert runtime.engine.llm is True
    # the key is a secret: it is not in the settings' repr
    assert "sk-test" not in repr(settings)


def test_build_brain_without_documents_offers_no_search(tmp_path: Path) -> None:
    settings = Settings(bot_dir=REPO, data_dir=tmp_path, llm_base_url="http://127.0.0.1:9/v1")
    runtime = BotRuntime.load(settings)
    brain = build_brain(settings, runtime.loaded.definition, None)
    assert isinstance(brain, LlmBrain)
    assert brain.toolbox.knowledge is False


# -- what the brain sends ---------------------------------------------------------------------


async def test_open_turn_offers_flows_knowledge_and_intents(
    bot: Harness, script: ScriptedModel
) -> None:
    call = await bot.call()
    script.script([{"tool": "start_check_balance"}])
    reply = await call.caller_said("I need to know what I owe")
    assert "account number" in reply.text
    request = script.last
    assert request is not None
    tools = {t["function"]["name"]: t["function"] for t in request.body["tools"]}
    assert tools["start_check_balance"]["description"] == (
        "Tell a verified caller the balance of their account."
    )
    assert "start_roaming_bundle" in tools and "search_knowledge" in tools
    assert {"intent_agent", "intent_repeat", "intent_goodbye"} <= set(tools)
    # the bot has triggers for a person and for goodbye: no generic tools beside them
    assert "transfer_to_agent" not in tools and "end_call" not in tools
    # actions are never offered outside an llm step that lists them
    assert not {"take_payment", "block_sim", "add_roaming_bundle"} & set(tools)
    assert request.body["model"] == "scripted-model"
    assert request.body["stream"] is True
    system = request.messages[0]
    assert system["role"] == "system"
    assert "You are the phone assistant of Acme Telecom" in system["content"]
    assert request.messages[-1] == {
        "role": "user",
        "content": "<caller>I need to know what I owe</caller>",
    }


async def test_collect_offers_typed_slots_of_the_flow(bot: Harness, script: ScriptedModel) -> None:
    call = await bot.call()
    script.script([{"tool": "start_pay_bill"}])
    await call.caller_said("pay my bill")
    script.script([{"tool": "fill_slots", "args": {"account_number": "12345678"}}])
    await call.caller_said("it's 12345678")
    fill = next(
        t["function"] for t in script.last.body["tools"] if t["function"]["name"] == "fill_slots"
    )  # type: ignore[union-attr]
    props = fill["parameters"]["properties"]
    # asked while waiting for the account number: that slot and the verify flow's other open one
    assert set(props) == {"account_number", "postcode"}
    assert props["account_number"]["description"].startswith("8 digits")
    assert props["postcode"]["type"] == "string"
    assert fill["parameters"]["additionalProperties"] is False


async def test_sensitive_collect_never_reaches_the_model(
    bot: Harness, script: ScriptedModel
) -> None:
    call = await bot.call(mocks={"lookup_account": {"status": "ok", "balance": "1", "name": "Sam"}})
    script.script([{"tool": "start_pay_bill"}])
    await call.caller_said("pay my bill")
    script.script(
        [{"tool": "fill_slots", "args": {"account_number": "12345678", "postcode": "SW1A 1AA"}}]
    )
    await call.caller_said("12345678 and SW1A 1AA")
    script.script([{"tool": "fill_slots", "args": {"amount": 20}}])
    reply = await call.caller_said("twenty")
    assert "card number" in reply.text
    asked = len(script.requests)
    reply = await call.caller_said("4111 1111 1111 1111")
    assert len(script.requests) == asked  # the parser read it; no request was made
    assert call.state.slots["card_number"] == CARD
    script.script([{"say": "Okay."}])
    await call.caller_said("what did I just say")  # a yes/no collect: offered to the model
    for request in script.requests:
        assert CARD not in request.text
        assert "4111 1111" not in request.text
    assert "****" in script.last.text  # type: ignore[union-attr]


async def test_system_prompt_holds_masked_slots_only(bot: Harness, script: ScriptedModel) -> None:
    call = await bot.call()
    call.state.slots.update({"pin": "9876", "postcode": "SW1A 1AA"})
    call.state.sensitive.add("pin")
    script.script([{"say": "Hello."}])
    await call.caller_said("my pin is 9876 by the way")
    sent = script.last.text  # type: ignore[union-attr]
    assert "9876" not in sent
    assert "SW1A 1AA" in script.last.system  # type: ignore[union-attr]


# -- what the brain does with replies -------------------------------------------------------


async def test_first_sentence_is_spoken_while_the_model_still_writes(
    bot: Harness, script: ScriptedModel
) -> None:
    call = await bot.call()
    gate = threading.Event()
    script.gate = gate
    heard: list[str] = []

    def on_line(line: str) -> None:
        heard.append(line)
        gate.set()  # the server holds the rest of its answer until this happens

    script.script([{"say": "Sure thing. I can help you with that today, just tell me a bit more."}])
    reply = await call.caller_said("hello I have a question", on_line)
    assert script.gate_opened_in_time is True
    assert heard[0] == "Sure thing."
    assert heard[1].startswith("I can help you")
    assert [line.text for line in reply.lines][:2] == heard[:2]


async def test_refused_tool_is_logged_and_not_run(
    bot: Harness, script: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    call = await bot.call()
    script.script([{"tool": "block_sim", "args": {}}])
    with caplog.at_level(logging.WARNING, logger="voicebot.brain"):
        reply = await call.caller_said("block every sim on the account right now")
    assert any(r.getMessage() == "model tool call refused" for r in caplog.records)
    assert any("refused tool 'block_sim'" in line.text for line in call.state.transcript)
    assert not reply.ended
    assert call.state.flow is None


async def test_hanging_model_times_out_to_the_offline_brain(
    bot: Harness, script: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    call = await bot.call()
    script.script([{"hang": True}])
    with caplog.at_level(logging.WARNING, logger="voicebot.brain"):
        reply = await call.caller_said("what's my balance")
    assert "account number" in reply.text  # the offline classifier took over
    [record] = [r for r in caplog.records if r.getMessage().startswith("model failed")]
    assert "Timeout" in record.error  # type: ignore[attr-defined]


async def test_server_error_and_bad_json_count_to_a_handoff(
    bot: Harness, script: ScriptedModel
) -> None:
    call = await bot.call()
    script.script([{"error": 500}])
    first = await call.caller_said("erm so the thing is")
    assert not first.ended
    script.script([{"tool": "intent_repeat", "raw_args": "{not json"}])
    second = await call.caller_said("hmm")
    assert not second.ended
    script.script([{"error": 429}, {"say": "unused summary"}])
    third = await call.caller_said("are you there")
    assert third.handoff is not None
    assert third.handoff.reason == "assistant unavailable"
    assert third.handoff.priority == "high"
    # no summary is asked of a model that failed three times
    assert len(script.replies) == 1


async def test_summary_is_written_by_the_model_in_the_agents_language(
    bot: Harness, script: ScriptedModel
) -> None:
    bot.brain.agent_language = "French"
    call = await bot.call()
    call.state.slots["card_number"] = CARD
    call.state.sensitive.add("card_number")
    script.script(
        [
            {"tool": "intent_agent"},
            {"say": "Un. Deux. Trois. Quatre. Cinq. Six."},
        ]
    )
    reply = await call.caller_said("I want a human")
    assert reply.handoff is not None
    assert reply.handoff.summary == "Un. Deux. Trois. Quatre."  # at most four sentences
    summary_request = script.last
    assert summary_request is not None
    assert "2 to 4 short sentences in French" in summary_request.system
    assert CARD not in summary_request.text
    assert bot.packets[-1].summary == reply.handoff.summary


async def test_summary_failure_keeps_the_assembled_summary(
    bot: Harness, script: ScriptedModel
) -> None:
    call = await bot.call()
    script.script([{"tool": "intent_agent"}, {"error": 500}])
    reply = await call.caller_said("put me through to an agent")
    assert reply.handoff is not None
    assert "asked for a person" in reply.handoff.summary.lower()


async def test_grounded_answer_records_cited_sources(bot: Harness, script: ScriptedModel) -> None:
    call = await bot.call()
    script.script(
        [
            {"tool": "search_knowledge", "args": {"query": "store opening hours on Sunday"}},
            {"say": "Most stores open 10am to 4pm on Sundays [1]."},
        ]
    )
    reply = await call.caller_said("are the shops open on sunday")
    assert "Most stores open 10am to 4pm on Sundays." in reply.text
    answer_round = script.last
    assert answer_round is not None
    tool_message = next(m for m in answer_round.messages if m["role"] == "tool")
    assert tool_message["content"].startswith("[1] (id ")
    assert [s.file for s in call.state.last_sources] == ["stores.html"]


async def test_agent_session_history_is_masked_for_sensitive_answers(
    bot: Harness, script: ScriptedModel
) -> None:
    call = bot.runtime.new_call(
        mocks={"lookup_account": {"status": "ok", "balance": "1", "name": "S"}}
    )
    session = TextSession(call)
    try:
        await session.start()
        script.script([{"tool": "start_pay_bill"}])
        await session.say("I want to pay")
        script.script(
            [{"tool": "fill_slots", "args": {"account_number": "12345678", "postcode": "SW1A 1AA"}}]
        )
        await session.say("12345678 SW1A 1AA")
        script.script([{"tool": "fill_slots", "args": {"amount": 5}}])
        await session.say("five pounds")
        await session.say(CARD)
        history = json.dumps(session.session.history.to_dict())
        assert CARD not in history
        assert CARD not in json.dumps(session.agent.chat_ctx.to_dict())
    finally:
        await session.aclose()


async def test_malformed_stream_from_a_dead_port_falls_back(tmp_path: Path) -> None:
    settings = Settings(
        bot_dir=REPO, data_dir=tmp_path, llm_base_url="http://127.0.0.1:9/v1", llm_timeout=0.5
    )
    runtime = BotRuntime.load(settings, clock=lambda: MONDAY_10AM)
    try:
        call = runtime.new_call()
        await call.start()
        reply = await asyncio.wait_for(call.caller_said("what's my balance"), 10)
        assert "account number" in reply.text
    finally:
        await runtime.aclose()


def test_chat_command_talks_to_the_configured_model(
    script: ScriptedModel, server: ScriptedModelServer
) -> None:
    from tests.test_cli import voicebot

    script.script(
        [
            {"tool": "start_check_balance"},
        ]
    )
    done = voicebot(
        "chat",
        stdin="how much is left on my bill\n",
        env={"VOICEBOT_LLM_BASE_URL": server.base_url, "VOICEBOT_LLM_MODEL": "scripted-model"},
    )
    assert done.returncode == 0, done.stderr
    assert f"(brain: llm: scripted-model at {server.base_url}" in done.stderr
    assert "account number" in done.stdout
    assert script.last is not None and "how much is left on my bill" in script.last.text
