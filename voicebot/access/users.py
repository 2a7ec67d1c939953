"""Users (the ``agents`` table: agents take calls; supervisors and admins see more) and their
passwords, hashed with argon2id. A sign-in for an unknown name still costs one hash, so the
time taken does not tell which names exist."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from voicebot.store.db import Database
from voicebot.store.models import ROLES, Agent

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_SKILL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MIN_PASSWORD = 8


class UserError(ValueError):
    """Bad input for a user; the message says what to fix."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def parse_skills(text: str | None) -> dict[str, int]:
    """``"billing:7,general"`` -> ``{"billing": 7, "general": 5}`` (proficiency 1-10)."""
    skills: dict[str, int] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, level = part.partition(":")
        name = name.strip()
        if not _SKILL.match(name):
            raise UserError(f"'{name}' is not a skill name (letters, digits, _ and -)")
        try:
            value = int(level) if level.strip() else 5
        except ValueError:
            raise UserError(f"the proficiency of '{name}' must be a number 1-10") from None
        if not 1 <= value <= 10:
            raise UserError(f"the proficiency of '{name}' must be 1-10, got {value}")
        skills[name] = value
    return skills


def validate_skills(skills: dict[str, Any]) -> dict[str, int]:
    return parse_skills(",".join(f"{k}:{v}" for k, v in skills.items()))


async def check_password(password_hash: str | None, password: str) -> bool:
    """verify_password, off the event loop."""
    return await asyncio.to_thread(verify_password, password_hash, password)


async def add_user(
    db: Database,
    username: str,
    password: str,
    *,
    role: str = "agent",
    display_name: str | None = None,
    skills: dict[str, int] | None = None,
) -> Agent:
    if not _USERNAME.match(username):
        raise UserError("a user name is 1-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise UserError(f"the role must be one of {', '.join(ROLES)}, got '{role}'")
    # argon2 takes ~150 ms of CPU on purpose: off the event loop, or every desktop stalls.
    password_hash = await asyncio.to_thread(hash_password, password)
    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as session:
        exists = await session.scalar(select(Agent.id).where(Agent.username == username))
        if exists is not None:
            raise UserError(f"the user '{username}' exists already")
        agent = Agent(
            username=username,
            display_name=display_name or username,
            role=role,
            password_hash=password_hash,
            skills=dict(skills or {}),
            active=True,
            state="offline",
            state_since=now,
            created_at=now,
        )
        session.add(agent)
    return agent


async def set_password(db: Database, username: str, password: str) -> None:
    password_hash = await asyncio.to_thread(hash_password, password)
    async with db.transaction() as session:
        agent = await session.scalar(select(Agent).where(Agent.username == username))
        if agent is None:
            raise UserError(f"no user '{username}'")
        agent.password_hash = password_hash
