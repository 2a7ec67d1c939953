"""The names a template or condition can see during a call, and business hours."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from voicebot.engine.state import CallState
from voicebot.flows.schema import BotSettings, Hours, Text, parse_days


def bot_timezone(bot: BotSettings) -> ZoneInfo:
    return ZoneInfo(bot.hours.timezone if bot.hours else "UTC")


def is_open(hours: Hours | None, now: dt.datetime) -> bool:
    """Whether ``now`` falls in the weekly opening times (no ``hours``: always open)."""
    if hours is None:
        return True
    local = now.astimezone(ZoneInfo(hours.timezone))
    if local.date() in hours.holidays:
        return False
    minute = local.hour * 60 + local.minute
    today = local.weekday()
    yesterday = (today - 1) % 7
    for days, ranges in hours.weekly.items():
        listed = parse_days(days)
        for span in [ranges] if isinstance(ranges, str) else ranges:
            if span == "closed":
                continue
            first, _, last = span.replace(" ", "").partition("-")
            start, end = _minutes(first), _minutes(last)
            if start < end:
                if today in listed and start <= minute < end:
                    return True
            # "22:00-02:00": open from 22:00 on a listed day until 02:00 the next morning.
            elif (today in listed and minute >= start) or (yesterday in listed and minute < end):
                return True
    return False


def greeting_for(bot: BotSettings, state: CallState) -> Text:
    """``bot.returning_greeting`` for a customer whose last contact is recent enough, else
    ``bot.greeting``."""
    last = state.history[0] if state.history else None
    if bot.returning_greeting is None or last is None:
        return bot.greeting
    days = last.get("days_ago")
    if isinstance(days, int) and days <= bot.returning_within_days:
        return bot.returning_greeting
    return bot.greeting


def _minutes(hhmm: str) -> int:
    hours, _, minutes = hhmm.partition(":")
    return int(hours) * 60 + int(minutes)


def expression_context(
    state: CallState,
    bot: BotSettings,
    now: dt.datetime,
    *,
    queues: list[str],
    attempts: int = 0,
    args: dict[str, Any] | None = None,
    slots: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The names of the flow language's expressions (see docs/flows.md)."""
    local_now = now.astimezone(bot_timezone(bot))
    caller = {
        "number": state.caller.number,
        "name": state.caller.name,
        "vip": state.caller.vip,
        **state.caller.attributes,
        "attributes": state.caller.attributes,
        # one customer history (docs/channels.md): after the attributes, which cannot hide it
        "history": state.history,
        "last_contact": state.history[0] if state.history else None,
    }
    queue_stats = {
        name: {"waiting": 0, "agents_available": None, "estimated_wait": None}
        | state.queues.get(name, {})
        for name in queues
    }
    return {
        "slots": slots if slots is not None else dict(state.slots),
        "result": state.result if state.result is not None else {},
        "caller": caller,
        "intent": {"name": state.intent, "confidence": state.confidence},
        "sentiment": {"anger": state.anger, "score": state.sentiment},
        "queue": queue_stats,
        "now": local_now,
        "hours": {"open": is_open(bot.hours, now)},
        "attempts": attempts,
        "args": args or {},
        "language": state.language,
    }
