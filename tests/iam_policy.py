"""IAM policy evaluation for the permission tests: would this identity policy allow this request?

A small, strict model of AWS's evaluation logic for identity-based policies
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny wins, then any Allow, else the request is implicitly denied. Action names match
case-insensitively with * and ? wildcards; resource ARNs match case-sensitively (which is why a
lowercased SageMaker ARN does not match a grant spelled with capitals). Conditions are evaluated
against the request context the caller supplies; an operator this module does not know raises,
so a template that starts using one cannot pass by accident.

moto cannot be the evaluator: outside S3 it checks every call against resource "*", and its
condition support is StringEquals only (see the runtime permission tests).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

ContextValue = str | Sequence[str]


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Request:
    """One authorization question: an action on a resource ARN, with its condition keys."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}"


@cache
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE if ignore_case else 0)


def glob_matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcards: * any run of characters, ? any one character."""
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _string_equals(expected: str, actual: str) -> bool:
    return expected == actual


def _string_equals_ignore_case(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


def _like(expected: str, actual: str) -> bool:
    return glob_matches(expected, actual)


def _bool(expected: str, actual: str) -> bool:
    return str(expected).lower() == str(actual).lower()


# Operator -> (compare one expected with one actual value, negated?).
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_like, False),
    "StringNotLike": (_like, True),
    # ARN operators compare segment by segment with wildcards; for full ARNs a glob is the same.
    "ArnEquals": (_like, False),
    "ArnLike": (_like, False),
    "ArnNotEquals": (_like, True),
    "ArnNotLike": (_like, True),
    "Bool": (_bool, False),
}


def _lookup(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    """Condition keys are case-insensitive; a missing key is None."""
    for name, value in context.items():
        if name.lower() == key.lower():
            return [str(v) for v in _as_list(value)]
    return None


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    actual = _lookup(context, key)
    if operator == "Null":
        # "Null": {"key": "true"} holds when the key is absent.
        return (actual is None) == (str(expected).lower() == "true")
    qualifier, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    if operator not in _OPERATORS:
        raise ValueError(f"condition operator {operator!r} is not modelled by tests/iam_policy.py")
    compare, negated = _OPERATORS[operator]
    expected_values = [str(v) for v in _as_list(expected)]
    if actual is None:
        # A missing key: IfExists and negated operators hold, positive ones do not.
        return if_exists or negated or qualifier == "ForAllValues"

    def matches(value: str) -> bool:
        return any(compare(e, value) for e in expected_values)

    if qualifier == "ForAllValues":
        return all(matches(v) != negated for v in actual)
    # ForAnyValue, and a single-valued key (one actual value).
    if negated:
        return not any(matches(v) for v in actual)
    return any(matches(v) for v in actual)


def _conditions_hold(conditions: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    return all(
        _condition_holds(operator, key, expected, context)
        for operator, keys in conditions.items()
        for key, expected in keys.items()
    )


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    """Does this statement (of either effect) speak about the request?"""
    if "Action" in statement:
        action_hit = any(
            glob_matches(a, request.action, ignore_case=True) for a in _as_list(statement["Action"])
        )
    else:
        action_hit = not any(
            glob_matches(a, request.action, ignore_case=True)
            for a in _as_list(statement["NotAction"])
        )
    if not action_hit:
        return False
    if "Resource" in statement:
        resource_hit = any(
            glob_matches(r, request.resource) for r in _as_list(statement["Resource"])
        )
    else:
        resource_hit = not any(
            glob_matches(r, request.resource) for r in _as_list(statement["NotResource"])
        )
    return resource_hit and _conditions_hold(statement.get("Condition", {}), request.context)


def decide(statements: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    applying = [s for s in statements if statement_applies(s, request)]
    if any(s["Effect"] == "Deny" for s in applying):
        return Decision.EXPLICIT_DENY
    if any(s["Effect"] == "Allow" for s in applying):
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


def allows(statements: Iterable[Mapping[str, Any]], request: Request) -> bool:
    return decide(statements, request) is Decision.ALLOW


def role_statements(
    template: Mapping[str, Any], logical_id: str, resolve: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """Every statement that applies to a template role, resolved: its inline policies and the
    AWS::IAM::Policy / AWS::IAM::ManagedPolicy resources that name it in Roles.

    `resolve` is a tests.cfn_support.Evaluator for the template's parameters; a statement under an
    Fn::If resolves to its branch, and one whose branch is AWS::NoValue disappears.
    """
    resources = template["Resources"]
    documents = [
        p["PolicyDocument"]
        for p in resolve(resources[logical_id]["Properties"].get("Policies", []))
    ]
    for body in resources.values():
        if body["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        condition = body.get("Condition")
        if condition is not None and not resolve.condition(condition):  # type: ignore[attr-defined]
            continue
        if {"Ref": logical_id} in body["Properties"].get("Roles", []):
            documents.append(resolve(body["Properties"]["PolicyDocument"]))
    return [s for document in documents for s in _as_list(document.get("Statement", [])) if s]
