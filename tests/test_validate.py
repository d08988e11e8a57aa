"""The offline validator: clean definitions pass, and each kind of mistake is caught and named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from container.errors import InputError
from modelbuild.naming import Outputs, Params, Steps
from modelbuild.validate import ensure_valid, validate_definition
from tests.pipeline_fixtures import Built, definitions, offline, step

__all__ = ["definitions", "offline"]  # fixtures used by name
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")


@pytest.fixture
def definition(definitions: dict[str, Built]) -> dict[str, Any]:
    return copy.deepcopy(definitions["breast-cancer"].definition)


def _messages(definition: dict[str, Any], values: dict[str, Any] | None = None) -> list[str]:
    return [str(p) for p in validate_definition(definition, values)]


def test_every_registered_definition_is_valid(definitions: dict[str, Built]) -> None:
    for name, built in definitions.items():
        assert validate_definition(built.definition) == [], name
        # ...and with the values the run command passes to StartPipelineExecution.
        assert validate_definition(built.definition, built.settings.parameter_values()) == []


def test_a_wrong_instance_type_is_caught(definition: dict[str, Any]) -> None:
    messages = _messages(definition, {Params.TRAINING_INSTANCE: "ml.m5.larg"})
    assert messages
    assert all("[Tune]" in m and "'ml.m5.larg' is not an allowed value" in m for m in messages)
    assert any("HyperParameterTuningResourceConfig.InstanceType" in m for m in messages)

    cluster = step(definition, Steps.PREPROCESS)["Arguments"]["ProcessingResources"]
    cluster["ClusterConfig"]["InstanceType"] = "ml.t2.huge"
    assert any(
        "[Preprocess]" in m and "ClusterConfig.InstanceType: 'ml.t2.huge'" in m
        for m in _messages(definition)
    )


def test_a_bad_approval_status_is_caught(definition: dict[str, Any]) -> None:
    # As an execution's value: the parameter's enum and the API's enum both reject it.
    messages = _messages(definition, {Params.APPROVAL_STATUS: "Aproved"})
    assert messages == [
        "parameter 'ModelApprovalStatus': value 'Aproved' is not one of "
        "['PendingManualApproval', 'Approved']",
        f"[{Steps.REGISTER}] CreateModelPackage: ModelApprovalStatus: 'Aproved' is not an "
        "allowed value (e.g. ['Approved', 'Rejected', 'PendingManualApproval'])",
    ]
    # Written into the step itself.
    definition = copy.deepcopy(definition)
    step(definition, Steps.REGISTER)["Arguments"]["ModelApprovalStatus"] = "Aproved"
    assert any(
        m.startswith(f"[{Steps.REGISTER}] CreateModelPackage: ModelApprovalStatus: 'Aproved'")
        for m in _messages(definition)
    )


def test_an_unknown_key_is_caught(definition: dict[str, Any]) -> None:
    step(definition, Steps.EVALUATE)["Arguments"]["ProcessingResources"]["ClusterConfig"][
        "InstanceTyp"
    ] = "ml.m5.large"
    messages = _messages(definition)
    assert len(messages) == 1
    assert 'Unknown parameter in ProcessingResources.ClusterConfig: "InstanceTyp"' in messages[0]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: step(d, Steps.TUNE)["Arguments"]["HyperParameterTuningJobConfig"][
                "ResourceLimits"
            ].update(MaxNumberOfTrainingJobs={"Get": f"Parameters.{Params.TARGET}"}),
            "yields type string, the API expects type integer",
        ),
        (
            lambda d: step(d, Steps.REGISTER)["Arguments"].update(
                ModelPackageGroupName="bad_group!"
            ),
            "ModelPackageGroupName: 'bad_group!' does not match the pattern",
        ),
        (
            lambda d: step(d, Steps.PREPROCESS)["Arguments"]["StoppingCondition"].update(
                MaxRuntimeInSeconds=10**9
            ),
            "MaxRuntimeInSeconds: 1000000000 is more than the maximum",
        ),
        (
            lambda d: step(d, Steps.REGISTER)["Arguments"].pop("InferenceSpecification"),
            "",  # optional member: removing it is not an error
        ),
        (
            lambda d: step(d, Steps.REGISTER)["Arguments"]["CustomerMetadataProperties"].update(
                {"bad key!": "x"}
            ),
            "CustomerMetadataProperties key 'bad key!'",
        ),
    ],
)
def test_shape_checks(
    definition: dict[str, Any], mutate: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    mutate(definition)
    messages = _messages(definition)
    if expected:
        assert any(expected in m for m in messages), messages
    else:
        assert messages == []


def _replace_input(definition: dict[str, Any], name: str, value: Any) -> None:
    inputs = step(definition, Steps.EVALUATE)["Arguments"]["ProcessingInputs"]
    next(i for i in inputs if i["InputName"] == name)["S3Input"]["S3Uri"] = value


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: _replace_input(
                d,
                Outputs.TEST,
                {"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"},
            ),
            "reference to unknown step 'Prepare'",
        ),
        (
            lambda d: _replace_input(
                d,
                Outputs.TEST,
                {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['tset'].S3Output.S3Uri"},
            ),
            "declares no ProcessingOutputConfig.Outputs entry named 'tset' (it has ['test', 'train'])",
        ),
        (
            lambda d: _replace_input(
                d,
                Outputs.TEST,
                {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Url"},
            ),
            "has no property 'S3Url'",
        ),
        (
            lambda d: _replace_input(
                d, Outputs.TEST, {"Get": "Steps.Tune.BestTrainingJob.ModelArtifacts"}
            ),
            "has no property 'ModelArtifacts'",
        ),
        (
            lambda d: _replace_input(
                d, Outputs.TEST, {"Get": "Steps.Preprocess.ProcessingOutputConfig"}
            ),
            "is a structure, not a single value",
        ),
        (
            lambda d: _replace_input(d, Outputs.TEST, {"Get": "Parameters.ModelUrl"}),
            "reference to undeclared parameter 'ModelUrl'",
        ),
        (
            lambda d: _replace_input(d, Outputs.TEST, {"Get": "Execution.PipelineExecutionUuid"}),
            "unknown execution variable 'PipelineExecutionUuid'",
        ),
        (
            lambda d: _replace_input(d, Outputs.TEST, {"Std:Concat": {"Values": ["s3://b/", "k"]}}),
            "function 'Std:Concat' is not supported",
        ),
        (
            lambda d: step(d, Steps.CHECK)["Arguments"]["Conditions"][0]["LeftValue"][
                "Std:JsonGet"
            ].update(PropertyFile={"Get": "Steps.Evaluate.PropertyFiles.Report"}),
            "reads property file 'Report', which step 'Evaluate' does not declare",
        ),
        (
            lambda d: step(d, Steps.EVALUATE)["PropertyFiles"][0].update(OutputName="eval"),
            "reads output 'eval', which the step does not declare",
        ),
        (
            lambda d: step(d, Steps.PREPROCESS)["Arguments"]["ProcessingInputs"][0][
                "S3Input"
            ].update(
                S3Uri={
                    "Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"
                }
            ),
            "steps depend on each other in a cycle",
        ),
        (
            lambda d: step(d, Steps.TUNE).update(DependsOn=["Train"]),
            "DependsOn names unknown step 'Train'",
        ),
        (
            lambda d: d["Steps"].append(
                {"Name": "Tune", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}
            ),
            "step name is used twice",
        ),
        (
            lambda d: d["Steps"].append({"Name": "Emr", "Type": "EMR", "Arguments": {}}),
            "step type 'EMR' is not supported",
        ),
    ],
)
def test_reference_checks(
    definition: dict[str, Any], mutate: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    mutate(definition)
    messages = _messages(definition)
    assert any(expected in m for m in messages), messages


def test_parameter_values_are_checked(definition: dict[str, Any]) -> None:
    messages = _messages(
        definition, {"MaxJobs": 10, Params.MAX_JOBS: "ten", Params.DATASET: "wine"}
    )
    assert any("unknown pipeline parameter 'MaxJobs'" in m for m in messages)
    assert any("'MaxTuningJobs': value 'ten' is not of type Integer" in m for m in messages)
    assert any("'DatasetName': value 'wine' is not one of ['breast-cancer']" in m for m in messages)


def test_ensure_valid_raises_one_error_listing_every_problem(definition: dict[str, Any]) -> None:
    ensure_valid(definition)
    step(definition, Steps.REGISTER)["Arguments"]["ModelApprovalStatus"] = "Aproved"
    with pytest.raises(InputError, match="pipeline definition is invalid") as raised:
        ensure_valid(definition, {Params.PROCESSING_INSTANCE: "ml.bad"}, dataset="breast-cancer")
    text = str(raised.value)
    assert text.startswith("dataset 'breast-cancer': ")
    assert "ModelApprovalStatus: 'Aproved'" in text and "'ml.bad'" in text


def test_a_document_that_is_not_a_definition_is_rejected() -> None:
    assert [str(p) for p in validate_definition({"Version": "2020-12-01"})] == [
        "a pipeline definition is a JSON object with a 'Steps' list"
    ]
