"""Expression, condition and parameter semantics of the local executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from container.errors import InputError
from local.executor import DefinitionError, parse_duration, plan, resolve_parameters
from local.expressions import ExpressionError, Scope, StepState, condition_holds, resolve
from local.jobs import JobError, python_module, remap

REPORT_URI = "s3://bucket/exec/evaluation/evaluation.json"


def _scope(**documents: Any) -> Scope:
    stored = {REPORT_URI: {"register_metric": {"value": 0.91}, "items": [{"v": 3}]}, **documents}
    return Scope(
        parameters={"Threshold": 0.9, "Folds": 5, "Name": "wine", "Flag": True},
        execution={"PipelineExecutionId": "abc123def456"},
        steps={
            "Prep": StepState(
                {
                    "ProcessingOutputConfig": {
                        "Outputs": [
                            {"OutputName": "train", "S3Output": {"S3Uri": "s3://bucket/train"}},
                            {"OutputName": "test", "S3Output": {"S3Uri": "s3://bucket/test"}},
                        ]
                    }
                },
            ),
            "Tune": StepState({"TrainingJobSummaries": [{"TrainingJobName": "best-job"}]}),
            "Eval": StepState({}, {"Report": REPORT_URI}),
        },
        read_json=lambda uri: stored[uri],
    )


def _json_get(path: str) -> dict[str, Any]:
    return {
        "Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": path}
    }


def test_get_reads_parameters_execution_variables_and_step_properties() -> None:
    scope = _scope()
    assert resolve({"Get": "Parameters.Folds"}, scope, "S") == 5
    assert resolve({"Get": "Execution.PipelineExecutionId"}, scope, "S") == "abc123def456"
    assert (
        resolve({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}, scope, "S")
        == "s3://bucket/test"
    )  # fmt: skip
    assert (
        resolve({"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"}, scope, "S")
        == "best-job"
    )
    nested = {"a": [{"Get": "Parameters.Name"}, "literal"], "b": {"Get": "Parameters.Threshold"}}
    assert resolve(nested, scope, "S") == {"a": ["wine", "literal"], "b": 0.9}


def test_join_renders_values_as_sagemaker_does_and_nests() -> None:
    join = {"Std:Join": {"On": "/", "Values": [
        "s3:/", "bucket", {"Get": "Execution.PipelineExecutionId"}, {"Get": "Parameters.Folds"},
        {"Get": "Parameters.Threshold"}, {"Get": "Parameters.Flag"},
        {"Std:Join": {"On": "-", "Values": ["x", {"Get": "Parameters.Name"}]}},
    ]}}  # fmt: skip
    assert resolve(join, _scope(), "S") == "s3://bucket/abc123def456/5/0.9/true/x-wine"


def test_json_get_reads_a_property_file_and_names_a_missing_path() -> None:
    scope = _scope()
    assert resolve(_json_get("register_metric.value"), scope, "Check") == 0.91
    assert resolve(_json_get("items[0].v"), scope, "Check") == 3
    with pytest.raises(ExpressionError, match=r"step 'Check'.*no 'register_metric\.nope'"):
        resolve(_json_get("register_metric.nope"), scope, "Check")
    direct = {"Std:JsonGet": {"S3Uri": REPORT_URI, "Path": "register_metric.value"}}
    assert resolve(direct, scope, "Check") == 0.91


def test_a_missing_property_or_step_is_an_error_naming_the_step() -> None:
    with pytest.raises(ExpressionError, match=r"step 'Eval' reads .*Outputs\['nope'\].*no such"):
        resolve({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['nope'].S3Output.S3Uri"},
                _scope(), "Eval")  # fmt: skip
    with pytest.raises(ExpressionError, match=r"step 'Eval' reads .* 'Later' has not run"):
        resolve({"Get": "Steps.Later.Anything"}, _scope(), "Eval")


@pytest.mark.parametrize(
    ("kind", "left", "right", "expected"),
    [
        ("GreaterThanOrEqualTo", _json_get("register_metric.value"), {"Get": "Parameters.Threshold"}, True),
        ("GreaterThanOrEqualTo", 0.89, {"Get": "Parameters.Threshold"}, False),
        ("GreaterThanOrEqualTo", 5, 5.0, True),
        ("GreaterThan", 5, 5, False),
        ("LessThan", 1, 2, True),
        ("LessThanOrEqualTo", 2, 2, True),
        ("Equals", {"Get": "Parameters.Name"}, "wine", True),
    ],
)  # fmt: skip
def test_comparisons(kind: str, left: Any, right: Any, expected: bool) -> None:
    condition = {"Type": kind, "LeftValue": left, "RightValue": right}
    assert condition_holds(condition, _scope(), "Check") is expected


def test_not_or_in_and_a_type_mismatch() -> None:
    scope = _scope()
    true = {"Type": "Equals", "LeftValue": 1, "RightValue": 1}
    false = {"Type": "Equals", "LeftValue": 1, "RightValue": 2}
    assert condition_holds({"Type": "Not", "Condition": false}, scope, "C")
    assert condition_holds({"Type": "Or", "Conditions": [false, true]}, scope, "C")
    assert not condition_holds({"Type": "Or", "Conditions": [false, false]}, scope, "C")
    assert condition_holds(
        {"Type": "In", "QueryValue": {"Get": "Parameters.Name"}, "Values": ["iris", "wine"]}, scope, "C"
    )  # fmt: skip
    with pytest.raises(ExpressionError, match=r"step 'C'.*compares str 'wine' with float"):
        condition_holds({"Type": "GreaterThan", "LeftValue": "wine", "RightValue": 0.5}, scope, "C")


def _definition(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "Parameters": [{"Name": "P", "Type": "Integer", "DefaultValue": 1}],
        "Steps": list(steps),
    }


def test_plan_orders_steps_by_their_references_and_refuses_what_it_cannot_run() -> None:
    later = {"Name": "B", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Steps.A.Outcome"}}}
    first = {"Name": "A", "Type": "Condition", "Arguments": {"Conditions": [], "IfSteps": [],
             "ElseSteps": [{"Name": "C", "Type": "Fail", "Arguments": {}}]}}  # fmt: skip
    assert [n.name for n in plan(_definition(later, first))] == ["A", "B", "C"]
    with pytest.raises(DefinitionError, match=r"step 'X' has type 'Transform'"):
        plan(_definition({"Name": "X", "Type": "Transform", "Arguments": {}}))
    with pytest.raises(DefinitionError, match=r"step 'X' reads 'Parameters.Nope'"):
        plan(
            _definition(
                {
                    "Name": "X",
                    "Type": "Fail",
                    "Arguments": {"ErrorMessage": {"Get": "Parameters.Nope"}},
                }
            )
        )
    with pytest.raises(DefinitionError, match=r"step 'X' uses condition type 'Between'"):
        plan(
            _definition(
                {
                    "Name": "X",
                    "Type": "Condition",
                    "Arguments": {"Conditions": [{"Type": "Between"}]},
                }
            )
        )
    cycle = [
        {"Name": n, "Type": "Fail", "Arguments": {}, "DependsOn": [m]}
        for n, m in (("A", "B"), ("B", "A"))
    ]
    with pytest.raises(DefinitionError, match="cycle"):
        plan(_definition(*cycle))
    bash = {
        "Name": "X",
        "Type": "Processing",
        "Arguments": {"AppSpecification": {"ContainerEntrypoint": ["bash", "run.sh"]}},
    }
    with pytest.raises(DefinitionError, match=r"step 'X': entry point 'bash run.sh'"):
        plan(_definition(bash))  # fmt: skip


def test_parameters_take_defaults_and_typed_overrides() -> None:
    definition = {"Parameters": [
        {"Name": "Folds", "Type": "Integer", "DefaultValue": 5},
        {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.9},
        {"Name": "Strategy", "Type": "String", "DefaultValue": "Bayesian", "EnumValues": ["Bayesian", "Random"]},
        {"Name": "Flag", "Type": "Boolean", "DefaultValue": False},
    ], "Steps": []}  # fmt: skip
    assert resolve_parameters(definition) == {
        "Folds": 5, "Threshold": 0.9, "Strategy": "Bayesian", "Flag": False
    }  # fmt: skip
    overridden = resolve_parameters(definition, {"Folds": "3", "Threshold": "1", "Flag": "true"})
    assert (
        overridden["Folds"] == 3 and overridden["Threshold"] == 1.0 and overridden["Flag"] is True
    )
    with pytest.raises(InputError, match=r"unknown pipeline parameter\(s\) Nope"):
        resolve_parameters(definition, {"Nope": 1})
    with pytest.raises(InputError, match=r"Folds is Integer, got 'three'"):
        resolve_parameters(definition, {"Folds": "three"})
    with pytest.raises(InputError, match=r"Strategy='Grid' is not one of"):
        resolve_parameters(definition, {"Strategy": "Grid"})


def test_paths_in_commands_move_with_the_job_root(tmp_path: Path) -> None:
    root = tmp_path / "ml"
    assert remap("/opt/ml/processing/input", root) == f"{root}/processing/input"
    assert remap("--input=/opt/ml/processing/input", root) == f"--input={root}/processing/input"
    assert remap("/opt/mlx/keep", root) == "/opt/mlx/keep"
    assert remap("--note=see/opt/ml", root) == "--note=see/opt/ml"
    assert python_module(["python3", "-m", "container", "train"]) == ("container", ["train"])
    with pytest.raises(JobError, match="is not 'python3 -m <module>"):
        python_module(["java", "-jar", "x.jar"])


def test_cache_expiry_durations() -> None:
    assert parse_duration("P30D").days == 30
    assert parse_duration("PT16M").total_seconds() == 16 * 60
    assert parse_duration("P1WT5H").total_seconds() == 7 * 86400 + 5 * 3600
    with pytest.raises(InputError, match="not an ISO 8601 duration"):
        parse_duration("30 days")
