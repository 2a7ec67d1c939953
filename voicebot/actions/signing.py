"""HMAC signatures on outgoing webhooks, and the check a receiver runs on them.

Every HTTP action carries ``X-Voicebot-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256, keyed with the shared secret, of ``"<t>.<signed content>"``. The signed content is
the raw request body as sent; a request without a body (GET, DELETE) signs its raw query string
instead, so its parameters are covered too. The timestamp is inside the MAC, so a receiver that
rejects old timestamps (:func:`verify`'s ``tolerance``) also rejects replays of old requests.

A receiver in Python::

    from voicebot.actions.signing import SignatureError, verify

    try:
        verify(raw_body, request.headers["X-Voicebot-Signature"], secret)
    except SignatureError as exc:
        return 401, str(exc)

The same check with a shell and openssl is in docs/flows.md (Signed webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Voicebot-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300  # seconds either side of the receiver's clock


class SignatureError(ValueError):
    """The request's signature is missing, malformed, too old or does not match."""


def signed_content(method: str, body: bytes, query: bytes | str = b"") -> bytes:
    """What is signed for a request: its body, or its raw query string when it has none."""
    if body or method.upper() not in ("GET", "DELETE"):
        return body
    return query.encode() if isinstance(query, str) else query


def signature(secret: str, timestamp: int, content: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<content>"``."""
    message = str(timestamp).encode() + b"." + content
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(content: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The header value for ``content``: ``t=<unix>,v1=<hex>``."""
    when = int(time.time()) if timestamp is None else timestamp
    return f"t={when},{SCHEME}={signature(secret, when, content)}"


def verify(
    content: bytes | str,
    header: str | None,
    secret: str | list[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a request's ``X-Voicebot-Signature`` header against its raw body; returns the
    signed timestamp. Raises :class:`SignatureError` saying what is wrong.

    ``secret`` may be a list (old and new secret while rotating): any one matching is enough.
    ``content`` must be the body exactly as received (the query string for a GET/DELETE
    without a body); a re-serialised JSON object will not match.
    """
    if not header:
        raise SignatureError(f"missing {HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("signature timestamp is not a number") from None
        elif key == SCHEME and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"malformed {HEADER} header: expected t=<unix>,{SCHEME}=<hex>")
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise SignatureError(
            f"signature timestamp is {int(clock - timestamp)} s away from now "
            f"(tolerance {int(tolerance)} s): a replay or a wrong clock"
        )
    raw = content.encode() if isinstance(content, str) else content
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not any(s for s in secrets):
        raise SignatureError("no secret to verify with")
    for key in secrets:
        if not key:
            continue
        expected = signature(key, timestamp, raw)
        if any(hmac.compare_digest(expected, given) for given in candidates):
            return timestamp
    raise SignatureError("signature does not match the body (wrong secret or altered body)")
