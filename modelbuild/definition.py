"""One reader of a SageMaker pipeline definition (the JSON CreatePipeline takes), standard library only.

Everything that reads a definition's structure reads it here, so the offline validator
(`modelbuild.validate`) and the local executor (`local.executor`, `local.expressions`) cannot
disagree about it:

- steps: every step, including those in a Condition step's IfSteps and ElseSteps, with the
  condition and branch that hold it, and a step's own arguments (without the nested steps);
- the dependency graph: DependsOn, the steps a step's expressions reference, and the Condition
  step whose branch holds it; a stable order and its cycles;
- expressions: `Get` (of `Parameters.<name>`, `Execution.<variable>`,
  `Steps.<step>.<property path>`, `Steps.<step>.PropertyFiles.<name>`), `Std:Join`,
  `Std:JsonGet`, and the conditions of a Condition step (Not and Or nest);
- ONE property-path grammar, the one the SageMaker SDK writes:

      path    = first ( "." member | "[" digits "]" | "['" key "']" | '["' key '"]' )*
      first   = member | "[" digits "]" | "['" key "']" | '["' key '"]'
      member  = [A-Za-z_][A-Za-z0-9_]*

  (`ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`,
  `TrainingJobSummaries[0].TrainingJobName`); a step property path starts with a member, a
  Std:JsonGet path may start with an index or a key. `parse_path` yields typed segments:
  `Member` (a structure member or JSON object key), `Index` (a list position) and `Key` (a map
  key, or on a list the entry whose `...Name` is the key, as in `Outputs['train']`).

- parameters: `typed_parameter`, the one typing rule for a pipeline parameter's value (a Boolean
  is `true` or `false` in any case, nothing else; an Integer is a whole number; a Float any
  number), used by `pipeline validate -p` and the local executor alike.

Problems are raised as `DefinitionSyntaxError` (a ValueError); each caller words them for its
own user. The one exception is `typed_parameter`, whose problem is the user's own value
(`container.errors.InputError`, the only import outside the standard library).

Why this file is long: it is the single reader of the definition's grammar (paths, references,
expressions, steps and their graph); the pieces refer to one another, and splitting them would
put the grammar back in more than one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from container.errors import InputError

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
# The expression functions besides Get; the local runtime implements exactly these.
FUNCTIONS = frozenset({"Std:Join", "Std:JsonGet"})
PROPERTY_FILES = "PropertyFiles"

_SEGMENT = re.compile(
    r"\.(?P<member>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+)\]"
    r"|\['(?P<single>[^']*)'\]|\[\"(?P<double>[^\"]*)\"\]"
)
_STEP_REFERENCE = re.compile(r"Steps\.(?P<step>[^.]*)(?:\.(?P<path>.*))?", re.S)


class DefinitionSyntaxError(ValueError):
    """A reference, property path or dependency the definition's grammar does not allow."""


class CycleError(DefinitionSyntaxError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"steps depend on each other in a cycle: {' -> '.join(cycle)}")


# ---------------------------------------------------------------------------- property paths


@dataclass(frozen=True)
class Member:
    """A structure member (or a JSON object key written as a name)."""

    name: str

    def __str__(self) -> str:
        return f".{self.name}"


@dataclass(frozen=True)
class Index:
    """A list position."""

    position: int

    def __str__(self) -> str:
        return f"[{self.position}]"


@dataclass(frozen=True)
class Key:
    """A map key, or on a list the entry whose `...Name` member is this (`Outputs['train']`)."""

    name: str

    def __str__(self) -> str:
        return f"['{self.name}']"


Segment = Member | Index | Key


def parse_path(path: Any) -> tuple[Segment, ...]:
    """A property path as typed segments; a DefinitionSyntaxError says where it stops parsing."""
    if not isinstance(path, str) or not path:
        raise DefinitionSyntaxError(f"{path!r} is not a property path (it is empty)")
    text = path if path.startswith("[") else f".{path}"
    segments: list[Segment] = []
    position = 0
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if match is None:
            at = max(0, position - (0 if path.startswith("[") else 1))
            raise DefinitionSyntaxError(
                f"cannot parse property path {path!r} at {path[at:]!r} (a path is members "
                "joined by '.', list positions [0] and keys ['name'])"
            )
        if match["member"] is not None:
            segments.append(Member(match["member"]))
        elif match["index"] is not None:
            segments.append(Index(int(match["index"])))
        else:
            segments.append(
                Key(match["single"] if match["single"] is not None else match["double"])
            )
        position = match.end()
    return tuple(segments)


def parse_property_path(path: Any) -> tuple[Segment, ...]:
    """A step property path: the grammar's path, starting with a member of the step's Describe*."""
    segments = parse_path(path)
    if not isinstance(segments[0], Member):
        raise DefinitionSyntaxError(
            f"cannot parse property path {path!r}: it must start with a property name"
        )
    return segments


def format_path(segments: Iterable[Segment]) -> str:
    return "".join(map(str, segments)).removeprefix(".")


def follow(document: Any, segments: Iterable[Segment]) -> Any:
    """The value a path reaches in a JSON document; LookupError when it reaches nothing."""
    value = document
    for segment in segments:
        if isinstance(segment, Index):
            if not isinstance(value, list) or segment.position >= len(value):
                raise LookupError(segment)
            value = value[segment.position]
        elif isinstance(value, dict) and segment.name in value:
            value = value[segment.name]
        elif isinstance(segment, Key) and isinstance(value, list):
            named = [item for item in value if segment.name in entry_names(item)]
            if not named:
                raise LookupError(segment)
            value = named[0]
        else:
            raise LookupError(segment)
    return value


def entry_names(item: Any) -> set[str]:
    """The names a list entry answers to in a Key segment: its `...Name` members' values."""
    if not isinstance(item, dict):
        return set()
    return {v for k, v in item.items() if k.endswith("Name") and isinstance(v, str)}


# ---------------------------------------------------------------------------- references


@dataclass(frozen=True)
class ParameterRef:
    name: str


@dataclass(frozen=True)
class ExecutionRef:
    name: str


@dataclass(frozen=True)
class StepPropertyRef:
    """`Steps.<step>.<path>`; the path is parsed by `segments` so a caller can check the step
    first."""

    step: str
    path: str

    @property
    def segments(self) -> tuple[Segment, ...]:
        return parse_property_path(self.path)


@dataclass(frozen=True)
class PropertyFileRef:
    """`Steps.<step>.PropertyFiles.<name>`: only meaningful as Std:JsonGet's PropertyFile."""

    step: str
    name: str


Reference = ParameterRef | ExecutionRef | StepPropertyRef | PropertyFileRef


def parse_reference(target: Any) -> Reference:
    """What a `Get` reads; a DefinitionSyntaxError if it is not a reference at all."""
    if not isinstance(target, str):
        raise DefinitionSyntaxError(f"Get needs a string, not {target!r}")
    root, _, rest = target.partition(".")
    if root == "Parameters":
        return ParameterRef(rest)
    if root == "Execution":
        return ExecutionRef(rest)
    match = _STEP_REFERENCE.fullmatch(target)
    if match is None:
        raise DefinitionSyntaxError(
            f"reference {target!r} is not to Parameters, Execution or Steps"
        )
    step, path = match["step"], match["path"] or ""
    if path.startswith(f"{PROPERTY_FILES}."):
        return PropertyFileRef(step, path.removeprefix(f"{PROPERTY_FILES}."))
    return StepPropertyRef(step, path)


# ---------------------------------------------------------------------------- expressions


def is_expression(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return isinstance(key, str) and (key == "Get" or key.startswith("Std:"))


def expressions(value: Any) -> Iterator[dict[str, Any]]:
    """Every expression in a JSON value, outermost first, including those inside functions."""
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


def function_problem(key: str, body: Any) -> str | None:
    """What is wrong with the form of a Std: function's body, or None (references aside)."""
    if key == "Std:Join":
        if not (
            isinstance(body, dict)
            and isinstance(body.get("On"), str)
            and isinstance(body.get("Values"), list)
        ):
            return "Std:Join needs a string 'On' and a list of 'Values'"
    elif key == "Std:JsonGet":
        if not (
            isinstance(body, dict)
            and isinstance(body.get("Path"), str)
            and body["Path"]
            and ("PropertyFile" in body or "S3Uri" in body)
        ):
            return "Std:JsonGet needs a non-empty 'Path' and a 'PropertyFile' or 'S3Uri'"
        try:
            parse_path(body["Path"])
        except DefinitionSyntaxError as error:
            return f"Std:JsonGet: {error}"
    return None


def referenced_steps(value: Any) -> set[str]:
    """The steps whose properties or property files the expressions in a value read."""
    found = set()
    for expression in expressions(value):
        target = expression.get("Get")
        if isinstance(target, str) and (match := _STEP_REFERENCE.fullmatch(target)):
            found.add(match["step"])
    return found


def iter_conditions(conditions: Any) -> Iterator[Any]:
    """Every condition in a Condition step's list, including those inside Not and Or."""
    for condition in conditions if isinstance(conditions, list) else [conditions]:
        yield condition
        if not isinstance(condition, dict):
            continue
        if condition.get("Type") == "Not":
            yield from iter_conditions(condition.get("Condition"))
        elif condition.get("Type") == "Or":
            yield from iter_conditions(condition.get("Conditions") or [])


# ---------------------------------------------------------------------------- steps and graph


@dataclass(frozen=True)
class StepNode:
    step: dict[str, Any]
    parent: str | None = None  # the Condition step whose branch holds this step
    branch: bool | None = None  # True: IfSteps, False: ElseSteps

    @property
    def name(self) -> str:
        return self.step.get("Name", "")

    @property
    def type(self) -> Any:
        return self.step.get("Type")

    @property
    def arguments(self) -> dict[str, Any]:
        return own_arguments(self.step)

    @property
    def depends_on(self) -> set[str]:
        """DependsOn, the steps its own expressions read, and the condition holding it."""
        needs = referenced_steps(self.arguments) | set(self.step.get("DependsOn") or [])
        if self.parent is not None:
            needs.add(self.parent)
        return needs


def nodes(
    steps: list[dict[str, Any]], parent: str | None = None, branch: bool | None = None
) -> Iterator[StepNode]:
    """Every step, each followed by the steps of its IfSteps, then of its ElseSteps."""
    for step in steps:
        yield StepNode(step, parent, branch)
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments") or {}
            yield from nodes(arguments.get("IfSteps") or [], step.get("Name"), True)
            yield from nodes(arguments.get("ElseSteps") or [], step.get("Name"), False)


def iter_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step, including those nested in condition steps' branches."""
    for node in nodes(steps):
        yield node.step


def own_arguments(step: Mapping[str, Any]) -> dict[str, Any]:
    """A step's arguments without the steps nested in a condition's branches."""
    arguments = dict(step.get("Arguments") or {})
    if step.get("Type") == "Condition":
        arguments.pop("IfSteps", None)
        arguments.pop("ElseSteps", None)
    return arguments


def dependency_graph(all_nodes: Iterable[StepNode]) -> dict[str, set[str]]:
    """Step name -> the steps it needs, in definition order (names it needs may be unknown)."""
    return {node.name: node.depends_on for node in all_nodes}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each cycle a depth-first walk meets, as `[a, b, ..., a]` (unknown names are ignored)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current trail, 2: finished

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for following in sorted(graph[node] & graph.keys()):
            if state.get(following) == 1:
                found.append([*trail[trail.index(following) :], following])
            elif following not in state:
                visit(following, [*trail, following])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def topological_order(graph: Mapping[str, set[str]]) -> list[str]:
    """Every step after the steps it needs; among ready steps the earliest in the definition
    first, so the order is stable. CycleError if the steps need each other in a cycle."""
    order: list[str] = []
    placed: set[str] = set()
    remaining = list(graph)
    while remaining:
        ready = next((n for n in remaining if graph[n] & graph.keys() <= placed), None)
        if ready is None:
            pending = {n: graph[n] for n in remaining}
            raise CycleError(cycles(pending)[0])
        order.append(ready)
        placed.add(ready)
        remaining.remove(ready)
    return order


def typed_parameter(name: str, kind: str, raw: Any) -> Any:
    """A pipeline parameter's value of its declared type (String, Integer, Float, Boolean);
    text that is not of the type is refused naming the parameter, never guessed."""
    try:
        if kind == "Integer":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(raw)
        if kind == "Float":
            return float(raw)
        if kind == "Boolean":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "false"):
                return str(raw).lower() == "true"
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"pipeline parameter {name} is {kind}, got {raw!r}") from None
    if kind != "String":
        raise InputError(f"pipeline parameter {name} has unknown type {kind!r}")
    return str(raw)
