"""The agent inside a real livekit-agents AgentSession (text mode), and the example bot's tests."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from voicebot.agent.flow_agent import FlowLLM
from voicebot.agent.text_session import TextSession
from voicebot.config import Settings
from voicebot.handoff.sinks import CallbackHandoffSink
from voicebot.knowledge.service import open_knowledge
from voicebot.runtime.bot import BotRuntime
from voicebot.testing.runner import ConversationTestRunner


@pytest.fixture(scope="module")
def example_runtime() -> BotRuntime:
    settings = Settings(bot_dir=REPO, data_dir=REPO / "data")
    return BotRuntime.load(
        settings,
        handoffs=CallbackHandoffSink(lambda _: None),
        with_tests=True,
        knowledge=open_knowledge(settings, REPO / "knowledge", ephemeral=True),
    )


async def test_session_speaks_through_the_flow_llm(example_runtime: BotRuntime) -> None:
    session = TextSession(example_runtime.new_call())
    try:
        first = await session.start()
        assert first.lines == ["Thanks for calling Acme Telecom. How can I help you today?"]
        assert isinstance(session.agent.llm, FlowLLM)
        # session.run() is livekit-agents' own text-mode entry point; it goes through our LLM node
        result = await session.session.run(user_input="what's my balance")
        result.expect.next_event().is_message(role="assistant")
        assert "account number" in (session.session.history.items[-1].text_content or "")
        keys = await session.press("12345678")
        assert "postcode" in keys.text
        history = [
            m.text_content
            for m in session.session.history.items
            if getattr(m, "role", "") == "user"
        ]
        assert history == ["what's my balance"]  # keypad digits never enter the chat context
    finally:
        await session.aclose()


async def test_every_example_conversation_test_passes(example_runtime: BotRuntime) -> None:
    outcomes = await ConversationTestRunner(example_runtime).run_all()
    assert len(outcomes) >= 20
    failed = {o.name: (o.failure, o.transcript) for o in outcomes if not o.passed}
    assert failed == {}


async def test_a_failing_conversation_test_reports_transcript(example_runtime: BotRuntime) -> None:
    from voicebot.flows.schema import ConversationTest

    test = ConversationTest.model_validate(
        {"name": "wrong", "steps": [{"user": "what's my balance"}, {"bot": {"contains": "pizza"}}]}
    )
    outcome = await ConversationTestRunner(example_runtime).run(test)
    assert not outcome.passed
    assert outcome.failure is not None and "expected the bot to say 'pizza'" in outcome.failure
    assert "caller: what's my balance" in outcome.transcript


async def test_conversation_tests_never_call_a_real_webhook(tmp_path) -> None:
    from tests.conftest import write_bot

    write_bot(
        tmp_path,
        {
            "bot.yaml": """\
bot: { name: x, greeting: Hi }
queues: { general: {} }
intents: { go: { examples: [go] } }
actions: { hook: { http: { url: "http://127.0.0.1:9/never" } } }
flows:
  go:
    trigger: go
    steps:
      - action: hook
        on_error: { say: failed, next: end }
""",
            "tests/t.yaml": "tests:\n  - name: unmocked\n    steps:\n      - user: go\n",
        },
    )
    settings = Settings(bot_dir=tmp_path, data_dir=tmp_path / "data")
    runtime = BotRuntime.load(
        settings, handoffs=CallbackHandoffSink(lambda _: None), with_tests=True
    )
    [outcome] = await ConversationTestRunner(runtime).run_all()
    assert not outcome.passed
    assert outcome.failure == "HTTP action(s) hook ran without a mock; add them to 'mocks'"


async def test_retries_run_a_failed_test_again_and_flag_it_flaky(
    example_runtime: BotRuntime,
) -> None:
    from typing import ClassVar

    from voicebot.flows.schema import ConversationTest
    from voicebot.testing.runner import TestOutcome

    class OnceFailing(ConversationTestRunner):
        """Fails each test's first call, as a recogniser mishearing a line once would."""

        calls: ClassVar[dict[str, int]] = {}

        async def run(self, test: ConversationTest, position: object = None) -> TestOutcome:
            self.calls[test.name] = self.calls.get(test.name, 0) + 1
            outcome = await super().run(test, None)
            if self.calls[test.name] == 1:
                outcome.passed, outcome.failure = False, "step 1: misheard"
            return outcome

    test = ConversationTest.model_validate(
        {"name": "greeting", "steps": [{"bot": {"contains": "How can I help"}}]}
    )
    [flaky] = await OnceFailing(example_runtime).run_all([(test, None)], retries=1)
    assert flaky.passed and flaky.attempts == 2 and flaky.first_failure == "step 1: misheard"
    OnceFailing.calls.clear()
    [failed] = await OnceFailing(example_runtime).run_all([(test, None)], retries=0)
    assert not failed.passed and failed.attempts == 1 and failed.first_failure is None
