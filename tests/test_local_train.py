"""The in-process search of `local.search` (the floor `benchmarks/bench_search.py` measures)."""

from __future__ import annotations

from container.families import FAMILIES
from local.search import plan_trials


def test_trials_cover_the_families_in_turn_reproducibly() -> None:
    trials = plan_trials(14, seed=3)
    assert [t.family for t in trials[: len(FAMILIES)]] == list(FAMILIES)
    assert len(trials) == 14
    assert plan_trials(14, seed=3) == trials
    assert plan_trials(14, seed=4) != trials
