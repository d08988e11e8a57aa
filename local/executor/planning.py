"""Before anything runs: the steps in an order their dependencies allow, and the parameters.

Every step is checked first (its type has a handler, its expressions can be evaluated, its
handler's own check passes), so a definition the executor cannot run fails before the first
step starts, with a DefinitionError naming the step. The dependency graph and its cycles are
`modelbuild.definition`'s, the reader the offline validator uses too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from container.errors import InputError
from local.executor.model import DefinitionError
from local.executor.steps import HANDLERS, STEP_TYPES
from local.expressions import ExpressionError, check_expression, expressions
from modelbuild.definition import (
    CycleError,
    StepNode,
    dependency_graph,
    nodes,
    topological_order,
    typed_parameter,
)


def resolve_parameters(
    definition: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Declared defaults, then overrides (strings from a command line are converted by type)."""
    declared = {p["Name"]: p for p in definition.get("Parameters") or []}
    unknown = sorted(set(overrides or {}) - set(declared))
    if unknown:
        raise InputError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; the definition declares "
            f"{', '.join(declared) or 'none'}"
        )
    values = {}
    for name, parameter in declared.items():
        if overrides and name in overrides:
            value = typed_parameter(name, parameter.get("Type", "String"), overrides[name])
        elif "DefaultValue" in parameter:
            value = typed_parameter(
                name, parameter.get("Type", "String"), parameter["DefaultValue"]
            )
        else:
            raise InputError(f"pipeline parameter {name} has no default and no value was given")
        allowed = parameter.get("EnumValues")
        if allowed and value not in allowed:
            raise InputError(f"pipeline parameter {name}={value!r} is not one of {allowed}")
        values[name] = value
    return values


def plan(definition: Mapping[str, Any]) -> list[StepNode]:
    """Every step in an order that respects its references, or a DefinitionError naming a step."""
    if not isinstance(definition, Mapping) or not isinstance(definition.get("Steps"), list):
        raise DefinitionError("a pipeline definition is a JSON object with a 'Steps' list")
    all_nodes = list(nodes(definition["Steps"]))
    names = [n.step.get("Name") for n in all_nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError(f"step name(s) used twice: {', '.join(map(str, duplicates))}")
    parameters = {p.get("Name") for p in definition.get("Parameters") or []}
    known = set(names)
    for node in all_nodes:
        _check_step(node, parameters, known)
        unknown = sorted(node.depends_on - known)
        if unknown:
            raise DefinitionError(
                f"step '{node.name}' depends on unknown step(s) {', '.join(unknown)}"
            )
    try:
        order = topological_order(dependency_graph(all_nodes))
    except CycleError as error:
        raise DefinitionError(str(error)) from None
    by_name = {node.name: node for node in all_nodes}
    return [by_name[name] for name in order]


def _check_step(node: StepNode, parameters: set[str], steps: set[str]) -> None:
    handler = HANDLERS.get(node.type) if isinstance(node.type, str) else None
    if handler is None:
        raise DefinitionError(
            f"step '{node.name}' has type {node.type!r}, which the local executor cannot run "
            f"(it runs {', '.join(STEP_TYPES)} steps)"
        )
    for expression in expressions(node.arguments):
        try:
            check_expression(expression, node.name, parameters, steps)
        except ExpressionError as error:
            raise DefinitionError(error.problem) from None
    handler.check(node.step)
