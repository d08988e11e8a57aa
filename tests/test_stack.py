"""The endpoint stack: cfn-lint and checkov clean, and wired to the names the code uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modeldeploy import naming
from modeldeploy.build import TEMPLATE, load_stage_config, load_template
from tests.cfn_support import cfn_lint, checkov, resources


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_cfn_lint_is_clean() -> None:
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_is_clean(tmp_path: Path) -> None:
    result = checkov(tmp_path, TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_model_is_multi_model_over_the_stage_prefix(template: dict[str, Any]) -> None:
    [model] = resources(template, "AWS::SageMaker::Model")
    container = model["PrimaryContainer"]
    assert container["Mode"] == "MultiModel"
    # The stack's prefix is the one the deploy logic copies artifacts under.
    assert container["ModelDataUrl"] == {"Sub": "s3://${ArtifactBucket}/${StageName}/models/"}
    assert naming.model_prefix_uri("bkt", "dev") == "s3://bkt/dev/models/"
    [endpoint] = resources(template, "AWS::SageMaker::Endpoint")
    assert endpoint["EndpointName"] == {"Sub": "${SageMakerProjectName}-${StageName}"}
    assert naming.endpoint_name("proj", "dev") == "proj-dev"


def test_autoscaling_tracks_invocations_per_instance_with_cooldowns(
    template: dict[str, Any],
) -> None:
    [target] = resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["ResourceId"] == {
        "Sub": f"endpoint/${{Endpoint.EndpointName}}/variant/{naming.VARIANT_NAME}"
    }
    [policy] = resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert (
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )
    assert tracking["ScaleInCooldown"] == {"Ref": "ScaleInCooldown"}
    assert tracking["ScaleOutCooldown"] == {"Ref": "ScaleOutCooldown"}


def test_the_invoker_is_iam_authenticated_and_reads_the_routing_table(
    template: dict[str, Any],
) -> None:
    [url] = resources(template, "AWS::Lambda::Url")
    assert url["AuthType"] == "AWS_IAM"
    [function] = resources(template, "AWS::Lambda::Function")
    assert function["Handler"] == "modeldeploy.invoker.handler"
    variables = function["Environment"]["Variables"]
    assert variables["ROUTING_TABLE_URI"] == {
        "Sub": "s3://${ArtifactBucket}/${StageName}/routing/live.json"
    }
    assert naming.routing_table_uri("bkt", "dev") == "s3://bkt/dev/routing/live.json"
    [role] = resources(template, "AWS::IAM::Role")
    actions = {
        statement["Action"] if isinstance(statement["Action"], str) else tuple(statement["Action"])
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if isinstance(statement, dict) and "Action" in statement
    }
    assert "s3:GetObject" in actions and "sagemaker:InvokeEndpoint" in actions
    assert not any("*" in str(action) for action in actions)


def test_alarms_watch_errors_latency_and_loading(template: dict[str, Any]) -> None:
    metrics = {alarm["MetricName"] for alarm in resources(template, "AWS::CloudWatch::Alarm")}
    # InferenceLogDropped (issue 7): invocations the inference log lost; tests/test_inference_log_stack.py
    assert metrics == {
        "Invocation5XXErrors",
        "ModelLatency",
        "ModelLoadingTime",
        "InferenceLogDropped",
    }


def test_every_stage_config_fits_the_template(template: dict[str, Any]) -> None:
    for stage in naming.STAGES:
        parameters = load_stage_config(stage)
        assert set(parameters) <= set(template["Parameters"])
        allowed = template["Parameters"]["StageName"]["AllowedValues"]
        assert parameters["StageName"] in allowed
