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
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

from container.errors import InputError

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
CONDITION_TYPES = frozenset(
    {
        "Equals",
        "GreaterThan",
        "GreaterThanOrEqualTo",
        "LessThan",
        "LessThanOrEqualTo",
        "In",
        "Not",
        "Or",
    }
)
EXECUTION_VARIABLES = frozenset(
    {
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "PipelineName",
        "PipelineArn",
        "StartDateTime",
        "CurrentDateTime",
    }
)
# The expression functions a definition may use: the local runtime implements exactly these.
FUNCTIONS = frozenset({"Std:Join", "Std:JsonGet"})
PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "String": (str,),
    "Integer": (int,),
    "Float": (float, int),
    "Boolean": (bool,),
}
STEP_NAME_PATTERN = r"[A-Za-z0-9\-_]{1,64}"
PARAMETER_NAME_PATTERN = r"[A-Za-z0-9\-_]{1,256}"

# API shape type -> expression value types that fit it
_COMPATIBLE = {
    "string": {"string"},
    "integer": {"integer", "long"},
    "long": {"integer", "long"},
    "float": {"float", "double", "integer", "long"},
    "double": {"float", "double", "integer", "long"},
    "boolean": {"boolean"},
    "timestamp": {"timestamp", "string"},
}
_PARAMETER_SHAPE_TYPE = {
    "String": "string",
    "Integer": "integer",
    "Float": "float",
    "Boolean": "boolean",
}
_PATH_TOKEN = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
# Java regex features in SageMaker's patterns that Python's re lacks, translated to the nearest
# equivalent (Unicode classes become ASCII plus the non-ASCII range: more permissive, never
# stricter, so a valid value is never rejected).
_JAVA_CLASSES = {
    r"\p{L}": r"A-Za-z\u00aa\u00b5\u00ba\u00c0-\U0010ffff",
    r"\p{M}": r"\u0300-\u036f",
    r"\p{Z}": r" \u00a0\u2000-\u200b\u3000",
    r"\p{S}": r"$+<=>^`|~",
    r"\p{N}": r"0-9",
    r"\p{P}": r"!-#%-*,-/:;?@\[-\]_{}",
    r"\uD800\uDC00-\uDBFF\uDFFF": r"\U00010000-\U0010ffff",
}


@dataclass(frozen=True)
class Problem:
    step: str | None
    message: str

    def __str__(self) -> str:
        return f"[{self.step}] {self.message}" if self.step else self.message


class _Placeholder(str):
    """Stands for a runtime value: its type is checked, its content is not."""


class _IntPlaceholder(int):
    pass


class _FloatPlaceholder(float):
    pass


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


@cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    translated = pattern
    for java, python in _JAVA_CLASSES.items():
        translated = translated.replace(java, python)
    translated = re.sub(r"\$\{\d+,\d+\}", "$", translated)
    try:
        return re.compile(translated, flags=re.S)
    except re.error:
        return None  # a Java-only construct we do not translate: the pattern is not checked


def iter_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step, including those nested in condition steps' branches."""
    for step in steps:
        yield step
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments", {})
            yield from iter_steps(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))


def _is_expression(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and (next(iter(value)) == "Get" or next(iter(value)).startswith("Std:"))
    )


def _walk_expressions(value: Any) -> Iterator[dict[str, Any]]:
    """Every expression in a value, outermost first, including those nested in functions."""
    if _is_expression(value):
        yield value
        ((key, body),) = value.items()
        if key == "Std:Join" and isinstance(body, dict):
            for part in body.get("Values", []):
                yield from _walk_expressions(part)
        elif key == "Std:JsonGet" and isinstance(body, dict):
            yield from _walk_expressions(body.get("PropertyFile"))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_expressions(item)


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
        steps = list(iter_steps(self.definition.get("Steps", [])))
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
        for expression in _walk_expressions(step.get("Arguments", {})):
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
            for condition in step.get("Arguments", {}).get("Conditions", []):
                if condition.get("Type") not in CONDITION_TYPES:
                    self.report(name, f"unknown condition type {condition.get('Type')!r}")
        elif kind == "Fail":
            message = step.get("Arguments", {}).get("ErrorMessage")
            if not (isinstance(message, str) or _is_expression(message)):
                self.report(name, "ErrorMessage must be a string or an expression")

    def _references(self, step: dict[str, Any]) -> set[str]:
        found = set(step.get("DependsOn", []))
        for expression in _walk_expressions(step.get("Arguments", {})):
            target = expression.get("Get")
            if isinstance(target, str) and target.startswith("Steps."):
                found.add(target.split(".")[1])
        return found

    def _check_cycles(self) -> None:
        graph = {
            name: self._references(step) & set(self.steps) for name, step in self.steps.items()
        }
        state: dict[str, int] = {}

        def visit(node: str, trail: list[str]) -> None:
            state[node] = 1
            for nxt in sorted(graph[node]):
                if state.get(nxt) == 1:
                    cycle = " -> ".join([*trail[trail.index(nxt) :], nxt])
                    self.report(node, f"steps depend on each other in a cycle: {cycle}")
                elif nxt not in state:
                    visit(nxt, [*trail, nxt])
            state[node] = 2

        for node in sorted(graph):
            if node not in state:
                visit(node, [node])

    # -- expressions and references -----------------------------------------------------------

    def _check_expression(self, step: str, expression: dict[str, Any]) -> None:
        ((key, body),) = expression.items()
        if key == "Get":
            self.reference_type(step, body)
        elif key not in FUNCTIONS:
            self.report(step, f"function {key!r} is not supported (use one of {sorted(FUNCTIONS)})")
        elif key == "Std:Join":
            if not (isinstance(body, dict) and isinstance(body.get("On"), str)):
                self.report(step, "Std:Join needs a string 'On' and a list of 'Values'")
            elif not isinstance(body.get("Values"), list):
                self.report(step, "Std:Join needs a list of 'Values'")
        elif key == "Std:JsonGet":
            self._check_json_get(step, body)

    def _check_json_get(self, step: str, body: Any) -> None:
        target = body.get("PropertyFile", {}).get("Get") if isinstance(body, dict) else None
        match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", str(target))
        if match is None:
            self.report(step, f"Std:JsonGet must read a step's property file, not {target!r}")
            return
        if not (isinstance(body.get("Path"), str) and body["Path"]):
            self.report(step, "Std:JsonGet needs a non-empty JSON 'Path'")
        source, file = match.groups()
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
        if not isinstance(target, str):
            self.report(step, f"Get needs a string, not {target!r}")
            return None
        root, _, rest = target.partition(".")
        if root == "Parameters":
            if rest not in self.parameters:
                self.report(step, f"reference to undeclared parameter {rest!r}")
                return None
            return _PARAMETER_SHAPE_TYPE[self.parameters[rest]["Type"]]
        if root == "Execution":
            if rest not in EXECUTION_VARIABLES:
                self.report(step, f"unknown execution variable {rest!r}")
            return "string"
        if root == "Steps":
            return self._step_property_type(step, rest)
        self.report(step, f"reference {target!r} is not to Parameters, Execution or Steps")
        return None

    def _step_property_type(self, step: str, reference: str) -> str | None:
        source, _, path = reference.partition(".")
        if source not in self.steps:
            self.report(step, f"reference to unknown step {source!r} ({reference})")
            return None
        if source == step:
            self.report(step, f"step refers to its own property {reference!r}")
            return None
        referenced = self.steps[source]
        kind = referenced.get("Type")
        if path.startswith("PropertyFiles."):
            return None  # only meaningful inside Std:JsonGet, which is checked there
        if kind == "Condition" and path == "Outcome":
            return "boolean"
        tokens = _tokens(path)
        if tokens is None or not tokens or not isinstance(tokens[0], str):
            self.report(step, f"cannot parse property path {path!r} of step {source!r}")
            return None
        for shape_name in PROPERTY_SHAPES.get(kind, ()):
            shape = self.model.shape_for(shape_name)
            if tokens[0] in shape.members:
                return self._walk_property(step, referenced, shape, tokens, reference)
        self.report(step, f"a {kind} step has no property {tokens[0]!r} ({reference})")
        return None

    def _walk_property(
        self,
        step: str,
        source: dict[str, Any],
        shape: Shape,
        tokens: list[str | int | tuple[str]],
        reference: str,
    ) -> str | None:
        trail: list[str] = []
        for token in tokens:
            if isinstance(token, str):
                if shape.type_name != "structure" or token not in shape.members:
                    self.report(
                        step,
                        f"{'.'.join(trail) or 'the step'} has no property {token!r} ({reference})",
                    )
                    return None
                shape = shape.members[token]
                trail.append(token)
            elif isinstance(token, int):
                if shape.type_name != "list":
                    self.report(step, f"{'.'.join(trail)} is not a list ({reference})")
                    return None
                shape = shape.member
            else:
                (key,) = token
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
        node: Any = step.get("Arguments", {})
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        names = set()
        for item in node if isinstance(node, list) else []:
            names.update(v for k, v in item.items() if k.endswith("Name") and isinstance(v, str))
        return names

    # -- arguments against the API shapes -----------------------------------------------------

    def _check_arguments(self, step: dict[str, Any]) -> None:
        name = step["Name"]
        operation, job_name = STEP_OPERATIONS[step["Type"]]
        shape = self.model.operation_model(operation).input_shape
        arguments = {**job_name, **copy.deepcopy(step.get("Arguments", {}))}
        resolved = self._resolve(name, arguments, shape, "")
        report = ParamValidator().validate(resolved, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                if line.strip() and not line.startswith("Parameter validation failed"):
                    self.report(name, f"{operation}: {line.strip()}")
        for line in _extra_checks(resolved, shape, ""):
            self.report(name, f"{operation}: {line}")

    def _resolve(self, step: str, value: Any, shape: Shape, path: str) -> Any:
        if _is_expression(value):
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
        if kind is not None and expected in _COMPATIBLE and kind not in _COMPATIBLE[expected]:
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
        return _placeholder(shape)

    def evaluate(self, step: str, expression: Any) -> tuple[Any, str | None]:
        """(value or None when only known at run time, type name or None when unknown)."""
        if not _is_expression(expression):
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


def _tokens(path: str) -> list[str | int | tuple[str]] | None:
    tokens: list[str | int | tuple[str]] = []
    position = 0
    text = "." + path
    while position < len(text):
        match = _PATH_TOKEN.match(text, position)
        if match is None:
            return None
        member, index, quoted, double_quoted = match.groups()
        if member is not None:
            tokens.append(member)
        elif index is not None:
            tokens.append(int(index))
        else:
            tokens.append((quoted if quoted is not None else double_quoted,))
        position = match.end()
    return tokens


def _placeholder(shape: Shape) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        return _IntPlaceholder(max(1, int(shape.metadata.get("min", 1))))
    if kind in ("float", "double"):
        return _FloatPlaceholder(float(shape.metadata.get("min", 1.0)))
    if kind == "boolean":
        return True
    return _Placeholder("pipeline-variable")


def _extra_checks(value: Any, shape: Shape, path: str) -> Iterator[str]:
    """What botocore's ParamValidator leaves out: enums, maximums and patterns."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                yield from _extra_checks(item, shape.members[key], f"{path}.{key}".lstrip("."))
    elif shape.type_name == "list" and isinstance(value, list):
        maximum = shape.metadata.get("max")
        if maximum is not None and len(value) > maximum:
            yield f"{path}: {len(value)} entries, more than the maximum {maximum}"
        for index, item in enumerate(value):
            yield from _extra_checks(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield from _extra_checks(key, shape.key, f"{path} key {key!r}")
            yield from _extra_checks(item, shape.value, f"{path}.{key}")
    elif isinstance(value, str) and not isinstance(value, _Placeholder):
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            close = [e for e in enum if e.split(".")[:2] == value.split(".")[:2]] or enum
            yield f"{path}: {value!r} is not an allowed value (e.g. {close[:6]})"
        maximum = shape.metadata.get("max")
        if maximum is not None and len(value) > maximum:
            yield f"{path}: {len(value)} characters, more than the maximum {maximum}"
        pattern = shape.metadata.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            yield f"{path}: {value[:80]!r} does not match the pattern {pattern[:80]}"
    elif (
        isinstance(value, (int, float))
        and not isinstance(value, (bool, _IntPlaceholder, _FloatPlaceholder))
        and shape.metadata.get("max") is not None
        and value > shape.metadata["max"]
    ):
        yield f"{path}: {value} is more than the maximum {shape.metadata['max']}"


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
