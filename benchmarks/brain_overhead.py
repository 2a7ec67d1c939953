"""The LLM brain's own overhead per caller turn, with a zero-latency scripted model.

For each turn: the time from the caller's text entering the call to the first sentence handed
on for TTS, minus the time the brain spent waiting on the model's stream before that sentence
(the OpenAI client's HTTP round trip to the scripted server on loopback and its SSE parsing).
What is left is the brain's and the engine's own work: building the prompt and the tools,
sentiment, reading tool calls, the slot parsers, the flow steps.

Two kinds of turn are measured on the example bot:
- reply: the model answers in words (open conversation); the first sentence is the model's.
- tool:  the model starts a flow by its description; the first sentence is the flow's prompt.

    .venv/bin/python benchmarks/brain_overhead.py [--turns 300] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voicebot.brain.llm import LlmBrain  # noqa: E402
from voicebot.config import Settings  # noqa: E402
from voicebot.handoff.sinks import CallbackHandoffSink  # noqa: E402
from voicebot.runtime.bot import BotRuntime  # noqa: E402
from voicebot.testing.scripted_model import ScriptedModelServer  # noqa: E402

REPLY = {"say": "Of course. I can help you with that, what would you like to know?"}
TOOL = {"tool": "start_check_balance"}


async def measure(runtime: BotRuntime, script_reply: dict, text: str, turns: int, server) -> dict:  # type: ignore[no-untyped-def,type-arg]
    brain = runtime.brain
    assert isinstance(brain, LlmBrain)
    overheads, models, totals = [], [], []
    for i in range(turns + 20):
        call = runtime.new_call()
        await call.start()
        server.script.reset()
        server.script.script([script_reply])
        first: list[float] = []
        started = time.perf_counter()
        await call.caller_said(text, lambda _line, heard=first: heard.append(time.perf_counter()))
        assert first, "nothing was said"
        total_ms = (first[0] - started) * 1000
        model_ms = brain.timing.model_ms
        if i >= 20:  # warm-up turns are not counted
            totals.append(total_ms)
            models.append(model_ms)
            overheads.append(total_ms - model_ms)
    return {
        "turns": turns,
        "overhead_ms": _stats(overheads),
        "model_ms": _stats(models),
        "total_ms": _stats(totals),
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with ScriptedModelServer() as server, tempfile.TemporaryDirectory() as data:
        settings = Settings(
            bot_dir=ROOT, data_dir=Path(data), llm_base_url=server.base_url, llm_model="scripted"
        )
        runtime = BotRuntime.load(settings, handoffs=CallbackHandoffSink(lambda _: None))
        try:
            results = {
                "reply": await measure(runtime, REPLY, "I have a question", args.turns, server),
                "tool": await measure(
                    runtime, TOOL, "what do I owe you this month", args.turns, server
                ),
            }
        finally:
            await runtime.aclose()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"LLM brain overhead per turn ({args.turns} turns each, zero-latency scripted model)")
    for kind, result in results.items():
        o, m, t = result["overhead_ms"], result["model_ms"], result["total_ms"]
        print(
            f"  {kind:5}  overhead p50 {o['p50']:6.2f} ms  p95 {o['p95']:6.2f} ms   "
            f"(model wait p50 {m['p50']:.2f} ms, "
            f"caller text to first sentence p50 {t['p50']:.2f} ms)"
        )


if __name__ == "__main__":
    asyncio.run(main())
