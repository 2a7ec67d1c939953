"""Retrieval quality on the example bot's documents: hit@1, hit@5 and answer checks.

Usage (from the repository root)::

    .venv/bin/python benchmarks/retrieval_eval.py [--mode hybrid|vector|keyword] [--verbose]

Ingests knowledge/ into an in-memory Chroma collection, asks every question in
benchmarks/data/retrieval_questions.yaml (worded the way callers speak, not the way the documents
are written) and reports:

- hit@1 / hit@5: the expected document is the first / among the first five passages;
- MRR: mean reciprocal rank of the first passage from the expected document;
- passage@1: the first passage contains the question's ``expect`` fragment;
- spoken: the offline answer (what the bot says) contains it;
- "don't know": the share of unanswerable questions whose best score is below min_score.

The goal is hit@5 >= 0.9.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import yaml

# Run as a plain script from a checkout, the package need not be installed.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.config import Settings  # noqa: E402
from voicebot.knowledge.service import open_knowledge  # noqa: E402


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).casefold()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--questions", type=Path, default=REPO / "benchmarks/data/retrieval_questions.yaml"
    )
    parser.add_argument("--knowledge", type=Path, default=REPO / "knowledge")
    parser.add_argument("--mode", choices=["hybrid", "vector", "keyword"], default="hybrid")
    parser.add_argument("--min-score", type=float, default=0.35)
    parser.add_argument("--vector-weight", type=float, default=None, help="Hybrid weight w.")
    parser.add_argument("--verbose", "-v", action="store_true", help="Print every miss.")
    args = parser.parse_args()

    data = yaml.safe_load(args.questions.read_text(encoding="utf-8"))
    questions = data["questions"]
    unanswerable = data.get("unanswerable", [])

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), bot_dir=REPO)
        service = open_knowledge(settings, args.knowledge, ephemeral=True)
    if args.mode != "hybrid":
        service.retriever.vector_weight = 1.0 if args.mode == "vector" else 0.0
    elif args.vector_weight is not None:
        service.retriever.vector_weight = args.vector_weight

    hit1 = hit5 = passage1 = spoken = 0
    reciprocal = 0.0
    for item in questions:
        passages = service.search(item["q"], k=5)
        sources = [p.source for p in passages]
        rank = next((i + 1 for i, s in enumerate(sources) if s == item["doc"]), None)
        hit1 += rank == 1
        hit5 += rank is not None
        reciprocal += 1 / rank if rank else 0.0
        expect = _norm(str(item.get("expect", "")))
        top_has = bool(passages) and expect in _norm(passages[0].text)
        passage1 += top_has
        answer = service.answer_now(item["q"], min_score=args.min_score)
        said = answer.text is not None and expect in _norm(answer.text)
        spoken += said
        if args.verbose and (rank != 1 or not said):
            print(f"- {item['q']!r}  want {item['doc']} [{item.get('expect')}]")
            print(f"    rank {rank}; top: {[(p.source, p.heading, p.score) for p in passages[:3]]}")
            print(f"    said: {answer.text!r}")

    refused = 0
    for question in unanswerable:
        answer = service.answer_now(question, min_score=args.min_score)
        refused += answer.text is None
        if args.verbose and answer.text is not None:
            print(f"- unanswerable {question!r} answered ({answer.score:.2f}): {answer.text!r}")

    n = len(questions)
    print(f"documents: {len(service.documents())}, passages: {service.retriever.size}")
    print(f"mode: {args.mode}, vector weight: {service.retriever.vector_weight}")
    print(f"questions: {n}")
    print(f"hit@1: {hit1 / n:.3f}")
    print(f"hit@5: {hit5 / n:.3f}")
    print(f"MRR: {reciprocal / n:.3f}")
    print(f"passage@1 holds the answer: {passage1 / n:.3f}")
    print(f"spoken answer holds it: {spoken / n:.3f}")
    if unanswerable:
        print(f"don't know on unanswerable: {refused}/{len(unanswerable)}")
        print(f"(min_score {args.min_score})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
