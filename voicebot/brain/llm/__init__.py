"""The LLM brain: natural conversation through any OpenAI-compatible model."""

from voicebot.brain.llm.brain import LlmBrain, ModelFailed, TurnTiming
from voicebot.brain.llm.factory import build_llm_brain, openai_llm

__all__ = ["LlmBrain", "ModelFailed", "TurnTiming", "build_llm_brain", "openai_llm"]
