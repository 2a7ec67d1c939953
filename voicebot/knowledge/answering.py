"""The offline answer: the one or two sentences of the best passage that fit the question.

A passage is written to be read, not spoken: reading all of it to a caller takes half a minute.
Its sentences (list items and table rows count as sentences) are scored against the question by
meaning and by shared words; the best is spoken, with a neighbour when it needs one (it is short,
ends in a colon, or leans on the sentence before it: "It costs...").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from voicebot.knowledge.keyword_index import keywords

__all__ = ["MAX_WORDS", "extract_answer", "sentences"]

MAX_WORDS = 55
# A neighbour sentence scoring at least this share of the best one is read with it.
NEIGHBOUR_SHARE = 0.85
PAIR_WORDS = MAX_WORDS
LEAD_BONUS = 0.1
FIGURE_BONUS = 0.1
_ASKS_FIGURE = re.compile(
    r"\b(when|what time|how (much|many|long|old|fast|quick|soon)|cost|price|charge|fee|pay|"
    r"number|cheap|expensive|dear)\w*",
    re.I,
)
_FIGURE = re.compile(r"[0-9£$€]")
_SHORT = 12
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(£$€]?[A-Z0-9])")
_LEANS_BACK = re.compile(r"^(it|this|that|these|those|they|he|she|there|then|also|so)\b", re.I)

EmbedFn = Callable[[list[str]], Sequence[Sequence[float]]]


def sentences(passage: str) -> list[str]:
    """The passage's sentences in order; each line (list item, table row) ends one."""
    out: list[str] = []
    for line in passage.splitlines():
        line = line.strip()
        if not line:
            continue
        out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


def _words(text: str) -> int:
    return len(text.split())


def extract_answer(question: str, passage: str, embed: EmbedFn) -> str:
    """One or two sentences of ``passage`` that answer ``question`` (the passage if it is short)."""
    parts = sentences(passage)
    if not parts:
        return passage.strip()
    if len(parts) == 1 or _words(passage) <= _SHORT * 2:
        return _trim(" ".join(parts))

    asked = set(keywords(question))
    vectors = np.asarray(embed([question, *parts]), dtype=np.float32)
    vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    meaning = vectors[1:] @ vectors[0]
    overlap = np.array(
        [len(asked & set(keywords(p))) / len(asked) if asked else 0.0 for p in parts]
    )
    score = 0.6 * meaning + 0.4 * overlap
    # A section's first sentence usually states its point; the rest qualify it.
    score[0] += LEAD_BONUS
    # "When", "how much", "how long" ask for a figure: sentences that hold one are likelier.
    if _ASKS_FIGURE.search(question):
        score += np.array([FIGURE_BONUS if _FIGURE.search(p) else 0.0 for p in parts])
    best = int(np.argmax(score))

    chosen = [best]
    if best > 0 and _LEANS_BACK.match(parts[best]):
        chosen.insert(0, best - 1)
    elif best + 1 < len(parts) and (_words(parts[best]) < _SHORT or parts[best].endswith(":")):
        chosen.append(best + 1)
    else:
        # A neighbour that answers the question nearly as well belongs with it.
        for neighbour in (best + 1, best - 1):
            if (
                0 <= neighbour < len(parts)
                and score[neighbour] >= NEIGHBOUR_SHARE * score[best]
                and _words(parts[best]) + _words(parts[neighbour]) <= PAIR_WORDS
            ):
                chosen = sorted([best, neighbour])
                break
    # "There is no charge if:" promises the list that follows; read its items too.
    while chosen[-1] + 1 < len(parts) and parts[chosen[-1]].endswith(":"):
        chosen.append(chosen[-1] + 1)
        while (
            chosen[-1] + 1 < len(parts)
            and _words(" ".join(parts[i] for i in [*chosen, chosen[-1] + 1])) <= MAX_WORDS
            and not parts[chosen[-1] + 1].endswith(":")
            and _is_item(parts[chosen[-1]])
        ):
            chosen.append(chosen[-1] + 1)
    text = " ".join(parts[i] for i in chosen)
    if _words(text) > MAX_WORDS and len(chosen) > 1:
        text = " ".join(parts[i] for i in chosen[:2])
    return _trim(text)


def _is_item(sentence: str) -> bool:
    """List items are short; a long sentence after a list is the next paragraph."""
    return _words(sentence) <= 20


def _trim(text: str) -> str:
    """At most ``MAX_WORDS`` words, cut at a sentence or clause end where there is one."""
    words = text.split()
    if len(words) <= MAX_WORDS:
        return text
    cut = " ".join(words[:MAX_WORDS])
    end = max(cut.rfind(". "), cut.rfind("; "), cut.rfind(", "))
    if end > len(cut) // 2:
        cut = cut[:end]
    return cut.rstrip(",;: ") + "."
