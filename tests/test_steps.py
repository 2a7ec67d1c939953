"""Each step type, triggers, counters and the handoff packet, through the real runtime."""

from __future__ import annotations

import datetime as dt

from tests.conftest import Bot

HEADER = """\
bot:
  name: Test
  greeting: Hello. How can I help?
  limits: { no_input_timeout: 5, max_no_input: 1, max_no_match: 1 }
  triggers:
    - if: "sentiment.anger > 0.8"
      handoff: care
      priority: high
      reason: angry
    - intent: agent
      handoff: general
      reason: asked
    - intent: repeat
      repeat: true
queues:
  general: { skills: [general] }
  care: { skills: [care] }
intents:
  agent: { examples: [talk to a person, agent, operator] }
  repeat: { examples: [say that again, repeat that, pardon] }
  pay: { examples: [I want to pay my bill, make a payment] }
  hours: { examples: [what are your opening hours, when are you open] }
actions:
  lookup: { python: "tests.handlers:lookup" }
  broken: { python: "tests.handlers:broken" }
"""


async def test_say_set_and_templates(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  hours:
    trigger: hours
    steps:
      - set: { greeting_name: Sam, count: "{{ 2 + 3 }}" }
      - say: ["Hi {{ slots.greeting_name }}, we have {{ slots.count }} shops."]
"""
    )
    call = bot.runtime.new_call()
    assert "How can I help" in (await call.start()).text
    reply = await call.caller_said("when are you open")
    assert "Hi Sam, we have 5 shops." in reply.text
    assert call.state.slots["count"] == 5  # a single expression keeps its type
    assert "anything else" in reply.text


async def test_collect_digits_with_dtmf_rejection_and_limit(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  pay:
    trigger: pay
    steps:
      - collect: account
        type: digits
        length: 4
        dtmf: true
        prompt: Your four digit number?
        rejections:
          - if: "slots.account == '0000'"
            say: That number is not valid.
        max_attempts: 2
        on_fail: { handoff: general, reason: no account }
      - say: Got {{ slots.account | spell }}.
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    assert "four digit" in (await call.caller_said("I want to pay my bill")).text
    reply = await call.keys_pressed("0000#")
    assert "not valid" in reply.text and "four digit" in reply.text
    reply = await call.caller_said("one two three four")
    assert "Got 1 2 3 4." in reply.text
    # a second call exhausts its attempts
    call2 = bot.runtime.new_call()
    await call2.start()
    await call2.caller_said("make a payment")
    await call2.keys_pressed("12")
    reply = await call2.keys_pressed("99")
    assert reply.handoff is not None and reply.handoff.reason == "no account"


async def test_collect_sensitive_is_masked_everywhere(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  pay:
    trigger: pay
    steps:
      - collect: pin
        type: digits
        length: 6
        dtmf: true
        sensitive: true
        prompt: Your PIN?
      - collect: card
        type: card_number
        dtmf: true
        prompt: Your card?
      - handoff: general
        reason: done
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    await call.caller_said("make a payment")
    await call.caller_said("nine eight seven six five four")
    reply = await call.keys_pressed("4111111111111111#")
    packet = reply.handoff
    assert packet is not None
    assert packet.slots == {"pin": "****", "card": "****1111"}
    dumped = packet.model_dump_json()
    assert "987654" not in dumped and "4111111111111111" not in dumped
    assert "nine eight seven" not in dumped
    assert bot.packets[0].slots["card"] == "****1111"


async def test_collect_confirm_yes_no_and_never_ask_twice(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  pay:
    trigger: pay
    steps:
      - collect: amount
        type: number
        confirm: true
        prompt: How much?
      - call: again
      - say: Paying {{ slots.amount }}.
  again:
    steps:
      - collect: amount
        type: number
        prompt: How much again?
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    await call.caller_said("make a payment")
    assert "I heard 25. Is that right?" in (await call.caller_said("twenty five")).text
    assert "How much?" in (await call.caller_said("no")).text
    await call.caller_said("thirty")
    reply = await call.keys_pressed("1")  # keypad 1 is yes
    assert "Paying 30." in reply.text and "again" not in reply.text


async def test_menu_keys_speech_no_input_and_no_match(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  hours:
    trigger: hours
    steps:
      - menu: main
        prompt: Press 1 for sales or 2 for support.
        options:
          - { key: "1", say: [sales, buy], next: sales }
          - { key: "2", say: [support, help], next: support }
        no_input: [I didn't hear you.]
        no_match: [I didn't get that.]
        on_fail: { handoff: general, reason: menu failed }
      - id: sales
        say: Sales it is.
        next: end
      - id: support
        say: Support it is.
        next: end
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    await call.caller_said("when are you open")
    assert "Support it is." in (await call.caller_said("uh support please")).text
    call = bot.runtime.new_call()
    await call.start()
    await call.caller_said("when are you open")
    assert (await call.silence(1)).lines == []  # shorter than the timeout
    assert "I didn't hear you." in (await call.silence(6)).text
    assert "I didn't get that." in (await call.keys_pressed("9")).text
    reply = await call.caller_said("bananas")
    assert reply.handoff is not None and reply.handoff.reason == "menu failed"


async def test_action_result_branches_save_and_on_error(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  pay:
    trigger: pay
    steps:
      - action: lookup
        args: { account: "42" }
        save: { balance: "{{ result.balance }}", vip: "{{ result.vip }}" }
        next:
          - if: "result.balance > 100"
            then: big
          - else: small
      - id: big
        say: Big {{ slots.balance }}.
        next: end
      - id: small
        say: Small {{ slots.balance }}.
        next: end
  hours:
    trigger: hours
    steps:
      - action: broken
        on_error: { say: "Systems are down.", next: end }
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    reply = await call.caller_said("make a payment")
    assert "Big 142.5." in reply.text
    assert call.state.slots["vip"] is True
    reply = await call.caller_said("when are you open")
    assert "Systems are down." in reply.text and not call.state.ended


async def test_action_failure_without_on_error_apologises_and_hands_off(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  hours:
    trigger: hours
    steps:
      - action: broken
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    reply = await call.caller_said("when are you open")
    assert "something went wrong" in reply.text
    assert reply.handoff is not None and reply.handoff.reason == "action 'broken' failed"


async def test_answer_without_knowledge_follows_on_no_answer(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  hours:
    trigger: hours
    steps:
      - answer:
        filter: [hours]
        on_no_answer: { handoff: general, reason: no answer }
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    reply = await call.caller_said("when are you open")
    assert "don't have an answer" in reply.text
    assert reply.handoff is not None and reply.handoff.reason == "no answer"


async def test_llm_step_runs_its_fallback_offline_and_call_returns(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  hours:
    trigger: hours
    steps:
      - call: sub
      - say: Back in the caller.
      - end: Bye now.
        disposition: done
  sub:
    steps:
      - llm: Chat about opening hours.
        fallback: { say: "We open at nine." }
      - say: End of sub.
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    reply = await call.caller_said("when are you open")
    assert reply.text == "We open at nine. End of sub. Back in the caller. Bye now."
    assert reply.hangup is not None and reply.hangup.disposition == "done"
    assert call.state.ended and call.state.disposition == "done"


async def test_handoff_outside_hours_runs_closed(make_bot) -> None:
    text = (
        HEADER.replace(
            "  greeting:",
            '  hours: { timezone: Europe/London, weekly: { mon-fri: "09:00-17:00" } }\n  greeting:',
        )
        + """\
flows:
  hours:
    trigger: hours
    steps:
      - handoff: general
        closed: { say: We are closed., next: end }
"""
    )
    sunday = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    call = make_bot(text, now=sunday).runtime.new_call()
    await call.start()
    reply = await call.caller_said("when are you open")
    assert "We are closed." in reply.text and reply.handoff is None


async def test_triggers_agent_repeat_and_anger(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  pay:
    trigger: pay
    steps:
      - collect: account
        type: digits
        prompt: Your account number?
"""
    )
    call = bot.runtime.new_call()
    await call.start()
    await call.caller_said("make a payment")
    assert "Your account number?" in (await call.caller_said("pardon")).text
    reply = await call.caller_said("this is ridiculous, I am absolutely furious, you are useless")
    assert reply.handoff is not None
    assert (reply.handoff.queue, reply.handoff.priority) == ("care", "high")
    assert reply.handoff.sentiment.anger > 0.8
    call = bot.runtime.new_call()
    await call.start()
    reply = await call.caller_said("operator")
    assert reply.handoff is not None and reply.handoff.reason == "asked"


async def test_open_conversation_counters_reach_the_limit(make_bot) -> None:
    bot: Bot = make_bot(HEADER + "flows: {}\n")
    call = bot.runtime.new_call()
    await call.start()
    assert "didn't catch that" in (await call.caller_said("purple elephants")).text
    reply = await call.caller_said("green giraffes")
    assert reply.handoff is not None and reply.handoff.queue == "general"
    assert reply.handoff.reason == "caller could not be understood"


async def test_packet_contents(make_bot) -> None:
    from voicebot.handoff.packet import CallerInfo

    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  pay:
    trigger: pay
    description: Caller wants to pay a bill.
    steps:
      - collect: account
        type: digits
        prompt: Account?
      - set: { verified: true }
      - handoff: general
        skills: [billing]
        priority: "{{ 'urgent' if caller.vip else 'low' }}"
        reason: "paying {{ slots.account }}"
        announce: Transferring you now.
"""
    )
    call = bot.runtime.new_call(caller=CallerInfo(number="+441632960001", name="Sam", vip=True))
    await call.start()
    await call.caller_said("I want to pay my bill")
    reply = await call.caller_said("one two three")
    packet = reply.handoff
    assert packet is not None
    assert reply.lines[-1].text == "Transferring you now."
    assert packet.caller.number == "+441632960001" and packet.caller.vip
    assert packet.intent.name == "pay" and packet.intent.confidence > 0.9
    assert packet.priority == "urgent" and packet.skills == ["billing", "general"]
    assert packet.reason == "paying 123" and packet.verified is True
    assert packet.slots == {"account": "123", "verified": True}
    assert [t.role for t in packet.transcript] == ["bot", "caller", "bot", "caller"]
    assert packet.sentiment.trend and packet.flow == "pay"
    assert "pay a bill" in packet.summary and "Sam (VIP)" in packet.summary
    assert bot.packets == [packet]


async def test_engine_error_becomes_technical_handoff(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER
        + """\
flows:
  hours:
    trigger: hours
    steps:
      - say: hi
"""
    )
    call = bot.runtime.new_call()
    await call.start()

    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    bot.runtime.engine.intent_flows = None  # type: ignore[assignment]  # any bug will do
    reply = await call.caller_said("when are you open")
    assert reply.handoff is not None and reply.handoff.reason == "technical error"
    assert "something went wrong" in reply.text


async def test_a_flow_language_changes_how_dates_are_read(make_bot) -> None:
    bot: Bot = make_bot(
        HEADER.replace("  name: Test", "  name: Test\n  language: en-GB")
        + """\
flows:
  pay:
    trigger: pay
    language: en-US
    steps:
      - collect: when
        type: date
        prompt: When?
      - say: "{{ slots.when }}"
  hours:
    trigger: hours
    steps:
      - collect: when
        type: date
        prompt: When?
      - say: "{{ slots.when }}"
"""
    )
    us = bot.runtime.new_call()
    await us.start()
    await us.caller_said("make a payment")
    assert "2026-03-04" in (await us.caller_said("3/4/2026")).text
    gb = bot.runtime.new_call()
    await gb.start()
    await gb.caller_said("when are you open")
    assert "2026-04-03" in (await gb.caller_said("3/4/2026")).text
