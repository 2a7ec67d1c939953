"""Whole calls from recordings: real VAD, recogniser, flows and TTS, paced in real time."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.audio.conftest import RATE, keys, noise, silence, speak, write_wav
from voicebot.audio.files import AudioFile
from voicebot.audio.simulation import simulate_call

pytestmark = pytest.mark.timeout(120)


def lines(report: dict, role: str) -> list[str]:
    return [t["text"] for t in report["transcript"] if t["role"] == role]


async def test_a_spoken_request_is_heard_and_answered(acme, tmp_path: Path) -> None:
    runtime, speech = acme
    caller = write_wav(
        tmp_path / "caller.wav", silence(5.5), speak("what is my balance"), silence(5.0)
    )
    events: list[dict] = []
    report = await simulate_call(
        runtime, speech, AudioFile(caller), out=tmp_path / "bot.wav", on_event=events.append
    )
    said = lines(report, "caller")
    assert said and "balance" in said[0]
    bot = lines(report, "bot")
    assert bot[0].startswith("Thanks for calling Acme Telecom")
    assert "account number" in bot[1]
    speech_turns = [t for t in report["turns"] if t["kind"] == "speech"]
    assert len(speech_turns) == 1
    turn = speech_turns[0]
    assert turn["caller"] == said[0]
    # the parts are measured, and add up: endpointing then processing make the total
    assert 0 < turn["endpointing_ms"] < 2000
    assert turn["brain_ms"] is not None and turn["brain_ms"] >= 0
    assert turn["total_ms"] == pytest.approx(turn["endpointing_ms"] + turn["processing_ms"], abs=2)
    # the call record keeps the same figures
    assert [e for e in events if e["type"] == "timing"][-1]["total_ms"] == turn["total_ms"]
    with wave.open(str(tmp_path / "bot.wav")) as out:
        assert out.getframerate() == RATE
        audio = np.frombuffer(out.readframes(out.getnframes()), dtype=np.int16)
    # the greeting starts at once; the answer comes after the caller's request (at ~7 s)
    assert np.abs(audio[: RATE * 2]).max() > 1000
    assert np.abs(audio[int(RATE * 7.2) :]).max() > 1000


async def test_keypad_tones_in_the_recording_reach_the_engine(acme, tmp_path: Path) -> None:
    runtime, speech = acme
    caller = write_wav(
        tmp_path / "caller.wav",
        silence(5.5),
        speak("what is my balance"),
        silence(4.5),  # "Please say or key in your eight digit account number."
        keys("12345678"),
        silence(4.0),
    )
    report = await simulate_call(runtime, speech, AudioFile(caller))
    bot = lines(report, "bot")
    assert any("postcode" in line for line in bot), bot
    # the digits came from the keypad, not from the recogniser hearing the tones
    said = lines(report, "caller")
    assert len(said) == 1 and "balance" in said[0]
    assert lines(report, "keypad") == ["12345678"]


async def test_a_caller_talking_over_the_greeting_interrupts_it(acme, tmp_path: Path) -> None:
    runtime, speech = acme
    caller = write_wav(
        tmp_path / "caller.wav", silence(1.2), speak("what is my balance"), silence(5.0)
    )
    events: list[dict] = []
    report = await simulate_call(runtime, speech, AudioFile(caller), on_event=events.append)
    spoken = [e for e in events if e["type"] == "bot"]
    assert spoken[0]["interrupted"] is True
    assert any("account number" in e["text"] for e in spoken[1:])
    assert "balance" in lines(report, "caller")[0]


async def test_barge_in_false_keeps_a_line_from_being_interrupted(tmp_path: Path) -> None:
    from tests.audio.conftest import audio_settings
    from tests.conftest import write_bot
    from voicebot.runtime.bot import BotRuntime
    from voicebot.speech.stack import build_speech

    root = write_bot(
        tmp_path / "bot",
        {
            "bot.yaml": """
            bot:
              name: Legal
              greeting: Hello.
              start: notice
            flows:
              notice:
                steps:
                  - say: This call may be recorded for training and quality purposes. Please listen carefully.
                    barge_in: false
                  - collect: happy
                    type: yes_no
                    prompt: Shall we go on?
            """
        },
    )
    settings = audio_settings(tmp_path, bot_dir=root)
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    caller = write_wav(tmp_path / "caller.wav", silence(1.0), speak("yes yes yes"), silence(8.0))
    events: list[dict] = []
    try:
        await simulate_call(runtime, speech, AudioFile(caller), on_event=events.append)
    finally:
        await speech.aclose()
        await runtime.aclose()
    spoken = [e for e in events if e["type"] == "bot"]
    assert spoken[0]["text"].startswith("Hello.")
    assert spoken[0]["interrupted"] is False
    # the caller's words over the notice were dropped, not taken as the answer to a later step
    assert any("Shall we go on?" in e["text"] for e in spoken)


async def test_silence_only_reprompts_then_hands_off(tmp_path: Path) -> None:
    from tests.audio.conftest import audio_settings
    from tests.conftest import write_bot
    from voicebot.runtime.bot import BotRuntime
    from voicebot.speech.stack import build_speech

    root = write_bot(
        tmp_path / "bot",
        {
            "bot.yaml": """
            bot:
              name: Quiet
              greeting: Hello, how can I help?
              limits:
                no_input_timeout: 1.5
                max_no_input: 1
                on_limit: { handoff: general, reason: caller could not be understood }
            queues:
              general: {}
            """
        },
    )
    settings = audio_settings(tmp_path, bot_dir=root)
    runtime = BotRuntime.load(settings)
    speech = await build_speech(settings, runtime.loaded.definition)
    caller = write_wav(tmp_path / "caller.wav", silence(2.0))
    tasks_before = len(asyncio.all_tasks())
    try:
        report = await simulate_call(
            runtime, speech, AudioFile(caller), settle_seconds=10, max_tail_seconds=20
        )
    finally:
        await speech.aclose()
        await runtime.aclose()
    events = [t["text"] for t in report["transcript"] if t["role"] == "event"]
    assert sum("no input" in e for e in events) == 2  # one reprompt, then the limit
    assert report["ended"] is True
    assert any("put you through" in line for line in lines(report, "bot"))
    await asyncio.sleep(0.2)
    assert len(asyncio.all_tasks()) <= tasks_before  # no call task left behind


async def test_noise_only_does_not_break_the_call(acme, tmp_path: Path) -> None:
    runtime, speech = acme
    caller = write_wav(tmp_path / "caller.wav", noise(8.0, level=0.02))
    report = await simulate_call(runtime, speech, AudioFile(caller), settle_seconds=1.0)
    assert lines(report, "bot")[0].startswith("Thanks for calling")
    assert report["ended"] is True


def _formats(tmp_path: Path) -> dict[str, Path]:
    """The same request as an 8-bit, stereo, 44.1 kHz, clipped WAV (through sox)."""
    base = write_wav(tmp_path / "base.wav", silence(0.5), speak("what is my balance"))
    made = {}
    for name, args in {
        "8bit-44k-stereo": ["-r", "44100", "-b", "8", "-c", "2"],
        "8k-telephone": ["-r", "8000", "-b", "16", "-c", "1"],
        "clipped": ["gain", "20"],
    }.items():
        out = tmp_path / f"{name}.wav"
        if args[0] == "gain":
            subprocess.run(["sox", str(base), str(out), *args], check=True, capture_output=True)
        else:
            subprocess.run(["sox", str(base), *args, str(out)], check=True, capture_output=True)
        made[name] = out
    return made


def test_any_wav_is_read_as_16k_mono(tmp_path: Path) -> None:
    for name, path in _formats(tmp_path).items():
        audio = AudioFile(path)
        pcm = b"".join(audio.chunks(0.02))
        seconds = len(pcm) / 2 / RATE
        assert seconds == pytest.approx(audio.duration, abs=0.05), name
        assert np.abs(np.frombuffer(pcm, dtype=np.int16)).max() > 1000, name


async def test_a_telephone_quality_recording_is_understood(acme, tmp_path: Path) -> None:
    runtime, speech = acme
    phone = _formats(tmp_path)["8k-telephone"]
    padded = tmp_path / "padded.wav"
    subprocess.run(  # noqa: ASYNC221 - a test's setup, before the call starts
        ["sox", str(phone), str(padded), "pad", "5.5", "5"], check=True, capture_output=True
    )
    report = await simulate_call(runtime, speech, AudioFile(padded))
    # pocketsphinx's model is trained on 16 kHz audio: narrowband speech is heard (a turn, an
    # answer) but its words are less reliable, so only the turn is checked here
    assert len(lines(report, "caller")) == 1
    assert len(lines(report, "bot")) >= 2


def test_a_long_recording_is_streamed_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "half-hour.wav"
    with wave.open(str(path), "wb") as out:  # 30 minutes of 8 kHz 8-bit: 14 MB on disk
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        minute = (np.full(8000 * 60, 128, dtype=np.uint8)).tobytes()
        for _ in range(30):
            out.writeframes(minute)
    audio = AudioFile(path)
    assert audio.duration == pytest.approx(1800, abs=0.1)
    chunks = 0
    for chunk in audio.chunks(1.0):
        chunks += 1
        assert len(chunk) <= RATE * 2
    assert chunks == 1800


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"this is not audio at all" * 10, "not a readable audio file"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "not a readable audio file"),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "voicebot", "call", "simulate", "--audio", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_command_writes_bot_audio_and_a_report(tmp_path: Path) -> None:
    from tests.conftest import REPO

    caller = write_wav(
        tmp_path / "caller.wav", silence(5.5), speak("what is my balance"), silence(4.0)
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicebot",
            "call",
            "simulate",
            "--audio",
            str(caller),
            "--out",
            str(tmp_path / "bot.wav"),
            "--report",
            str(tmp_path / "turns.json"),
            "--fast",
            "--bot",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env={
            **__import__("os").environ,
            "VOICEBOT_TTS": "espeak",
            "VOICEBOT_DATA_DIR": str(tmp_path / "data"),
        },
    )
    assert result.returncode == 0, result.stderr
    assert "bot: Thanks for calling Acme Telecom" in result.stdout
    assert "caller:" in result.stdout
    report = json.loads((tmp_path / "turns.json").read_text())
    assert [t["kind"] for t in report["turns"]][:2] == ["start", "speech"]
    assert "median" in result.stderr
    with wave.open(str(tmp_path / "bot.wav")) as out:
        assert out.getnframes() > RATE * 3
