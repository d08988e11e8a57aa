"""The tuning leaderboard of one pipeline execution, whichever runtime ran its trials.

Each row starts from what SageMaker says of a trial in a HyperParameterTrainingJobSummary
(ListTrainingJobsForHyperParameterTuningJob on AWS, the Tune step's record locally): family (the
training job definition), tuned hyperparameters, status, times, failure reason and the objective.
A summary has no per-fold scores, so each source supplies them through a `ScoreLookup`: on AWS
the trial's FinalMetricDataList (the `cv_std=` and `cv_fold_<k>=` metric lines) when it has
them, else the trial's model signature; locally the signature. The signature (`signature.json`
in model.tar.gz, written by `container.training.run_trial`) is read without unpickling the model.

This module has no AWS or local-runtime code: `modelbuild.trials_aws` and `local.trials_cli`
are the two sources, and both print through the same rows.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from container.errors import InputError
from container.layout import SIGNATURE_FILE
from container.metrics import CV_STD_METRIC_NAME, OBJECTIVE_METRIC_NAME
from container.trials import find_signature

# The fold metrics a trainer prints beside its objective (container.metrics.fold_metric_name:
# `cv_fold_1=0.97;` ..., numbered from 1), read back in fold order.
CV_FOLD_METRIC = re.compile(r"cv_fold_(\d+)")


@dataclass(frozen=True)
class CvScores:
    """One trial's cross-validation result: the mean the tuner ranked on, its spread, the folds."""

    mean: float
    std: float | None
    fold_scores: list[float] | None


@dataclass(frozen=True)
class TrialScores:
    """What a source found for a trial beyond its summary (None: nothing, e.g. a gone artifact)."""

    cv: CvScores | None = None
    artifact: str | None = None


# A source's lookup of one summary's fold scores and model artifact.
ScoreLookup = Callable[[Mapping[str, Any]], TrialScores]


@dataclass(frozen=True)
class Trial:
    rank: int | None  # None: the trial reported no objective
    training_job: str
    family: str
    hyperparameters: dict[str, str]  # the tuned ones, as the tuner passed them
    status: str
    cv_mean: float | None
    cv_std: float | None
    fold_scores: list[float] | None  # None: neither metrics nor a readable artifact carry them
    seconds: float | None
    failure_reason: str | None
    artifact: str | None


@dataclass(frozen=True)
class Leaderboard:
    """Every trial of one execution's tuning step, best first."""

    execution: str  # a local execution id, or a pipeline execution ARN
    pipeline: str
    dataset: str
    status: str  # the execution's
    tuning_job: str | None
    cached_from: str | None  # the execution whose tuning step this one reused
    metric: str
    trials: list[Trial]

    @property
    def completed(self) -> int:
        return sum(t.status == "Completed" for t in self.trials)

    def document(self, limit: int | None = None) -> dict[str, Any]:
        """The leaderboard as `mme trials --json` prints it (the best `limit` trials)."""
        return {
            "execution": self.execution,
            "pipeline": self.pipeline,
            "dataset": self.dataset,
            "status": self.status,
            "tuning_job": self.tuning_job,
            "cached_from": self.cached_from,
            "metric": self.metric,
            "trials_total": len(self.trials),
            "trials": [asdict(t) for t in self.trials[:limit]],
        }


def _time(value: Any) -> datetime | None:
    """A summary's time: a datetime from boto3, an ISO string from a local record."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def trial_seconds(summary: Mapping[str, Any]) -> float | None:
    started, ended = _time(summary.get("TrainingStartTime")), _time(summary.get("TrainingEndTime"))
    if started is None or ended is None:
        return None
    return (ended - started).total_seconds()


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def cv_from_metrics(metrics: Iterable[Mapping[str, Any]] | None) -> CvScores | None:
    """The CV result a trial emitted as metrics (DescribeTrainingJob's FinalMetricDataList), or
    None when it emitted no fold scores (a trainer older than the `cv_fold_<k>=` lines)."""
    values = {m.get("MetricName"): _finite(m.get("Value")) for m in metrics or []}
    folds = sorted(
        (int(match.group(1)), value)
        for name, value in values.items()
        if isinstance(name, str)
        and (match := CV_FOLD_METRIC.fullmatch(name)) is not None
        and value is not None
    )
    if not folds:
        return None
    scores = [value for _, value in folds]
    mean = values.get(OBJECTIVE_METRIC_NAME)
    std = values.get(CV_STD_METRIC_NAME)
    return CvScores(
        mean=mean if mean is not None else statistics.fmean(scores),
        # The trainer's std is numpy's (population); computed the same way when it is missing.
        std=std if std is not None else statistics.pstdev(scores),
        fold_scores=scores,
    )


def _cv_section(signature: Any, source: str) -> CvScores | None:
    cv = signature.get("cv") if isinstance(signature, dict) else None
    if not isinstance(cv, dict):
        return None  # a model trained without cross-validation (a plain training step)
    scores = cv.get("fold_scores")
    if not isinstance(scores, list) or not scores or any(_finite(s) is None for s in scores):
        raise InputError(f"{SIGNATURE_FILE} has no list of finite cv.fold_scores", file=source)
    folds = [float(s) for s in scores]
    mean, std = _finite(cv.get("mean")), _finite(cv.get("std"))
    return CvScores(
        mean=mean if mean is not None else statistics.fmean(folds),
        std=std if std is not None else statistics.pstdev(folds),
        fold_scores=folds,
    )


def signature_cv(archive: Path, source: str) -> CvScores | None:
    """The `cv` section of the signature inside a model.tar.gz at `archive`, read through the
    hardened archive reader without unpacking (or unpickling) the model; None when the
    signature holds no CV result. `source` names the artifact in errors (its S3 URI)."""
    signature = find_signature(archive, source)
    return None if signature is None else _cv_section(signature, source)


def _order(summary: Mapping[str, Any]) -> tuple[int, float]:
    """Trials with an objective first, best first by the objective's own type; the rest after."""
    objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    value = _finite(objective.get("Value"))
    if value is None:
        return (1, 0.0)
    return (0, -value if objective.get("Type", "Maximize") == "Maximize" else value)


def rank_trials(summaries: Iterable[Mapping[str, Any]], lookup: ScoreLookup) -> list[Trial]:
    """Every summary as a Trial, best first; a failed or stopped trial is kept, unranked, with
    its FailureReason. A completed trial with no fold scores keeps the tuner's objective as
    its mean. Ties keep the summaries' order (the earlier trial first)."""
    ordered = sorted(summaries, key=_order)  # sorted() is stable
    trials = []
    position = 0
    for summary in ordered:
        objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        value = _finite(objective.get("Value"))
        found = (
            lookup(summary) if summary.get("TrainingJobStatus") == "Completed" else TrialScores()
        )
        cv = found.cv
        if value is not None:
            position += 1
        trials.append(
            Trial(
                rank=position if value is not None else None,
                training_job=str(summary["TrainingJobName"]),
                family=str(summary.get("TrainingJobDefinitionName") or "-"),
                hyperparameters={
                    str(k): str(v) for k, v in (summary.get("TunedHyperParameters") or {}).items()
                },
                status=str(summary.get("TrainingJobStatus", "Unknown")),
                cv_mean=cv.mean if cv else value,
                cv_std=cv.std if cv else None,
                fold_scores=list(cv.fold_scores) if cv and cv.fold_scores else None,
                seconds=trial_seconds(summary),
                failure_reason=summary.get("FailureReason") or None,
                artifact=found.artifact,
            )
        )
    return trials
