"""Permutation feature importance on the holdout split, in the registration metric's terms.

A feature's importance is how much the registration metric drops when that feature's column is
shuffled (the model untouched), so it speaks for the fitted pipeline as served, categorical
encoding included. Bounded so the evaluate step stays fast: at most MAX_ROWS rows and REPEATS
shuffles per feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.inspection import permutation_importance

from container import metrics

REPEATS = 5
MAX_ROWS = 1000


def feature_importance(
    estimator: Any, x: np.ndarray, y: np.ndarray, feature_names: list[str], metric: str
) -> dict[str, Any]:
    """Mean and spread of the metric's drop per feature, most important first."""

    def scorer(model: Any, features: np.ndarray, labels: np.ndarray) -> float:
        return metrics.score(metric, labels, model.predict_proba(features))

    rows = min(len(y), MAX_ROWS)
    result = permutation_importance(
        estimator,
        x,
        y,
        scoring=scorer,
        n_repeats=REPEATS,
        max_samples=rows,
        random_state=0,
        n_jobs=1,
    )
    ranked = sorted(
        zip(feature_names, result.importances_mean, result.importances_std, strict=True),
        key=lambda item: -item[1],
    )
    return {
        "method": "permutation",
        "metric": metric,
        "repeats": REPEATS,
        "rows": rows,
        "features": [
            {"name": name, "mean": float(mean), "std": float(std)} for name, mean, std in ranked
        ],
    }


def explainability_report(importance: dict[str, Any], label: str) -> dict[str, Any]:
    """The importance in the layout of SageMaker Clarify's analysis.json.

    That layout (`explanations.kernel_shap.<label>.global_shap_values`) is the one the model
    registry's Explainability report slot is rendered from, and the only one it has for global
    feature importance. The values are permutation importances, not SHAP values; `method` says so
    for any reader of the file.
    """
    return {
        "version": "1.0",
        "method": f"permutation importance: drop in holdout {importance['metric']}",
        "explanations": {
            "kernel_shap": {
                label: {
                    "global_shap_values": {f["name"]: f["mean"] for f in importance["features"]}
                }
            }
        },
    }
