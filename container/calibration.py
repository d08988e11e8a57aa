"""Are the predicted probabilities honest? Reliability bins and an overconfidence check.

The check asks the holdout log loss, not a plot: if the model's probabilities were right, the
labels would be draws from them, so the log loss the model *expects* on this holdout set is known
(by simulation, which stays exact for small sets and near-certain predictions where a normal
approximation is not). A log loss above nearly all simulated ones, and clearly above their mean,
means the model is more certain than it is right: its probabilities are overconfident.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RELIABILITY_BINS = 10
SIMULATIONS = 1000
# Warn when the observed log loss is above this share of simulated ones (a one-sided test at 1%)
# and at least this many times their mean (so a huge holdout does not flag a trivial gap).
SIGNIFICANCE = 0.01
MIN_RATIO = 1.25
_EPS = 1e-15  # sklearn's log_loss clips the same way


def _row_losses(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(proba[np.arange(len(y)), y], _EPS, 1.0))


def reliability(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Equal-width bins of predicted probability against the observed frequency.

    Binary: the positive class's probability against how often the row is positive.
    Multiclass: the predicted class's probability (confidence) against how often it is right.
    """
    if proba.shape[1] == 2:
        predicted, observed = proba[:, 1], (y == 1).astype(float)
        kind = f"P({classes[1]})"
    else:
        predicted = proba.max(axis=1)
        observed = (proba.argmax(axis=1) == y).astype(float)
        kind = "confidence of the predicted class"
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    bins = []
    gap = 0.0
    for b in range(RELIABILITY_BINS):
        inside = which == b
        rows = int(inside.sum())
        if not rows:
            continue
        mean_predicted = float(predicted[inside].mean())
        frequency = float(observed[inside].mean())
        gap += rows * abs(mean_predicted - frequency)
        bins.append(
            {
                "lower": round(float(edges[b]), 6),
                "upper": round(float(edges[b + 1]), 6),
                "mean_predicted": mean_predicted,
                "observed": frequency,
                "rows": rows,
            }
        )
    return {
        "predicted": kind,
        "bins": bins,
        "expected_calibration_error": gap / len(y),
    }


def overconfidence(y: np.ndarray, proba: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The holdout log loss against the log loss the model's own probabilities predict."""
    observed = float(_row_losses(y, proba).mean())
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(proba, axis=1)
    cumulative[:, -1] = 1.0  # rows that sum to 1 - 1e-16 still draw a class
    simulated = np.empty(SIMULATIONS)
    for i in range(SIMULATIONS):
        draws = (rng.random((len(y), 1)) > cumulative).sum(axis=1)
        simulated[i] = _row_losses(draws, proba).mean()
    expected = float(simulated.mean())
    p_value = float((np.sum(simulated >= observed) + 1) / (SIMULATIONS + 1))
    overconfident = p_value < SIGNIFICANCE and observed >= MIN_RATIO * expected
    return {
        "log_loss": observed,
        "expected_log_loss": expected,
        "p_value": p_value,
        "overconfident": bool(overconfident),
    }


def overconfidence_warning(check: dict[str, Any]) -> str | None:
    if not check["overconfident"]:
        return None
    return (
        f"the probabilities are overconfident: holdout log loss {check['log_loss']:.3f} is "
        f"{check['log_loss'] / check['expected_log_loss']:.1f}x the "
        f"{check['expected_log_loss']:.3f} the model's own probabilities predict "
        f"(p = {check['p_value']:.3g}); treat scores as rankings, or calibrate them "
        "(e.g. sklearn's CalibratedClassifierCV) before reading them as probabilities"
    )
