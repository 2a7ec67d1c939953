"""Reviewing finished calls: load a call's record, run the rules, write its ``call_reviews`` row
with the score, the failures and a post-call summary.

:class:`Reviewer` runs on every API node. Each node claims a call by inserting its review row
before doing any work (a primary-key conflict means another node has it), so a call is reviewed
once however many nodes run. A claimed row whose ``rules`` is empty is a review in progress;
one left so for :data:`STALE_CLAIM` (its node died mid-review) is claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import glob
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.flows.schema import BotDefinition
from voicebot.privacy.masking import mask_pii
from voicebot.quality.checks import CallRecord, Failure, evaluate
from voicebot.quality.rules import RulesError, RuleSet, load_rules, rules_path
from voicebot.store.db import Database
from voicebot.store.models import (
    Agent,
    Call,
    Callback,
    CallEvent,
    CallReview,
    Disposition,
    Handoff,
    QueueEntry,
    Turn,
)

logger = logging.getLogger("voicebot.quality")

PENDING = ""  # the ``rules`` of a claimed row whose review is not written yet
STALE_CLAIM = dt.timedelta(minutes=5)
# A call is not finished while the caller waits, is offered, talks to an agent, or the agent
# is wrapping up; nor while a callback is owed.
_IN_PROGRESS = ("waiting", "offered", "connected", "wrap_up")
_CALLBACK_OWED = ("pending", "started")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ReviewResult:
    """One call's review, as stored in ``call_reviews`` plus the rules that did not apply."""

    call_id: str
    checked_at: dt.datetime
    score: int
    passed: bool
    pass_score: int
    failures: list[Failure]
    not_applicable: dict[str, str]
    passed_rules: list[str]
    summary: str
    rules: str  # the rule set's digest
    quotes: dict[int, tuple[str, str]] = field(default_factory=dict)  # seq -> (role, text)

    def failures_json(self) -> list[dict[str, Any]]:
        """The ``failures`` column: each failure with the transcript lines that triggered it."""
        return [
            {
                **f.as_json(),
                "quotes": [
                    {"seq": seq, "role": self.quotes[seq][0], "text": self.quotes[seq][1]}
                    for seq in f.lines
                    if seq in self.quotes
                ],
            }
            for f in self.failures
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "checked_at": self.checked_at.isoformat(),
            "score": self.score,
            "passed": self.passed,
            "pass_score": self.pass_score,
            "failures": self.failures_json(),
            "not_applicable": dict(self.not_applicable),
            "passed_rules": list(self.passed_rules),
            "summary": self.summary,
            "rules": self.rules,
        }


# --- loading a call -------------------------------------------------------------------------


def find_recordings(recordings_dir: Path | None, call_id: str) -> list[Path]:
    """The call's WAV files: ``<dir>/<call id>.wav``, ``<dir>/<call id>-*.wav`` and
    ``<dir>/<call id>/*.wav``. The talk-over check reads the two-channel ones."""
    if recordings_dir is None or not call_id or "/" in call_id or "\\" in call_id:
        return []
    if call_id in (".", ".."):
        return []
    base = glob.escape(str(recordings_dir / call_id))
    found = {
        *glob.glob(base + ".wav"),
        *glob.glob(base + "-*.wav"),
        *glob.glob(base + "/*.wav"),
    }
    return sorted(Path(p) for p in found if Path(p).is_file())


async def load_record(
    session: AsyncSession, call_id: str, *, recordings_dir: Path | None = None
) -> CallRecord | None:
    """Everything stored about a call, both legs; None when there is no such call."""
    call = await session.get(Call, call_id)
    if call is None:
        return None
    turns = (
        await session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq))
    ).all()
    events = (
        await session.scalars(
            select(CallEvent).where(CallEvent.call_id == call_id).order_by(CallEvent.id)
        )
    ).all()
    handoffs = (
        await session.scalars(
            select(Handoff).where(Handoff.call_id == call_id).order_by(Handoff.created_at)
        )
    ).all()
    entries = (
        await session.scalars(
            select(QueueEntry).where(QueueEntry.call_id == call_id).order_by(QueueEntry.enqueued_at)
        )
    ).all()
    entry_ids = [e.id for e in entries]
    dispositions = (
        (
            await session.scalars(
                select(Disposition)
                .where(Disposition.entry_id.in_(entry_ids))
                .order_by(Disposition.at)
            )
        ).all()
        if entry_ids
        else []
    )
    agent_ids = {e.agent_id for e in entries if e.agent_id is not None}
    agents: dict[int, str] = {}
    if agent_ids:
        rows = await session.execute(
            select(Agent.id, Agent.display_name).where(Agent.id.in_(agent_ids))
        )
        agents = {agent_id: name for agent_id, name in rows}
    return CallRecord(
        call=call,
        turns=list(turns),
        events=list(events),
        handoffs=list(handoffs),
        entries=list(entries),
        dispositions=list(dispositions),
        recordings=find_recordings(recordings_dir, call_id),
        agents=agents,
    )


# --- the post-call summary ------------------------------------------------------------------


def summarise(record: CallRecord, bot: BotDefinition | None = None) -> str:
    """A few plain sentences on the whole call, bot and human legs, with personal data masked:
    what the caller wanted, what the bot did, who took over and how it ended."""
    call = record.call
    who = call.caller_name or "The caller"
    if call.vip:
        who += " (VIP)"
    sentences: list[str] = []
    if call.intent:
        sentences.append(f"{who} called about: {_describe_intent(call.intent, bot)}.")
    else:
        sentences.append(f"{who} did not state a clear reason for calling.")
    flows = record.flows()
    if flows:
        ran = ", ".join(f"{name} ({outcome or 'abandoned'})" for name, outcome in flows)
        sentences.append(f"The bot ran {ran}.")
    unanswered = sum(1 for e in record.events if e.kind == "no_answer")
    if unanswered:
        sentences.append(f"{unanswered} question(s) had no answer in the knowledge base.")
    for handoff in record.handoffs:
        sentences.append(f"Handed to {handoff.queue} because: {handoff.reason.rstrip('.')}.")
    codes = {d.entry_id: d for d in record.dispositions}
    for entry in record.entries:
        sentences.extend(_entry_sentences(entry, codes.get(entry.id), record.agents))
    if call.outcome:
        ending = f"Outcome: {call.outcome}"
        if call.disposition:
            ending += f" ({call.disposition})"
        sentences.append(ending + ".")
    last = next((t.text for t in reversed(record.turns) if t.role == "caller"), None)
    if last:
        sentences.append(f'Last said to the bot: "{last}".')
    return mask_pii(" ".join(sentences))


def _describe_intent(intent: str, bot: BotDefinition | None) -> str:
    if bot is None:
        return intent.replace("_", " ")
    described = bot.intents[intent].description if intent in bot.intents else None
    if not described:
        flow = next((f for f in bot.flows.values() if intent in f.triggers), None)
        described = flow.description if flow else None
    text = (described or intent.replace("_", " ")).rstrip(".")
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _entry_sentences(
    entry: QueueEntry, disposition: Disposition | None, agents: dict[int, str]
) -> list[str]:
    what = "A callback" if entry.kind == "callback" else "The call"
    if entry.connected_at is None:
        if entry.status == "abandoned":
            waited = _span(entry.enqueued_at, entry.ended_at)
            return [f"The caller left the {entry.queue} queue after {waited} without an agent."]
        return [f"{what} in {entry.queue} reached no agent ({entry.status})."]
    agent = agents.get(entry.agent_id or 0, "an agent")
    said = [
        f"{what} was taken by {agent} in {entry.queue} and lasted "
        f"{_span(entry.connected_at, entry.ended_at)}."
    ]
    if disposition is not None:
        notes = " ".join(disposition.notes.split())
        said.append(f"Disposition: {disposition.code}" + (f"; notes: {notes}." if notes else "."))
    else:
        said.append("No disposition code was set.")
    return said


def _span(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None or end is None:
        return "an unknown time"
    seconds = max(0, int((end - start).total_seconds()))
    return f"{seconds // 60}:{seconds % 60:02d}"


# --- reviewing ------------------------------------------------------------------------------


async def review_call(
    db: Database,
    rules: RuleSet,
    call_id: str,
    *,
    force: bool = False,
    recordings_dir: Path | None = None,
    bot: BotDefinition | None = None,
    clock: Callable[[], dt.datetime] = _now,
) -> ReviewResult | None:
    """Review one call and store the result in ``call_reviews``.

    Without ``force`` the call is claimed first and None is returned when it has a review
    already (or another node is writing one); with ``force`` it is scored again and its review
    replaced. None also when there is no such call. A failure while checking leaves a claimed
    call claimed: another attempt comes after :data:`STALE_CLAIM`, not at once.
    """
    now = clock()
    if not force and not await _claim(db, call_id, now):
        return None
    async with db.session() as session:
        record = await load_record(session, call_id, recordings_dir=recordings_dir)
    if record is None:
        if not force:
            await _release(db, call_id)
        return None
    # The talk-over check reads audio files: off the event loop.
    evaluation = await asyncio.to_thread(evaluate, rules, record)
    result = ReviewResult(
        call_id=call_id,
        checked_at=now,
        score=evaluation.score,
        passed=evaluation.passed,
        pass_score=rules.pass_score,
        failures=evaluation.failures,
        not_applicable=evaluation.not_applicable,
        passed_rules=evaluation.passed_rules,
        summary=summarise(record, bot),
        rules=rules.digest,
        quotes={t.seq: (t.role, mask_pii(t.text)) for t in record.turns},
    )
    await _store(db, result)
    return result


def _insert(db: Database) -> Any:
    return postgresql.insert(CallReview) if db.is_postgres else sqlite.insert(CallReview)


async def _claim(db: Database, call_id: str, now: dt.datetime) -> bool:
    """Insert the placeholder row: the primary key makes one node the owner of the review."""
    async with db.transaction() as session:
        if await session.get(Call, call_id) is None:
            return False
        claimed = await session.scalar(
            _insert(db)
            .values(
                call_id=call_id,
                checked_at=now,
                score=0,
                passed=False,
                failures=[],
                summary="",
                rules=PENDING,
            )
            .on_conflict_do_nothing(index_elements=[CallReview.call_id])
            .returning(CallReview.call_id)
        )
        if claimed is not None:
            return True
        # Someone's claim from long ago that never became a review: its node died.
        stale = await session.execute(
            update(CallReview)
            .where(
                CallReview.call_id == call_id,
                CallReview.rules == PENDING,
                CallReview.checked_at < now - STALE_CLAIM,
            )
            .values(checked_at=now)
            .returning(CallReview.call_id)
        )
        return stale.first() is not None


async def _release(db: Database, call_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            delete(CallReview).where(CallReview.call_id == call_id, CallReview.rules == PENDING)
        )


async def _store(db: Database, result: ReviewResult) -> None:
    values = {
        "checked_at": result.checked_at,
        "score": result.score,
        "passed": result.passed,
        "failures": result.failures_json(),
        "summary": result.summary,
        "rules": result.rules,
    }
    async with db.transaction() as session:
        await session.execute(
            _insert(db)
            .values(call_id=result.call_id, **values)
            .on_conflict_do_update(index_elements=[CallReview.call_id], set_=values)
        )


def _finished() -> list[ColumnElement[bool]]:
    """Conditions on ``Call`` for a call whose both legs are over."""
    active = select(QueueEntry.id).where(
        QueueEntry.call_id == Call.id, QueueEntry.status.in_(_IN_PROGRESS)
    )
    owed = (
        select(Callback.id)
        .join(QueueEntry, Callback.entry_id == QueueEntry.id)
        .where(QueueEntry.call_id == Call.id, Callback.status.in_(_CALLBACK_OWED))
    )
    return [
        or_(Call.ended_at.is_not(None), Call.bot_ended_at.is_not(None)),
        ~exists(active),
        ~exists(owed),
    ]


async def unreviewed_calls(
    db: Database, *, limit: int = 50, now: dt.datetime | None = None
) -> list[str]:
    """Finished calls with no review yet (or a claim gone stale), oldest first."""
    now = now or _now()
    reviewed = select(CallReview.call_id).where(
        CallReview.call_id == Call.id,
        or_(CallReview.rules != PENDING, CallReview.checked_at >= now - STALE_CLAIM),
    )
    query = (
        select(Call.id)
        .where(*_finished(), ~exists(reviewed))
        .order_by(Call.started_at, Call.id)
        .limit(limit)
    )
    async with db.session() as session:
        return list((await session.scalars(query)).all())


async def recheck(
    db: Database,
    rules: RuleSet,
    start: dt.datetime,
    end: dt.datetime,
    *,
    recordings_dir: Path | None = None,
    bot: BotDefinition | None = None,
    on_result: Callable[[ReviewResult], None] | None = None,
) -> int:
    """Score every finished call that started in ``[start, end)`` again with ``rules``
    (replacing its review); returns how many were scored."""
    query = (
        select(Call.id)
        .where(Call.started_at >= start, Call.started_at < end, *_finished())
        .order_by(Call.started_at, Call.id)
    )
    async with db.session() as session:
        call_ids = list((await session.scalars(query)).all())
    done = 0
    for call_id in call_ids:
        result = await review_call(
            db, rules, call_id, force=True, recordings_dir=recordings_dir, bot=bot
        )
        if result is not None:
            done += 1
            if on_result is not None:
                on_result(result)
    return done


class Reviewer:
    """Reviews finished calls in the background, every ``interval`` seconds.

    Safe to run on several nodes against one database: a call is claimed by inserting its
    review row, so only one node reviews it. A call that fails to review is logged and the
    loop goes on.
    """

    def __init__(
        self,
        db: Database,
        rules: RuleSet,
        *,
        interval: float = 5.0,
        batch: int = 50,
        recordings_dir: Path | None = None,
        bot: BotDefinition | None = None,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.db = db
        self.rules = rules
        self.interval = interval
        self.batch = batch
        self.recordings_dir = recordings_dir
        self.bot = bot
        self.clock = clock
        self.reviewed = 0  # calls this node reviewed
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="quality-reviewer")

    def poke(self) -> None:
        """Look for finished calls now rather than at the next interval."""
        self._wake.set()

    async def run_once(self) -> list[str]:
        """One pass: claim and review every finished call without a review; the ids this
        node reviewed."""
        done: list[str] = []
        for call_id in await unreviewed_calls(self.db, limit=self.batch, now=self.clock()):
            try:
                result = await review_call(
                    self.db,
                    self.rules,
                    call_id,
                    recordings_dir=self.recordings_dir,
                    bot=self.bot,
                    clock=self.clock,
                )
            except Exception:
                logger.exception("a call could not be reviewed", extra={"call_id": call_id})
                continue
            if result is not None:
                done.append(call_id)
                self.reviewed += 1
        return done

    async def _run(self) -> None:
        while True:
            try:
                done = await self.run_once()
            except Exception:  # the database away for a moment: try again next time
                logger.exception("the quality reviewer could not look for calls")
                done = []
            if len(done) >= self.batch:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def start_reviewer(
    bot_dir: Path,
    db: Database,
    *,
    bot: BotDefinition | None = None,
    recordings_dir: Path | None = None,
    interval: float = 5.0,
) -> Reviewer | None:
    """The API's reviewer when the bot has ``quality/rules.yaml``; a malformed file is logged
    (each problem as ``path:line:col``) and the API serves on without reviews."""
    path = rules_path(bot_dir)
    if not path.is_file():
        return None
    try:
        rules = await asyncio.to_thread(
            load_rules, path, display=path.relative_to(bot_dir), bot=bot
        )
    except RulesError as exc:
        logger.error(
            "quality checks are off: the rule file has errors",
            extra={"detail": "; ".join(str(i) for i in exc.errors)},
        )
        return None
    reviewer = Reviewer(db, rules, interval=interval, recordings_dir=recordings_dir, bot=bot)
    await reviewer.start()
    logger.info("quality checks on", extra={"detail": f"{len(rules.rules)} rules"})
    return reviewer


__all__ = [
    "PENDING",
    "STALE_CLAIM",
    "ReviewResult",
    "Reviewer",
    "find_recordings",
    "load_record",
    "recheck",
    "review_call",
    "start_reviewer",
    "summarise",
    "unreviewed_calls",
]
