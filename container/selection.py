"""Which tuning trial the pipeline registers: the one-standard-error rule over the fold scores.

The tuner maximises the mean of k cross-validation folds. With a few hundred rows that mean is
noisy, and the largest of sixty noisy means favours the settings whose scores swing most from
fold to fold: a model that won by luck. So the pipeline keeps the mean as the tuner's objective,
and then chooses among the trials it ran:

1. the best trial is the one with the highest CV mean;
2. its standard error is SE = s / sqrt(k), s the sample standard deviation (ddof=1) of its k
   fold scores (the population std the trainer reports as `cv_std`, over sqrt(k - 1));
3. the candidates are the trials whose mean is at least best mean - SE: their distance from the
   best is within the noise of the best's own estimate;
4. of the candidates, the one with the lowest fold spread (`cv_std`) is chosen; equal spreads go
   to the higher mean, then to the earlier trial (training job names carry the trial number).

Why the lowest spread and not "the simplest family" (Breiman's original tie-break): the failure
this rule answers is variance (an MLP that won CV by 0.002 and scored worst on held-out rows),
and fold spread measures exactly how much a setting's score moves when its training rows change;
it is measured, not asserted, so it needs no hand-kept complexity order over the families (is a
shallow XGBoost simpler than a wide random forest?) and it also ranks two settings of one family.
The price is bounded: every candidate is within one SE of the best mean by construction.

Trials without usable fold scores (no CV result in the signature, a metric other than the
pipeline's, fewer than two folds, a non-finite score, an unreadable artifact) are skipped with
their reason; the rule is pure, so it is tested without any artifact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from container.errors import InputError

RULE = "one-standard-error"
RULE_DESCRIPTION = (
    "among the trials whose CV mean is within one standard error (sample std of the best "
    "trial's fold scores / sqrt(folds)) of the best mean, the one with the lowest fold spread; "
    "ties: higher mean, then the earlier trial"
)
# Two means that differ by float rounding only are equal, not one SE apart.
_TOLERANCE = 1e-12
_MAX_REASON = 300


@dataclass(frozen=True)
class TrialScores:
    """What the rule needs of one trial, as its model signature records it."""

    name: str  # the training job
    algorithm: str
    fold_scores: tuple[float, ...] | None  # None: no CV result in the trial's signature
    metric: str | None = None  # the metric the folds were scored with
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None  # why the trial's artifact could not be read


@dataclass(frozen=True)
class Scored:
    trial: TrialScores
    scores: tuple[float, ...]

    @property
    def mean(self) -> float:
        return math.fsum(self.scores) / len(self.scores)

    @property
    def std(self) -> float:
        """The population std, as the trainer's `cv_std` and the signature's `cv.std`."""
        mean = self.mean
        return math.sqrt(math.fsum((s - mean) ** 2 for s in self.scores) / len(self.scores))

    @property
    def standard_error(self) -> float:
        """The standard error of the mean: sample std / sqrt(k) = population std / sqrt(k - 1)."""
        return self.std / math.sqrt(len(self.scores) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial.name,
            "algorithm": self.trial.algorithm,
            "cv_mean": self.mean,
            "cv_std": self.std,
            "standard_error": self.standard_error,
            "folds": len(self.scores),
            "fold_scores": list(self.scores),
            "hyperparameters": dict(self.trial.hyperparameters),
        }


@dataclass(frozen=True)
class Skipped:
    trial: str
    reason: str


@dataclass(frozen=True)
class Selection:
    metric: str
    best: Scored
    chosen: Scored
    threshold: float  # the lowest mean within one standard error of the best
    candidates: tuple[Scored, ...]  # the trials within it, best mean first
    scored: int  # trials with usable fold scores
    skipped: tuple[Skipped, ...]

    @property
    def reason(self) -> str:
        best, chosen = self.best, self.chosen
        window = (
            f"best CV {self.metric} mean {best.mean:.4f} ({best.trial.name}, "
            f"{best.trial.algorithm}, fold std {best.std:.4f}) minus one standard error "
            f"{best.standard_error:.4f} = {self.threshold:.4f}"
        )
        if len(self.candidates) == 1:
            return (
                f"no other of the {self.scored} scored trial(s) has a CV mean within one "
                f"standard error of the best ({window}), so the best trial is kept"
            )
        if chosen is best:
            return (
                f"{len(self.candidates)} of {self.scored} scored trials have a CV mean at or "
                f"above the {window}; the best trial also has the lowest fold spread of them, "
                "so it is kept"
            )
        return (
            f"{len(self.candidates)} of {self.scored} scored trials have a CV mean at or above "
            f"the {window}; {chosen.trial.name} ({chosen.trial.algorithm}, mean "
            f"{chosen.mean:.4f}) has the lowest fold spread of them (std {chosen.std:.4f}): "
            "its mean is as good as the best's within the noise of the best's own estimate, "
            "and its score moves least when the training rows change"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": RULE,
            "description": RULE_DESCRIPTION,
            "metric": self.metric,
            "best_trial": self.best.trial.name,
            "chosen_trial": self.chosen.trial.name,
            "chosen_algorithm": self.chosen.trial.algorithm,
            "best_mean": self.best.mean,
            "best_standard_error": self.best.standard_error,
            "threshold": self.threshold,
            "reason": self.reason,
            "trials_scored": self.scored,
            "candidates": [c.to_dict() for c in self.candidates],
            "skipped": [{"trial": s.trial, "reason": s.reason} for s in self.skipped],
        }


def _unusable(trial: TrialScores, metric: str) -> str | None:
    """Why the trial's fold scores cannot be used, or None."""
    if trial.problem is not None:
        return trial.problem[:_MAX_REASON]
    if trial.fold_scores is None:
        return "its signature has no cross-validation result"
    if trial.metric is not None and trial.metric != metric:
        return f"its folds were scored with {trial.metric!r}, not {metric!r}"
    if len(trial.fold_scores) < 2:
        return f"{len(trial.fold_scores)} fold score(s); a standard error needs at least 2"
    if not all(isinstance(s, int | float) and math.isfinite(s) for s in trial.fold_scores):
        return f"a fold score is not a finite number: {list(trial.fold_scores)}"[:_MAX_REASON]
    return None


def select(trials: Iterable[TrialScores], metric: str) -> Selection:
    """The one-standard-error choice among `trials` (every metric here is higher-is-better).

    Raises InputError when no trial has usable fold scores, naming each trial's reason.
    """
    scored: list[Scored] = []
    skipped: list[Skipped] = []
    for trial in trials:
        problem = _unusable(trial, metric)
        if problem is None:
            assert trial.fold_scores is not None
            scored.append(Scored(trial, tuple(float(s) for s in trial.fold_scores)))
        else:
            skipped.append(Skipped(trial.name, problem))
    if not scored:
        found = "; ".join(f"{s.trial}: {s.reason}" for s in skipped[:5]) or "no trial artifacts"
        raise InputError(
            f"none of the {len(skipped)} tuning trial(s) has cross-validation fold scores to "
            f"choose a model by ({found})"
        )
    ranked = sorted(scored, key=lambda s: (-s.mean, s.std, s.trial.name))
    best = ranked[0]
    threshold = best.mean - best.standard_error
    candidates = tuple(s for s in ranked if s.mean >= threshold - _TOLERANCE)
    chosen = min(candidates, key=lambda s: (s.std, -s.mean, s.trial.name))
    return Selection(
        metric=metric,
        best=best,
        chosen=chosen,
        threshold=threshold,
        candidates=candidates,
        scored=len(scored),
        skipped=tuple(sorted(skipped, key=lambda s: s.trial)),
    )
