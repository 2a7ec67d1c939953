"""How often the bot answers a caller who has not finished: Smart Turn v3.2 against the timers.

Each case is one simulated call of the example bot (real VAD, recogniser, flows, paced in real
time) in which the caller pauses inside what they say: a request broken off mid-sentence ("I
would like to ... pay my bill"), or an account number read in two halves during the account
number collect ("one two three four ... five six seven eight"). A case is a cut-off when the
bot took the first half as a turn of its own (the call's transcript holds it as a separate
caller line). Every case runs with the detector and with today's silence timers, in both test
caller voices (Festival's HTS voice and espeak-ng's).

    python benchmarks/turn_cutoffs.py            # prints one JSON line per mode, then a table
    python benchmarks/turn_cutoffs.py --json out.json -j 4

Cut-offs depend on timers and the model, not on CPU speed (a loaded machine only delays the
recogniser, which cuts off less), so several calls may run at once (``-j``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.audio.files import AudioFile  # noqa: E402
from voicebot.audio.simulation import simulate_call  # noqa: E402
from voicebot.config import Settings  # noqa: E402
from voicebot.runtime.bot import BotRuntime  # noqa: E402
from voicebot.speech.stack import build_speech  # noqa: E402
from voicebot.testing.callers import FESTIVAL_VOICE, silence, speak, write_wav  # noqa: E402

# (what the call is in when the caller speaks, first half, second half)
OPEN = [
    ("I would like to", "pay my bill"),
    ("my broadband is", "not working"),
    ("can you tell me about", "roaming charges"),
]
NUMBERS = [
    ("one two three four", "five six seven eight"),
    ("two three four five", "six seven eight nine"),
]
OPEN_PAUSES = (0.6, 1.0)
NUMBER_PAUSES = (0.6, 1.0, 1.3)
VOICES = (FESTIVAL_VOICE, "en-us")


def cases() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for voice in VOICES:
        for first, second in OPEN:
            for pause in OPEN_PAUSES:
                out.append(
                    {"kind": "open", "voice": voice, "text": (first, second), "pause": pause}
                )
        for first, second in NUMBERS:
            for pause in NUMBER_PAUSES:
                out.append(
                    {"kind": "number", "voice": voice, "text": (first, second), "pause": pause}
                )
    return out


def recording(case: dict[str, Any], path: Path) -> Path:
    voice = case["voice"]
    first, second = case["text"]
    parts = [silence(5.5)]  # the greeting
    if case["kind"] == "number":
        # to the account number collect first; its prompt takes about 3 s
        parts += [speak("what is my balance", voice=voice), silence(4.5)]
    parts += [
        speak(first, voice=voice),
        silence(case["pause"]),
        speak(second, voice=voice),
        silence(4.0),
    ]
    return write_wav(path, *parts)


async def run_mode(mode: str, recordings: list[Path], tmp: Path, jobs: int) -> list[dict]:
    settings = Settings(
        bot_dir=REPO,
        data_dir=tmp / "data",
        tts="espeak",
        turn_detector=mode,  # type: ignore[arg-type]
        log_level="ERROR",
    )
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    await speech.prefill()
    if mode == "smart-turn" and speech.turn_model is None:
        raise SystemExit("no Smart Turn model: run `voicebot models download turn-detector`")
    gate = asyncio.Semaphore(jobs)

    async def one(path: Path) -> dict:
        async with gate:
            return await simulate_call(
                runtime, speech, AudioFile(path), settle_seconds=0.5, max_tail_seconds=10
            )

    try:
        return list(await asyncio.gather(*(one(p) for p in recordings)))
    finally:
        await speech.aclose()
        await runtime.aclose()


def cut_off(case: dict[str, Any], report: dict) -> bool:
    said = [t for t in report["transcript"] if t["role"] == "caller"]
    expected = 2 if case["kind"] == "number" else 1
    return len(said) > expected


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=4, help="Calls at once.")
    parser.add_argument("--json", type=Path, help="Write the per-case results here too.")
    args = parser.parse_args()
    all_cases = cases()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        recordings = [recording(c, tmp / f"case{i}.wav") for i, c in enumerate(all_cases)]
        for mode in ("smart-turn", "off"):
            reports = await run_mode(mode, recordings, tmp, args.jobs)
            rows = []
            for case, report in zip(all_cases, reports, strict=True):
                turns = [t for t in report["turns"] if t["kind"] == "speech"]
                rows.append(
                    {
                        **case,
                        "cut_off": cut_off(case, report),
                        "endpointing_ms": [t["endpointing_ms"] for t in turns],
                    }
                )
            summary = {"mode": mode}
            for kind in ("open", "number"):
                mine = [r for r in rows if r["kind"] == kind]
                summary[f"{kind}_cut_offs"] = f"{sum(r['cut_off'] for r in mine)}/{len(mine)}"
                for pause in sorted({r["pause"] for r in mine}):
                    at = [r for r in mine if r["pause"] == pause]
                    summary[f"{kind}_{pause}s"] = f"{sum(r['cut_off'] for r in at)}/{len(at)}"
            print(json.dumps(summary), flush=True)
            results[mode] = {"summary": summary, "cases": rows}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
