"""Lexicon sentiment for phone callers: how angry (0..1) and how negative or positive (-1..1).

No model: a caller's turn is matched against the word and phrase lists below, in British and
American call-centre English. It is meant to catch the caller who is clearly losing patience
(to offer a human sooner), not to read subtle moods.

How a turn is scored
--------------------
* The text is split into words (casefolded, apostrophes dropped: "isn't" -> "isnt") and clause
  breaks (``. , ; : ! ?`` and "but"). Phrases are matched longest first, so "not working" is one
  term and "no thanks" is consumed before "no" could negate "thanks".
* Each matched term has an anger weight (0..1) and a valence (-1..1), from the tables below.
* Words just before a term change it: intensifiers multiply it ("absolutely ridiculous",
  "a bit annoyed"); a swear word directly before another term intensifies that term instead of
  counting on its own ("fucking useless", "bloody brilliant"); a negator up to three words
  before it in the same clause flips it ("not happy" is negative and mildly angry, "not bad"
  mildly positive and not angry). "no", "nothing" and "without" negate only the next word.
* Typed emphasis (chat, not speech): exclamation marks and a term written in capitals, or a
  whole turn in capitals, make its anger terms stronger. They never create anger on their own.
* anger = 1 - product(1 - anger of each term), so several angry terms add up without passing 1;
  score = tanh(sum of valences).

"this is absolutely ridiculous, I'm furious, your service is useless" scores anger ~0.99;
"what's my balance" 0.0; one "ridiculous" 0.6; "fed up" 0.5.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ANGER_TERMS",
    "INTENSIFIERS",
    "NEGATORS",
    "NEUTRAL",
    "OTHER_TERMS",
    "SWEARING",
    "SWEAR_INTENSIFIERS",
    "Sentiment",
    "SentimentTracker",
    "analyse",
]


@dataclass(frozen=True)
class Sentiment:
    """One turn's sentiment."""

    anger: float  # 0 (calm) .. 1 (furious)
    score: float  # -1 (negative) .. 1 (positive)


NEUTRAL: Final = Sentiment(anger=0.0, score=0.0)

# --- The lexicon ---------------------------------------------------------------------------
# Phrases are written naturally; they are normalised like caller text ("i've" -> "ive").

#: Anger terms: phrase -> anger weight. Their valence is minus the weight. 0.8+ is rage on its
#: own, ~0.6 clear annoyance, ~0.3 a hint (asking for a manager, threatening to leave).
ANGER_TERMS: Final[Mapping[str, float]] = (
    {
        # Feelings, said outright.
        "angry": 0.6,
        "furious": 0.85,
        "livid": 0.85,
        "fuming": 0.8,
        "seething": 0.8,
        "outraged": 0.8,
        "raging": 0.7,
        "infuriating": 0.75,
        "infuriated": 0.75,
        "annoyed": 0.4,
        "annoying": 0.4,
        "irritated": 0.4,
        "frustrated": 0.45,
        "frustrating": 0.45,
        "fed up": 0.5,
        "sick of": 0.5,
        "sick and tired": 0.65,
        "had enough": 0.5,
        "hate": 0.55,
        # Judgements of the company or the agent.
        "ridiculous": 0.6,
        "absurd": 0.5,
        "outrageous": 0.65,
        "disgrace": 0.65,
        "disgraceful": 0.65,
        "disgusting": 0.6,
        "shocking": 0.45,
        "appalling": 0.6,
        "unacceptable": 0.55,
        "not acceptable": 0.55,
        "not good enough": 0.45,
        "pathetic": 0.6,
        "useless": 0.55,
        "hopeless": 0.45,
        "incompetent": 0.6,
        "idiot": 0.7,
        "idiots": 0.7,
        "stupid": 0.5,
        "rubbish": 0.4,
        "garbage": 0.45,
        "sucks": 0.5,
        "worst": 0.45,
        "a joke": 0.45,
        "this is a joke": 0.6,
        "its a joke": 0.55,
        "absolute joke": 0.65,
        "complete joke": 0.65,
        "total joke": 0.65,
        "you must be joking": 0.5,
        "are you kidding": 0.5,
        "waste of time": 0.5,
        "wasting my time": 0.55,
        "rip off": 0.5,
        "ripoff": 0.5,
        "scam": 0.5,
        "scammers": 0.6,
        "daylight robbery": 0.6,
        "liars": 0.6,
        "lied to me": 0.55,
        "nobody cares": 0.5,
        "nobody listens": 0.5,
        "what is wrong with you": 0.65,
        "whats wrong with you": 0.65,
        "thanks for nothing": 0.55,
        "yeah right": 0.3,
        # Being kept waiting, calling again and again.
        "how many times": 0.45,
        "how many more times": 0.55,
        "every time i call": 0.3,
        "still not working": 0.35,
        "still not fixed": 0.4,
        "still waiting": 0.3,
        "been on hold": 0.35,
        "on hold for": 0.35,
        "keep calling": 0.4,
        "keep having to call": 0.45,
        "second time": 0.2,
        "sort it out": 0.35,
        "sort this out": 0.35,
        # Threats to leave or escalate: a hint only, callers say them calmly too.
        "cancel my contract": 0.25,
        "cancel my account": 0.2,
        "leaving you": 0.3,
        "take my business elsewhere": 0.45,
        "speak to your manager": 0.35,
        "speak to a manager": 0.3,
        "your supervisor": 0.3,
        "ombudsman": 0.4,
        "trading standards": 0.4,
    }
    | {
        # "the third time i've called", "called five times"
        f"{nth} time": 0.45
        for nth in (
            "third",
            "fourth",
            "fifth",
            "sixth",
            "tenth",
            "3rd",
            "4th",
            "5th",
            "6th",
            "10th",
        )
    }
    | {
        f"{verb} {count} times": 0.45
        for verb in ("called", "rung", "rang", "phoned")
        for count in ("three", "four", "five", "six", "several", "multiple", "so many", "countless")
    }
)

#: Swear words, mild to strong: phrase -> anger weight (valence is minus the weight).
SWEARING: Final[Mapping[str, float]] = {
    "flipping": 0.3,
    "freaking": 0.35,
    "frigging": 0.35,
    "damn": 0.3,
    "dammit": 0.4,
    "damned": 0.35,
    "hell": 0.3,
    "what the hell": 0.5,
    "bloody": 0.35,
    "bloody hell": 0.5,
    "crap": 0.4,
    "crappy": 0.45,
    "sodding": 0.45,
    "arse": 0.5,
    "bollocks": 0.6,
    "pissed": 0.55,
    "pissed off": 0.65,
    "piss off": 0.7,
    "shit": 0.6,
    "shite": 0.6,
    "bullshit": 0.7,
    "effing": 0.6,
    "ffs": 0.6,
    "wtf": 0.65,
    "bastard": 0.75,
    "bastards": 0.75,
    "arsehole": 0.8,
    "asshole": 0.8,
    "fuck": 0.85,
    "fucking": 0.8,
    "fuckin": 0.8,
    "fucked": 0.8,
    "for fucks sake": 0.85,
    "for christs sake": 0.55,
    "for gods sake": 0.5,
    "for heavens sake": 0.4,
}

#: Swear words that, directly before another term, intensify it by this factor instead.
SWEAR_INTENSIFIERS: Final[Mapping[str, float]] = {
    "flipping": 1.2,
    "freaking": 1.3,
    "frigging": 1.3,
    "damn": 1.3,
    "damned": 1.3,
    "bloody": 1.4,
    "sodding": 1.4,
    "effing": 1.4,
    "fucking": 1.5,
    "fuckin": 1.5,
}

#: Everything else: phrase -> (anger, valence). Unhappy-but-calm words, praise and thanks, and
#: phrases listed only so that their words are not read on their own (weights 0).
OTHER_TERMS: Final[Mapping[str, tuple[float, float]]] = {
    # Negative, little anger.
    "unhappy": (0.25, -0.5),
    "disappointed": (0.25, -0.5),
    "disappointing": (0.25, -0.5),
    "upset": (0.3, -0.5),
    "terrible": (0.35, -0.6),
    "awful": (0.35, -0.6),
    "horrible": (0.35, -0.6),
    "bad": (0.1, -0.4),
    "poor": (0.15, -0.4),
    "wrong": (0.1, -0.3),
    "broken": (0.1, -0.3),
    "not working": (0.15, -0.3),
    "isnt working": (0.15, -0.3),
    "doesnt work": (0.15, -0.3),
    "dont work": (0.15, -0.3),
    "complaint": (0.15, -0.3),
    "complain": (0.2, -0.3),
    "worried": (0.0, -0.3),
    "confused": (0.05, -0.2),
    "problem": (0.0, -0.2),
    "issue": (0.0, -0.15),
    # Positive.
    "thank you": (0.0, 0.4),
    "thanks": (0.0, 0.4),
    "cheers": (0.0, 0.3),
    "good": (0.0, 0.4),
    "nice": (0.0, 0.4),
    "fine": (0.0, 0.2),
    "great": (0.0, 0.6),
    "brilliant": (0.0, 0.7),
    "excellent": (0.0, 0.7),
    "perfect": (0.0, 0.6),
    "fantastic": (0.0, 0.7),
    "wonderful": (0.0, 0.7),
    "amazing": (0.0, 0.7),
    "awesome": (0.0, 0.7),
    "superb": (0.0, 0.7),
    "lovely": (0.0, 0.5),
    "love": (0.0, 0.5),
    "helpful": (0.0, 0.5),
    "happy": (0.0, 0.5),
    "pleased": (0.0, 0.5),
    "glad": (0.0, 0.4),
    "relieved": (0.0, 0.4),
    "appreciate": (0.0, 0.5),
    "appreciated": (0.0, 0.5),
    "sorted": (0.0, 0.3),
    "resolved": (0.0, 0.3),
    "spot on": (0.0, 0.5),
    "well done": (0.0, 0.5),
    "no problem": (0.0, 0.2),
    "no worries": (0.0, 0.2),
    "fair enough": (0.0, 0.2),
    # Not sentiment at all.
    "no thanks": (0.0, 0.0),
    "no thank you": (0.0, 0.0),
    "good morning": (0.0, 0.0),
    "good afternoon": (0.0, 0.0),
    "good evening": (0.0, 0.0),
    "tell me a joke": (0.0, 0.0),
    "hate to": (0.0, 0.0),
    "cant believe": (0.1, -0.1),
}

#: Words and phrases that scale the next term: >1 stronger, <1 weaker.
INTENSIFIERS: Final[Mapping[str, float]] = {
    "very": 1.3,
    "so": 1.3,
    "really": 1.3,
    "truly": 1.3,
    "seriously": 1.3,
    "too": 1.2,
    "such": 1.2,
    "most": 1.2,
    "absolutely": 1.5,
    "utterly": 1.5,
    "extremely": 1.5,
    "completely": 1.4,
    "totally": 1.4,
    "incredibly": 1.4,
    "never been so": 1.5,
    "never been more": 1.5,
    "never been this": 1.5,
    "pretty": 1.1,
    "quite": 1.1,
    "fairly": 0.9,
    "somewhat": 0.7,
    "kind of": 0.7,
    "kinda": 0.7,
    "a bit": 0.6,
    "a little": 0.6,
    "slightly": 0.6,
}

#: Words that flip a following term in the same clause (up to three words before it).
NEGATORS: Final = frozenset(
    {
        "not",
        "never",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "wasnt",
        "arent",
        "werent",
        "cant",
        "cannot",
        "couldnt",
        "wont",
        "wouldnt",
        "shouldnt",
        "havent",
        "hasnt",
        "hadnt",
        "aint",
        "hardly",
        "barely",
        "neither",
        "nor",
    }
)
# These negate only the word right after them: "no good" is negative, but "no, that's great"
# and "no that's great thanks" (a caller answering a question) are not.
_NEXT_WORD_NEGATORS: Final = frozenset({"no", "nothing", "without"})
_NEGATION_WINDOW: Final = 3

# Negated positive: "not happy" keeps this share of the valence, reversed, and gains anger in
# proportion (a caller saying they are not happy is mildly annoyed). Negated negative or angry:
# "not bad" loses its anger and turns mildly positive.
_NEGATED_POSITIVE_VALENCE: Final = -0.75
_NEGATED_POSITIVE_ANGER: Final = 0.3
_NEGATED_NEGATIVE_VALENCE: Final = -0.3

_EXCLAMATION_STEP: Final = 0.1  # per "!", up to three
_CAPS_TERM: Final = 1.25  # an anger term typed in capitals
_SHOUTING: Final = 1.2  # the whole turn in capitals

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[.,;:!?]")
_APOSTROPHES = re.compile(r"['’]")
_LETTERS = re.compile(r"[^\W\d_]+")
_BOUNDARY_WORDS: Final = frozenset({"but", "although", "though", "however"})


def _normalise(word: str) -> str:
    return _APOSTROPHES.sub("", word.casefold())


def _phrase_key(phrase: str) -> tuple[str, ...]:
    return tuple(_normalise(w) for w in phrase.split())


@dataclass(frozen=True)
class _Term:
    anger: float
    valence: float
    swear_intensity: float = 1.0  # > 1 when a swear word can intensify the next term
    intensity: float | None = None  # set for intensifier phrases (not sentiment terms)


def _build_phrases() -> dict[tuple[str, ...], _Term]:
    phrases: dict[tuple[str, ...], _Term] = {}
    for phrase, anger in ANGER_TERMS.items():
        phrases[_phrase_key(phrase)] = _Term(anger=anger, valence=-anger)
    for phrase, anger in SWEARING.items():
        phrases[_phrase_key(phrase)] = _Term(
            anger=anger, valence=-anger, swear_intensity=SWEAR_INTENSIFIERS.get(phrase, 1.0)
        )
    for phrase, (anger, valence) in OTHER_TERMS.items():
        phrases[_phrase_key(phrase)] = _Term(anger=anger, valence=valence)
    for phrase, factor in INTENSIFIERS.items():
        phrases[_phrase_key(phrase)] = _Term(anger=0.0, valence=0.0, intensity=factor)
    return phrases


_PHRASES: Final = _build_phrases()
_LONGEST_PHRASE: Final = max(len(k) for k in _PHRASES)


@dataclass
class _Item:
    """A clause break, a matched phrase, or a plain word, in reading order."""

    words: tuple[str, ...]
    typed_in_caps: bool
    boundary: bool = False
    term: _Term | None = None
    used_as_intensifier: bool = False


def _items(text: str) -> Iterator[_Item]:
    raw = _TOKEN.findall(text)
    words = [_normalise(t) for t in raw]
    i = 0
    while i < len(raw):
        if words[i] in _BOUNDARY_WORDS or not raw[i][0].isalnum():
            yield _Item(words=(words[i],), typed_in_caps=False, boundary=True)
            i += 1
            continue
        for size in range(min(_LONGEST_PHRASE, len(raw) - i), 0, -1):
            key = tuple(words[i : i + size])
            term = _PHRASES.get(key)
            if term is not None:
                break
        else:
            size, term = 1, None
        span = raw[i : i + size]
        caps = all(t.isupper() for t in span) and any(len(t) >= 3 for t in span)
        yield _Item(words=tuple(words[i : i + size]), typed_in_caps=caps, term=term)
        i += size


def _is_shouting(text: str) -> bool:
    """Most of a typed turn, of at least three words, in capitals."""
    words: list[str] = [w for w in _LETTERS.findall(text) if len(w) >= 2]
    if len(words) < 3:
        return False
    return sum(w.isupper() for w in words) / len(words) >= 0.7


def analyse(text: str) -> Sentiment:
    """Score one caller turn (a transcript or typed text). Empty text is neutral."""
    items = list(_items(text))
    if not items:
        return NEUTRAL

    hits: list[tuple[_Item, float, float]] = []  # item, anger, valence
    for index, item in enumerate(items):
        term = item.term
        if term is None or term.intensity is not None:
            continue
        factor, negated = _modifiers(items, index)
        anger = term.anger * factor
        valence = term.valence * factor
        if negated:
            if valence > 0:
                anger = _NEGATED_POSITIVE_ANGER * valence
                valence *= _NEGATED_POSITIVE_VALENCE
            else:
                anger = 0.0
                valence *= _NEGATED_NEGATIVE_VALENCE
        hits.append((item, anger, valence))

    exclamations = min(text.count("!"), 3)
    shouting = _is_shouting(text)
    calm = 1.0
    valence_sum = 0.0
    for item, anger, valence in hits:
        if item.used_as_intensifier:
            continue
        if anger > 0:
            emphasis = 1.0 + _EXCLAMATION_STEP * exclamations
            if item.typed_in_caps and not shouting:
                emphasis *= _CAPS_TERM
            elif shouting:
                emphasis *= _SHOUTING
            anger = min(1.0, anger * emphasis)
        calm *= 1.0 - min(1.0, anger)
        valence_sum += valence
    return Sentiment(anger=1.0 - calm, score=math.tanh(valence_sum))


def _modifiers(items: list[_Item], index: int) -> tuple[float, bool]:
    """The intensity factor and negation that the words before ``items[index]`` apply."""
    factor = 1.0
    negated = False
    adjacent = True  # still in the unbroken run of modifiers right before the term
    for distance, item in enumerate(reversed(items[max(0, index - _NEGATION_WINDOW) : index]), 1):
        if item.boundary:
            break
        word = item.words[0] if len(item.words) == 1 else None
        term = item.term
        if term is not None and term.intensity is not None:
            if adjacent:
                factor *= term.intensity
        elif term is not None and term.swear_intensity > 1.0 and adjacent and distance == 1:
            factor *= term.swear_intensity
            item.used_as_intensifier = True
        elif term is not None:
            break  # another sentiment term: its own modifiers are its own
        elif word in NEGATORS or (word in _NEXT_WORD_NEGATORS and distance == 1):
            negated = True
        elif word is not None and word in INTENSIFIERS:
            if adjacent:
                factor *= INTENSIFIERS[word]
        else:
            adjacent = False
    return factor, negated


class SentimentTracker:
    """One call's sentiment over its turns, with anger smoothed between turns.

    A turn at or above ``strong`` anger counts at once. A milder turn only moves the level part
    of the way (``mild_gain``), so one "ridiculous" does not trip an escalation, while a caller
    who stays annoyed turn after turn climbs steadily (towards ~0.7 for repeated "ridiculous").
    The level decays by ``decay`` per turn, faster (``calming_decay``) after a clearly positive
    turn. One tracker per call; it is not meant to be shared between threads.
    """

    def __init__(
        self,
        *,
        decay: float = 0.8,
        calming_decay: float = 0.5,
        mild_gain: float = 0.5,
        strong: float = 0.7,
    ) -> None:
        for name, value in (
            ("decay", decay),
            ("calming_decay", calming_decay),
            ("mild_gain", mild_gain),
            ("strong", strong),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        self._decay = decay
        self._calming_decay = calming_decay
        self._mild_gain = mild_gain
        self._strong = strong
        self._anger = 0.0
        self._scores: list[float] = []
        self._angers: list[float] = []

    def update(self, text: str) -> Sentiment:
        """Score a caller turn; the result's ``anger`` is the smoothed level after this turn."""
        turn = analyse(text)
        decay = self._calming_decay if turn.score > 0.3 else self._decay
        carried = self._anger * decay
        if turn.anger >= self._strong:
            level = max(turn.anger, carried)
        else:
            # Combined like independent evidence, the mild turn at reduced weight.
            level = 1.0 - (1.0 - carried) * (1.0 - self._mild_gain * turn.anger)
        self._anger = level
        self._scores.append(turn.score)
        self._angers.append(level)
        return Sentiment(anger=level, score=turn.score)

    @property
    def anger(self) -> float:
        """The current smoothed anger level, 0..1 (0 before the first turn)."""
        return self._anger

    @property
    def trend(self) -> list[float]:
        """Each turn's score (-1..1), oldest first: for the handoff packet."""
        return list(self._scores)

    @property
    def anger_trend(self) -> list[float]:
        """The smoothed anger level after each turn, oldest first."""
        return list(self._angers)
