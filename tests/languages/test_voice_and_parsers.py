"""A voice call that changes language speaks with that language's voice from the next line on,
through the real audio path (keypad tones, silero VAD, pocketsphinx, espeak-ng); Spanish
answers are read by Spanish word tables; the engine's own lines that quote a value are Spanish
on a Spanish call."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audio.conftest import audio_settings
from tests.conftest import write_bot
from voicebot.config import Settings
from voicebot.flows.errors import FlowError
from voicebot.flows.loader import load_bot
from voicebot.nlu.parsers import SlotSpec, parse_keypad, parse_slot, words_to_number
from voicebot.runtime.bot import BotRuntime
from voicebot.speech import vocabulary
from voicebot.speech.stack import build_speech
from voicebot.speech.tts.languages import LanguageTTS
from voicebot.testing.audio_session import AudioTestSession

# Chosen by keypad: the offline recogniser hears only English, so a Spanish caller picks the
# language with a key, then keys in the account number.
BOT = """\
bot:
  name: Tiny
  languages: [en-GB, es-ES]
  start: choose
  greeting: { en-GB: "Hello from Tiny.", es-ES: "Hola, le atiende Tiny." }
queues: { general: {} }
flows:
  choose:
    steps:
      - menu: language
        prompt: { any: "For English press 1. Para español, pulse 2." }
        options:
          - { key: "1", say: [English], next: english }
          - { key: "2", say: [Spanish, español], next: spanish }
      - id: english
        set: { language: en-GB }
        next: account
      - id: spanish
        set: { language: es-ES }
        next: account
      - id: account
        collect: account
        type: digits
        length: 4
        dtmf: true
        confirm: true
        prompt:
          en-GB: Please key in your four digit account number.
          es-ES: Marque su número de cuenta de cuatro cifras, por favor.
      - end: { en-GB: "Thank you. Goodbye.", es-ES: "Gracias. Adiós." }
"""


def _lines(turn_lines: list[str]) -> str:
    return " ".join(turn_lines)


async def test_a_call_switched_to_spanish_speaks_with_the_spanish_voice(tmp_path: Path) -> None:
    write_bot(tmp_path, {"bot.yaml": BOT})
    settings = audio_settings(tmp_path, bot_dir=tmp_path)
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    await speech.prefill()
    session = AudioTestSession(runtime, speech, runtime.new_call())
    events: list[dict[str, object]] = []
    inner = session.voice_call._on_event
    assert inner is not None

    def listen(event: dict[str, object]) -> None:
        events.append(event)
        inner(event)

    session.voice_call._on_event = listen
    try:
        assert speech.labels["tts es-ES"] == "espeak-ng (es, offline)"
        tts = session.voice_call.plugins.tts
        assert isinstance(tts, LanguageTTS)

        start = await session.start()
        assert "Para español, pulse 2" in _lines(start.lines)
        english = tts.choices[-1]
        assert english[0] == "en-GB" and english[1] != "es"

        chosen = await session.press("2")
        assert session.call.state.language == "es-ES"
        assert "Marque su número de cuenta" in _lines(chosen.lines)
        # the reply that switched the language is already in the Spanish voice
        assert tts.choices[-1] == ("es-ES", "es")
        assert {"type": "voice", "language": "es-ES", "voice": "es"} in events

        confirm = await session.press("4217#")
        assert "He entendido 4 2 1 7. ¿Es correcto?" in _lines(confirm.lines)
        assert tts.choices[-1] == ("es-ES", "es")

        goodbye = await session.press("1")  # keypad yes
        assert "Gracias. Adiós." in _lines(goodbye.lines)
        assert session.call.state.slots["account"] == "4217"
        assert tts.choices[-1] == ("es-ES", "es")
        assert [c for c in tts.choices if c[0] == "en-GB"] == [english] * len(
            [c for c in tts.choices if c[0] == "en-GB"]
        )
    finally:
        await session.aclose()
        await speech.aclose()
        await runtime.aclose()


def test_each_voice_caches_the_lines_of_its_own_language(tmp_path: Path) -> None:
    write_bot(tmp_path, {"bot.yaml": BOT})
    definition = load_bot(tmp_path).definition
    english = vocabulary.static_prompts(
        definition, extra=["Please say yes or no."], language="en-GB"
    )
    spanish = vocabulary.static_prompts(
        definition, extra=["Please say yes or no."], language="es-ES"
    )
    assert "Hello from Tiny." in english and "Hola, le atiende Tiny." not in english
    assert "Hola, le atiende Tiny." in spanish and "Hello from Tiny." not in spanish
    assert "For English press 1. Para español, pulse 2." in spanish  # `any`: every language
    assert "Por favor, diga sí o no." in spanish and "Please say yes or no." in english


@pytest.mark.parametrize(
    ("said", "value"),
    [
        ("sí", True),
        ("si", True),
        ("Sí, claro", True),
        ("claro", True),
        ("vale", True),
        ("de acuerdo", True),
        ("eso es", True),
        ("no", False),
        ("no, gracias", False),
        ("claro que no", False),
        ("no es correcto", False),
        ("sí... no, no es correcto", False),  # the last word wins, as in English
    ],
)
def test_spanish_yes_and_no(said: str, value: bool) -> None:
    assert parse_slot(SlotSpec(type="yes_no", language="es-ES"), said).value is value


def test_spanish_unsure_and_nonsense_are_not_a_yes() -> None:
    spec = SlotSpec(type="yes_no", language="es-ES")
    assert parse_slot(spec, "no sé").error == "unsure"
    assert parse_slot(spec, "quizás").error == "unsure"
    assert parse_slot(spec, "el perro").error == "no_match"
    # English words on a Spanish call are not read as Spanish
    assert parse_slot(spec, "yes").error == "no_match"
    assert parse_keypad(spec, "1").value is True


@pytest.mark.parametrize(
    ("said", "value"),
    [
        ("cero", 0),
        ("siete", 7),
        ("quince", 15),
        ("veintidós", 22),
        ("cuarenta y dos", 42),
        ("ciento veintitrés", 123),
        ("doscientas cincuenta", 250),
        ("mil", 1000),
        ("dos mil quinientos", 2500),
        ("tres coma cinco", 3.5),
        ("menos cuatro", -4),
        ("son quince euros", 15),
    ],
)
def test_spanish_numbers_in_words(said: str, value: float) -> None:
    assert parse_slot(SlotSpec(type="number", language="es-ES"), said).value == value
    assert words_to_number(said.removeprefix("son "), language="es-ES") == value


def test_spanish_digits_and_phone_numbers() -> None:
    digits = SlotSpec(type="digits", length=4, language="es-ES")
    assert parse_slot(digits, "mi número es cuatro dos uno siete").value == "4217"
    assert parse_slot(digits, "doble cinco tres uno").value == "5531"
    phone = SlotSpec(type="phone", language="es-ES")
    assert parse_slot(phone, "seis uno dos tres cuatro cinco seis siete ocho").value == (
        "+34612345678"
    )


def test_english_is_read_as_before() -> None:
    assert parse_slot(SlotSpec(type="yes_no", language="en-GB"), "yeah that's right").value
    assert parse_slot(SlotSpec(type="number", language="en-GB"), "forty two").value == 42
    # accents are folded for English too: a typed "café" is one word, not "caf"
    assert parse_slot(SlotSpec(type="yes_no", language="en-GB"), "oké").error == "no_match"


CONFIRM_BOT = """\
bot:
  name: Test Telecom
  languages: [en-GB, es-ES]
  greeting: { en-GB: "Hello.", es-ES: "Hola." }
queues: { general: {} }
intents:
  pay: { examples: { en-GB: [pay a bill], es-ES: [pagar una factura] } }
flows:
  pay:
    trigger: pay
    steps:
      - collect: amount
        type: number
        confirm: true
        prompt: { en-GB: "How much?", es-ES: "¿Cuánto?" }
      - end: { en-GB: "Paid {{ slots.amount }}.", es-ES: "Pagado {{ slots.amount }}." }
"""


async def _talk(root: Path, *said: str) -> tuple[list[str], dict[str, object]]:
    """A Spanish text call: the bot's reply to each of ``said`` and the slots at the end."""
    runtime = BotRuntime.load(Settings(bot_dir=root, data_dir=root / "data"))
    try:
        call = runtime.new_call(language="es-ES")
        await call.start()
        replies = [(await call.caller_said(text)).text for text in said]
        return replies, dict(call.state.slots)
    finally:
        await runtime.aclose()


async def test_a_spanish_collect_confirms_in_spanish_and_hears_si(tmp_path: Path) -> None:
    write_bot(tmp_path, {"bot.yaml": CONFIRM_BOT})
    replies, slots = await _talk(tmp_path, "quiero pagar una factura", "cuarenta y dos", "sí")
    assert "¿Cuánto?" in replies[0]
    assert "He entendido 42. ¿Es correcto?" in replies[1]
    assert "Pagado 42." in replies[2]
    assert slots["amount"] == 42


async def test_a_spanish_no_at_the_confirm_asks_again_in_spanish(tmp_path: Path) -> None:
    write_bot(tmp_path, {"bot.yaml": CONFIRM_BOT})
    replies, slots = await _talk(
        tmp_path, "quiero pagar una factura", "quince", "no", "veinte", "claro"
    )
    assert "Disculpe." in replies[2] and "¿Cuánto?" in replies[2]
    assert "He entendido 20. ¿Es correcto?" in replies[3]
    assert slots["amount"] == 20


async def test_a_collect_confirm_of_its_own_is_per_language_and_checked(tmp_path: Path) -> None:
    own = CONFIRM_BOT.replace(
        "confirm: true",
        'confirm: { en-GB: "You said {{ slots.amount }}?", es-ES: "¿Ha dicho {{ slots.amount }}?" }',
    )
    write_bot(tmp_path, {"bot.yaml": own})
    replies, _ = await _talk(tmp_path, "quiero pagar una factura", "doce")
    assert "¿Ha dicho 12?" in replies[1]
    missing = CONFIRM_BOT.replace("confirm: true", 'confirm: "You said {{ slots.amount }}?"')
    write_bot(tmp_path, {"bot.yaml": missing})
    with pytest.raises(FlowError) as caught:
        load_bot(tmp_path)
    assert any("its confirm has no es-ES text" in str(i) for i in caught.value.issues)
