"""Who the customer is, the same on every channel: the key of one customer history.

A customer id is one of

- ``tel:+441632960001``: a phone number in E.164 (calls, messaging, a chat that gave one);
- ``email:ann@example.com``: an email address, lower-cased;
- ``site:<id>``: the company's own customer id, from a signed widget token.

When several are known the phone number wins, then the email address, then the site id: the
phone number is the one identity every channel can know (the phone network gives it on a call),
so a customer who chatted with a verified number and phones the next day is the same customer.

A web chat customer is anonymous unless the company's site vouches for them: the site signs an
identity token with ``VOICEBOT_CHAT_IDENTITY_SECRET`` (:func:`sign_identity`, or the few lines
of any language in docs/channels.md) and puts it in the widget snippet. :func:`verify_identity`
refuses a token whose signature does not match or that is older than allowed, so nobody can
claim someone else's history by typing a phone number into the widget.

Token format: ``v1.<t>.<payload>.<mac>`` where ``<t>`` is the unix second it was signed,
``<payload>`` the claims as base64url JSON (no padding), and ``<mac>`` the hex HMAC-SHA256 of
``"<t>.identity.<payload>"`` (voicebot/actions/signing.py's :func:`signature` over
``identity.<payload>``; the ``identity.`` prefix keeps a webhook signature made with the same
secret from passing as a token).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicebot.actions.signing import signature
from voicebot.handoff.packet import CallerInfo
from voicebot.nlu.parsers.contact import PHONE_MAX_DIGITS, PHONE_MIN_DIGITS, normalise_phone
from voicebot.nlu.parsers.lang import get_locale

__all__ = [
    "CUSTOMER_KEY",
    "DEFAULT_MAX_AGE",
    "Identity",
    "IdentityError",
    "caller_for",
    "customer_id",
    "customer_of",
    "is_customer_id",
    "normalise_email",
    "normalise_number",
    "sign_identity",
    "verify_identity",
]

VERSION = "v1"
DEFAULT_MAX_AGE = 24 * 3600  # seconds a token is accepted after it was signed
_CLOCK_SKEW = 300  # a token "signed" further in the future than this is refused
_MAX_TOKEN_CHARS = 4096
_MAX_ID_CHARS = 180  # calls.customer_id is 200 with the "site:" prefix and room to spare
_SITE_ID_RE = re.compile(r"[A-Za-z0-9._:@+\-]{1,180}")
_EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}")
_PHONE_TEXT_RE = re.compile(r"[\d\s().\-/+]+")
_CLAIMS = ("sub", "name", "email", "phone", "vip", "exp")


class IdentityError(ValueError):
    """An identity token is missing a part, altered, signed with another secret or too old."""


@dataclass(frozen=True)
class Identity:
    """A customer the company's site vouched for."""

    customer_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    vip: bool = False
    site_id: str | None = None


def normalise_number(number: str | None, *, region: str = "en-GB") -> str | None:
    """A phone number as E.164 (``+441632960001``), or None when it is not one.

    Accepts what networks and people write: ``+44 1632 960001``, ``0044...``, a national
    ``01632 960001`` (country from ``region``), ``tel:+44...``, ``sip:+44...@host``. A number
    whose country cannot be known (no "+", and a region without one) is None: a bare
    extension such as ``1001`` must not merge two customers' histories.
    """
    if not number:
        return None
    text = number.strip()
    lowered = text.lower()
    for scheme in ("tel:", "sip:", "sips:"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :].split("@", 1)[0].split(";", 1)[0]
            break
    if not text or not _PHONE_TEXT_RE.fullmatch(text):
        return None
    has_plus = text.lstrip().startswith("+")
    digits = "".join(ch for ch in text if ch.isdigit())
    if not PHONE_MIN_DIGITS <= len(digits) <= PHONE_MAX_DIGITS + 3:  # 00/011 prefix
        return None
    locale = get_locale(region) or get_locale("en")
    if locale is None:  # pragma: no cover - "en" is always known
        return None
    written = normalise_phone(digits, has_plus, locale)
    if not written.startswith("+") or not PHONE_MIN_DIGITS <= len(written) - 1 <= 15:
        return None
    return written


def normalise_email(email: str | None) -> str | None:
    """An email address lower-cased, or None when it does not look like one."""
    if not email:
        return None
    text = email.strip().lower()
    if len(text) > _MAX_ID_CHARS or not _EMAIL_RE.fullmatch(text):
        return None
    return text


def _site_id(site_id: str | None) -> str | None:
    if site_id is None:
        return None
    text = str(site_id).strip()
    return text if _SITE_ID_RE.fullmatch(text) else None


def customer_id(
    number: str | None = None,
    email: str | None = None,
    site_id: str | None = None,
    *,
    region: str = "en-GB",
) -> str | None:
    """The customer's id from what is known of them, or None when nothing usable is.

    Phone number first, then email, then the site's id (see the module's docstring); values
    that are not what they claim (``anonymous``, ``1001``, an address without a domain) are
    skipped rather than stored.
    """
    phone = normalise_number(number, region=region)
    if phone:
        return f"tel:{phone}"
    address = normalise_email(email)
    if address:
        return f"email:{address}"
    own = _site_id(site_id)
    if own:
        return f"site:{own}"
    return None


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, timestamp: int, payload: str) -> str:
    return signature(secret, timestamp, b"identity." + payload.encode("ascii"))


def sign_identity(claims: Mapping[str, Any], secret: str, *, timestamp: int | None = None) -> str:
    """A token for the widget snippet vouching for ``claims``.

    Claims: ``sub`` (the company's own customer id), ``name``, ``email``, ``phone``, ``vip``
    (bool), and optionally ``exp`` (unix seconds after which it is refused). At least one of
    ``sub``, ``email`` and ``phone`` is needed.
    """
    if not secret:
        raise IdentityError("no secret to sign the identity token with")
    unknown = sorted(set(claims) - set(_CLAIMS))
    if unknown:
        raise IdentityError(f"unknown identity claims: {', '.join(unknown)}")
    when = int(time.time()) if timestamp is None else timestamp
    payload = _b64encode(json.dumps(dict(claims), separators=(",", ":")).encode("utf-8"))
    return f"{VERSION}.{when}.{payload}.{_mac(secret, when, payload)}"


def verify_identity(
    token: str | None,
    secret: str | list[str],
    max_age: float = DEFAULT_MAX_AGE,
    *,
    region: str = "en-GB",
    now: float | None = None,
) -> Identity:
    """The customer an identity token vouches for; raises :class:`IdentityError` saying what
    is wrong. ``secret`` may be a list (old and new while rotating)."""
    if not token:
        raise IdentityError("no identity token")
    if len(token) > _MAX_TOKEN_CHARS:
        raise IdentityError(f"identity token longer than {_MAX_TOKEN_CHARS} characters")
    parts = token.strip().split(".")
    if len(parts) != 4 or parts[0] != VERSION:
        raise IdentityError(f"malformed identity token: expected {VERSION}.<t>.<payload>.<mac>")
    _, stamp, payload, given = parts
    try:
        timestamp = int(stamp)
    except ValueError:
        raise IdentityError("identity token timestamp is not a number") from None
    secrets = [secret] if isinstance(secret, str) else [s for s in secret if s]
    if not any(secrets):
        raise IdentityError("identity tokens are not accepted: no secret is configured")
    # The MAC is checked before anything in the payload is read or trusted.
    if not any(hmac.compare_digest(_mac(key, timestamp, payload), given) for key in secrets):
        raise IdentityError("identity token signature does not match (wrong secret or altered)")
    clock = time.time() if now is None else now
    if timestamp > clock + _CLOCK_SKEW:
        raise IdentityError("identity token is signed in the future: a wrong clock on the site")
    if clock - timestamp > max_age:
        raise IdentityError(
            f"identity token expired: signed {int(clock - timestamp)} s ago "
            f"(accepted for {int(max_age)} s)"
        )
    try:
        claims = json.loads(_b64decode(payload))
    except (binascii.Error, ValueError):
        raise IdentityError("identity token payload is not base64url JSON") from None
    if not isinstance(claims, dict):
        raise IdentityError("identity token payload is not a JSON object")
    return _identity(claims, region=region, clock=clock)


def _identity(claims: dict[str, Any], *, region: str, clock: float) -> Identity:
    expires = claims.get("exp")
    if expires is not None:
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise IdentityError("identity claim 'exp' must be unix seconds")
        if clock > expires:
            raise IdentityError("identity token expired (its 'exp' has passed)")
    texts: dict[str, str | None] = {}
    for key in ("sub", "name", "email", "phone"):
        value = claims.get(key)
        if value is not None and not isinstance(value, str | int):
            raise IdentityError(f"identity claim '{key}' must be a string")
        texts[key] = None if value is None or value == "" else str(value).strip()
    vip = claims.get("vip", False)
    if not isinstance(vip, bool):
        raise IdentityError("identity claim 'vip' must be true or false")
    phone = normalise_number(texts["phone"], region=region)
    if texts["phone"] and phone is None:
        raise IdentityError("identity claim 'phone' is not a phone number in E.164 (+44...)")
    email = normalise_email(texts["email"])
    if texts["email"] and email is None:
        raise IdentityError("identity claim 'email' is not an email address")
    site = _site_id(texts["sub"])
    if texts["sub"] and site is None:
        raise IdentityError(
            f"identity claim 'sub' must be 1-{_MAX_ID_CHARS} characters of letters, digits "
            "and . _ : @ + -"
        )
    found = customer_id(phone, email, site, region=region)
    if found is None:
        raise IdentityError("identity token names no customer: give 'sub', 'phone' or 'email'")
    name = texts["name"]
    return Identity(
        customer_id=found,
        name=name[:200] if name else None,
        email=email,
        phone=phone,
        vip=vip,
        site_id=site,
    )


CUSTOMER_KEY = "customer_id"  # the caller attribute a channel puts a verified identity in
_KINDS = ("tel:", "email:", "site:")


def is_customer_id(value: object) -> bool:
    """Whether ``value`` is a customer id as :func:`customer_id` writes them."""
    return (
        isinstance(value, str)
        and len(value) <= 200
        and any(value.startswith(kind) and len(value) > len(kind) for kind in _KINDS)
    )


def customer_of(caller: CallerInfo, *, region: str = "en-GB") -> str | None:
    """The customer id of a call's caller: the identity its channel verified (the
    ``customer_id`` attribute: a chat's identity token, a CRM look-up), else the phone number
    the network gave."""
    given = caller.attributes.get(CUSTOMER_KEY)
    if is_customer_id(given):
        return str(given)
    return customer_id(caller.number, region=region)


def caller_for(identity: Identity, *, channel: str) -> CallerInfo:
    """The CallerInfo of a conversation with a verified customer."""
    attributes: dict[str, Any] = {"channel": channel, CUSTOMER_KEY: identity.customer_id}
    if identity.email:
        attributes["email"] = identity.email
    return CallerInfo(
        number=identity.phone, name=identity.name, vip=identity.vip, attributes=attributes
    )
