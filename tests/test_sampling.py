"""The local tuner's proposers: Bayesian learns from earlier trials, Random does not."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from container.families import FAMILIES
from container.search_space import CategoricalRange, ContinuousRange, Range, sample
from local.sampling import Proposer, proposer

RANGES: dict[str, tuple[Range, ...]] = {
    "left": (ContinuousRange("x", 0.0, 1.0), CategoricalRange("kind", ("p", "q"))),
    "right": (ContinuousRange("x", 0.0, 1.0),),
}
TRIALS = 40


def _run(
    strategy: str, objective: Callable[[str, dict[str, str]], float], *, parallel: int = 1
) -> list[tuple[str, dict[str, str]]]:
    """Propose TRIALS trials, each scored by `objective` as soon as it is proposed."""
    proposals = proposer(strategy, RANGES, seed=11, maximize=True, max_parallel=parallel)
    chosen = []
    for index in range(TRIALS):
        assert proposals.ready(index)
        name, tuned = proposals.propose(index)
        chosen.append((name, tuned))
        proposals.record(index, objective(name, tuned))
    return chosen


def _prefer_right_and_high_x(name: str, tuned: dict[str, str]) -> float:
    return float(tuned["x"]) + (1.0 if name == "right" else 0.0)


def _prefer_left_and_low_x(name: str, tuned: dict[str, str]) -> float:
    return -float(tuned["x"]) + (1.0 if name == "left" else 0.0)


def test_bayesian_choices_follow_the_results_of_earlier_trials() -> None:
    """Same seed, different results: the proposals part ways, each toward what scored well."""
    up = _run("Bayesian", _prefer_right_and_high_x)
    down = _run("Bayesian", _prefer_left_and_low_x)
    first_round = len(RANGES)
    assert up[:first_round] == down[:first_round], "before any result, only the seed decides"
    assert up != down
    late_up, late_down = up[TRIALS // 2 :], down[TRIALS // 2 :]
    # The family is a choice the sampler learns, and so is each family's own range.
    assert sum(name == "right" for name, _ in late_up) >= 0.7 * len(late_up)
    assert sum(name == "left" for name, _ in late_down) >= 0.7 * len(late_down)
    assert np.mean([float(t["x"]) for _, t in late_up]) > 0.65
    assert np.mean([float(t["x"]) for _, t in late_down]) < 0.35


def test_random_choices_ignore_results_and_take_families_in_turn() -> None:
    up = _run("Random", _prefer_right_and_high_x)
    assert up == _run("Random", _prefer_left_and_low_x)
    assert [name for name, _ in up] == ["left", "right"] * (TRIALS // 2)
    # The same draws as one generator sampling each trial's family in turn.
    rng = np.random.default_rng(11)
    assert [t for _, t in up] == [sample(RANGES[name], rng) for name, _ in up]


def test_bayesian_tries_every_family_first() -> None:
    ranges = {name: family.space for name, family in FAMILIES.items()}
    proposals = proposer("Bayesian", ranges, seed=0, maximize=True, max_parallel=1)
    names = []
    for index in range(len(ranges)):
        name, tuned = proposals.propose(index)
        assert FAMILIES[name].parse(tuned)  # within the family's own ranges
        names.append(name)
        proposals.record(index, None if index == 0 else 0.5)  # a failed trial is allowed
    assert names == list(FAMILIES)


def _with_arrival_order(order: Callable[[list[int]], list[int]]) -> list[tuple[str, dict]]:
    """Four trials in flight at a time, their results arriving in the given order."""
    proposals: Proposer = proposer("Bayesian", RANGES, seed=5, maximize=True, max_parallel=4)
    chosen: dict[int, tuple[str, dict]] = {}
    waiting: list[int] = []
    index = 0
    while index < TRIALS or waiting:
        while index < TRIALS and len(waiting) < 4 and proposals.ready(index):
            chosen[index] = proposals.propose(index)
            waiting.append(index)
            index += 1
        for done in order(waiting):
            proposals.record(done, _prefer_right_and_high_x(*chosen[done]))
        waiting.clear()
    return [chosen[i] for i in range(TRIALS)]


def test_parallel_trials_are_proposed_the_same_whichever_finishes_first() -> None:
    """Trial k sees exactly trials 0..k-MaxParallel, so timing cannot change an execution."""
    assert _with_arrival_order(list) == _with_arrival_order(lambda w: list(reversed(w)))


def test_a_trial_waits_for_the_results_it_depends_on() -> None:
    proposals = proposer("Bayesian", RANGES, seed=5, maximize=True, max_parallel=2)
    proposals.propose(0)
    proposals.propose(1)
    assert not proposals.ready(2), "trial 2 depends on trial 0's result"
    proposals.record(1, 0.3)
    assert not proposals.ready(2)
    proposals.record(0, 0.2)
    assert proposals.ready(2)


def test_an_unknown_strategy_is_named() -> None:
    with pytest.raises(ValueError, match="unknown tuning strategy 'Grid'"):
        proposer("Grid", RANGES, seed=0, maximize=True, max_parallel=1)
