"""How well the offline recogniser hears the example bot's callers.

Every distinct `user` line of the example bot's conversation tests is spoken by a synthetic
caller (Festival's HTS voice, espeak-ng's US and British voices), padded with 0.3 s of silence,
and decoded in one pass by pocketsphinx with the language model built from the flows, as a call
would decode it. Reported per voice: the word error rate against the line (normalised as the
recogniser spells words: digits as words, lower case) and how many lines came out exactly.

    python benchmarks/asr_accuracy.py
    python benchmarks/asr_accuracy.py --voices en-us festival:cmu_us_slt_arctic_hts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.config import Settings  # noqa: E402
from voicebot.runtime.bot import BotRuntime  # noqa: E402
from voicebot.speech import vocabulary  # noqa: E402
from voicebot.speech.stt.pocketsphinx import DecoderPool, build_language_model  # noqa: E402
from voicebot.testing.callers import FESTIVAL_VOICE, silence, speak  # noqa: E402


def test_lines() -> list[str]:
    lines: set[str] = set()
    for path in sorted((REPO / "flows" / "tests").glob("*.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            lines.update(str(step["user"]) for step in test["steps"] if "user" in step)
    return sorted(lines)


def word_errors(reference: str, hypothesis: str) -> int:
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        previous, row = row, [i] + [0] * len(hyp)
        for j in range(1, len(hyp) + 1):
            row[j] = min(
                previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ref[i - 1] != hyp[j - 1])
            )
    return row[-1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="*", default=[FESTIVAL_VOICE, "en-us", "en-gb"])
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args()
    lines = test_lines()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(bot_dir=REPO, data_dir=Path(tmp), log_level="ERROR")
        runtime = BotRuntime.load(settings)
        lm, dictionary = build_language_model(
            vocabulary.sentences(runtime.loaded.definition), Path(tmp) / "asr"
        )
        pool = DecoderPool(lm, dictionary, size=1)
        pool.prewarm()
        try:
            for voice in args.voices:
                errors = words = exact = 0
                for line in lines:
                    pcm = np.concatenate([silence(0.3), speak(line, voice=voice), silence(0.3)])
                    heard = (await pool.decode(pcm.tobytes(), 0.0)).text
                    reference = vocabulary.normalise(line)
                    wrong = word_errors(reference, heard)
                    errors, words, exact = (
                        errors + wrong,
                        words + len(reference.split()),
                        exact + (wrong == 0),
                    )
                result = {
                    "voice": voice,
                    "lines": len(lines),
                    "word_error_rate": round(errors / words, 3),
                    "exact": exact,
                }
                results.append(result)
                print(json.dumps(result), flush=True)
        finally:
            pool.close()
            await runtime.aclose()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
