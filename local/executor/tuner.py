"""The local hyperparameter tuning job a Tuning step runs.

Each trial is drawn from the training job definitions' ranges by the strategy's proposer
(`local.sampling`: `Random` at random, `Bayesian` with a model-based sampler that learns from
earlier trials; both seeded by RandomSeed, so an execution is reproducible). At most
MaxParallelTrainingJobs run at once (and no more than the runner has workers, the cores shared
between them); no trial starts after ResourceLimits.MaxRuntimeInSeconds. Every trial's metrics
are read from its log with the definition's MetricDefinitions regexes, and TrainingJobSummaries
are sorted best first by the objective's type, which is what the definition's
`TrainingJobSummaries[0]` references rely on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from container.search_space import CategoricalRange, ContinuousRange, IntegerRange, Range
from local.executions import now
from local.executor.layout import job_name, short_hash
from local.executor.model import Outcome, StepFailure
from local.executor.steps.base import StepContext
from local.executor.steps.training import finish_training, training_job
from local.expressions import text
from local.jobs import Job, JobResult
from local.registry import LOCAL_ACCOUNT, LOCAL_REGION
from local.sampling import STRATEGIES, Proposer, proposer

OBJECTIVE = "FinalHyperParameterTuningJobObjectiveMetric"


@dataclass
class Trial:
    index: int
    definition: dict[str, Any]
    tuned: dict[str, str]
    name: str
    started: str = ""
    result: JobResult | None = None
    artifact: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    # Every metric the definitions' regexes read from its log (objective, spread, folds).
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        return self.summary.get(OBJECTIVE, {}).get("Value")


def training_definitions(arguments: Mapping[str, Any]) -> list[dict[str, Any]]:
    """TrainingJobDefinitions, or the single TrainingJobDefinition, as one list."""
    return arguments.get("TrainingJobDefinitions") or [arguments.get("TrainingJobDefinition") or {}]


def ranges(definition: Mapping[str, Any], step: str) -> tuple[Range, ...]:
    """A training job definition's HyperParameterRanges as the shared search-space types."""
    raw = definition.get("HyperParameterRanges") or {}
    found: list[Range] = []
    for kind, spec_type, convert in (
        ("IntegerParameterRanges", IntegerRange, int),
        ("ContinuousParameterRanges", ContinuousRange, float),
    ):
        for item in raw.get(kind) or []:
            scale = item.get("ScalingType", "Auto")
            if scale not in ("Auto", "Linear", "Logarithmic"):
                raise StepFailure(
                    f"step '{step}': range {item['Name']!r} uses ScalingType {scale}, which the "
                    "local tuner does not support (Auto, Linear, Logarithmic)"
                )
            found.append(
                spec_type(
                    item["Name"],
                    convert(item["MinValue"]),
                    convert(item["MaxValue"]),
                    "Logarithmic" if scale == "Logarithmic" else "Linear",
                )
            )
    for item in raw.get("CategoricalParameterRanges") or []:
        found.append(CategoricalRange(item["Name"], tuple(str(v) for v in item["Values"])))
    return tuple(found)


def _objectives(
    definitions: list[dict[str, Any]], shared: dict[str, Any] | None
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Each definition's objective (its own, else the job's), and whether to maximize."""
    objectives = {}
    for index, definition in enumerate(definitions):
        definition.setdefault("DefinitionName", f"definition-{index}")
        objective = definition.get("TuningObjective") or shared
        if not objective:
            raise StepFailure(f"{definition['DefinitionName']}: no tuning objective")
        objectives[definition["DefinitionName"]] = objective
    kinds = {o["Type"] for o in objectives.values()}
    if len(kinds) != 1 or not kinds <= {"Maximize", "Minimize"}:
        raise StepFailure(f"tuning objectives must share one type, got {sorted(kinds)}")
    return objectives, kinds == {"Maximize"}


class TuningJob:
    """One HyperParameterTuningJob: trials proposed, run on the worker pool, summarized."""

    def __init__(self, context: StepContext, step: str, arguments: dict[str, Any]) -> None:
        self.context, self.step = context, step
        config = arguments.get("HyperParameterTuningJobConfig") or {}
        limits = config.get("ResourceLimits") or {}
        self.max_jobs = int(limits.get("MaxNumberOfTrainingJobs", 1))
        max_parallel = int(limits.get("MaxParallelTrainingJobs", 1))
        self.max_seconds = limits.get("MaxRuntimeInSeconds")
        self.strategy = text(config.get("Strategy", "Bayesian"))
        if self.strategy not in STRATEGIES:
            raise StepFailure(
                f"tuning strategy {self.strategy} is not supported locally "
                f"({', '.join(STRATEGIES)} are)"
            )
        definitions = training_definitions(arguments)
        self.objectives, self.maximize = _objectives(
            definitions, config.get("HyperParameterTuningJobObjective")
        )
        self.by_name = {d["DefinitionName"]: d for d in definitions}
        self.proposals: Proposer = proposer(
            self.strategy,
            {name: ranges(d, step) for name, d in self.by_name.items()},
            int(config.get("RandomSeed") or 0),
            maximize=self.maximize,
            max_parallel=max_parallel,
        )
        self.name = job_name(context.execution_id, step, limit=32)
        workers = context.runner.workers
        self.parallel = max(1, min(max_parallel, workers))
        self.threads = max(1, workers // self.parallel)

    def run(self) -> Outcome:
        trials = self._run_trials()
        if not trials:
            raise StepFailure(
                f"MaxRuntimeInSeconds ({self.max_seconds}) ended before any trial started"
            )
        return self._outcome(trials)

    def _run_trials(self) -> list[Trial]:
        deadline = None if self.max_seconds is None else time.monotonic() + int(self.max_seconds)
        pending: deque[int] = deque(range(self.max_jobs))
        running: dict[Future[JobResult], tuple[Trial, Job]] = {}
        trials: list[Trial] = []
        finished = 0
        while pending or running:
            if deadline is not None and time.monotonic() >= deadline:
                pending.clear()  # past the time budget: let running trials finish, start none
            while pending and len(running) < self.parallel and self.proposals.ready(pending[0]):
                trial = self._propose(pending.popleft())
                trials.append(trial)
                hyperparameters = {**(trial.definition.get("StaticHyperParameters") or {})}
                hyperparameters.update(trial.tuned)
                trial.started = now()
                try:
                    job = training_job(
                        self.context, trial.name, trial.definition, hyperparameters, self.threads
                    )
                except StepFailure as failure:
                    self._finish(trial, {}, failure.reason)
                    finished += 1
                    continue
                running[self.context.runner.submit(job)] = (trial, job)
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                trial, job = running.pop(future)
                trial.result = future.result()
                trial.artifact, metrics, failure = finish_training(
                    self.context, job, trial.result, trial.definition
                )
                self._finish(trial, metrics, failure)
                finished += 1
                status = trial.summary["TrainingJobStatus"]
                self.context.progress(
                    self.step, "job-finished", done=finished, total=self.max_jobs, status=status
                )
        return trials

    def _propose(self, index: int) -> Trial:
        definition_name, tuned = self.proposals.propose(index)
        name = job_name(self.name, f"{index + 1:03d}", short_hash(tuned))
        return Trial(index, self.by_name[definition_name], tuned, name)

    def _finish(self, trial: Trial, metrics: dict[str, float], failure: str | None) -> None:
        objective = self.objectives[trial.definition["DefinitionName"]]
        trial.summary = self._summary(trial, objective, metrics, failure)
        trial.metrics = metrics
        self.proposals.record(trial.index, trial.value)

    def _summary(
        self,
        trial: Trial,
        objective: dict[str, Any],
        metrics: dict[str, float],
        failure: str | None,
    ) -> dict[str, Any]:
        """The trial as HyperParameterTrainingJobSummary describes it."""
        summary: dict[str, Any] = {
            "TrainingJobDefinitionName": trial.definition["DefinitionName"],
            "TrainingJobName": trial.name,
            "TrainingJobArn": (
                f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:training-job/{trial.name}"
            ),
            "TuningJobName": self.name,
            "CreationTime": trial.started,
            "TrainingStartTime": trial.started,
            "TrainingEndTime": now(),
            "TrainingJobStatus": "Completed" if failure is None else "Failed",
            "TunedHyperParameters": trial.tuned,
        }
        value = metrics.get(objective["MetricName"])
        if failure is None and value is None:
            failure = (
                f"the job's output has no '{objective['MetricName']}' objective line "
                "(the metric definition's regex found nothing)"
            )
            summary["TrainingJobStatus"] = "Failed"
        if failure is not None:
            summary["FailureReason"] = failure
            summary["ObjectiveStatus"] = "Failed"
            return summary
        summary[OBJECTIVE] = {
            "Type": objective["Type"],
            "MetricName": objective["MetricName"],
            "Value": value,
        }
        summary["ObjectiveStatus"] = "Succeeded"
        return summary

    def _rank(self, trial: Trial) -> tuple[int, float, int]:
        """Best objective first, trials without one last; ties go to the earlier trial."""
        value = trial.value
        if value is None:
            return (1, 0.0, trial.index)
        return (0, -value if self.maximize else value, trial.index)

    def _outcome(self, trials: list[Trial]) -> Outcome:
        ranked = sorted(trials, key=self._rank)
        summaries = [t.summary for t in ranked]
        logs = [self.context.layout.relative(t.result.log) for t in trials if t.result is not None]
        best = summaries[0]
        if OBJECTIVE not in best:
            reasons = sorted({s.get("FailureReason", "") for s in summaries})
            raise StepFailure(
                f"none of the {len(trials)} training jobs reported its objective; "
                f"first failure: {reasons[0] if reasons else 'unknown'}",
                logs=logs,
            )
        completed = sum(s["TrainingJobStatus"] == "Completed" for s in summaries)
        properties = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobStatus": "Completed",
            "BestTrainingJob": best,
            "TrainingJobSummaries": summaries,
            "TrainingJobStatusCounters": {
                "Completed": completed,
                "NonRetryableError": len(summaries) - completed,
            },
        }
        metadata = {
            "TuningJob": self.name,
            "Strategy": self.strategy,
            "Sampling": self.proposals.description,
            "ParallelJobs": self.parallel,
            # What DescribeTrainingJob's FinalMetricDataList says of each trial on AWS (a
            # summary carries the objective only): `mme trials` reads the fold scores from it.
            "TrialMetrics": {
                t.name: [{"MetricName": k, "Value": v} for k, v in t.metrics.items()]
                for t in trials
                if t.metrics
            },
        }
        return Outcome(properties, {}, [str(ranked[0].artifact)], logs, metadata)
