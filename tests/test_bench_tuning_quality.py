"""The tuning-quality benchmark's pure parts: metrics, bootstrap intervals, goal verdicts, the
half budget, the registry entry it declares, and the loaders that need no benchmark venv.

FLAML and the pipeline never run here, and nothing is timed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_tuning_quality as bench  # noqa: E402
from tuning_quality import datasets as bench_datasets  # noqa: E402
from tuning_quality.ours import UNLIMITED_JOBS, Budget, write_registry  # noqa: E402
from tuning_quality.scoring import (  # noqa: E402
    PairedDifference,
    aligned,
    auc_difference,
    auc_rounds,
    mean_ci,
    roc_auc,
    score,
    verdict,
)

from modelbuild.datasets import load_registry  # noqa: E402


def test_binary_auc_is_the_share_of_correctly_ordered_pairs() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.65, 0.35], [0.2, 0.8]])
    # Positive scores 0.35, 0.8 against negative 0.1, 0.6: three of four pairs ordered right.
    assert roc_auc(y, proba) == pytest.approx(0.75)


def test_multiclass_auc_is_the_macro_mean_of_one_vs_rest() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    proba = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.1, 0.8],
            [0.3, 0.6, 0.1],  # a 0 ranked below both 1s on class 1
            [0.2, 0.7, 0.1],
            [0.4, 0.3, 0.3],  # a 2 ranked above the second 0 on class 0
        ]
    )
    by_hand = []
    for k in range(3):
        positive, negative = proba[y == k, k], proba[y != k, k]
        pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
        by_hand.append(np.mean(pairs))
    assert roc_auc(y, proba) == pytest.approx(np.mean(by_hand))
    assert roc_auc(y, proba) < 1.0


def test_scores_use_the_most_probable_class() -> None:
    y = np.array([0, 0, 1, 2])
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    scores = score(y, proba)
    assert scores.accuracy == pytest.approx(0.75)
    # Per class F1: class 0 precision 1 recall 0.5 -> 2/3; class 1: 0.5/1 -> 2/3; class 2: 1.
    assert scores.f1_macro == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_aligned_reorders_columns_by_label_and_fills_unseen_classes() -> None:
    proba = np.array([[0.2, 0.8], [0.7, 0.3]])
    result = aligned(proba, ["b", "a"], ["a", "b", "c"])
    np.testing.assert_allclose(result, [[0.8, 0.2, 0.0], [0.3, 0.7, 0.0]])
    with pytest.raises(ValueError, match="'z'"):
        aligned(proba, ["a", "z"], ["a", "b"])


def test_mean_ci_brackets_the_mean_and_collapses_for_equal_differences() -> None:
    mean, low, high = mean_ci([0.01, -0.02, 0.03, 0.0, 0.02, -0.01])
    assert mean == pytest.approx(0.005)
    assert low < mean < high
    assert low >= -0.02 and high <= 0.03
    assert mean_ci([0.004] * 6) == pytest.approx((0.004, 0.004, 0.004))
    # Seeded: the same interval every time.
    assert mean_ci([0.1, -0.3, 0.2]) == mean_ci([0.1, -0.3, 0.2])


@pytest.mark.parametrize("classes", [2, 4])
def test_bootstrap_auc_equals_scikit_learns_on_each_resample(classes: int) -> None:
    rng = np.random.default_rng(3)
    y = np.arange(60) % classes
    # Six distinct rows repeated, so scores tie and the mean-rank rule is exercised.
    proba = rng.dirichlet(np.ones(classes), size=6)[rng.integers(0, 6, size=60)]
    rows = rng.integers(0, 60, size=(5, 60))
    rows[:, :classes] = np.arange(classes)  # every class in every resample
    expected = [roc_auc(y[r], proba[r]) for r in rows]
    np.testing.assert_allclose(auc_rounds(y, proba, rows), expected)


def test_paired_row_bootstrap_flags_a_clearly_worse_model_only() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    good = np.column_stack([1 - y * 0.8 - 0.1, y * 0.8 + 0.1]) + rng.normal(0, 0.05, (200, 2))
    noise = rng.random(200)
    weak = np.column_stack([1 - noise, noise])
    same = auc_difference(y, good, good, rounds=200)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    assert not same.significantly_worse
    worse = auc_difference(y, weak, good, rounds=200)
    assert worse.difference < -0.3
    assert worse.significantly_worse and not worse.significantly_better


def test_verdicts_need_the_mean_and_for_equal_time_no_dataset_worse() -> None:
    level = PairedDifference(0.01, -0.01, 0.03)
    behind = PairedDifference(-0.001, -0.004, -0.0005)
    ahead = verdict({"a": level, "b": level}, 0.005, needs_none_worse=True)
    assert ahead.passed and ahead.mean == pytest.approx(0.01)
    one_worse = verdict({"a": level, "b": level, "c": behind}, 0.005, needs_none_worse=True)
    assert one_worse.mean > 0.005 and one_worse.worse == ("c",) and not one_worse.passed
    assert verdict({"a": level, "c": behind}, 0.0, needs_none_worse=False).passed
    assert not verdict({"c": behind}, 0.0, needs_none_worse=False).passed


def test_half_budget_halves_time_when_valid_else_trials() -> None:
    assert bench._half(Budget(UNLIMITED_JOBS, 300), 40) == Budget(UNLIMITED_JOBS, 150)
    # 120 s / 2 is below MaxRuntimeInSeconds' minimum: half the trials the full run managed.
    assert bench._half(Budget(UNLIMITED_JOBS, 120), 31) == Budget(15)
    assert bench._half(Budget(60), None) == Budget(30)
    with pytest.raises(SystemExit, match="run both levels"):
        bench._half(Budget(UNLIMITED_JOBS, 120), None)
    # The pipeline tries every family at least once: half must still give each family a trial.
    too_few = 2 * bench.MIN_TRIALS - 1
    with pytest.raises(SystemExit, match=f"at least {2 * bench.MIN_TRIALS} trials"):
        bench._half(Budget(too_few), None)
    with pytest.raises(SystemExit, match=f"at least {2 * bench.MIN_TRIALS} trials"):
        bench._half(Budget(UNLIMITED_JOBS, 120), too_few)
    assert bench._half(Budget(too_few + 1), None) == Budget(bench.MIN_TRIALS)


def test_the_declared_train_split_is_a_valid_registry_entry(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("island,bill,sex,species\nBiscoe,40.1,male,Adelie\n")
    path = write_registry(
        tmp_path,
        "anes96",
        train,
        target="vote",
        categorical=("PID", "educ"),
        positive_class="dole",
        budget=Budget(UNLIMITED_JOBS, 150),
    )
    dataset = load_registry(path)["anes96"]
    assert dataset.target == "vote" and dataset.positive_class == "dole"
    assert dataset.categorical == ["PID", "educ"] and dataset.threshold == 0.0
    assert dataset.budget.max_runtime_seconds == 150
    assert dataset.budget.max_parallel_jobs <= dataset.budget.max_jobs
    small = load_registry(
        write_registry(
            tmp_path,
            "penguins",
            train,
            target="species",
            categorical=(),
            positive_class=None,
            budget=Budget(4),
        )
    )["penguins"]
    assert small.budget.max_jobs == 4 and small.budget.max_parallel_jobs == 4


def test_digits_load_without_the_benchmark_environment() -> None:
    frame = bench_datasets.load("digits")
    assert frame.shape == (1797, 65)
    assert sorted(frame["digit"].unique()) == [f"d{d}" for d in range(10)]


@pytest.mark.parametrize(
    ("name", "package", "rows", "classes"),
    [
        ("penguins", "palmerpenguins", 344, 3),
        ("cars-origin", "vega_datasets", 406, 3),
        ("seattle-weather", "vega_datasets", 1461, 5),
        ("anes96", "statsmodels", 944, 2),
        ("fair", "statsmodels", 5000, 2),
    ],
)
def test_package_datasets_shapes(name: str, package: str, rows: int, classes: int) -> None:
    # These packages live in the benchmark's own environment, not the project's.
    pytest.importorskip(package)
    chosen = bench_datasets.spec(name)
    frame = bench_datasets.load(name)
    assert len(frame) == rows
    assert frame[chosen.target].nunique() == classes
    assert set(chosen.categorical) <= set(frame.columns)


def test_saved_outcomes_print_again_unchanged() -> None:
    import json
    from dataclasses import asdict

    from tuning_quality.scoring import Scores

    outcome = bench.Outcome(
        dataset="anes96",
        level="equal",
        budget="10 trials",
        ours=bench.Side(Scores(0.81, 0.75, 0.74), 95.0, "logistic-regression"),
        flaml=bench.Side(Scores(0.80, 0.74, 0.73), 97.5, "lgbm"),
        difference=PairedDifference(0.01, -0.01, 0.03),
        trials=10,
        load=3.5,
    )
    again = bench._outcome(json.loads(json.dumps(asdict(outcome))))
    assert again == outcome
    assert bench.report([again]) == bench.report([outcome])
