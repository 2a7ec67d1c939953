"""The knowledge base inside calls: the answer step, the open-conversation fallback, sources in the
handoff packet, and a Chroma server that dies mid-call."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MONDAY_10AM, write_bot
from tests.knowledge.conftest import _free_port
from voicebot.config import Settings
from voicebot.handoff.packet import HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.knowledge.service import KnowledgeService
from voicebot.knowledge.store import wait_for_server
from voicebot.runtime.bot import BotRuntime

BOT = """\
bot:
  name: Test Telecom
  knowledge_fallback: { min_score: 0.45 }
queues: { general: {} }
intents:
  question: { examples: [how much does it cost, is there a charge for that, what is the price of roaming] }
flows:
  question:
    trigger: question
    steps:
      - answer:
        filter: [billing]
        min_score: 0.35
        on_no_answer: { handoff: general, reason: question not answered }
      - handoff: general
        reason: wants a person after the answer
"""


def runtime_for(root: Path, knowledge: KnowledgeService) -> tuple[BotRuntime, list[HandoffPacket]]:
    write_bot(root, {"bot.yaml": BOT})
    packets: list[HandoffPacket] = []
    runtime = BotRuntime.load(
        Settings(bot_dir=root, data_dir=root / "data"),
        clock=lambda: MONDAY_10AM,
        handoffs=CallbackHandoffSink(packets.append),
        knowledge=knowledge,
    )
    return runtime, packets


async def test_the_answer_is_spoken_and_its_source_reaches_the_agent(
    tmp_path: Path, service: KnowledgeService
) -> None:
    runtime, packets = runtime_for(tmp_path, service)
    call = runtime.new_call()
    await call.start()
    reply = await call.caller_said("how much does a paper bill cost")
    text = " ".join(line.text for line in reply.lines)
    assert "A paper bill costs £1.50 a month." in text
    assert [s.file for s in call.state.last_sources] == ["paper-bills.md"]
    [packet] = packets
    assert packet.reason == "wants a person after the answer"
    assert [(s.file, s.heading) for s in packet.sources] == [
        ("paper-bills.md", "Paper bills > What a paper bill costs")
    ]


async def test_the_step_filter_keeps_other_documents_out(
    tmp_path: Path, service: KnowledgeService
) -> None:
    runtime, packets = runtime_for(tmp_path, service)
    call = runtime.new_call()
    await call.start()
    # roaming.md answers this, but the step only searches documents tagged billing
    reply = await call.caller_said("what is the price of roaming in switzerland")
    assert call.state.intent == "question"
    assert reply.lines[0].text == "I'm sorry, I don't have an answer to that."
    [packet] = packets
    assert packet.reason == "question not answered"
    assert packet.sources == []


async def test_an_unmatched_request_is_answered_from_the_documents(
    tmp_path: Path, service: KnowledgeService
) -> None:
    runtime, packets = runtime_for(tmp_path, service)
    call = runtime.new_call()
    await call.start()
    reply = await call.caller_said("my hub has a solid orange light")
    text = " ".join(line.text for line in reply.lines)
    assert "no broadband signal" in text
    assert call.state.intent is None and [s.file for s in call.state.last_sources] == [
        "router.html"
    ]
    assert reply.listen is not None and not packets  # back to the open question

    nonsense = await call.caller_said("purple monkey dishwasher")
    assert [line.text for line in nonsense.lines] == [
        "Sorry, I didn't catch that. Could you say it another way?"
    ]
    assert call.state.last_sources == []


@pytest.fixture
def doomed_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "chroma"),
            "run",
            "--path",
            str(tmp_path / "chroma"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_server(url, timeout=60)
    yield url, process
    process.kill()
    process.wait(timeout=20)


async def test_a_chroma_server_that_dies_mid_call_means_on_no_answer_not_a_crash(
    tmp_path: Path, docs_dir: Path, doomed_server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, process = doomed_server
    settings = Settings(data_dir=tmp_path / "data", bot_dir=tmp_path, chroma_url=url)
    knowledge = KnowledgeService.open(settings, docs_dir)
    knowledge.ingest()
    runtime, packets = runtime_for(tmp_path / "bot", knowledge)
    call = runtime.new_call()
    await call.start()

    process.kill()
    process.wait(timeout=20)
    reply = await call.caller_said("how much does a paper bill cost")
    assert "don't have an answer" in " ".join(line.text for line in reply.lines)
    [packet] = packets
    assert packet.reason == "question not answered"
