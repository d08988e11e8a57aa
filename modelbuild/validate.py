"""Offline validation of a pipeline definition against the SageMaker API, without the SDK.

What SageMaker would reject at CreatePipeline or at run time, found before anything is uploaded:

- every job step's Arguments against the botocore input shape of the API it becomes
  (CreateProcessingJob, CreateHyperParameterTuningJob, CreateTrainingJob, CreateModelPackage,
  CreateModel, CreateTransformJob): required members, unknown keys, types, minimums, and what
  botocore's own validator skips (enums, maximum lengths and values, patterns). Pipeline
  parameters are replaced by their values (defaults, or the values an execution will pass);
  every other expression by a placeholder of the type the API expects there, after checking that
  the expression yields that type;
- every `Get` reference: parameters that are declared, execution variables that exist, steps
  that exist, properties that the referenced step's type has (walked through the botocore output
  shape of its Describe* API), and named outputs, inputs and property files the referenced step
  declares;
- parameters (names, types, enum values), step names, dependencies and cycles, and the
  expression functions used, limited to those the local runtime implements.

The definition's structure (steps, references, property paths, the dependency graph) is read by
`modelbuild.definition`, the reader the local executor uses too; a value is checked against an
API shape (botocore's validator plus the enums, maximums and patterns it skips) by
`modelbuild.api_shapes`.

Why this file is long: `DefinitionChecker` is one walk over the definition with shared state
(the parameters' values, the steps, the problems found); its reference, expression and
argument checks call one another. The API-shape checks are apart (`modelbuild.api_shapes`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.model import Shape

from container.errors import InputError
from modelbuild.api_shapes import COMPATIBLE, placeholder, service_model, shape_problems
from modelbuild.definition import (
    CONDITION_TYPES,
    EXECUTION_VARIABLES,
    FUNCTIONS,
    DefinitionSyntaxError,
    ExecutionRef,
    Index,
    Member,
    ParameterRef,
    PropertyFileRef,
    Segment,
    StepPropertyRef,
    cycles,
    dependency_graph,
    entry_names,
    expressions,
    function_problem,
    is_expression,
    iter_conditions,
    iter_steps,
    nodes,
    own_arguments,
    parse_reference,
)

# Re-exported: callers read the definition's vocabulary and step walk from here too.
__all__ = [
    "CONDITION_TYPES",
    "EXECUTION_VARIABLES",
    "FUNCTIONS",
    "DefinitionChecker",
    "Problem",
    "ensure_valid",
    "iter_steps",
    "service_model",
    "validate_definition",
]

# step Type -> (API operation, the job-name members the SDK leaves out of the definition)
STEP_OPERATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "validation-placeholder"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "validation-placeholder"}),
    "Tuning": ("CreateHyperParameterTuningJob", {"HyperParameterTuningJobName": "placeholder"}),
    "RegisterModel": ("CreateModelPackage", {}),
    "Model": ("CreateModel", {}),
    "Transform": ("CreateTransformJob", {"TransformJobName": "validation-placeholder"}),
}
# step Type -> output shapes its properties come from (what `Steps.<name>.<path>` can read)
PROPERTY_SHAPES: dict[str, tuple[str, ...]] = {
    "Processing": ("DescribeProcessingJobResponse",),
    "Training": ("DescribeTrainingJobResponse",),
    "Tuning": (
        "DescribeHyperParameterTuningJobResponse",
        "ListTrainingJobsForHyperParameterTuningJobResponse",
    ),
    "RegisterModel": ("DescribeModelPackageOutput",),
    "Model": ("DescribeModelOutput",),
    "Transform": ("DescribeTransformJobResponse",),
}
STEP_TYPES = frozenset(PROPERTY_SHAPES) | {"Condition", "Fail"}
STEP_KEYS = frozenset(
    {
        "Name",
        "Type",
        "Arguments",
        "DependsOn",
        "CacheConfig",
        "PropertyFiles",
        "RetryPolicies",
        "DisplayName",
        "Description",
    }
)
PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "String": (str,),
    "Integer": (int,),
    "Float": (float, int),
    "Boolean": (bool,),
}
STEP_NAME_PATTERN = r"[A-Za-z0-9\-_]{1,64}"
PARAMETER_NAME_PATTERN = r"[A-Za-z0-9\-_]{1,256}"

_PARAMETER_SHAPE_TYPE = {
    "String": "string",
    "Integer": "integer",
    "Float": "float",
    "Boolean": "boolean",
}


@dataclass(frozen=True)
class Problem:
    step: str | None
    message: str

    def __str__(self) -> str:
        return f"[{self.step}] {self.message}" if self.step else self.message


class DefinitionChecker:
    def __init__(self, definition: Mapping[str, Any], values: Mapping[str, Any] | None) -> None:
        self.definition = definition
        self.values = dict(values or {})
        self.problems: list[Problem] = []
        self.model = service_model()
        self.steps: dict[str, dict[str, Any]] = {}
        self.parameters: dict[str, dict[str, Any]] = {}

    def report(self, step: str | None, message: str) -> None:
        # A job step's references are met twice (graph walk, then argument resolution).
        problem = Problem(step, message)
        if problem not in self.problems:
            self.problems.append(problem)

    # -- parameters ---------------------------------------------------------------------------

    def check_parameters(self) -> None:
        for parameter in self.definition.get("Parameters", []):
            name = parameter.get("Name", "")
            if not re.fullmatch(PARAMETER_NAME_PATTERN, name):
                self.report(
                    None, f"parameter name {name!r} does not match {PARAMETER_NAME_PATTERN}"
                )
            if name in self.parameters:
                self.report(None, f"parameter {name!r} is declared twice")
            kind = parameter.get("Type")
            if kind not in PARAMETER_TYPES:
                self.report(None, f"parameter {name!r} has unknown type {kind!r}")
                continue
            self.parameters[name] = parameter
            if "DefaultValue" in parameter:
                self._check_parameter_value(name, parameter["DefaultValue"], "default")
        for name, value in self.values.items():
            if name not in self.parameters:
                known = ", ".join(sorted(self.parameters))
                self.report(None, f"unknown pipeline parameter {name!r} (declared: {known})")
            else:
                self._check_parameter_value(name, value, "value")

    def _check_parameter_value(self, name: str, value: Any, what: str) -> None:
        parameter = self.parameters[name]
        kind = parameter["Type"]
        if isinstance(value, bool) != (kind == "Boolean") or not isinstance(
            value, PARAMETER_TYPES[kind]
        ):
            self.report(None, f"parameter {name!r}: {what} {value!r} is not of type {kind}")
            return
        enum = parameter.get("EnumValues")
        if enum is not None and value not in enum:
            self.report(None, f"parameter {name!r}: {what} {value!r} is not one of {enum}")

    def parameter_value(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        return self.parameters.get(name, {}).get("DefaultValue")

    # -- steps --------------------------------------------------------------------------------

    def check_steps(self) -> None:
        steps = list(iter_steps(self.definition.get("Steps") or []))
        if not steps:
            self.report(None, "the definition has no steps")
        for step in steps:
            name = step.get("Name", "")
            if not re.fullmatch(STEP_NAME_PATTERN, name):
                self.report(name or None, f"step name {name!r} does not match {STEP_NAME_PATTERN}")
            if name in self.steps:
                self.report(name, "step name is used twice")
            self.steps[name] = step
            if step.get("Type") not in STEP_TYPES:
                self.report(name, f"step type {step.get('Type')!r} is not supported")
            unknown = sorted(set(step) - STEP_KEYS)
            if unknown:
                self.report(name, f"unknown step keys {unknown}")
        for step in steps:
            self._check_step(step)
        self._check_cycles()

    def _check_step(self, step: dict[str, Any]) -> None:
        name, kind = step.get("Name", ""), step.get("Type")
        for dependency in step.get("DependsOn", []):
            if dependency not in self.steps:
                self.report(name, f"DependsOn names unknown step {dependency!r}")
        for expression in expressions(own_arguments(step)):
            self._check_expression(name, expression)
        for property_file in step.get("PropertyFiles", []):
            output = property_file.get("OutputName")
            if output not in self._declared_names(step, ("ProcessingOutputConfig", "Outputs")):
                self.report(
                    name,
                    f"property file {property_file.get('PropertyFileName')!r} reads output "
                    f"{output!r}, which the step does not declare",
                )
        if kind in STEP_OPERATIONS:
            self._check_arguments(step)
        elif kind == "Condition":
            for condition in iter_conditions((step.get("Arguments") or {}).get("Conditions", [])):
                condition_type = condition.get("Type") if isinstance(condition, dict) else condition
                if condition_type not in CONDITION_TYPES:
                    self.report(name, f"unknown condition type {condition_type!r}")
        elif kind == "Fail":
            message = (step.get("Arguments") or {}).get("ErrorMessage")
            if not (isinstance(message, str) or is_expression(message)):
                self.report(name, "ErrorMessage must be a string or an expression")

    def _check_cycles(self) -> None:
        graph = dependency_graph(nodes(self.definition.get("Steps") or []))
        for cycle in cycles(graph):
            # Named after the step whose dependency closes the cycle.
            self.report(cycle[-2], f"steps depend on each other in a cycle: {' -> '.join(cycle)}")

    # -- expressions and references -----------------------------------------------------------

    def _check_expression(self, step: str, expression: dict[str, Any]) -> None:
        ((key, body),) = expression.items()
        if key == "Get":
            self.reference_type(step, body)
        elif key not in FUNCTIONS:
            self.report(step, f"function {key!r} is not supported (use one of {sorted(FUNCTIONS)})")
        elif (problem := function_problem(key, body)) is not None:
            self.report(step, problem)
        elif key == "Std:JsonGet":
            self._check_json_get(step, body)

    def _check_json_get(self, step: str, body: dict[str, Any]) -> None:
        file_reference = body.get("PropertyFile")
        target = file_reference.get("Get") if isinstance(file_reference, dict) else None
        try:
            reference = parse_reference(target)
        except DefinitionSyntaxError:
            reference = None
        if not isinstance(reference, PropertyFileRef):
            self.report(step, f"Std:JsonGet must read a step's property file, not {target!r}")
            return
        source, file = reference.step, reference.name
        if source not in self.steps:
            self.report(step, f"Std:JsonGet reads a property file of unknown step {source!r}")
        elif file not in {
            p.get("PropertyFileName") for p in self.steps[source].get("PropertyFiles", [])
        }:
            self.report(
                step,
                f"Std:JsonGet reads property file {file!r}, which step {source!r} does not declare",
            )

    def reference_type(self, step: str, target: Any) -> str | None:
        """Check a `Get` target; return the type name of the value it yields (None if unknown)."""
        try:
            reference = parse_reference(target)
        except DefinitionSyntaxError as error:
            self.report(step, str(error))
            return None
        if isinstance(reference, ParameterRef):
            if reference.name not in self.parameters:
                self.report(step, f"reference to undeclared parameter {reference.name!r}")
                return None
            return _PARAMETER_SHAPE_TYPE[self.parameters[reference.name]["Type"]]
        if isinstance(reference, ExecutionRef):
            if reference.name not in EXECUTION_VARIABLES:
                self.report(step, f"unknown execution variable {reference.name!r}")
            return "string"
        return self._step_property_type(step, reference, target.removeprefix("Steps."))

    def _step_property_type(
        self, step: str, reference: StepPropertyRef | PropertyFileRef, described: str
    ) -> str | None:
        source = reference.step
        if source not in self.steps:
            self.report(step, f"reference to unknown step {source!r} ({described})")
            return None
        if source == step:
            self.report(step, f"step refers to its own property {described!r}")
            return None
        if isinstance(reference, PropertyFileRef):
            return None  # only meaningful inside Std:JsonGet, which is checked there
        referenced = self.steps[source]
        kind = referenced.get("Type")
        if kind == "Condition" and reference.path == "Outcome":
            return "boolean"
        try:
            segments = reference.segments
        except DefinitionSyntaxError as error:
            self.report(step, f"{error} (step {source!r})")
            return None
        first = segments[0]
        assert isinstance(first, Member)  # the grammar starts a step property path with one
        for shape_name in PROPERTY_SHAPES.get(kind, ()):
            shape = self.model.shape_for(shape_name)
            if first.name in shape.members:
                return self._walk_property(step, referenced, shape, segments, described)
        self.report(step, f"a {kind} step has no property {first.name!r} ({described})")
        return None

    def _walk_property(
        self,
        step: str,
        source: dict[str, Any],
        shape: Shape,
        segments: tuple[Segment, ...],
        reference: str,
    ) -> str | None:
        trail: list[str] = []
        for segment in segments:
            if isinstance(segment, Member):
                if shape.type_name != "structure" or segment.name not in shape.members:
                    self.report(
                        step,
                        f"{'.'.join(trail) or 'the step'} has no property {segment.name!r} "
                        f"({reference})",
                    )
                    return None
                shape = shape.members[segment.name]
                trail.append(segment.name)
            elif isinstance(segment, Index):
                if shape.type_name != "list":
                    self.report(step, f"{'.'.join(trail)} is not a list ({reference})")
                    return None
                shape = shape.member
            else:
                key = segment.name
                if shape.type_name == "map":
                    shape = shape.value
                elif shape.type_name == "list":
                    declared = self._declared_names(source, tuple(trail))
                    if key not in declared:
                        self.report(
                            step,
                            f"step {source['Name']!r} declares no {'.'.join(trail)} entry "
                            f"named {key!r} (it has {sorted(declared)}) ({reference})",
                        )
                        return None
                    shape = shape.member
                else:
                    self.report(step, f"{'.'.join(trail)} cannot be indexed by name ({reference})")
                    return None
        if shape.type_name in ("structure", "list", "map"):
            self.report(step, f"{reference} is a {shape.type_name}, not a single value")
            return None
        return shape.type_name

    @staticmethod
    def _declared_names(step: dict[str, Any], path: tuple[str, ...]) -> set[str]:
        """Names (OutputName, InputName, ChannelName...) of the list at `path` in the Arguments."""
        node: Any = step.get("Arguments") or {}
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        names: set[str] = set()
        for item in node if isinstance(node, list) else []:
            names |= entry_names(item)
        return names

    # -- arguments against the API shapes -----------------------------------------------------

    def _check_arguments(self, step: dict[str, Any]) -> None:
        name = step["Name"]
        operation, job_name = STEP_OPERATIONS[step["Type"]]
        shape = self.model.operation_model(operation).input_shape
        arguments = {**job_name, **copy.deepcopy(step.get("Arguments", {}))}
        resolved = self._resolve(name, arguments, shape, "")
        for line in shape_problems(resolved, shape):
            self.report(name, f"{operation}: {line}")

    def _resolve(self, step: str, value: Any, shape: Shape, path: str) -> Any:
        if is_expression(value):
            return self._resolve_expression(step, value, shape, path)
        if shape.type_name == "structure" and isinstance(value, dict):
            return {
                k: self._resolve(step, v, shape.members[k], f"{path}.{k}".lstrip("."))
                if k in shape.members
                else v
                for k, v in value.items()
            }
        if shape.type_name == "list" and isinstance(value, list):
            return [
                self._resolve(step, v, shape.member, f"{path}[{i}]") for i, v in enumerate(value)
            ]
        if shape.type_name == "map" and isinstance(value, dict):
            return {k: self._resolve(step, v, shape.value, f"{path}.{k}") for k, v in value.items()}
        return value

    def _resolve_expression(
        self, step: str, expression: dict[str, Any], shape: Shape, path: str
    ) -> Any:
        value, kind = self.evaluate(step, expression)
        expected = shape.type_name
        if kind is not None and expected in COMPATIBLE and kind not in COMPATIBLE[expected]:
            self.report(
                step,
                f"{path}: {_describe(expression)} yields type {kind}, the API expects type {expected}",
            )
        if value is not None:
            if expected == "string" and not isinstance(value, str):
                self.report(
                    step,
                    f"{path}: {_describe(expression)} yields {value!r}, the API expects type string",
                )
            return value
        return placeholder(shape)

    def evaluate(self, step: str, expression: Any) -> tuple[Any, str | None]:
        """(value or None when only known at run time, type name or None when unknown)."""
        if not is_expression(expression):
            return expression, None
        ((key, body),) = expression.items()
        if key == "Get":
            kind = self.reference_type(step, body)
            if isinstance(body, str) and body.startswith("Parameters."):
                return self.parameter_value(body.partition(".")[2]), kind
            return None, kind
        if key == "Std:Join" and isinstance(body, dict) and isinstance(body.get("Values"), list):
            parts = [self.evaluate(step, part)[0] for part in body["Values"]]
            if any(part is None for part in parts):
                return None, "string"
            return str(body.get("On", "")).join(_text(part) for part in parts), "string"
        return None, None


def _text(value: Any) -> str:
    """How SageMaker renders a parameter value inside Std:Join (booleans lower case)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _describe(expression: dict[str, Any]) -> str:
    ((key, body),) = expression.items()
    return f"Get {body}" if key == "Get" else key


def validate_definition(
    definition: Mapping[str, Any], parameter_values: Mapping[str, Any] | None = None
) -> list[Problem]:
    """Every problem found; an empty list means SageMaker's checks would pass.

    `parameter_values` are the values an execution will pass (StartPipelineExecution's
    PipelineParameters); parameters not named there are checked with their defaults.
    """
    checker = DefinitionChecker(definition, parameter_values)
    if not isinstance(definition, Mapping) or not isinstance(definition.get("Steps"), list):
        return [Problem(None, "a pipeline definition is a JSON object with a 'Steps' list")]
    checker.check_parameters()
    checker.check_steps()
    return checker.problems


def ensure_valid(
    definition: Mapping[str, Any],
    parameter_values: Mapping[str, Any] | None = None,
    dataset: str | None = None,
) -> None:
    problems = validate_definition(definition, parameter_values)
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise InputError(f"pipeline definition is invalid:\n{listing}", dataset=dataset)
