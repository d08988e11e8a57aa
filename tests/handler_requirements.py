"""What CloudFormation's resource handlers will ask of the role a stack runs as.

For every resource of a template resolved for one configuration, the permissions its handlers
need become IAM requests (tests.iam_policy.Request): the action, the ARN the resource will really
have, and the condition keys CloudFormation's call carries. The data comes from:

- the resource provider schemas cfn-lint ships (each type's `handlers` permissions),
- cfn-lint's extract of the Service Authorization Reference (each action's resource types; an
  action with none is authorized against "*"),
- tests/handler_permissions.yml: the reviewed table of names, ARN formats, aliases, legacy types,
  downstream calls and exclusions, each row with its source.

The request context holds only what the call really carries: aws:RequestTag/* and aws:TagKeys on a
call that creates or tags the resource (its Tags property, plus the stack's tags when the type is
taggable), aws:ResourceTag/* on a call on an existing resource whose tags are known, and
iam:PassedToService on iam:PassRole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tests.cfn_support import Evaluator
from tests.iam_policy import Request, glob_matches

TABLE = Path(__file__).with_name("handler_permissions.yml")
# The region the template tests resolve in, so its schemas are the ones checked.
REGION = Evaluator.PSEUDO["AWS::Region"]
_SELF = re.compile(r"\$\{Self\.([^}]+)\}")
_ITEM = re.compile(r"\$\{Item(?:\.([^}]+))?\}")
# A stack id ends in a UUID CloudFormation chooses.
_STACK_ARN = (
    "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/<name>/"
    "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
)


@cache
def table() -> dict[str, Any]:
    return yaml.safe_load(TABLE.read_text())


@cache
def _schema_dir() -> Any:
    return resources.files("cfnlint") / "data" / "schemas"


@cache
def provider_schema(type_name: str) -> dict[str, Any]:
    """The resource provider schema cfn-lint ships for the type in REGION."""
    providers = json.loads((_schema_dir() / "providers" / f"{REGION}.json").read_text())
    if type_name not in providers:
        raise KeyError(f"{type_name} has no resource provider schema in cfn-lint for {REGION}")
    return json.loads((_schema_dir() / "resources" / f"{providers[type_name]}.json").read_text())


@cache
def _service_authorization() -> dict[str, Any]:
    path = resources.files("cfnlint") / "data" / "AdditionalSpecs" / "Policies.json"
    return json.loads(path.read_text())


def action_resource_types(action: str) -> list[str] | None:
    """The resource types the Service Authorization Reference gives an action ([] = only "*");
    None when it lists no such action."""
    service, _, name = action.partition(":")
    found = _service_authorization().get(service, {}).get("Actions", {}).get(name.lower())
    return None if found is None else list(found.get("Resources", []))


def tagging_actions(type_name: str) -> set[str]:
    """The schema's tagging permissions that add tags (their requests carry aws:RequestTag)."""
    permissions = provider_schema(type_name).get("tagging", {}).get("permissions", [])
    adds = re.compile(r":(Tag|AddTags)")
    return {p for p in permissions if adds.search(p)}


def handler_permissions(type_name: str, *, retained: bool) -> dict[str, list[str]]:
    """permission -> the handlers (or "legacy") that list it; no delete handler when retained."""
    called = [h for h in table()["handlers"]["called"] if not (retained and h == "delete")]
    handlers = provider_schema(type_name).get("handlers")
    found: dict[str, list[str]] = {}
    if handlers:
        for handler in called:
            for permission in handlers.get(handler, {}).get("permissions", []):
                found.setdefault(permission, []).append(handler)
        return found
    rows = [row for row in table()["legacy"] if row["type"] == type_name]
    if not rows:
        raise KeyError(f"{type_name} has no schema handlers and no legacy row in {TABLE.name}")
    for row in rows:
        for permission in row["permissions"]:
            found.setdefault(permission, []).append("legacy")
    return found


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}{key}.")
    elif value is not None:
        yield prefix[:-1], value


def _lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            return None
        value = value[part]
    return value


def _items(properties: Mapping[str, Any], path: str) -> list[Any]:
    """The items a path names: "Targets", or "Stages[].Actions" for each stage's actions."""
    values: list[Any] = [properties]
    for part in path.split("[]."):
        values = [item for value in values for item in (_lookup(value, part) or [])]
    return values


def _tag_map(tags: Any) -> dict[str, str]:
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["Key"]): str(t["Value"]) for t in tags or []}


@dataclass(frozen=True)
class Required:
    """One request a handler makes for a resource, and where the requirement comes from."""

    logical_id: str
    type_name: str
    permission: str
    origin: str
    request: Request

    def __str__(self) -> str:
        return f"{self.logical_id} ({self.type_name}) {self.origin}: {self.request}"


@dataclass(frozen=True)
class _Entry:
    """One ARN of the table: its template, the list property it repeats over, and the actions
    it is named by (None = any action of the resource type)."""

    arn: Any
    each: str | None = None
    actions: tuple[str, ...] | None = None


def _entry(expression: Any) -> _Entry | None:
    if expression is None:
        return None
    if isinstance(expression, dict) and "arn" in expression:
        actions = expression.get("actions")
        return _Entry(
            expression["arn"], expression.get("each"), tuple(actions) if actions else None
        )
    return _Entry(expression)


class _Attributes(Mapping[str, Any]):
    """Ref ("Logical") and GetAtt ("Logical.Attr") values, computed from each resource's own
    resolved properties when a template's intrinsics ask for them."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    def _split(self, name: str) -> tuple[str, str]:
        logical_id, _, attribute = name.partition(".")
        return logical_id, attribute

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        logical_id, _ = self._split(name)
        return logical_id in self._stack.template["Resources"]

    def __getitem__(self, name: str) -> Any:
        logical_id, attribute = self._split(name)
        return self._stack.attribute(logical_id, attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stack.template["Resources"])

    def __len__(self) -> int:
        return len(self._stack.template["Resources"])


class StackEvaluator(Evaluator):
    """Evaluator with resource attributes computed on demand, and a test-only Lowercase
    intrinsic for the names SageMaker lowercases in its ARNs."""

    def _lowercase(self, arg: Any) -> str:
        return str(self({"Sub": arg} if isinstance(arg, str) else arg)).lower()


class Stack:
    """A template resolved for one configuration: its resources, their names, tags and ARNs."""

    def __init__(
        self,
        template: dict[str, Any],
        name: str,
        parameters: Mapping[str, Any],
        tags: Mapping[str, str],
        known_tags: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """`tags` are the stack's tags (propagated to taggable resources); `known_tags` gives
        the tags of resources outside the stack (by ARN) that its calls name."""
        self.template = template
        self.name = name
        self.stack_tags = dict(tags)
        self.known_tags = dict(known_tags or {})
        self.resolve = StackEvaluator(template, attributes=_Attributes(self), **parameters)
        self._properties: dict[str, dict[str, Any]] = {}

    @cached_property
    def logical_ids(self) -> list[str]:
        return [r for r in self.template["Resources"] if self.resolve.exists(r)]

    def type_of(self, logical_id: str) -> str:
        return str(self.template["Resources"][logical_id]["Type"])

    def spec(self, logical_id: str) -> dict[str, Any]:
        type_name = self.type_of(logical_id)
        if type_name not in table()["types"]:
            raise KeyError(f"{type_name} ({logical_id}) has no entry under types in {TABLE.name}")
        return dict(table()["types"][type_name])

    def retained(self, logical_id: str) -> bool:
        return self.template["Resources"][logical_id].get("DeletionPolicy") == "Retain"

    def properties(self, logical_id: str) -> dict[str, Any]:
        if logical_id not in self._properties:
            raw = self.template["Resources"][logical_id].get("Properties", {})
            self._properties[logical_id] = self.resolve(raw)
        return self._properties[logical_id]

    def physical_name(self, logical_id: str) -> str:
        spec = self.spec(logical_id)
        if "name" in spec and self.properties(logical_id).get(spec["name"]) is not None:
            return str(self.properties(logical_id)[spec["name"]])
        if "generated" in spec:
            return str(spec["generated"])
        suffix = table()["generated_name_suffix"]
        limit = int(spec.get("name_limit", 255))
        return f"{self.name}-{logical_id}"[: limit - len(suffix) - 1] + f"-{suffix}"

    def variables(self, logical_id: str) -> dict[str, Any]:
        """The ${Self.X} values: the resource's resolved properties, its defaults and Name."""
        spec = self.spec(logical_id)
        flat = dict(_flatten(spec.get("defaults", {})))
        flat.update(_flatten(self.properties(logical_id)))
        flat["Name"] = self.physical_name(logical_id)
        return flat

    def evaluate(self, logical_id: str, expression: Any, item: Any = None) -> Any:
        """An ARN template from the table: None when a ${Self.X} or ${Item.X} it names is not
        set (the call naming that resource is not made)."""
        variables = self.variables(logical_id)
        missing = False

        def substitute(node: Any) -> Any:
            nonlocal missing
            if isinstance(node, dict):
                return {k: substitute(v) for k, v in node.items()}
            if isinstance(node, list):
                return [substitute(v) for v in node]
            if not isinstance(node, str):
                return node

            def own(match: re.Match[str]) -> str:
                nonlocal missing
                if match.group(1) not in variables:
                    missing = True
                    return ""
                return str(variables[match.group(1)])

            def of_item(match: re.Match[str]) -> str:
                nonlocal missing
                value = item if match.group(1) is None else _lookup(item, match.group(1))
                if value is None:
                    missing = True
                    return ""
                return str(value)

            return _ITEM.sub(of_item, _SELF.sub(own, node))

        resolved = substitute(expression)
        if missing:
            return None
        value = self.resolve({"Sub": resolved} if isinstance(resolved, str) else resolved)
        return value or None

    def attribute(self, logical_id: str, attribute: str) -> Any:
        spec = self.spec(logical_id)
        expression = spec.get("ref") if not attribute else spec.get("attributes", {}).get(attribute)
        if expression is None:
            kind = "Ref" if not attribute else f"GetAtt {attribute}"
            raise KeyError(
                f"{kind} of {logical_id} is not in {TABLE.name} for {self.type_of(logical_id)}"
            )
        value = self.evaluate(logical_id, expression)
        if value is None:
            raise KeyError(
                f"{logical_id}: its {attribute or 'Ref'} names a property it does not set"
            )
        return value

    def arns(self, logical_id: str, resource_type: str, action: str) -> list[str] | None:
        """The ARNs of one SAR resource type that a resource's call of `action` names ([] = the
        call is not made); None when the table gives no such ARN for that action."""
        entries = {k.lower(): v for k, v in self.spec(logical_id).get("arns", {}).items()}
        entry = _entry(entries.get(resource_type.lower()))
        if entry is None or (entry.actions is not None and action not in entry.actions):
            return None
        if entry.each is not None:
            items = _items(self.properties(logical_id), entry.each)
            found = [self.evaluate(logical_id, entry.arn, item) for item in items]
            return [str(a) for a in found if a]
        value = self.evaluate(logical_id, entry.arn)
        return [] if value is None else [str(value)]

    def tags(self, logical_id: str) -> dict[str, str]:
        """The resource's Tags; for a taggable type also the stack's tags, and CloudFormation's
        aws:cloudformation:* tags where the schema says it adds them."""
        own = _tag_map(self.properties(logical_id).get("Tags"))
        tagging = provider_schema(self.type_of(logical_id)).get("tagging", {})
        if not tagging.get("taggable", False):
            return own
        system = {}
        if tagging.get("cloudFormationSystemTags", False):
            stack_id = self.resolve({"Sub": _STACK_ARN.replace("<name>", self.name)})
            system = {
                "aws:cloudformation:stack-name": self.name,
                "aws:cloudformation:stack-id": stack_id,
                "aws:cloudformation:logical-id": logical_id,
            }
        return {**self.stack_tags, **system, **own}

    @cached_property
    def tags_by_arn(self) -> dict[str, dict[str, str]]:
        """Each resource's own ARNs -> its tags, for calls that name it from elsewhere."""
        found: dict[str, dict[str, str]] = dict(self.known_tags)
        for logical_id in self.logical_ids:
            spec = self.spec(logical_id)
            for expression in spec.get("arns", {}).values():
                entry = _entry(expression)
                # The resource's own ARNs are the ones spelled from its name.
                if entry and entry.each is None and "${Self.Name}" in json.dumps(entry.arn):
                    arn = self.evaluate(logical_id, entry.arn)
                    if arn:
                        found[str(arn)] = self.tags(logical_id)
        return found


def _context(
    stack: Stack, logical_id: str, action: str, arn: str, creates: bool
) -> dict[str, str | list[str]]:
    context: dict[str, str | list[str]] = {}
    type_name = stack.type_of(logical_id)
    own_arns = stack.tags_by_arn
    requests_tags = creates or action in tagging_actions(type_name)
    tags = stack.tags(logical_id)
    if requests_tags and tags:
        context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
        context["aws:TagKeys"] = sorted(tags)
    if not creates and arn in own_arns:
        service = action.split(":")[0]
        for key, value in own_arns[arn].items():
            context[f"aws:ResourceTag/{key}"] = value
            if service == "iam":
                context[f"iam:ResourceTag/{key}"] = value
    if action.lower() == "iam:passrole":
        service = stack.spec(logical_id).get("passes_role_to")
        if service is None:
            raise KeyError(f"{type_name} passes a role but names no passes_role_to in {TABLE.name}")
        context["iam:PassedToService"] = service
    for key, value in stack.spec(logical_id).get("context", {}).get(action, {}).items():
        # A key naming a property the resource does not set is not sent (a role without a
        # permissions boundary).
        if (resolved := stack.evaluate(logical_id, value)) is not None:
            context[key] = str(resolved)
    return context


def _exclusion_holds(stack: Stack, logical_id: str, row: Mapping[str, Any]) -> bool:
    properties = stack.properties(logical_id)
    if any(_lookup(properties, path) is not None for path in row.get("unset", [])):
        return False
    if any(_lookup(properties, path) is None for path in row.get("set", [])):
        return False
    return all(_lookup(properties, path) == value for path, value in row.get("equals", {}).items())


def exclusions_applied(stack: Stack, logical_id: str) -> dict[str, dict[str, Any]]:
    """permission -> the exclusion row that removes it for this resource."""
    type_name = stack.type_of(logical_id)
    found: dict[str, dict[str, Any]] = {}
    for row in table()["exclusions"]:
        if row["type"] == type_name and _exclusion_holds(stack, logical_id, row):
            for permission in row["permissions"]:
                found[permission] = row
    return found


def _action(permission: str, target: str | None = None) -> str:
    """The IAM action a schema permission is authorized as: its alias, or with `target` the
    alias for that ARN (a row with arn_like)."""
    for row in table()["aliases"]:
        if row["permission"] != permission:
            continue
        if "arn_like" not in row or (target is not None and glob_matches(row["arn_like"], target)):
            return str(row["action"])
    return permission


def _requests(
    stack: Stack, logical_id: str, permission: str, origin: str, arn: Any = None
) -> Iterator[Required]:
    type_name = stack.type_of(logical_id)
    action = _action(permission)
    resource_types = action_resource_types(action)
    if resource_types is None:
        raise KeyError(
            f"{permission} ({type_name}) is not an action the Service Authorization Reference "
            f"lists: add an alias or an exclusion row to {TABLE.name}"
        )
    creates = action in stack.spec(logical_id).get("creates", [])
    if arn is not None:
        targets = [] if (value := stack.evaluate(logical_id, arn)) is None else [str(value)]
    elif not resource_types:
        targets = ["*"]
    else:
        found = [stack.arns(logical_id, t, action) for t in resource_types]
        known = [arns for arns in found if arns is not None]
        if not known:
            raise KeyError(
                f"{type_name}: no ARN in {TABLE.name} for {action}'s resource types {resource_types}"
            )
        targets = [a for arns in known for a in arns]
    for target in dict.fromkeys(targets):
        named = _action(permission, target)
        context = _context(stack, logical_id, named, target, creates)
        yield Required(logical_id, type_name, permission, origin, Request(named, target, context))


def required(stack: Stack) -> list[Required]:
    """Every request the stack's handlers make, for every resource that exists."""
    found: list[Required] = []
    for logical_id in stack.logical_ids:
        type_name = stack.type_of(logical_id)
        excluded = exclusions_applied(stack, logical_id)
        permissions = handler_permissions(type_name, retained=stack.retained(logical_id))
        for permission, handlers in permissions.items():
            if permission not in excluded:
                found += _requests(stack, logical_id, permission, "/".join(handlers))
        for row in table()["downstream"]:
            if row["type"] == type_name:
                for permission in row["permissions"]:
                    found += _requests(stack, logical_id, permission, "downstream", row.get("arn"))
    return found
