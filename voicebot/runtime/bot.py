"""A bot at run time: its validated flows, engine, brain, actions, knowledge and handoff sink.

Built once per process (loading the embedding model is the slow part) and shared by every call.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.actions.executor import ActionExecutor
from voicebot.brain.base import Brain
from voicebot.brain.offline import Classifier, OfflineBrain
from voicebot.config import Settings
from voicebot.engine.context import bot_timezone, expression_context
from voicebot.engine.dialogue import DialogueEngine
from voicebot.engine.state import CallState
from voicebot.flows.loader import LoadedBot, load_bot
from voicebot.flows.schema import BotDefinition, Intent
from voicebot.handoff.packet import CallerInfo, PastContact
from voicebot.handoff.sinks import HandoffSink, JsonlHandoffSink
from voicebot.knowledge.base import EmptyKnowledge, KnowledgeBase
from voicebot.nlu.intents import IntentDefinition, IntentSpec
from voicebot.nlu.language import LanguageDetector
from voicebot.runtime.call import CallRuntime

logger = logging.getLogger("voicebot.runtime")


def intent_specs(
    intents: Mapping[str, Intent], language: str, default: str
) -> dict[str, IntentDefinition]:
    """The intents as one language's classifier sees them: that language's examples (a plain
    list is the default language's). The description, written in the default language, only
    helps that language; an intent with nothing in a language is left out of its classifier."""
    specs: dict[str, IntentDefinition] = {}
    for name, intent in intents.items():
        examples = intent.examples_for(language, default)
        description = intent.description if language == default else None
        if examples or description:
            specs[name] = IntentDefinition(examples=examples, description=description)
    return specs


def build_classifier(
    settings: Settings, intents: Mapping[str, IntentSpec]
) -> tuple[Classifier, str]:
    """The embedding classifier, or the keyword one (with a warning) when no model is found."""
    from voicebot.nlu.embedder import EmbeddingModelMissing
    from voicebot.nlu.intents import build_intent_classifier

    try:
        return build_intent_classifier(settings, intents), "offline"
    except EmbeddingModelMissing as exc:
        from voicebot.nlu.keywords import KeywordClassifier

        logger.warning(
            "embedding model missing; using keyword matching", extra={"detail": str(exc)}
        )
        return KeywordClassifier(
            intents, threshold=0.75
        ), "offline (keywords only: no embedding model)"


def build_brain(
    settings: Settings, definition: BotDefinition, knowledge: KnowledgeBase | None
) -> Brain:
    """The offline brain, or the LLM brain (with the offline one as its fallback) when an LLM
    is configured."""
    languages = definition.bot.spoken_languages
    default = languages[0]
    classifier, label = build_classifier(
        settings, intent_specs(definition.intents, default, default)
    )
    classifiers: dict[str, Classifier] = {default: classifier}
    for language in languages[1:]:
        specs = intent_specs(definition.intents, language, default)
        if specs:
            classifiers[language] = build_classifier(settings, specs)[0]
    detector = LanguageDetector(
        languages,
        examples={
            language: [
                e for i in definition.intents.values() for e in i.examples_for(language, default)
            ]
            for language in languages
        },
    )
    offline = OfflineBrain(
        classifier,
        intents=definition.intents,
        label=label,
        classifiers=classifiers,
        detector=detector,
    )
    if not settings.llm_configured:
        return offline
    from voicebot.brain.llm import build_llm_brain

    has_documents = knowledge is not None and not isinstance(knowledge, EmptyKnowledge)
    return build_llm_brain(
        settings, definition, offline, knowledge=knowledge if has_documents else None
    )


@dataclass
class BotRuntime:
    settings: Settings
    loaded: LoadedBot
    engine: DialogueEngine
    brain: Brain
    actions: ActionExecutor
    knowledge: KnowledgeBase
    handoffs: HandoffSink
    extra: dict[str, Any] = field(default_factory=dict)
    # The built-in queues' live figures (``queue.<name>.*`` in flows), read before each turn;
    # None when the queues are not running here (chat, tests: flows then see what was set).
    queue_stats: Callable[[], Awaitable[dict[str, dict[str, Any]]]] | None = None
    # The customer's last contacts, (customer id, this call's id) -> newest first, read at call
    # start (voicebot/history/contacts.py); None without a database here.
    history: Callable[[str, str], Awaitable[list[PastContact]]] | None = None

    @classmethod
    def load(
        cls,
        settings: Settings,
        *,
        bot_dir: Path | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        handoffs: HandoffSink | None = None,
        brain: Brain | None = None,
        knowledge: KnowledgeBase | None = None,
        with_tests: bool = False,
    ) -> BotRuntime:
        """Load flows and models (blocking: call it off the event loop in a server)."""
        root = bot_dir or settings.bot_dir
        loaded = load_bot(
            root,
            env=settings.flow_env(),
            max_bytes=settings.max_flow_file_bytes,
            with_tests=with_tests,
        )
        if brain is None:
            brain = build_brain(settings, loaded.definition, knowledge)
        if knowledge is not None and hasattr(knowledge, "default_language"):
            # documents that name no language are in the bot's default one
            knowledge.default_language = loaded.definition.bot.default_language
        engine = DialogueEngine(
            loaded.definition, llm=brain.uses_llm, **({"clock": clock} if clock else {})
        )
        return cls(
            settings=settings,
            loaded=loaded,
            engine=engine,
            brain=brain,
            actions=ActionExecutor(
                loaded.definition.actions,
                default_timeout=settings.webhook_timeout,
                secret=settings.webhook_secret.get_secret_value()
                if settings.webhook_secret
                else None,
                env=settings.flow_env(),
            ),
            knowledge=knowledge or EmptyKnowledge(),
            handoffs=handoffs or JsonlHandoffSink(settings.data_dir / "handoffs.jsonl"),
        )

    def new_call(
        self,
        *,
        caller: CallerInfo | None = None,
        call_id: str | None = None,
        mocks: Mapping[str, Any] | None = None,
        queues: Mapping[str, Mapping[str, Any]] | None = None,
        offline_actions: bool = False,
        language: str | None = None,
    ) -> CallRuntime:
        """A new call. ``mocks`` replace named actions; ``offline_actions`` keeps webhooks off
        the network (conversation tests); ``language`` starts it in one of the bot's languages
        (a ValueError for any other)."""
        state = self.engine.new_call(caller=caller, call_id=call_id, language=language)
        if queues:
            state.queues = {name: dict(stats) for name, stats in queues.items()}
        if mocks or offline_actions:
            actions = self.actions.with_mocks(mocks or {}, offline=offline_actions)
        else:
            actions = self.actions
        return CallRuntime(self, state, actions)

    def local_now(self) -> dt.datetime:
        """The call clock in the bot's time zone."""
        return self.engine.clock().astimezone(bot_timezone(self.loaded.definition.bot))

    def engine_context(self, state: CallState) -> dict[str, Any]:
        return expression_context(
            state,
            self.loaded.definition.bot,
            self.engine.clock(),
            queues=list(self.loaded.definition.queues),
        )

    async def aclose(self) -> None:
        await self.actions.aclose()
        close = getattr(self.brain, "aclose", None)
        if close is not None:
            await close()
