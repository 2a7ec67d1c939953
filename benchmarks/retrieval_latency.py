"""Latency of KnowledgeService.search() for the top 5 passages out of 10,000.

Usage (from the repository root)::

    .venv/bin/python benchmarks/retrieval_latency.py [--chunks 10000] [--queries 500]
    .venv/bin/python benchmarks/retrieval_latency.py --persistent /tmp/latency-index

Ingests knowledge/ and then writes synthetic variants of its passages (other brands, products,
prices, countries and numbers, sentences reordered, filler sentences added) until the index holds
``--chunks`` distinct passages in ~20-passage documents, so that the vectors and the keyword
postings look like a real company's. By default the index is an in-memory Chroma collection and
is built on every run (embedding 10,000 passages of ~120 tokens took 9 to 16 minutes on a
2-core VM, 10 to 18 passages a second); ``--persistent DIR`` keeps it on disk and reuses it while
it holds enough passages, so only the first run pays for that.

After a warm-up it times ``search(question, k=5)`` (question embedding, Chroma nearest neighbours,
BM25 and fusion) on caller questions from benchmarks/data/retrieval_questions.yaml and prints
p50/p90/p99/mean in milliseconds, then, on the same questions, the question embedding alone, the
parts of a search (Chroma query, BM25) and ``answer_now()`` (search plus the spoken extract).
The goal is a search p50 under 15 ms.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import yaml

# Run as a plain script from a checkout, the package need not be installed.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.config import Settings  # noqa: E402
from voicebot.knowledge.chunking import Chunk  # noqa: E402
from voicebot.knowledge.documents import SourceDocument, content_hash  # noqa: E402
from voicebot.knowledge.keyword_index import keywords  # noqa: E402
from voicebot.knowledge.retriever import CANDIDATES, _where, clean_question  # noqa: E402
from voicebot.knowledge.service import KnowledgeService, open_knowledge  # noqa: E402
from voicebot.knowledge.store import KnowledgeUnavailable, StoredPassage  # noqa: E402
from voicebot.nlu.embedder import EmbeddingModelMissing  # noqa: E402

CHUNKS_PER_DOCUMENT = 20
# The collection used with --persistent: never the bot's own "knowledge" collection.
COLLECTION = "retrieval_latency"

BRANDS = [
    "Nimbus Mobile", "Skyline Telecom", "Harbour Networks", "Vertex Connect", "Lumen Fibre",
    "Northwind Mobile", "Bluebell Broadband", "Orbit Telecom", "Kestrel Networks",
    "Meridian Mobile", "Cobalt Connect", "Riverside Telecom", "Pinnacle Fibre", "Solent Mobile",
    "Granite Networks",
]  # fmt: skip
PRODUCTS = [
    "Essentials", "Smart Hub", "Unlimited Max", "Family Share", "Data Saver", "Fibre Plus",
    "Go Roam", "Phone Protect", "Call Guard", "Starter SIM", "Home Boost", "Pro Router",
    "Trade In", "Device Plan", "Student Saver", "Senior Care", "Business Line", "Travel Pass",
]  # fmt: skip
COUNTRIES = [
    "Spain", "France", "Australia", "USA", "Portugal", "Italy", "Ireland", "India", "Canada",
    "Turkey", "Switzerland", "Greece", "China", "Thailand", "Pakistan", "Jersey", "Japan",
    "Guernsey", "Germany", "Poland", "Norway", "Nigeria", "Netherlands", "Mexico", "Malta",
    "Iceland", "Egypt", "Cyprus", "Croatia", "Isle of Man", "Brazil", "Morocco", "Belgium",
    "Austria", "Sweden", "Denmark", "Kenya", "Vietnam", "Chile", "Peru", "Ghana", "Finland",
]  # fmt: skip
REGIONS = [
    "Scotland", "Wales", "Northern Ireland", "London", "the North West", "the Midlands",
    "the South West", "Yorkshire", "East Anglia", "the North East", "Kent", "Cornwall",
]  # fmt: skip
FILLER_SUBJECTS = [
    "Your monthly allowance", "The account holder", "Our support team", "The engineer visit",
    "Your online account", "The welcome pack", "Every new contract", "The router firmware",
    "Your direct debit", "The loyalty discount", "Each extra line", "The priority queue",
    "Your usage summary", "The fault checker", "The returns label", "The installation slot",
    "Our app", "The bill reminder", "Your SIM bundle", "The parental filter",
]  # fmt: skip
FILLER_VERBS = [
    "includes", "covers", "needs", "replaces", "shows", "protects", "unlocks", "extends",
    "reduces", "confirms", "renews", "changes", "limits", "lists", "explains", "adds",
]  # fmt: skip
FILLER_OBJECTS = [
    "the standard tariff", "any outstanding balance", "a signed delivery", "the activation code",
    "your contract end date", "the paper statement", "a replacement handset", "the speed test",
    "the data rollover", "your saved payment card", "the voicemail greeting", "a callback slot",
    "the security question", "the porting request", "the equipment charge", "a text receipt",
    "the coverage report", "your account password", "the early exit fee", "the service credit",
]  # fmt: skip
FILLER_TAILS = [
    "within {n} working days", "for up to {n} months", "after {n} days", "from {price}",
    "at no extra cost", "for {price} a month", "in {region}", "on the {plan} plan",
    "unless you opt out", "when you call from {country}", "by {n} pm on weekdays",
    "if you are over {n}", "until the end of the billing period", "with reference {code}",
]  # fmt: skip
QUESTION_OPENERS = ["", "hi, ", "sorry, ", "um ", "quick question, ", "hello there, ", "yeah so "]
QUESTION_CLOSERS = ["", " please", " thanks", " at the moment", " then", " for me"]

_PRICE = re.compile(r"£(\d+(?:,\d{3})*)(\.\d{2})?")
_NUMBER = re.compile(r"(?<![\w£.,])\d+(?![\w,]|\.\d)")
_COUNTRY = re.compile(r"\b(" + "|".join(re.escape(c) for c in COUNTRIES) + r")\b")
_ACME_PRODUCT = re.compile(
    r"\bAcme (Essentials|Smart Hub|Safe|Phone Protect|Trade In|Device Plan|Call Guard|Wi-Fi)\b"
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(£A-Z0-9])")


# -- the synthetic corpus --------------------------------------------------------------------------


def _price(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"£{rng.randint(1, 60)}"
    return f"£{rng.randint(0, 99)}.{rng.randint(0, 99):02d}"


def _filler(rng: random.Random, brand: str) -> str:
    tail = rng.choice(FILLER_TAILS).format(
        n=rng.randint(2, 90),
        price=_price(rng),
        region=rng.choice(REGIONS),
        plan=f"{brand.split()[0]} {rng.choice(PRODUCTS)}",
        country=rng.choice(COUNTRIES),
        code=f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}-"
        f"{rng.randint(1000, 9999)}",
    )
    return (
        f"{rng.choice(FILLER_SUBJECTS)} {rng.choice(FILLER_VERBS)} "
        f"{rng.choice(FILLER_OBJECTS)} {tail}."
    )


def _vary(text: str, rng: random.Random, brand: str) -> str:
    """``text`` with another brand, products, prices, countries and numbers, reordered, padded."""
    short = brand.split()[0]
    text = text.replace("Acme Telecom", brand).replace("acme-telecom", short.lower())
    text = _ACME_PRODUCT.sub(lambda _: f"{short} {rng.choice(PRODUCTS)}", text)
    text = text.replace("Acme", short)
    text = _PRICE.sub(lambda _: _price(rng), text)
    text = _COUNTRY.sub(lambda _: rng.choice(COUNTRIES), text)
    text = _NUMBER.sub(lambda m: str(max(1, round(int(m.group()) * rng.uniform(0.4, 2.5)))), text)
    sentences = [s for line in text.splitlines() for s in _SENTENCE.split(line.strip()) if s]
    if len(sentences) > 2 and rng.random() < 0.6:
        # Keep the opening sentence (it usually names the subject), shuffle the rest.
        rest = sentences[1:]
        rng.shuffle(rest)
        sentences = sentences[:1] + rest
    for _ in range(rng.randint(1, 3)):
        sentences.insert(rng.randint(0, len(sentences)), _filler(rng, brand))
    out = ""
    for sentence in sentences:
        if len(out) + len(sentence) + 1 > 880 and out:
            break
        out = f"{out} {sentence}" if out else sentence
    return out


def _write_synthetic(
    service: KnowledgeService, base: list[StoredPassage], needed: int, seed: int
) -> int:
    """Write ``needed`` synthetic passages in ~20-passage documents; the number written."""
    rng = random.Random(seed)
    by_source: dict[str, list[StoredPassage]] = defaultdict(list)
    for passage in base:
        by_source[passage.source].append(passage)
    sources = sorted(by_source)
    all_tags = sorted({t for p in base for t in p.tags}) or ["general"]
    documents = max(1, round(needed / CHUNKS_PER_DOCUMENT))
    seen: set[str] = {p.text for p in base}
    written = 0
    started = time.perf_counter()
    for i in range(documents):
        count = needed // documents + (1 if i < needed % documents else 0)
        source = sources[i % len(sources)]
        own = by_source[source]
        brand = rng.choice(BRANDS)
        region = rng.choice(REGIONS)
        base_title = own[0].title.replace("Acme Telecom", brand).replace("Acme", brand.split()[0])
        title = f"{brand}: {base_title}, {region} edition"
        tags = tuple(
            dict.fromkeys(
                [rng.choice(own[0].tags or all_tags), *rng.sample(all_tags, rng.randint(0, 2))]
            )
        )
        chunks: list[Chunk] = []
        for index in range(count):
            # Mostly the base document's own sections, some from elsewhere: real documents
            # overlap in topic too.
            template = rng.choice(own) if rng.random() < 0.6 else rng.choice(base)
            text = _vary(template.text, rng, brand)
            while text in seen:
                text = f"{text} {_filler(rng, brand)}"
            seen.add(text)
            heading = template.heading or own[0].title
            chunks.append(
                Chunk(index=index, text=text, heading=heading, prefix=f"{title}. {heading}.\n")
            )
        slug = re.sub(r"[^a-z0-9]+", "-", Path(source).stem.lower()).strip("-")
        doc = SourceDocument(
            name=f"synthetic/{i:04d}-{slug}.md",
            format="markdown",
            file_hash=content_hash("\n".join(c.text for c in chunks).encode()),
            title=title,
            tags=tags,
        )
        written += service.store.write(doc, chunks)
        if (i + 1) % 25 == 0 or i + 1 == documents:
            elapsed = time.perf_counter() - started
            print(
                f"  {i + 1}/{documents} documents, {written}/{needed} passages, "
                f"{elapsed:.0f} s ({written / max(elapsed, 1e-9):.0f} passages/s)",
                flush=True,
            )
    return written


def build_index(args: argparse.Namespace, tmp: Path) -> KnowledgeService:
    knowledge = REPO / "knowledge"
    if args.persistent is None:
        settings = Settings(data_dir=tmp, bot_dir=REPO)
        service = open_knowledge(settings, knowledge, ephemeral=True)
    else:
        settings = Settings(data_dir=args.persistent, bot_dir=REPO, knowledge_collection=COLLECTION)
        service = open_knowledge(settings, knowledge, sync=False)
        held = service.store.count()
        if held >= args.chunks:
            print(f"reusing {held} passages in {args.persistent} (collection {COLLECTION})")
            service.retriever.reload()
            return service
        print(f"{args.persistent} holds {held} passages, fewer than {args.chunks}: rebuilding")
        service.ingest(knowledge, rebuild=True)
    real, _ = service.store.passages()
    needed = args.chunks - len(real)
    print(f"{len(real)} passages from knowledge/; writing {max(needed, 0)} synthetic ones")
    if needed > 0:
        _write_synthetic(service, real, needed, args.seed)
    service.retriever.reload()
    return service


# -- timing ----------------------------------------------------------------------------------------


def load_questions(path: Path, n: int) -> list[str]:
    """``n`` caller questions: the file's, then again with other openings and endings."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    base = [str(item["q"]) for item in data["questions"]]
    out: list[str] = []
    for i in range(n):
        round_, q = divmod(i, len(base))
        opener = QUESTION_OPENERS[round_ % len(QUESTION_OPENERS)]
        closer = QUESTION_CLOSERS[(round_ + q) % len(QUESTION_CLOSERS)] if round_ else ""
        out.append(f"{opener}{base[q]}{closer}")
    return out


def time_calls(fn: Callable[[str], object], items: list[str]) -> list[float]:
    timings: list[float] = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        timings.append((time.perf_counter() - t0) * 1000)
    return sorted(timings)


def percentile(timings: list[float], p: float) -> float:
    return timings[min(len(timings) - 1, round(p / 100 * (len(timings) - 1)))]


def summary(timings: list[float]) -> str:
    return (
        f"p50 {percentile(timings, 50):6.2f}  p90 {percentile(timings, 90):6.2f}  "
        f"p99 {percentile(timings, 99):6.2f}  mean {statistics.fmean(timings):6.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=10_000, help="passages in the index")
    parser.add_argument("--queries", type=int, default=500, help="timed calls of each kind")
    parser.add_argument("--warmup", type=int, default=20, help="untimed searches first")
    parser.add_argument("--k", type=int, default=5, help="passages per search")
    parser.add_argument(
        "--questions", type=Path, default=REPO / "benchmarks/data/retrieval_questions.yaml"
    )
    parser.add_argument(
        "--persistent",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the index on disk under DIR (reused while it holds >= --chunks passages)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic corpus")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            service = build_index(args, Path(tmp))
    except (EmbeddingModelMissing, KnowledgeUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 2
    build_s = time.perf_counter() - started
    size = service.retriever.size
    documents = len({p.source for p in service.retriever._snapshot.passages})

    questions = load_questions(args.questions, args.queries)
    for question in questions[: args.warmup]:
        service.search(question, k=args.k)

    search = time_calls(lambda q: service.search(q, k=args.k), questions)
    embed = time_calls(service.embeddings.embed_query, questions)

    # The parts of one search, each on its own: Chroma's nearest neighbours as search() asks
    # for them (no metadata filter while most passages pass it: the mirror filters), the same
    # query with the expiry filter in Chroma (what a tag filter that few passages pass costs),
    # and the BM25 scores.
    snap = service.retriever._snapshot
    vectors = {q: service.embeddings.embed_query(clean_question(q)) for q in questions}
    n = min(CANDIDATES, size)
    chroma = time_calls(lambda q: service.store.nearest(vectors[q], n + 10), questions)
    where = _where(None, ())
    filtered = time_calls(lambda q: service.store.nearest(vectors[q], n, where), questions[:100])
    bm25 = time_calls(lambda q: snap.index.scores(clean_question(q)), questions)

    answer = time_calls(service.answer_now, questions)

    threads = Settings().embedding_threads
    actual = getattr(getattr(service.embeddings, "embedder", None), "threads", threads)
    terms = statistics.fmean(len(set(keywords(q))) for q in questions)
    print()
    print(f"passages       {size} in {documents} documents (index built in {build_s:.0f} s)")
    print(f"store          {args.persistent or 'in-memory Chroma (ephemeral)'}")
    print(f"threads        embedding_threads={threads} (embedder uses {actual})")
    print(f"cpus           os.cpu_count()={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}")
    print(
        f"questions      {len(questions)} timed after {args.warmup} warm-up, "
        f"{terms:.1f} keywords each on average"
    )
    print(f"search k={args.k:<4} {summary(search)}")
    print(f"  embed_query  {summary(embed)}")
    print(f"  chroma k={n + 10:<3} {summary(chroma)}")
    print(f"  (chroma k={n} with a metadata filter: {summary(filtered)})")
    print(f"  bm25         {summary(bm25)}")
    rest = statistics.median(search) - sum(statistics.median(t) for t in (embed, chroma, bm25))
    print(f"  other (p50 search - p50 parts): {rest:.2f} ms")
    print(f"answer_now     {summary(answer)}")
    print()
    p50 = percentile(search, 50)
    verdict = "met" if p50 < 15 else "MISSED"
    print(
        f"p50 search top-{args.k} over {size} chunks: {p50:.2f} ms (goal < 15 ms, {verdict}); "
        f"embed_query p50 {percentile(embed, 50):.2f} ms, "
        f"answer_now p50 {percentile(answer, 50):.2f} ms"
    )
    print(f"total run time {math.ceil(time.perf_counter() - started)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
