"""What runs inside a pocketsphinx worker process: one decoder, one utterance at a time.

pocketsphinx's ``process_raw`` holds the GIL for the whole utterance (measured: a 3 s utterance
stalls every other thread of the process for over half a second), so decoding on a thread
stalls the event loop and every call on it. Decoders therefore live in worker processes; this
module imports nothing but pocketsphinx so a worker starts quickly.

Results cross the process boundary as plain tuples.
"""

from __future__ import annotations

import math
from typing import Any

# (word, start s, end s, confidence) ; (text, confidence, words, samples)
Word = tuple[str, float, float, float]
Result = tuple[str, float, list[Word], int]

SAMPLE_RATE = 16000
FILLERS = frozenset({"<s>", "</s>", "<sil>", "[noise]", "<unk>", "[NOISE]", "[SPEECH]"})

_decoder: Any = None


def load(hmm: str, lm: str, dictionary: str) -> None:
    """Process initialiser: build this worker's decoder (about 0.7 s)."""
    global _decoder
    from pocketsphinx import Decoder

    _decoder = Decoder(hmm=hmm, lm=lm, dict=dictionary, samprate=SAMPLE_RATE, loglevel="ERROR")


def ready() -> bool:
    return _decoder is not None


def decode(pcm: bytes) -> Result:
    """One utterance (16 kHz 16-bit mono) decoded in a single pass.

    One pass over the whole utterance (cepstral mean normalisation over all of it) hears far
    better than live decoding in chunks, whose running mean starts from a guess.
    """
    decoder = _decoder
    if decoder is None:  # pragma: no cover - the initialiser raised, so the pool is broken
        raise RuntimeError("the decoder was not loaded")
    decoder.start_utt()
    decoder.process_raw(pcm, False, True)
    decoder.end_utt()
    samples = len(pcm) // 2
    hyp = decoder.hyp()
    if hyp is None:
        return ("", 0.0, [], samples)
    words: list[Word] = []
    for seg in decoder.seg():
        word = base_word(seg.word)
        if word in FILLERS or word.startswith("++") or word.startswith("["):
            continue
        words.append(
            (
                word,
                seg.start_frame / 100,
                (seg.end_frame + 1) / 100,
                _probability(decoder, seg.prob),
            )
        )
    text = clean(hyp.hypstr)
    return (text, _probability(decoder, hyp.prob) if text else 0.0, words, samples)


def base_word(word: str) -> str:
    # alternates are spelled "word(2)" in the CMU dictionary
    return word.split("(", 1)[0]


def clean(text: str) -> str:
    return " ".join(w for w in text.split() if w not in FILLERS and not w.startswith("["))


def _probability(decoder: Any, log_prob: int) -> float:
    try:
        value = float(decoder.get_logmath().exp(log_prob))
    except (AttributeError, OverflowError, ValueError):
        return 0.0
    return 0.0 if math.isnan(value) else max(0.0, min(1.0, value))
