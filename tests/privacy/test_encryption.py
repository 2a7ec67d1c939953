"""Encryption at rest of transcripts, handoff packets and reasons, and quality reviews, on
SQLite and PostgreSQL: with a key the raw columns hold no clear text and the API still shows
it; clear rows from before still read; rotation moves every row to the new key; a wrong or
malformed key is a clear error."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, text

from tests.conftest import MONDAY_10AM
from tests.queues import conftest as queue_fixtures
from tests.queues.packets import make_packet
from tests.queues.servers import pg_database
from tests.queues.test_api import TOKEN, Start, serve  # noqa: F401  (the API fixture)
from voicebot.flows.schema import Queue
from voicebot.privacy.erasure import rotate_keys
from voicebot.queues.events import LocalBus
from voicebot.queues.service import QueueService
from voicebot.store import encryption
from voicebot.store.db import Database, alembic_config, open_database
from voicebot.store.encryption import PREFIX, EncryptionError, configure
from voicebot.store.models import CallReview, Handoff, Turn

db_url = queue_fixtures.db_url
db = queue_fixtures.db

K1 = Fernet.generate_key().decode()
K2 = Fernet.generate_key().decode()
SAID = "why is my bill higher"
QUEUES = {"general": Queue(skills=["general"])}


@pytest.fixture(autouse=True)
def _no_key_after() -> Iterator[None]:
    yield
    configure(None)


async def _raw(database: Database) -> dict[str, list[str]]:
    """The stored text of each encrypted column, read past the column types."""
    queries = {
        "turns.text": "SELECT text FROM turns",
        "handoffs.packet": "SELECT CAST(packet AS TEXT) FROM handoffs",
        "handoffs.reason": "SELECT reason FROM handoffs",
        "call_reviews.summary": "SELECT summary FROM call_reviews",
        "call_reviews.failures": "SELECT CAST(failures AS TEXT) FROM call_reviews",
    }
    out: dict[str, list[str]] = {}
    async with database.session() as session:
        for name, sql in queries.items():
            out[name] = [str(v) for v in (await session.scalars(text(sql))).all()]
    return out


async def _store_call(database: Database, reason: str = "billing question") -> str:
    service = QueueService(database, LocalBus(), QUEUES)
    packet = make_packet().model_copy(update={"reason": reason})
    await service.enqueue(packet, channel="softphone")
    async with database.transaction() as session:
        session.add(
            CallReview(
                call_id=packet.call_id,
                checked_at=MONDAY_10AM,
                score=70,
                passed=False,
                failures=[{"rule": "empathy", "line": SAID}],
                summary=f"The caller asked: {SAID}.",
                rules="r1",
            )
        )
    return packet.id


async def test_with_a_key_raw_columns_hold_no_clear_text(db: Database) -> None:
    configure(K1)
    handoff_id = await _store_call(db)
    raw = await _raw(db)
    for column, values in raw.items():
        assert values, column
        for value in values:
            assert value.startswith(PREFIX), (column, value[:40])
            for clear in (SAID, "Ann Example", "+447700900123", "billing question"):
                assert clear not in value, column
    async with db.session() as session:
        handoff = await session.get(Handoff, handoff_id)
        turns = (await session.scalars(select(Turn.text))).all()
        review = (await session.scalars(select(CallReview))).one()
    assert handoff is not None and handoff.packet["caller"]["name"] == "Ann Example"
    assert handoff.reason == "billing question" and SAID in turns
    assert review.failures == [{"rule": "empathy", "line": SAID}] and SAID in review.summary


async def test_clear_rows_written_before_a_key_still_read(db: Database) -> None:
    configure(None)
    old = await _store_call(db, reason="before the key")
    assert all(not v.startswith(PREFIX) for v in (await _raw(db))["handoffs.reason"])
    configure(K1)
    new = await _store_call(db, reason="after the key")
    async with db.session() as session:
        reasons = {h.id: h.reason for h in (await session.scalars(select(Handoff))).all()}
    assert reasons == {old: "before the key", new: "after the key"}
    stored = (await _raw(db))["handoffs.reason"]
    assert sum(v.startswith(PREFIX) for v in stored) == 1


async def test_rotation_re_encrypts_every_row_and_a_wrong_key_is_a_clear_error(
    db: Database,
) -> None:
    configure(None)
    await _store_call(db, reason="clear one")
    configure(K1)
    await _store_call(db, reason="under the first key")
    configure(f"{K2},{K1}")  # the new key first; the old one still opens old rows
    done = await rotate_keys(db)
    assert done["handoffs.packet"] == 2 and done["turns.text"] >= 4
    configure(K2)  # the old key removed: every row must open with the new one alone
    async with db.session() as session:
        reasons = sorted(h.reason for h in (await session.scalars(select(Handoff))).all())
    assert reasons == ["clear one", "under the first key"]
    assert all(v.startswith(PREFIX) for vs in (await _raw(db)).values() for v in vs)
    configure(K1)  # a wrong key
    with pytest.raises(EncryptionError, match="could not be decrypted with any key"):
        async with db.session() as session:
            (await session.scalars(select(Handoff))).all()
    configure(None)  # no key at all
    with pytest.raises(EncryptionError, match="VOICEBOT_ENCRYPTION_KEYS is not set"):
        async with db.session() as session:
            (await session.scalars(select(Turn.text))).all()


def test_a_malformed_key_is_refused_with_its_position() -> None:
    with pytest.raises(EncryptionError, match="key 2 of VOICEBOT_ENCRYPTION_KEYS is not a Fernet"):
        configure(f"{K1},not-a-key")


async def test_migration_keeps_packets_stored_as_json(tmp_path: Path) -> None:
    """A database at revision 0002 (packet a JSON column) upgrades to text columns, and the
    packets written before read as they were (PostgreSQL casts JSON to text)."""
    from alembic import command

    async with pg_database() as url:
        database = Database(url)
        async with database._writer.connect() as connection:
            await connection.run_sync(lambda c: command.upgrade(alembic_config(c), "0002"))
            await connection.commit()
        async with database.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO calls (id, started_at, channel, vip) "
                    "VALUES ('c1', now(), 'sip', false)"
                )
            )
            await session.execute(
                text(
                    "INSERT INTO handoffs (id, call_id, created_at, queue, priority, reason, "
                    "packet) VALUES ('h1', 'c1', now(), 'general', 'normal', 'old', "
                    "CAST(:packet AS JSON))"
                ),
                {"packet": json.dumps({"id": "h1", "caller": {"name": "Old Row"}})},
            )
        await database.aclose()
        configure(K1)
        upgraded = await open_database(url)
        try:
            assert await upgraded.current_revision() == "0004"
            async with upgraded.session() as session:
                handoff = await session.get(Handoff, "h1")
            assert handoff is not None and handoff.packet["caller"]["name"] == "Old Row"
        finally:
            await upgraded.aclose()


def test_api_shows_decrypted_packets_and_serve_warns_without_a_key(
    serve: Start,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="voicebot.store"):
        serve()  # no key: served, with the warning
    assert "VOICEBOT_ENCRYPTION_KEYS is not set" in caplog.text
    # (the keys are the process's: the second server's key is the one in force from here)
    server = serve(encryption_keys=SecretStr(K1))
    packet = make_packet()
    with server.service() as client:
        created = client.post("/api/handoffs", json=packet.model_dump(mode="json"))
        assert created.status_code == 201, created.text
        shown = client.get(f"/api/handoffs/{packet.id}")
    assert shown.status_code == 200
    assert shown.json()["packet"]["transcript"][1]["text"] == SAID

    async def raw() -> dict[str, list[str]]:
        database = await open_database(server.settings.resolved_database_url)
        try:
            return await _raw(database)
        finally:
            await database.aclose()

    stored = asyncio.run(raw())
    assert stored["handoffs.packet"] and all(
        v.startswith(PREFIX) for v in stored["handoffs.packet"]
    )
    assert all(SAID not in v for v in stored["turns.text"])


def test_rotate_key_and_new_key_commands(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'vb.db'}"

    async def seed() -> None:
        configure(K1)
        database = await open_database(url)
        await _store_call(database)
        await database.aclose()

    asyncio.run(seed())
    base = {"VOICEBOT_DATABASE_URL": url, "VOICEBOT_DATA_DIR": str(tmp_path), "PATH": ""}

    def run(*args: str, keys: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**base, **({"VOICEBOT_ENCRYPTION_KEYS": keys} if keys is not None else {})}
        return subprocess.run(
            [sys.executable, "-m", "voicebot", "privacy", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )

    made = run("new-key")
    assert made.returncode == 0
    Fernet(made.stdout.strip().encode())  # a usable key
    assert run("rotate-key").returncode == 2  # no key: refused with a message
    rotated = run("rotate-key", keys=f"{K2},{K1}")
    assert rotated.returncode == 0, rotated.stderr
    assert "handoffs.packet 1" in rotated.stdout
    wrong = run("rotate-key", keys=Fernet.generate_key().decode())
    assert wrong.returncode == 2 and "could not be decrypted" in wrong.stderr

    async def read_with_new_key() -> str:
        configure(K2)
        database = await open_database(url)
        try:
            async with database.session() as session:
                return str((await session.scalars(select(Handoff.reason))).one())
        finally:
            await database.aclose()

    assert asyncio.run(read_with_new_key()) == "billing question"
    assert encryption.keyring().count == 1
