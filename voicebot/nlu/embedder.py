"""Sentence embeddings with all-MiniLM-L6-v2 on onnxruntime, without torch.

The model is the ONNX export that Chroma's default embedding function uses (``<dir>/onnx/
model.onnx`` and ``<dir>/onnx/tokenizer.json``). Vectors are mean-pooled over the attention mask
and L2-normalised, which is exactly what sentence-transformers returns for this model, so a dot
product of two vectors is their cosine similarity.

Thread safety: an onnxruntime ``InferenceSession`` may be run from several threads at once and the
tokenizer is only read after construction, so one :class:`SentenceEmbedder` per process can serve
every call (which is what :func:`load_embedder` hands out). Calls are CPU-bound and blocking: from
async code, run them in a worker thread when a batch is large.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from voicebot import config as _config
from voicebot.config import Settings

__all__ = [
    "MODEL_NAME",
    "EmbeddingModelMissing",
    "SentenceEmbedder",
    "load_embedder",
]

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
_DIMENSION = 384
# BERT's position table has 512 rows; longer inputs cannot be embedded at all.
_MODEL_MAX_TOKENS = 512
# Big enough to amortise the per-run overhead, small enough that one long text does not make
# a whole batch pay for its padding (batches are also sorted by length, see embed()).
_BATCH_SIZE = 32

_HOW_TO_GET_IT = (
    "Set VOICEBOT_EMBEDDING_MODEL_DIR to a directory containing onnx/model.onnx and "
    "onnx/tokenizer.json (the all-MiniLM-L6-v2 ONNX export), or run "
    "`voicebot models download embedder` on a machine with internet access."
)

Matrix = npt.NDArray[np.float32]


class EmbeddingModelMissing(RuntimeError):
    """The embedding model's files are not where we looked.

    ``searched`` holds the directories that were tried, in order.
    """

    def __init__(self, searched: Sequence[Path], detail: str | None = None) -> None:
        self.searched = tuple(searched)
        places = ", ".join(str(p) for p in self.searched) or "(no candidate directories)"
        reason = detail or f"No {MODEL_NAME} model (onnx/model.onnx) was found."
        super().__init__(f"{reason} Looked in: {places}. {_HOW_TO_GET_IT}")


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: 384 floats per text, unit length.

    Construction loads the model (a few hundred milliseconds); do it once per process, off the
    event loop. The instance is safe to share between threads.
    """

    def __init__(self, *, model_dir: Path, threads: int = 1, max_length: int = 256) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        if not 2 <= max_length <= _MODEL_MAX_TOKENS:
            raise ValueError(f"max_length must be between 2 and {_MODEL_MAX_TOKENS}")
        model_dir = Path(model_dir)
        model_path = model_dir / "onnx" / "model.onnx"
        tokenizer_path = model_dir / "onnx" / "tokenizer.json"
        missing = [p.name for p in (model_path, tokenizer_path) if not p.is_file()]
        if missing:
            raise EmbeddingModelMissing(
                [model_dir],
                detail=f"{model_dir / 'onnx'} does not contain {' and '.join(missing)}.",
            )

        started = time.perf_counter()
        self._model_dir = model_dir
        self._threads = threads
        self._max_length = max_length

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The exported tokenizer.json pads every text to a fixed 128 tokens. We pad ourselves,
        # only to the longest text of each batch: attention cost grows with sequence length and
        # a 10-token utterance padded to 128 would be several times slower.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer = tokenizer
        pad_id = tokenizer.token_to_id("[PAD]")
        self._pad_id = 0 if pad_id is None else int(pad_id)

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # The graph is one chain of layers: parallel branches would gain nothing and inter-op
        # threads would compete with the intra-op ones on a small machine.
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise EmbeddingModelMissing(
                [model_dir], detail=f"{model_path} could not be loaded ({type(exc).__name__})."
            ) from exc
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name

        logger.info(
            "embedding model loaded",
            extra={
                "model": MODEL_NAME,
                "model_dir": str(model_dir),
                "threads": threads,
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    @property
    def model_name(self) -> str:
        """The model's name, ``"all-MiniLM-L6-v2"``."""
        return MODEL_NAME

    @property
    def dimension(self) -> int:
        """Length of every vector: 384."""
        return _DIMENSION

    @property
    def model_dir(self) -> Path:
        """The directory the model was loaded from."""
        return self._model_dir

    @property
    def threads(self) -> int:
        """onnxruntime intra-op threads used per call."""
        return self._threads

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed ``texts``: float32 array of shape ``(len(texts), 384)``, rows of unit length.

        Texts longer than ``max_length`` tokens are truncated. Row order follows ``texts``.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_one() for one text")
        if not texts:
            return np.zeros((0, _DIMENSION), dtype=np.float32)
        if len(texts) == 1:
            return self._run([self._tokenizer.encode(texts[0]).ids])

        # One text at a time rather than encode_batch(): tokenising is ~25 us a text, and
        # encode_batch's own thread pool would compete with onnxruntime's threads on a small
        # machine and warns when a worker process is forked after it has run.
        token_ids = [self._tokenizer.encode(text).ids for text in texts]
        # Batches of similar lengths waste little on padding; results do not depend on which
        # texts share a batch, so the order is restored afterwards.
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        out = np.empty((len(token_ids), _DIMENSION), dtype=np.float32)
        for start in range(0, len(order), _BATCH_SIZE):
            chunk = order[start : start + _BATCH_SIZE]
            out[chunk] = self._run([token_ids[i] for i in chunk])
        return out

    def embed_one(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one text: float32 vector of shape ``(384,)`` and unit length."""
        vector: npt.NDArray[np.float32] = self._run([self._tokenizer.encode(text).ids])[0]
        return vector

    def __call__(self, input: Sequence[str]) -> list[list[float]]:
        """Chroma's embedding-function interface: one list of floats per document."""
        return [row.tolist() for row in self.embed(input)]

    def _run(self, token_ids: list[list[int]]) -> Matrix:
        """One onnxruntime call over a batch padded to its longest sequence."""
        longest = max(len(ids) for ids in token_ids)
        input_ids = np.full((len(token_ids), longest), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(token_ids), longest), dtype=np.int64)
        for row, ids in enumerate(token_ids):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1

        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run([self._output_name], feeds)[0]

        # Mean over real tokens only (padding positions carry values too), as sentence-
        # transformers does; then unit length so that a dot product is a cosine.
        mask = attention_mask[:, :, None].astype(np.float32)
        summed = (np.asarray(hidden, dtype=np.float32) * mask).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


_cache: dict[tuple[Path, int], SentenceEmbedder] = {}
_cache_lock = threading.Lock()


def load_embedder(settings: Settings) -> SentenceEmbedder:
    """The process's embedder for ``settings``' model directory and thread count.

    The model is loaded on first use and shared afterwards (it is thread-safe and ~90 MB).
    Raises :class:`EmbeddingModelMissing` when no model directory can be found.
    """
    model_dir = settings.resolved_model_dir()
    if model_dir is None:
        raise EmbeddingModelMissing(_searched_dirs(settings))
    key = (model_dir.resolve(), settings.embedding_threads)
    # Held while loading so that two threads asking at start-up do not load the model twice.
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = SentenceEmbedder(model_dir=model_dir, threads=settings.embedding_threads)
            _cache[key] = embedder
        return embedder


def _searched_dirs(settings: Settings) -> list[Path]:
    """Where :meth:`Settings.resolved_model_dir` looks, for the error message."""
    searched = [settings.embedding_model_dir] if settings.embedding_model_dir else []
    # The default locations are private to voicebot.config; read them without depending on the
    # name so that the error message degrades rather than the import failing if they move.
    defaults: tuple[Path, ...] = tuple(getattr(_config, "_MODEL_CANDIDATES", ()))
    return searched + list(defaults)
