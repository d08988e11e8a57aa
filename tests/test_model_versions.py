"""No duplicate model versions: a run whose best model equals the group's latest version
registers nothing, succeeds, and says so; a run whose model changed registers it.

Locally through `mme` (the same definition, executor and lookup as a user's runs); on AWS the
lookup against moto, and the waiting and summary with botocore's Stubber (moto has no
ListPipelineExecutionSteps), both checking every request against the API shapes.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner, Result
from moto import mock_aws

from container.errors import InputError
from container.layout import MODEL_SHA256_PATH
from local.cli import main
from local.executions import ExecutionRecord
from local.executor import PipelineExecutor
from local.home import LocalHome
from local.jobs import JobRunner
from local.runs import build, execute
from modelbuild import naming
from modelbuild.datasets import get_dataset
from modelbuild.naming import Params, Steps
from modelbuild.versions import SageMakerVersions, unchanged_message
from tests.local_support import SMALL_BUDGET, runner, widen_console
from tests.pipeline_fixtures import (
    BUCKET,
    IMAGE_URI,
    PROJECT,
    REGION,
    ROLE_ARN,
    Built,
    definitions,
    offline,
    step,
)

__all__ = ["definitions", "offline", "runner"]  # fixtures used by name
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")

GROUP = "mme-wine"
# The CLI's spelling of SMALL_BUDGET: the same parameters, so the steps' cache keys match.
CLI_BUDGET = ("--max-jobs", "6", "--max-parallel-jobs", "2", "--cv-folds", "2", "--workers", "2")
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/p/execution/abc123"
AWS_GROUP = naming.model_package_group_name(PROJECT, "wine")


# ---------------------------------------------------------------------------- locally


def mme(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args])


@pytest.fixture(autouse=True, scope="module")
def wide_console() -> Iterator[None]:
    """Tables at full width, so messages are not wrapped in the captured output."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        widen_console(monkeypatch, 300)
        yield


def _checksums(home: Path) -> list[tuple[int, str]]:
    packages = LocalHome(home).registry.list_packages(GROUP, descending=False)
    return [(p.version, p.customer_metadata[naming.MODEL_SHA256_METADATA_KEY]) for p in packages]


def _report(home: Path, execution_id: str) -> dict[str, Any]:
    record = LocalHome(home).executions.load(execution_id)
    evaluate = record.step(Steps.EVALUATE)
    assert evaluate is not None
    uri = evaluate.property_files[naming.EVALUATION_PROPERTY_FILE]
    return json.loads(LocalHome(home).s3.get_bytes(uri))  # type: ignore[no-any-return]


@pytest.mark.integration
def test_an_unchanged_model_is_not_registered_again_and_a_changed_one_is(
    tmp_path: Path, runner: JobRunner
) -> None:
    home = LocalHome(tmp_path)
    pipeline = build(get_dataset("wine"), home, naming.DEFAULT_PROJECT_NAME, None)

    def run(**parameters: Any) -> ExecutionRecord:
        """What `mme run` does, on the shared warm workers."""
        return execute(PipelineExecutor(home, runner), pipeline, {**SMALL_BUDGET, **parameters})

    first = run()
    assert first.status == "Succeeded", first.failure_reason
    (v1,) = _checksums(tmp_path)
    # The version carries the checksum of the model it registered, as the signature states it.
    assert v1 == (1, _report(tmp_path, first.id)[MODEL_SHA256_PATH])

    # Same data, same settings, through `mme run`: everything up to Evaluate is cached, the best
    # model is the same, and the run succeeds registering nothing.
    again = mme(tmp_path, "run", "wine", *CLI_BUDGET)
    assert again.exit_code == 0, again.output
    expected = unchanged_message(1, v1[1])
    assert expected.startswith("unchanged: the best model equals version 1 (sha256 ")
    assert f"wine: {expected}" in again.output
    assert _checksums(tmp_path) == [v1]
    second = home.executions.list()[0]
    assert second.status == "Succeeded" and second.failure_reason is None
    assert second.parameters[Params.LATEST_MODEL_SHA256] == v1[1]
    assert second.parameters[Params.LATEST_MODEL_VERSION] == 1
    assert [s.name for s in second.steps][-2:] == [Steps.CHECK, Steps.CHECK_CHANGED]
    assert second.step(Steps.CHECK_CHANGED).properties == {"Outcome": False}  # type: ignore[union-attr]
    steps = mme(tmp_path, "steps", second.id)
    assert steps.exit_code == 0 and expected in steps.output, steps.output
    assert "outcome False" in steps.output and Steps.REGISTER not in steps.output
    listing = mme(tmp_path, "executions")
    assert expected in listing.output and "registered version 1" in listing.output

    # Another split: another model, which is registered with its own checksum.
    changed = run(RandomState=1)
    assert changed.step(Steps.CHECK_CHANGED).properties == {"Outcome": True}  # type: ignore[union-attr]
    versions = _checksums(tmp_path)
    assert [v for v, _ in versions] == [1, 2] and versions[1][1] != v1[1]
    assert versions[1][1] == _report(tmp_path, changed.id)[MODEL_SHA256_PATH]

    # The metric is checked first: the same model under a threshold it misses is a failure
    # (this split's model is not perfect on its holdout; the first one's may be).
    assert _report(tmp_path, changed.id)["register_metric"]["value"] < 1.0
    raised = run(RandomState=1, RegistrationThreshold=1.0)
    assert raised.status == "Failed"
    assert [s.name for s in raised.steps][-2:] == [Steps.CHECK, Steps.FAIL]
    assert _checksums(tmp_path) == versions

    # The comparison is with the latest version only: the first model again is a change from
    # version 2 (so it can be approved to go back to it).
    run()
    assert _checksums(tmp_path)[-1] == (3, v1[1])

    # Naming the version to compare with overrides the lookup: an empty checksum registers.
    run(**{Params.LATEST_MODEL_SHA256: ""})
    assert _checksums(tmp_path)[-1] == (4, v1[1])


# ---------------------------------------------------------------------------- the definition


def test_the_checksum_metadata_fits_create_model_package(definitions: dict[str, Built]) -> None:
    """The key and a sha256 value as CreateModelPackage's CustomerMetadataProperties take them
    (the validator checks botocore's key and value patterns and lengths)."""
    from modelbuild.validate import validate_definition

    built = definitions["wine"]
    definition = copy.deepcopy(built.definition)
    metadata = step(definition, Steps.REGISTER)["Arguments"]["CustomerMetadataProperties"]
    metadata[naming.MODEL_SHA256_METADATA_KEY] = "0" * 64
    assert validate_definition(definition, built.settings.parameter_values()) == []
    metadata["model sha256 (bad key!)"] = metadata.pop(naming.MODEL_SHA256_METADATA_KEY)
    problems = validate_definition(definition, built.settings.parameter_values())
    assert any("CustomerMetadataProperties" in str(p) for p in problems), problems


def test_a_bad_checksum_parameter_is_refused(definitions: dict[str, Built]) -> None:
    from modelbuild.pipeline import PipelineSettings

    with pytest.raises(InputError, match="latest_model_sha256"):
        PipelineSettings.for_dataset(
            get_dataset("wine"),
            project_name=PROJECT,
            input_data_url=f"s3://{BUCKET}/datasets/wine/x.csv",
            image_uri=IMAGE_URI,
            latest_model_sha256="not-a-digest",
        )


# ---------------------------------------------------------------------------- on AWS


def _create_version(sagemaker: Any, metadata: dict[str, str] | None) -> str:
    arguments: dict[str, Any] = {
        "ModelPackageGroupName": AWS_GROUP,
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE_URI, "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if metadata:
        arguments["CustomerMetadataProperties"] = metadata
    arn = sagemaker.create_model_package(**arguments)["ModelPackageArn"]
    time.sleep(0.01)  # distinct creation times: the lookup sorts by them
    return str(arn)


def test_the_lookup_reads_the_newest_version_and_its_checksum() -> None:
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        versions = SageMakerVersions(sagemaker)
        sagemaker.create_model_package_group(ModelPackageGroupName=AWS_GROUP)
        assert versions.latest(AWS_GROUP) is None

        _create_version(sagemaker, {naming.MODEL_SHA256_METADATA_KEY: "a" * 64})
        second = _create_version(sagemaker, {naming.MODEL_SHA256_METADATA_KEY: "b" * 64})
        latest = versions.latest(AWS_GROUP)
        assert latest is not None
        assert (latest.arn, latest.version, latest.model_sha256) == (second, 2, "b" * 64)
        assert latest.approval_status == "PendingManualApproval"

        # A version registered by hand (no checksum, or not a sha256) compares with nothing.
        _create_version(sagemaker, None)
        assert versions.latest(AWS_GROUP).model_sha256 == ""  # type: ignore[union-attr]
        _create_version(sagemaker, {naming.MODEL_SHA256_METADATA_KEY: "edited"})
        assert versions.latest(AWS_GROUP).model_sha256 == ""  # type: ignore[union-attr]


def test_the_lookup_skips_failed_versions_and_names_the_group_on_errors() -> None:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{AWS_GROUP}/"
    summary = {"ModelPackageGroupName": AWS_GROUP, "CreationTime": 0}
    with Stubber(sagemaker) as stubber:
        stubber.add_response(
            "list_model_packages",
            {
                "ModelPackageSummaryList": [
                    {**summary, "ModelPackageArn": arn + "3", "ModelPackageStatus": "Failed"},
                ],
                "NextToken": "more",
            },
            {
                "ModelPackageGroupName": AWS_GROUP,
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
            },
        )
        stubber.add_response(
            "list_model_packages",
            {
                "ModelPackageSummaryList": [
                    {**summary, "ModelPackageArn": arn + "2", "ModelPackageStatus": "Completed"},
                ]
            },
            {
                "ModelPackageGroupName": AWS_GROUP,
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "NextToken": "more",
            },
        )
        stubber.add_response(
            "describe_model_package",
            {
                "ModelPackageName": AWS_GROUP,
                "ModelPackageArn": arn + "2",
                "ModelPackageVersion": 2,
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": "Approved",
                "CreationTime": 0,
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "CustomerMetadataProperties": {naming.MODEL_SHA256_METADATA_KEY: "c" * 64},
            },
            {"ModelPackageName": arn + "2"},
        )
        stubber.add_client_error(
            "list_model_packages", "AccessDeniedException", "not authorized", 400
        )
        latest = SageMakerVersions(sagemaker).latest(AWS_GROUP)
        assert latest is not None and (latest.version, latest.model_sha256) == (2, "c" * 64)
        with pytest.raises(InputError, match=f"model package group '{AWS_GROUP}'.*not author"):
            SageMakerVersions(sagemaker).latest(AWS_GROUP)


def test_the_run_passes_the_latest_version_to_the_execution() -> None:
    from modelbuild.run import RunRequest, start_all

    logged: list[str] = []
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        request = RunRequest(
            datasets=[get_dataset("wine")],
            project_name=PROJECT,
            project_id="p-abc123",
            bucket=BUCKET,
            role_arn=ROLE_ARN,
            region=REGION,
            image_uri=IMAGE_URI,
            overrides={},
        )

        def passed(outcome: Any) -> dict[str, str]:
            return {
                p["Name"]: p["Value"]
                for p in sagemaker.list_pipeline_parameters_for_execution(
                    PipelineExecutionArn=outcome.execution_arn
                )["PipelineParameters"]
            }

        (fresh,) = start_all(request, s3, sagemaker, log=logged.append)
        assert fresh.latest is None
        assert passed(fresh)[Params.LATEST_MODEL_SHA256] == ""
        assert passed(fresh)[Params.LATEST_MODEL_VERSION] == "0"
        assert "wine: no version registered yet: the model will be registered" in logged

        arn = _create_version(sagemaker, {naming.MODEL_SHA256_METADATA_KEY: "d" * 64})
        (again,) = start_all(request, s3, sagemaker, log=logged.append)
        assert again.latest is not None and again.latest.arn == arn
        assert passed(again)[Params.LATEST_MODEL_SHA256] == "d" * 64
        assert passed(again)[Params.LATEST_MODEL_VERSION] == "1"
        # The pipeline's own definition keeps the defaults: it does not change per run.
        definition = json.loads(
            sagemaker.describe_pipeline(PipelineName=fresh.pipeline)["PipelineDefinition"]
        )
        defaults = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
        assert defaults[Params.LATEST_MODEL_SHA256] == ""


def _stub_unchanged_run(stubber: Stubber, pipeline: str, latest_sha: str) -> None:
    package = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{AWS_GROUP}/3"
    stubber.add_response("list_model_package_groups", {"ModelPackageGroupSummaryList": []})
    stubber.add_response(
        "create_model_package_group",
        {"ModelPackageGroupArn": f"arn:aws:sagemaker:{REGION}:123456789012:model-package-group/g"},
    )
    stubber.add_response("list_pipelines", {"PipelineSummaries": []})
    stubber.add_response(
        "create_pipeline", {"PipelineArn": f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/p"}
    )
    stubber.add_response(
        "list_model_packages",
        {
            "ModelPackageSummaryList": [
                {
                    "ModelPackageGroupName": AWS_GROUP,
                    "ModelPackageArn": package,
                    "CreationTime": 0,
                    "ModelPackageStatus": "Completed",
                }
            ]
        },
    )
    stubber.add_response(
        "describe_model_package",
        {
            "ModelPackageName": AWS_GROUP,
            "ModelPackageArn": package,
            "ModelPackageVersion": 3,
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": "Approved",
            "CreationTime": 0,
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "CustomerMetadataProperties": {naming.MODEL_SHA256_METADATA_KEY: latest_sha},
        },
    )
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
    stubber.add_response(
        "describe_pipeline_execution",
        {"PipelineExecutionStatus": "Succeeded"},
        {"PipelineExecutionArn": EXECUTION_ARN},
    )
    # What ListPipelineExecutionSteps shows for an unchanged model: both conditions succeeded,
    # CheckModelChanged's outcome False, and no register step.
    stubber.add_response(
        "list_pipeline_execution_steps",
        {
            "PipelineExecutionSteps": [
                {
                    "StepName": Steps.CHECK_CHANGED,
                    "StepStatus": "Succeeded",
                    "Metadata": {"Condition": {"Outcome": "False"}},
                },
                {
                    "StepName": Steps.CHECK,
                    "StepStatus": "Succeeded",
                    "Metadata": {"Condition": {"Outcome": "True"}},
                },
                {"StepName": Steps.EVALUATE, "StepStatus": "Succeeded"},
            ]
        },
        {"PipelineExecutionArn": EXECUTION_ARN},
    )


def test_an_unchanged_run_on_aws_succeeds_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelbuild import run as runner
    from modelbuild.cli import pipeline

    sha = "e" * 64
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        with Stubber(sagemaker) as stubber:
            _stub_unchanged_run(stubber, naming.pipeline_name(PROJECT, "wine"), sha)
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
    # Exit 0: the CodePipeline action succeeds, so the failure rule sends no notification.
    assert result.exit_code == 0, result.output
    assert "an equal model will not be registered again" in result.output
    assert f"wine: Succeeded  {EXECUTION_ARN}" in result.output
    assert unchanged_message(3, sha) in result.output
    assert "registered arn" not in result.output
