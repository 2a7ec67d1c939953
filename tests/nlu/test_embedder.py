"""SentenceEmbedder against the real all-MiniLM-L6-v2 ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.config import Settings
from voicebot.nlu.embedder import EmbeddingModelMissing, SentenceEmbedder, load_embedder

MODEL_DIR = Settings().resolved_model_dir()
needs_model = pytest.mark.skipif(
    MODEL_DIR is None,
    reason="no all-MiniLM-L6-v2 ONNX export found: set VOICEBOT_EMBEDDING_MODEL_DIR to a "
    "directory containing onnx/model.onnx (a checkout beside /work/shared/models finds it)",
)


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    assert MODEL_DIR is not None
    return load_embedder(Settings())


class _NoModelSettings(Settings):
    """Settings on a machine where the model is nowhere to be found."""

    def resolved_model_dir(self) -> Path | None:
        return None


@needs_model
def test_shape_dtype_and_unit_length(embedder: SentenceEmbedder) -> None:
    vectors = embedder.embed(["what's my balance", "I want to speak to an agent", "bye"])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dimension == 384
    assert embedder.model_name == "all-MiniLM-L6-v2"


@needs_model
def test_empty_input_and_single_text(embedder: SentenceEmbedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
    one = embedder.embed_one("pay my bill")
    assert one.shape == (384,)
    assert one.dtype == np.float32
    np.testing.assert_allclose(one, embedder.embed(["pay my bill"])[0], atol=1e-6)


@needs_model
def test_embed_rejects_a_bare_string(embedder: SentenceEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("pay my bill")


@needs_model
def test_batch_padding_does_not_change_vectors(embedder: SentenceEmbedder) -> None:
    # Very different lengths in one batch: the short ones are padded to the longest.
    texts = [
        "agent",
        "what's my balance",
        "I moved house last month and since then my broadband has dropped out every evening "
        "and nobody has been able to tell me why, which is very frustrating",
        "ok",
        "can I pay by card please",
    ]
    batched = embedder.embed(texts)
    one_by_one = np.stack([embedder.embed_one(t) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)


@needs_model
def test_order_is_kept_across_internal_batches(embedder: SentenceEmbedder) -> None:
    # More than one internal batch (32), lengths shuffled, so the length sort must be undone.
    texts = [("word " * (1 + (i * 7) % 23)).strip() + f" number {i}" for i in range(70)]
    batched = embedder.embed(texts)
    for i in (0, 1, 31, 32, 33, 69):
        np.testing.assert_allclose(batched[i], embedder.embed_one(texts[i]), atol=1e-4)


@needs_model
def test_long_text_is_truncated_not_rejected(embedder: SentenceEmbedder) -> None:
    vector = embedder.embed_one("my internet is slow " * 400)
    assert vector.shape == (384,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


@needs_model
def test_similar_sentences_are_closer_than_dissimilar(embedder: SentenceEmbedder) -> None:
    balance, credit, weather, pay = embedder.embed(
        [
            "what is my account balance",
            "how much credit do I have left",
            "it is going to rain in Manchester tomorrow",
            "I want to pay my bill",
        ]
    )
    assert float(balance @ credit) > float(balance @ weather) + 0.2
    assert float(balance @ pay) > float(balance @ weather)


@needs_model
def test_chroma_style_call(embedder: SentenceEmbedder) -> None:
    rows = embedder(["first document", "second document"])
    assert isinstance(rows, list)
    assert len(rows) == 2
    assert all(isinstance(x, float) for x in rows[0])
    assert len(rows[1]) == 384


@needs_model
def test_load_embedder_shares_one_instance() -> None:
    assert load_embedder(Settings()) is load_embedder(Settings())


def test_missing_directory_raises_a_helpful_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelMissing) as caught:
        SentenceEmbedder(model_dir=tmp_path / "nowhere")
    message = str(caught.value)
    assert str(tmp_path / "nowhere") in message
    assert "VOICEBOT_EMBEDDING_MODEL_DIR" in message
    assert "onnx/model.onnx" in message
    assert "voicebot models download embedder" in message


def test_directory_without_tokenizer_is_missing_too(tmp_path: Path) -> None:
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"")
    with pytest.raises(EmbeddingModelMissing, match=r"tokenizer\.json"):
        SentenceEmbedder(model_dir=tmp_path)


def test_load_embedder_without_any_model(tmp_path: Path) -> None:
    settings = _NoModelSettings(embedding_model_dir=tmp_path / "models")
    with pytest.raises(EmbeddingModelMissing) as caught:
        load_embedder(settings)
    message = str(caught.value)
    assert str(tmp_path / "models") in message
    assert "voicebot models download embedder" in message
    assert isinstance(caught.value, RuntimeError)
