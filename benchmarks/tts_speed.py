"""Synthesis speed per offline engine: real-time factor and time to first audio.

The texts are the example bot's replies: its fixed prompts (the ones the prompt cache holds,
so in a call they cost nothing after start-up) and its templated lines with sample values
filled in (synthesised live in every call). Each engine synthesises each text as the call's
sentence adapter asks it to, one ``synthesize`` per text, and the figures are:

- time to first audio (TTFA): from the request to the first audio frame;
- real-time factor (RTF): synthesis time / audio duration (below 1 is faster than real time);
- throughput under load: with ``--concurrency N`` requests in flight at once, seconds of audio
  made per second of wall time (what many calls asking at the same moment get).

    python benchmarks/tts_speed.py                          # espeak-ng and piper, 1 and 4 at once
    python benchmarks/tts_speed.py --engines piper --concurrency 1 2 8
    python benchmarks/tts_speed.py --piper-threads 2        # onnxruntime threads per sentence
    python benchmarks/tts_speed.py --repeat 3 --json out.json

Piper runs with the settings' ``VOICEBOT_PIPER_WORKERS`` (default 2) unless ``--workers`` says
otherwise. It also reports how long the prompt cache's start-up prefill takes per engine (the
fixed prompts, whole and sentence by sentence, two at a time as ``SpeechStack.prefill`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from livekit.agents import tts  # noqa: E402

from voicebot.config import Settings  # noqa: E402
from voicebot.runtime.bot import BotRuntime  # noqa: E402
from voicebot.speech import vocabulary  # noqa: E402
from voicebot.speech.stack import _ENGINE_LINES  # noqa: E402
from voicebot.speech.tts.espeak import EspeakTTS  # noqa: E402
from voicebot.speech.tts.prompt_cache import PromptCacheTTS  # noqa: E402

_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
_SAMPLE_VALUE = "forty two"
_TEMPLATED_KEYS = re.compile(r"^\s*-?\s*(say|prompt|confirm|text):\s*(.+{{.+)$")


def bot_replies(settings: Settings) -> tuple[list[str], list[str]]:
    """The example bot's fixed prompts, and its templated lines with sample values."""
    definition = BotRuntime.load(settings).loaded.definition
    fixed = vocabulary.static_prompts(definition, extra=_ENGINE_LINES)
    templated: dict[str, None] = {}
    for path in sorted((REPO / "flows").glob("*.yaml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _TEMPLATED_KEYS.match(line)
            if match:
                text = _TEMPLATE.sub(_SAMPLE_VALUE, match.group(2)).strip().strip("\"'")
                if "{" not in text and len(text.split()) >= 3:
                    templated.setdefault(text, None)
    return fixed, list(templated)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(engine: tts.TTS, text: str) -> tuple[float, float, float]:
    """(time to first audio, synthesis time, audio seconds) of one request."""
    start = time.perf_counter()
    first = None
    audio = 0.0
    async with engine.synthesize(text) as stream:
        async for ev in stream:
            if first is None:
                first = time.perf_counter() - start
            audio += ev.frame.duration
    elapsed = time.perf_counter() - start
    return first if first is not None else elapsed, elapsed, audio


async def run(engine: tts.TTS, texts: list[str], concurrency: int) -> dict:
    limit = asyncio.Semaphore(concurrency)

    async def one(text: str) -> tuple[float, float, float]:
        async with limit:
            return await measure(engine, text)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(t) for t in texts))
    wall = time.perf_counter() - started
    ttfa = [r[0] * 1000 for r in results]
    rtf = [r[1] / r[2] for r in results if r[2] > 0]
    audio = sum(r[2] for r in results)
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "ttfa_p50_ms": round(statistics.median(ttfa), 1),
        "ttfa_p95_ms": round(pct(ttfa, 0.95), 1),
        "rtf_p50": round(statistics.median(rtf), 4),
        "rtf_p95": round(pct(rtf, 0.95), 4),
        "audio_s": round(audio, 1),
        "audio_s_per_wall_s": round(audio / wall, 1),
    }


async def prefill_seconds(engine: tts.TTS, prompts: list[str]) -> float:
    cache = PromptCacheTTS(engine, identity="benchmark")
    started = time.perf_counter()
    await cache.prefill(prompts)
    return round(time.perf_counter() - started, 2)


def make_engine(name: str, settings: Settings, args: argparse.Namespace) -> tts.TTS:
    if name == "espeak":
        return EspeakTTS.from_voice_name("en-GB-SoniaNeural", "en-GB")
    from voicebot.speech.tts.piper import PiperTTS

    return PiperTTS.load(
        settings.piper_voice,
        workers=args.workers or settings.piper_workers,
        threads=args.piper_threads,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="*", default=["espeak", "piper"])
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=1, help="Each text this many times.")
    parser.add_argument("--workers", type=int, help="Piper's workers (default: the settings').")
    parser.add_argument("--piper-threads", type=int, default=1)
    parser.add_argument("--no-prefill", action="store_true", help="Skip the prefill timing.")
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args()

    settings = Settings(bot_dir=REPO, data_dir=Path("/tmp/voicebot-tts-speed"), log_level="ERROR")
    fixed, templated = bot_replies(settings)
    texts = [*fixed, *templated] * args.repeat
    print(json.dumps({"fixed_prompts": len(fixed), "templated_lines": len(templated)}), flush=True)
    results = []
    for name in args.engines:
        engine = make_engine(name, settings, args)
        await measure(engine, "Hello.")  # warm-up: first-run allocations are not a reply's cost
        for concurrency in args.concurrency:
            result = {"engine": name, **await run(engine, texts, concurrency)}
            if name == "piper":
                result["piper_workers"] = args.workers or settings.piper_workers
                result["piper_threads"] = args.piper_threads
            results.append(result)
            print(json.dumps(result), flush=True)
        if not args.no_prefill:
            seconds = await prefill_seconds(engine, fixed)
            result = {"engine": name, "prefill_prompts": len(fixed), "prefill_s": seconds}
            results.append(result)
            print(json.dumps(result), flush=True)
        await engine.aclose()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
