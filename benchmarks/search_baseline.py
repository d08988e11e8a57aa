"""The benchmarks' floor: an in-process hyperparameter search over the families, on warm workers.

Not the pipeline's tuner (that is `local.executor.tuner`, driven by the definition): this is the
least a search can cost, which `bench_search.py` and `bench_local_pipeline.py` print beside the
executor's numbers. A trial is what one SageMaker training job in the tuning step does (CV,
refit, save the model into its own output directory), run by a worker of `local.jobs`' pool that
imported the libraries and read the training split once. Trials are spread over the families in
turn, like a multi-algorithm tuning job, with hyperparameters drawn from the shared search spaces.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from container.errors import InputError
from container.families import FAMILIES, get_family
from container.search_space import sample
from local.jobs import new_pool, warm_up

__all__ = [
    "TrialOutcome",
    "TrialSpec",
    "best_trial",
    "plan_trials",
    "search",
    "warm_up",
    "worker_pool",
]

_worker_data: dict[str, object] = {}


@dataclass(frozen=True)
class TrialSpec:
    number: int
    family: str
    hyperparameters: dict[str, str]


@dataclass(frozen=True)
class TrialOutcome:
    spec: TrialSpec
    score: float | None
    model_dir: Path | None
    seconds: float
    error: str | None = None


def plan_trials(
    max_jobs: int, seed: int, families: tuple[str, ...] = tuple(FAMILIES)
) -> list[TrialSpec]:
    """Families in turn, each trial's hyperparameters drawn with its own seeded generator."""
    rng = np.random.default_rng(seed)
    trials = []
    for number in range(max_jobs):
        family = families[number % len(families)]
        trials.append(TrialSpec(number, family, sample(FAMILIES[family].space, rng)))
    return trials


def run_one(
    spec: TrialSpec, train_dir: Path, output_root: Path, metric: str, folds: int, random_state: int
) -> TrialOutcome:
    """One trial in a worker: CV, refit on the whole split, save the model like a training job."""
    from container.artifact import save_model
    from container.training import load_training_data, run_trial

    key = str(train_dir)
    if key not in _worker_data:
        _worker_data.clear()  # one dataset at a time per worker keeps memory flat
        _worker_data[key] = load_training_data(train_dir)
    data = _worker_data[key]
    started = time.perf_counter()
    try:
        result = run_trial(
            get_family(spec.family),
            spec.hyperparameters,
            data,  # type: ignore[arg-type]
            metric=metric,
            folds=folds,
            random_state=random_state,
        )
    except InputError as error:
        return TrialOutcome(spec, None, None, time.perf_counter() - started, error.describe())
    model_dir = output_root / f"trial-{spec.number:03d}-{spec.family}"
    save_model(model_dir, result.estimator, result.signature)
    assert result.cv is not None
    return TrialOutcome(spec, result.cv.mean, model_dir, time.perf_counter() - started)


@contextmanager
def worker_pool(workers: int | None = None) -> Iterator[ProcessPoolExecutor]:
    """Warm workers reused across datasets, with the training libraries imported."""
    with new_pool(workers, ("container.training",)) as pool:
        yield pool


def search(
    pool: ProcessPoolExecutor,
    train_dir: Path,
    output_root: Path,
    *,
    trials: list[TrialSpec],
    metric: str,
    folds: int,
    random_state: int,
    on_trial: Callable[[TrialOutcome], None] = lambda outcome: None,
) -> list[TrialOutcome]:
    """Run every trial; the outcomes come back in trial order."""
    if output_root.exists():
        shutil.rmtree(output_root)
    output_root.mkdir(parents=True)
    futures = [
        pool.submit(run_one, spec, train_dir, output_root, metric, folds, random_state)
        for spec in trials
    ]
    outcomes = []
    for future in as_completed(futures):
        outcome = future.result()
        on_trial(outcome)
        outcomes.append(outcome)
    return sorted(outcomes, key=lambda o: o.spec.number)


def best_trial(outcomes: list[TrialOutcome]) -> TrialOutcome:
    """Highest CV score; ties go to the earlier trial, so the choice is reproducible."""
    scored = [o for o in outcomes if o.score is not None]
    if not scored:
        errors = "; ".join(sorted({o.error or "" for o in outcomes}))[:500]
        raise InputError(f"every trial failed: {errors}")
    return max(scored, key=lambda o: (o.score, -o.spec.number))
