"""Each check on calls stored row by row (SQLite and PostgreSQL): a call that passes, one that
fails with the lines that failed it, and one it does not apply to."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from tests.quality.seed import Leg, Seed, seed_call
from voicebot.quality.checks import CallRecord, Finding, NotApplicable, evaluate, run_check
from voicebot.quality.review import load_record
from voicebot.quality.rules import (
    AngerAtEnd,
    DispositionMissing,
    FlowAbandoned,
    HandoffWithoutSummary,
    NoAnswer,
    RepeatedQuestion,
    RuleSet,
    Silence,
    TalkOver,
    VerifiedBefore,
)
from voicebot.store.db import Database

BALANCE = VerifiedBefore(
    id="verified",
    check="verified_before",
    intents=["check_balance"],
    flows=["check_balance"],
    verify_flow="verify",
    reads="your balance is",
    verified_line="you're verified",
    weight=50,
    critical=True,
)


async def stored(db: Database, seed: Seed, recordings: Path | None = None) -> CallRecord:
    call_id = await seed_call(db, seed)
    async with db.session() as session:
        record = await load_record(session, call_id, recordings_dir=recordings)
    assert record is not None
    return record


def lines(result: object) -> list[list[int]]:
    assert isinstance(result, list), result
    return [f.lines for f in result if isinstance(f, Finding)]


BALANCE_CALL = [
    ("bot", "How can I help?", 0, None),
    ("caller", "what is my balance", 3, "check_balance"),
    ("bot", "Please say or key in your eight digit account number.", 4, None),
    ("keypad", "****5678", 9, None),
    ("bot", "And what is the postcode on the account?", 10, None),
    ("caller", "SW1A 1AA", 13, None),
]


async def test_verified_before(db: Database) -> None:
    verified = await stored(
        db,
        Seed(
            turns=[
                *BALANCE_CALL,
                ("bot", "Thanks Sam, you're verified.", 14, None),
                ("bot", "Your balance is 42 pounds.", 15, None),
            ],
            flows=[("check_balance", "completed"), ("verify", "completed")],
            intent="check_balance",
        ),
    )
    assert run_check(BALANCE, verified) == []

    # the balance read out before the bot confirmed the caller: line 6 is the read-out
    early = await stored(
        db,
        Seed(
            turns=[
                *BALANCE_CALL,
                ("bot", "Your balance is 42 pounds.", 14, None),
                ("bot", "Thanks Sam, you're verified.", 15, None),
            ],
            flows=[("check_balance", "completed"), ("verify", "completed")],
            intent="check_balance",
        ),
    )
    assert lines(run_check(BALANCE, early)) == [[6]]

    # without an ordering line, the verify flow's completion is what counts
    by_flow = BALANCE.model_copy(update={"verified_line": None})
    assert run_check(by_flow, early) == []
    abandoned = await stored(
        db,
        Seed(
            turns=[*BALANCE_CALL, ("bot", "Your balance is 42 pounds.", 14, None)],
            flows=[("check_balance", "completed"), ("verify", "abandoned")],
            intent="check_balance",
        ),
    )
    (finding,) = run_check(by_flow, abandoned)  # type: ignore[misc]
    assert finding.lines == [6] and "flow 'verify' did not complete" in finding.detail

    # a handoff packet's slot can vouch for the caller instead
    by_slot = BALANCE.model_copy(
        update={"verified_line": None, "verify_flow": None, "slot": "verified"}
    )
    slot_call = await stored(
        db,
        Seed(
            turns=[*BALANCE_CALL, ("bot", "Your balance is 42 pounds.", 14, None)],
            intent="check_balance",
            handoff_summary="The caller asked for the balance and a person.",
            packet={"slots": {"verified": True}},
        ),
    )
    assert run_check(by_slot, slot_call) == []
    assert lines(run_check(by_slot, abandoned)) == [[6]]

    # never read out: nothing was given away
    hung_up = await stored(db, Seed(turns=BALANCE_CALL[:3], intent="check_balance"))
    assert run_check(BALANCE, hung_up) == []

    other = await stored(
        db,
        Seed(turns=[("caller", "when are you open", 1, "opening_hours")], intent="opening_hours"),
    )
    assert isinstance(run_check(BALANCE, other), NotApplicable)


async def test_repeated_question(db: Database) -> None:
    rule = RepeatedQuestion(id="twice", check="repeated_question", similarity=0.8)
    repeated = await stored(
        db,
        Seed(
            turns=[
                ("caller", "I want to cancel my contract", 1, "cancel_contract"),
                ("bot", "Sorry, I didn't catch that.", 2, None),
                ("caller", "yes", 4, None),
                ("caller", "I want to cancel my contract please", 6, "cancel_contract"),
            ]
        ),
    )
    assert lines(run_check(rule, repeated)) == [[0, 3]]

    different = await stored(
        db,
        Seed(
            turns=[
                ("caller", "I want to cancel my contract", 1, "cancel_contract"),
                ("caller", "no I want to move house next month", 6, "moving_house"),
                ("caller", "yes", 8, None),
                ("caller", "yes", 9, None),  # too short to count as a question
            ]
        ),
    )
    assert run_check(rule, different) == []
    silent = await stored(db, Seed(turns=[("bot", "Hello", 0, None)]))
    assert isinstance(run_check(rule, silent), NotApplicable)


async def test_silence(db: Database) -> None:
    rule = Silence(id="quiet", check="silence", seconds=8)
    slow = await stored(
        db,
        Seed(
            turns=[
                ("bot", "How can I help?", 0, None),
                ("caller", "my broadband is down", 30, "report_fault"),  # the caller's pause
                ("bot", "Sorry to hear that.", 42, None),
                ("event", "no input (10s)", 60, None),
                ("event", "no input (5s)", 70, None),
            ]
        ),
    )
    result = run_check(rule, slow)
    assert lines(result) == [[1, 2], [3]]
    assert isinstance(result, list) and result[0].detail == "12.0 s before the bot answered"
    assert lines(run_check(rule.model_copy(update={"no_input": False}), slow)) == [[1, 2]]

    brisk = await stored(
        db,
        Seed(
            turns=[
                ("bot", "How can I help?", 0, None),
                ("caller", "my broadband is down", 20, "report_fault"),
                ("bot", "Sorry to hear that.", 21, None),
            ]
        ),
    )
    assert run_check(rule, brisk) == []
    assert isinstance(run_check(rule, await stored(db, Seed())), NotApplicable)


async def test_anger_at_end(db: Database) -> None:
    rule = AngerAtEnd(id="angry", check="anger_at_end", threshold=0.6)
    turns = [("caller", "this is useless", 1, None), ("bot", "I'm sorry.", 2, None)]
    assert lines(run_check(rule, await stored(db, Seed(turns=turns, anger=0.8)))) == [[0]]
    assert run_check(rule, await stored(db, Seed(turns=turns, anger=0.2))) == []
    assert isinstance(run_check(rule, await stored(db, Seed(turns=turns))), NotApplicable)


async def test_handoff_without_summary(db: Database) -> None:
    rule = HandoffWithoutSummary(id="summary", check="handoff_without_summary")
    turns = [("caller", "agent please", 1, "agent"), ("bot", "Putting you through.", 2, None)]
    empty = await stored(db, Seed(turns=turns, handoff_summary=""))
    (finding,) = run_check(rule, empty)  # type: ignore[misc]
    assert finding.lines == [1] and finding.detail == "handoff to billing without a summary"
    assert run_check(rule, await stored(db, Seed(turns=turns, handoff_summary="ok"))) != []
    good = await stored(db, Seed(turns=turns, handoff_summary="The caller wants a person."))
    assert run_check(rule, good) == []
    assert isinstance(run_check(rule, await stored(db, Seed(turns=turns))), NotApplicable)


def write_wav(
    path: Path,
    caller: list[tuple[float, float]],
    agent: list[tuple[float, float]],
    *,
    seconds: float = 10.0,
    channels: int = 2,
) -> Path:
    """Tone bursts (start s, end s) on the caller's channel (left) and the agent's (right)."""
    rate = 8000
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(7).normal(0, 30, (len(t), 2))  # a quiet line, not silence

    def bursts(spans: list[tuple[float, float]], freq: float) -> np.ndarray:
        tone = 8000 * np.sin(2 * np.pi * freq * t)
        on = np.zeros_like(t, dtype=bool)
        for start, end in spans:
            on |= (t >= start) & (t < end)
        return np.where(on, tone, 0.0)

    pcm = np.stack([bursts(caller, 300), bursts(agent, 450)], axis=1) + noise
    pcm = np.clip(pcm, -32768, 32767).astype("<i2")
    if channels == 1:
        pcm = pcm[:, :1]
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


async def test_talk_over_with_a_two_channel_recording(db: Database, tmp_path: Path) -> None:
    rule = TalkOver(id="over", check="talk_over", seconds=1.5)
    leg = Leg()
    recordings = tmp_path / "recordings"

    call = await stored(db, Seed(leg=leg), recordings)
    assert isinstance(run_check(rule, call), NotApplicable)  # no recording on disk

    # the agent starts at 3 s while the caller speaks until 6 s: 3 s talked over
    write_wav(recordings / call.call.id / "leg-1.wav", [(1.0, 6.0)], [(3.0, 5.0), (7.0, 9.0)])
    call = await stored(db, Seed(leg=leg), None)
    async with db.session() as session:
        loaded = await load_record(session, call.call.id, recordings_dir=recordings)
    assert loaded is not None and loaded.recordings == []  # another call's files are not its
    write_wav(recordings / f"{call.call.id}.wav", [(1.0, 6.0)], [(3.0, 5.0), (7.0, 9.0)])
    async with db.session() as session:
        loaded = await load_record(session, call.call.id, recordings_dir=recordings)
    assert loaded is not None
    (finding,) = run_check(rule, loaded)  # type: ignore[misc]
    assert "talked over the caller for 2." in finding.detail and "0:03" in finding.detail

    # turn-taking with a short overlap at the hand-over is fine
    polite = await stored(db, Seed(leg=leg))
    write_wav(recordings / f"{polite.call.id}.wav", [(1.0, 4.0), (6.5, 8.0)], [(4.3, 6.5)])
    async with db.session() as session:
        polite = await load_record(session, polite.call.id, recordings_dir=recordings)  # type: ignore[assignment]
    assert polite is not None and run_check(rule, polite) == []

    mono = await stored(db, Seed(leg=leg))
    write_wav(recordings / f"{mono.call.id}.wav", [(1.0, 6.0)], [(3.0, 5.0)], channels=1)
    async with db.session() as session:
        mono = await load_record(session, mono.call.id, recordings_dir=recordings)  # type: ignore[assignment]
    assert mono is not None and isinstance(run_check(rule, mono), NotApplicable)


async def test_no_answer(db: Database) -> None:
    rule = NoAnswer(id="kb", check="no_answer")
    asked = await stored(
        db,
        Seed(
            turns=[
                ("caller", "do you sell fax machines", 1, "question"),
                ("bot", "I don't know that one.", 2, None),
            ],
            no_answer=["do you sell fax machines"],
        ),
    )
    result = run_check(rule, asked)
    assert lines(result) == [[0]]
    assert run_check(rule.model_copy(update={"allowed": 1}), asked) == []
    assert run_check(rule, await stored(db, Seed(turns=[("caller", "hi", 1, None)]))) == []


async def test_flow_abandoned(db: Database) -> None:
    rule = FlowAbandoned(id="left", check="flow_abandoned", flows=["pay_bill"])
    turns = [("caller", "pay my bill", 1, "pay_bill"), ("bot", "How much?", 2, None)]
    left = await stored(db, Seed(turns=turns, flows=[("pay_bill", "abandoned")]))
    (finding,) = run_check(rule, left)  # type: ignore[misc]
    assert finding.lines == [1] and finding.detail == "flow 'pay_bill' ended abandoned"
    done = await stored(db, Seed(turns=turns, flows=[("pay_bill", "completed")]))
    assert run_check(rule, done) == []
    other = await stored(db, Seed(turns=turns, flows=[("check_balance", "abandoned")]))
    assert isinstance(run_check(rule, other), NotApplicable)
    anything = FlowAbandoned(id="any", check="flow_abandoned", outcomes=["abandoned", "handoff"])
    assert len(run_check(anything, other)) == 1  # type: ignore[arg-type]


async def test_disposition_missing_and_the_agent_leg(db: Database) -> None:
    rule = DispositionMissing(id="code", check="disposition_missing", leg="agent")
    coded = await stored(db, Seed(leg=Leg(disposition="resolved")))
    assert run_check(rule, coded) == []
    uncoded = await stored(db, Seed(leg=Leg(disposition=None, agent="Bob Agent")))
    (finding,) = run_check(rule, uncoded)  # type: ignore[misc]
    assert finding.detail == "Bob Agent left no disposition code"
    nobody = await stored(db, Seed(leg=Leg(status="abandoned", agent=None)))
    assert run_check(rule, nobody) == NotApplicable("no agent took the call")
    # a bot-leg rule on a call with no bot leg is skipped the same way
    bot_only = Silence(id="quiet", check="silence", leg="bot")
    assert isinstance(run_check(bot_only, await stored(db, Seed(ended=False))), NotApplicable)


async def test_score_counts_each_rule_once_and_critical_fails_the_call(db: Database) -> None:
    quiet = Silence(id="quiet", check="silence", seconds=5, weight=15)
    angry = AngerAtEnd(id="angry", check="anger_at_end", weight=10)
    summary = HandoffWithoutSummary(id="summary", check="handoff_without_summary", weight=20)
    call = await stored(
        db,
        Seed(
            turns=[
                ("caller", "hello", 0, None),
                ("bot", "Hi.", 9, None),
                ("caller", "balance", 10, None),
                ("bot", "One moment.", 20, None),
            ],
            anger=0.9,
        ),
    )
    rules = RuleSet(path=Path("rules.yaml"), pass_score=80, rules=(quiet, angry, summary))
    result = evaluate(rules, call)
    # two silences, one rule: 15 off; anger 10 off; no handoff: not applicable
    assert result.score == 75 and not result.passed
    assert [f.rule for f in result.failures] == ["quiet", "quiet", "angry"]
    assert result.not_applicable == {"summary": "the call was not handed off"}

    lenient = RuleSet(path=Path("rules.yaml"), pass_score=70, rules=(quiet, angry, summary))
    assert evaluate(lenient, call).passed
    critical = angry.model_copy(update={"critical": True, "weight": 1})
    strict = RuleSet(path=Path("rules.yaml"), pass_score=70, rules=(quiet, critical))
    result = evaluate(strict, call)
    assert result.score == 84 and not result.passed

    heavy = [Silence(id=f"q{i}", check="silence", seconds=5, weight=60) for i in range(3)]
    assert evaluate(RuleSet(Path("r"), 80, tuple(heavy)), call).score == 0
