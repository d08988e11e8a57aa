"""Train one registered dataset end to end on this machine: split, search, evaluate, gate.

The same container entry points a SageMaker pipeline runs (preprocess, the training trial,
evaluate), called in-process, with the search spread over warm worker processes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from container import preprocess
from container.artifact import pack
from container.evaluate import evaluate
from container.layout import ARTIFACT_FILE
from local.search import TrialOutcome, best_trial, plan_trials, search
from modelbuild.datasets import Dataset, materialize


@dataclass(frozen=True)
class DatasetResult:
    dataset: Dataset
    best: TrialOutcome
    trials: int
    failed_trials: int
    report: dict[str, Any]
    artifact: Path

    @property
    def holdout_value(self) -> float:
        return float(self.report["register_metric"]["value"])

    @property
    def passes_gate(self) -> bool:
        return self.holdout_value >= self.dataset.threshold


def train_dataset(
    dataset: Dataset,
    pool: ProcessPoolExecutor,
    workdir: Path,
    *,
    max_jobs: int | None = None,
    data_dir: Path | None = None,
    on_trial: Callable[[TrialOutcome], None] = lambda outcome: None,
) -> DatasetResult:
    root = workdir / dataset.name
    source = materialize(dataset, data_dir)
    preprocess.main(
        [
            f"--dataset={dataset.name}",
            f"--target={dataset.target}",
            f"--positive-class={dataset.positive_class or ''}",
            f"--categorical={','.join(dataset.categorical)}",
            f"--test-size={dataset.test_size}",
            f"--random-state={dataset.random_state}",
            f"--cv-folds={dataset.cv_folds}",
            f"--input={source}",
            f"--train-dir={root / 'train'}",
            f"--test-dir={root / 'test'}",
        ]
    )
    trials = plan_trials(max_jobs or dataset.budget.max_jobs, dataset.random_state)
    outcomes = search(
        pool,
        root / "train",
        root / "trials",
        trials=trials,
        metric=dataset.metric,
        folds=dataset.cv_folds,
        random_state=dataset.random_state,
        on_trial=on_trial,
    )
    best = best_trial(outcomes)
    assert best.model_dir is not None
    artifact = pack(best.model_dir, root / "best" / ARTIFACT_FILE)
    report = evaluate(artifact, root / "test", root / "evaluation", dataset.metric)
    return DatasetResult(
        dataset=dataset,
        best=best,
        trials=len(outcomes),
        failed_trials=sum(o.score is None for o in outcomes),
        report=report,
        artifact=artifact,
    )
