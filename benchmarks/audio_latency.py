"""Turn latency on the offline audio stack, and how many simultaneous calls stay real-time.

Each simulated call is the example bot answering a caller recording (espeak-ng speech with
pauses, paced in real time) through the full audio path: silero VAD, pocketsphinx, the flows,
espeak-ng with the prompt cache. For every caller turn the call records the end of the
caller's speech, when the turn was taken as complete (endpointing), and the first bot audio.

    python benchmarks/audio_latency.py                # 1 call, then 5, 10, 20, 30 at once
    python benchmarks/audio_latency.py --calls 1 20   # chosen concurrency levels
    python benchmarks/audio_latency.py --stagger 0    # every caller speaks at the same moment

Calls start spread over ``--stagger`` seconds (default 5, about one caller turn), as calls
arriving at random would be; with 0 they start together, so every caller finishes speaking at
the same instant and the utterances queue for the decoders (the worst case for endpointing).

A level passes ("ok") when every call stayed real-time (feeding its audio never fell more than
100 ms behind the recording's pace) and processing after endpointing stayed under 300 ms at p95.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.audio.files import AudioFile  # noqa: E402
from voicebot.audio.simulation import simulate_call  # noqa: E402
from voicebot.config import Settings  # noqa: E402
from voicebot.runtime.bot import BotRuntime  # noqa: E402
from voicebot.speech.stack import build_speech  # noqa: E402
from voicebot.testing.callers import silence, speak, write_wav  # noqa: E402

REAL_TIME_SLACK_MS = 100.0
# What the callers say: requests the example bot routes, with the pauses of a real call.
SCRIPT = [
    (5.0, "what is my balance"),
    (5.0, "one two three four five six seven eight"),
    (4.0, "my broadband is not working"),
    (5.0, None),
]


def make_recording(path: Path, voice: str = "en-us") -> Path:
    parts = []
    for pause, text in SCRIPT:
        parts.append(silence(pause))
        if text:
            parts.append(speak(text, voice=voice))
    return write_wav(path, *parts)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_level(runtime, speech, recording: Path, calls: int, stagger: float) -> dict:
    audio = AudioFile(recording)
    started = time.perf_counter()

    async def one(index: int) -> dict:
        await asyncio.sleep(index * stagger / calls)
        return await simulate_call(runtime, speech, audio, settle_seconds=0.5, max_tail_seconds=15)

    reports = await asyncio.gather(*(one(i) for i in range(calls)))
    wall = time.perf_counter() - started
    turns = [t for r in reports for t in r["turns"] if t["kind"] == "speech" and t["total_ms"]]
    endpointing = [t["endpointing_ms"] for t in turns]
    processing = [t["processing_ms"] for t in turns]
    total = [t["total_ms"] for t in turns]
    # a call is real-time when its audio never fell behind the recording's pace
    lag = max(r["max_feed_lag_ms"] for r in reports)
    return {
        "calls": calls,
        "stagger_s": stagger,
        "turns": len(turns),
        "expected_turns": calls * sum(1 for _, text in SCRIPT if text),
        "endpointing_p50_ms": statistics.median(endpointing) if turns else None,
        "processing_p50_ms": statistics.median(processing) if turns else None,
        "processing_p95_ms": pct(processing, 0.95) if turns else None,
        "total_p50_ms": statistics.median(total) if turns else None,
        "total_p95_ms": pct(total, 0.95) if turns else None,
        # by what ended the turn: "detector"/"timers" (open turns) or "digits" (a digit
        # collect, which waits through pauses with the detector on)
        **{
            f"total_p50_ms_{kind}": statistics.median(t["total_ms"] for t in same)
            for kind in sorted({str(t.get("ended_by")) for t in turns})
            if (same := [t for t in turns if str(t.get("ended_by")) == kind])
        },
        "max_feed_lag_ms": lag,
        "real_time": lag < REAL_TIME_SLACK_MS,
        "ok": lag < REAL_TIME_SLACK_MS and bool(turns) and pct(processing, 0.95) < 300,
        "wall_s": round(wall, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 5, 10, 20, 30])
    parser.add_argument(
        "--stagger", type=float, default=5.0, help="Spread call starts over this many seconds."
    )
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    parser.add_argument(
        "--tts",
        choices=["espeak", "piper"],
        default="espeak",
        help="The bot's voice (piper: the optional extra; the fixed prompts come from the "
        "prompt cache either way, so only templated lines are synthesised in the calls).",
    )
    parser.add_argument(
        "--voice",
        default="en-us",
        help="The caller's voice: an espeak-ng voice or festival:cmu_us_slt_arctic_hts (which "
        "pocketsphinx hears better: with en-us the account number's last digit is misheard "
        "and the call stays in the account number collect).",
    )
    parser.add_argument(
        "--turn-detector",
        choices=["auto", "smart-turn", "off"],
        default="auto",
        help="End of turn: Smart Turn v3.2 from the audio (auto: when its model is on disk) or "
        "off (today's silence timers: VAD silence + endpointing delay).",
    )
    parser.add_argument(
        "--no-prompt-cache",
        action="store_true",
        help="Synthesise every bot line in the call (the worst case for the voice).",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            bot_dir=REPO,
            data_dir=Path(tmp) / "data",
            tts=args.tts,
            prompt_cache=not args.no_prompt_cache,
            turn_detector=args.turn_detector,
            log_level="ERROR",
        )
        runtime = BotRuntime.load(settings)
        speech = await build_speech(settings, runtime.loaded.definition)
        await speech.prefill()
        print(json.dumps({"speech": speech.labels}), flush=True)
        recording = make_recording(Path(tmp) / "caller.wav", args.voice)
        results = []
        for calls in args.calls:
            result = await run_level(runtime, speech, recording, calls, args.stagger)
            results.append(result)
            print(json.dumps(result), flush=True)
        await speech.aclose()
        await runtime.aclose()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
