"""Customer ids and the signed identity token a company site puts in the chat widget."""

from __future__ import annotations

import time

import pytest

from voicebot.channels.identity import (
    IdentityError,
    caller_for,
    customer_id,
    customer_of,
    sign_identity,
    verify_identity,
)
from voicebot.handoff.packet import CallerInfo

SECRET = "site-identity-secret"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"number": "+44 1632 960001"}, "tel:+441632960001"),
        ({"number": "01632 960001"}, "tel:+441632960001"),  # national, the region's country
        ({"number": "0044 1632 960001"}, "tel:+441632960001"),
        ({"number": "sip:+441632960001@pbx.example.com"}, "tel:+441632960001"),
        ({"number": "tel:+14155550132"}, "tel:+14155550132"),
        ({"number": "1001"}, None),  # an extension is nobody's identity
        ({"number": "anonymous"}, None),
        ({"number": "anonymous", "email": " Ann@Example.COM "}, "email:ann@example.com"),
        ({"email": "not-an-address"}, None),
        ({"site_id": "cust-42"}, "site:cust-42"),
        ({"site_id": "has space"}, None),
        # the phone number first: the one identity the phone network gives on a call too
        ({"number": "+441632960001", "email": "a@b.co", "site_id": "c1"}, "tel:+441632960001"),
    ],
)
def test_customer_ids_are_normalised(given: dict[str, str], expected: str | None) -> None:
    assert customer_id(**given) == expected


def test_a_signed_token_names_the_customer() -> None:
    token = sign_identity(
        {"sub": "cust-42", "name": "Ann Example", "phone": "+44 1632 960001", "vip": True}, SECRET
    )
    identity = verify_identity(token, SECRET)
    assert identity.customer_id == "tel:+441632960001"
    assert (identity.name, identity.phone, identity.vip, identity.site_id) == (
        "Ann Example",
        "+441632960001",
        True,
        "cust-42",
    )
    caller = caller_for(identity, channel="chat")
    assert caller.number == "+441632960001" and caller.vip
    assert customer_of(caller) == "tel:+441632960001"
    # without a phone the site's own id is the customer
    assert verify_identity(sign_identity({"sub": "cust-7"}, SECRET), SECRET).customer_id == (
        "site:cust-7"
    )


def test_customer_of_prefers_the_verified_identity_over_the_number() -> None:
    caller = CallerInfo(number="+441632960001", attributes={"customer_id": "site:cust-42"})
    assert customer_of(caller) == "site:cust-42"
    # an attribute that is not a customer id is not trusted as one
    caller = CallerInfo(number="+441632960001", attributes={"customer_id": "42"})
    assert customer_of(caller) == "tel:+441632960001"


def _tampered(token: str) -> str:
    version, stamp, _payload, mac = token.split(".")
    other = sign_identity({"sub": "someone-else"}, SECRET).split(".")[2]
    return ".".join([version, stamp, other, mac])


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda t: t, None),
        (lambda t: _tampered(t), "signature does not match"),
        (lambda t: t[:-2] + ("00" if not t.endswith("00") else "11"), "signature does not match"),
        (lambda t: "v1.abc", "malformed identity token"),
        (lambda t: "", "no identity token"),
        (lambda t: "v1.x." + t.split(".", 2)[2], "timestamp is not a number"),
    ],
)
def test_an_altered_token_is_refused(make, error: str | None) -> None:
    token = make(sign_identity({"sub": "cust-42", "name": "Ann"}, SECRET))
    if error is None:
        assert verify_identity(token, SECRET).customer_id == "site:cust-42"
        return
    with pytest.raises(IdentityError, match=error):
        verify_identity(token, SECRET)


def test_wrong_secret_old_token_and_empty_claims_are_refused() -> None:
    token = sign_identity({"email": "ann@example.com"}, SECRET)
    with pytest.raises(IdentityError, match="signature does not match"):
        verify_identity(token, "another secret")
    # rotation: the old secret still verifies while it is listed
    assert verify_identity(token, ["new secret", SECRET]).customer_id == "email:ann@example.com"
    old = sign_identity({"email": "ann@example.com"}, SECRET, timestamp=int(time.time()) - 7200)
    with pytest.raises(IdentityError, match="expired"):
        verify_identity(old, SECRET, max_age=3600)
    expired = sign_identity({"email": "ann@example.com", "exp": int(time.time()) - 1}, SECRET)
    with pytest.raises(IdentityError, match="'exp' has passed"):
        verify_identity(expired, SECRET)
    with pytest.raises(IdentityError, match="names no customer"):
        verify_identity(sign_identity({"name": "Ann"}, SECRET), SECRET)
    with pytest.raises(IdentityError, match="'phone' is not a phone number"):
        verify_identity(sign_identity({"phone": "call me"}, SECRET), SECRET)
    with pytest.raises(IdentityError, match="no secret is configured"):
        verify_identity(token, "")
    with pytest.raises(IdentityError, match="unknown identity claims: admin"):
        sign_identity({"sub": "x", "admin": True}, SECRET)
