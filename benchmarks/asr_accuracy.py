"""How well the offline recogniser hears the example bot's callers.

Every distinct `user` line of the example bot's conversation tests is spoken by a synthetic
caller (Festival's HTS voice, espeak-ng's US and British voices), padded with 0.3 s of silence,
and decoded in one pass by pocketsphinx with the language model built from the flows, as a call
would decode it. Reported per voice and rate: the word error rate against the line (normalised
as the recogniser spells words: digits as words, lower case) and how many lines came out exactly.

At ``--rate 8000`` each line first goes through a telephone line (voicebot/testing/telephone.py:
the 300-3400 Hz band at 8 kHz, line noise at ``--snr`` dB below the speech, G.711 ``--law``),
comes back at the 24 kHz livekit's room input gives the session, and is brought to 16 kHz by
the recogniser's own conversion, as a phone call's audio is.

    python benchmarks/asr_accuracy.py
    python benchmarks/asr_accuracy.py --voices en-us festival:cmu_us_slt_arctic_hts
    python benchmarks/asr_accuracy.py --rate 8000 --snr 20 --law a --json wer.json
    python benchmarks/asr_accuracy.py --voices piper:en_US-joe-medium --rate 16000

``piper:NAME`` is a Piper voice (the optional extra), the bot's own: how clearly it speaks.
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
from livekit import rtc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.audio.files import CALL_SAMPLE_RATE as RATE  # noqa: E402
from voicebot.config import Settings  # noqa: E402
from voicebot.runtime.bot import BotRuntime  # noqa: E402
from voicebot.speech import vocabulary  # noqa: E402
from voicebot.speech.stt.pocketsphinx import (  # noqa: E402
    DecoderPool,
    build_language_model,
    to_mono_16k,
)
from voicebot.testing.callers import FESTIVAL_VOICE, Samples, silence, speak  # noqa: E402
from voicebot.testing.telephone import (  # noqa: E402
    DEFAULT_SNR_DB,
    NARROWBAND_RATE,
    ROOM_INPUT_RATE,
    telephone_line,
)


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


def as_heard(speech: Samples, rate: int, *, snr_db: float | None, law: str, seed: int) -> bytes:
    """The 16 kHz PCM the recogniser decodes for ``speech`` arriving at ``rate``."""
    if rate == RATE:
        return speech.tobytes()
    line = telephone_line(
        speech, snr_db=snr_db, law="a" if law == "a" else "mu", seed=seed, rate=ROOM_INPUT_RATE
    )
    return to_mono_16k(rtc.AudioFrame(line.tobytes(), ROOM_INPUT_RATE, 1, len(line)))


_piper: dict[str, object] = {}


async def say(line: str, voice: str) -> Samples:
    """``line`` spoken at 16 kHz by a test-caller voice, or by a Piper voice (``piper:NAME``)."""
    if not voice.startswith("piper:"):
        return speak(line, voice=voice)
    from voicebot.speech.tts.piper import PiperTTS

    name = voice.removeprefix("piper:")
    if name not in _piper:
        _piper[name] = PiperTTS.load(name, workers=1)
    engine = _piper[name]
    assert isinstance(engine, PiperTTS)
    frames: list[rtc.AudioFrame] = []
    async with engine.synthesize(line) as stream:
        async for event in stream:
            frames.append(event.frame)
    resampler = rtc.AudioResampler(
        frames[0].sample_rate, RATE, quality=rtc.AudioResamplerQuality.HIGH
    )
    out = [f for frame in frames for f in resampler.push(frame)] + list(resampler.flush())
    return np.frombuffer(b"".join(bytes(f.data) for f in out), dtype=np.int16)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="*", default=[FESTIVAL_VOICE, "en-us", "en-gb"])
    parser.add_argument(
        "--rate",
        nargs="*",
        type=int,
        choices=[RATE, NARROWBAND_RATE],
        default=[RATE, NARROWBAND_RATE],
        help="16000: the caller's wideband speech; 8000: through a telephone line",
    )
    parser.add_argument(
        "--snr", type=float, default=DEFAULT_SNR_DB, help="line noise at 8 kHz, dB below speech"
    )
    parser.add_argument("--no-noise", action="store_true", help="8 kHz without line noise")
    parser.add_argument("--law", choices=["mu", "a"], default="mu", help="G.711 companding")
    parser.add_argument("--seed", type=int, default=7, help="line noise seed")
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args()
    snr_db = None if args.no_noise else args.snr
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
                spoken = [
                    np.concatenate([silence(0.3), await say(line, voice), silence(0.3)])
                    for line in lines
                ]
                for rate in args.rate:
                    errors = words = exact = 0
                    for line, speech in zip(lines, spoken, strict=True):
                        pcm = as_heard(speech, rate, snr_db=snr_db, law=args.law, seed=args.seed)
                        heard = (await pool.decode(pcm, 0.0)).text
                        reference = vocabulary.normalise(line)
                        wrong = word_errors(reference, heard)
                        errors, words, exact = (
                            errors + wrong,
                            words + len(reference.split()),
                            exact + (wrong == 0),
                        )
                    result: dict[str, object] = {
                        "voice": voice,
                        "rate": rate,
                        "lines": len(lines),
                        "word_error_rate": round(errors / words, 3),
                        "exact": exact,
                    }
                    if rate != RATE:
                        result.update(snr_db=snr_db, law=args.law, seed=args.seed)
                    results.append(result)
                    print(json.dumps(result), flush=True)
        finally:
            pool.close()
            await runtime.aclose()
            for engine in _piper.values():
                await engine.aclose()  # type: ignore[attr-defined]
    print(table(results, snr_db=snr_db, law=args.law))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def table(results: list[dict[str, object]], *, snr_db: float | None, law: str) -> str:
    """The results as a Markdown table: a row per voice, WER and exact lines per rate."""
    rates = sorted({int(str(r["rate"])) for r in results}, reverse=True)
    by = {(r["voice"], r["rate"]): r for r in results}
    noise = "no line noise" if snr_db is None else f"line noise {snr_db:g} dB SNR"
    names = {RATE: "16 kHz", NARROWBAND_RATE: f"8 kHz phone (G.711 {law}-law, {noise})"}
    header = "| voice | " + " | ".join(f"{names[r]} WER / exact" for r in rates) + " |"
    rows = [header, "|---|" + "---|" * len(rates)]
    for voice in dict.fromkeys(r["voice"] for r in results):
        cells = []
        for rate in rates:
            r = by.get((voice, rate))
            cells.append(
                "-" if r is None else f"{r['word_error_rate']} / {r['exact']}/{r['lines']}"
            )
        rows.append(f"| {voice} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    asyncio.run(main())
