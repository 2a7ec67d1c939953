"""Every route and WebSocket of the API called by each kind of caller (the table in
role_matrix.py), against a real server; and no route of the app is left out of the table."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
import websockets
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount

from tests.security.conftest import PASSWORD, TOKEN, Server, Start, clients, seed
from tests.security.role_matrix import ROWS, WHO, Row

SIGN_IN = {"agent": "agent", "agent2": "agent2", "supervisor": "supervisor", "admin": "admin"}


def app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of everything the app serves: HTTP methods, WS, MOUNT."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = getattr(context, "original_route", context)
        path = str(context.path)
        if isinstance(route, APIWebSocketRoute):
            found.add(("WS", path))
        elif isinstance(route, Mount):
            found.add(("MOUNT", path))
        else:
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, path))
    return found


def test_every_route_of_the_app_is_in_the_table(serve: Start) -> None:
    server = serve(knowledge=False)
    table = {(row.method, row.route) for row in ROWS}
    missing = sorted(app_routes(server.app) - table)
    assert not missing, (
        "routes missing from tests/security/role_matrix.py (add a row with who may call "
        f"them): {missing}"
    )
    assert len(table) == len(ROWS), "a route is in the table twice"


def _http(server: Server, client: httpx.Client, who: str, row: Row) -> int:
    url = row.url.format(**server.ids) if row.url else row.route
    kwargs: dict[str, Any] = {}
    if row.body is not None:
        kwargs["json"] = row.body(who)
    if row.files:
        kwargs["files"] = {"file": (f"upload-{who}.md", b"# Upload\n\nSome text.\n", "text/plain")}
    if row.anew:
        with server.client() as anew:
            return anew.request(row.method, url, **kwargs).status_code
    if row.fresh and who in SIGN_IN:
        with contextlib.closing(server.signed_in(SIGN_IN[who])) as fresh:
            return fresh.request(row.method, url, **kwargs).status_code
    method = "GET" if row.method == "MOUNT" else row.method
    return client.request(method, url, **kwargs).status_code


async def _socket(server: Server, client: httpx.Client, who: str, row: Row) -> str:
    url = server.ws_url + (row.url.format(**server.ids) if row.url else row.route)
    headers = {}
    if who == "token":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif who != "anonymous":
        headers["Cookie"] = f"voicebot_session={client.cookies['voicebot_session']}"
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=20) as ws:
            try:
                while True:  # an error message before a close is part of refusing
                    first = await asyncio.wait_for(ws.recv(), timeout=20)
                    if not (isinstance(first, str) and json.loads(first)["type"] == "error"):
                        return "open"
            except websockets.ConnectionClosed as closed:
                return f"close {closed.rcvd.code if closed.rcvd else 1006}"
    except websockets.InvalidStatus as exc:
        return f"http {exc.response.status_code}"


def test_role_matrix(serve: Start) -> None:
    server = serve()
    seed(server)
    served = app_routes(server.app)
    rows = [row for row in ROWS if (row.method, row.route) in served]
    wrong: list[str] = []
    cells = 0
    with clients(server) as by_who:
        for row in rows:
            for who, expected in zip(WHO, row.expect, strict=True):
                client = by_who[who]
                if row.method == "WS":
                    got: int | str = asyncio.run(_socket(server, client, who, row))
                else:
                    got = _http(server, client, who, row)
                cells += 1
                if got != expected:
                    wrong.append(f"{row.method} {row.route} as {who}: {got}, expected {expected}")
    print(f"role matrix: {cells} cells, {cells - len(wrong)} as expected")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("what", ["handoff", "call", "recording", "entry"])
def test_an_agent_cannot_read_another_agents_rows_by_id(serve: Start, what: str) -> None:
    """The matrix's agent2 column, one by one: refused, and nothing of the row in the answer."""
    server = serve(knowledge=False)
    ids = seed(server)
    url = {
        "handoff": f"/api/handoffs/{ids['mine_handoff']}",
        "call": f"/api/calls/{ids['call']}",
        "recording": f"/api/calls/{ids['call']}/recordings/{ids['recording']}",
        "entry": f"/api/entries/{ids['mine_entry']}/livekit",
    }[what]
    with contextlib.closing(server.signed_in("agent2")) as other:
        response = other.request("POST" if what == "entry" else "GET", url)
    assert response.status_code in (403, 404, 409), response.text
    assert ids["mine_handoff"] not in response.text and "+4477" not in response.text
    with contextlib.closing(server.signed_in("agent", PASSWORD)) as owner:
        if what == "handoff":
            assert owner.get(url).status_code == 200
