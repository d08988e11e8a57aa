"""Cross-validate and fit one family with given hyperparameters: the body of every trial.

Shared by the training-job entry point and the in-process search, so a trial costs the same
wherever it runs and the refit model is exactly what a fresh fit with the same seed produces.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from container import metrics
from container.baseline import feature_baseline
from container.errors import InputError
from container.families import Family
from container.layout import TRAIN_FILE
from container.schema import Schema, csv_dtypes, read_csv, to_model_input


@dataclass(frozen=True)
class TrainingData:
    schema: Schema
    frame: Any  # the feature columns as read, kept for baseline statistics
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class CvResult:
    metric: str
    folds: int
    fold_scores: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "folds": self.folds,
            "mean": self.mean,
            "std": self.std,
            "fold_scores": list(self.fold_scores),
        }


def default_threads() -> int:
    """Threads for parallel folds: all cores in a training job, 1 when trials run in parallel."""
    return int(os.environ.get("MME_TRIAL_THREADS", os.cpu_count() or 1))


def load_training_data(directory: Path, dataset: str | None = None) -> TrainingData:
    schema = Schema.read(directory, dataset)
    path = directory / TRAIN_FILE
    frame = read_csv(path, schema.dataset, dtype=csv_dtypes(schema))
    if schema.target not in frame.columns:
        raise InputError(
            f"target column '{schema.target}' is absent", dataset=schema.dataset, file=path
        )
    y = frame[schema.target].to_numpy()
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(schema.classes):
        raise InputError(
            "target column must hold class indices 0..n-1 as written by preprocess",
            dataset=schema.dataset,
            file=path,
        )
    return TrainingData(schema, frame[schema.feature_names], to_model_input(frame, schema, path), y)


def _fit(pipeline: Pipeline, x: np.ndarray, y: np.ndarray) -> Pipeline:
    with warnings.catch_warnings():
        # Tuned iteration budgets are allowed to stop early; the CV score judges the result.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return pipeline.fit(x, y)


def _fold_score(
    pipeline: Pipeline, data: TrainingData, train: np.ndarray, test: np.ndarray, metric: str
) -> float:
    fitted = _fit(clone(pipeline), data.x[train], data.y[train])
    proba = fitted.predict_proba(data.x[test])
    if not np.all(np.isfinite(proba)):
        return float("nan")
    return metrics.score(metric, data.y[test], proba)


def cross_validate(
    pipeline: Pipeline,
    data: TrainingData,
    *,
    metric: str,
    folds: int,
    random_state: int,
    threads: int = 1,
) -> CvResult:
    counts = np.bincount(data.y, minlength=len(data.schema.classes))
    if counts.min() < folds:
        label = data.schema.classes[int(counts.argmin())]
        raise InputError(
            f"class {label!r} has {int(counts.min())} training row(s), fewer than {folds} folds",
            dataset=data.schema.dataset,
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    scores = Parallel(n_jobs=min(threads, folds), backend="threading")(
        delayed(_fold_score)(pipeline, data, train, test, metric)
        for train, test in splitter.split(data.x, data.y)
    )
    return CvResult(metric, folds, tuple(float(s) for s in scores))


@dataclass(frozen=True)
class TrialResult:
    estimator: Pipeline
    signature: dict[str, Any]
    cv: CvResult | None


def run_trial(
    family: Family,
    raw_hyperparameters: dict[str, Any],
    data: TrainingData,
    *,
    metric: str,
    folds: int | None,
    random_state: int,
    threads: int = 1,
) -> TrialResult:
    """CV (when folds is set) then fit on the whole training split; returns model + signature."""
    if metric not in metrics.METRICS:
        raise InputError(f"unknown metric {metric!r} (known: {list(metrics.METRIC_NAMES)})")
    params = family.parse(raw_hyperparameters)
    pipeline = family.build(params, data.schema, random_state)
    cv = None
    if folds is not None:
        if folds < 2:
            raise InputError(f"cross-validation needs at least 2 folds, got {folds}")
        cv = cross_validate(
            pipeline, data, metric=metric, folds=folds, random_state=random_state, threads=threads
        )
        if not all(math.isfinite(s) for s in cv.fold_scores):
            raise InputError(
                f"{family.name} with {raw_hyperparameters} gave no finite {metric} in "
                f"cross-validation (fold scores {list(cv.fold_scores)})",
                dataset=data.schema.dataset,
            )
    fitted = _fit(pipeline, data.x, data.y)
    signature = {
        "dataset": data.schema.dataset,
        "algorithm": family.name,
        "hyperparameters": {name: str(value) for name, value in params.items()},
        "random_state": random_state,
        "schema": data.schema.to_dict(),
        "cv": cv.to_dict() if cv else None,
        "training_rows": len(data.y),
        "baseline": feature_baseline(data.frame, data.schema),
    }
    return TrialResult(fitted, signature, cv)
