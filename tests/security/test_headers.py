"""The second defence against cross-site writes, strict CORS and the security headers, over
real HTTP; and no page of the app carries inline script for the CSP to allow."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path

import pytest

from tests.security.conftest import TOKEN, Start, seed
from tests.security.role_matrix import ROWS
from voicebot.api.security import FRAMED_PATHS, content_security_policy
from voicebot.config import Settings

STATIC = Path(__file__).resolve().parents[2] / "voicebot" / "api" / "static"
EVIL = "https://evil.example"


def test_cookie_writes_from_another_site_are_refused(serve: Start) -> None:
    server = serve(knowledge=False, allowed_origins=["https://desk.example.com"])
    ids = seed(server)
    accept = f"/api/entries/{ids['mine_entry']}/accept"
    with closing(server.signed_in("agent")) as agent:
        host = server.url
        for headers in (
            {"Origin": EVIL},
            {"Origin": "null"},  # a sandboxed frame or a file:// page
            {"Referer": f"{EVIL}/page"},  # no Origin: the Referer's origin counts
            {"Origin": "http://127.0.0.1.evil.example"},
        ):
            refused = agent.post(accept, headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert "cross-site request refused" in refused.json()["detail"]
            assert refused.headers["x-content-type-options"] == "nosniff"
        # Its own pages, an allowed desktop origin, and a script without either header pass
        # the check (and get the route's own answer: the entry is not offered to this agent).
        for headers in (
            {"Origin": host},
            {"Referer": f"{host}/desktop"},
            {"Origin": "https://desk.example.com"},
            {},
        ):
            assert agent.post(accept, headers=headers).status_code == 409, headers
        # Reads are not writes; the agent is still signed in.
        assert agent.get("/api/auth/me", headers={"Origin": EVIL}).status_code == 200
        # A cross-site sign-out does not sign the agent out.
        assert agent.post("/api/auth/logout", headers={"Origin": EVIL}).status_code == 403
        assert agent.get("/api/auth/me").status_code == 200
    # The API token is no ambient credential: a bearer request from anywhere is checked as one.
    with server.token_client() as token:
        created = token.post(
            "/api/callbacks",
            json={"number": "+447700900999", "queue": "general"},
            headers={"Origin": EVIL},
        )
        assert created.status_code == 201


def test_cors_answers_only_listed_origins(serve: Start) -> None:
    listed = "https://crm.example.com"
    server = serve(knowledge=False, cors_origins=[listed])
    with server.client() as client:
        plain = client.get("/health", headers={"Origin": EVIL})
        assert plain.status_code == 200
        assert "access-control-allow-origin" not in plain.headers
        allowed = client.get("/health", headers={"Origin": listed})
        assert allowed.headers["access-control-allow-origin"] == listed
        assert "access-control-allow-credentials" not in allowed.headers
        assert "Origin" in allowed.headers["vary"]
        preflight = {"Access-Control-Request-Method": "POST"}
        refused = client.options("/api/callbacks", headers=preflight | {"Origin": EVIL})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        ok = client.options("/api/callbacks", headers=preflight | {"Origin": listed})
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == listed
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "Authorization" in ok.headers["access-control-allow-headers"]
    # Nothing listed (the default): no origin is ever allowed.
    default = serve(knowledge=False)
    with default.client() as client:
        answer = client.get("/health", headers={"Origin": listed})
        assert "access-control-allow-origin" not in answer.headers


def _get_urls() -> list[str]:
    urls = []
    for row in ROWS:
        if row.method in ("GET", "MOUNT") and "{" not in (row.url or row.route):
            urls.append(row.url or row.route)
    return urls


@pytest.mark.parametrize("secure", [False, True])
def test_every_response_carries_the_security_headers(serve: Start, secure: bool) -> None:
    server = serve(secure_cookies=secure)
    urls = [*_get_urls(), "/api/knowledge/documents/nothing.md", "/no/such/page"]
    with server.client() as anonymous, server.token_client() as token:
        answers = [anonymous.get(url) for url in urls] + [token.get(url) for url in urls]
        answers.append(anonymous.post("/api/auth/login", json={"username": "x", "password": "y"}))
    statuses = set()
    for answer in answers:
        headers = answer.headers
        where = f"{answer.request.url.path} ({answer.status_code})"
        statuses.add(answer.status_code)
        csp = headers.get("content-security-policy", "")
        script = next(d for d in csp.split("; ") if d.startswith("script-src"))
        assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, where
        assert headers["x-content-type-options"] == "nosniff", where
        assert headers["referrer-policy"] == "same-origin", where
        if answer.request.url.path in FRAMED_PATHS:
            # the web chat, framed by the widget: only by itself and VOICEBOT_CHAT_ORIGINS
            assert csp.endswith("frame-ancestors 'self'"), where
            assert "x-frame-options" not in headers, where
        else:
            assert "frame-ancestors 'none'" in csp, where
            assert headers["x-frame-options"] == "DENY", where
        if secure:
            assert headers["strict-transport-security"].startswith("max-age="), where
        else:
            assert "strict-transport-security" not in headers, where
    assert {200, 401, 404} <= statuses


def test_the_docs_pages_allow_only_their_own_inline_scripts(serve: Start) -> None:
    server = serve(knowledge=False)
    with server.client() as client:
        assert re.search(r"<script>\s*\S", client.get("/docs").text)  # Swagger UI's bootstrap
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            page = client.get(path)
            csp = page.headers["content-security-policy"]
            script = next(d for d in csp.split("; ") if d.startswith("script-src"))
            inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
            assert script.count("'sha256-") == len(inline), (path, script)
            assert "'unsafe-inline'" not in script


def test_the_app_pages_have_no_inline_script() -> None:
    pages = sorted(STATIC.rglob("*.html"))
    assert len(pages) >= 3
    for page in pages:
        html = page.read_text(encoding="utf-8")
        scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S | re.I)
        assert all(not body.strip() for body in scripts), f"inline <script> in {page}"
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), f"inline event handler in {page}"
        assert "javascript:" not in html.lower(), f"javascript: URL in {page}"
        assert not re.search(r"\sstyle\s*=", html, re.I), f"inline style in {page}"


def test_the_policy_lets_the_desktop_reach_livekit() -> None:
    settings = Settings(livekit_url="wss://lk.example.com", livekit_api_key="k")
    csp = content_security_policy(settings)
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src"))
    assert connect == "connect-src 'self' wss://lk.example.com https://lk.example.com"
    assert TOKEN not in csp
