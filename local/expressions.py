"""The expression language of a SageMaker pipeline definition, evaluated locally.

Supported, with SageMaker's semantics: `{"Get": "Parameters.<name>"}`, `{"Get":
"Execution.<variable>"}`, `{"Get": "Steps.<step>.<property path>"}` (paths such as
`ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri` or `TrainingJobSummaries[0].TrainingJobName`
over the properties the step's Describe* call would return), `Std:Join`, `Std:JsonGet` (on a
step's property file or an S3 URI), and the condition types of a Condition step. Anything else
is an `ExpressionError` naming the step that uses it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from container.errors import InputError
from modelbuild import validate

# Exactly what the offline validator lets a definition use, so the two cannot drift apart.
FUNCTIONS = ("Get", *sorted(validate.FUNCTIONS))
EXECUTION_VARIABLES = tuple(sorted(validate.EXECUTION_VARIABLES))
CONDITIONS = tuple(sorted(validate.CONDITION_TYPES))
_STEP_REFERENCE = re.compile(r"^Steps\.([A-Za-z0-9_-]+)(?:\.(.+))?$")
_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


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


def is_expression(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return key == "Get" or key.startswith("Std:")


def expressions(value: Any) -> Iterator[dict[str, Any]]:
    """Every expression in a JSON value, outermost first."""
    if is_expression(value):
        yield value
        body = next(iter(value.values()))
        if isinstance(body, dict | list):
            for inner in body.values() if isinstance(body, dict) else body:
                yield from expressions(inner)
    elif isinstance(value, dict):
        for inner in value.values():
            yield from expressions(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from expressions(inner)


def referenced_steps(value: Any) -> set[str]:
    found = set()
    for expression in expressions(value):
        target = expression.get("Get")
        if isinstance(target, str) and (match := _STEP_REFERENCE.match(target)):
            found.add(match.group(1))
    return found


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
    elif key == "Std:Join" and not (
        isinstance(body, dict)
        and isinstance(body.get("On"), str)
        and isinstance(body.get("Values"), list)
    ):
        raise ExpressionError(f"step '{step}': Std:Join needs a string 'On' and a list 'Values'")
    elif key == "Std:JsonGet" and not (
        isinstance(body, dict)
        and isinstance(body.get("Path"), str)
        and ("PropertyFile" in body or "S3Uri" in body)
    ):
        raise ExpressionError(
            f"step '{step}': Std:JsonGet needs a 'Path' and a 'PropertyFile' or 'S3Uri'"
        )


def _check_reference(target: Any, step: str, parameters: set[str], steps: set[str]) -> None:
    if not isinstance(target, str):
        raise ExpressionError(f"step '{step}': Get needs a string, got {target!r}")
    head, _, rest = target.partition(".")
    if head == "Parameters" and rest in parameters:
        return
    if head == "Execution" and rest in EXECUTION_VARIABLES:
        return
    match = _STEP_REFERENCE.match(target)
    if (
        head == "Steps"
        and match
        and match.group(1) in steps
        and match.group(2)
        and _tokens(match.group(2)) is not None
    ):
        return
    raise ExpressionError(
        f"step '{step}' reads {target!r}, which names no parameter, execution variable or step "
        "property the definition declares"
    )


def _tokens(path: str) -> list[str | int] | None:
    tokens: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None or match.end() == position:
            return None
        name, index, quoted, double = match.groups()
        tokens.append(int(index) if index is not None else (name or quoted or double or ""))
        position = match.end()
    return tokens


def _walk(value: Any, path: str) -> Any:
    """Follow a property path; a string key on a list picks the item of that name
    (`Outputs['train']` is the output whose OutputName is 'train', as in the SDK)."""
    tokens = _tokens(path)
    if tokens is None:
        raise KeyError(path)
    for token in tokens:
        if isinstance(token, int):
            if not isinstance(value, list) or token >= len(value):
                raise KeyError(path)
            value = value[token]
        elif isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list):
            named = [
                item
                for item in value
                if isinstance(item, dict)
                and any(k.endswith("Name") and v == token for k, v in item.items())
            ]
            if not named:
                raise KeyError(path)
            value = named[0]
        else:
            raise KeyError(path)
    return value


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
    head, _, rest = target.partition(".")
    if head == "Parameters":
        if rest not in scope.parameters:
            raise ExpressionError(f"step '{step}' reads undeclared parameter '{rest}'")
        return scope.parameters[rest]
    if head == "Execution":
        if rest not in scope.execution:
            raise ExpressionError(f"step '{step}' reads unknown execution variable '{rest}'")
        return scope.execution[rest]
    match = _STEP_REFERENCE.match(target)
    if match is None or match.group(2) is None:
        raise ExpressionError(f"step '{step}' reads {target!r}, which is not a known reference")
    source, path = match.groups()
    if source not in scope.steps:
        raise ExpressionError(f"step '{step}' reads {target!r} but step '{source}' has not run")
    if path.startswith("PropertyFiles."):
        raise ExpressionError(f"step '{step}' reads {target!r} outside Std:JsonGet")
    try:
        return _walk(scope.steps[source].properties, path)
    except KeyError:
        raise ExpressionError(
            f"step '{step}' reads {target!r}, but step '{source}' has no such property"
        ) from None


def _property_file_uri(reference: Any, scope: Scope, step: str) -> str:
    target = reference.get("Get") if isinstance(reference, dict) else None
    match = _STEP_REFERENCE.match(target) if isinstance(target, str) else None
    if match is None or not (match.group(2) or "").startswith("PropertyFiles."):
        raise ExpressionError(
            f"step '{step}': Std:JsonGet's PropertyFile must be a Get of "
            f"'Steps.<step>.PropertyFiles.<name>', got {reference!r}"
        )
    source, name = match.group(1), match.group(2).removeprefix("PropertyFiles.")
    state = scope.steps.get(source)
    if state is None or name not in state.property_files:
        raise ExpressionError(
            f"step '{step}' reads property file '{name}', which step '{source}' did not produce"
        )
    return state.property_files[name]


def _json_get(body: dict[str, Any], scope: Scope, step: str) -> Any:
    if "PropertyFile" in body:
        uri = _property_file_uri(body["PropertyFile"], scope, step)
    else:
        uri = text(resolve(body["S3Uri"], scope, step))
    document = scope.read_json(uri)
    try:
        return _walk(document, body["Path"])
    except KeyError:
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
    if not isinstance(condition, dict) or condition.get("Type") not in CONDITIONS:
        kind = condition.get("Type") if isinstance(condition, dict) else condition
        raise ExpressionError(
            f"step '{step}' uses condition type {kind!r}, which the local executor does not "
            f"support (it supports {', '.join(CONDITIONS)})"
        )
    if condition["Type"] == "Not":
        check_condition(condition.get("Condition"), step)
    elif condition["Type"] == "Or":
        for inner in condition.get("Conditions") or []:
            check_condition(inner, step)


def load_json(data: bytes, uri: str, step: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as error:
        raise ExpressionError(f"step '{step}': {uri} is not JSON ({error})") from None
