"""The account preflight's checks, one function per service and concern (SageMaker Projects,
CodeCommit, quotas, Lambda concurrency, the Studio domain, the template bucket, the project
name); each reads with boto3 and returns a CheckResult (template.preflight runs them)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from modelbuild import naming
from template.preflight_calls import CallFailed, CheckResult, Status, aws_call, denied, not_checked
from template.project_needs import InstanceNeed

# ---------------------------------------------------------------------------- the checks


def check_projects(sagemaker: Any, region: str) -> CheckResult:
    name = "SageMaker Projects"
    try:
        with aws_call():
            sagemaker.list_projects(MaxResults=1)
    except CallFailed as failure:
        if failure.kind == "denied":
            return denied(name, "sagemaker:ListProjects", failure)
        if failure.kind == "unavailable":
            return CheckResult(
                name,
                Status.FAIL,
                f"SageMaker Projects does not answer in {region} ({failure.code})",
                "use a region where SageMaker Studio and Projects are offered",
            )
        return not_checked(name, failure)
    return CheckResult(name, Status.PASS, f"SageMaker Projects answers in {region}")


def check_codecommit(codecommit: Any, region: str) -> CheckResult:
    """Whether SourceProvider=CodeCommit (the template's default) can create the repositories.

    CodeCommit closed to new customers on 2024-07-25 (CreateRepository then failed with "not
    allowed because there is no existing repository in this AWS account or AWS Organization")
    and returned to general availability on 2025-11-24 (AWS DevOps blog "AWS CodeCommit returns
    to general availability"), so an account with no repositories can create them again. What is
    left to check read-only is whether the service answers in the region.
    """
    name = "CodeCommit (SourceProvider)"
    alternative = (
        "create the project with SourceProvider=CodeConnections (a CodeConnections connection "
        "to GitHub, GitLab or Bitbucket holding the two seed repositories)"
    )
    try:
        with aws_call():
            repositories = codecommit.list_repositories().get("repositories", [])
    except CallFailed as failure:
        if failure.kind == "denied":
            return denied(name, "codecommit:ListRepositories", failure)
        if failure.kind == "unavailable":
            return CheckResult(
                name,
                Status.WARN,
                f"CodeCommit does not answer in {region} ({failure.code}), so the default "
                "SourceProvider=CodeCommit cannot create the repositories",
                alternative,
            )
        return not_checked(name, failure)
    if repositories:
        return CheckResult(
            name,
            Status.PASS,
            f"CodeCommit answers in {region}; this account already has repositories there",
        )
    return CheckResult(
        name,
        Status.PASS,
        f"CodeCommit answers in {region}; no repositories yet. It reopened to new customers on "
        "2025-11-24 (closed since 2024-07-25); if creating the project is still refused "
        "('CreateRepository request is not allowed'), use SourceProvider=CodeConnections",
    )


def sagemaker_quotas(service_quotas: Any) -> dict[str, tuple[float, str]]:
    """QuotaName -> (value, quota code): the account's applied value, else AWS's default.

    ListServiceQuotas returns only quotas with an applied value, so the defaults fill the rest.
    """
    found: dict[str, tuple[float, str]] = {}
    for operation in ("list_aws_default_service_quotas", "list_service_quotas"):
        pages = service_quotas.get_paginator(operation).paginate(ServiceCode="sagemaker")
        for page in pages:
            for quota in page.get("Quotas", []):
                found[quota["QuotaName"]] = (float(quota["Value"]), quota["QuotaCode"])
    return found


def check_quotas(service_quotas: Any, needs: list[InstanceNeed], region: str) -> list[CheckResult]:
    try:
        with aws_call():
            quotas = sagemaker_quotas(service_quotas)
    except CallFailed as failure:
        name = "SageMaker instance quotas"
        if failure.kind == "denied":
            return [
                denied(
                    name,
                    "servicequotas:ListAWSDefaultServiceQuotas and servicequotas:ListServiceQuotas",
                    failure,
                )
            ]
        return [not_checked(name, failure)]
    return [_check_quota(need, quotas.get(need.quota_name), region) for need in needs]


def _check_quota(need: InstanceNeed, quota: tuple[float, str] | None, region: str) -> CheckResult:
    name = f"quota: {need.quota_name}"
    if quota is None:
        return CheckResult(
            name,
            Status.WARN,
            f"no SageMaker quota named '{need.quota_name}' in {region}: {need.instance_type} "
            f"may not be offered there for {need.usage}s",
            f"pick an instance type SageMaker offers in {region} for {need.usage}s",
        )
    value, code = quota
    wanted = need.required if value < need.required else need.peak
    request = (
        f"request at least {wanted} (other {need.usage}s in the account share it): "
        f"aws service-quotas request-service-quota-increase --service-code sagemaker "
        f"--quota-code {code} --desired-value {wanted} --region {region}"
    )
    detail = f"quota {value:g}, needs {need.required}"
    if need.peak > need.required:
        detail += f" (up to {need.peak})"
    detail += f": {need.reason}"
    if value < need.required:
        return CheckResult(name, Status.FAIL, detail, request)
    if value < need.peak:
        return CheckResult(name, Status.WARN, detail, request)
    return CheckResult(name, Status.PASS, detail)


# Lambda keeps this much of the account's concurrency unreserved, for functions without their
# own reservation ("you can reserve up to the Unreserved account concurrency value minus 100";
# an account whose whole limit is below 100 can reserve nothing).
LAMBDA_MIN_UNRESERVED: Final = 100
# Lambda's default concurrency limit per region; new accounts start far lower (10).
LAMBDA_DEFAULT_LIMIT: Final = 1000


def check_lambda_concurrency(lambda_client: Any, reserved: Mapping[str, int | None]) -> CheckResult:
    name = "Lambda concurrency (invoker)"
    try:
        with aws_call():
            limit = lambda_client.get_account_settings()["AccountLimit"]
    except CallFailed as failure:
        if failure.kind == "denied":
            return denied(name, "lambda:GetAccountSettings", failure)
        return not_checked(name, failure)
    total, unreserved = limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]
    reservations = {stage: value for stage, value in reserved.items() if value}
    wanted = sum(reservations.values())
    headroom = max(0, unreserved - min(LAMBDA_MIN_UNRESERVED, total))
    account = f"account limit {total}, unreserved {unreserved}"
    if wanted > headroom:
        listed = ", ".join(f"{stage} {value}" for stage, value in reservations.items())
        return CheckResult(
            name,
            Status.FAIL,
            f"{account}: the endpoint stacks reserve {wanted} ({listed}) but Lambda lets this "
            f"account reserve only {headroom} (it keeps {min(LAMBDA_MIN_UNRESERVED, total)} "
            "unreserved), so the invoker cannot be created",
            "leave InvokerReservedConcurrency unreserved in modeldeploy/config/<stage>.json, "
            "or request a higher Lambda 'Concurrent executions' quota (code L-B99A9384)",
        )
    if total < LAMBDA_DEFAULT_LIMIT:
        return CheckResult(
            name,
            Status.WARN,
            f"{account}: below Lambda's default of {LAMBDA_DEFAULT_LIMIT}; every function in "
            f"the account shares {total} concurrent executions, so the invoker is throttled "
            "(HTTP 429) beyond that",
            "request a higher Lambda 'Concurrent executions' quota (code L-B99A9384) before "
            "sending production traffic",
        )
    what = f"reserves {wanted}" if wanted else "reserve nothing (unreserved)"
    return CheckResult(name, Status.PASS, f"{account}; the endpoint stacks {what}")


def check_studio_domain(sagemaker: Any, iam: Any, region: str) -> CheckResult:
    name = "Studio domain and execution role"
    try:
        with aws_call():
            domains = sagemaker.list_domains().get("Domains", [])
    except CallFailed as failure:
        if failure.kind == "denied":
            return denied(name, "sagemaker:ListDomains", failure)
        return not_checked(name, failure)
    if not domains:
        return CheckResult(
            name,
            Status.FAIL,
            f"no SageMaker domain in {region}: projects are created from SageMaker Studio",
            f"create a SageMaker domain in {region} (SageMaker console > Domains), then run "
            "the preflight again",
        )
    problems = []
    for summary in domains:
        label = f"{summary.get('DomainName')} ({summary['DomainId']})"
        try:
            with aws_call():
                domain = sagemaker.describe_domain(DomainId=summary["DomainId"])
        except CallFailed as failure:
            if failure.kind == "denied":
                return denied(name, "sagemaker:DescribeDomain", failure)
            return not_checked(name, failure)
        role = (domain.get("DefaultUserSettings") or {}).get("ExecutionRole", "")
        if domain.get("Status") != "InService":
            problems.append(f"domain {label} is {domain.get('Status')}")
            continue
        if not role:
            problems.append(f"domain {label} has no default execution role")
            continue
        try:
            with aws_call():
                iam.get_role(RoleName=role.rsplit("/", 1)[-1])
        except CallFailed as failure:
            if failure.code == "NoSuchEntity":
                problems.append(f"domain {label}: execution role {role} does not exist")
                continue
            if failure.kind == "denied":
                return CheckResult(
                    name,
                    Status.WARN,
                    f"domain {label} is InService with execution role {role}; whether the role "
                    f"exists was not checked: iam:GetRole is denied ({failure.code})",
                    f"pass {role} as the portfolio stack's PrincipalArn",
                )
            return not_checked(name, failure)
        return CheckResult(
            name,
            Status.PASS,
            f"domain {label} is InService; default execution role {role} (user profiles may "
            "set their own: each role that creates projects must be a portfolio principal)",
        )
    return CheckResult(
        name,
        Status.FAIL,
        "; ".join(problems),
        "fix the domain (SageMaker console > Domains > domain settings) or create one with an "
        "existing execution role",
    )


def _bucket_region(location: str | None) -> str:
    # GetBucketLocation answers null for us-east-1 and the legacy "EU" for eu-west-1.
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location or "")


def check_template_bucket(s3: Any, bucket: str, region: str) -> CheckResult:
    name = "template bucket region"
    naming.check_bucket(bucket)
    try:
        with aws_call():
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except CallFailed as failure:
        if failure.code in ("NoSuchBucket", "404"):
            return CheckResult(
                name,
                Status.FAIL,
                f"bucket '{bucket}' does not exist",
                f"create it in {region} (aws s3 mb s3://{bucket} --region {region})",
            )
        if failure.kind == "denied":
            return denied(name, "s3:GetBucketLocation", failure)
        return not_checked(name, failure)
    actual = _bucket_region(location)
    if actual != region:
        return CheckResult(
            name,
            Status.FAIL,
            f"bucket '{bucket}' is in {actual}, not {region}: Service Catalog and the "
            "S3-hosted project template load the template and seed zips from a bucket in the "
            "domain's region",
            f"publish from a bucket in {region} (mme template package --bucket B --region "
            f"{region})",
        )
    return CheckResult(name, Status.PASS, f"bucket '{bucket}' is in {region}")


def check_project_name(project: str, rule: Mapping[str, Any]) -> CheckResult:
    """The name against the project template's own SageMakerProjectName constraints.

    CloudFormation applies AllowedPattern to the whole value, as fullmatch does.
    """
    name = "project name"
    pattern, limit = str(rule["AllowedPattern"]), rule.get("MaxLength")
    problems = []
    if limit is not None and len(project) > int(limit):
        problems.append(f"is {len(project)} characters long; the limit is {limit}")
    if not re.fullmatch(pattern, project):
        problems.append(f"does not match the template's AllowedPattern {pattern}")
    if problems:
        return CheckResult(
            name,
            Status.FAIL,
            f"'{project}' " + " and ".join(problems),
            "choose a name the template accepts: SageMaker lowercases endpoint and pipeline "
            "ARNs, so lowercase letters, digits and hyphens are the safe choice",
        )
    return CheckResult(name, Status.PASS, f"'{project}' matches the template's {pattern}")


def check_project_name_free(
    sagemaker: Any, project: str, datasets: list[str], region: str
) -> CheckResult:
    """No project or model package group the stack would create exists already.

    Compared case-insensitively: SageMaker ARNs are lowercase, so names differing only in case
    collide.
    """
    name = "project name unused"
    wanted = {naming.model_package_group_name(project, dataset).casefold() for dataset in datasets}
    try:
        with aws_call():
            projects = [
                summary
                for page in sagemaker.get_paginator("list_projects").paginate(NameContains=project)
                for summary in page.get("ProjectSummaryList", [])
            ]
        with aws_call():
            groups = [
                summary["ModelPackageGroupName"]
                for page in sagemaker.get_paginator("list_model_package_groups").paginate(
                    NameContains=project
                )
                for summary in page.get("ModelPackageGroupSummaryList", [])
            ]
    except CallFailed as failure:
        if failure.kind == "denied":
            return denied(
                name, "sagemaker:ListProjects and sagemaker:ListModelPackageGroups", failure
            )
        return not_checked(name, failure)
    taken = [
        summary["ProjectName"]
        for summary in projects
        if summary["ProjectName"].casefold() == project.casefold()
        and summary.get("ProjectStatus") != "DeleteCompleted"
    ]
    if taken:
        return CheckResult(
            name,
            Status.FAIL,
            f"a project named {taken[0]} already exists in {region}",
            "choose another project name (or delete the existing project)",
        )
    clashes = sorted(group for group in groups if group.casefold() in wanted)
    if clashes:
        return CheckResult(
            name,
            Status.FAIL,
            f"model package group(s) {', '.join(clashes)} already exist in {region}; the "
            "project stack creates them and would fail",
            "choose another project name, or delete those groups (with their model versions)",
        )
    return CheckResult(
        name,
        Status.PASS,
        f"no project named {project} and none of its {len(wanted)} model package groups exist",
    )
