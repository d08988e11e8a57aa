"""The run command: staging, upsert and start against moto; waiting and failures with Stubber.

moto implements S3, model package groups, create/update/describe/list pipelines, tags and
start/describe pipeline execution (an execution is 'Succeeded' at once). It does not implement
ListPipelineExecutionSteps, so everything after the start (polling, naming the failed step) is
tested with botocore's Stubber, which also checks every request against the API shapes.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner
from moto import mock_aws

from container.errors import InputError
from modelbuild import naming
from modelbuild.datasets import CsvSource, get_dataset
from modelbuild.naming import Params, Steps
from tests.pipeline_fixtures import BUCKET, IMAGE_URI, PROJECT, REGION, ROLE_ARN, offline

__all__ = ["offline"]  # fixture used by name
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")

EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/p/execution/abc123"


def _request(datasets: list[str], **overrides: Any) -> Any:
    from modelbuild.run import RunRequest

    return RunRequest(
        datasets=[get_dataset(name) for name in datasets],
        project_name=PROJECT,
        project_id="p-abc123",
        bucket=BUCKET,
        role_arn=ROLE_ARN,
        region=REGION,
        image_uri=IMAGE_URI,
        overrides=overrides,
        source_version="0123456789abcdef",
    )


def test_start_stages_data_upserts_pipelines_and_starts_executions() -> None:
    from modelbuild.run import start_all

    logged: list[str] = []
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)

        outcomes = start_all(
            _request(["breast-cancer", "banknote"], max_jobs=12), s3, sagemaker, log=logged.append
        )
        assert [o.dataset for o in outcomes] == ["breast-cancer", "banknote"]
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
        assert [k.split("/")[1] for k in keys] == ["banknote", "breast-cancer"]
        banknote = get_dataset("banknote")
        assert f"datasets/banknote/{banknote.source.sha256}.csv" in keys  # type: ignore[union-attr]

        for outcome in outcomes:
            name = naming.pipeline_name(PROJECT, outcome.dataset)
            assert outcome.pipeline == name
            described = sagemaker.describe_pipeline(PipelineName=name)
            assert described["RoleArn"] == ROLE_ARN
            definition = json.loads(described["PipelineDefinition"])
            assert [s["Name"] for s in definition["Steps"]] == [
                Steps.PREPROCESS,
                Steps.TUNE,
                Steps.EVALUATE,
                Steps.CHECK,
            ]
            tags = {
                t["Key"]: t["Value"]
                for t in sagemaker.list_tags(ResourceArn=described["PipelineArn"])["Tags"]
            }
            assert tags == {
                "sagemaker:project-name": PROJECT,
                "sagemaker:project-id": "p-abc123",
                "mme:dataset": outcome.dataset,
            }
            group = naming.model_package_group_name(PROJECT, outcome.dataset)
            sagemaker.describe_model_package_group(ModelPackageGroupName=group)
            execution = sagemaker.describe_pipeline_execution(
                PipelineExecutionArn=outcome.execution_arn
            )
            assert execution["PipelineExecutionDisplayName"] == f"{outcome.dataset}-0123456789ab"
            passed = {
                p["Name"]: p["Value"]
                for p in sagemaker.list_pipeline_parameters_for_execution(
                    PipelineExecutionArn=outcome.execution_arn
                )["PipelineParameters"]
            }
            assert set(passed) == {p["Name"] for p in definition["Parameters"]}
            assert passed[Params.MAX_JOBS] == "12"
            assert passed[Params.IMAGE] == IMAGE_URI
            assert passed[Params.MODEL_PACKAGE_GROUP] == group
            bucket, key = naming.split_s3_uri(passed[Params.INPUT_DATA])
            assert bucket == BUCKET and key in keys

        # A second run: same content-addressed data (no upload), pipelines updated in place.
        logged.clear()
        again = start_all(_request(["breast-cancer"]), s3, sagemaker, log=logged.append)
        assert not any("staged" in line or "created" in line for line in logged), logged
        assert len(s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == 2
        assert again[0].execution_arn != outcomes[0].execution_arn


def test_an_s3_source_is_used_in_place() -> None:
    from modelbuild.run import stage, staged_input

    dataset = get_dataset("wine").model_copy(update={"source": CsvSource(csv="s3://data/wine.csv")})
    staged = staged_input(dataset, BUCKET)
    assert staged.uri == "s3://data/wine.csv"
    with mock_aws():
        assert stage(boto3.client("s3", region_name=REGION), dataset, staged) is False


def _stub_start(stubber: Stubber, pipeline: str) -> None:
    stubber.add_response("list_model_package_groups", {"ModelPackageGroupSummaryList": []})
    stubber.add_response(
        "create_model_package_group",
        {"ModelPackageGroupArn": f"arn:aws:sagemaker:{REGION}:123456789012:model-package-group/g"},
    )
    stubber.add_response("list_pipelines", {"PipelineSummaries": []})
    stubber.add_response(
        "create_pipeline", {"PipelineArn": f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/p"}
    )
    stubber.add_response("list_model_packages", {"ModelPackageSummaryList": []})
    stubber.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION_ARN},
        {
            "PipelineName": pipeline,
            "PipelineExecutionDisplayName": ANY,
            "PipelineExecutionDescription": ANY,
            "PipelineParameters": ANY,
        },
    )


def _stub_status(stubber: Stubber, status: str, reason: str = "") -> None:
    stubber.add_response(
        "describe_pipeline_execution",
        {"PipelineExecutionStatus": status, "FailureReason": reason},
        {"PipelineExecutionArn": EXECUTION_ARN},
    )


def test_the_cli_run_waits_and_names_the_failed_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelbuild import run as runner
    from modelbuild.cli import pipeline

    reason = "holdout f1_macro = 0.61 is below the registration threshold 0.85"
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        with Stubber(sagemaker) as stubber:
            _stub_start(stubber, naming.pipeline_name(PROJECT, "wine"))
            _stub_status(stubber, "Executing")
            _stub_status(stubber, "Failed", "Step failure: One or multiple steps failed.")
            stubber.add_response(
                "list_pipeline_execution_steps",
                {
                    "PipelineExecutionSteps": [
                        {
                            "StepName": Steps.FAIL,
                            "StepStatus": "Failed",
                            "FailureReason": reason,
                            "Metadata": {"Fail": {"ErrorMessage": reason}},
                        },
                        {"StepName": Steps.EVALUATE, "StepStatus": "Succeeded"},
                    ]
                },
                {"PipelineExecutionArn": EXECUTION_ARN},
            )
            monkeypatch.setattr(runner, "clients", lambda region: (s3, sagemaker))
            result = CliRunner().invoke(
                pipeline,
                [
                    "run", "wine", "--wait", "--poll-seconds", "1",
                    "--project-name", PROJECT, "--bucket", BUCKET,
                    "--role-arn", ROLE_ARN, "--image-uri", IMAGE_URI,
                ],
            )  # fmt: skip
            stubber.assert_no_pending_responses()
    assert result.exit_code == 1, result.output
    assert f"wine: Failed  {EXECUTION_ARN}" in result.output
    assert f"error: dataset 'wine': step {Steps.FAIL} failed: {reason}" in result.output
    assert "Traceback" not in result.output


def test_a_successful_wait_reports_the_registered_model() -> None:
    from modelbuild.run import Outcome, summary, wait_for

    package = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/mmetest-wine/3"
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stubber:
        _stub_status(stubber, "Succeeded")
        stubber.add_response(
            "list_pipeline_execution_steps",
            {
                "PipelineExecutionSteps": [
                    {
                        "StepName": Steps.REGISTER,
                        "StepStatus": "Succeeded",
                        "Metadata": {"RegisterModel": {"Arn": package}},
                    }
                ]
            },
        )
        outcome = Outcome("wine", "p", EXECUTION_ARN)
        wait_for(sagemaker, [outcome], sleep=lambda s: None, log=lambda line: None)
    assert outcome.status == "Succeeded" and not outcome.failed
    assert f"registered {package}" in summary([outcome])


def test_waiting_gives_up_at_the_timeout() -> None:
    from modelbuild.run import Outcome, wait_for

    ticks = iter([0.0, 100.0])
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stubber:
        _stub_status(stubber, "Executing")
        with pytest.raises(InputError, match=r"timed out after 60s waiting for wine"):
            wait_for(
                sagemaker,
                [Outcome("wine", "p", EXECUTION_ARN)],
                timeout_seconds=60,
                sleep=lambda s: None,
                clock=lambda: next(ticks),
                log=lambda line: None,
            )


def test_run_names_missing_settings_and_unknown_datasets() -> None:
    from modelbuild.cli import pipeline

    runner = CliRunner()
    result = runner.invoke(pipeline, ["run", "wine"])
    assert result.exit_code == 2
    assert "--bucket (or ARTIFACT_BUCKET)" in result.output
    assert "--role-arn (or SAGEMAKER_PIPELINE_ROLE_ARN)" in result.output
    assert "--image-uri (or IMAGE_URI)" in result.output
    full = ["--bucket", BUCKET, "--role-arn", ROLE_ARN, "--image-uri", IMAGE_URI]
    result = runner.invoke(pipeline, ["run", "nope", *full])
    assert result.exit_code == 1
    assert "unknown dataset 'nope'" in result.output
    result = runner.invoke(pipeline, ["run", "wine", *full, "--role-arn", "not-a-role"])
    assert result.exit_code == 1
    assert "role_arn" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("variable", "expected"),
    [("wine", ["wine"]), ("wine,banknote", ["wine", "banknote"]), ("all", None), ("", None)],
)
def test_the_retrain_variable_chooses_the_datasets(
    monkeypatch: pytest.MonkeyPatch, variable: str, expected: list[str] | None
) -> None:
    """The modelbuild CodePipeline hands its Datasets variable over in MME_RETRAIN_DATASETS: a
    drift alarm retrains its one dataset, a push or the schedule ('all') every registered one."""
    from modelbuild import run as runner
    from modelbuild.cli import pipeline
    from modelbuild.datasets import default_registry

    started: list[list[str]] = []

    def start_all(request: Any, s3: Any, sagemaker: Any, log: Any) -> list[Any]:
        started.append([dataset.name for dataset in request.datasets])
        return []

    monkeypatch.setattr(runner, "clients", lambda region: (None, None))
    monkeypatch.setattr(runner, "start_all", start_all)
    monkeypatch.setenv(naming.RETRAIN_DATASETS_ENV, variable)
    full = ["--bucket", BUCKET, "--role-arn", ROLE_ARN, "--image-uri", IMAGE_URI]
    result = CliRunner().invoke(pipeline, ["run", *full])
    assert result.exit_code == 0, result.output
    assert started == [expected or list(default_registry())]


def test_an_unknown_dataset_in_the_retrain_variable_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelbuild.cli import pipeline

    monkeypatch.setenv(naming.RETRAIN_DATASETS_ENV, "wine,nope")
    full = ["--bucket", BUCKET, "--role-arn", ROLE_ARN, "--image-uri", IMAGE_URI]
    result = CliRunner().invoke(pipeline, ["run", *full])
    assert result.exit_code == 1
    assert "unknown dataset 'nope'" in result.output and "Traceback" not in result.output
