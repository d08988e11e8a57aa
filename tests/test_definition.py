"""One reader of the definition: the validator and the local executor share its path grammar,
its reference parser, its expression walk and its dependency graph, so they cannot disagree."""

from __future__ import annotations

from typing import Any

import pytest

from local.executor import DefinitionError, plan
from local.expressions import ExpressionError, Scope, StepState, resolve
from modelbuild.definition import (
    CycleError,
    DefinitionSyntaxError,
    ExecutionRef,
    Index,
    Key,
    Member,
    ParameterRef,
    PropertyFileRef,
    StepPropertyRef,
    cycles,
    dependency_graph,
    follow,
    format_path,
    iter_conditions,
    nodes,
    parse_path,
    parse_property_path,
    parse_reference,
    topological_order,
)
from modelbuild.validate import validate_definition

# The properties the executor's Processing and Tuning handlers leave (their Describe* shapes).
PREP_PROPERTIES = {
    "ProcessingJobName": "pipelines-abc-Prep",
    "ProcessingOutputConfig": {
        "Outputs": [
            {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
            {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/test"}},
        ]
    },
}
TUNE_PROPERTIES = {
    "BestTrainingJob": {"TrainingJobName": "abc-Tune-001"},
    "TrainingJobSummaries": [{"TrainingJobName": "abc-Tune-001"}],
}

# (step, property path, accepted): the one grammar, whoever reads the path.
PATHS = [
    ("Prep", "ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri", True),
    ("Prep", 'ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri', True),
    ("Prep", "ProcessingJobName", True),
    ("Tune", "TrainingJobSummaries[0].TrainingJobName", True),
    ("Tune", "BestTrainingJob.TrainingJobName", True),
    ("Prep", "", False),
    ("Prep", ".ProcessingJobName", False),
    ("Prep", "ProcessingOutputConfig..Outputs", False),
    ("Prep", "ProcessingOutputConfig.Outputs[train].S3Output.S3Uri", False),
    ("Prep", "ProcessingOutputConfig.Outputs['train'.S3Output.S3Uri", False),
    ("Prep", "ProcessingOutputConfig.Outputs['train']S3Output.S3Uri", False),
    ("Prep", "Processing-JobName", False),
    ("Prep", "['ProcessingJobName']", False),
    ("Tune", "TrainingJobSummaries[-1].TrainingJobName", False),
    ("Tune", "TrainingJobSummaries.[0].TrainingJobName", False),
    ("Tune", "TrainingJobSummaries[0]TrainingJobName", False),
]


def _definition(target: str) -> dict[str, Any]:
    """A Processing and a Tuning step, and a Fail step whose message reads `target`."""
    return {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            {
                "Name": "Prep",
                "Type": "Processing",
                "Arguments": {
                    "ProcessingOutputConfig": {
                        "Outputs": [
                            {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
                            {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/test"}},
                        ]
                    }
                },
            },
            {"Name": "Tune", "Type": "Tuning", "Arguments": {}},
            {"Name": "Use", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": target}}},
        ],
    }


def _validator_problems(target: str) -> list[str]:
    # Only what the validator says about the reading step: the fixture's job steps are not
    # complete API requests, which is beside the point here.
    return [p.message for p in validate_definition(_definition(target)) if p.step == "Use"]


def _executor_errors(target: str) -> list[str]:
    errors = []
    try:
        plan(_definition(target))
    except DefinitionError as error:
        errors.append(error.problem)
    scope = Scope(
        {},
        {},
        {"Prep": StepState(PREP_PROPERTIES), "Tune": StepState(TUNE_PROPERTIES)},
        lambda uri: None,
    )
    try:
        resolve({"Get": target}, scope, "Use")
    except ExpressionError as error:
        errors.append(error.problem)
    return errors


@pytest.mark.parametrize(("source", "path", "accepted"), PATHS)
def test_a_property_path_is_accepted_or_refused_alike_by_validator_and_executor(
    source: str, path: str, accepted: bool
) -> None:
    target = f"Steps.{source}.{path}".rstrip(".")
    validator = _validator_problems(target)
    executor = _executor_errors(target)
    assert (not validator) is accepted, validator
    assert (not executor) is accepted, executor
    if not accepted:
        # Refused for the same reason, in the same words: the shared parser's.
        with pytest.raises(DefinitionSyntaxError) as raised:
            parse_property_path(path)
        reason = str(raised.value)
        assert any(reason in problem for problem in validator), (reason, validator)
        assert len(executor) == 2 and all(reason in problem for problem in executor), executor


def test_the_parser_yields_typed_segments_and_formats_them_back() -> None:
    path = "ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"
    segments = parse_property_path(path)
    assert segments == (
        Member("ProcessingOutputConfig"),
        Member("Outputs"),
        Key("train"),
        Member("S3Output"),
        Member("S3Uri"),
    )
    assert format_path(segments) == path
    assert parse_property_path("TrainingJobSummaries[0].TrainingJobName") == (
        Member("TrainingJobSummaries"),
        Index(0),
        Member("TrainingJobName"),
    )
    # A Std:JsonGet path may start at a list or a key; a step property path may not.
    assert parse_path("[0].v") == (Index(0), Member("v"))
    assert parse_path("['roc-auc'].value") == (Key("roc-auc"), Member("value"))
    with pytest.raises(DefinitionSyntaxError, match="must start with a property name"):
        parse_property_path("[0].v")
    with pytest.raises(DefinitionSyntaxError, match=r"at '\.\.b'"):
        parse_path("a..b")


def test_following_a_path_picks_named_entries_of_lists_only_by_key() -> None:
    assert follow(PREP_PROPERTIES, parse_path("ProcessingOutputConfig.Outputs['test']")) == {
        "OutputName": "test",
        "S3Output": {"S3Uri": "s3://b/test"},
    }
    with pytest.raises(LookupError):
        follow(PREP_PROPERTIES, parse_path("ProcessingOutputConfig.Outputs.test"))
    with pytest.raises(LookupError):
        follow(PREP_PROPERTIES, parse_path("ProcessingOutputConfig.Outputs[2]"))


def test_references_are_parsed_into_their_kinds() -> None:
    assert parse_reference("Parameters.Threshold") == ParameterRef("Threshold")
    assert parse_reference("Execution.PipelineExecutionId") == ExecutionRef("PipelineExecutionId")
    assert parse_reference("Steps.Eval.PropertyFiles.Report") == PropertyFileRef("Eval", "Report")
    reference = parse_reference("Steps.Tune.TrainingJobSummaries[0].TrainingJobName")
    assert reference == StepPropertyRef("Tune", "TrainingJobSummaries[0].TrainingJobName")
    assert isinstance(reference, StepPropertyRef) and reference.segments[1] == Index(0)
    with pytest.raises(DefinitionSyntaxError, match="not to Parameters, Execution or Steps"):
        parse_reference("Pipeline.Name")
    with pytest.raises(DefinitionSyntaxError, match="Get needs a string"):
        parse_reference(["Steps.A.B"])


def _step(name: str, kind: str = "Fail", **arguments: Any) -> dict[str, Any]:
    return {"Name": name, "Type": kind, "Arguments": arguments}


def test_the_graph_has_depends_on_references_and_the_condition_holding_a_step() -> None:
    register = _step(
        "Register",
        ErrorMessage={"Std:Join": {"On": "", "Values": [{"Get": "Steps.Train.ModelArtifacts"}]}},
    )
    condition = _step(
        "Check",
        "Condition",
        Conditions=[
            {
                "Type": "Not",
                "Condition": {
                    "Type": "Equals",
                    "LeftValue": {
                        "Std:JsonGet": {
                            "PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"},
                            "Path": "a.b",
                        }
                    },
                    "RightValue": 1,
                },
            }
        ],
        IfSteps=[register],
        ElseSteps=[],
    )
    steps = [_step("Train"), {**_step("Eval"), "DependsOn": ["Train"]}, condition]
    graph = dependency_graph(nodes(steps))
    assert graph == {
        "Train": set(),
        "Eval": {"Train"},
        "Check": {"Eval"},  # its own conditions only, not its branches' steps
        "Register": {"Train", "Check"},
    }
    assert topological_order(graph) == ["Train", "Eval", "Check", "Register"]
    assert cycles(graph) == []
    assert [c.get("Type") for c in iter_conditions(condition["Arguments"]["Conditions"])] == [
        "Not",
        "Equals",
    ]


def test_the_order_is_stable_and_cycles_are_named() -> None:
    assert topological_order({"B": {"A"}, "C": set(), "A": set()}) == ["C", "A", "B"]
    graph = {"A": {"C"}, "B": {"A"}, "C": {"B"}, "D": {"D"}, "E": {"A", "unknown"}}
    assert cycles(graph) == [["A", "C", "B", "A"], ["D", "D"]]
    with pytest.raises(CycleError, match=r"in a cycle: A -> C -> B -> A") as raised:
        topological_order(graph)
    assert raised.value.cycle == ["A", "C", "B", "A"]


def test_validator_and_executor_refuse_the_same_cycle_in_the_same_words() -> None:
    cycle = [
        {**_step("A", ErrorMessage={"Get": "Steps.B.Outcome"})},
        {**_step("B", "Condition", Conditions=[]), "DependsOn": ["A"]},
    ]
    definition = {"Parameters": [], "Steps": cycle}
    expected = "steps depend on each other in a cycle: A -> B -> A"
    assert expected in [p.message for p in validate_definition(definition)]
    with pytest.raises(DefinitionError) as raised:
        plan(definition)
    assert raised.value.problem == expected


def test_a_condition_reading_a_step_of_its_own_branch_is_a_cycle_for_both() -> None:
    inner = _step("Inner", ErrorMessage="x")
    check = _step(
        "Check",
        "Condition",
        Conditions=[
            {"Type": "Equals", "LeftValue": {"Get": "Steps.Inner.Outcome"}, "RightValue": 1}
        ],
        IfSteps=[inner],
        ElseSteps=[],
    )
    definition = {"Parameters": [], "Steps": [check]}
    expected = "steps depend on each other in a cycle: Check -> Inner -> Check"
    assert expected in [p.message for p in validate_definition(definition)]
    with pytest.raises(DefinitionError, match=expected):
        plan(definition)


def test_a_nested_condition_type_is_checked_by_both() -> None:
    check = _step(
        "Check", "Condition", Conditions=[{"Type": "Not", "Condition": {"Type": "Between"}}]
    )
    definition = {"Parameters": [], "Steps": [check]}
    assert "unknown condition type 'Between'" in [
        p.message for p in validate_definition(definition)
    ]
    with pytest.raises(DefinitionError, match="condition type 'Between'"):
        plan(definition)
