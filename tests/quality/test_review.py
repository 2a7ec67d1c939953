"""Reviewing stored calls: the review row, the summary of both legs, and the background
reviewer that claims each finished call once, however many nodes run it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import wave
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.quality.seed import T0, Leg, Seed, seed_call
from tests.quality.test_checks import BALANCE, BALANCE_CALL
from voicebot.quality.review import (
    PENDING,
    Reviewer,
    recheck,
    review_call,
    unreviewed_calls,
)
from voicebot.quality.rules import (
    AngerAtEnd,
    DispositionMissing,
    RuleSet,
    Silence,
    TalkOver,
)
from voicebot.store.db import Database, open_database
from voicebot.store.models import CallReview

RULES = RuleSet(
    path=Path("quality/rules.yaml"),
    pass_score=80,
    rules=(
        BALANCE,
        Silence(id="quiet", check="silence", seconds=8, weight=10),
        AngerAtEnd(id="angry", check="anger_at_end", weight=15),
        DispositionMissing(id="code", check="disposition_missing", weight=15),
        TalkOver(id="over", check="talk_over", leg="agent"),
    ),
)

LEAKY = Seed(
    turns=[
        *BALANCE_CALL,
        ("bot", "Your balance is 42 pounds.", 14, None),
        ("caller", "my number is 07700 900123 and I'm fed up", 16, None),
    ],
    flows=[("check_balance", "completed"), ("verify", "abandoned")],
    intent="check_balance",
    anger=0.9,
    caller_name="Sam Jones",
    handoff_summary="Sam wants the balance.",
    leg=Leg(agent="Ann Agent", disposition="billing_query", notes="call back on 07700 900123"),
)


async def reviews(db: Database) -> dict[str, CallReview]:
    async with db.session() as session:
        rows = (await session.scalars(select(CallReview))).all()
    return {r.call_id: r for r in rows}


async def test_review_stores_score_failures_lines_and_a_masked_summary(db: Database) -> None:
    call_id = await seed_call(db, LEAKY)
    result = await review_call(db, RULES, call_id)
    assert result is not None
    # verified (50, critical) and angry (15) failed; no recording: talk-over not applicable
    assert (result.score, result.passed) == (35, False)
    assert result.not_applicable == {"over": "no two-channel recording of the call"}
    assert sorted(result.passed_rules) == ["code", "quiet"]

    row = (await reviews(db))[call_id]
    assert (row.score, row.passed, row.rules) == (35, False, RULES.digest)
    verified, angry = row.failures
    assert verified["rule"] == "verified" and verified["critical"] is True
    assert verified["lines"] == [6]
    assert verified["quotes"] == [{"seq": 6, "role": "bot", "text": "Your balance is 42 pounds."}]
    assert angry["lines"] == [7] and "900123" not in angry["quotes"][0]["text"]

    summary = row.summary
    assert "Sam Jones called about: check balance." in summary  # no bot definition given
    assert "check_balance (completed), verify (abandoned)" in summary
    assert "Handed to billing because: caller asked for a person." in summary
    assert "taken by Ann Agent in billing and lasted 2:00" in summary
    assert "Disposition: billing_query; notes: call back on ****0123." in summary
    assert "07700" not in summary and "900123" not in summary


async def test_review_once_unless_forced(db: Database) -> None:
    call_id = await seed_call(db, LEAKY)
    assert await review_call(db, RULES, call_id) is not None
    assert await review_call(db, RULES, call_id) is None  # reviewed already
    lenient = RuleSet(path=RULES.path, pass_score=0, rules=(RULES.rules[1],))
    again = await review_call(db, lenient, call_id, force=True)
    assert again is not None and again.passed
    row = (await reviews(db))[call_id]
    assert (row.score, row.passed, row.rules, row.failures) == (100, True, lenient.digest, [])
    assert await review_call(db, RULES, "no-such-call") is None
    assert await review_call(db, RULES, "no-such-call", force=True) is None


async def test_only_finished_calls_are_picked(db: Database) -> None:
    done = await seed_call(db, Seed(turns=[("caller", "hi", 1, None)]))
    human_done = await seed_call(db, Seed(leg=Leg(status="done")))
    abandoned = await seed_call(db, Seed(leg=Leg(status="abandoned", agent=None)))
    busy = [
        await seed_call(db, Seed(leg=Leg(status=status, agent=None)))
        for status in ("waiting", "offered")
    ]
    busy += [
        await seed_call(db, Seed(leg=Leg(status=status))) for status in ("connected", "wrap_up")
    ]
    owed = await seed_call(
        db, Seed(leg=Leg(status="done", agent=None, kind="callback", callback="pending"))
    )
    running = await seed_call(db, Seed(ended=False))
    assert busy and owed and running
    assert set(await unreviewed_calls(db)) == {done, human_done, abandoned}

    reviewer = Reviewer(db, RULES)
    assert set(await reviewer.run_once()) == {done, human_done, abandoned}
    assert await reviewer.run_once() == []
    assert set(await reviews(db)) == {done, human_done, abandoned}


async def test_two_reviewers_on_one_database_review_each_call_once(db_url: str) -> None:
    first, second = await open_database(db_url), await open_database(db_url)
    try:
        calls = {
            await seed_call(first, Seed(turns=[("caller", f"call {i}", 1, None)], anger=0.1 * i))
            for i in range(10)
        }
        a, b = Reviewer(first, RULES, batch=100), Reviewer(second, RULES, batch=100)
        done_a, done_b = await asyncio.gather(a.run_once(), b.run_once())
        assert set(done_a) | set(done_b) == calls
        assert not set(done_a) & set(done_b)
        assert a.reviewed + b.reviewed == 10
        async with first.session() as session:
            count = await session.scalar(select(func.count()).select_from(CallReview))
        assert count == 10
        assert await a.run_once() == [] and await b.run_once() == []
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_failing_call_is_logged_and_the_others_reviewed(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recordings = tmp_path / "recordings"
    broken = await seed_call(db, Seed(leg=Leg()))
    fine = await seed_call(db, Seed(leg=Leg()))
    # a two-channel WAV whose data stops mid-sample: the talk-over check cannot read it
    recordings.mkdir()
    path = recordings / f"{broken}.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x01\x00" * 1600)
    with path.open("r+b") as file:  # the header still promises the last byte
        file.truncate(path.stat().st_size - 1)
    reviewer = Reviewer(db, RULES, recordings_dir=recordings)
    with caplog.at_level(logging.ERROR, logger="voicebot.quality"):
        assert await reviewer.run_once() == [fine]
    assert any(r.getMessage() == "a call could not be reviewed" for r in caplog.records)
    stored = await reviews(db)
    assert stored[fine].rules == RULES.digest
    assert stored[broken].rules == PENDING  # claimed: tried again once the claim is stale
    assert await unreviewed_calls(db) == []
    later = T0.replace(year=2030)
    assert await unreviewed_calls(db, now=later) == [broken]


async def test_a_stale_claim_is_taken_over(db: Database) -> None:
    call_id = await seed_call(db, Seed(turns=[("caller", "hi", 1, None)]))
    async with db.transaction() as session:
        session.add(
            CallReview(
                call_id=call_id,
                checked_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
                score=0,
                passed=False,
                failures=[],
                summary="",
                rules=PENDING,
            )
        )
    assert await Reviewer(db, RULES).run_once() == [call_id]
    assert (await reviews(db))[call_id].rules == RULES.digest


async def test_the_background_reviewer_reviews_new_calls(db: Database) -> None:
    reviewer = Reviewer(db, RULES, interval=0.05)
    await reviewer.start()
    try:
        call_id = await seed_call(db, Seed(turns=[("caller", "hi", 1, None)]))
        reviewer.poke()
        for _ in range(400):  # polls, not a time limit on the reviewer
            row = (await reviews(db)).get(call_id)
            if row is not None and row.rules != PENDING:
                break
            await asyncio.sleep(0.025)
        assert (await reviews(db))[call_id].rules == RULES.digest
    finally:
        await reviewer.aclose()
    await reviewer.aclose()  # twice is harmless


async def test_recheck_scores_a_period_again(db: Database) -> None:
    inside = [
        await seed_call(db, Seed(started=T0 + dt.timedelta(hours=h), anger=0.9)) for h in (1, 2)
    ]
    outside = await seed_call(db, Seed(started=T0 + dt.timedelta(days=3), anger=0.9))
    await Reviewer(db, RULES).run_once()
    calm = RuleSet(path=RULES.path, pass_score=80, rules=(Silence(id="quiet", check="silence"),))
    seen: list[str] = []
    count = await recheck(
        db, calm, T0, T0 + dt.timedelta(days=1), on_result=lambda r: seen.append(r.call_id)
    )
    assert count == 2 and sorted(seen) == sorted(inside)
    stored = await reviews(db)
    assert {stored[c].rules for c in inside} == {calm.digest}
    assert stored[outside].rules == RULES.digest
