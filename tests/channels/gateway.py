"""A fake SMS/WhatsApp gateway on loopback speaking voicebot's messaging contract: it receives
the outbound POSTs (checking their signature) and sends signed inbound messages."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from voicebot.actions.signing import HEADER, SignatureError, sign, verify


class FakeGateway:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.rejected: list[str] = []  # why a POST's signature was refused
        self.down = False  # answer 503, as a gateway in an outage
        self.attempts = 0
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with gateway._lock:
                    gateway.attempts += 1
                    if gateway.down:
                        self._answer(503)
                        return
                    try:
                        verify(body, self.headers.get(HEADER), gateway.secret)
                    except SignatureError as exc:
                        gateway.rejected.append(str(exc))
                        self._answer(401)
                        return
                    gateway.received.append(json.loads(body))
                self._answer(200)

            def _answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/outbound"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def messages_to(self, number: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.received if m["to"] == number]

    def wait_for(
        self, check: Callable[[list[dict[str, Any]]], bool], within: float = 60
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                seen = list(self.received)
            if check(seen):
                return seen
            assert time.monotonic() < deadline, f"the gateway did not get it; it has {seen}"
            time.sleep(0.05)

    def inbound(
        self,
        base_url: str,
        text: str,
        *,
        sender: str = "+447700900123",
        message_id: str | None = None,
        secret: str | None = None,
        body: bytes | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST a customer message to voicebot, signed as the real gateway would."""
        if body is None:
            payload = {
                "id": message_id or uuid.uuid4().hex,
                "from": sender,
                "to": "+447700900000",
                "text": text,
                "channel": "sms",
                "at": "2026-11-23T10:00:00Z",
            }
            body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        header = signature if signature is not None else sign(body, secret or self.secret)
        if header:
            headers[HEADER] = header
        return httpx.post(
            f"{base_url}/api/messaging/inbound",
            content=body,
            headers=headers,
            timeout=60,
            trust_env=False,
        )
