"""Who may call what: every HTTP route and WebSocket of the API, and the answer each kind of
caller gets. tests/security/test_role_matrix.py calls every cell against a real server and
fails when a route of the app is not in this table; ``python -m tests.security.role_matrix``
prints it as the Markdown table of docs/security.md.

Callers: anonymous; an agent; a second agent (``agent2``, who must not read the first one's
rows by id); a supervisor; an admin; the API token (``Authorization: Bearer``). HTTP cells are
status codes; WebSocket cells are ``open`` (the socket's first message arrived), ``close N``
(closed with code N) or ``http N`` (the handshake refused).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.queues.packets import make_packet

WHO = ("anonymous", "agent", "agent2", "supervisor", "admin", "token")
Cell = int | str


@dataclass(frozen=True)
class Row:
    method: str  # GET ..., WS for a WebSocket, MOUNT for static files
    route: str  # the path as the app declares it
    expect: tuple[Cell, ...]
    url: str = ""  # with {ids}; default: the route
    body: Callable[[str], dict[str, Any]] | None = None  # by caller, for a unique payload
    files: bool = False  # a multipart upload
    fresh: bool = False  # each caller signs in anew (the call ends the session)
    anew: bool = False  # a new client without credentials (the call signs someone in)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert len(self.expect) == len(WHO), self


def same(cell: Cell) -> tuple[Cell, ...]:
    return (cell,) * len(WHO)


def _packet(_: str) -> dict[str, Any]:
    return make_packet("general").model_dump(mode="json")


def _user(who: str) -> dict[str, Any]:
    return {"username": f"new-{who}-{uuid.uuid4().hex[:6]}", "password": "a long password"}


def _callback(_: str) -> dict[str, Any]:
    return {"number": "+447700900999", "queue": "general"}


PUBLIC = same(200)
SIGNED_IN = (401, 200, 200, 200, 200, 200)
SUPERVISORS = (401, 403, 403, 200, 200, 200)
ADMINS = (401, 403, 403, 403, 200, 200)
AGENT_ACTION = (401, 409, 409, 409, 409, 403)  # a signed-in user's own offer/call, else 409
TOKEN_WRITES = (401, 401, 401, 401, 401)  # knowledge writes take the API token only

ROWS: tuple[Row, ...] = (
    # -- documentation and health
    Row("GET", "/openapi.json", PUBLIC),
    Row("GET", "/docs", PUBLIC),
    Row("GET", "/docs/oauth2-redirect", PUBLIC),
    Row("GET", "/redoc", PUBLIC),
    Row("GET", "/health", PUBLIC),
    Row("GET", "/metrics", SUPERVISORS),
    # -- pages and their static files (public: they show the sign-in form)
    Row("GET", "/phone", PUBLIC),
    Row("GET", "/chat", PUBLIC),
    Row("GET", "/chat/widget.js", PUBLIC),
    Row("GET", "/desktop", PUBLIC),
    Row("GET", "/supervisor", PUBLIC),
    Row("MOUNT", "/phone/static", PUBLIC, url="/phone/static/phone.js"),
    Row("MOUNT", "/chat/static", PUBLIC, url="/chat/static/chat.js"),
    Row("MOUNT", "/desktop/static", PUBLIC, url="/desktop/static/desktop.js"),
    Row("MOUNT", "/common/static", PUBLIC, url="/common/static/session.js"),
    Row("MOUNT", "/supervisor/static", PUBLIC, url="/supervisor/static/supervisor.js"),
    # -- knowledge: the bot's public answers are readable; writes need the API token
    Row("GET", "/api/knowledge/documents", PUBLIC),
    Row(
        "GET",
        "/api/knowledge/documents/{name:path}",
        PUBLIC,
        url="/api/knowledge/documents/roaming.md",
    ),
    Row("POST", "/api/knowledge/documents", (*TOKEN_WRITES, 201), files=True),
    Row(
        "DELETE",
        "/api/knowledge/documents/{name:path}",
        (*TOKEN_WRITES, 204),
        url="/api/knowledge/documents/top-up.txt",
    ),
    Row("POST", "/api/knowledge/ingest", (*TOKEN_WRITES, 200)),
    Row("GET", "/api/knowledge/search", PUBLIC, url="/api/knowledge/search?q=paper+bill"),
    Row("GET", "/api/knowledge/answer", PUBLIC, url="/api/knowledge/answer?q=paper+bill"),
    # -- agent assist: the desktop's report of a suggestion drawn, and the latency figures
    Row(
        "POST",
        "/api/assist/rendered",
        (401, 404, 404, 404, 404, 404),
        body=lambda _: {"line_id": "0123456789abcdef", "rendered_at": 1.0e12},
        note="404: no suggestion with that line was sent to the caller's desktop",
    ),
    Row("GET", "/api/assist/latency", SUPERVISORS),
    # -- sign-in
    Row(
        "POST",
        "/api/auth/login",
        PUBLIC,
        body=lambda _: {"username": "lena", "password": "correct horse battery"},
        anew=True,
        note="open to all (rate-limited); a cookie sent along is ended",
    ),
    Row("POST", "/api/auth/logout", same(204), fresh=True),
    Row("GET", "/api/auth/me", SIGNED_IN),
    Row(
        "POST",
        "/api/auth/password",
        (401, 422, 422, 422, 422, 422),
        body=lambda _: {"current_password": "x", "new_password": "short"},
        note="422: the new password is too short (the caller is checked first)",
    ),
    # -- handoffs and queue entries
    Row("POST", "/api/handoffs", (401, 403, 403, 201, 201, 201), body=_packet),
    Row("GET", "/api/handoffs", SUPERVISORS),
    Row(
        "GET",
        "/api/handoffs/{handoff_id}",
        (401, 200, 404, 200, 200, 200),
        url="/api/handoffs/{mine_handoff}",
        note="agent2: 404, another agent's packet is not theirs (and not told apart from none)",
    ),
    Row("GET", "/api/reports/handoffs.csv", SUPERVISORS),
    Row(
        "POST",
        "/api/entries/{entry_id}/accept",
        AGENT_ACTION,
        url="/api/entries/{mine_entry}/accept",
    ),
    Row(
        "POST",
        "/api/entries/{entry_id}/decline",
        AGENT_ACTION,
        url="/api/entries/{mine_entry}/decline",
    ),
    Row("POST", "/api/entries/{entry_id}/end", AGENT_ACTION, url="/api/entries/{mine_entry}/end"),
    Row(
        "POST",
        "/api/entries/{entry_id}/wrap-up",
        AGENT_ACTION,
        url="/api/entries/{mine_entry}/wrap-up",
        body=lambda _: {"code": "resolved"},
    ),
    Row(
        "POST",
        "/api/entries/{entry_id}/livekit",
        AGENT_ACTION,
        url="/api/entries/{mine_entry}/livekit",
        note="409 for agent too: the entry is theirs but not connected",
    ),
    Row(
        "POST",
        "/api/desktop/chats/{entry_id}/messages",
        (401, 404, 404, 404, 404, 403),
        url="/api/desktop/chats/{mine_entry}/messages",
        body=lambda who: {"text": f"hello from {who}"},
        note="404: that entry is a call, not a chat; the token is no agent (403). Who may "
        "write in which chat: tests/queues/test_chat_desktop.py",
    ),
    Row(
        "POST",
        "/api/entries/{entry_id}/abandon",
        (401, 403, 403, 200, 200, 200),
        url="/api/entries/{spare_entry}/abandon",
    ),
    # -- queues, agents, callbacks, audit
    Row("GET", "/api/queues", SIGNED_IN),
    Row(
        "GET",
        "/api/queues/{name}",
        (401, 404, 200, 200, 200, 200),
        url="/api/queues/billing",
        note="agent: 404, a queue they have no skills for",
    ),
    Row("GET", "/api/agents", SUPERVISORS),
    Row("POST", "/api/agents", (401, 403, 403, 403, 201, 201), body=_user),
    Row(
        "PATCH",
        "/api/agents/{agent_id}",
        ADMINS,
        url="/api/agents/{carol_id}",
        body=lambda who: {"display_name": f"Carol ({who})"},
    ),
    Row("POST", "/api/callbacks", (401, 403, 403, 201, 201, 201), body=_callback),
    Row("GET", "/api/callbacks", SUPERVISORS),
    Row("GET", "/api/audit", ADMINS),
    # -- reports, forecast, calls, recordings, wallboard
    Row("GET", "/api/forecast", SUPERVISORS),
    Row("GET", "/api/reports/calls", SUPERVISORS),
    Row("GET", "/api/reports/intervals", SUPERVISORS),
    Row("GET", "/api/reports/bot", SUPERVISORS),
    Row("GET", "/api/calls", SUPERVISORS),
    Row("GET", "/api/calls/{call_id}", SUPERVISORS, url="/api/calls/{call}"),
    Row(
        "GET",
        "/api/calls/{call_id}/recordings/{name}",
        SUPERVISORS,
        url="/api/calls/{call}/recordings/{recording}",
    ),
    Row("GET", "/api/supervisor/wallboard", SUPERVISORS),
    # -- WebSockets (the browser pages' own: the session cookie, not the token)
    Row(
        "WS",
        "/phone/ws",
        same("close 1011"),
        note="the public softphone (a caller needs no account); 1011: no bot loaded here",
    ),
    Row(
        "WS",
        "/api/chat/ws",
        same("close 1011"),
        note="the public web chat (a customer needs no account); 1011: no bot loaded here",
    ),
    Row("WS", "/api/desktop/ws", ("close 4401", "open", "open", "open", "open", "close 4401")),
    Row(
        "WS",
        "/api/desktop/audio/{entry_id}",
        ("close 4401", "http 403", "http 403", "http 403", "http 403", "close 4401"),
        url="/api/desktop/audio/{mine_entry}",
        note="refused (1008 before the handshake) unless the call is connected to the agent",
    ),
    Row(
        "WS",
        "/api/supervisor/ws",
        ("close 4401", "close 4403", "close 4403", "open", "open", "close 4401"),
    ),
    # -- other parts' routes, when they are in the app
    Row(
        "POST",
        "/api/privacy/erase",
        (401, 403, 403, 403, 200, 200),
        body=lambda _: {"caller": "+447700900555"},
        note="erases a caller's data (a number with none here)",
    ),
    Row("POST", "/api/livekit/webhook", same(401), note="signed by LiveKit, not by a caller"),
    Row(
        "GET",
        "/api/customers/{customer_id}/contacts",
        (401, 200, 404, 200, 200, 200),
        url="/api/customers/tel:+447700900123/contacts",
        note="agent2: 404, no contact of that customer was offered to or held by them",
    ),
    Row(
        "POST",
        "/api/messaging/inbound",
        same(401),
        body=lambda _: {"id": "m1", "from": "+447700900123", "text": "hi"},
        note="signed by the messaging gateway (VOICEBOT_MESSAGING_SECRET), not by a caller",
    ),
)


def markdown(rows: tuple[Row, ...] = ROWS) -> str:
    head = "| Method | Route | " + " | ".join(WHO) + " | Note |"
    lines = [head, "|" + "---|" * (len(WHO) + 3)]
    for row in rows:
        cells = " | ".join(str(c) for c in row.expect)
        lines.append(f"| {row.method} | `{row.route}` | {cells} | {row.note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
    print(f"\n{len(ROWS)} routes x {len(WHO)} callers = {len(ROWS) * len(WHO)} cells")
