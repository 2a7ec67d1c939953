"""Embeddings for the knowledge index, as LangChain ``Embeddings`` so that langchain-chroma can use
them: the process's all-MiniLM-L6-v2 on onnxruntime by default, any OpenAI-compatible
``/v1/embeddings`` endpoint when ``VOICEBOT_EMBEDDING_MODEL`` is set.

Each has an ``identity``, stored on the Chroma collection. Vectors of two models are not
comparable, so an index built by one is refused by the other with a message to re-ingest.
"""

from __future__ import annotations

from typing import Protocol

from langchain_core.embeddings import Embeddings

from voicebot.config import Settings
from voicebot.nlu.embedder import SentenceEmbedder, load_embedder

__all__ = [
    "IdentifiedEmbeddings",
    "LocalEmbeddings",
    "OpenAICompatibleEmbeddings",
    "embeddings_for",
]


class IdentifiedEmbeddings(Protocol):
    identity: str

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class LocalEmbeddings(Embeddings):
    """The shared sentence embedder (the intent classifier's instance: one model per process)."""

    def __init__(self, embedder: SentenceEmbedder) -> None:
        self.embedder = embedder
        self.identity = f"onnx:{embedder.model_name}:{embedder.dimension}"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [row.tolist() for row in self.embedder.embed(texts)]

    def embed_query(self, text: str) -> list[float]:
        vector: list[float] = self.embedder.embed_one(text).tolist()
        return vector


class OpenAICompatibleEmbeddings(Embeddings):
    """``POST {base_url}/embeddings`` through the ``openai`` client, in batches."""

    _BATCH = 64

    def __init__(
        self, *, model: str, base_url: str | None, api_key: str | None, timeout: float = 30.0
    ) -> None:
        import openai

        self.model = model
        self.identity = f"openai:{model}"
        # The client insists on a key; local OpenAI-compatible servers accept any.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=2
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._BATCH):
            batch = texts[start : start + self._BATCH]
            response = self._client.embeddings.create(model=self.model, input=batch)
            ordered = sorted(response.data, key=lambda item: item.index)
            vectors.extend(list(item.embedding) for item in ordered)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def embeddings_for(settings: Settings) -> LocalEmbeddings | OpenAICompatibleEmbeddings:
    """The configured embeddings; ``EmbeddingModelMissing`` when the local model is absent."""
    if settings.embedding_model:
        return OpenAICompatibleEmbeddings(
            model=settings.embedding_model,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        )
    return LocalEmbeddings(load_embedder(settings))
