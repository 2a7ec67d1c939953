"""Action handlers of the privacy tests: a payment backend that keeps what it was given."""

from __future__ import annotations

from typing import Any

RECEIVED: list[dict[str, Any]] = []


def take_payment(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    RECEIVED.append(dict(args))
    # what the flow may still see of the card after the action: nothing
    RECEIVED.append({"slots_seen": sorted(context.get("slots", {}))})
    return {"status": "paid", "reference": "PAY-42"}
