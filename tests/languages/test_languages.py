"""Bots of several languages: validation with line numbers, detection and switching, the
Spanish documents from a real Chroma, the voice per language and the language skill."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import MONDAY_10AM, write_bot
from voicebot.config import Settings
from voicebot.flows.errors import FlowError
from voicebot.flows.loader import load_bot
from voicebot.handoff.packet import HandoffPacket
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.knowledge.service import KnowledgeService
from voicebot.nlu.language import LanguageDetector
from voicebot.runtime.bot import BotRuntime
from voicebot.speech.stack import build_tts

BOT = """\
bot:
  name: Test Telecom
  languages: [en-GB, es-ES]
  greeting: { en-GB: "Hello, how can I help?", es-ES: "Hola, ¿en qué puedo ayudarle?" }
  anything_else: { en-GB: "Anything else?", es-ES: "¿Algo más?" }
queues:
  general: { skills: [general], language_skill: true }
intents:
  agent:
    examples: { en-GB: [talk to a person, agent], es-ES: [hablar con una persona, agente] }
  question:
    examples:
      en-GB: [how much does roaming cost, what is the price of roaming]
      es-ES: [cuánto cuesta la itinerancia, cuál es el precio del roaming]
flows:
  agent:
    trigger: agent
    steps:
      - handoff: general
        announce: { en-GB: Putting you through., es-ES: Le paso con un compañero. }
  question:
    trigger: question
    steps:
      - answer:
        min_score: 0.2
        on_no_answer: { handoff: general }
"""


def _issues(tmp_path: Path, text: str) -> list[str]:
    write_bot(tmp_path, {"bot.yaml": text})
    with pytest.raises(FlowError) as caught:
        load_bot(tmp_path)
    return [str(issue) for issue in caught.value.issues]


def test_a_prompt_missing_in_a_declared_language_is_an_error_with_its_line(tmp_path: Path) -> None:
    text = BOT.replace(
        "announce: { en-GB: Putting you through., es-ES: Le paso con un compañero. }",
        "announce: Putting you through.",
    )
    issues = _issues(tmp_path, text)
    assert any(
        i.startswith("flows/bot.yaml:20:19:") and "its announce has no es-ES text" in i
        for i in issues
    ), issues


def test_an_undeclared_language_key_is_an_error(tmp_path: Path) -> None:
    text = BOT.replace('es-ES: "¿Algo más?" }', 'es-ES: "¿Algo más?", fr-FR: "Autre chose ?" }')
    issues = _issues(tmp_path, text)
    assert any(
        i.startswith("flows/bot.yaml:5:") and "'fr-FR', which is not a language of the bot" in i
        for i in issues
    ), issues


def test_language_must_be_one_of_languages(tmp_path: Path) -> None:
    text = BOT.replace(
        "  languages: [en-GB, es-ES]", "  language: fr-FR\n  languages: [en-GB, es-ES]"
    )
    issues = _issues(tmp_path, text)
    assert any("'language' is fr-FR, which is not one of 'languages'" in i for i in issues), issues


def test_any_marks_text_the_same_in_every_language(tmp_path: Path) -> None:
    text = BOT.replace(
        'anything_else: { en-GB: "Anything else?", es-ES: "¿Algo más?" }',
        'anything_else: { any: "Acme?" }',
    )
    write_bot(tmp_path, {"bot.yaml": text})
    assert load_bot(tmp_path).definition.bot.spoken_languages == ["en-GB", "es-ES"]


def test_detection_has_hysteresis() -> None:
    detector = LanguageDetector(["en-GB", "es-ES"])
    first = detector.decide("quiero pagar mi factura", "en-GB", caller_turns=0, chosen=False)
    assert first.language == "es-ES"
    # later in a Spanish call, one English word does not flip it; a sentence does
    assert detector.decide("okay", "es-ES", caller_turns=3, chosen=False).language == "es-ES"
    assert (
        detector.decide(
            "my internet is not working", "es-ES", caller_turns=3, chosen=False
        ).language
        == "en-GB"
    )
    asked = detector.decide("can we speak Spanish please", "en-GB", caller_turns=2, chosen=False)
    assert asked.language == "es-ES" and asked.requested


def _runtime(root: Path, packets: list[HandoffPacket], knowledge: KnowledgeService | None = None):
    settings = Settings(bot_dir=root, data_dir=root / "data")
    return BotRuntime.load(
        settings,
        clock=lambda: MONDAY_10AM,
        handoffs=CallbackHandoffSink(packets.append),
        knowledge=knowledge,
    )


def test_a_mid_call_switch_changes_prompts_and_the_handoff_skill(tmp_path: Path) -> None:
    write_bot(tmp_path, {"bot.yaml": BOT})
    packets: list[HandoffPacket] = []
    runtime = _runtime(tmp_path, packets)

    async def run() -> list[str]:
        call = runtime.new_call()
        said = [(await call.start()).text]
        said.append((await call.caller_said("¿podemos hablar en español?")).text)
        said.append((await call.caller_said("quiero hablar con una persona")).text)
        return said

    greeting, switched, handed = asyncio.run(run())
    assert greeting == "Hello, how can I help?"
    assert "seguimos en español" in switched
    assert "Le paso con un compañero." in handed
    assert packets[-1].language == "es-ES"
    assert "lang:es" in packets[-1].skills and "general" in packets[-1].skills


def test_an_unknown_start_language_is_refused(tmp_path: Path) -> None:
    write_bot(tmp_path, {"bot.yaml": BOT})
    runtime = _runtime(tmp_path, [])
    with pytest.raises(ValueError, match="not one of the bot's"):
        runtime.new_call(language="fr-FR")


def test_the_answer_comes_from_the_documents_in_the_call_language(tmp_path: Path) -> None:
    write_bot(tmp_path, {"bot.yaml": BOT})
    docs = tmp_path / "knowledge"
    (docs / "es").mkdir(parents=True)
    (docs / "roaming.md").write_text(
        "# Roaming\n\nRoaming in Europe costs 2.50 pounds a day.\n", encoding="utf-8"
    )
    (docs / "es" / "itinerancia.md").write_text(
        "# Itinerancia\n\nLa itinerancia en Europa cuesta 2,50 libras al día.\n", encoding="utf-8"
    )
    settings = Settings(bot_dir=tmp_path, data_dir=tmp_path / "data")
    knowledge = KnowledgeService.open(settings, docs)
    knowledge.ingest()
    runtime = _runtime(tmp_path, [], knowledge)

    async def ask(language: str, question: str) -> tuple[str, list[str]]:
        call = runtime.new_call(language=language)
        await call.start()
        reply = await call.caller_said(question)
        return reply.text, [s.file or "" for s in call.state.last_sources]

    spanish, sources = asyncio.run(ask("es-ES", "cuánto cuesta la itinerancia"))
    assert sources == ["es/itinerancia.md"] and "libras al día" in spanish
    english, sources = asyncio.run(ask("en-GB", "how much does roaming cost"))
    assert sources == ["roaming.md"] and "pounds a day" in english


def test_the_synthesiser_speaks_each_language_with_its_own_voice(tmp_path: Path) -> None:
    write_bot(tmp_path, {"bot.yaml": BOT})
    definition = load_bot(tmp_path).definition
    settings = Settings(bot_dir=tmp_path, data_dir=tmp_path / "data", tts="espeak")
    english, _ = build_tts(settings, definition, edge_ok=False)
    spanish, label = build_tts(settings, definition, edge_ok=False, language="es-ES")
    assert english.model.startswith("en")
    assert spanish.model == "es" and "espeak-ng" in label

    async def synthesise() -> int:
        frames = 0
        async with spanish.synthesize("Hola, ¿en qué puedo ayudarle?") as stream:
            async for _ in stream:
                frames += 1
        return frames

    assert asyncio.run(synthesise()) > 0
