"""Python action handlers used by the tests (the ``python:`` action kind)."""

from __future__ import annotations

from typing import Any


def lookup(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"balance": 100 + len(args["account"]) * 21.25, "vip": True}


async def broken(args: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    raise ConnectionError("backend down")
