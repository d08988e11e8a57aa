"""The endpoint stack's operations resources are wired to the names the code uses: the inference
log table, the invoker's access to it, the loss alarm and the dashboard (lint: test_stack.py)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from modeldeploy import drift_job, naming
from modeldeploy import invoker as invoker_module
from modeldeploy.build import load_template
from modeldeploy.inference_log import InferenceRecord
from modeldeploy.inference_log_dynamodb import dynamodb_item


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][name]["Properties"]


def test_the_inference_log_table_is_keyed_and_expires_as_the_writer_expects(template) -> None:
    table = resource(template, "InferenceLog")
    assert table["TableName"] == {"Sub": "${SageMakerProjectName}-${StageName}-inference-log"}
    assert naming.inference_log_table("proj", "dev") == "proj-dev-inference-log"
    keys = {key["KeyType"]: key["AttributeName"] for key in table["KeySchema"]}
    item = dynamodb_item(InferenceRecord("r", time.time(), "dev", "iris", 200, 1.0), ttl_days=1)
    assert keys == {"HASH": "pk", "RANGE": "sk"} and {"pk", "sk"} <= set(item)
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "N" in item["expires_at"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_invoker_writes_the_log_and_may_do_nothing_else_with_it(template) -> None:
    variables = resource(template, "InvokerFunction")["Environment"]["Variables"]
    assert variables["INFERENCE_LOG_TABLE"] == {"Ref": "InferenceLog"}
    assert variables["INFERENCE_LOG_TTL_DAYS"] == {"Ref": "InferenceLogTtlDays"}
    statements = [
        statement
        for policy in resource(template, "InvokerRole")["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if isinstance(statement, dict) and "dynamodb" in str(statement.get("Action"))
    ]
    assert statements == [
        {
            "Sid": "InferenceLog",
            "Effect": "Allow",
            "Action": "dynamodb:BatchWriteItem",
            "Resource": {"GetAtt": "InferenceLog.Arn"},
        }
    ]


def test_the_loss_alarm_watches_the_metric_the_lambda_emits(template) -> None:
    alarm = resource(template, "InferenceLogLossAlarm")
    assert alarm["Namespace"] == invoker_module.LOSS_METRIC_NAMESPACE
    assert alarm["MetricName"] == invoker_module.LOSS_METRIC
    assert [d["Name"] for d in alarm["Dimensions"]] == ["Stage"]
    emitted = invoker_module._loss_metric(1)["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert emitted == [["Stage"]]


def test_the_dashboard_is_valid_json_showing_endpoint_invoker_and_drift(template) -> None:
    body, variables = resource(template, "Dashboard")["DashboardBody"]["Sub"]
    assert set(variables) == {"EndpointName", "FunctionName"}
    rendered = re.sub(r"\$\{[A-Za-z:]+\}", "x", body)
    widgets = json.loads(rendered)["widgets"]
    text = json.dumps(widgets)
    for metric in ("Invocation5XXErrors", "ModelLatency", "InferenceLogDropped"):
        assert metric in text
    for metric in ("MaxPSI", "DriftedFeatures", "LoggedRows"):
        assert f'{{{drift_job.METRIC_NAMESPACE},Dataset,Stage}} MetricName=\\"{metric}\\"' in text
