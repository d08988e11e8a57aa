"""`mme aws preflight`: each check against moto where moto serves the call, botocore's Stubber
(which validates every response against the service model) where it does not: SageMaker
ListProjects, CodeCommit ListRepositories, Lambda GetAccountSettings and Service Quotas for
SageMaker. A service missing from a region is a client whose endpoint refuses connections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from click.testing import CliRunner
from moto import mock_aws

from container.errors import InputError
from local.cli import main
from modelbuild.datasets import Budget, default_registry
from modelbuild.pipeline import DEFAULT_INSTANCE_TYPE
from modeldeploy.build import load_stage_config
from modeldeploy.naming import STAGES
from template import preflight, project_needs
from template.preflight import Status
from template.project_needs import InstanceNeed
from tests.pipeline_fixtures import REGION, offline  # noqa: F401  (autouse: no network)

ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@pytest.fixture
def stubs() -> Iterator[Any]:
    """stubs(service) -> (client, stubber); every queued response must be used."""
    made: list[Stubber] = []

    def make(service: str) -> tuple[Any, Stubber]:
        client = boto3.client(service, region_name=REGION)
        stubber = Stubber(client)
        stubber.activate()
        made.append(stubber)
        return client, stubber

    yield make
    for stubber in made:
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def unreachable(service: str) -> Any:
    """A client whose endpoint refuses connections, as in a region without the service."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url="http://127.0.0.1:1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )


def quota(name: str, value: float, code: str) -> dict[str, Any]:
    return {"ServiceCode": "sagemaker", "QuotaName": name, "Value": value, "QuotaCode": code}


# ---------------------------------------------------------------------------- SageMaker Projects


def test_projects_pass_when_sagemaker_projects_answers(stubs: Any) -> None:
    client, stubber = stubs("sagemaker")
    stubber.add_response("list_projects", {"ProjectSummaryList": []}, {"MaxResults": 1})
    assert preflight.check_projects(client, REGION).status is Status.PASS


def test_projects_fail_where_the_service_does_not_answer() -> None:
    result = preflight.check_projects(unreachable("sagemaker"), REGION)
    assert result.status is Status.FAIL
    assert "EndpointConnectionError" in result.detail
    assert result.action


def test_projects_denied_warns_and_names_the_permission(stubs: Any) -> None:
    client, stubber = stubs("sagemaker")
    stubber.add_client_error("list_projects", "AccessDeniedException", "not authorized", 400)
    result = preflight.check_projects(client, REGION)
    assert result.status is Status.WARN
    assert "sagemaker:ListProjects" in result.detail


def test_refused_credentials_stop_the_preflight(stubs: Any) -> None:
    client, stubber = stubs("sagemaker")
    stubber.add_client_error("list_projects", "UnrecognizedClientException", "bad token", 400)
    with pytest.raises(InputError, match="refused these credentials"):
        preflight.check_projects(client, REGION)


# ---------------------------------------------------------------------------- CodeCommit


def test_codecommit_passes_with_or_without_repositories(stubs: Any) -> None:
    client, stubber = stubs("codecommit")
    stubber.add_response(
        "list_repositories", {"repositories": [{"repositoryName": "a", "repositoryId": "1"}]}
    )
    stubber.add_response("list_repositories", {"repositories": []})
    used = preflight.check_codecommit(client, REGION)
    fresh = preflight.check_codecommit(client, REGION)
    assert used.status is Status.PASS and fresh.status is Status.PASS
    # An account with no repositories is told the service reopened and what to do if refused.
    assert "2025-11-24" in fresh.detail and "SourceProvider=CodeConnections" in fresh.detail


def test_codecommit_missing_in_region_recommends_codeconnections() -> None:
    result = preflight.check_codecommit(unreachable("codecommit"), REGION)
    assert result.status is Status.WARN
    assert "SourceProvider=CodeConnections" in result.action


def test_codecommit_denied_names_the_permission(stubs: Any) -> None:
    client, stubber = stubs("codecommit")
    stubber.add_client_error("list_repositories", "AccessDeniedException", "no", 400)
    result = preflight.check_codecommit(client, REGION)
    assert result.status is Status.WARN and "codecommit:ListRepositories" in result.detail


# ---------------------------------------------------------------------------- quotas

TRAINING = InstanceNeed("training job", "ml.m5.large", required=18, peak=18, reason="r")
ENDPOINT = InstanceNeed("endpoint", "ml.m5.xlarge", required=2, peak=12, reason="r")


def _stub_quotas(stubber: Stubber, defaults: list[dict[str, Any]], applied: list[dict]) -> None:
    # Two pages of defaults: the paginator must follow NextToken.
    half = len(defaults) // 2
    stubber.add_response(
        "list_aws_default_service_quotas",
        {"Quotas": defaults[:half], "NextToken": "page-2"},
        {"ServiceCode": "sagemaker"},
    )
    stubber.add_response(
        "list_aws_default_service_quotas",
        {"Quotas": defaults[half:]},
        {"ServiceCode": "sagemaker", "NextToken": "page-2"},
    )
    stubber.add_response("list_service_quotas", {"Quotas": applied}, {"ServiceCode": "sagemaker"})


def test_quotas_pass_when_the_applied_value_covers_the_peak(stubs: Any) -> None:
    client, stubber = stubs("service-quotas")
    _stub_quotas(
        stubber,
        [
            quota(TRAINING.quota_name, 20, "L-TRAIN"),
            quota(ENDPOINT.quota_name, 0, "L-ENDPT"),
            quota("ml.p3.2xlarge for endpoint usage", 0, "L-OTHER"),
            quota("Number of domains", 5, "L-DOM"),
        ],
        # The account's applied value replaces the default of 0.
        [quota(ENDPOINT.quota_name, 12, "L-ENDPT")],
    )
    results = preflight.check_quotas(client, [TRAINING, ENDPOINT], REGION)
    assert [r.status for r in results] == [Status.PASS, Status.PASS]
    assert results[0].name == "quota: ml.m5.large for training job usage"


def test_quotas_fail_below_what_the_project_needs_and_warn_below_its_peak(stubs: Any) -> None:
    client, stubber = stubs("service-quotas")
    _stub_quotas(
        stubber,
        [quota(TRAINING.quota_name, 0, "L-TRAIN"), quota(ENDPOINT.quota_name, 4, "L-ENDPT")],
        [],
    )
    training, endpoint = preflight.check_quotas(client, [TRAINING, ENDPOINT], REGION)
    assert training.status is Status.FAIL
    assert "--quota-code L-TRAIN --desired-value 18" in training.action
    assert endpoint.status is Status.WARN
    assert "--quota-code L-ENDPT --desired-value 12" in endpoint.action


def test_quota_missing_in_region_warns(stubs: Any) -> None:
    client, stubber = stubs("service-quotas")
    _stub_quotas(stubber, [quota("Number of domains", 5, "L-DOM")] * 2, [])
    (result,) = preflight.check_quotas(client, [TRAINING], REGION)
    assert result.status is Status.WARN and "may not be offered" in result.detail


def test_quotas_denied_name_both_permissions(stubs: Any) -> None:
    client, stubber = stubs("service-quotas")
    stubber.add_client_error("list_aws_default_service_quotas", "AccessDeniedException", "no", 400)
    (result,) = preflight.check_quotas(client, [TRAINING, ENDPOINT], REGION)
    assert result.status is Status.WARN
    assert "servicequotas:ListAWSDefaultServiceQuotas" in result.detail
    assert "servicequotas:ListServiceQuotas" in result.detail


# ---------------------------------------------------------------------------- what is needed


@pytest.fixture(scope="module")
def registry_needs() -> list[InstanceNeed]:
    return project_needs.pipeline_needs(REGION)


def test_pipeline_needs_come_from_the_definitions_of_every_dataset(
    registry_needs: list[InstanceNeed],
) -> None:
    registry = default_registry()
    found = {(n.usage, n.instance_type): n.required for n in registry_needs}
    # Every dataset's pipeline starts at once: its tuning trials and its processing job add up.
    assert found == {
        ("training job", DEFAULT_INSTANCE_TYPE): sum(
            dataset.budget.max_parallel_jobs for dataset in registry.values()
        ),
        ("processing job", DEFAULT_INSTANCE_TYPE): len(registry),
    }


def test_pipeline_needs_follow_a_dataset_budget() -> None:
    dataset = default_registry()["wine"]
    narrow = dataset.model_copy(update={"budget": Budget(max_jobs=60, max_parallel_jobs=2)})
    needs = project_needs.pipeline_needs(REGION, {"wine": narrow})
    training = next(n for n in needs if n.usage == "training job")
    assert (training.required, training.peak) == (2, 2)


def _write_stage(directory: Path, stage: str, **parameters: str) -> None:
    document = {"Parameters": {"StageName": stage, **parameters}}
    (directory / f"{stage}.json").write_text(json.dumps(document))


def test_endpoint_needs_add_stages_of_one_type_and_a_blue_green_fleet(tmp_path: Path) -> None:
    _write_stage(
        tmp_path,
        "dev",
        EndpointInstanceType="ml.c5.large",
        EndpointInstanceCount="1",
        MinCapacity="1",
        MaxCapacity="2",
        InvokerReservedConcurrency="7",
    )
    _write_stage(
        tmp_path,
        "prod",
        EndpointInstanceType="ml.c5.large",
        EndpointInstanceCount="2",
        MinCapacity="2",
        MaxCapacity="6",
    )
    (need,) = project_needs.endpoint_needs(tmp_path)
    assert need.quota_name == "ml.c5.large for endpoint usage"
    # Created: 1 + 2. At the limit: 2 + 6, plus the prod fleet again while an update shifts.
    assert (need.required, need.peak) == (3, 14)
    reserved = project_needs.invoker_reserved_concurrency(tmp_path)
    assert reserved["dev"] == 7
    # prod names none, so it is the endpoint stack's default, read from the template.
    default = project_needs.stage_parameters("prod", tmp_path)["InvokerReservedConcurrency"]
    assert reserved["prod"] == (int(default) if default.strip() else None)


def test_endpoint_needs_of_the_shipped_stage_configs() -> None:
    needs = project_needs.endpoint_needs()
    configs = [load_stage_config(stage) for stage in STAGES]
    assert {n.instance_type for n in needs} == {c["EndpointInstanceType"] for c in configs}
    assert sum(n.required for n in needs) == sum(int(c["EndpointInstanceCount"]) for c in configs)


# ---------------------------------------------------------------------------- Lambda


def _account(stubber: Stubber, limit: int, unreserved: int) -> None:
    stubber.add_response(
        "get_account_settings",
        {
            "AccountLimit": {
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": unreserved,
            }
        },
    )


def test_lambda_reservations_that_fit_pass(stubs: Any) -> None:
    client, stubber = stubs("lambda")
    _account(stubber, 1000, 1000)
    _account(stubber, 1000, 1000)
    reserving = preflight.check_lambda_concurrency(client, {"dev": 10, "prod": 50})
    unreserved = preflight.check_lambda_concurrency(client, {"dev": None, "prod": None})
    assert reserving.status is Status.PASS and unreserved.status is Status.PASS


def test_lambda_reservation_on_a_new_account_fails(stubs: Any) -> None:
    client, stubber = stubs("lambda")
    _account(stubber, 10, 10)
    result = preflight.check_lambda_concurrency(client, {"dev": 10, "prod": None})
    assert result.status is Status.FAIL
    assert "InvokerReservedConcurrency" in result.action


def test_lambda_reservation_beyond_the_unreserved_minimum_fails(stubs: Any) -> None:
    client, stubber = stubs("lambda")
    # 950 unreserved, 100 must stay so: 850 can be reserved, 900 cannot.
    _account(stubber, 1000, 950)
    result = preflight.check_lambda_concurrency(client, {"dev": 400, "prod": 500})
    assert result.status is Status.FAIL and "only 850" in result.detail


def test_lambda_unreserved_on_a_new_account_warns(stubs: Any) -> None:
    client, stubber = stubs("lambda")
    _account(stubber, 10, 10)
    result = preflight.check_lambda_concurrency(client, {"dev": None, "prod": None})
    assert result.status is Status.WARN and "L-B99A9384" in result.action


def test_lambda_denied_names_the_permission(stubs: Any) -> None:
    client, stubber = stubs("lambda")
    stubber.add_client_error("get_account_settings", "AccessDeniedException", "no", 403)
    result = preflight.check_lambda_concurrency(client, {"dev": None})
    assert result.status is Status.WARN and "lambda:GetAccountSettings" in result.detail


# ---------------------------------------------------------------------------- Studio domain


def _studio(role_exists: bool = True) -> tuple[Any, Any, str]:
    iam = boto3.client("iam", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    arn = "arn:aws:iam::123456789012:role/service-role/studio-execution"
    if role_exists:
        arn = iam.create_role(
            RoleName="studio-execution", Path="/service-role/", AssumeRolePolicyDocument=ROLE_POLICY
        )["Role"]["Arn"]
    sagemaker.create_domain(
        DomainName="studio",
        AuthMode="IAM",
        DefaultUserSettings={"ExecutionRole": arn},
        SubnetIds=["subnet-0123456789abcdef0"],
        VpcId="vpc-0123456789abcdef0",
    )
    return sagemaker, iam, arn


@mock_aws
def test_studio_domain_with_its_execution_role_passes() -> None:
    sagemaker, iam, arn = _studio()
    result = preflight.check_studio_domain(sagemaker, iam, REGION)
    assert result.status is Status.PASS and arn in result.detail


@mock_aws
def test_no_studio_domain_fails() -> None:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    result = preflight.check_studio_domain(sagemaker, boto3.client("iam"), REGION)
    assert result.status is Status.FAIL and "no SageMaker domain" in result.detail


@mock_aws
def test_studio_execution_role_that_does_not_exist_fails() -> None:
    sagemaker, iam, arn = _studio(role_exists=False)
    result = preflight.check_studio_domain(sagemaker, iam, REGION)
    assert result.status is Status.FAIL and f"{arn} does not exist" in result.detail


# ---------------------------------------------------------------------------- template bucket


@mock_aws
def test_template_bucket_in_the_region_passes() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="templates-east")
    s3.create_bucket(
        Bucket="templates-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    # us-east-1 buckets report no LocationConstraint at all.
    assert preflight.check_template_bucket(s3, "templates-east", "us-east-1").status is Status.PASS
    assert preflight.check_template_bucket(s3, "templates-eu", "eu-west-1").status is Status.PASS


@mock_aws
def test_template_bucket_in_another_region_or_missing_fails() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(
        Bucket="templates-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    elsewhere = preflight.check_template_bucket(s3, "templates-eu", "us-east-1")
    assert elsewhere.status is Status.FAIL and "is in eu-west-1, not us-east-1" in elsewhere.detail
    missing = preflight.check_template_bucket(s3, "no-such-templates", "us-east-1")
    assert missing.status is Status.FAIL and "does not exist" in missing.detail


def test_template_bucket_name_that_is_not_a_bucket_name_is_bad_input() -> None:
    with pytest.raises(InputError, match="not a valid S3 bucket name"):
        preflight.check_template_bucket(None, "s3://templates", REGION)


# ---------------------------------------------------------------------------- project name


def test_project_name_against_the_templates_own_rule() -> None:
    rule = project_needs.project_name_rule()
    assert preflight.check_project_name("churn-models", rule).status is Status.PASS
    assert preflight.check_project_name("churn_models", rule).status is Status.FAIL
    too_long = preflight.check_project_name("a" * 33, rule)
    assert too_long.status is Status.FAIL and "the limit is 32" in too_long.detail
    # SageMaker lowercases the ARNs named after the project: the template refuses uppercase.
    assert preflight.check_project_name("Churn", rule).status is Status.FAIL


def test_project_name_uses_the_rule_it_is_given() -> None:
    rule = {"AllowedPattern": "^x-[a-z]+$", "MaxLength": 10}
    assert preflight.check_project_name("x-churn", rule).status is Status.PASS
    assert preflight.check_project_name("churn", rule).status is Status.FAIL


def _stub_name_lookups(stubber: Stubber, project: str, projects: list, groups: list) -> None:
    stubber.add_response(
        "list_projects", {"ProjectSummaryList": projects}, {"NameContains": project}
    )
    stubber.add_response(
        "list_model_package_groups",
        {"ModelPackageGroupSummaryList": groups},
        {"NameContains": project},
    )


def _project(name: str, status: str = "CreateCompleted") -> dict[str, Any]:
    return {
        "ProjectName": name,
        "ProjectArn": f"arn:aws:sagemaker:{REGION}:123456789012:project/{name.lower()}",
        "ProjectId": "p-abc123",
        "CreationTime": "2026-01-01T00:00:00Z",
        "ProjectStatus": status,
    }


def _group(name: str) -> dict[str, Any]:
    return {
        "ModelPackageGroupName": name,
        "ModelPackageGroupArn": f"arn:aws:sagemaker:{REGION}:123456789012:model-package-group/{name}",
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelPackageGroupStatus": "Completed",
    }


def test_project_name_free_passes_past_similar_and_deleted_names(stubs: Any) -> None:
    client, stubber = stubs("sagemaker")
    _stub_name_lookups(
        stubber,
        "churn",
        [_project("churn-old"), _project("churn", "DeleteCompleted")],
        [_group("churn-old-wine")],
    )
    result = preflight.check_project_name_free(client, "churn", ["wine"], REGION)
    assert result.status is Status.PASS


def test_project_name_taken_by_a_project_differing_in_case_fails(stubs: Any) -> None:
    client, stubber = stubs("sagemaker")
    _stub_name_lookups(stubber, "churn", [_project("Churn")], [])
    result = preflight.check_project_name_free(client, "churn", ["wine"], REGION)
    assert result.status is Status.FAIL and "Churn already exists" in result.detail


def test_leftover_model_package_group_fails(stubs: Any) -> None:
    client, stubber = stubs("sagemaker")
    _stub_name_lookups(stubber, "churn", [], [_group("churn-wine")])
    result = preflight.check_project_name_free(client, "churn", ["banknote", "wine"], REGION)
    assert result.status is Status.FAIL and "churn-wine" in result.detail


# ---------------------------------------------------------------------------- the command


@pytest.fixture
def account(
    stubs: Any, monkeypatch: pytest.MonkeyPatch, registry_needs: list[InstanceNeed]
) -> Iterator[dict[str, Any]]:
    """A moto account (STS, S3, IAM, SageMaker domain) with stubbed reads moto lacks; the test
    queues the SageMaker, CodeCommit, quota and Lambda answers in the order the checks ask."""
    with mock_aws():
        sagemaker, sagemaker_stub = stubs("sagemaker")
        codecommit, codecommit_stub = stubs("codecommit")
        quotas, quotas_stub = stubs("service-quotas")
        lambda_, lambda_stub = stubs("lambda")
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="mme-templates")
        clients = preflight.Clients(
            sts=boto3.client("sts", region_name=REGION),
            sagemaker=sagemaker,
            codecommit=codecommit,
            service_quotas=quotas,
            lambda_=lambda_,
            s3=s3,
            iam=boto3.client("iam", region_name=REGION),
        )
        # The definitions were built once for this module; the command uses the same function.
        monkeypatch.setattr(project_needs, "pipeline_needs", lambda region: registry_needs)
        monkeypatch.setattr(preflight, "connect", lambda region: clients)
        role = clients.iam.create_role(
            RoleName="studio-execution", AssumeRolePolicyDocument=ROLE_POLICY
        )["Role"]["Arn"]
        needs = registry_needs + project_needs.endpoint_needs()
        yield {
            "role": role,
            "sagemaker": sagemaker_stub,
            "codecommit": codecommit_stub,
            "quotas": quotas_stub,
            "lambda": lambda_stub,
            "needs": needs,
        }


def _queue(account: dict[str, Any], *, domain: str, quota_value: str = "peak") -> None:
    """domain: "ok" (its role exists in IAM), "none" (no domain) or "denied"."""
    sagemaker = account["sagemaker"]
    sagemaker.add_response("list_projects", {"ProjectSummaryList": []}, {"MaxResults": 1})
    if domain == "ok":
        sagemaker.add_response(
            "list_domains", {"Domains": [{"DomainId": "d-studio", "DomainName": "studio"}]}
        )
        sagemaker.add_response(
            "describe_domain",
            {
                "DomainId": "d-studio",
                "DomainName": "studio",
                "Status": "InService",
                "DefaultUserSettings": {"ExecutionRole": account["role"]},
            },
            {"DomainId": "d-studio"},
        )
    elif domain == "none":
        sagemaker.add_response("list_domains", {"Domains": []})
    else:
        sagemaker.add_client_error("list_domains", "AccessDeniedException", "no", 400)
    account["codecommit"].add_response("list_repositories", {"repositories": []})
    values = [
        quota(need.quota_name, getattr(need, quota_value), f"L-{i}")
        for i, need in enumerate(account["needs"])
    ]
    account["quotas"].add_response(
        "list_aws_default_service_quotas", {"Quotas": values}, {"ServiceCode": "sagemaker"}
    )
    account["quotas"].add_response(
        "list_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"}
    )
    _account(account["lambda"], 1000, 1000)


def _preflight(*extra: str) -> Any:
    return CliRunner().invoke(
        main, ["aws", "preflight", "--region", REGION, *extra], catch_exceptions=False
    )


def test_command_prints_every_check_and_exits_0_when_all_pass(account: dict[str, Any]) -> None:
    _queue(account, domain="ok")
    _stub_name_lookups(account["sagemaker"], "churn", [], [])
    result = _preflight("--project-name", "churn", "--template-bucket", "mme-templates")
    assert result.exit_code == 0, result.output
    for name in (
        "SageMaker Projects",
        "Studio domain and execution role",
        "CodeCommit (SourceProvider)",
        "quota: ml.m5.large for training job usage",
        "quota: ml.m5.large for processing job usage",
        "quota: ml.m5.xlarge for endpoint usage",
        "Lambda concurrency (invoker)",
        "template bucket region",
        "project name",
        "project name unused",
    ):
        assert name in result.output
    assert "account 123456789012" in result.output
    assert "warn" not in result.output and "check(s) failed" not in result.output


def test_command_exits_1_on_a_failed_check(account: dict[str, Any]) -> None:
    _queue(account, domain="none", quota_value="required")
    result = _preflight()
    assert result.exit_code == 1, result.output
    assert "1 check(s) failed: Studio domain and execution role" in result.output
    # Quotas that cover the need but not the peak only warn.
    assert "warn" in result.output


def test_command_exits_0_when_only_warnings_remain(account: dict[str, Any]) -> None:
    _queue(account, domain="denied", quota_value="required")
    result = _preflight()
    assert result.exit_code == 0, result.output
    assert "warn" in result.output and "check(s) failed" not in result.output


def test_command_refuses_a_bad_project_name_before_asking_for_it(account: dict[str, Any]) -> None:
    _queue(account, domain="ok")
    result = _preflight("--project-name", "Churn")
    # No ListProjects/ListModelPackageGroups is queued: the lookups are skipped for a bad name.
    assert result.exit_code == 1, result.output
    assert "1 check(s) failed: project name" in result.output


def test_command_without_region_or_credentials_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    no_region = CliRunner().invoke(main, ["aws", "preflight"])
    assert no_region.exit_code == 2
    assert no_region.output.strip().splitlines() == [
        "Error: no AWS region: pass --region (or set AWS_REGION); the template, its bucket "
        "and the SageMaker domain must be in the same region"
    ]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    no_credentials = CliRunner().invoke(main, ["aws", "preflight", "--region", REGION])
    assert no_credentials.exit_code == 2
    assert no_credentials.output.strip().startswith("Error: no AWS credentials")
    assert "Traceback" not in no_credentials.output
