"""Card data (PCI DSS): a card is taken by keypad only, handed to the one action that needs
it and dropped; a card said out loud is masked wherever text goes. The end-to-end test runs
scripted calls through the real runtime, the LLM brain (against the scripted model), the
queues on SQLite and a spool, then scans every sink for the card number, the expiry and the
security code."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from tests.conftest import MONDAY_10AM, Bot, write_bot
from tests.privacy import handlers
from tests.test_steps import HEADER
from voicebot.config import Settings
from voicebot.flows.errors import FlowError
from voicebot.flows.loader import load_bot
from voicebot.handoff.packet import CallerInfo, HandoffPacket
from voicebot.knowledge.service import open_knowledge
from voicebot.nlu.parsers import SlotSpec, parse_keypad, parse_slot
from voicebot.observability import _Formatter
from voicebot.privacy.cards import card_forms, find_cards, mask_card_data
from voicebot.privacy.masking import PiiFilter, mask_pii
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.queues.sink import QueueHandoffSink
from voicebot.runtime.bot import BotRuntime
from voicebot.store.db import open_database
from voicebot.store.models import Handoff
from voicebot.testing.scripted_model import ScriptedModel, ScriptedModelServer

CARD = "4111111111111111"
SPOKEN_CARD = "5500 0055 5555 5559"  # a Mastercard test number, read out in fours
SPOKEN_DIGITS = "5500005555555559"
EXPIRY = "0931"
CVV = "737"
SPOKEN_CVV = "482"

FLOWS = HEADER.replace(
    "actions:\n", 'actions:\n  take_payment: { python: "tests.privacy.handlers:take_payment" }\n'
) + (
    """\
flows:
  pay:
    description: The caller wants to pay their bill by card.
    trigger: pay
    steps:
      - collect: card
        type: card
        prompt: Please key in your card number, then press hash.
        cvv_prompt: And the three digit security code on the back?
        max_attempts: 4
        on_fail: { handoff: general, reason: card not taken }
      - action: take_payment
        args:
          number: "{{ slots.card.number }}"
          expiry: "{{ slots.card.expiry }}"
          cvv: "{{ slots.card.cvv }}"
      - say: "Thank you, that's paid. Your reference is {{ result.reference }}."
      - handoff: general
        reason: "paid with the card ending {{ slots.card.number[-4:] if slots.card else 'gone' }}"
"""
)


@pytest.fixture(autouse=True)
def _clear_received() -> Iterator[None]:
    handlers.RECEIVED.clear()
    yield
    handlers.RECEIVED.clear()


# -- masking of free text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "said",
    [
        "my card is 4111 1111 1111 1111 expiry 09/31 and the code is 737",
        "4111-1111-1111-1111, 09-31, 737",
        "card 4111111111111111 exp 0931 cvv 737",
        "it's 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 expiring 09 / 2031 security code 737",
    ],
)
def test_card_expiry_and_code_said_after_it_are_masked(said: str) -> None:
    masked = mask_card_data(said)
    assert "****1111" in masked
    digits = re.sub(r"\D", "", masked)
    assert CARD not in digits and "737" not in masked and "09" not in masked
    assert mask_pii(said) == mask_pii(masked)  # logs get the same treatment


def test_only_luhn_valid_runs_are_cards() -> None:
    assert find_cards("order 4111 1111 1111 1112 code 737") == []  # fails the Luhn check
    assert mask_card_data("call 07700 900123 at 10") == "call 07700 900123 at 10"
    assert mask_card_data("in 2026, 3 items") == "in 2026, 3 items"
    # a 19-digit card and one inside a longer sentence with two cards
    two = mask_card_data("first 4111111111111111 then 5500005555555559 ok")
    assert two == "first ****1111 then ****5559 ok"


def test_log_filter_masks_a_card_in_a_message_and_extra() -> None:
    record = logging.LogRecord("t", logging.INFO, "", 0, "said %s", ("4111 1111 1111 1111",), None)
    record.detail = "card 4111-1111-1111-1111 exp 09/31 cvv 737"
    PiiFilter().filter(record)
    assert CARD not in re.sub(r"\D", "", record.getMessage())
    assert "737" not in record.detail and "09/31" not in record.detail  # type: ignore[attr-defined]


# -- the `card` collect type -------------------------------------------------------------------


def test_card_parsers_are_keypad_only() -> None:
    for type_ in ("card", "card_expiry", "card_cvv"):
        assert parse_slot(SlotSpec(type=type_), "4111 1111 1111 1111").error == "keypad_only"
    now = dt.datetime(2026, 11, 23)
    assert parse_keypad(SlotSpec(type="card"), CARD).value == CARD
    assert parse_keypad(SlotSpec(type="card"), "4111111111111112").error == "luhn"
    assert parse_keypad(SlotSpec(type="card_expiry"), "1126", now=now).value == "1126"
    assert parse_keypad(SlotSpec(type="card_expiry"), "1026", now=now).error == "expired"
    assert parse_keypad(SlotSpec(type="card_expiry"), "1326", now=now).error == "invalid_date"
    assert parse_keypad(SlotSpec(type="card_expiry"), "126", now=now).error == "wrong_length"
    assert parse_keypad(SlotSpec(type="card_cvv"), "7377").value == "7377"
    assert parse_keypad(SlotSpec(type="card_cvv"), "73").error == "wrong_length"


def test_card_options_are_checked_on_load(tmp_path: Path) -> None:
    bad = FLOWS.replace("        cvv_prompt:", "        sensitive: false\n        cvv_prompt:")
    write_bot(tmp_path, {"bot.yaml": bad})
    with pytest.raises(FlowError) as caught:
        load_bot(tmp_path)
    assert "always sensitive" in str(caught.value.issues[0])
    other = FLOWS.replace("type: card\n", "type: digits\n")
    write_bot(tmp_path, {"bot.yaml": other})
    with pytest.raises(FlowError) as caught:
        load_bot(tmp_path)
    assert "only apply to type 'card'" in str(caught.value.issues[0])


async def test_card_is_keyed_in_handed_to_the_action_and_dropped(make_bot) -> None:
    bot: Bot = make_bot(FLOWS)
    call = bot.runtime.new_call()
    await call.start()
    assert "card number" in (await call.caller_said("I want to pay my bill")).text
    spoken = await call.caller_said("it's 4111 1111 1111 1111")
    assert "keypad" in spoken.text and "card number" in spoken.text  # speech is refused
    assert call.state.slots == {}
    assert "doesn't look right" in (await call.keys_pressed("4111111111111112#")).text
    assert "expiry" in (await call.keys_pressed(CARD + "#")).text
    assert "expiry date doesn't look right" in (await call.keys_pressed("0120#")).text  # past
    assert "security code" in (await call.keys_pressed(EXPIRY + "#")).text
    reply = await call.keys_pressed(CVV + "#")
    assert "reference is PAY-42" in reply.text
    assert handlers.RECEIVED[0] == {"number": CARD, "expiry": EXPIRY, "cvv": CVV}
    # gone from the slots once the action had it: the handoff's reason could not quote it
    assert call.state.slots.get("card") is None and not call.state.card_slots
    packet = bot.packets[-1]
    assert packet.reason == "paid with the card ending gone"
    dumped = packet.model_dump_json()
    assert CARD not in dumped and f'"{CVV}"' not in dumped and EXPIRY not in dumped
    keyed = [line.text for line in call.state.transcript if line.role == "keypad"]
    assert keyed == ["****1112", "****1111", "****", "****", "****"]
    assert [line.text for line in call.state.transcript if line.role == "caller"][1] == "****"


async def test_a_card_half_keyed_in_is_dropped_at_a_handoff(make_bot) -> None:
    bot: Bot = make_bot(FLOWS)
    call = bot.runtime.new_call()
    await call.start()
    await call.caller_said("I want to pay my bill")
    await call.keys_pressed(CARD + "#")
    assert isinstance(call.state.waiting.pending, dict)  # type: ignore[union-attr]
    reply = await call.caller_said("talk to a person")
    assert reply.handoff is not None
    assert CARD not in reply.handoff.model_dump_json()
    assert call.state.waiting is None and call.state.slots.get("card") is None


async def test_card_stage_counts_to_the_step_limit(make_bot) -> None:
    bot: Bot = make_bot(FLOWS)
    call = bot.runtime.new_call()
    await call.start()
    await call.caller_said("I want to pay my bill")
    await call.keys_pressed("1234#")
    await call.keys_pressed("4111111111111112#")
    await call.keys_pressed(CARD + "#")
    await call.keys_pressed("1399#")  # a wrong expiry counts to the same limit
    reply = await call.keys_pressed("99#")
    assert reply.handoff is not None and reply.handoff.reason == "card not taken"
    assert handlers.RECEIVED == []


# -- every sink, end to end --------------------------------------------------------------------


def _hits(blob: str) -> dict[str, int]:
    """Occurrences of the card numbers (any spacing), expiry and security codes in ``blob``."""
    digits_only = re.sub(r"[\s-]", "", blob)
    found = {
        "card": sum(digits_only.count(n) for n in (CARD, SPOKEN_DIGITS)),
        "card_forms": sum(blob.count(f) for n in (CARD, SPOKEN_DIGITS) for f in card_forms(n)),
        "expiry": sum(blob.count(f) for f in (EXPIRY, "09/31", "09-31", "09 / 31")),
        # a code is three digits: counted where it stands alone, not inside ids and times
        "cvv": len(re.findall(rf"(?<![\w.:,-])(?:{CVV}|{SPOKEN_CVV})(?![\w:-]|\.\d)", blob)),
    }
    return found


@pytest.fixture(scope="module")
def model_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


async def test_no_sink_holds_card_data(tmp_path: Path, model_server: ScriptedModelServer) -> None:
    script: ScriptedModel = model_server.script
    script.reset()
    root = write_bot(tmp_path / "bot", {"bot.yaml": FLOWS})
    (root / "knowledge").mkdir()
    (root / "knowledge" / "payments.md").write_text(
        "# Payments\n\nWe take card payments on the phone by keypad only.\n", encoding="utf-8"
    )
    data = tmp_path / "data"
    settings = Settings(
        bot_dir=root,
        data_dir=data,
        llm_base_url=model_server.base_url,
        llm_model="scripted-model",
        llm_timeout=2.0,
        log_json=True,
    )
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(_Formatter(True))
    handler.addFilter(PiiFilter())
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    db = await open_database(settings.resolved_database_url)
    service = QueueService(db, LocalBus(), load_bot(root).definition.queues)
    await service.start()
    sink = QueueHandoffSink(service, data / "handoff-spool.jsonl")
    # A second node whose database is unreachable: its handoffs go to the spool file.
    broken_db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'down.db'}")
    broken = QueueService(broken_db, LocalBus(), load_bot(root).definition.queues)
    await broken_db.aclose()
    (tmp_path / "down.db").unlink()
    (tmp_path / "down.db").mkdir()  # the file is now a folder: every write fails
    spool_sink = QueueHandoffSink(broken, data / "handoff-spool.jsonl", timeout=2.0)
    knowledge = open_knowledge(settings, root / "knowledge")
    runtime = BotRuntime.load(
        settings, clock=lambda: MONDAY_10AM, handoffs=sink, knowledge=knowledge
    )
    try:
        assert runtime.engine.llm
        # 1. A caller who SAYS a card (and its expiry and code) at the open question.
        said = runtime.new_call(caller=CallerInfo(number="+441632960001"))
        await said.start()
        script.script([{"say": "I can't take card details by voice. Shall I transfer you?"}])
        await said.caller_said(
            f"my card number is {SPOKEN_CARD} expiry 09/31 and the security code is {SPOKEN_CVV}"
        )
        summary = {"say": "The caller tried to pay by card over the phone and asked for an agent."}
        script.script([{"tool": "intent_agent"}, summary])
        reply = await said.caller_said("yes put me through to someone please")
        assert reply.handoff is not None
        await service.record_call(said.state, channel="softphone")
        # ... and again on the node whose database is down: its packet is spooled.
        again = runtime.new_call(caller=CallerInfo(number="+441632960002"))
        runtime.handoffs = spool_sink
        await again.start()
        script.script([{"say": "Please use the keypad for card details."}])
        await again.caller_said(f"take {SPOKEN_CARD} exp 09/31 code {SPOKEN_CVV}")
        script.script([{"tool": "intent_agent"}, summary])
        assert (await again.caller_said("an agent please")).handoff is not None
        runtime.handoffs = sink
        assert (data / "handoff-spool.jsonl").is_file()
        # 2. A caller who keys a card in at a `card` collect (trying to say it first).
        keyed = runtime.new_call(caller=CallerInfo(number="+441632960003"))
        await keyed.start()
        script.script([{"tool": "start_pay"}])
        assert "card number" in (await keyed.caller_said("I'd like to pay my bill")).text
        asked = len(script.requests)
        await keyed.caller_said(f"it is {CARD} expiry {EXPIRY} code {CVV}")
        assert len(script.requests) == asked  # a card prompt's speech never goes to the model
        await keyed.keys_pressed(CARD + "#")
        await keyed.keys_pressed(EXPIRY + "#")
        script.script([summary])
        reply = await keyed.keys_pressed(CVV + "#")
        assert "PAY-42" in reply.text and reply.handoff is not None
        assert handlers.RECEIVED[0] == {"number": CARD, "expiry": EXPIRY, "cvv": CVV}
        await service.record_call(keyed.state, channel="softphone")
        assert script.unscripted == 0
    finally:
        await runtime.aclose()
        await spool_sink.aclose()
        await sink.aclose()
        await service.aclose()
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)

    sinks: dict[str, str] = {}
    # the database: every table, every column, as text
    async with db.session() as session:
        connection = await session.connection()
        tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        for table in tables:
            rows = (await session.execute(text(f'SELECT * FROM "{table}"'))).all()
            sinks[f"db:{table}"] = "\n".join(json.dumps([str(v) for v in r]) for r in rows)
    await db.aclose()
    assert "Thank you, that" in sinks["db:turns"]  # the scan reads the real rows
    assert sinks["db:handoffs"].count("****") >= 2
    # what the handoff packets carry, as the agent's desktop would get them
    reader = await open_database(settings.resolved_database_url)
    try:
        async with reader.session() as session:
            packets = (await session.scalars(select(Handoff.packet))).all()
    finally:
        await reader.aclose()
    sinks["packets"] = json.dumps(packets)
    # files under the data dir: the spool, Chroma's files, the database files, recordings
    for path in sorted(data.rglob("*")):
        if path.is_file():
            sinks[f"file:{path.relative_to(data)}"] = path.read_bytes().decode("latin-1")
    recordings = settings.resolved_recordings_dir
    sinks["recordings"] = "\n".join(str(p) for p in recordings.rglob("*") if recordings.is_dir())
    chroma = knowledge.store.collection.get(include=["documents", "metadatas"])  # type: ignore[attr-defined]
    sinks["chroma"] = json.dumps(chroma, default=str)
    sinks["logs"] = logs.getvalue()
    sinks["model requests"] = "\n".join(r.text for r in script.requests)
    assert len(script.requests) >= 4 and "****5559" in sinks["model requests"]
    spooled = (data / "handoff-spool.jsonl").read_text(encoding="utf-8")
    assert HandoffPacket.model_validate_json(spooled.splitlines()[0]).caller.number

    # the scan itself finds each form it looks for
    control = _hits(f"a {SPOKEN_CARD} b 4111-1111-1111-1111 exp 09/31 code {CVV}.")
    assert all(control.values()), control
    per_sink = {name: _hits(blob) for name, blob in sinks.items()}
    total = sum(sum(h.values()) for h in per_sink.values())
    dirty = {name: h for name, h in per_sink.items() if any(h.values())}
    print(f"PCI scan: {len(sinks)} sinks, {total} hits of card number, expiry or CVV")
    assert total == 0, (dirty, _debug_hits(sinks["logs"])[:3])


def _debug_hits(blob: str) -> list[str]:
    return [
        blob[max(0, m.start() - 150) : m.end() + 50]
        for m in re.finditer(r"(?<![\w.:,-])(?:737|482)(?![\w:-]|\.\d)", blob)
    ]


async def test_a_card_is_dropped_when_the_call_is_recorded_after_a_hang_up(
    make_bot, tmp_path: Path
) -> None:
    bot: Bot = make_bot(FLOWS)
    call = bot.runtime.new_call()
    await call.start()
    await call.caller_said("I want to pay my bill")
    await call.keys_pressed(CARD + "#")
    await call.keys_pressed(EXPIRY + "#")
    await call.keys_pressed(CVV + "#")  # the action ran; a card taken again before hang-up:
    call.state.slots["card"] = {"number": CARD, "expiry": EXPIRY, "cvv": CVV}
    call.state.card_slots.add("card")
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'vb.db'}")
    try:
        service = QueueService(db, LocalBus(), load_bot(tmp_path).definition.queues)
        await service.record_call(call.state, channel="softphone")  # what a hang-up does
    finally:
        await db.aclose()
    assert "card" not in call.state.slots and not call.state.card_slots
