"""Scheduled operations on AWS: the project template's drift and canary schedules, per-dataset
drift alarms, retraining (on drift and on a schedule), and the retrain command they start.

Each template test resolves the template's spelling and compares it with what the code computes
or emits (naming.py, drift_job's metrics, operations.py), so the alarm watches the metric the
drift job publishes and the retrain rule reaches the dataset the alarm names.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from click.testing import CliRunner

from container.errors import InputError
from modelbuild import naming as build_naming
from modeldeploy import naming
from modeldeploy.build import load_template
from modeldeploy.drift import DriftReport, FeatureDrift
from modeldeploy.drift_job import METRIC_NAMESPACE, publish_metrics
from modeldeploy.operations import (
    ALARM_TIME_ENV,
    dataset_for,
    operations,
    request_token,
    start_retrain,
)
from template import PROJECT_TEMPLATE
from tests.cfn_support import Evaluator, as_list, statements
from tests.iam_policy import glob_matches

REPO = Path(__file__).resolve().parents[1]
PROJECT = "churn-models"
PROJECT_ID = "p-abc123def456"
BUCKET = build_naming.artifact_bucket_name(PROJECT_ID)
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
DATASETS = "breast-cancer,banknote,wine"


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return load_template(PROJECT_TEMPLATE)


def evaluator(project: dict[str, Any], **parameters: Any) -> Evaluator:
    return Evaluator(
        project,
        attributes={
            "ArtifactBucket.Arn": BUCKET_ARN,
            "ArtifactBucket": BUCKET,
            "OperationsProject.Arn": "arn:aws:codebuild:eu-west-1:123456789012:project/ops",
            "NotificationTopic": "arn:aws:sns:eu-west-1:123456789012:topic",
            "ModelBuildPipeline": build_naming.codepipeline_name(PROJECT, "modelbuild"),
            "EventsRole.Arn": "arn:aws:iam::123456789012:role/events",
            "PipelineFailureRule.Arn": "arn:aws:events:eu-west-1:123456789012:rule/failure",
            "OperationsFailureRule.Arn": "arn:aws:events:eu-west-1:123456789012:rule/operations",
        },
        SageMakerProjectName=PROJECT,
        SageMakerProjectId=PROJECT_ID,
        SeedCodeBucket="my-templates",
        Datasets=DATASETS,
        **parameters,
    )


def properties(project: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return project["Resources"][logical_id]["Properties"]


def start_build_request(target: dict[str, Any], **placeholders: str) -> dict[str, str]:
    """A rule target's input (CodeBuild StartBuild's request) as {variable: value}."""
    if "Input" in target:
        text = target["Input"]
    else:
        text = target["InputTransformer"]["InputTemplate"]
        for name, value in placeholders.items():
            text = text.replace(f"<{name}>", json.dumps(value))
    overrides = json.loads(text)["environmentVariablesOverride"]
    assert all(o["type"] == "PLAINTEXT" for o in overrides)
    return {o["name"]: o["value"] for o in overrides}


# --- the template ----------------------------------------------------------------------------


def test_schedules_start_the_operations_with_an_operation_the_buildspec_runs(
    project: dict[str, Any],
) -> None:
    buildspec = (REPO / "buildspecs" / "operations.yml").read_text()
    for rule, operation in (("DriftScheduleRule", "drift"), ("CanaryScheduleRule", "canary")):
        [target] = properties(project, rule)["Targets"]
        assert target["Arn"] == {"GetAtt": "OperationsProject.Arn"}
        assert start_build_request(target) == {naming.OPERATION_ENV: operation}
    for operation in naming.OPERATIONS:
        assert re.search(rf"^\s+{operation}\)$", buildspec, re.MULTILINE), operation
    source = properties(project, "OperationsProject")["Source"]
    assert source["Type"] == "S3" and source["BuildSpec"] == "buildspecs/operations.yml"


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, {"DriftScheduleRule"}),
        ({"DriftSchedule": ""}, set()),
        ({"CanaryDeployments": "true"}, {"DriftScheduleRule", "CanaryScheduleRule"}),
        (
            {"RetrainOnDrift": "true", "RetrainSchedule": "rate(7 days)"},
            {"DriftScheduleRule", "RetrainOnDriftRule", "RetrainScheduleRule"},
        ),
    ],
)
def test_parameters_switch_each_schedule(
    project: dict[str, Any], parameters: dict[str, str], expected: set[str]
) -> None:
    resolve = evaluator(project, **parameters)
    optional = {
        "DriftScheduleRule",
        "CanaryScheduleRule",
        "RetrainOnDriftRule",
        "RetrainScheduleRule",
    }
    assert {rule for rule in optional if resolve.exists(rule)} == expected
    assert resolve.exists("OperationsFailureRule")


def test_canary_deployments_need_a_schedule(project: dict[str, Any]) -> None:
    rule = project["Rules"]["CanaryNeedsSchedule"]
    assert rule["RuleCondition"] == {"Equals": [{"Ref": "CanaryDeployments"}, "true"]}
    [assertion] = rule["Assertions"]
    assert assertion["Assert"] == {"Not": [{"Equals": [{"Ref": "CanarySchedule"}, ""]}]}
    # The deploy and promote commands read MME_CANARY; the template sets it from the parameter.
    for logical_id in ("ModelDeployBuildProject", "ModelDeployTestProject"):
        variables = properties(project, logical_id)["Environment"]["EnvironmentVariables"]
        assert {"Name": "MME_CANARY", "Value": {"Ref": "CanaryDeployments"}} in variables


@pytest.mark.parametrize(
    "value",
    ["", "rate(1 day)", "rate(15 minutes)", "rate(6 hours)", "cron(0 6 * * ? *)"],
)
def test_schedule_parameters_accept_eventbridge_schedules(
    project: dict[str, Any], value: str
) -> None:
    for name in ("DriftSchedule", "RetrainSchedule", "CanarySchedule"):
        assert re.fullmatch(project["Parameters"][name]["AllowedPattern"], value), name


@pytest.mark.parametrize(
    "value", ["daily", "rate(1 days)", "rate(0 days)", "rate(2 day)", "rate(5 weeks)", "cron()"]
)
def test_schedule_parameters_refuse_what_eventbridge_would(
    project: dict[str, Any], value: str
) -> None:
    for name in ("DriftSchedule", "RetrainSchedule", "CanarySchedule"):
        parameter = project["Parameters"][name]
        assert not re.fullmatch(parameter["AllowedPattern"], value), name
        assert parameter["ConstraintDescription"]


def test_one_drift_alarm_per_dataset_on_the_metric_the_drift_job_publishes(
    project: dict[str, Any],
) -> None:
    resolve = evaluator(project)
    alarms = [
        resolve(properties(project, f"DriftAlarm{slot}"))
        for slot in range(build_naming.MAX_TEMPLATE_DATASETS)
        if resolve.exists(f"DriftAlarm{slot}")
    ]
    datasets = DATASETS.split(",")
    assert [alarm["AlarmName"] for alarm in alarms] == [
        naming.drift_alarm_name(PROJECT, naming.MONITORED_STAGE, dataset) for dataset in datasets
    ]
    # What the drift job sends for each dataset of the monitored stage.
    sent: list[dict[str, Any]] = []

    class CloudWatch:
        def put_metric_data(self, **request: Any) -> None:
            sent.append(request)

    drifted = FeatureDrift("f1", "numeric", "drift", 500, 0.4, 0.3, 1e-9, [], [], [], 0.0, 0.0)
    reports = [DriftReport(dataset, [drifted], rows=500) for dataset in datasets]
    publish_metrics(CloudWatch(), naming.MONITORED_STAGE, reports)
    for alarm, request in zip(alarms, sent, strict=True):
        [datum] = [d for d in request["MetricData"] if d["MetricName"] == alarm["MetricName"]]
        assert alarm["Namespace"] == request["Namespace"] == METRIC_NAMESPACE
        assert alarm["Dimensions"] == datum["Dimensions"]
        assert datum["Value"] >= alarm["Threshold"]
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        # A run with too few rows publishes no DriftedFeatures: the alarm keeps its state.
        assert alarm["TreatMissingData"] == "ignore"
        assert (
            alarm["AlarmActions"] == alarm["OKActions"] == [resolve({"Ref": "NotificationTopic"})]
        )


def test_a_drift_alarm_retrains_its_own_dataset(project: dict[str, Any]) -> None:
    resolve = evaluator(project, RetrainOnDrift="true")
    rule = resolve(properties(project, "RetrainOnDriftRule"))
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    [prefix] = pattern["detail"]["alarmName"]
    alarm = naming.drift_alarm_name(PROJECT, naming.MONITORED_STAGE, "wine")
    assert alarm.startswith(prefix["prefix"])
    [target] = rule["Targets"]
    paths = target["InputTransformer"]["InputPathsMap"]
    assert paths == {"alarm": "$.detail.alarmName", "time": "$.detail.state.timestamp"}
    variables = start_build_request(target, alarm=alarm, time="2026-11-22T06:00:00.000+0000")
    assert variables[naming.OPERATION_ENV] == "retrain"
    assert variables[ALARM_TIME_ENV] == "2026-11-22T06:00:00.000+0000"
    # The command the operations project runs maps the alarm back to the dataset.
    assert dataset_for(PROJECT, variables[naming.DRIFT_ALARM_ENV], None) == "wine"


def test_the_modelbuild_pipeline_retrains_the_datasets_its_variable_names(
    project: dict[str, Any],
) -> None:
    pipeline = properties(project, "ModelBuildPipeline")
    [variable] = pipeline["Variables"]
    assert variable["Name"] == build_naming.RETRAIN_DATASETS_VARIABLE
    assert variable["DefaultValue"] == build_naming.ALL_DATASETS
    [run] = next(s for s in pipeline["Stages"] if s["Name"] == "RunPipelines")["Actions"]
    passed = json.loads(run["Configuration"]["EnvironmentVariables"])
    assert {
        "name": build_naming.RETRAIN_DATASETS_ENV,
        "value": f"#{{variables.{build_naming.RETRAIN_DATASETS_VARIABLE}}}",
        "type": "PLAINTEXT",
    } in passed
    # The schedule retrains everything: it starts the pipeline with the default.
    [target] = properties(project, "RetrainScheduleRule")["Targets"]
    assert "${ModelBuildPipeline}" in target["Arn"]["Sub"] and "Input" not in target


def test_the_operations_run_the_source_the_modeldeploy_pipeline_publishes(
    project: dict[str, Any],
) -> None:
    resolve = evaluator(project)
    source = resolve(properties(project, "OperationsProject")["Source"])
    assert source["Location"] == f"{BUCKET}/{naming.OPERATIONS_SOURCE_KEY}"
    build = [
        s for s in properties(project, "ModelDeployPipeline")["Stages"] if s["Name"] == "Build"
    ]
    [publish] = [a for a in build[0]["Actions"] if a["Name"] == "PublishOperationsSource"]
    assert publish["Configuration"]["ObjectKey"] == naming.OPERATIONS_SOURCE_KEY
    assert publish["Configuration"]["Extract"] == "false"
    assert publish["InputArtifacts"] == [{"Name": "Source"}]
    source_object = f"{BUCKET_ARN}/{naming.OPERATIONS_SOURCE_KEY}"
    assert allowed(project, resolve, "CodePipelineRole", "s3:PutObject", source_object)
    assert allowed(project, resolve, "OperationsRole", "s3:GetObject", source_object)
    variables = properties(project, "OperationsProject")["Environment"]["EnvironmentVariables"]
    [stages] = [v["Value"] for v in variables if v["Name"] == "MME_STAGES"]
    assert stages.split() == list(naming.STAGES)


def allowed(
    project: dict[str, Any], resolve: Evaluator, role: str, action: str, resource_arn: str
) -> bool:
    for statement in statements(properties(project, role)):
        if action not in as_list(statement["Action"]):
            continue
        for pattern in as_list(statement["Resource"]):
            try:
                pattern = resolve(pattern)
            except KeyError:
                continue
            if glob_matches(pattern, resource_arn):
                return True
    return False


def test_the_operations_role_allows_what_the_operations_call(project: dict[str, Any]) -> None:
    resolve = evaluator(project)
    region, account = "eu-west-1", "123456789012"
    for stage in naming.STAGES:
        table = naming.inference_log_table(PROJECT, stage)
        table_arn = f"arn:aws:dynamodb:{region}:{account}:table/{table}"
        assert allowed(project, resolve, "OperationsRole", "dynamodb:Query", table_arn), stage
        report = naming.split_s3_uri(naming.drift_report_uri(BUCKET, stage, "20261122T060000Z"))
        report_arn = f"{BUCKET_ARN}/{report[1]}/wine/drift.json"
        assert allowed(project, resolve, "OperationsRole", "s3:PutObject", report_arn), stage
        routing = naming.split_s3_uri(naming.routing_table_uri(BUCKET, stage))[1]
        for action in ("s3:GetObject", "s3:PutObject"):
            assert allowed(project, resolve, "OperationsRole", action, f"{BUCKET_ARN}/{routing}")
    package = f"arn:aws:sagemaker:{region}:{account}:model-package/" + (
        f"{build_naming.model_package_group_name(PROJECT, 'wine')}/3"
    )
    for action in ("sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"):
        assert allowed(project, resolve, "OperationsRole", action, package), action
    pipeline = build_naming.codepipeline_name(PROJECT, "modelbuild")
    pipeline_arn = f"arn:aws:codepipeline:{region}:{account}:{pipeline}"
    assert allowed(
        project, resolve, "OperationsRole", "codepipeline:StartPipelineExecution", pipeline_arn
    )
    [metrics] = [
        s
        for s in statements(properties(project, "OperationsRole"))
        if "cloudwatch:PutMetricData" in as_list(s["Action"])
    ]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}
    assert allowed(
        project,
        resolve,
        "EventsRole",
        "codebuild:StartBuild",
        resolve({"GetAtt": "OperationsProject.Arn"}),
    )


def test_alarms_and_operation_failures_reach_the_encrypted_topic(
    project: dict[str, Any],
) -> None:
    resolve = evaluator(project)
    topic_policy = resolve(properties(project, "NotificationTopicPolicy")["PolicyDocument"])
    [cloudwatch] = [
        s
        for s in topic_policy["Statement"]
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    alarm_arn = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:" + naming.drift_alarm_name(
        PROJECT, naming.MONITORED_STAGE, "wine"
    )
    assert glob_matches(cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"], alarm_arn)
    key_policy = properties(project, "ArtifactKey")["KeyPolicy"]["Statement"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in key_policy)
    [events] = [
        s
        for s in topic_policy["Statement"]
        if s["Principal"] == {"Service": "events.amazonaws.com"}
    ]
    sources = properties(project, "NotificationTopicPolicy")["PolicyDocument"]["Statement"]
    assert {"GetAtt": "OperationsFailureRule.Arn"} in [
        arn
        for s in sources
        if s["Sid"] == events["Sid"]
        for arn in as_list(s["Condition"]["ArnEquals"]["aws:SourceArn"])
    ]


def test_the_operations_buildspec_pins_what_pyproject_pins() -> None:
    pins = {}
    for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]:
        name, _, version = requirement.partition("==")
        pins[name.lower()] = version
    buildspec = yaml.safe_load((REPO / "buildspecs" / "operations.yml").read_text())
    installed = re.findall(
        r"([A-Za-z0-9_.-]+)==([0-9][^\s']*)", " ".join(buildspec["phases"]["install"]["commands"])
    )
    assert {name for name, _ in installed} >= {"boto3", "numpy", "matplotlib"}
    for name, version in installed:
        assert pins[name.lower()] == version, name


# --- the retrain command ---------------------------------------------------------------------


def test_an_alarm_names_its_dataset_and_a_foreign_alarm_is_refused() -> None:
    alarm = naming.drift_alarm_name(PROJECT, naming.MONITORED_STAGE, "breast-cancer")
    assert dataset_for(PROJECT, alarm, None) == "breast-cancer"
    assert dataset_for(PROJECT, None, "wine") == "wine"
    other = naming.drift_alarm_name("other-project", naming.MONITORED_STAGE, "wine")
    with pytest.raises(InputError, match="is not a drift alarm of project churn-models"):
        dataset_for(PROJECT, other, None)
    with pytest.raises(InputError, match="exactly one of"):
        dataset_for(PROJECT, alarm, "wine")
    with pytest.raises(InputError, match="exactly one of"):
        dataset_for(PROJECT, None, None)


def test_a_duplicate_alarm_delivery_reuses_its_request_token() -> None:
    alarm = naming.drift_alarm_name(PROJECT, naming.MONITORED_STAGE, "wine")
    first = request_token(alarm, "2026-11-22T06:00:00.000+0000", "wine")
    assert first == request_token(alarm, "2026-11-22T06:00:00.000+0000", "wine")
    assert first != request_token(alarm, "2026-11-23T06:00:00.000+0000", "wine")
    assert first is not None and re.fullmatch(r"[a-zA-Z0-9-]{1,128}", first)
    assert request_token(None, None, "wine") is None


def test_retrain_starts_the_modelbuild_pipeline_for_one_dataset() -> None:
    client = boto3.client("codepipeline", region_name="eu-west-1")
    pipeline = build_naming.codepipeline_name(PROJECT, "modelbuild")
    with Stubber(client) as stubber:
        stubber.add_response(
            "start_pipeline_execution",
            {"pipelineExecutionId": "e-1"},
            {
                "name": pipeline,
                "variables": [{"name": build_naming.RETRAIN_DATASETS_VARIABLE, "value": "wine"}],
                "clientRequestToken": "t" * 64,
            },
        )
        assert start_retrain(client, PROJECT, "wine", "t" * 64) == (pipeline, "e-1")
        stubber.assert_no_pending_responses()


def test_the_retrain_command_reads_the_alarm_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []

    class CodePipeline:
        def start_pipeline_execution(self, **request: Any) -> dict[str, str]:
            calls.append(request)
            return {"pipelineExecutionId": "e-2"}

    monkeypatch.setattr(boto3, "client", lambda service: CodePipeline())
    alarm = naming.drift_alarm_name(PROJECT, naming.MONITORED_STAGE, "banknote")
    env = {
        naming.DRIFT_ALARM_ENV: alarm,
        ALARM_TIME_ENV: "2026-11-22T06:00:00.000+0000",
        "SAGEMAKER_PROJECT_NAME": PROJECT,
    }
    result = CliRunner().invoke(operations, ["retrain"], env=env)
    assert result.exit_code == 0, result.output
    assert "banknote: started sagemaker-churn-models-modelbuild execution e-2" in result.output
    [request] = calls
    assert request["variables"] == [{"name": "Datasets", "value": "banknote"}]
    assert "clientRequestToken" in request
    env[naming.DRIFT_ALARM_ENV] = "some-other-alarm"
    result = CliRunner().invoke(operations, ["retrain"], env=env)
    assert result.exit_code == 1
    assert "'some-other-alarm' is not a drift alarm" in result.output
    assert "Traceback" not in result.output and len(calls) == 1


def test_the_operations_buildspec_calls_commands_and_options_that_exist() -> None:
    from modeldeploy.cli import endpoint as endpoint_cli

    spec = yaml.safe_load((REPO / "buildspecs" / "operations.yml").read_text())
    script = "\n".join(spec["phases"]["build"]["commands"]).replace("\\\n", " ")
    calls = re.findall(
        r"python -m (modeldeploy\.cli|modeldeploy\.operations) (\w+)([^\n]*)", script
    )
    groups = {"modeldeploy.cli": endpoint_cli, "modeldeploy.operations": operations}
    assert {(module, command) for module, command, _ in calls} == {
        ("modeldeploy.cli", "drift"),
        ("modeldeploy.cli", "canary"),
        ("modeldeploy.operations", "retrain"),
    }
    for module, command, rest in calls:
        declared = {
            option for param in groups[module].commands[command].params for option in param.opts
        }
        assert set(re.findall(r"--[a-z-]+", rest)) <= declared, (command, rest)


def _run_build_phase(tmp_path: Path, env: dict[str, str], failing: str = "") -> tuple[int, str]:
    """The buildspec's build commands under bash, with `python` a stub that logs its arguments
    and fails when they contain `failing`."""
    import os
    import subprocess

    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(
        '#!/bin/sh\necho "$@" >> "$CALLS"\n'
        f'case "$*" in *"{failing or "@never@"}"*) exit 1 ;; esac\nexit 0\n'
    )
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    spec = yaml.safe_load((REPO / "buildspecs" / "operations.yml").read_text())
    script = "\n".join(spec["phases"]["build"]["commands"])
    result = subprocess.run(
        ["bash", "-c", script],
        env={
            "PATH": f"{stub.parent}:{os.environ['PATH']}",
            "CALLS": str(calls),
            "MME_STAGES": " ".join(naming.STAGES),
            "MME_DRIFT_WINDOW_HOURS": "24",
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, (calls.read_text() if calls.exists() else "") + result.stderr


@pytest.mark.integration
def test_a_failing_stage_does_not_keep_the_other_from_its_drift_run(tmp_path: Path) -> None:
    code, output = _run_build_phase(tmp_path, {naming.OPERATION_ENV: "drift"}, failing="drift dev")
    assert code == 1
    assert "drift prod --hours 24 --publish-metrics --upload-reports" in output
    assert "drift failed for: dev" in output


@pytest.mark.integration
def test_the_build_phase_runs_the_operation_asked_for(tmp_path: Path) -> None:
    code, output = _run_build_phase(tmp_path, {naming.OPERATION_ENV: "canary"})
    assert code == 0, output
    assert output.splitlines() == [f"-m modeldeploy.cli canary {s}" for s in naming.STAGES]
    code, output = _run_build_phase(tmp_path / "x", {naming.OPERATION_ENV: "cleanup"})
    assert code == 2 and "MME_OPERATION must be drift, canary or retrain" in output
