"""The tuning leaderboard of a pipeline execution on AWS, read with boto3 (no SageMaker SDK).

Given an execution ARN (DescribePipelineExecution), or a dataset (ListPipelineExecutions of its
pipeline, newest first, up to the first that reached tuning):

1. ListPipelineExecutionSteps: the Tune step and, in its metadata, the tuning job's ARN (a
   cached step names the tuning job of the execution it reused);
2. ListPipelineParametersForExecution: the dataset and the metric the objective is;
3. ListTrainingJobsForHyperParameterTuningJob, every page: one summary per trial. Sorted here,
   by the objective's type, not by the API: SortBy=FinalObjectiveMetricValue leaves out every
   trial that reported no objective, which would hide exactly the failed ones. SageMaker
   lowercases the ARN the step names while the job's name may have capitals; when that name is
   not found, ListHyperParameterTuningJobs around the step's start time gives the real one;
4. per completed trial, DescribeTrainingJob: its fold scores from FinalMetricDataList when the
   trainer printed `cv_fold_<k>=` lines, else from the signature in its model artifact
   (ModelArtifacts.S3ModelArtifacts, S3 GetObject).

These run with the caller's own credentials (a Studio user's execution role, a developer's
profile), not a project role; PERMISSIONS lists what they need. Throttling and outages, once
botocore's retries are spent, are ServiceError (retryable); everything else is InputError.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from container.archive import max_unpacked_bytes
from container.errors import InputError, ServiceError
from modelbuild import naming
from modelbuild.aws_calls import NOT_FOUND_CODES, aws_problem, is_denied, pages
from modelbuild.trials import (
    CvScores,
    Leaderboard,
    TrialScores,
    cv_from_metrics,
    rank_trials,
    signature_cv,
)

# What `mme trials --aws` calls, as IAM actions (the README lists them for a Studio role).
PERMISSIONS: Final = (
    "sagemaker:ListPipelineExecutions",
    "sagemaker:DescribePipelineExecution",
    "sagemaker:ListPipelineExecutionSteps",
    "sagemaker:ListPipelineParametersForExecution",
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    "sagemaker:ListHyperParameterTuningJobs",
    "sagemaker:DescribeTrainingJob",
    "s3:GetObject",
)
EXECUTION_ARN: Final = re.compile(
    r"arn:aws[a-z\-]*:sagemaker:(?P<region>[a-z0-9\-]*):[0-9]{12}:"
    r"pipeline/(?P<pipeline>[^/]+)/execution/(?P<id>[^/]+)"
)
TUNING_JOB_ARN: Final = re.compile(
    r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:hyper-parameter-tuning-job/(?P<name>.+)"
)
# Executions of a dataset's pipeline looked at, newest first, for one that reached tuning.
MAX_EXECUTIONS_SCANNED: Final = 20
# DescribeTrainingJob calls in flight: a 60-trial leaderboard in seconds, well under the API's
# rate limit (botocore retries a throttled call anyway).
DESCRIBE_WORKERS: Final = 8


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Turn a botocore failure into a ProjectError that says what was being read and why."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    try:
        yield
    except ClientError as error:
        needs = "`mme trials --aws` runs with your own credentials and needs " + ", ".join(
            PERMISSIONS
        )
        raise aws_problem(error, what, hint=needs if is_denied(error) else "") from None
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise InputError(
            f"{what}: no AWS credentials ({error}); configure a profile or run in Studio"
        ) from None
    except NoRegionError:
        raise InputError(f"{what}: no AWS region; pass --region or set AWS_REGION") from None
    except (ConnectionError, HTTPClientError) as error:
        raise ServiceError(f"{what}: cannot reach AWS ({error}); try again") from None
    except BotoCoreError as error:
        raise InputError(f"{what}: {error}") from None


def clients(region: str | None) -> tuple[Any, Any]:
    """(sagemaker, s3) clients; botocore's standard retry mode backs off throttled calls."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 8})
    with aws_call("creating the AWS clients"):
        session = boto3.Session(region_name=region)
        return session.client("sagemaker", config=config), session.client("s3", config=config)


def region_of(target: str) -> str | None:
    """The region an execution ARN names (None for a dataset name)."""
    match = EXECUTION_ARN.fullmatch(target)
    return match.group("region") or None if match else None


@dataclass(frozen=True)
class TuneStep:
    status: str
    tuning_arn: str | None  # None: the step failed or was stopped before it created one
    failure_reason: str | None
    cached_from: str | None
    started: datetime | None = None
    ended: datetime | None = None

    @property
    def tuning_job(self) -> str | None:
        """The name in the ARN: lowercased, since SageMaker lowercases ARNs (see summaries)."""
        match = TUNING_JOB_ARN.fullmatch(self.tuning_arn or "")
        return match.group("name") if match else None


@dataclass(frozen=True)
class Execution:
    arn: str
    pipeline: str
    status: str


def _no_pipeline(project: str, dataset: str, pipeline: str) -> InputError:
    """No such pipeline: a dataset typo (suggest a registered name) or another project."""
    from modelbuild.datasets import default_registry
    from modelbuild.did_you_mean import closest

    registry = default_registry()
    if dataset not in registry:
        near = closest(dataset, registry)
        hint = f"; did you mean '{near}'?" if near else ""
        return InputError(
            f"'{dataset}' is neither a pipeline execution ARN nor a dataset with a pipeline"
            f"{hint} (registered: {', '.join(sorted(registry))})"
        )
    return InputError(
        f"dataset '{dataset}' has no pipeline {pipeline} in this account and region "
        f"(project '{project}': another project needs --project-name; another region --region)"
    )


class AwsTrials:
    """The leaderboard source over a SageMaker and an S3 client."""

    def __init__(self, sagemaker: Any, s3: Any, workers: int | None = None) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.workers = workers or DESCRIBE_WORKERS

    # ------------------------------------------------------------------ the execution

    def describe(self, arn: str) -> Execution:
        with aws_call(f"reading pipeline execution {arn}"):
            described = self.sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        match = EXECUTION_ARN.fullmatch(arn)
        pipeline = match.group("pipeline") if match else ""
        return Execution(arn, pipeline, str(described.get("PipelineExecutionStatus", "Unknown")))

    def tune_step(self, arn: str) -> TuneStep | None:
        with aws_call(f"listing the steps of pipeline execution {arn}"):
            steps = list(
                pages(
                    self.sagemaker.list_pipeline_execution_steps,
                    "PipelineExecutionSteps",
                    PipelineExecutionArn=arn,
                )
            )
        step = next((s for s in steps if s.get("StepName") == naming.Steps.TUNE), None)
        if step is None:
            return None
        return TuneStep(
            status=str(step.get("StepStatus", "Unknown")),
            tuning_arn=((step.get("Metadata") or {}).get("TuningJob") or {}).get("Arn"),
            failure_reason=step.get("FailureReason"),
            cached_from=(step.get("CacheHitResult") or {}).get("SourcePipelineExecutionArn"),
            started=step.get("StartTime"),
            ended=step.get("EndTime"),
        )

    def parameters(self, arn: str) -> dict[str, str]:
        with aws_call(f"reading the parameters of pipeline execution {arn}"):
            return {
                p["Name"]: p["Value"]
                for p in pages(
                    self.sagemaker.list_pipeline_parameters_for_execution,
                    "PipelineParameters",
                    PipelineExecutionArn=arn,
                )
            }

    def newest_tuned(self, project: str, dataset: str) -> tuple[Execution, TuneStep]:
        """The newest execution of the dataset's pipeline whose Tune step created a tuning job."""
        from botocore.exceptions import ClientError

        pipeline = naming.pipeline_name(project, dataset)
        newest: tuple[Execution, TuneStep | None] | None = None
        with aws_call(f"dataset '{dataset}': listing the executions of pipeline {pipeline}"):
            try:
                page = self.sagemaker.list_pipeline_executions(
                    PipelineName=pipeline,
                    SortBy="CreationTime",
                    SortOrder="Descending",
                    MaxResults=MAX_EXECUTIONS_SCANNED,
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFound":
                    raise
                raise _no_pipeline(project, dataset, pipeline) from None
        for summary in page.get("PipelineExecutionSummaries", []):
            execution = Execution(
                summary["PipelineExecutionArn"],
                pipeline,
                str(summary.get("PipelineExecutionStatus", "Unknown")),
            )
            step = self.tune_step(execution.arn)
            if step is not None and step.tuning_job is not None:
                return execution, step
            newest = newest or (execution, step)
        if newest is None:
            raise InputError(
                f"dataset '{dataset}' has no executions of pipeline {pipeline} "
                f"(project '{project}'; a different project needs --project-name)"
            )
        execution, step = newest
        why = f": {step.failure_reason.splitlines()[0]}" if step and step.failure_reason else ""
        raise InputError(
            f"dataset '{dataset}' has no execution that reached tuning among the newest "
            f"{MAX_EXECUTIONS_SCANNED} (newest: {execution.arn}, {execution.status}{why})"
        )

    # ------------------------------------------------------------------ the trials

    def _trial_pages(self, tuning_job: str) -> list[dict[str, Any]]:
        return list(
            pages(
                self.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job,
                "TrainingJobSummaries",
                HyperParameterTuningJobName=tuning_job,
                SortBy="CreationTime",
                SortOrder="Ascending",
                MaxResults=100,
            )
        )

    def exact_name(self, step: TuneStep) -> str | None:
        """The tuning job's name as created: SageMaker lowercases ARNs (the step metadata's
        too) while a pipeline names its jobs with capitals, so the ARN's name may not be found.
        ListHyperParameterTuningJobs around the step's start time gives back the real name."""
        if step.tuning_arn is None or step.started is None:
            return None
        window = timedelta(minutes=10)
        ended = step.ended or datetime.now(step.started.tzinfo)
        for summary in pages(
            self.sagemaker.list_hyper_parameter_tuning_jobs,
            "HyperParameterTuningJobSummaries",
            CreationTimeAfter=step.started - window,
            CreationTimeBefore=ended + window,
            SortBy="CreationTime",
            MaxResults=100,
        ):
            if (
                str(summary.get("HyperParameterTuningJobArn", "")).lower()
                == step.tuning_arn.lower()
            ):
                return str(summary["HyperParameterTuningJobName"])
        return None

    def summaries(self, step: TuneStep) -> tuple[str, list[dict[str, Any]]]:
        """(the tuning job's name, every trial's summary in creation order: the ranking's
        tie-break)."""
        from botocore.exceptions import ClientError

        name = str(step.tuning_job)
        with aws_call(f"listing the trials of tuning job {step.tuning_arn}"):
            try:
                return name, self._trial_pages(name)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFound":
                    raise
            exact = self.exact_name(step)
            if exact is None or exact == name:
                raise InputError(f"tuning job {step.tuning_arn} no longer exists")
            return exact, self._trial_pages(exact)

    def scores(self, summary: Mapping[str, Any]) -> TrialScores:
        """A completed trial's fold scores: its metrics when it emitted them, else its artifact."""
        job = str(summary["TrainingJobName"])
        with aws_call(f"reading training job {job}"):
            described = self.sagemaker.describe_training_job(TrainingJobName=job)
        artifact = (described.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        cv = cv_from_metrics(described.get("FinalMetricDataList"))
        if cv is None and artifact:
            cv = self.artifact_cv(artifact)
        return TrialScores(cv, artifact)

    def artifact_cv(self, artifact: str) -> CvScores | None:
        """The signature's CV result in a model.tar.gz on S3; None when the object is gone."""
        from botocore.exceptions import ClientError

        bucket, key = naming.split_s3_uri(artifact)
        limit = max_unpacked_bytes()
        with aws_call(f"reading model artifact {artifact}"):
            try:
                response = self.s3.get_object(Bucket=bucket, Key=key)
            except ClientError as error:
                if str(error.response.get("Error", {}).get("Code")) in NOT_FOUND_CODES:
                    return None  # removed by a lifecycle rule or by hand
                raise
            if int(response.get("ContentLength") or 0) > limit:
                raise InputError(
                    f"the artifact is {response['ContentLength']} bytes, over the {limit} "
                    "an archive may have",
                    file=artifact,
                )
            # Spooled to a file, not memory: the signature may sit after a large model file.
            with tempfile.TemporaryDirectory(prefix="mme-trial-") as directory:
                path = Path(directory) / "model.tar.gz"
                with path.open("wb") as out:
                    shutil.copyfileobj(response["Body"], out, 1024 * 1024)
                return signature_cv(path, artifact)

    # ------------------------------------------------------------------ the leaderboard

    def leaderboard(self, target: str, project: str) -> Leaderboard:
        """TARGET as a pipeline execution ARN, or as a dataset (its newest tuned execution)."""
        if target.startswith("arn:"):
            if EXECUTION_ARN.fullmatch(target) is None:
                raise InputError(
                    f"'{target}' is not a pipeline execution ARN "
                    "(arn:aws:sagemaker:REGION:ACCOUNT:pipeline/NAME/execution/ID)"
                )
            execution = self.describe(target)
            found_step = self.tune_step(target)
            if found_step is None:
                raise InputError(f"execution {target} has no tuning step ({naming.Steps.TUNE})")
            step = found_step
        else:
            execution, step = self.newest_tuned(project, target)
        if step.tuning_job is None:
            why = f": {step.failure_reason.splitlines()[0]}" if step.failure_reason else ""
            raise InputError(
                f"execution {execution.arn} has no tuning trials (its {naming.Steps.TUNE} step "
                f"is {step.status}{why})"
            )
        parameters = self.parameters(execution.arn)
        tuning_job, summaries = self.summaries(step)
        completed = [s for s in summaries if s.get("TrainingJobStatus") == "Completed"]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            found = dict(
                zip(
                    (s["TrainingJobName"] for s in completed),
                    pool.map(self.scores, completed),
                    strict=True,
                )
            )
        return Leaderboard(
            execution=execution.arn,
            pipeline=execution.pipeline,
            dataset=parameters.get(naming.Params.DATASET, target),
            status=execution.status,
            tuning_job=tuning_job,
            cached_from=step.cached_from,
            metric=parameters.get(naming.Params.METRIC, "objective"),
            trials=rank_trials(summaries, lambda s: found[s["TrainingJobName"]]),
        )


def aws_leaderboard(target: str, project: str, region: str | None) -> Leaderboard:
    """The leaderboard of TARGET on AWS, in `region` (default: the ARN's, else boto3's)."""
    sagemaker, s3 = clients(region or region_of(target))
    return AwsTrials(sagemaker, s3).leaderboard(target, project)
