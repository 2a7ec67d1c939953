"""Sign-in over real HTTP: the failure limit per account and per address (429, Retry-After),
a new session id at every sign-in, sign-out, changing and resetting a password."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import closing

import httpx

from tests.security.conftest import PASSWORD, Server, Start
from voicebot.access.sessions import COOKIE, MAX_FAILURES


@contextlib.contextmanager
def from_address(server: Server, address: str) -> Iterator[httpx.Client]:
    """A client whose requests come from ``address`` (any 127.x.y.z is this machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    with server.client(transport=transport) as client:
        yield client


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def as_session(server: Server, token: str) -> httpx.Client:
    return server.client(headers={"Cookie": f"{COOKIE}={token}"})


def test_the_failure_limit_is_per_account(serve: Start) -> None:
    server = serve(knowledge=False)
    # Each wrong try from another address: only the account's count reaches the limit.
    for n in range(MAX_FAILURES):
        with from_address(server, f"127.0.1.{n + 1}") as client:
            assert login(client, "agent", "wrong password").status_code == 401
    with from_address(server, "127.0.2.1") as client:
        locked = login(client, "agent")  # the right password, from a fresh address
        assert locked.status_code == 429, locked.text
        assert int(locked.headers["Retry-After"]) > 0
        assert "try again in" in locked.json()["detail"]
        assert COOKIE not in locked.cookies
        # the same address signs another account in: the lock is the account's
        assert login(client, "agent2").status_code == 200


def test_the_failure_limit_is_per_address(serve: Start) -> None:
    server = serve(knowledge=False)
    with from_address(server, "127.0.3.1") as client:
        # Wrong passwords for different names (a password sprayed across accounts).
        for n in range(MAX_FAILURES):
            assert login(client, f"nobody{n}", "wrong password").status_code == 401
        limited = login(client, "agent")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    with from_address(server, "127.0.3.2") as client:
        assert login(client, "agent").status_code == 200  # the account is not locked


def test_sign_in_rotates_the_session_and_sign_out_ends_it(serve: Start) -> None:
    server = serve(knowledge=False)
    with server.client() as client:
        assert login(client, "agent").status_code == 200
        first = client.cookies[COOKIE]
        assert login(client, "agent").status_code == 200  # sent with the first cookie
        second = client.cookies[COOKIE]
        assert second != first
        with as_session(server, first) as old:
            assert old.get("/api/auth/me").status_code == 401  # ended, not just replaced
        with as_session(server, second) as new:
            assert new.get("/api/auth/me").status_code == 200
            assert new.post("/api/auth/logout").status_code == 204
            assert new.get("/api/auth/me").status_code == 401
    # A session id planted before sign-in (fixation) does not become a signed-in one.
    with server.client(headers={"Cookie": f"{COOKIE}=planted-by-someone-else"}) as client:
        answer = login(client, "agent")
        assert answer.status_code == 200
        assert answer.cookies[COOKIE] != "planted-by-someone-else"


def test_changing_the_password_ends_the_other_sessions(serve: Start) -> None:
    server = serve(knowledge=False)
    with (
        closing(server.signed_in("agent")) as here,
        closing(server.signed_in("agent")) as elsewhere,
    ):
        change = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
        wrong = here.post("/api/auth/password", json=change | {"current_password": "nope"})
        assert wrong.status_code == 403 and "current password" in wrong.json()["detail"]
        short = here.post("/api/auth/password", json=change | {"new_password": "short"})
        assert short.status_code == 422
        assert here.post("/api/auth/password", json=change).status_code == 204
        assert here.get("/api/auth/me").status_code == 200  # this session goes on
        assert elsewhere.get("/api/auth/me").status_code == 401  # the other one ended
    with server.client() as client:
        assert login(client, "agent").status_code == 401  # the old password
        assert login(client, "agent", "a brand new passphrase").status_code == 200
    with server.token_client() as token:
        refused = token.post(
            "/api/auth/password",
            json={"current_password": "whatever", "new_password": "another passphrase"},
        )
        assert refused.status_code == 403


def test_wrong_current_passwords_count_towards_the_limit(serve: Start) -> None:
    server = serve(knowledge=False)
    with closing(server.signed_in("agent")) as client:
        body = {"current_password": "wrong", "new_password": "a brand new passphrase"}
        answers = [client.post("/api/auth/password", json=body) for _ in range(MAX_FAILURES + 1)]
        assert [a.status_code for a in answers] == [403] * MAX_FAILURES + [429]
        assert int(answers[-1].headers["Retry-After"]) > 0


def test_an_admin_reset_or_disable_signs_the_user_out(serve: Start) -> None:
    server = serve(knowledge=False)
    with closing(server.signed_in("admin")) as admin, closing(server.signed_in("agent")) as agent:
        agent_id = agent.get("/api/auth/me").json()["id"]
        reset = admin.patch(f"/api/agents/{agent_id}", json={"password": "reset by the admin"})
        assert reset.status_code == 200, reset.text
        assert agent.get("/api/auth/me").status_code == 401
        assert admin.get("/api/auth/me").status_code == 200
    with (
        closing(server.signed_in("agent", "reset by the admin")) as agent,
        closing(server.signed_in("admin")) as admin,
    ):
        agent_id = agent.get("/api/auth/me").json()["id"]
        assert admin.patch(f"/api/agents/{agent_id}", json={"active": False}).status_code == 200
        assert agent.get("/api/auth/me").status_code == 401
