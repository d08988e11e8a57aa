"""Metric definitions shared by cross-validation, holdout evaluation and the registration gate.

One definition per metric name, computed from class probabilities, so the CV objective a tuner
maximises and the holdout value the condition step checks are the same quantity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
from sklearn import metrics as skm

# What the training job prints and the tuning job's metric definitions read: the objective (the
# CV mean, the only value the tuner optimises), the spread of the fold scores and each fold's
# score, so a training job's FinalMetricDataList and Studio's trial view show how steady a mean is.
_NUMBER = r"(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
OBJECTIVE_METRIC_NAME = "cv_score"
OBJECTIVE_METRIC_REGEX = rf"{OBJECTIVE_METRIC_NAME}={_NUMBER};"
CV_STD_METRIC_NAME = "cv_std"
# The fold counts a dataset may use (the registry's, the pipeline settings' and the CLI's range).
# Every fold up to MAX_CV_FOLDS gets a metric definition: the fold count is a pipeline parameter,
# unknown when the definition is built, and 2 + MAX_CV_FOLDS stays within SageMaker's 40 metric
# definitions per algorithm.
MIN_CV_FOLDS = 2
MAX_CV_FOLDS = 20


def fold_metric_name(fold: int) -> str:
    """`cv_fold_<n>`, numbered from 1; `cv_fold_1=` never matches `cv_fold_10=` (the '=')."""
    return f"cv_fold_{fold}"


def _regex(name: str) -> str:
    return rf"{re.escape(name)}={_NUMBER};"


def metric_definitions() -> list[dict[str, str]]:
    """The tuning job's MetricDefinitions for every line `cv_lines` prints, objective first."""
    names = [OBJECTIVE_METRIC_NAME, CV_STD_METRIC_NAME]
    names += [fold_metric_name(fold) for fold in range(1, MAX_CV_FOLDS + 1)]
    return [{"Name": name, "Regex": _regex(name)} for name in names]


def objective_line(score: float) -> str:
    return f"{OBJECTIVE_METRIC_NAME}={score:.8f};"


def cv_lines(fold_scores: Sequence[float], std: float) -> list[str]:
    """Each fold's score, the spread, then the objective line last (the mean of the folds)."""
    lines = [
        f"{fold_metric_name(fold)}={value:.8f};" for fold, value in enumerate(fold_scores, start=1)
    ]
    lines.append(f"{CV_STD_METRIC_NAME}={std:.8f};")
    lines.append(objective_line(float(np.mean(fold_scores))))
    return lines


def parse_objective(log: str) -> float | None:
    """The last objective a training log reported, read with the tuner's own regex."""
    found = re.findall(OBJECTIVE_METRIC_REGEX, log)
    return float(found[-1]) if found else None


def parse_metrics(log: str) -> dict[str, float]:
    """Every declared metric's last value in a training log, read as SageMaker reads them."""
    found = {}
    for definition in metric_definitions():
        values = re.findall(definition["Regex"], log)
        if values:
            found[definition["Name"]] = float(values[-1])
    return found


MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _predicted(proba: np.ndarray) -> np.ndarray:
    return np.argmax(proba, axis=1)


def _binary(proba: np.ndarray) -> bool:
    return proba.shape[1] == 2


def _average(proba: np.ndarray) -> str:
    return "binary" if _binary(proba) else "macro"


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    if _binary(proba):
        return float(skm.roc_auc_score(y, proba[:, 1]))
    return float(
        skm.roc_auc_score(
            y, proba, multi_class="ovr", average="macro", labels=range(proba.shape[1])
        )
    )


# Higher is better for every metric here, so the tuner maximises and the gate is ">= threshold".
# precision, recall and f1 are for the positive class when binary, macro-averaged otherwise.
METRICS: dict[str, MetricFn] = {
    "accuracy": lambda y, p: float(skm.accuracy_score(y, _predicted(p))),
    "balanced_accuracy": lambda y, p: float(skm.balanced_accuracy_score(y, _predicted(p))),
    "precision": lambda y, p: float(
        skm.precision_score(y, _predicted(p), average=_average(p), zero_division=0)
    ),
    "recall": lambda y, p: float(
        skm.recall_score(y, _predicted(p), average=_average(p), zero_division=0)
    ),
    "f1": lambda y, p: float(skm.f1_score(y, _predicted(p), average=_average(p), zero_division=0)),
    "f1_macro": lambda y, p: float(
        skm.f1_score(y, _predicted(p), average="macro", zero_division=0)
    ),
    "roc_auc": _roc_auc,
}
METRIC_NAMES = tuple(METRICS)


def score(name: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    value = METRICS[name](y_true, proba)
    return value if math.isfinite(value) else float("nan")


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    return float(skm.log_loss(y_true, proba, labels=range(proba.shape[1])))
