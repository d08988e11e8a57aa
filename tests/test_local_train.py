"""The benchmarks' in-process search floor (`benchmarks/search_baseline.py`, which
`benchmarks/bench_search.py` runs); importable because pytest puts the repository root on
sys.path (tests/ is a package, so its rootdir is inserted)."""

from __future__ import annotations

from benchmarks.search_baseline import plan_trials
from container.families import FAMILIES


def test_trials_cover_the_families_in_turn_reproducibly() -> None:
    trials = plan_trials(14, seed=3)
    assert [t.family for t in trials[: len(FAMILIES)]] == list(FAMILIES)
    assert len(trials) == 14
    assert plan_trials(14, seed=3) == trials
    assert plan_trials(14, seed=4) != trials
