"""Metric definitions shared by cross-validation, holdout evaluation and the registration gate.

One definition per metric name, computed from class probabilities, so the CV objective a tuner
maximises and the holdout value the condition step checks are the same quantity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

# What the training job prints and the tuning job's metric definition reads.
OBJECTIVE_METRIC_NAME = "cv_score"
OBJECTIVE_METRIC_REGEX = r"cv_score=(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?);"


def objective_line(score: float) -> str:
    return f"{OBJECTIVE_METRIC_NAME}={score:.8f};"


def parse_objective(log: str) -> float | None:
    """The last objective a training log reported, read with the tuner's own regex."""
    found = re.findall(OBJECTIVE_METRIC_REGEX, log)
    return float(found[-1]) if found else None


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
