"""The intent classifier's linear head: logistic regression over the examples' embeddings.

Nearest-example scoring asks "which example is this utterance closest to?"; a linear head asks
"which direction in embedding space separates this intent from the others?", which is what
tells apart intents whose examples share words ("pay my bill" / "why is my bill so high").
On few-shot benchmarks the head picks the right intent more often (benchmarks/intent_accuracy.py,
README "Performance"). It does not know what is out of scope -- a softmax always sums to one
over the known intents -- so the classifier keeps example similarity for that.

Trained when the classifier is built (a bot load), from the same vectors the classifier already
holds; a few tenths of a second for a hundred intents, so nothing is cached that could go stale.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_C", "LinearHead"]

#: Inverse regularisation strength. On benchmarks/intent_accuracy.py (10 examples per intent)
#: C=4 picks the right intent most often (79.0% top-1) and C=30..1000 a little less (77.5-77.8%,
#: against 73.3% for nearest examples), but a softer fit averages away an intent whose examples
#: are scattered -- the example bot's catch-all ``question`` intent lost three of its pinned
#: conversation tests to narrower intents at C=4 and none at C=100, which follows individual
#: examples more closely.
DEFAULT_C: Final = 100.0
_MAX_ITER: Final = 500


class LinearHead:
    """A multinomial logistic regression from unit-length embeddings to intent indices.

    ``labels[i]`` is the intent index (0..n_classes-1) of ``vectors[i]``; ``weights`` scale a
    row's say (descriptions count a little less than examples). Classes are balanced, so an
    intent with twenty examples does not crowd out one with three. With a single class there is
    nothing to separate and every probability is 1.
    """

    def __init__(
        self,
        *,
        vectors: npt.NDArray[np.float32],
        labels: Sequence[int] | npt.NDArray[np.intp],
        n_classes: int,
        weights: Sequence[float] | npt.NDArray[np.float32] | None = None,
        c: float = DEFAULT_C,
    ) -> None:
        if c <= 0:
            raise ValueError("c must be positive")
        y = np.asarray(labels, dtype=np.intp)
        if vectors.shape[0] != y.shape[0]:
            raise ValueError("vectors and labels differ in length")
        if n_classes < 1 or (y.size and (y.min() < 0 or y.max() >= n_classes)):
            raise ValueError("labels must lie in 0..n_classes-1")
        if set(np.unique(y).tolist()) != set(range(n_classes)):
            raise ValueError("every class needs at least one row")
        self._n_classes = n_classes
        self._train_seconds = 0.0
        self._coef: npt.NDArray[np.float32] | None = None
        self._intercept: npt.NDArray[np.float32] | None = None
        if n_classes > 1:
            # Imported here: scikit-learn takes a moment to import, and a bot that asks for
            # the nearest-example scorer should not pay for it.
            from sklearn.exceptions import ConvergenceWarning
            from sklearn.linear_model import LogisticRegression
            from threadpoolctl import threadpool_limits

            # The fit alone: the one-off import (about a second) is not training time.
            started = time.perf_counter()
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=_MAX_ITER)
            sample_weight = None if weights is None else np.asarray(weights, dtype=np.float32)
            # One BLAS thread: the products are small, and OpenBLAS threads fighting over busy
            # cores made a 100-intent fit 0.6-1.3 s instead of 0.03-0.12 s (measured).
            with warnings.catch_warnings(), threadpool_limits(limits=1):
                # Not converging to the last decimal within max_iter is harmless here (the
                # ranking is settled long before); the test suite turns warnings into errors.
                warnings.simplefilter("ignore", category=UserWarning)
                warnings.simplefilter("ignore", category=ConvergenceWarning)
                # float32 as the embeddings are: lbfgs keeps it, about twice as fast as float64.
                model.fit(vectors.astype(np.float32), y, sample_weight=sample_weight)
            coef = np.asarray(model.coef_, dtype=np.float32)
            intercept = np.asarray(model.intercept_, dtype=np.float32)
            if n_classes == 2:
                # Binary LogisticRegression keeps one row (class 1 against class 0); two
                # opposite rows give the same probabilities through the softmax below.
                coef = np.concatenate([-coef / 2, coef / 2])
                intercept = np.concatenate([-intercept / 2, intercept / 2])
            # Only the weights are kept: scoring is one small matrix product, no sklearn call
            # (and no sklearn object shared between threads) per utterance.
            self._coef = np.ascontiguousarray(coef.T)
            self._intercept = intercept
            self._train_seconds = time.perf_counter() - started

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def train_seconds(self) -> float:
        """Wall time the fit took (0 for a single class)."""
        return self._train_seconds

    def probabilities(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Class probabilities, shape (n_vectors, n_classes); each row sums to 1."""
        if self._coef is None or self._intercept is None:
            return np.ones((vectors.shape[0], 1), dtype=np.float64)
        logits = (vectors @ self._coef + self._intercept).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))
