"""Building the LLM brain from settings: livekit-agents' OpenAI plugin on any compatible API."""

from __future__ import annotations

from livekit.plugins import openai as lk_openai

from voicebot.brain.llm.brain import LlmBrain
from voicebot.brain.offline import OfflineBrain
from voicebot.config import Settings
from voicebot.flows.schema import BotDefinition
from voicebot.knowledge.base import KnowledgeBase

# Local servers (Ollama, vLLM, llama.cpp) take any key, but the client insists on one.
_NO_KEY = "not-needed"


def openai_llm(settings: Settings, *, base_url: str | None = None) -> lk_openai.LLM:
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else _NO_KEY
    url = base_url or settings.llm_base_url
    if url:
        return lk_openai.LLM(model=settings.llm_model, api_key=key, base_url=url, max_retries=0)
    return lk_openai.LLM(model=settings.llm_model, api_key=key, max_retries=0)


def build_llm_brain(
    settings: Settings,
    bot: BotDefinition,
    offline: OfflineBrain,
    *,
    knowledge: KnowledgeBase | None,
    base_url: str | None = None,
) -> LlmBrain:
    model = openai_llm(settings, base_url=base_url)
    where = base_url or settings.llm_base_url or "api.openai.com"
    return LlmBrain(
        bot,
        model,
        offline,
        knowledge=knowledge,
        timeout=settings.llm_timeout,
        max_failures=settings.llm_max_failures,
        agent_language=settings.agent_language,
        label=f"llm: {settings.llm_model} at {where} (offline brain as fallback)",
    )
