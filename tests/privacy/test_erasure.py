"""Erasure of one caller (GDPR) and the retention purge, on SQLite and PostgreSQL: nothing of
the erased caller is left in any table or file, in any way the number is written; the other
caller's data is all still there; the audit record holds a salted hash, not the number."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from tests.conftest import MONDAY_10AM, Bot
from tests.queues import conftest as queue_fixtures
from tests.queues.test_api import USERS, Start, serve  # noqa: F401  (the API fixture)
from tests.test_steps import HEADER
from voicebot.access.audit import audit
from voicebot.flows.errors import FlowError
from voicebot.flows.loader import load_bot
from voicebot.flows.schema import Queue, RetentionDays
from voicebot.handoff.packet import CallbackRequest, CallerInfo, HandoffPacket
from voicebot.privacy.erasure import erase_caller, hash_number, number_matcher, purge
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.store.db import Database, open_database
from voicebot.store.models import AuditEvent, Call, CallReview, Handoff, Turn

db_url = queue_fixtures.db_url
db = queue_fixtures.db

ANN = "+441632960001"  # erased
BOB = "+441632960002"  # kept
ANN_FORMS = ["+441632960001", "441632960001", "01632960001", "01632 960001", "1632960001"]
FLOWS = """\
flows:
  hours:
    trigger: hours
    steps:
      - say: We are open nine to five.
"""


async def _calls(bot: Bot, service: QueueService, number: str, tmp: Path) -> HandoffPacket:
    """A call that is handed off (queued), and a callback to the same number written the
    national way, with a review, an audit row and a recording."""
    call = bot.runtime.new_call(caller=CallerInfo(number=number, name="Caller"))
    await call.start()
    await call.caller_said("when are you open")
    await call.caller_said(f"my number is {number}")
    reply = await call.caller_said("talk to a person")
    assert reply.handoff is not None
    await service.enqueue(reply.handoff, channel="softphone")
    await service.record_call(call.state, channel="softphone")
    national = "0" + number[3:7] + " " + number[7:]
    later = reply.handoff.model_copy(
        update={
            "id": reply.handoff.id + "cb",
            "call_id": call.state.call_id + "cb",
            "callback": CallbackRequest(number=national, requested_at=MONDAY_10AM),
        }
    )
    await service.enqueue(later, channel="softphone")
    async with service.db.transaction() as session:
        session.add(
            CallReview(
                call_id=call.state.call_id,
                checked_at=MONDAY_10AM,
                score=90,
                passed=True,
                failures=[{"rule": "greet", "line": f"caller {number}"}],
                summary=f"The caller ({number}) asked for a person.",
                rules="r1",
            )
        )
    await audit(service.db, "view_packet", actor="sue", target=reply.handoff.id, caller=number)
    folder = tmp / "recordings" / call.state.call_id
    folder.mkdir(parents=True)
    (folder / "seg-001.wav").write_bytes(b"RIFF....WAVE")
    spool = tmp / "data" / "handoff-spool.jsonl"
    spool.parent.mkdir(parents=True, exist_ok=True)
    with spool.open("a", encoding="utf-8") as file:
        file.write(later.model_dump_json() + "\n")
    return reply.handoff


async def _everything(database: Database, roots: list[Path]) -> str:
    """Every row of every table and every file under ``roots``, as one text."""
    parts: list[str] = []
    async with database.session() as session:
        connection = await session.connection()
        tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        for table in tables:
            for row in (await session.execute(text(f'SELECT * FROM "{table}"'))).all():
                parts.append(json.dumps([str(v) for v in row]))
    for root in roots:
        for path in root.rglob("*"):
            parts.append(str(path))
            if path.is_file():
                parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def _found(blob: str, forms: list[str]) -> list[str]:
    squashed = blob.replace(" ", "")
    return [f for f in forms if f in blob or f.replace(" ", "") in squashed]


def test_numbers_match_in_every_form() -> None:
    matches = number_matcher(ANN)
    assert all(matches(form) for form in ANN_FORMS)
    assert matches("0044 1632 960001")
    assert not matches(BOB) and not matches("+331632960001") and not matches(None)
    with pytest.raises(ValueError, match="at least 5 digits"):
        number_matcher("12")


async def test_erase_removes_one_caller_and_keeps_the_other(
    db: Database, tmp_path: Path, make_bot
) -> None:
    bot: Bot = make_bot(HEADER + FLOWS)
    service = QueueService(
        db, LocalBus(), {"general": Queue(skills=["general"]), "care": Queue(skills=["care"])}
    )
    ann = await _calls(bot, service, ANN, tmp_path)
    bob = await _calls(bot, service, BOB, tmp_path)
    roots = [tmp_path / "data", tmp_path / "recordings"]
    before = await _everything(db, roots)
    assert _found(before, ANN_FORMS) and _found(before, [BOB])

    report = await erase_caller(
        db,
        "01632 960001",  # asked for the way the caller wrote it
        data_dir=tmp_path / "data",
        recordings_dir=tmp_path / "recordings",
        actor="ada",
    )
    # the call and the callback's own call row
    assert report.calls == 2 and report.handoffs == 2 and report.queue_entries == 2
    assert report.callbacks == 1 and report.reviews == 1 and report.recordings == 1
    assert report.spooled == 1 and report.turns > 0 and report.audit_scrubbed == 1

    after = await _everything(db, roots)
    assert _found(after, ANN_FORMS) == []
    assert ann.call_id not in after and ann.id not in after
    # Bob's calls are untouched: his call, turns, both handoffs, review, audit, recording, spool
    assert BOB in after and bob.call_id in after
    async with db.session() as session:
        calls = (await session.scalars(select(Call.caller_number))).all()
        handoffs = (await session.scalars(select(Handoff.id))).all()
        turns = (await session.scalars(select(Turn.text).where(Turn.call_id == bob.call_id))).all()
        audit_rows = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    assert calls == [BOB, BOB] and sorted(handoffs) == sorted([bob.id, bob.id + "cb"])
    assert any("talk to a person" in t for t in turns)
    assert (tmp_path / "recordings" / bob.call_id / "seg-001.wav").is_file()
    spooled = (tmp_path / "data" / "handoff-spool.jsonl").read_text(encoding="utf-8")
    assert len(spooled.splitlines()) == 1 and bob.call_id in spooled
    # the erasure's own record: who and when, a salted hash of the number, the counts
    erased = audit_rows[-1]
    assert erased.action == "privacy_erase" and erased.actor == "ada"
    salt = erased.detail["salt"]
    # of the number as it was asked for (its digits), so the request can be matched later
    assert erased.target == "sha256:" + hash_number("01632960001", salt)[1]
    assert erased.target == "sha256:" + hashlib.sha256((salt + "01632960001").encode()).hexdigest()
    assert erased.detail["calls"] == 2
    viewed = [e for e in audit_rows if e.action == "view_packet"]
    assert len(viewed) == 2 and BOB in json.dumps(viewed[1].detail)


def test_erase_through_the_admin_api_only(serve: Start) -> None:  # noqa: F811
    import asyncio

    server = serve(USERS)
    url = server.settings.resolved_database_url

    async def seed() -> None:
        database = await open_database(url)
        async with database.transaction() as session:
            session.add(Call(id="c-ann", started_at=MONDAY_10AM, caller_number=ANN))
            session.add(Call(id="c-bob", started_at=MONDAY_10AM, caller_number=BOB))
        await database.aclose()

    async def left() -> list[str]:
        database = await open_database(url)
        async with database.session() as session:
            ids = list((await session.scalars(select(Call.id))).all())
        await database.aclose()
        return ids

    asyncio.run(seed())
    with server.sign_in("sue") as sue:
        assert sue.post("/api/privacy/erase", json={"caller": ANN}).status_code == 403
    with server.client() as anonymous:
        assert anonymous.post("/api/privacy/erase", json={"caller": ANN}).status_code == 401
    with server.sign_in("ada") as ada:
        assert ada.post("/api/privacy/erase", json={"caller": "12"}).status_code == 422
        done = ada.post("/api/privacy/erase", json={"caller": ANN})
        assert done.status_code == 200, done.text
        assert done.json()["erased"]["calls"] == 1 and ANN not in done.text
    assert asyncio.run(left()) == ["c-bob"]


def test_erase_cli(tmp_path: Path) -> None:
    import asyncio

    url = f"sqlite+aiosqlite:///{tmp_path / 'vb.db'}"

    async def seed() -> None:
        database = await open_database(url)
        async with database.transaction() as session:
            session.add(Call(id="c-ann", started_at=MONDAY_10AM, caller_number=ANN))
        await database.aclose()

    asyncio.run(seed())
    env = {"VOICEBOT_DATABASE_URL": url, "VOICEBOT_DATA_DIR": str(tmp_path), "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "voicebot", "privacy", "erase", "--caller", ANN],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"calls": 1' in done.stdout and ANN not in done.stdout + done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "voicebot", "privacy", "erase", "--caller", "x"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode == 2 and "at least 5 digits" in bad.stderr


# -- retention -------------------------------------------------------------------------------


def test_retention_is_validated(tmp_path: Path) -> None:
    from tests.conftest import write_bot

    good = HEADER.replace(
        "  triggers:",
        "  privacy: { retention_days: { transcripts: 30, recordings: 7, handoffs: 90 } }\n"
        "  triggers:",
        1,
    )
    write_bot(tmp_path, {"bot.yaml": good + FLOWS})
    retention = load_bot(tmp_path).definition.bot.privacy.retention_days
    assert (retention.transcripts, retention.recordings, retention.handoffs) == (30, 7, 90)
    write_bot(tmp_path, {"bot.yaml": good.replace("recordings: 7", "recording: 7") + FLOWS})
    with pytest.raises(FlowError):
        load_bot(tmp_path)
    write_bot(tmp_path, {"bot.yaml": good.replace("transcripts: 30", "transcripts: 0") + FLOWS})
    with pytest.raises(FlowError):
        load_bot(tmp_path)


async def test_purge_deletes_what_is_past_retention(db: Database, tmp_path: Path, make_bot) -> None:
    bot: Bot = make_bot(HEADER + FLOWS)
    service = QueueService(
        db, LocalBus(), {"general": Queue(skills=["general"]), "care": Queue(skills=["care"])}
    )
    old = await _calls(bot, service, ANN, tmp_path)
    async with db.transaction() as session:
        for call in (await session.scalars(select(Call))).all():
            call.started_at = MONDAY_10AM - dt.timedelta(days=40)
        for handoff in (await session.scalars(select(Handoff))).all():
            handoff.created_at = MONDAY_10AM - dt.timedelta(days=40)
        # entries that are over (an agent took them): only those are purged
        await session.execute(text("UPDATE queue_entries SET status = 'done'"))
    fresh = await _calls(bot, service, BOB, tmp_path)
    report = await purge(
        db,
        RetentionDays(transcripts=30, handoffs=30, recordings=30),
        recordings_dir=tmp_path / "recordings",
        now=MONDAY_10AM,
    )
    assert report.transcripts == 2 and report.handoffs == 2 and report.recordings == 1
    async with db.session() as session:
        old_turns = (await session.scalars(select(Turn).where(Turn.call_id == old.call_id))).all()
        new_turns = (await session.scalars(select(Turn).where(Turn.call_id == fresh.call_id))).all()
        packets: dict[str, Any] = {
            h.id: h.packet for h in (await session.scalars(select(Handoff))).all()
        }
        review = await session.get(CallReview, old.call_id)
        calls = (await session.scalars(select(Call.id))).all()
    assert old_turns == [] and new_turns
    assert packets[old.id]["purged"] and "transcript" not in packets[old.id]
    assert packets[fresh.id]["transcript"]
    assert review is not None and review.summary == "" and review.failures == []
    assert old.call_id in calls  # the call itself stays for reports
    assert not (tmp_path / "recordings" / old.call_id).exists()
    assert (tmp_path / "recordings" / fresh.call_id).is_dir()
    assert ANN not in json.dumps(packets[old.id])
