"""The evaluation report, in the format the SageMaker model registry shows as model quality.

Problem-type sections follow the Model Monitor model-quality statistics layout
(`binary_classification_metrics` / `multiclass_classification_metrics`, each metric a
`{"value", "standard_deviation"}` pair, plus confusion matrix and curves). Standard deviations
come from a bootstrap of the holdout set. `metrics` repeats every value under the names
datasets.yml uses, and `register_metric` is the one the pipeline's condition step reads.

Everything else lives at the top level, outside the problem-type section: the registry's parser
(the SageMaker SDK's `ClassificationParser`) reads every key of that section as a metric with a
`value`, so per-class curves, calibration and warnings there would break its rendering.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm

from container import metrics
from container.calibration import overconfidence, overconfidence_warning, reliability
from container.schema import Schema

BOOTSTRAP_ROUNDS = 100
MAX_CURVE_POINTS = 1000


def _thin(*curves: np.ndarray) -> list[list[float]]:
    step = max(1, math.ceil(len(curves[0]) / MAX_CURVE_POINTS))
    return [[round(float(v), 6) for v in curve[::step]] for curve in curves]


def _bootstrap_std(name: str, y: np.ndarray, proba: np.ndarray, seed: int = 0) -> float | str:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAP_ROUNDS):
        sample = rng.integers(0, len(y), len(y))
        if len(np.unique(y[sample])) < proba.shape[1]:
            continue  # a resample missing a class has no defined AUC
        value = metrics.score(name, y[sample], proba[sample])
        if math.isfinite(value):
            values.append(value)
    return float(np.std(values)) if len(values) > 1 else "NaN"


def _entry(name: str, y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    return {
        "value": metrics.score(name, y, proba),
        "standard_deviation": _bootstrap_std(name, y, proba),
    }


def _confusion(
    y: np.ndarray, predicted: np.ndarray, labels: list[str]
) -> dict[str, dict[str, int]]:
    matrix = skm.confusion_matrix(y, predicted, labels=range(len(labels)))
    return {
        actual: {pred: int(matrix[i, j]) for j, pred in enumerate(labels)}
        for i, actual in enumerate(labels)
    }


def _curves(y_binary: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    fpr, tpr, _ = skm.roc_curve(y_binary, score)
    precision, recall, _ = skm.precision_recall_curve(y_binary, score)
    fpr_l, tpr_l = _thin(fpr, tpr)
    precision_l, recall_l = _thin(precision, recall)
    return {
        "receiver_operating_characteristic_curve": {
            "false_positive_rates": fpr_l,
            "true_positive_rates": tpr_l,
        },
        "precision_recall_curve": {"precisions": precision_l, "recalls": recall_l},
    }


def build_report(
    y: np.ndarray, proba: np.ndarray, schema: Schema, register_metric: str
) -> dict[str, Any]:
    labels = [str(c) for c in schema.classes]
    predicted = np.argmax(proba, axis=1)
    flat = {name: metrics.score(name, y, proba) for name in metrics.METRIC_NAMES}
    flat["log_loss"] = metrics.log_loss(y, proba)
    confusion = _confusion(y, predicted, labels)

    if schema.problem_type == "binary":
        tn, fp, fn, tp = skm.confusion_matrix(y, predicted, labels=[0, 1]).ravel()
        rate = lambda a, b: float(a / (a + b)) if a + b else 0.0  # noqa: E731
        section = {
            "accuracy": _entry("accuracy", y, proba),
            "precision": _entry("precision", y, proba),
            "recall": _entry("recall", y, proba),
            "f1": _entry("f1", y, proba),
            "auc": _entry("roc_auc", y, proba),
            "balanced_accuracy": _entry("balanced_accuracy", y, proba),
            "true_positive_rate": {"value": rate(tp, fn), "standard_deviation": "NaN"},
            "true_negative_rate": {"value": rate(tn, fp), "standard_deviation": "NaN"},
            "false_positive_rate": {"value": rate(fp, tn), "standard_deviation": "NaN"},
            "false_negative_rate": {"value": rate(fn, tp), "standard_deviation": "NaN"},
            "log_loss": {"value": flat["log_loss"], "standard_deviation": "NaN"},
            "confusion_matrix": confusion,
            **_curves(y, proba[:, 1]),
        }
        key = "binary_classification_metrics"
    else:
        section = {
            "accuracy": _entry("accuracy", y, proba),
            "balanced_accuracy": _entry("balanced_accuracy", y, proba),
            "macro_precision": _entry("precision", y, proba),
            "macro_recall": _entry("recall", y, proba),
            "macro_f1": _entry("f1_macro", y, proba),
            "weighted_f1": {
                "value": float(skm.f1_score(y, predicted, average="weighted", zero_division=0)),
                "standard_deviation": "NaN",
            },
            "auc": _entry("roc_auc", y, proba),
            "log_loss": {"value": flat["log_loss"], "standard_deviation": "NaN"},
            "confusion_matrix": confusion,
        }
        key = "multiclass_classification_metrics"

    check = overconfidence(y, proba)
    warning = overconfidence_warning(check)
    report: dict[str, Any] = {
        key: section,
        "metrics": flat,
        "register_metric": {"name": register_metric, **_entry(register_metric, y, proba)},
        "test_rows": len(y),
        "classes": labels,
        "calibration": {**reliability(y, proba, labels), "overconfidence": check},
        "warnings": [warning] if warning else [],
    }
    if schema.problem_type == "multiclass":
        report["one_vs_rest_curves"] = {
            label: {
                "auc": _one_vs_rest_auc(y == i, proba[:, i]),
                **_curves((y == i).astype(int), proba[:, i]),
            }
            for i, label in enumerate(labels)
        }
    return report


def _one_vs_rest_auc(is_class: np.ndarray, score: np.ndarray) -> float | str:
    # A class absent from the holdout has no ROC curve to measure.
    if is_class.all() or not is_class.any():
        return "NaN"
    return float(skm.roc_auc_score(is_class, score))
