"""The example bot's backend: a small in-memory CRM so the Acme Telecom flows work offline.

These are ordinary Python action handlers (``python: voicebot.demo.acme:lookup_account``); a
real deployment replaces them with its own handlers or HTTP webhooks.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_ACCOUNTS: dict[str, dict[str, Any]] = {
    "12345678": {"name": "Sam", "postcode": "SW1A1AA", "balance": "42.50", "vip": False},
    "23456789": {"name": "Priya", "postcode": "M11AE", "balance": "0.00", "vip": True},
    "87654321": {"name": "Alex", "postcode": "EH11YZ", "balance": "310.20", "locked": True},
}
# Calling numbers the demo CRM knows (Ofcom's drama range: no real subscriber has them).
_NUMBERS: dict[str, dict[str, Any]] = {
    "+441632960010": {"name": "Priya", "vip": True, "tier": "gold"},
    "+441632960011": {"name": "Sam", "vip": False, "tier": "standard"},
}
_OUTAGES = {("broadband", "M1"): "Engineers are working on it and expect it fixed by 6pm today."}


_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip


def _postcode(value: Any) -> str:
    """'SW1A 1AA' and the spoken 's w one a one a a' are the same postcode."""
    words = str(value or "").lower().split()
    spoken = "".join(_DIGIT_WORDS.get(word, word) for word in words)
    return re.sub(r"[^A-Z0-9]", "", spoken.upper())


def _reference(*parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:6].upper()


def lookup_account(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    account = _ACCOUNTS.get(str(args.get("account", "")))
    if account is None or _postcode(args.get("postcode")) != account["postcode"]:
        return {"status": "not_found"}
    if account.get("locked"):
        return {"status": "locked"}
    return {
        "status": "ok",
        "name": account["name"],
        "balance": account["balance"],
        "vip": account["vip"],
    }


def lookup_caller(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The bot's `lookup` at call start: who owns the calling number (empty when unknown)."""
    return dict(_NUMBERS.get(str(args.get("number") or ""), {}))


def take_payment(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "receipt": _reference("pay", args.get("account"), args.get("amount"))}


def check_outage(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    area = _postcode(args.get("postcode"))[:2]
    message = _OUTAGES.get((str(args.get("service")), area))
    return {"outage": message is not None, "message": message or ""}


def book_engineer(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "booking": _reference("eng", args.get("date"), args.get("postcode"))}


def block_sim(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok"}


def add_roaming_bundle(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    zone = str(args.get("zone", "europe"))
    return {"status": "ok", "zone": zone, "reference": _reference("roam", zone)}
