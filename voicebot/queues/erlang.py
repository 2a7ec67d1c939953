"""Erlang C: how long a caller should expect to wait for a human agent.

When the bot hands a call over it can tell the caller roughly how long the wait will be. The
queue it hands to is modelled as M/M/N (Erlang C): Poisson arrivals, exponentially distributed
handle times, N agents, an unlimited queue and no abandonment. Real queues break every one of
those assumptions a little, which is why :func:`estimate_wait` tempers the model with the
caller's actual place in the queue instead of trusting it alone.

Everything here is pure Python and cheap enough to run on every handoff: no numpy, no
scheduler, no I/O. Times are in seconds and rates in calls per second throughout, so that the
units can never be mixed; the formulas themselves only need AHT and the target in one unit.

Nothing is rounded: what a caller hears ("about two minutes") is a presentation decision that
belongs to whoever speaks the figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "WaitInputs",
    "agents_for_service_level",
    "average_speed_of_answer",
    "erlang_c",
    "estimate_wait",
    "service_level",
    "traffic_intensity",
]


def _require_non_negative(name: str, value: float) -> None:
    # ``not value >= 0`` rather than ``value < 0`` so that NaN is refused too: a NaN would
    # otherwise slip through every comparison below and come out as a confident-looking NaN wait.
    if not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def traffic_intensity(arrival_rate_per_s: float, aht_s: float) -> float:
    """The offered load in Erlangs: ``A = λ · AHT``.

    One Erlang is one agent kept busy all the time, so ``A`` is also the number of agents the
    work would occupy if it arrived perfectly evenly; Erlang C adds what randomness costs.
    """
    _require_non_negative("arrival_rate_per_s", arrival_rate_per_s)
    _require_non_negative("aht_s", aht_s)
    return arrival_rate_per_s * aht_s


def _erlang_b_step(n: int, traffic: float, previous_b: float) -> float:
    """Erlang B for ``n`` agents from Erlang B for ``n - 1``.

    ``B(n) = A·B(n-1) / (n + A·B(n-1))`` keeps every intermediate value in [0, 1], unlike the
    textbook ``A^N/N!`` form, which overflows a float from about N = 170 and loses precision
    well before that when its large terms are summed.
    """
    load = traffic * previous_b
    return load / (n + load)


def _erlang_c_from_b(agents: int, traffic: float, blocking: float) -> float:
    """Erlang C from Erlang B at the same ``(N, A)``: ``C = N·B / (N − A·(1 − B))``.

    Only valid for a stable queue (``N > A``), where the denominator is positive.
    """
    return agents * blocking / (agents - traffic * (1.0 - blocking))


def erlang_c(agents: int, traffic: float) -> float:
    """The probability that a call has to wait (``P_w``), for ``agents`` and ``traffic`` Erlangs.

    Returns 1.0 when ``agents <= traffic``: more work arrives than the agents can clear, so the
    queue grows without bound and, in the long run, every caller waits. That rule is checked
    first, so no agents means certain waiting even with no traffic (a call that does come has
    nobody to answer it). Otherwise returns 0.0 when there is no traffic at all.

    Raises:
        ValueError: if ``agents`` or ``traffic`` is negative (or ``traffic`` is NaN).
    """
    if agents < 0:
        raise ValueError(f"agents must be non-negative, got {agents!r}")
    _require_non_negative("traffic", traffic)
    if agents <= traffic:
        return 1.0
    if traffic == 0:
        return 0.0
    blocking = 1.0  # B(0) = 1: with no agents every call is blocked.
    for n in range(1, agents + 1):
        blocking = _erlang_b_step(n, traffic, blocking)
    return _erlang_c_from_b(agents, traffic, blocking)


def average_speed_of_answer(agents: int, traffic: float, aht_s: float) -> float:
    """The mean wait over all calls, in seconds: ``ASA = P_w · AHT / (N − A)``.

    This averages in the calls answered at once (wait 0); the mean wait of those that do queue
    is ``AHT / (N − A)``. Returns ``math.inf`` when ``agents <= traffic``, because an unstable
    queue has no finite mean wait.

    Raises:
        ValueError: if any argument is negative.
    """
    _require_non_negative("aht_s", aht_s)
    p_wait = erlang_c(agents, traffic)
    if agents <= traffic:
        return math.inf
    return p_wait * aht_s / (agents - traffic)


def _service_level_from_p_wait(
    p_wait: float, agents: int, traffic: float, aht_s: float, target_s: float
) -> float:
    """``1 − P_w · exp(−(N − A) · target / AHT)`` for a stable queue.

    The exponential is the chance that a queued call is still queued after ``target_s``: the
    queue drains at ``(N − A) / AHT`` calls per second once all agents are busy.
    """
    if target_s == 0:
        # Answered "within 0 s" means answered at once; also avoids 0/0 when AHT is 0.
        still_waiting = 1.0
    elif aht_s == 0:
        # Calls that take no time clear the queue instantly, so any positive target is met.
        still_waiting = 0.0
    else:
        still_waiting = math.exp(-(agents - traffic) * target_s / aht_s)
    return 1.0 - p_wait * still_waiting


def service_level(agents: int, traffic: float, aht_s: float, target_s: float) -> float:
    """The fraction of calls answered within ``target_s`` seconds.

    ``SL = 1 − P_w · exp(−(N − A) · target / AHT)``. Returns 0.0 when ``agents <= traffic``:
    an unstable queue's waits grow without bound, so in the long run no target is met.

    Raises:
        ValueError: if any argument is negative.
    """
    _require_non_negative("aht_s", aht_s)
    _require_non_negative("target_s", target_s)
    p_wait = erlang_c(agents, traffic)
    if agents <= traffic:
        return 0.0
    return _service_level_from_p_wait(p_wait, agents, traffic, aht_s, target_s)


def agents_for_service_level(traffic: float, aht_s: float, target_s: float, goal: float) -> int:
    """The smallest number of agents that answers ``goal`` of calls within ``target_s``.

    ``goal`` is a fraction (0.8 for "80/20"). The search starts at the smallest stable staffing,
    ``floor(A) + 1``, because below that the queue grows without bound whatever the goal says;
    so ``goal = 0`` returns that minimum rather than an unstable zero. Service level only rises
    with N, so the first N that meets the goal is the answer.

    Raises:
        ValueError: if an argument is negative or ``goal`` is not below 1 (no finite staffing
            answers every call within the target under Erlang C).
    """
    _require_non_negative("traffic", traffic)
    _require_non_negative("aht_s", aht_s)
    _require_non_negative("target_s", target_s)
    if not 0 <= goal < 1:
        raise ValueError(f"goal must be a fraction in [0, 1), got {goal!r}")
    if math.isinf(traffic):
        raise ValueError("traffic must be finite to staff for it")

    agents = math.floor(traffic) + 1
    if traffic == 0:
        return agents  # One agent answers every call at once.
    # Carry Erlang B along as N grows, rather than calling erlang_c() per candidate, so the
    # search costs O(answer) instead of O(answer²); that matters for loads in the thousands.
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = _erlang_b_step(n, traffic, blocking)
    while True:
        p_wait = _erlang_c_from_b(agents, traffic, blocking)
        if _service_level_from_p_wait(p_wait, agents, traffic, aht_s, target_s) >= goal:
            return agents
        agents += 1
        blocking = _erlang_b_step(agents, traffic, blocking)


@dataclass(frozen=True, slots=True)
class WaitInputs:
    """What the queue looks like to one caller, from the ACD's live figures.

    Attributes:
        arrivals: calls that joined the queue during the last ``window_s`` seconds.
        window_s: length of that recent window, in seconds (positive).
        aht_s: average handle time, in seconds.
        agents_staffed: agents logged in to the queue, busy or not.
        agents_available: agents idle and ready to take a call now.
        position: the caller's 1-based place in the queue; for a caller about to join it is
            the number already waiting plus one.
    """

    arrivals: int
    window_s: float
    aht_s: float
    agents_staffed: int
    agents_available: int
    position: int

    def __post_init__(self) -> None:
        # Refused here, at the edge, so estimate_wait() never divides by zero or reasons about
        # a caller at place 0. agents_available may exceed agents_staffed: live ACD counters
        # are not read atomically, and a momentary mismatch should not fail a handoff.
        if self.arrivals < 0:
            raise ValueError(f"arrivals must be non-negative, got {self.arrivals!r}")
        if not self.window_s > 0:
            raise ValueError(f"window_s must be positive, got {self.window_s!r}")
        _require_non_negative("aht_s", self.aht_s)
        if self.agents_staffed < 0:
            raise ValueError(f"agents_staffed must be non-negative, got {self.agents_staffed!r}")
        if self.agents_available < 0:
            raise ValueError(
                f"agents_available must be non-negative, got {self.agents_available!r}"
            )
        if self.position < 1:
            raise ValueError(f"position is 1-based, got {self.position!r}")


def estimate_wait(inputs: WaitInputs) -> float | None:
    """The expected wait, in seconds, for the caller described by ``inputs``.

    The rule, in order:

    1. No agent staffed: ``None``. There is nobody to wait for, so no number is honest; the
       caller should be offered something else (a callback, opening hours) instead.
    2. An agent is free and the caller is within the free agents (``position <=
       agents_available``): ``0.0``, they will be answered at once.
    3. Otherwise two estimates are combined. ``ahead`` is the number of callers who must be
       answered before this one beyond the free agents (``position - agents_available``):

       * the Erlang C average speed of answer, with traffic from the recent arrival rate
         (``arrivals / window_s``) times AHT, and ``agents_staffed`` agents. It knows how
         busy the queue has been, but describes an average caller, not this one;
       * the position estimate ``ahead · AHT / agents_staffed``: everyone ahead must be
         answered first, and with all agents busy one of them frees up every
         ``AHT / agents_staffed`` seconds on average. It knows this caller's place.

       The weight of the position estimate is ``min(1, ahead / agents_staffed)``: with few
       callers ahead, how busy the queue has recently been says more (a short queue in a busy
       hour does not stay short); once a full round of the agents' calls is ahead, the
       caller's place decides. When the queue is unstable (``agents_staffed <= traffic``)
       the Erlang mean wait is infinite, which says only that the queue is growing; the
       callers ahead will still be answered in turn, so the position estimate alone is
       returned.

    The result is not rounded.
    """
    staffed = inputs.agents_staffed
    if staffed == 0:
        return None
    if inputs.agents_available > 0 and inputs.position <= inputs.agents_available:
        return 0.0

    traffic = traffic_intensity(inputs.arrivals / inputs.window_s, inputs.aht_s)
    erlang = average_speed_of_answer(staffed, traffic, inputs.aht_s)
    ahead = inputs.position - inputs.agents_available
    by_position = ahead * inputs.aht_s / staffed
    if math.isinf(erlang):
        return by_position
    weight = min(1.0, ahead / staffed)
    return weight * by_position + (1.0 - weight) * erlang
