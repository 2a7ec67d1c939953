"""What every HTTP response and WebSocket of the API shares for safety: security headers (a
CSP without inline script, no framing, no sniffing, HSTS behind HTTPS), strict CORS, a check
against cross-site writes made with the session cookie, and the limits of a socket's messages.

The session cookie is SameSite=Strict already; the cross-site check is the second defence, for
browsers or setups where SameSite does not hold (a sibling subdomain counts as "same site").
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicebot.access.sessions import COOKIE
from voicebot.config import Settings

# Largest WebSocket message uvicorn accepts (`voicebot serve` passes it as ws_max_size): the
# biggest legitimate one is a second of softphone audio (32 kB); a larger one closes the socket
# with 1009 before it is read into memory.
WS_MAX_BYTES = 256 * 1024
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Pages served by FastAPI itself (Swagger UI, ReDoc) carry inline bootstrap scripts and load
# their bundles from a CDN: their CSP allows exactly those scripts, by hash.
_DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_DOCS_CDN = "https://cdn.jsdelivr.net"
# Pages another site may frame (the web chat widget's frame), within VOICEBOT_CHAT_ORIGINS.
FRAMED_PATHS = frozenset({"/chat"})
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def uvicorn_options() -> dict[str, Any]:
    """What `voicebot serve` (and the tests' servers) give uvicorn on top of host and port."""
    # No per-message compression: deflating every audio frame costs more CPU than it saves.
    return {"ws_per_message_deflate": False, "ws_max_size": WS_MAX_BYTES}


# -- origins -----------------------------------------------------------------------------------


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def origin_allowed(origin: str, host: str, settings: Settings) -> bool:
    """``origin`` is the API's own (its host as the browser addressed it) or an allowed one."""
    if not origin or origin == "null":
        return False
    if urlsplit(origin).netloc.lower() == host.lower():
        return True
    return _origin_of(origin) in {_origin_of(o) for o in settings.allowed_origins}


def socket_origin_allowed(headers: Mapping[str, str], settings: Settings) -> bool:
    """For WebSockets: a browser always sends Origin; a script without it has the password
    (or is the softphone's load generator) and gains nothing from a browser's cookie."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return origin_allowed(origin, headers.get("host", ""), settings)


# -- HTTP middleware ---------------------------------------------------------------------------


def content_security_policy(
    settings: Settings,
    *,
    docs: bool = False,
    docs_scripts: Iterable[str] = (),
    frame_ancestors: Iterable[str] = (),
) -> str:
    """The CSP. ``frame_ancestors``: who may frame the page (the chat page: the company's
    sites in ``VOICEBOT_CHAT_ORIGINS``); by default nobody."""
    connect = ["'self'"]
    livekit = settings.resolved_livekit_browser_url
    if livekit:
        # The agent's browser joins the caller's LiveKit room (WebSocket plus its HTTP checks).
        origin = _origin_of(livekit)
        connect.append(origin)
        connect.append(origin.replace("wss://", "https://").replace("ws://", "http://"))
    script = ["'self'"]
    style = ["'self'"]
    img = ["'self'", "data:"]
    font = ["'self'"]
    if docs:
        script += [_DOCS_CDN, *docs_scripts]
        # Swagger UI and ReDoc style their widgets inline and load ReDoc's fonts from Google.
        style += [_DOCS_CDN, "https://fonts.googleapis.com", "'unsafe-inline'"]
        font.append("https://fonts.gstatic.com")
        img.append("https://fastapi.tiangolo.com")
    return "; ".join(
        [
            "default-src 'self'",
            "font-src " + " ".join(font),
            "script-src " + " ".join(script),
            "style-src " + " ".join(style),
            "img-src " + " ".join(img),
            "media-src 'self' blob:",
            "connect-src " + " ".join(dict.fromkeys(connect)),
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors " + (" ".join(frame_ancestors) or "'none'"),
        ]
    )


def _script_hashes(body: bytes) -> list[str]:
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(body)
    ]


class SecurityMiddleware:
    """Security headers on every response, strict CORS, and the cross-site write check.

    CORS: only an origin in ``VOICEBOT_CORS_ORIGINS`` gets ``Access-Control-Allow-Origin``, and
    without credentials (a page elsewhere calls with the API token, never with an agent's
    cookie). A write with the session cookie whose Origin (or, without one, Referer) is another
    site's is refused 403; bearer-token requests carry no ambient credential and are exempt.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.policy = content_security_policy(settings)
        # The web chat page is framed by the company's site (the widget); every other page by
        # nobody. Its own pages (a test page, a help centre on this host) may frame it too.
        chat = settings.chat_origins
        self.chat_policy = content_security_policy(
            settings,
            frame_ancestors=["'self'", *dict.fromkeys(filter(None, map(_origin_of, chat)))],
        )
        self.cors = {_origin_of(o) for o in settings.cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        origin = headers.get("origin")
        cors_origin = _origin_of(origin) if origin else ""
        cors_ok = bool(cors_origin) and cors_origin in self.cors
        if method == "OPTIONS" and origin and "access-control-request-method" in headers:
            await self._preflight(send, cors_ok, origin)
            return
        refusal = self._cross_site_write(headers, method)
        if refusal is not None:
            await self._refuse(send, refusal, origin if cors_ok else None)
            return
        docs = scope["path"] in _DOCS_PATHS
        if docs:
            await self._docs_page(scope, receive, send, origin if cors_ok else None)
            return

        framed = scope["path"] in FRAMED_PATHS
        policy = self.chat_policy if framed else self.policy

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add_headers(message, policy, origin if cors_ok else None, framed=framed)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _cross_site_write(self, headers: Headers, method: str) -> str | None:
        if method not in UNSAFE_METHODS:
            return None
        if "authorization" in headers and self.settings.api_token is not None:
            # A bearer request is judged by its token alone (a wrong one is 401, never the
            # cookie's user); a page elsewhere cannot add the header without CORS allowing it.
            return None
        if f"{COOKIE}=" not in headers.get("cookie", ""):
            return None  # no ambient credential: a forged request is just an anonymous one
        source = headers.get("origin") or _origin_of(headers.get("referer", ""))
        if not source and "referer" not in headers and "origin" not in headers:
            # Browsers send Origin with every POST, PUT, PATCH and DELETE (fetch and forms
            # alike): a request with neither header is a script, which holds the cookie itself.
            return None
        if origin_allowed(source, headers.get("host", ""), self.settings):
            return None
        return (
            "cross-site request refused: a write with the session cookie must come from this "
            "server's own pages (or send 'Authorization: Bearer <VOICEBOT_API_TOKEN>')"
        )

    def _add_headers(
        self, message: Message, policy: str, cors_origin: str | None, *, framed: bool = False
    ) -> None:
        out = MutableHeaders(scope=message)
        out.setdefault("content-security-policy", policy)
        out.setdefault("x-content-type-options", "nosniff")
        if not framed:  # X-Frame-Options cannot name origins: CSP frame-ancestors does
            out.setdefault("x-frame-options", "DENY")
        out.setdefault("referrer-policy", "same-origin")
        out.setdefault("cross-origin-opener-policy", "same-origin")
        out.setdefault("permissions-policy", "camera=(), geolocation=(), microphone=(self)")
        if self.settings.secure_cookies:
            out.setdefault("strict-transport-security", "max-age=31536000; includeSubDomains")
        if cors_origin is not None:
            out["access-control-allow-origin"] = cors_origin
            out.add_vary_header("Origin")

    async def _preflight(self, send: Send, allowed: bool, origin: str) -> None:
        message: Message = {"type": "http.response.start", "status": 204 if allowed else 403}
        message["headers"] = []
        self._add_headers(message, self.policy, origin if allowed else None)
        out = MutableHeaders(scope=message)
        if allowed:
            out["access-control-allow-methods"] = "GET, POST, PUT, PATCH, DELETE"
            out["access-control-allow-headers"] = "Authorization, Content-Type"
            out["access-control-max-age"] = "600"
        refused = b'{"detail":"this origin is not allowed (VOICEBOT_CORS_ORIGINS)"}'
        body = b"" if allowed else refused
        if body:
            out["content-type"] = "application/json"
        out["content-length"] = str(len(body))
        await send(message)
        await send({"type": "http.response.body", "body": body})

    async def _refuse(self, send: Send, detail: str, cors_origin: str | None) -> None:
        body = json.dumps({"detail": detail}).encode()
        message: Message = {"type": "http.response.start", "status": 403, "headers": []}
        self._add_headers(message, self.policy, cors_origin)
        out = MutableHeaders(scope=message)
        out["content-type"] = "application/json"
        out["content-length"] = str(len(body))
        await send(message)
        await send({"type": "http.response.body", "body": body})

    async def _docs_page(
        self, scope: Scope, receive: Receive, send: Send, cors_origin: str | None
    ) -> None:
        """Swagger UI and ReDoc: the page is buffered (a few kB) so that its CSP can allow its
        own inline scripts by hash and nothing else inline."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                assert start is not None
                body = b"".join(chunks)
                policy = content_security_policy(
                    self.settings, docs=True, docs_scripts=_script_hashes(body)
                )
                self._add_headers(start, policy, cors_origin)
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, collect)


# -- WebSocket messages ------------------------------------------------------------------------


class MessageRate:
    """A per-connection token bucket for a socket's text messages: ``rate`` a second on
    average, ``burst`` at once. A browser page sends a handful a minute; a flood is a bug or an
    attack, and the socket is closed (1008) once ``burst`` messages more were refused."""

    rate = 20.0
    burst = 40

    def __init__(self) -> None:
        self.tokens = float(self.burst)
        self.refused = 0
        self._at = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused += 1
        return False

    @property
    def flooding(self) -> bool:
        return self.refused > self.burst


def too_many() -> str:
    """The close reason for a flooding socket (code 1008)."""
    return f"too many messages: at most {MessageRate.rate:g} a second"


async def next_text(
    websocket: WebSocket,
    rate: MessageRate,
    error: Callable[[str], None],
    close: Callable[[int, str], Awaitable[None]],
) -> str | None:
    """The socket's next text message within ``rate``; None once the socket is gone (or was
    closed for flooding). A binary frame where text is expected, and a message over the rate,
    are answered with ``error`` and skipped: one bad message does not end the page's session."""
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        if not rate.allow():
            if rate.flooding:
                await close(1008, too_many())
                return None
            if rate.refused == 1:
                error(too_many() + "; this message and the next ones were dropped")
            continue
        rate.refused = 0
        text = message.get("text")
        if text is None:
            error("messages are JSON text, not binary")
            continue
        return str(text)


# -- the OpenAPI document ----------------------------------------------------------------------


def declare_error_shapes(app: FastAPI) -> None:
    """The OpenAPI document as the API answers: a 422 carries either FastAPI's list of field
    errors or one message (a value the route itself refused), so clients and the fuzz test
    (tests/security/test_fuzz.py) check answers against what is really sent."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if error is not None:
            error["properties"]["detail"] = {
                "anyOf": [
                    {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
                    {"type": "string"},
                ],
                "title": "Detail",
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
