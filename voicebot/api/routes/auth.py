"""Sign-in for the agent desktop: a session cookie (HttpOnly, SameSite=Strict), a generic error
for a wrong name or password, and a limit on failed tries per name and per address."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from voicebot.access.audit import audit
from voicebot.access.sessions import (
    COOKIE,
    SessionExpired,
    create_session,
    end_session,
    end_user_sessions,
    principal_for,
    retry_after,
)
from voicebot.access.users import MIN_PASSWORD, UserError, check_password, set_password
from voicebot.api.deps import Db, User, client_ip, get_settings
from voicebot.queues.service import QueueError
from voicebot.store.models import Agent

router = APIRouter(prefix="/api/auth", tags=["sign-in"])

_WRONG = "wrong username or password"


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    id: int | None
    username: str
    display_name: str
    role: str
    skills: dict[str, int]


def _user_out(agent: Agent) -> UserOut:
    return UserOut(
        id=agent.id,
        username=agent.username,
        display_name=agent.display_name,
        role=agent.role,
        skills=dict(agent.skills),
    )


@router.post("/login", response_model=UserOut, responses={401: {}, 429: {}})
async def login(body: Credentials, request: Request, response: Response, db: Db) -> Any:
    ip = client_ip(request)
    wait = await retry_after(db, body.username, ip)
    if wait:
        await audit(db, "sign_in", actor=body.username, success=False, ip=ip, limited=True)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many attempts; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    async with db.session() as session:
        agent = await session.scalar(select(Agent).where(Agent.username == body.username))
    ok = await check_password(agent.password_hash if agent else None, body.password)
    if agent is None or not ok or not agent.active:
        await audit(db, "sign_in", actor=body.username, success=False, ip=ip)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=_WRONG)
    # A new session id at every sign-in: a session id planted in the browser before (session
    # fixation), or left from the previous user of a shared desk, ends here.
    await end_session(db, request.cookies.get(COOKIE))
    _set_cookie(request, response, await create_session(db, agent.id, _hours(request), ip))
    await audit(db, "sign_in", actor=agent.username, actor_id=agent.id, ip=ip)
    return _user_out(agent)


def _hours(request: Request) -> float:
    return get_settings(request).session_hours


def _set_cookie(request: Request, response: Response, token: str) -> None:
    settings = get_settings(request)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=MIN_PASSWORD, max_length=1024)


@router.post(
    "/password",
    status_code=204,
    responses={
        401: {"description": "Not signed in."},
        403: {"description": "The current password is wrong, or this is the API token."},
        422: {"description": "The new password is not acceptable."},
        429: {"description": "Too many wrong passwords; see Retry-After."},
    },
)
async def change_password(body: PasswordChange, request: Request, db: Db, user: User) -> None:
    """Change the signed-in user's own password. Every other session of theirs ends (a
    browser left signed in elsewhere, or a stolen session); this one goes on."""
    if user.id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="the API token has no password")
    ip = client_ip(request)
    wait = await retry_after(db, user.username, ip)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many attempts; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    async with db.session() as session:
        agent = await session.get(Agent, user.id)
    if agent is None or not await check_password(agent.password_hash, body.current_password):
        await audit(
            db, "password_change", actor=user.username, actor_id=user.id, success=False, ip=ip
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="the current password is wrong")
    if body.new_password == body.current_password:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="the new password must differ from the current one",
        )
    try:
        await set_password(db, agent.username, body.new_password)
    except UserError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    ended = await end_user_sessions(db, user.id, keep=request.cookies.get(COOKIE))
    await audit(
        db,
        "password_change",
        actor=user.username,
        actor_id=user.id,
        ip=ip,
        other_sessions_ended=ended,
    )


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response, db: Db) -> None:
    """Ends the session; an agent who signs out goes offline (unless still on a call)."""
    token = request.cookies.get(COOKIE)
    try:
        who = await principal_for(db, token)
    except SessionExpired:
        who = None
    await end_session(db, token)
    response.delete_cookie(COOKIE, path="/")
    service = request.app.state.queues
    if who is not None and who.id is not None and service is not None:
        # A busy agent stays busy: the call goes on, and they sign in again to wrap it up.
        with contextlib.suppress(QueueError):
            await service.set_state(who.id, "offline", reason="signed out")
        await audit(db, "sign_out", actor=who.username, actor_id=who.id, ip=client_ip(request))


@router.get("/me", response_model=UserOut, responses={401: {}})
async def me(user: User, db: Db) -> Any:
    if user.id is None:
        return UserOut(
            id=None, username=user.username, display_name="API token", role=user.role, skills={}
        )
    async with db.session() as session:
        agent = await session.get(Agent, user.id)
    if agent is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="sign in again")
    return _user_out(agent)
