"""`mme run` underneath: what `modelbuild.run` does on AWS, against the local stand-ins.

Per dataset: stage its CSV into local S3 under its content-addressed key, build its pipeline
definition with the same code CodeBuild runs (local bucket, role and image), store it as the
pipeline's definition, check the execution's parameter values with the offline validator, look
up the group's latest version in the local registry (as modelbuild.run does in SageMaker's), and
start an execution on the local executor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from container.errors import InputError
from local.executions import ExecutionRecord
from local.executor import PipelineExecutor, resolve_parameters
from local.home import LocalHome
from local.registry import LocalModelRegistry
from modelbuild import naming
from modelbuild.datasets import Dataset, materialize
from modelbuild.naming import Params, Steps
from modelbuild.trials import CvScores, signature_cv
from modelbuild.versions import (
    LatestVersion,
    comparison_parameters,
    latest_version,
)

# `mme run` options that set a pipeline parameter of the execution (not of the definition).
PARAMETER_OPTIONS = {
    "max_jobs": Params.MAX_JOBS,
    "max_parallel_jobs": Params.MAX_PARALLEL_JOBS,
    "cv_folds": Params.CV_FOLDS,
    "threshold": Params.THRESHOLD,
    "approval_status": Params.APPROVAL_STATUS,
}


@dataclass(frozen=True)
class Pipeline:
    dataset: Dataset
    name: str
    definition: dict[str, Any]


def stage(dataset: Dataset, home: LocalHome, bucket: str, data_dir: Path | None) -> str:
    """The dataset's staged S3 URI, uploading it to local S3 unless that key already exists."""
    from modelbuild.run import staged_input

    staged = staged_input(dataset, bucket)
    if not home.s3.exists(staged.uri):
        source = staged.local if staged.local is not None else materialize(dataset, data_dir)
        home.s3.put_file(staged.uri, source)
    return staged.uri


def build(dataset: Dataset, home: LocalHome, project: str, data_dir: Path | None) -> Pipeline:
    from modelbuild.pipeline import PipelineSettings, ProjectContext, build_definition, checked

    context = checked(
        ProjectContext,
        {
            "project_name": project,
            "bucket": naming.local_bucket(project),
            "role_arn": naming.local_role_arn(project),
        },
    )
    settings = PipelineSettings.for_dataset(
        dataset,
        project_name=project,
        input_data_url=stage(dataset, home, context.bucket, data_dir),
        image_uri=naming.LOCAL_IMAGE_URI,
    )
    name = naming.pipeline_name(project, dataset.name)
    definition = build_definition(settings, context)
    home.save_pipeline(name, definition)
    return Pipeline(dataset, name, definition)


def execution_parameters(pipeline: Pipeline, overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides checked as StartPipelineExecution would: declared, typed, within API limits."""
    from modelbuild.validate import validate_definition

    values = resolve_parameters(pipeline.definition, overrides)
    problems = validate_definition(pipeline.definition, values)
    if problems:
        listing = "; ".join(str(p) for p in problems)
        raise InputError(f"parameter values rejected: {listing}", dataset=pipeline.dataset.name)
    return {k: v for k, v in values.items() if k in overrides}


class LocalVersions:
    """modelbuild.versions.ModelVersions answered from the local registry."""

    def __init__(self, registry: LocalModelRegistry) -> None:
        self.registry = registry

    def latest(self, group: str) -> LatestVersion | None:
        packages = self.registry.list_packages(group)  # newest first
        if not packages:
            return None
        newest = packages[0]
        return latest_version(
            newest.arn, newest.version, newest.approval_status, newest.customer_metadata
        )


_COMPARISON = frozenset({Params.LATEST_MODEL_SHA256, Params.LATEST_MODEL_VERSION})


def execute(
    executor: PipelineExecutor, pipeline: Pipeline, overrides: dict[str, Any]
) -> ExecutionRecord:
    """Start an execution that compares its model with the group's latest version, unless the
    overrides name the version to compare with (`-p LatestModelSha256=` registers regardless)."""
    values = execution_parameters(pipeline, overrides)
    if not _COMPARISON & set(values):
        group = resolve_parameters(pipeline.definition, values)[Params.MODEL_PACKAGE_GROUP]
        latest = LocalVersions(executor.home.registry).latest(group)
        values = {**comparison_parameters(latest), **values}
    return executor.start(pipeline.name, pipeline.definition, values)


def read_json(home: LocalHome, uri: str) -> dict[str, Any]:
    """A JSON object from local S3, or {} when it is gone or unreadable (for display only)."""
    try:
        document = json.loads(home.s3.get_bytes(uri))
    except (InputError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


@dataclass(frozen=True)
class Summary:
    """One row of the table `mme run` and `mme demo` end with."""

    dataset: str
    execution: ExecutionRecord
    best_family: str | None
    cv_score: float | None
    metric: str
    holdout: dict[str, float]
    version: int | None
    # The chosen trial's spread over its CV folds (None: its artifact holds no fold scores).
    cv_std: float | None = None

    @property
    def cv_cell(self) -> str:
        """`0.9712 ± 0.0123`: the chosen trial's CV mean and spread, as the tables print it."""
        if self.cv_score is None:
            return "-"
        spread = f" ± {self.cv_std:.4f}" if self.cv_std is not None else ""
        return f"{self.cv_score:.4f}{spread}"

    @property
    def status(self) -> str:
        return self.execution.status

    @property
    def reason(self) -> str | None:
        return self.execution.failure_reason


def best_trial_cv(home: LocalHome, artifact: str) -> CvScores | None:
    """The chosen trial's CV result from its artifact's signature (for display: None when the
    artifact is gone or unreadable, so a summary never fails over it)."""
    try:
        path = home.s3.path(artifact)
        return signature_cv(path, artifact) if path.is_file() else None
    except InputError:
        return None


def summarize(home: LocalHome, dataset: str, record: ExecutionRecord) -> Summary:
    family = cv = std = None
    tune = record.step(Steps.TUNE)
    if tune is not None and tune.status == "Succeeded":
        best = tune.properties["BestTrainingJob"]
        family = best["TrainingJobDefinitionName"]
        cv = best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        # The Tune step's one output is the best trial's model.tar.gz (cached steps keep it).
        scores = best_trial_cv(home, tune.outputs[0]) if tune.outputs else None
        std = scores.std if scores is not None else None
    holdout: dict[str, float] = {}
    metric = str(record.parameters.get(Params.METRIC, ""))
    evaluate = record.step(Steps.EVALUATE)
    if evaluate is not None and evaluate.status == "Succeeded":
        uri = evaluate.property_files.get(naming.EVALUATION_PROPERTY_FILE)
        report = read_json(home, uri) if uri else {}
        if report:
            holdout[metric] = float(report["register_metric"]["value"])
            if metric != "accuracy":
                holdout["accuracy"] = float(report["metrics"]["accuracy"])
            # Evaluate chose the model (one-standard-error rule), not necessarily the tuner's
            # top trial: show the family and CV result of what is evaluated and registered.
            family = report.get("algorithm", family)
            chosen_cv = report.get("cv") or {}
            if chosen_cv.get("mean") is not None:
                cv, std = float(chosen_cv["mean"]), chosen_cv.get("std")
    register = record.step(Steps.REGISTER)
    version = (
        register.properties.get("ModelPackageVersion")
        if register is not None and register.status == "Succeeded"
        else None
    )
    return Summary(dataset, record, family, cv, metric, holdout, version, std)
