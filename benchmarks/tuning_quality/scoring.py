"""The benchmark's arithmetic: holdout metrics, bootstrap intervals and the goals' verdicts.

Pure functions of labels and probabilities, so both sides are scored by the same code in the
same process, whatever produced the probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics as skm

BOOTSTRAP_SEED = 17
# The goals of issue 17: mean holdout AUC ours - FLAML at equal wall time, and at half of it.
EQUAL_TIME_GOAL = 0.005
HALF_TIME_GOAL = 0.0


@dataclass(frozen=True)
class Scores:
    roc_auc: float
    accuracy: float
    f1_macro: float


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: AUC of the class in column 1; multiclass: one-vs-rest, macro-averaged.

    `y` holds column indices of `proba`."""
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y, proba[:, 1]))
    return float(
        skm.roc_auc_score(
            y, proba, multi_class="ovr", average="macro", labels=range(proba.shape[1])
        )
    )


def score(y: np.ndarray, proba: np.ndarray) -> Scores:
    """AUC, accuracy and macro F1 of the most probable class."""
    predicted = np.argmax(proba, axis=1)
    return Scores(
        roc_auc=roc_auc(y, proba),
        accuracy=float(skm.accuracy_score(y, predicted)),
        f1_macro=float(
            skm.f1_score(
                y, predicted, average="macro", labels=range(proba.shape[1]), zero_division=0
            )
        ),
    )


def aligned(proba: np.ndarray, classes: list[str], order: list[str]) -> np.ndarray:
    """Probability columns reordered to `order` (labels as text); a class the model never saw
    gets probability 0."""
    index = {str(label): i for i, label in enumerate(classes)}
    unknown = sorted(set(index) - set(order))
    if unknown:
        raise ValueError(f"the model predicts labels {unknown} outside the dataset's {order}")
    columns = [
        proba[:, index[label]] if label in index else np.zeros(len(proba)) for label in order
    ]
    return np.column_stack(columns)


def mean_ci(
    differences: list[float] | np.ndarray, *, rounds: int = 10_000, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float, float]:
    """The mean of per-dataset differences (ours - theirs, each dataset paired with itself) and
    its 95% percentile bootstrap interval, resampling datasets with replacement."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        raise ValueError("no differences to average")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(rounds, values.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def _stratified_rows(y: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """`rounds` bootstrap samples of row indices (one per line), each drawn within each class,
    so every class keeps its count and the one-vs-rest AUC stays defined in every round."""
    parts = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        parts.append(rows[rng.integers(0, rows.size, size=(rounds, rows.size))])
    return np.concatenate(parts, axis=1)


def auc_rounds(y: np.ndarray, proba: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`roc_auc(y[r], proba[r])` for each line `r` of `rows`, all at once: the Mann-Whitney
    form (rank sums, ties at their mean rank), which thousands of bootstrap rounds need to be
    quick on a busy machine."""
    labels = y[rows]
    size = rows.shape[1]
    columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    per_class = []
    for k in columns:
        ranks = rankdata(proba[rows, k], axis=1)
        positive = labels == k
        count = positive.sum(axis=1)
        rank_sum = np.where(positive, ranks, 0.0).sum(axis=1)
        per_class.append((rank_sum - count * (count + 1) / 2) / (count * (size - count)))
    return np.mean(per_class, axis=0)


@dataclass(frozen=True)
class PairedDifference:
    difference: float
    low: float
    high: float

    @property
    def significantly_worse(self) -> bool:
        """Ours is worse on this dataset beyond the test rows' sampling noise."""
        return self.high < 0.0

    @property
    def significantly_better(self) -> bool:
        return self.low > 0.0


def auc_difference(
    y: np.ndarray,
    ours: np.ndarray,
    theirs: np.ndarray,
    *,
    rounds: int = 2000,
    seed: int = BOOTSTRAP_SEED,
) -> PairedDifference:
    """AUC(ours) - AUC(theirs) on one test set, with a 95% interval from resampling the test
    rows (the same rows for both models in each round: a paired bootstrap)."""
    rows = _stratified_rows(y, rounds, np.random.default_rng(seed))
    differences = auc_rounds(y, ours, rows) - auc_rounds(y, theirs, rows)
    low, high = np.percentile(differences, [2.5, 97.5])
    return PairedDifference(roc_auc(y, ours) - roc_auc(y, theirs), float(low), float(high))


@dataclass(frozen=True)
class Verdict:
    mean: float
    low: float
    high: float
    worse: tuple[str, ...]
    goal: float
    needs_none_worse: bool

    @property
    def passed(self) -> bool:
        return self.mean >= self.goal and not (self.needs_none_worse and self.worse)


def verdict(
    differences: dict[str, PairedDifference], goal: float, *, needs_none_worse: bool
) -> Verdict:
    """A goal row: the mean AUC difference over datasets against `goal` and, if asked, no
    dataset significantly worse."""
    mean, low, high = mean_ci([d.difference for d in differences.values()])
    worse = tuple(name for name, d in differences.items() if d.significantly_worse)
    return Verdict(mean, low, high, worse, goal, needs_none_worse)
