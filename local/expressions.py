"""The expression language of a SageMaker pipeline definition, evaluated locally.

Supported, with SageMaker's semantics: `{"Get": "Parameters.<name>"}`, `{"Get":
"Execution.<variable>"}`, `{"Get": "Steps.<step>.<property path>"}` (paths such as
`ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri` or `TrainingJobSummaries[0].TrainingJobName`
over the properties the step's Describe* call would return), `Std:Join`, `Std:JsonGet` (on a
step's property file or an S3 URI), and the condition types of a Condition step. Anything else
is an `ExpressionError` naming the step that uses it.

References, property paths and the expression walk are `modelbuild.definition`'s, the reader
the offline validator uses too, so a path one accepts the other cannot refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from container.errors import InputError
from modelbuild import definition
from modelbuild.definition import (
    DefinitionSyntaxError,
    ExecutionRef,
    ParameterRef,
    PropertyFileRef,
    StepPropertyRef,
    expressions,
    follow,
    is_expression,
    iter_conditions,
    parse_path,
    parse_property_path,
    parse_reference,
    referenced_steps,
)

# Exactly what the offline validator lets a definition use: both read them from one place.
FUNCTIONS = ("Get", *sorted(definition.FUNCTIONS))
EXECUTION_VARIABLES = tuple(sorted(definition.EXECUTION_VARIABLES))
CONDITIONS = tuple(sorted(definition.CONDITION_TYPES))
__all__ = [
    "CONDITIONS",
    "EXECUTION_VARIABLES",
    "FUNCTIONS",
    "ExpressionError",
    "Scope",
    "StepState",
    "check_condition",
    "check_expression",
    "condition_holds",
    "evaluate",
    "expressions",
    "is_expression",
    "load_json",
    "referenced_steps",
    "resolve",
    "text",
]


class ExpressionError(InputError):
    """An expression the definition uses cannot be evaluated; names the step."""


@dataclass(frozen=True)
class StepState:
    """What later steps can read from a finished step."""

    properties: Mapping[str, Any]
    property_files: Mapping[str, str] = field(default_factory=dict)  # name -> S3 URI


@dataclass
class Scope:
    parameters: Mapping[str, Any]
    execution: Mapping[str, str]
    steps: dict[str, StepState]
    read_json: Callable[[str], Any]  # s3:// URI -> parsed JSON


def check_expression(
    expression: dict[str, Any], step: str, parameters: set[str], steps: set[str]
) -> None:
    """Raise if the executor could not evaluate this expression (before anything runs)."""
    key = next(iter(expression))
    if key not in FUNCTIONS:
        raise ExpressionError(
            f"step '{step}' uses the expression '{key}', which the local executor does not "
            f"support (it supports {', '.join(FUNCTIONS)})"
        )
    body = expression[key]
    if key == "Get":
        _check_reference(body, step, parameters, steps)
    elif (problem := definition.function_problem(key, body)) is not None:
        raise ExpressionError(f"step '{step}': {problem}")


def _check_reference(target: Any, step: str, parameters: set[str], steps: set[str]) -> None:
    try:
        reference = parse_reference(target)
        if isinstance(reference, StepPropertyRef):
            parse_property_path(reference.path)
    except DefinitionSyntaxError as error:
        raise ExpressionError(f"step '{step}' reads {target!r}: {error}") from None
    if isinstance(reference, ParameterRef) and reference.name in parameters:
        return
    if isinstance(reference, ExecutionRef) and reference.name in EXECUTION_VARIABLES:
        return
    if isinstance(reference, StepPropertyRef | PropertyFileRef) and reference.step in steps:
        return
    raise ExpressionError(
        f"step '{step}' reads {target!r}, which names no parameter, execution variable or step "
        "property the definition declares"
    )


def text(value: Any) -> str:
    """How SageMaker renders a value inside Std:Join."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return ""
    return str(value)


def resolve(value: Any, scope: Scope, step: str) -> Any:
    """A JSON value with every expression in it replaced by its value."""
    if is_expression(value):
        return evaluate(value, scope, step)
    if isinstance(value, dict):
        return {k: resolve(v, scope, step) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, scope, step) for v in value]
    return value


def evaluate(expression: dict[str, Any], scope: Scope, step: str) -> Any:
    key, body = next(iter(expression.items()))
    if key == "Get":
        return _get(body, scope, step)
    if key == "Std:Join":
        return body["On"].join(text(resolve(v, scope, step)) for v in body["Values"])
    if key == "Std:JsonGet":
        return _json_get(body, scope, step)
    raise ExpressionError(f"step '{step}' uses the expression '{key}', which is not supported")


def _get(target: str, scope: Scope, step: str) -> Any:
    try:
        reference = parse_reference(target)
        segments = reference.segments if isinstance(reference, StepPropertyRef) else ()
    except DefinitionSyntaxError as error:
        raise ExpressionError(f"step '{step}' reads {target!r}: {error}") from None
    if isinstance(reference, ParameterRef):
        if reference.name not in scope.parameters:
            raise ExpressionError(f"step '{step}' reads undeclared parameter '{reference.name}'")
        return scope.parameters[reference.name]
    if isinstance(reference, ExecutionRef):
        if reference.name not in scope.execution:
            raise ExpressionError(
                f"step '{step}' reads unknown execution variable '{reference.name}'"
            )
        return scope.execution[reference.name]
    if reference.step not in scope.steps:
        raise ExpressionError(
            f"step '{step}' reads {target!r} but step '{reference.step}' has not run"
        )
    if isinstance(reference, PropertyFileRef):
        raise ExpressionError(f"step '{step}' reads {target!r} outside Std:JsonGet")
    try:
        return follow(scope.steps[reference.step].properties, segments)
    except LookupError:
        raise ExpressionError(
            f"step '{step}' reads {target!r}, but step '{reference.step}' has no such property"
        ) from None


def _property_file_uri(reference: Any, scope: Scope, step: str) -> str:
    target = reference.get("Get") if isinstance(reference, dict) else None
    try:
        parsed = parse_reference(target)
    except DefinitionSyntaxError:
        parsed = None
    if not isinstance(parsed, PropertyFileRef):
        raise ExpressionError(
            f"step '{step}': Std:JsonGet's PropertyFile must be a Get of "
            f"'Steps.<step>.PropertyFiles.<name>', got {reference!r}"
        )
    state = scope.steps.get(parsed.step)
    if state is None or parsed.name not in state.property_files:
        raise ExpressionError(
            f"step '{step}' reads property file '{parsed.name}', which step '{parsed.step}' "
            "did not produce"
        )
    return state.property_files[parsed.name]


def _json_get(body: dict[str, Any], scope: Scope, step: str) -> Any:
    if "PropertyFile" in body:
        uri = _property_file_uri(body["PropertyFile"], scope, step)
    else:
        uri = text(resolve(body["S3Uri"], scope, step))
    document = scope.read_json(uri)
    try:
        return follow(document, parse_path(body["Path"]))
    except (LookupError, DefinitionSyntaxError):
        raise ExpressionError(
            f"step '{step}': Std:JsonGet found no '{body['Path']}' in {uri}"
        ) from None


def _comparable(left: Any, right: Any, kind: str, step: str) -> tuple[Any, Any]:
    """Numbers compare as numbers (a Float parameter against an Integer one); other values
    only with their own type, as SageMaker's typed primitives do."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if numeric or type(left) is type(right):
        return left, right
    raise ExpressionError(
        f"step '{step}': condition {kind} compares {type(left).__name__} {left!r} with "
        f"{type(right).__name__} {right!r}"
    )


def condition_holds(condition: dict[str, Any], scope: Scope, step: str) -> bool:
    kind = condition.get("Type")
    if kind == "Not":
        return not condition_holds(condition["Condition"], scope, step)
    if kind == "Or":
        return any(condition_holds(c, scope, step) for c in condition["Conditions"])
    if kind == "In":
        query = resolve(condition["QueryValue"], scope, step)
        return query in [resolve(v, scope, step) for v in condition["Values"]]
    if kind not in CONDITIONS:
        raise ExpressionError(
            f"step '{step}' uses condition type {kind!r}, which the local executor does not "
            f"support (it supports {', '.join(CONDITIONS)})"
        )
    left, right = _comparable(
        resolve(condition["LeftValue"], scope, step),
        resolve(condition["RightValue"], scope, step),
        kind,
        step,
    )
    if kind == "Equals":
        return bool(left == right)
    if kind == "GreaterThan":
        return bool(left > right)
    if kind == "GreaterThanOrEqualTo":
        return bool(left >= right)
    if kind == "LessThan":
        return bool(left < right)
    return bool(left <= right)


def check_condition(condition: Any, step: str) -> None:
    for inner in iter_conditions(condition):
        if not isinstance(inner, dict) or inner.get("Type") not in CONDITIONS:
            kind = inner.get("Type") if isinstance(inner, dict) else inner
            raise ExpressionError(
                f"step '{step}' uses condition type {kind!r}, which the local executor does not "
                f"support (it supports {', '.join(CONDITIONS)})"
            )


def load_json(data: bytes, uri: str, step: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as error:
        raise ExpressionError(f"step '{step}': {uri} is not JSON ({error})") from None
