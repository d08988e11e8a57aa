"""The run command CodeBuild calls: one pipeline execution per dataset, on AWS, with boto3.

For each dataset (all registered ones, or those named): stage its data to the project bucket,
build and validate its pipeline definition, make sure its model package group exists, create or
update its pipeline with the project's role and tags, look up the group's latest version (its
model checksum is what the pipeline compares the new model with, so an unchanged model is not
registered again), and start an execution with the dataset's parameters. With --wait it then
polls every execution and exits non-zero naming, per failed dataset, the step that failed and
why; an execution that registered nothing because the model was unchanged succeeds and says so.

    python -m modelbuild.run [DATASET ...] [--wait] ...      (options: python -m modelbuild.run --help)

Environment (what a SageMaker Projects CodeBuild job provides): SAGEMAKER_PROJECT_NAME,
SAGEMAKER_PROJECT_ID, SAGEMAKER_PIPELINE_ROLE_ARN, ARTIFACT_BUCKET, IMAGE_URI, AWS_REGION.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from container.checksum import sha256_file
from container.errors import InputError
from modelbuild import naming
from modelbuild.aws_calls import NOT_FOUND_CODES, pages
from modelbuild.data_check import check_dataset
from modelbuild.datasets import CsvSource, Dataset, UrlSource, materialize
from modelbuild.naming import Steps
from modelbuild.validate import ensure_valid
from modelbuild.versions import (
    LatestVersion,
    SageMakerVersions,
    comparison_parameters,
    describe_comparison,
    unchanged_message,
)

TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped"})
DEFAULT_POLL_SECONDS = 30.0
# CodeBuild's own limit is 8 hours; a pipeline with 60 trials at 6 in parallel fits well within.
DEFAULT_TIMEOUT_SECONDS = 7 * 3600.0


@dataclass(frozen=True)
class StagedInput:
    """Where a dataset's CSV lives in S3, and the local file to upload there if it is missing."""

    uri: str
    local: Path | None = None


@dataclass
class Outcome:
    dataset: str
    pipeline: str
    execution_arn: str
    status: str = "Executing"
    failures: list[tuple[str, str]] = field(default_factory=list)
    model_package_arn: str | None = None
    # The group's latest version when the execution started (what CheckModelChanged compared
    # with), and whether the check found the new model equal to it.
    latest: LatestVersion | None = None
    unchanged: bool = False

    @property
    def failed(self) -> bool:
        return self.status in ("Failed", "Stopped")


def staged_input(dataset: Dataset, bucket: str) -> StagedInput:
    """The content-addressed S3 location of a dataset, computed without any network access.

    An s3:// CSV source is used where it is. A URL source's sha256 is already the digest of the
    CSV that materialize() produces, so its key is known without downloading it; other sources
    are materialised (scikit-learn bundles, local files) and hashed.
    """
    source = dataset.source
    if isinstance(source, CsvSource) and source.csv.startswith("s3://"):
        naming.split_s3_uri(source.csv)
        return StagedInput(source.csv)
    if isinstance(source, UrlSource):
        key = naming.staged_data_key(dataset.name, source.sha256)
        return StagedInput(naming.s3_uri(bucket, key))
    local = materialize(dataset)
    key = naming.staged_data_key(dataset.name, sha256_file(local))
    return StagedInput(naming.s3_uri(bucket, key), local)


def stage(s3: Any, dataset: Dataset, staged: StagedInput) -> bool:
    """Upload the dataset unless its content-addressed key already exists; True if uploaded."""
    if staged.uri == getattr(dataset.source, "csv", None):
        return False
    bucket, key = naming.split_s3_uri(staged.uri)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except ClientError as error:
        if error.response["Error"]["Code"] not in NOT_FOUND_CODES:
            raise
    # A URL source is only fetched now that it must be uploaded; materialize checks its sha256.
    local = staged.local if staged.local is not None else materialize(dataset)
    s3.upload_file(str(local), bucket, key)
    return True


def tags(project_name: str, project_id: str | None, dataset: str) -> list[dict[str, str]]:
    found = [
        {"Key": naming.PROJECT_NAME_TAG, "Value": project_name},
        {"Key": naming.DATASET_TAG, "Value": dataset},
    ]
    if project_id:
        found.insert(1, {"Key": naming.PROJECT_ID_TAG, "Value": project_id})
    return found


def ensure_model_package_group(
    sagemaker: Any, name: str, dataset: str, resource_tags: list[dict[str, str]]
) -> bool:
    """Create the dataset's group unless it exists (the project template creates the seeds'
    groups; a dataset added later gets its group here). True if created."""
    groups = pages(
        sagemaker.list_model_package_groups, "ModelPackageGroupSummaryList", NameContains=name
    )
    if any(group["ModelPackageGroupName"] == name for group in groups):
        return False
    sagemaker.create_model_package_group(
        ModelPackageGroupName=name,
        ModelPackageGroupDescription=f"Models for dataset {dataset}",
        Tags=resource_tags,
    )
    return True


def upsert_pipeline(
    sagemaker: Any,
    name: str,
    definition: str,
    role_arn: str,
    resource_tags: list[dict[str, str]],
    description: str,
) -> str:
    """Create or update the pipeline; returns its ARN. Tags are re-applied on update."""
    existing = [
        p["PipelineArn"]
        for p in pages(sagemaker.list_pipelines, "PipelineSummaries", PipelineNamePrefix=name)
        if p["PipelineName"] == name
    ]
    if not existing:
        return sagemaker.create_pipeline(
            PipelineName=name,
            PipelineDefinition=definition,
            PipelineDescription=description,
            RoleArn=role_arn,
            Tags=resource_tags,
        )["PipelineArn"]
    sagemaker.update_pipeline(
        PipelineName=name,
        PipelineDefinition=definition,
        PipelineDescription=description,
        RoleArn=role_arn,
    )
    sagemaker.add_tags(ResourceArn=existing[0], Tags=resource_tags)
    return existing[0]


def execution_parameters(values: dict[str, str | int | float]) -> list[dict[str, str]]:
    """All parameters, passed explicitly: an execution records exactly what it ran with."""
    return [{"Name": name, "Value": str(value)} for name, value in values.items()]


def display_name(dataset: str, source_version: str | None) -> str:
    """`<dataset>-<commit>` when CodeBuild names the commit, so executions map to pushes."""
    suffix = "".join(c for c in (source_version or "") if c.isalnum())[:12]
    return f"{dataset}-{suffix}" if suffix else dataset


def step_failures(sagemaker: Any, execution_arn: str) -> list[tuple[str, str]]:
    """(step name, reason) of each failed step; a Fail step's reason is its error message."""
    failures = []
    for step in pages(
        sagemaker.list_pipeline_execution_steps,
        "PipelineExecutionSteps",
        PipelineExecutionArn=execution_arn,
    ):
        if step.get("StepStatus") != "Failed":
            continue
        fail = step.get("Metadata", {}).get("Fail", {})
        reason = fail.get("ErrorMessage") or step.get("FailureReason") or "no reason given"
        failures.append((step["StepName"], reason))
    return failures


def registration(sagemaker: Any, execution_arn: str) -> tuple[str | None, bool]:
    """(the model package a succeeded execution registered, whether its model was unchanged)."""
    registered, unchanged = None, False
    for step in pages(
        sagemaker.list_pipeline_execution_steps,
        "PipelineExecutionSteps",
        PipelineExecutionArn=execution_arn,
    ):
        if step.get("StepStatus") != "Succeeded":
            continue
        metadata = step.get("Metadata", {})
        if step.get("StepName") == Steps.REGISTER:
            registered = metadata.get("RegisterModel", {}).get("Arn")
        elif step.get("StepName") == Steps.CHECK_CHANGED:
            unchanged = metadata.get("Condition", {}).get("Outcome") == "False"
    return registered, unchanged


def wait_for(
    sagemaker: Any,
    outcomes: list[Outcome],
    *,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = print,
) -> None:
    """Poll until every execution ends, filling in status, failures and the registered model."""
    deadline = clock() + timeout_seconds
    pending = list(outcomes)
    while pending:
        for outcome in list(pending):
            described = sagemaker.describe_pipeline_execution(
                PipelineExecutionArn=outcome.execution_arn
            )
            status = described["PipelineExecutionStatus"]
            if status != outcome.status:
                log(f"{outcome.dataset}: {status}")
            outcome.status = status
            if status not in TERMINAL_STATUSES:
                continue
            pending.remove(outcome)
            if outcome.failed:
                outcome.failures = step_failures(sagemaker, outcome.execution_arn) or [
                    ("(pipeline)", described.get("FailureReason") or status)
                ]
            else:
                outcome.model_package_arn, outcome.unchanged = registration(
                    sagemaker, outcome.execution_arn
                )
        if not pending:
            return
        if clock() >= deadline:
            raise InputError(
                f"timed out after {timeout_seconds:.0f}s waiting for "
                + ", ".join(f"{o.dataset} ({o.execution_arn})" for o in pending)
            )
        sleep(poll_seconds)


def summary(outcomes: list[Outcome]) -> str:
    lines = []
    for outcome in outcomes:
        lines.append(f"{outcome.dataset}: {outcome.status}  {outcome.execution_arn}")
        if outcome.model_package_arn:
            lines.append(f"    registered {outcome.model_package_arn}")
        elif outcome.unchanged and outcome.latest is not None:
            message = unchanged_message(outcome.latest.version, outcome.latest.model_sha256)
            lines.append(f"    {message} ({outcome.latest.arn})")
        lines.extend(f"    step {step} failed: {reason}" for step, reason in outcome.failures)
    return "\n".join(lines)


@dataclass(frozen=True)
class RunRequest:
    """Everything a run needs besides the AWS clients (see cli.run for where each comes from)."""

    datasets: list[Dataset]
    project_name: str
    project_id: str | None
    bucket: str
    role_arn: str
    region: str
    image_uri: str
    overrides: dict[str, Any]
    source_version: str | None = None
    # The datasets are every registered one (none was named): one whose data fails the early
    # check is skipped with its message instead of failing the run.
    every: bool = False


def usable(
    datasets: list[Dataset], every: bool, log: Callable[[str], None] = print
) -> list[Dataset]:
    """The datasets whose data passes the early check (modelbuild.data_check), which names the
    user's file within a second, before the SDK is imported or anything on AWS changes."""
    passed = []
    for dataset in datasets:
        try:
            found = check_dataset(dataset)
        except InputError as error:
            if not every:
                raise
            log(f"skipped: {error.describe()}")
            continue
        for note in found.notes:
            log(f"warning: {InputError(note, dataset=dataset.name, file=found.file).describe()}")
        passed.append(dataset)
    return passed


def start_all(
    request: RunRequest, s3: Any, sagemaker: Any, log: Callable[[str], None] = print
) -> list[Outcome]:
    """Check, stage, build, validate, upsert and start each dataset's pipeline; nothing waits
    here."""
    datasets = usable(request.datasets, request.every, log)
    # The SageMaker SDK takes seconds to import: only once the data is known to be usable.
    from modelbuild.pipeline import (
        PipelineSettings,
        ProjectContext,
        build_definition,
        checked,
        definition_text,
    )

    context = checked(
        ProjectContext,
        {
            "project_name": request.project_name,
            "bucket": request.bucket,
            "role_arn": request.role_arn,
            "region": request.region,
        },
    )
    # Build and validate every dataset's definition before touching AWS, so a bad entry in
    # datasets.yml stops the run before any pipeline changes.
    prepared = []
    for dataset in datasets:
        staged = staged_input(dataset, context.bucket)
        settings = PipelineSettings.for_dataset(
            dataset,
            project_name=context.project_name,
            input_data_url=staged.uri,
            image_uri=request.image_uri,
            **request.overrides,
        )
        definition = build_definition(settings, context)
        values = settings.parameter_values()
        ensure_valid(definition, values, dataset=dataset.name)
        prepared.append((dataset, staged, settings, definition, values))

    outcomes = []
    versions = SageMakerVersions(sagemaker)
    for dataset, staged, settings, definition, values in prepared:
        name = naming.pipeline_name(context.project_name, dataset.name)
        resource_tags = tags(context.project_name, request.project_id, dataset.name)
        if stage(s3, dataset, staged):
            log(f"{dataset.name}: staged data to {staged.uri}")
        if ensure_model_package_group(
            sagemaker, settings.model_package_group, dataset.name, resource_tags
        ):
            log(f"{dataset.name}: created model package group {settings.model_package_group}")
        upsert_pipeline(
            sagemaker,
            name,
            definition_text(definition),
            context.role_arn,
            resource_tags,
            f"Model build for dataset {dataset.name}: preprocess, tune, evaluate, register",
        )
        # Looked up last, just before the start, so a version registered meanwhile counts.
        latest = versions.latest(settings.model_package_group)
        log(f"{dataset.name}: {describe_comparison(latest)}")
        arn = sagemaker.start_pipeline_execution(
            PipelineName=name,
            PipelineExecutionDisplayName=display_name(dataset.name, request.source_version),
            PipelineExecutionDescription=f"{dataset.name} from {staged.uri}",
            PipelineParameters=execution_parameters({**values, **comparison_parameters(latest)}),
        )["PipelineExecutionArn"]
        log(f"{dataset.name}: started {arn}")
        outcomes.append(Outcome(dataset.name, name, arn, latest=latest))
    return outcomes


def clients(region: str) -> tuple[Any, Any]:
    session = boto3.Session(region_name=region)
    return session.client("s3"), session.client("sagemaker")
