"""Latency of IntentClassifier.classify() on a realistic telecom intent set.

Usage (from the repository root)::

    .venv/bin/python benchmarks/intent_latency.py --n 500 --threads 1 [--scorer nearest]

Builds a classifier over 15 intents x 8 examples, warms up, then times ``classify()`` on varied
caller utterances of 3-15 words (none of them an example, so every call runs the model) and
prints p50/p90/p99 in milliseconds. The goal is p50 under 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Run as a plain script from a checkout, the package need not be installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot.config import Settings
from voicebot.nlu.embedder import EmbeddingModelMissing, SentenceEmbedder
from voicebot.nlu.intents import IntentClassifier, IntentDefinition

INTENTS: dict[str, IntentDefinition] = {
    "check_balance": IntentDefinition(
        description="Caller wants to know their account balance, credit or allowance",
        examples=[
            "what's my balance",
            "how much credit do I have left",
            "check my account balance",
            "how much do I owe",
            "how many minutes have I got left",
            "what is my remaining data allowance",
            "can you tell me my balance please",
            "how much money is on my account",
        ],
    ),
    "pay_bill": IntentDefinition(
        description="Caller wants to make a payment on their bill",
        examples=[
            "I want to pay my bill",
            "can I make a payment",
            "pay what I owe",
            "I'd like to pay by card",
            "make a payment on my account",
            "settle my bill",
            "I need to pay my phone bill",
            "take a payment please",
        ],
    ),
    "report_fault": IntentDefinition(
        description="Caller reports a fault: no signal, line or service not working",
        examples=[
            "my phone line isn't working",
            "I have no signal",
            "my internet is down",
            "report a fault",
            "there's no dial tone",
            "my broadband keeps dropping out",
            "the service is not working",
            "I can't make any calls",
        ],
    ),
    "opening_hours": IntentDefinition(
        description="Caller asks when the shop or call centre is open",
        examples=[
            "what are your opening hours",
            "when are you open",
            "what time does the shop close",
            "are you open on sundays",
            "what time do you open tomorrow",
            "opening times",
            "is the store open on bank holidays",
            "when does customer service close",
        ],
    ),
    "speak_to_agent": IntentDefinition(
        description="Caller wants to talk to a human agent",
        examples=[
            "agent",
            "operator",
            "speak to a person",
            "can I talk to a real human",
            "put me through to someone",
            "I want to speak to an advisor",
            "transfer me to customer services",
            "let me talk to somebody",
        ],
    ),
    "repeat": IntentDefinition(
        description="Caller asks the bot to say that again",
        examples=[
            "repeat",
            "say that again",
            "sorry what was that",
            "can you repeat that",
            "I didn't catch that",
            "pardon",
            "come again",
            "could you say it one more time",
        ],
    ),
    "goodbye": IntentDefinition(
        description="Caller ends the call",
        examples=[
            "goodbye",
            "bye",
            "that's all thanks",
            "no that's everything",
            "thanks bye",
            "I'm done",
            "nothing else thank you",
            "have a good day",
        ],
    ),
    "roaming": IntentDefinition(
        description="Caller asks about using their phone abroad",
        examples=[
            "does my phone work abroad",
            "roaming charges",
            "I'm going to Spain will my phone work",
            "how much does it cost to use data in Europe",
            "turn on roaming",
            "can I use my minutes overseas",
            "travelling to America next week",
            "international roaming add-on",
        ],
    ),
    "cancel_contract": IntentDefinition(
        description="Caller wants to cancel or end their contract",
        examples=[
            "I want to cancel my contract",
            "cancel my account",
            "how do I leave",
            "I'd like to end my contract",
            "terminate my service",
            "I'm switching to another provider",
            "give me my PAC code",
            "close my account",
        ],
    ),
    "upgrade": IntentDefinition(
        description="Caller wants a new phone or a better plan",
        examples=[
            "I want to upgrade my phone",
            "am I due an upgrade",
            "can I get a new handset",
            "upgrade my plan",
            "I'd like the latest iPhone",
            "when can I upgrade",
            "is there a better deal for me",
            "I want more data on my plan",
        ],
    ),
    "moving_house": IntentDefinition(
        description="Caller is moving home and wants to move their service",
        examples=[
            "I'm moving house",
            "I need to change my address",
            "move my broadband to my new home",
            "we're relocating next month",
            "transfer my service to a new address",
            "update my address",
            "I'm moving to a new flat",
            "home move",
        ],
    ),
    "lost_phone": IntentDefinition(
        description="Caller's phone was lost or stolen",
        examples=[
            "I've lost my phone",
            "my phone was stolen",
            "block my SIM",
            "someone stole my mobile",
            "I can't find my phone",
            "bar my phone please",
            "my handset has been stolen",
            "lost my sim card",
        ],
    ),
    "broadband_speed": IntentDefinition(
        description="Caller complains that their internet is slow",
        examples=[
            "my internet is really slow",
            "broadband speed is terrible",
            "why is my wifi so slow",
            "I'm not getting the speed I pay for",
            "speed test shows low speeds",
            "pages take ages to load",
            "my download speed is poor",
            "the connection is sluggish",
        ],
    ),
    "complaint": IntentDefinition(
        description="Caller wants to make a formal complaint",
        examples=[
            "I want to make a complaint",
            "I'd like to complain",
            "I'm not happy with your service",
            "raise a complaint",
            "this service is unacceptable",
            "file a formal complaint",
            "who do I complain to",
            "I want to escalate this",
        ],
    ),
    "billing_question": IntentDefinition(
        description="Caller has a question about charges on their bill",
        examples=[
            "why is my bill so high",
            "I don't understand my bill",
            "there's a charge I don't recognise",
            "what is this charge for",
            "my bill is more than usual",
            "explain my bill",
            "I've been overcharged",
            "question about my invoice",
        ],
    ),
}

# 3 to 15 words, paraphrases and out-of-scope; none is an example, so none takes the exact path.
UTTERANCES = [
    "how much credit is left",
    "could you tell me how much data I have left this month",
    "I'd like to settle my account",
    "I want to pay the outstanding amount on my bill with my debit card today",
    "my landline has gone dead",
    "there's no internet connection at all since this morning and I work from home",
    "what time do you close",
    "are you open on saturday afternoon or only during the week",
    "get me a real person",
    "I've been going round in circles can I please just speak to a human being",
    "sorry say that again",
    "I'm sorry I didn't quite hear what you said could you repeat it",
    "ok cheers bye",
    "no that's everything I needed thank you very much for your help today",
    "will my phone work in France",
    "I'm flying to New York on Friday what will it cost to use my phone",
    "I want to end my contract",
    "I'm leaving for another network because they offered me a cheaper deal",
    "am I eligible for a new phone",
    "my contract ends next month so what handsets can you offer me",
    "we are changing address",
    "we're moving to a new house in Leeds next week and need the broadband moved",
    "somebody stole my phone",
    "I left my mobile on the bus and need the SIM blocked straight away",
    "my wifi is so slow",
    "internet speeds are awful every evening and videos keep buffering for minutes at a time",
    "I wish to lodge a complaint",
    "I'm really unhappy with the way I was treated the last time I called",
    "why has my bill gone up",
    "there's an extra charge on my invoice that I never agreed to pay",
    "what's the capital of France",
    "blue elephants dancing",
    "can you book me a taxi to the station for half past six tomorrow morning",
    "what's the weather like tomorrow",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=None, help="all-MiniLM-L6-v2 dir")
    parser.add_argument("--n", type=int, default=500, help="timed classify() calls")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls first")
    parser.add_argument(
        "--scorer", choices=["linear", "nearest"], default=None, help="default: the setting"
    )
    args = parser.parse_args(argv)

    settings = Settings()
    model_dir = args.model_dir or settings.resolved_model_dir()
    threads = args.threads or settings.embedding_threads
    try:
        if model_dir is None:
            raise EmbeddingModelMissing([], detail="No model directory given or found.")
        embedder = SentenceEmbedder(model_dir=model_dir, threads=threads)
    except EmbeddingModelMissing as exc:
        print(exc, file=sys.stderr)
        return 2

    started = time.perf_counter()
    scorer = args.scorer or settings.intent_classifier
    classifier = IntentClassifier(
        embedder=embedder, intents=INTENTS, threshold=settings.intent_threshold, scorer=scorer
    )
    build_ms = (time.perf_counter() - started) * 1000
    examples = sum(len(spec.examples) for spec in INTENTS.values())

    for i in range(args.warmup):
        classifier.classify(UTTERANCES[i % len(UTTERANCES)])

    timings: list[float] = []
    for i in range(args.n):
        text = UTTERANCES[i % len(UTTERANCES)]
        t0 = time.perf_counter()
        classifier.classify(text)
        timings.append((time.perf_counter() - t0) * 1000)

    timings.sort()

    def percentile(p: float) -> float:
        return timings[min(len(timings) - 1, round(p / 100 * (len(timings) - 1)))]

    print(f"model dir      {model_dir}")
    print(f"threads        {threads}")
    print(f"scorer         {scorer}")
    print(f"intents        {len(INTENTS)} ({examples} examples), build {build_ms:.0f} ms")
    print(f"calls          {args.n} (after {args.warmup} warm-up), {len(UTTERANCES)} utterances")
    print(f"mean           {statistics.fmean(timings):.2f} ms")
    print(f"p50            {percentile(50):.2f} ms")
    print(f"p90            {percentile(90):.2f} ms")
    print(f"p99            {percentile(99):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
