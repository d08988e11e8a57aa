"""The endpoint alarms notify the project's topic: the project template gives the topic to the
modeldeploy build, the build writes it into every stage's stack parameters, the stack's alarms
use it, and the topic (and its KMS key) accept CloudWatch's publishes from those alarms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from container.errors import InputError
from modelbuild import naming as build_naming
from modeldeploy import naming
from modeldeploy.build import export_stage_config, load_template
from modeldeploy.cli import endpoint as endpoint_cli
from template import PROJECT_TEMPLATE
from tests.cfn_support import Evaluator
from tests.iam_policy import Request, allows

PROJECT = "churn-models"
PROJECT_ID = "p-abc123def456"
REGION, ACCOUNT = "eu-west-1", "123456789012"  # the Evaluator's pseudo parameters
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:sagemaker-{PROJECT}-notifications"


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return load_template(PROJECT_TEMPLATE)


@pytest.fixture(scope="module")
def resolve(project: dict[str, Any]) -> Evaluator:
    return Evaluator(
        project,
        attributes={
            "NotificationTopic": TOPIC,
            "ArtifactBucket": build_naming.artifact_bucket_name(PROJECT_ID),
            "ArtifactKey.Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef",
            "ImageUriParameter": f"/sagemaker-mme/{PROJECT}/image-uri",
            "ModelExecutionRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker-mme/model",
            "ModelDeployRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker-mme/deploy",
            "PipelineFailureRule.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/failure",
            "OperationsFailureRule.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/operations",
        },
        SageMakerProjectName=PROJECT,
        SageMakerProjectId=PROJECT_ID,
        SeedCodeBucket="my-templates",
    )


def build_environment(project: dict[str, Any], resolve: Evaluator) -> dict[str, str]:
    """The modeldeploy build project's environment as CodeBuild would set it (the image
    parameter resolved to a pushed image)."""
    variables = resolve(project["Resources"]["ModelDeployBuildProject"]["Properties"])
    environment = {v["Name"]: v["Value"] for v in variables["Environment"]["EnvironmentVariables"]}
    environment["IMAGE_URI"] = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mme:abc123"
    return environment


def test_the_build_writes_the_projects_topic_into_every_stage(
    project: dict[str, Any], resolve: Evaluator, tmp_path: Path
) -> None:
    environment = build_environment(project, resolve)
    assert environment[naming.ALARM_TOPIC_ENV] == TOPIC
    result = CliRunner().invoke(
        endpoint_cli, ["build", "--output-dir", str(tmp_path), "--no-upload"], env=environment
    )
    assert result.exit_code == 0, result.output
    endpoint = load_template()
    for stage in naming.STAGES:
        config = json.loads((tmp_path / naming.config_export_file(stage)).read_text())
        assert config["Parameters"]["AlarmTopicArn"] == TOPIC
        # The rendered parameters, fed to the stack, put the topic on every alarm.
        stack = Evaluator(
            endpoint,
            attributes={"Endpoint.EndpointName": "x", "InvokerFunction": "y"},
            **config["Parameters"],
        )
        alarms = [
            b for b in endpoint["Resources"].values() if b["Type"] == "AWS::CloudWatch::Alarm"
        ]
        assert alarms
        for alarm in alarms:
            actions = stack(alarm["Properties"])
            assert actions["AlarmActions"] == [TOPIC] and actions["OKActions"] == [TOPIC]


def test_a_topic_that_is_not_an_sns_arn_is_refused_by_name() -> None:
    with pytest.raises(InputError, match="AlarmTopicArn 'my-topic' does not match"):
        export_stage_config(
            "dev",
            project=PROJECT,
            project_id=PROJECT_ID,
            bucket=build_naming.artifact_bucket_name(PROJECT_ID),
            image_uri=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mme:abc123",
            model_execution_role_arn=f"arn:aws:iam::{ACCOUNT}:role/model",
            invoker_code_key="modeldeploy/invoker/invoker-0.zip",
            alarm_topic_arn="my-topic",
        )


def cloudwatch_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for s in document["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]


@pytest.mark.parametrize("stage", naming.STAGES)
def test_the_topic_and_its_key_accept_the_endpoint_alarms(
    project: dict[str, Any], resolve: Evaluator, stage: str
) -> None:
    """CloudFormation names an alarm without AlarmName <stack>-<logical id>-<suffix>; the
    endpoint stack is naming.stack_name's. CloudWatch publishes to the KMS-encrypted topic as
    cloudwatch.amazonaws.com, which needs the topic policy and the key policy both."""
    endpoint = load_template()
    stack_name = naming.stack_name(PROJECT, stage)
    policy = resolve(project["Resources"]["NotificationTopicPolicy"]["Properties"])
    topic_statements = cloudwatch_statements(policy["PolicyDocument"])
    key = resolve(project["Resources"]["ArtifactKey"]["Properties"])["KeyPolicy"]
    key_statements = cloudwatch_statements(key)
    for logical_id, body in endpoint["Resources"].items():
        if body["Type"] != "AWS::CloudWatch::Alarm":
            continue
        assert "AlarmName" not in body["Properties"]
        alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{stack_name}-{logical_id}-1A2B3C"
        context = {"aws:SourceArn": alarm, "aws:SourceAccount": ACCOUNT}
        assert allows(topic_statements, Request("sns:Publish", TOPIC, context)), logical_id
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert allows(key_statements, Request(action, "*", context)), action
    foreign = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:other-project-alarm"
    assert not allows(topic_statements, Request("sns:Publish", TOPIC, {"aws:SourceArn": foreign}))
