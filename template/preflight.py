"""Account preflight: read-only checks that an AWS account and region can take the project.

`mme aws preflight --region R [--project-name N] [--template-bucket B]` runs these before the
template is published or a project is created. Each check is a function over boto3 clients that
returns a CheckResult: its name, pass/warn/fail, what was found, and what to do about a warning or
failure. Every AWS call is a read (List*, Describe*, Get*); a missing permission to read makes the
check a warning naming that permission, a service that does not answer in the region is reported
as unavailable, and credentials that AWS refuses stop the whole run (InputError), since no check
could mean anything then.

What the project needs (instances per quota, the invoker's reserved concurrency, the template's
project-name rule) comes from template/project_needs.py, which reads it from the code and
templates that ask for it.

Three modules: this one connects and runs the checks; `template.preflight_checks` holds the
checks, one function per service; `template.preflight_calls` turns botocore's failures into
what a check reports (CheckResult, Status, CallFailed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import boto3
from botocore.config import Config

from container.errors import InputError
from template import project_needs
from template.preflight_calls import NO_CREDENTIALS, CallFailed, CheckResult, Status, aws_call
from template.preflight_checks import (
    check_codecommit,
    check_lambda_concurrency,
    check_project_name,
    check_project_name_free,
    check_projects,
    check_quotas,
    check_studio_domain,
    check_template_bucket,
)
from template.project_needs import InstanceNeed


@dataclass(frozen=True)
class Clients:
    """One boto3 client per service the checks read, all in the region being checked."""

    sts: Any
    sagemaker: Any
    codecommit: Any
    service_quotas: Any
    lambda_: Any
    s3: Any
    iam: Any


# A service missing from a region fails on DNS at once; two attempts keep throttling tolerable
# without making an absent endpoint take a minute per check.
_CLIENT_CONFIG: Final = Config(
    retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30
)


def connect(region: str) -> Clients:
    session = boto3.Session(region_name=region)
    if session.get_credentials() is None:
        raise InputError(NO_CREDENTIALS)

    def client(service: str) -> Any:
        return session.client(service, config=_CLIENT_CONFIG)  # type: ignore[call-overload]

    return Clients(
        sts=client("sts"),
        sagemaker=client("sagemaker"),
        codecommit=client("codecommit"),
        service_quotas=client("service-quotas"),
        lambda_=client("lambda"),
        s3=client("s3"),
        iam=client("iam"),
    )


def identity(clients: Clients, region: str) -> str:
    """Who is asking: proves the credentials work before any check runs."""
    try:
        with aws_call():
            caller = clients.sts.get_caller_identity()
    except CallFailed as failure:
        raise InputError(
            f"cannot ask AWS STS in {region} who these credentials are ({failure.code}): "
            f"{failure.message}"
        ) from None
    return f"account {caller['Account']} as {caller['Arn']}"


# ---------------------------------------------------------------------------- running them all


def capacity_needs(region: str) -> tuple[list[InstanceNeed], list[CheckResult]]:
    """The project's instance needs, and a warning where one source cannot be read here."""
    notes = []
    try:
        needs = project_needs.pipeline_needs(region)
    except ImportError as error:
        needs = []
        notes.append(
            CheckResult(
                "SageMaker quotas for pipeline jobs",
                Status.WARN,
                f"not checked: the pipeline definitions need the SageMaker Python SDK ({error})",
                "install the pipeline extra (pip install -e '.[pipeline]') and run again",
            )
        )
    return needs + project_needs.endpoint_needs(), notes


def run(
    clients: Clients,
    region: str,
    *,
    project_name: str | None = None,
    template_bucket: str | None = None,
    needs: list[InstanceNeed] | None = None,
) -> list[CheckResult]:
    results = [
        check_projects(clients.sagemaker, region),
        check_studio_domain(clients.sagemaker, clients.iam, region),
        check_codecommit(clients.codecommit, region),
    ]
    if needs is None:
        needs, notes = capacity_needs(region)
        results += notes
    results += check_quotas(clients.service_quotas, needs, region)
    results.append(
        check_lambda_concurrency(clients.lambda_, project_needs.invoker_reserved_concurrency())
    )
    if template_bucket:
        results.append(check_template_bucket(clients.s3, template_bucket, region))
    if project_name is not None:
        named = check_project_name(project_name, project_needs.project_name_rule())
        results.append(named)
        if named.status is Status.PASS:
            results.append(
                check_project_name_free(
                    clients.sagemaker, project_name, project_needs.template_datasets(), region
                )
            )
    return results
