"""BM25 keyword scores over every passage, for the keyword half of hybrid retrieval.

Short spoken questions often hinge on one rare word ("PAC", "eSIM", "Spain") that a sentence
embedding blurs; BM25 catches those. ``rank_bm25`` scans every document in Python for each query
term (tens of milliseconds at 10,000 passages), so this keeps an inverted index in NumPy arrays:
a query touches only the postings of its own terms.

Scores are returned normalised to 0..1 as the share of the question's (IDF-weighted) words that a
passage contains, saturating with repetition, so that one threshold means the same thing for
every question.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["KeywordIndex", "keywords"]

_K1 = 1.2
_B = 0.75
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

# Words that carry no topic in a caller's question. Kept short on purpose: "no", "not", "off"
# and numbers can matter ("no signal", "turn off", "4G").
_STOPWORDS = frozenset(
    """a about am an and any are as at be been being but by can could did do does doing for from
    get got had has have hello hi how i i'd i'm im if in into is it it's its just know like me
    might my of ok okay on or our please should so than thank thanks that the their them then
    there these they this those to too um uh was we were what when where which who why will
    with would yeah yes you your you're want wanted wondering tell wonder need much""".split()  # noqa: SIM905
)


def _stem(word: str) -> str:
    """A light suffix strip so that "charges", "charged" and "charging" all meet "charg"."""
    if len(word) <= 3 or word.endswith("ss"):
        return word
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "ls":
        word = word[:-1]  # "stopped" -> "stopp" -> "stop"
    return word.rstrip("e") if len(word) > 3 else word


def keywords(text: str) -> list[str]:
    """The question's or passage's content words, lower-cased and stemmed, in order."""
    words = (w.replace("’", "'") for w in _WORD.findall(text.casefold()))
    return [_stem(w) for w in words if w not in _STOPWORDS]


class KeywordIndex:
    """An immutable BM25 index over ``texts``; rebuild it when the passages change."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.size = len(texts)
        vocabulary: dict[str, int] = {}
        postings: list[list[tuple[int, int]]] = []
        lengths = np.zeros(self.size, dtype=np.float32)
        for doc, text in enumerate(texts):
            counts = Counter(keywords(text))
            lengths[doc] = sum(counts.values())
            for term, tf in counts.items():
                tid = vocabulary.setdefault(term, len(vocabulary))
                if tid == len(postings):
                    postings.append([])
                postings[tid].append((doc, tf))
        self._vocabulary = vocabulary
        self._docs = [np.array([d for d, _ in p], dtype=np.int32) for p in postings]
        self._tfs = [np.array([tf for _, tf in p], dtype=np.float32) for p in postings]
        average = float(lengths.mean()) if self.size else 1.0
        self._norm = _K1 * (1 - _B + _B * lengths / max(average, 1e-9))
        self._idf = [math.log(1 + (self.size - len(d) + 0.5) / (len(d) + 0.5)) for d in self._docs]

    def scores(self, question: str) -> npt.NDArray[np.float32]:
        """Each passage's score for ``question``, 0..1 (1: every question word, repeatedly)."""
        out = np.zeros(self.size, dtype=np.float32)
        terms = list(dict.fromkeys(keywords(question)))  # a repeated word counts once
        if not terms or not self.size:
            return out
        # Words the index has never seen still count in the denominator: a question about
        # "Bitcoin payments" is only half-answered by a passage about payments.
        unseen_idf = math.log(1 + (self.size + 0.5) / 0.5)
        total = 0.0
        for term in terms:
            tid = self._vocabulary.get(term)
            if tid is None:
                total += unseen_idf
                continue
            idf = self._idf[tid]
            total += idf
            docs, tfs = self._docs[tid], self._tfs[tid]
            out[docs] += idf * tfs * (_K1 + 1) / (tfs + self._norm[docs])
        # One occurrence in a passage of average length scores exactly idf; more saturates
        # towards (k1 + 1) * idf, so the share is clipped at 1.
        np.clip(out / max(total, 1e-9), 0.0, 1.0, out=out)
        return out
