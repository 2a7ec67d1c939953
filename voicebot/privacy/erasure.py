"""Erasure of one caller's data (GDPR art. 17), the retention purge, and key rotation.

``erase_caller`` removes every call of a number from the database (the call, its turns,
events, review, handoffs, queue entries, offers, callbacks, dispositions), callbacks to that
number, its recordings and its spooled handoffs, and scrubs the number out of the audit log.
What it keeps is an audit record without personal data: a salted hash of the number (to show,
if asked, that a given number was erased) and the counts.

``purge`` applies the bot's ``privacy.retention_days``; the API runs it periodically
(:class:`RetentionPurger`), ``voicebot privacy purge`` runs it now. Chroma holds only the
knowledge documents, never caller data, so neither touches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, select, update

from voicebot.channels.identity import customer_id, is_customer_id
from voicebot.flows.schema import RetentionDays
from voicebot.store.db import Database
from voicebot.store.encryption import keyring
from voicebot.store.models import (
    AuditEvent,
    Call,
    Callback,
    CallEvent,
    CallReview,
    Disposition,
    Handoff,
    Offer,
    QueueEntry,
    Turn,
)
from voicebot.store.recordings import safe_name

logger = logging.getLogger("voicebot.privacy")

SPOOL_NAMES = (
    "handoff-spool.jsonl",
    "handoff-spool.bad",
    "messaging-outbox.jsonl",  # replies waiting for the gateway (voicebot/channels/messaging.py)
    "messaging-outbox.bad",
)
ERASED = "[erased]"
# Entries still in a queue are not purged under an agent's feet; erasure removes them anyway.
_LIVE = ("waiting", "offered", "connected", "wrap_up")


def digits_of(number: str) -> str:
    return re.sub(r"\D", "", number or "")


def number_matcher(number: str) -> Callable[[str | None], bool]:
    """Whether a stored number is the caller's, written any way: +44 1632 960001,
    00441632960001 and 01632 960001 are one number (the national form matches the
    international one by its significant digits)."""
    if is_customer_id(number) and not number.startswith("tel:"):
        return lambda stored: False  # email: or site: names no number
    wanted = digits_of(number)
    if len(wanted) < 5:
        raise ValueError("a caller number needs at least 5 digits")
    core = wanted.lstrip("0")

    def matches(stored: str | None) -> bool:
        got = digits_of(stored or "")
        if not got:
            return False
        if got == wanted:
            return True
        short = got.lstrip("0")
        # a national number inside an international one ("01632960001" in "441632960001")
        return len(min(core, short, key=len)) >= 9 and (
            core.endswith(short) or short.endswith(core)
        )

    return matches


def number_forms(number: str) -> list[str]:
    """Ways the number may be written in free text, for the scrub of the audit log."""
    digits = digits_of(number)
    forms = {number, digits, "+" + digits}
    if digits.startswith("44"):
        forms.add("0" + digits[2:])
    return sorted((f for f in forms if len(digits_of(f)) >= 5), key=len, reverse=True)


def hash_number(number: str, salt: str | None = None) -> tuple[str, str]:
    """(salt, sha256 of salt + digits): an audit reference that does not reveal the number."""
    salt = salt or secrets.token_hex(16)
    key = digits_of(number)
    if is_customer_id(number) and not number.startswith("tel:"):
        key = number.lower()
    return salt, hashlib.sha256((salt + key).encode()).hexdigest()


@dataclass
class ErasureReport:
    calls: int = 0
    turns: int = 0
    handoffs: int = 0
    queue_entries: int = 0
    callbacks: int = 0
    reviews: int = 0
    events: int = 0
    recordings: int = 0
    spooled: int = 0
    audit_scrubbed: int = 0
    reference: str = ""

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


def _packet_numbers(packet: Any) -> list[str | None]:
    if not isinstance(packet, dict):
        return []
    caller = packet.get("caller") or {}
    callback = packet.get("callback") or {}
    return [caller.get("number"), callback.get("number")]


async def erase_caller(
    db: Database,
    number: str,
    *,
    data_dir: Path | None = None,
    recordings_dir: Path | None = None,
    actor: str | None = None,
    ip: str | None = None,
) -> ErasureReport:
    """Remove everything stored about the caller ``number`` (or a customer id: tel:, email:,
    site:, voicebot/channels/identity.py); other callers stay as they are."""
    matches = number_matcher(number)
    customers = _customer_ids(number)
    report = ErasureReport()
    async with db.transaction() as session:
        call_ids = {
            cid
            for cid, stored, customer in (
                await session.execute(select(Call.id, Call.caller_number, Call.customer_id))
            ).all()
            if matches(stored) or customer in customers
        }
        # Packets are read in Python: they may be encrypted, and hold callback numbers too.
        handoff_ids: set[str] = set()
        for hid, cid, packet in (
            await session.execute(select(Handoff.id, Handoff.call_id, Handoff.packet))
        ).all():
            if cid in call_ids or any(matches(n) for n in _packet_numbers(packet)):
                handoff_ids.add(hid)
                call_ids.add(cid)
        entries = (
            await session.execute(
                select(
                    QueueEntry.id,
                    QueueEntry.handoff_id,
                    QueueEntry.call_id,
                    QueueEntry.callback_number,
                )
            )
        ).all()
        entry_ids = {
            eid
            for eid, hid, cid, callback in entries
            if hid in handoff_ids or cid in call_ids or matches(callback)
        }
        entry_ids |= {
            eid
            for eid, stored in (
                await session.execute(select(Callback.entry_id, Callback.number))
            ).all()
            if matches(stored)
        }
        handoff_ids |= {hid for eid, hid, _, _ in entries if eid in entry_ids}
        ids = list(entry_ids)
        report.callbacks = await _delete(session, Callback, Callback.entry_id.in_(ids))
        await _delete(session, Disposition, Disposition.entry_id.in_(ids))
        await _delete(session, Offer, Offer.entry_id.in_(ids))
        report.queue_entries = await _delete(session, QueueEntry, QueueEntry.id.in_(ids))
        calls = list(call_ids)
        hids = list(handoff_ids)
        report.handoffs = await _delete(session, Handoff, Handoff.id.in_(hids))
        report.turns = await _delete(session, Turn, Turn.call_id.in_(calls))
        report.events = await _delete(session, CallEvent, CallEvent.call_id.in_(calls))
        report.reviews = await _delete(session, CallReview, CallReview.call_id.in_(calls))
        report.calls = await _delete(session, Call, Call.id.in_(calls))
        report.audit_scrubbed = await _scrub_audit(
            session, number, {*calls, *hids, *ids, *customers}
        )
    await _compact(db)
    if recordings_dir is not None:
        report.recordings = await asyncio.to_thread(_remove_recordings, recordings_dir, call_ids)
    if data_dir is not None:
        report.spooled = await asyncio.to_thread(_scrub_spools, data_dir, matches, call_ids)
    salt, digest = hash_number(number)
    report.reference = digest[:16]
    async with db.transaction() as session:
        session.add(
            AuditEvent(
                at=dt.datetime.now(dt.UTC),
                actor=actor,
                ip=ip,
                action="privacy_erase",
                target=f"sha256:{digest}",
                detail={"salt": salt, **report.counts()},
            )
        )
    logger.info("caller erased", extra={"detail": json.dumps(report.counts())})
    return report


def _customer_ids(subject: str) -> set[str]:
    """The customer ids of an erasure's subject: itself, or the number's ``tel:`` id."""
    if is_customer_id(subject):
        return {subject}
    found = customer_id(subject)
    return {found} if found else set()


async def _compact(db: Database) -> None:
    """SQLite keeps deleted rows in free pages and the write-ahead log until they are reused:
    VACUUM rewrites the file without them and the checkpoint empties the log. (PostgreSQL's
    dead rows go with its autovacuum; its files are not readable by the application.)"""
    if db.dialect != "sqlite":
        return
    try:
        async with db.engine.connect() as connection:
            # the driver's own connection: SQLAlchemy's would wrap VACUUM in a transaction
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.execute("VACUUM")
            await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except Exception:
        # the rows are gone either way; a busy file is compacted at the next erasure
        logger.warning("could not compact the SQLite file after an erasure", exc_info=True)


async def _delete(session: Any, model: Any, where: Any) -> int:
    result = await session.execute(
        delete(model).where(where).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def _scrub_audit(session: Any, number: str, ids: set[str]) -> int:
    """Audit rows stay (who did what, when), with the caller's number, in any form, and the
    erased calls' ids taken out of their target and detail."""
    matches = number_matcher(number)
    longest_first = sorted(ids, key=len, reverse=True)
    scrubbed = 0
    for event in (await session.scalars(select(AuditEvent))).all():
        target = event.target or ""
        detail = json.dumps(event.detail or {}, ensure_ascii=False)
        new_target = ERASED if target in ids else scrub_number(target, matches)
        new_detail = scrub_number(_replace(detail, longest_first), matches)
        if new_target != target or new_detail != detail:
            event.target = new_target or None
            event.detail = json.loads(new_detail)
            scrubbed += 1
    return scrubbed


_PHONE_LIKE = re.compile(r"\+?\d[\d \-]{3,}\d")


def scrub_number(text: str, matches: Callable[[str | None], bool]) -> str:
    """``text`` with each phone-like run that is the caller's number replaced."""
    return _PHONE_LIKE.sub(lambda m: ERASED if matches(m.group(0)) else m.group(0), text)


def _replace(text: str, forms: Iterable[str]) -> str:
    for form in forms:
        if form:
            text = text.replace(form, ERASED)
    return text


def _remove_recordings(root: Path, call_ids: Iterable[str]) -> int:
    removed = 0
    for call_id in call_ids:
        folder = root / call_id
        if safe_name(call_id) and folder.is_dir():
            removed += sum(1 for p in folder.iterdir() if p.is_file())
            shutil.rmtree(folder)
    return removed


def _scrub_spools(data_dir: Path, matches: Callable[[str | None], bool], call_ids: set[str]) -> int:
    """Spooled handoffs (written when the database was down) of the caller are dropped."""
    dropped = 0
    for name in SPOOL_NAMES:
        path = data_dir / name
        if not path.is_file():
            continue
        kept: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                packet = json.loads(line)
            except ValueError:
                packet = None
            mine = (
                isinstance(packet, dict)
                and (
                    packet.get("call_id") in call_ids
                    or packet.get("conversation_id") in call_ids
                    or any(matches(n) for n in _packet_numbers(packet))
                )
            ) or scrub_number(line, matches) != line
            if mine:
                dropped += 1
            else:
                kept.append(line)
        if kept:
            path.write_text("\n".join(kept) + "\n", encoding="utf-8")
        else:
            path.unlink()
    return dropped


# -- retention -------------------------------------------------------------------------------


@dataclass
class PurgeReport:
    transcripts: int = 0  # calls whose turns were deleted
    handoffs: int = 0  # packets emptied
    recordings: int = 0  # recording files deleted
    details: dict[str, int] = field(default_factory=dict)


async def purge(
    db: Database,
    retention: RetentionDays,
    *,
    recordings_dir: Path | None = None,
    now: dt.datetime | None = None,
) -> PurgeReport:
    """Delete what is older than the bot's retention periods. Calls themselves stay (reports
    count them), without what was said in them."""
    now = now or dt.datetime.now(dt.UTC)
    report = PurgeReport()
    if retention.transcripts is not None:
        cutoff = now - dt.timedelta(days=retention.transcripts)
        async with db.transaction() as session:
            old = select(Call.id).where(Call.started_at < cutoff)
            with_turns = (
                await session.scalars(select(Turn.call_id).where(Turn.call_id.in_(old)).distinct())
            ).all()
            report.transcripts = len(with_turns)
            await _delete(session, Turn, Turn.call_id.in_(old))
            await _delete(
                session, CallEvent, CallEvent.call_id.in_(old) & (CallEvent.kind == "no_answer")
            )
            await session.execute(
                update(CallReview)
                .where(CallReview.call_id.in_(old))
                .values(summary="", failures=[])
                .execution_options(synchronize_session=False)
            )
    if retention.handoffs is not None:
        cutoff = now - dt.timedelta(days=retention.handoffs)
        async with db.transaction() as session:
            live = select(QueueEntry.handoff_id).where(QueueEntry.status.in_(_LIVE))
            rows = (
                await session.scalars(
                    select(Handoff).where(Handoff.created_at < cutoff, Handoff.id.not_in(live))
                )
            ).all()
            for handoff in rows:
                if not (handoff.packet or {}).get("purged"):
                    handoff.packet = _purged_packet(handoff)
                    handoff.reason = "(purged)"
                    report.handoffs += 1
            done = [h.id for h in rows]
            await session.execute(
                update(QueueEntry)
                .where(QueueEntry.handoff_id.in_(done))
                .values(callback_number=None)
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                update(Callback)
                .where(Callback.handoff_id.in_(done))
                .values(number="")
                .execution_options(synchronize_session=False)
            )
    if retention.recordings is not None and recordings_dir is not None:
        cutoff = now - dt.timedelta(days=retention.recordings)
        async with db.session() as session:
            old_calls = set(
                (await session.scalars(select(Call.id).where(Call.started_at < cutoff))).all()
            )
        report.recordings = await asyncio.to_thread(
            _remove_old_recordings, recordings_dir, old_calls, cutoff
        )
    return report


def _purged_packet(handoff: Handoff) -> dict[str, Any]:
    """What reports still read of a packet past its retention: nothing about the caller."""
    return {
        "id": handoff.id,
        "call_id": handoff.call_id,
        "queue": handoff.queue,
        "priority": handoff.priority,
        "intent": {"name": handoff.intent},
        "reason_kind": handoff.reason_kind,
        "purged": True,
    }


def _remove_old_recordings(root: Path, old_calls: set[str], cutoff: dt.datetime) -> int:
    if not root.is_dir():
        return 0
    removed = 0
    for folder in root.iterdir():
        if not folder.is_dir() or not safe_name(folder.name):
            continue
        modified = dt.datetime.fromtimestamp(folder.stat().st_mtime, dt.UTC)
        if folder.name in old_calls or modified < cutoff:
            removed += sum(1 for p in folder.iterdir() if p.is_file())
            shutil.rmtree(folder)
    return removed


class RetentionPurger:
    """The API's periodic purge (started beside the quality reviewer)."""

    def __init__(
        self,
        db: Database,
        retention: RetentionDays,
        *,
        recordings_dir: Path | None = None,
        interval: float = 3600.0,
    ) -> None:
        self.db = db
        self.retention = retention
        self.recordings_dir = recordings_dir
        self.interval = interval
        self.runs = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention-purge")

    async def _loop(self) -> None:
        while True:
            try:
                report = await purge(self.db, self.retention, recordings_dir=self.recordings_dir)
                self.runs += 1
                logger.info(
                    "retention purge done",
                    extra={
                        "detail": f"transcripts {report.transcripts}, handoffs "
                        f"{report.handoffs}, recordings {report.recordings}"
                    },
                )
            except Exception:
                logger.exception("retention purge failed; retried at the next interval")
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def start_purger(
    db: Database, bot: Any, *, recordings_dir: Path | None, interval: float = 3600.0
) -> RetentionPurger | None:
    """The purge task when the bot sets any retention period; None otherwise."""
    retention = bot.bot.privacy.retention_days if bot is not None else None
    if retention is None or all(
        v is None for v in (retention.transcripts, retention.recordings, retention.handoffs)
    ):
        return None
    purger = RetentionPurger(db, retention, recordings_dir=recordings_dir, interval=interval)
    purger.start()
    return purger


# -- key rotation ----------------------------------------------------------------------------

ENCRYPTED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("turns", "id", "text"),
    ("handoffs", "id", "reason"),
    ("handoffs", "id", "packet"),
    ("call_reviews", "call_id", "summary"),
    ("call_reviews", "call_id", "failures"),
)


async def rotate_keys(db: Database, *, batch: int = 500) -> dict[str, int]:
    """Re-encrypt every encrypted column's rows under the first key (clear rows too).

    Reads and writes the stored text itself (not through the column types), so a row is
    decrypted and encrypted once, and a value no key opens stops the run with that error."""
    ring = keyring()
    if not ring.enabled:
        from voicebot.store.encryption import EncryptionError

        raise EncryptionError("rotate-key needs VOICEBOT_ENCRYPTION_KEYS (the new key first)")
    done: dict[str, int] = {}
    for table_name, key_name, column_name in ENCRYPTED_COLUMNS:
        table = sa.table(table_name, sa.column(key_name), sa.column(column_name, sa.Text))
        key, column = table.c[key_name], table.c[column_name]
        count = 0
        async with db.transaction() as session:
            rows = (await session.execute(select(key, column))).all()
            for start in range(0, len(rows), batch):
                for row_key, stored in rows[start : start + batch]:
                    if stored is None:
                        continue
                    text = stored if isinstance(stored, str) else json.dumps(stored)
                    await session.execute(
                        update(table).where(key == row_key).values({column_name: ring.rotate(text)})
                    )
                    count += 1
        done[f"{table_name}.{column_name}"] = count
    return done


__all__ = [
    "ENCRYPTED_COLUMNS",
    "ErasureReport",
    "PurgeReport",
    "RetentionPurger",
    "erase_caller",
    "hash_number",
    "number_forms",
    "number_matcher",
    "purge",
    "rotate_keys",
    "scrub_number",
    "start_purger",
]
