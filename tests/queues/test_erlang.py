"""Erlang C against a published worked example and an independent exact computation."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise

import pytest

from voicebot.queues.erlang import (
    WaitInputs,
    agents_for_service_level,
    average_speed_of_answer,
    erlang_c,
    estimate_wait,
    service_level,
    traffic_intensity,
)

TOL = 1e-3


def direct_erlang_c(agents: int, traffic: float) -> float:
    """The textbook formula, computed exactly with fractions as an independent cross-check.

    P_w = (A^N/N! · N/(N−A)) / (Σ_{k<N} A^k/k! + A^N/N! · N/(N−A)). In floats A^N/N! overflows
    from about N = 170, so every term is an exact rational and only the result is rounded.
    """
    a = Fraction(traffic)
    term = Fraction(1)  # A^0 / 0!
    below_n = Fraction(0)
    for k in range(agents):
        below_n += term
        term = term * a / (k + 1)  # now A^(k+1) / (k+1)!
    waiting = term * agents / (agents - a)
    return float(waiting / (below_n + waiting))


# Call Centre Helper, "Erlang C formula – made simple": 100 calls in 30 minutes, AHT 180 s.
CCH_ARRIVAL_RATE = 100 / (30 * 60)
CCH_AHT = 180.0
CCH_TARGET = 20.0
CCH_TRAFFIC = 10.0


def test_traffic_intensity_of_the_worked_example() -> None:
    assert traffic_intensity(CCH_ARRIVAL_RATE, CCH_AHT) == pytest.approx(CCH_TRAFFIC)


@pytest.mark.parametrize(
    ("agents", "p_wait", "sl"),
    [
        # The formula gives SL = 0.389614 for 11 agents, i.e. 0.3896 to four places. The
        # article's 0.3897 matches 1 − 0.6821 × 0.8948, i.e. rounded intermediate values; the
        # exact value is checked here (the difference is within TOL either way).
        (11, 0.6821, 0.3896),
        (12, 0.4494, 0.6402),
        (13, 0.2853, 0.7956),
        (14, 0.1741, 0.8884),
    ],
)
def test_published_worked_example(agents: int, p_wait: float, sl: float) -> None:
    assert erlang_c(agents, CCH_TRAFFIC) == pytest.approx(p_wait, abs=TOL)
    assert service_level(agents, CCH_TRAFFIC, CCH_AHT, CCH_TARGET) == pytest.approx(sl, abs=TOL)
    # Tighter than TOL: the published figures are these values rounded to four places.
    assert round(erlang_c(agents, CCH_TRAFFIC), 4) == p_wait
    assert round(service_level(agents, CCH_TRAFFIC, CCH_AHT, CCH_TARGET), 4) == sl


def test_published_average_speed_of_answer() -> None:
    asa = average_speed_of_answer(11, CCH_TRAFFIC, CCH_AHT)
    assert asa == pytest.approx(122.8, abs=0.05)


def test_published_staffing_for_80_in_20() -> None:
    assert agents_for_service_level(CCH_TRAFFIC, CCH_AHT, CCH_TARGET, 0.8) == 14


@pytest.mark.parametrize(
    ("agents", "traffic"),
    [
        (1, 0.5),
        (2, 1.5),
        (9, 7.5),
        (11, 10.0),
        (14, 10.0),
        (30, 12.3),
        (200, 190.0),  # A^N/N! is far outside float range here.
        (500, 480.25),
        (1000, 950.0),
    ],
)
def test_recursion_matches_the_direct_formula(agents: int, traffic: float) -> None:
    expected = direct_erlang_c(agents, traffic)
    assert erlang_c(agents, traffic) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_direct_formula_agrees_with_the_published_example() -> None:
    # Guards the cross-check itself: it must reproduce the article too.
    assert direct_erlang_c(11, CCH_TRAFFIC) == pytest.approx(0.6821, abs=TOL)
    assert direct_erlang_c(14, CCH_TRAFFIC) == pytest.approx(0.1741, abs=TOL)


def test_service_level_matches_the_direct_formula_at_scale() -> None:
    agents, traffic, aht, target = 200, 190.0, 300.0, 20.0
    expected = 1 - direct_erlang_c(agents, traffic) * math.exp(-(agents - traffic) * target / aht)
    assert service_level(agents, traffic, aht, target) == pytest.approx(expected, rel=1e-9)


def test_staffing_search_is_the_smallest_meeting_the_goal() -> None:
    traffic, aht, target, goal = 190.0, 300.0, 20.0, 0.8
    agents = agents_for_service_level(traffic, aht, target, goal)
    assert service_level(agents, traffic, aht, target) >= goal
    assert service_level(agents - 1, traffic, aht, target) < goal


# --- edge cases ---------------------------------------------------------------------------


def test_no_traffic_means_no_wait() -> None:
    assert erlang_c(3, 0.0) == 0.0
    assert average_speed_of_answer(3, 0.0, 180.0) == 0.0
    assert service_level(3, 0.0, 180.0, 20.0) == 1.0
    assert agents_for_service_level(0.0, 180.0, 20.0, 0.8) == 1


@pytest.mark.parametrize(("agents", "traffic"), [(10, 10.0), (9, 10.0), (0, 0.0), (0, 2.0)])
def test_unstable_queue(agents: int, traffic: float) -> None:
    assert erlang_c(agents, traffic) == 1.0
    assert average_speed_of_answer(agents, traffic, 180.0) == math.inf
    assert service_level(agents, traffic, 180.0, 20.0) == 0.0


def test_staffing_starts_at_the_smallest_stable_count() -> None:
    assert agents_for_service_level(10.0, 180.0, 20.0, 0.0) == 11
    assert agents_for_service_level(9.5, 180.0, 20.0, 0.0) == 10


def test_zero_target_is_the_chance_of_no_wait() -> None:
    assert service_level(12, 10.0, 180.0, 0.0) == pytest.approx(1 - erlang_c(12, 10.0))


@pytest.mark.parametrize(
    "call",
    [
        lambda: traffic_intensity(-1.0, 180.0),
        lambda: traffic_intensity(0.1, -180.0),
        lambda: erlang_c(-1, 2.0),
        lambda: erlang_c(3, -2.0),
        lambda: erlang_c(3, math.nan),
        lambda: average_speed_of_answer(3, 2.0, -1.0),
        lambda: service_level(3, 2.0, 180.0, -20.0),
        lambda: agents_for_service_level(-1.0, 180.0, 20.0, 0.8),
        lambda: agents_for_service_level(10.0, 180.0, 20.0, 1.0),
        lambda: agents_for_service_level(10.0, 180.0, 20.0, -0.1),
        lambda: WaitInputs(-1, 1800.0, 180.0, 10, 0, 1),
        lambda: WaitInputs(100, 0.0, 180.0, 10, 0, 1),
        lambda: WaitInputs(100, 1800.0, 180.0, 10, 0, 0),
        lambda: WaitInputs(100, 1800.0, 180.0, -1, 0, 1),
    ],
)
def test_invalid_input_raises(call) -> None:
    with pytest.raises(ValueError):
        call()


# --- estimate_wait ------------------------------------------------------------------------


def cch_inputs(*, staffed: int, available: int = 0, position: int = 1) -> WaitInputs:
    return WaitInputs(
        arrivals=100,
        window_s=1800.0,
        aht_s=CCH_AHT,
        agents_staffed=staffed,
        agents_available=available,
        position=position,
    )


def test_no_agent_staffed_gives_no_estimate() -> None:
    assert estimate_wait(cch_inputs(staffed=0)) is None
    assert estimate_wait(cch_inputs(staffed=0, available=0, position=5)) is None


def test_free_agent_answers_at_once() -> None:
    assert estimate_wait(cch_inputs(staffed=11, available=1, position=1)) == 0.0
    assert estimate_wait(cch_inputs(staffed=11, available=3, position=3)) == 0.0


def test_caller_behind_the_free_agents_still_waits() -> None:
    wait = estimate_wait(cch_inputs(staffed=11, available=2, position=3))
    assert wait is not None
    assert wait > 0


def test_blends_erlang_with_position() -> None:
    wait = estimate_wait(cch_inputs(staffed=11, position=3))
    by_position = 3 * CCH_AHT / 11
    erlang = average_speed_of_answer(11, CCH_TRAFFIC, CCH_AHT)
    weight = 3 / 11  # three callers ahead of eleven agents
    assert wait == pytest.approx(weight * by_position + (1 - weight) * erlang)
    # 3/11 of 49.09 plus 8/11 of the worked example's ASA, 122.78.
    assert wait == pytest.approx(102.68, abs=0.01)


def test_a_full_round_ahead_is_decided_by_position() -> None:
    assert estimate_wait(cch_inputs(staffed=11, position=20)) == pytest.approx(20 * CCH_AHT / 11)
    # free agents answer the first callers: only those beyond them are ahead
    assert estimate_wait(cch_inputs(staffed=11, available=2, position=14)) == pytest.approx(
        12 * CCH_AHT / 11
    )


def test_unstable_queue_falls_back_to_position() -> None:
    # 8 agents for 10 Erlangs: Erlang C's mean wait is infinite.
    assert estimate_wait(cch_inputs(staffed=8, position=4)) == pytest.approx(4 * CCH_AHT / 8)
    # Exactly at capacity (N = A) is unstable too.
    assert estimate_wait(cch_inputs(staffed=10, position=1)) == pytest.approx(CCH_AHT / 10)


def test_estimate_is_not_rounded() -> None:
    wait = estimate_wait(cch_inputs(staffed=11, position=3))
    assert wait is not None
    assert wait != round(wait, 2)


# --- monotonicity: more agents never mean a longer wait -----------------------------------


@pytest.mark.parametrize(
    ("traffic", "aht", "target"),
    [(0.5, 60.0, 10.0), (10.0, 180.0, 20.0), (37.4, 240.0, 30.0), (190.0, 300.0, 20.0)],
)
def test_more_agents_never_wait_longer(traffic: float, aht: float, target: float) -> None:
    start = math.floor(traffic) + 1
    counts = range(start, start + 40)
    p_waits = [erlang_c(n, traffic) for n in counts]
    asas = [average_speed_of_answer(n, traffic, aht) for n in counts]
    levels = [service_level(n, traffic, aht, target) for n in counts]
    assert all(a >= b for a, b in pairwise(p_waits))
    assert all(a >= b for a, b in pairwise(asas))
    assert all(a <= b for a, b in pairwise(levels))


@pytest.mark.parametrize("position", [1, 3, 12])
def test_more_staff_never_lengthens_the_estimate(position: int) -> None:
    # Stable staffing only (N > A = 10). Across the boundary the rule is not monotone: at
    # N <= A the estimate is the position figure alone, and at N = A + 1 the (large) Erlang ASA
    # is blended back in, so e.g. position 1 goes from 18 s at N = 10 to about 70 s at N = 11.
    waits = [estimate_wait(cch_inputs(staffed=n, position=position)) for n in range(11, 40)]
    values = [w for w in waits if w is not None]
    assert len(values) == len(waits)
    assert all(a >= b for a, b in pairwise(values))
