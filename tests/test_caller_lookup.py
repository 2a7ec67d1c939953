"""`bot.lookup`: a CRM look-up by calling number before the greeting fills in the caller."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.flows.errors import FlowError
from voicebot.handoff.packet import CallerInfo

BOT = """\
bot:
  name: Test
  greeting: "Hello{{ ' ' ~ caller.name if caller.name }}, how can I help?"
  lookup: {LOOKUP}
  triggers:
    - intent: agent
      handoff: general
      priority: "{{ 'high' if caller.vip else 'normal' }}"
intents:
  agent: { examples: [speak to a person, an agent please, a human] }
queues:
  general: {}
actions:
  crm: { python: "tests.handlers:crm" }
  slow_crm: { python: "tests.handlers:slow_crm" }
"""


def bot_with(make_bot, lookup: str):  # type: ignore[no-untyped-def]
    return make_bot(BOT.replace("{LOOKUP}", lookup))


async def test_the_caller_is_known_before_the_greeting(make_bot) -> None:
    bot = bot_with(make_bot, '{ action: crm, args: { number: "{{ caller.number }}" } }')
    call = bot.runtime.new_call(caller=CallerInfo(number="+447700900123"))
    greeting = await call.start()
    assert greeting.text.startswith("Hello Ann, how can I help?")
    caller = call.state.caller
    assert caller.vip is True and caller.attributes == {"tier": "gold", "segment": "home"}
    reply = await call.caller_said("speak to a person")
    assert reply.handoff is not None and reply.handoff.priority == "high"
    assert reply.handoff.caller.name == "Ann" and reply.handoff.summary.startswith("Ann (VIP)")


async def test_a_mapping_picks_fields_from_the_result(make_bot) -> None:
    bot = bot_with(
        make_bot,
        '{ action: crm, args: { number: "{{ caller.number }}" }, '
        'caller: { name: "{{ result.name | upper }}", tier: "{{ result.attributes.tier }}" } }',
    )
    call = bot.runtime.new_call(caller=CallerInfo(number="+447700900123", vip=False))
    await call.start()
    assert call.state.caller.name == "ANN" and call.state.caller.attributes == {"tier": "gold"}
    assert call.state.caller.vip is False  # not mapped: left as it was


async def test_an_unknown_number_leaves_the_caller_as_they_were(make_bot) -> None:
    bot = bot_with(make_bot, '{ action: crm, args: { number: "{{ caller.number }}" } }')
    call = bot.runtime.new_call(caller=CallerInfo(number="+441632960999", name="From SIP"))
    greeting = await call.start()
    assert greeting.text.startswith("Hello From SIP,")


async def test_a_slow_crm_does_not_hold_up_the_greeting(make_bot, caplog) -> None:
    bot = bot_with(make_bot, "{ action: slow_crm, timeout: 0.2 }")
    call = bot.runtime.new_call(caller=CallerInfo(number="+447700900123"))
    greeting = await call.start()
    assert greeting.text.startswith("Hello, how can I help?")
    assert "caller lookup failed" in caplog.text


async def test_a_failing_crm_in_a_conversation_test_mock(make_bot) -> None:
    bot = bot_with(make_bot, "{ action: crm }")
    call = bot.runtime.new_call(
        caller=CallerInfo(number="+447700900123"), mocks={"crm": {"error": "timeout"}}
    )
    greeting = await call.start()
    assert greeting.text.startswith("Hello, how can I help?") and not call.state.caller.vip


def test_validation_points_at_the_lookup(make_bot, tmp_path: Path) -> None:
    with pytest.raises(FlowError) as caught:
        bot_with(make_bot, '{ action: crn, caller: { name: "{{ result.name" } }')
    found = [str(e) for e in caught.value.errors]
    assert any(
        "bot.yaml:4:" in e
        and "the caller lookup calls action 'crn', which is not defined" in e
        and "did you mean 'crm'" in e
        for e in found
    ), found
    assert any("the caller lookup has a template that does not parse" in e for e in found), found
