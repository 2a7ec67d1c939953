"""Python action handlers used by the tests (the ``python:`` action kind)."""

from __future__ import annotations

from typing import Any


def lookup(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"balance": 100 + len(args["account"]) * 21.25, "vip": True}


async def broken(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    raise ConnectionError("backend down")


def crm(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A CRM look-up by calling number (the bot's `lookup` at call start)."""
    if args.get("number") == "+447700900123":
        return {"name": "Ann", "vip": True, "attributes": {"tier": "gold", "segment": "home"}}
    return {}


async def slow_crm(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    await asyncio.sleep(5)
    return {"name": "too late"}
