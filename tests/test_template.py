"""The project template and the portfolio stack: lint-clean, least privilege, and one source of
truth with the code (every name the template spells is the one modelbuild/modeldeploy compute)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelbuild import naming as build_naming
from modelbuild.datasets import default_registry
from modelbuild.run import DEFAULT_TIMEOUT_SECONDS
from modeldeploy import naming as deploy_naming
from modeldeploy.build import TEMPLATE as ENDPOINT_TEMPLATE
from modeldeploy.build import load_template
from template import PORTFOLIO_TEMPLATE, PROJECT_TEMPLATE
from template.package import published_project_template
from tests.cfn_support import (
    Evaluator,
    as_list,
    buildspec_provides,
    cfn_lint,
    checkov,
    resources,
    statements,
)
from tests.iam_policy import glob_matches

REPO = Path(__file__).resolve().parents[1]
PROJECT = "churn-models"
PROJECT_ID = "p-abc123def456"


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return load_template(PROJECT_TEMPLATE)


@pytest.fixture(scope="module")
def portfolio() -> dict[str, Any]:
    return load_template(PORTFOLIO_TEMPLATE)


BUCKET_ARN = f"arn:aws:s3:::{build_naming.artifact_bucket_name(PROJECT_ID)}"


@pytest.fixture(scope="module")
def resolve(project: dict[str, Any]) -> Evaluator:
    return Evaluator(
        project,
        attributes={"ArtifactBucket.Arn": BUCKET_ARN},
        SageMakerProjectName=PROJECT,
        SageMakerProjectId=PROJECT_ID,
        SeedCodeBucket="my-templates",
    )


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


@pytest.mark.integration
def test_cfn_lint_is_clean_on_every_template() -> None:
    result = cfn_lint(PROJECT_TEMPLATE, PORTFOLIO_TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_checkov_is_clean_on_every_template(tmp_path: Path) -> None:
    result = checkov(tmp_path, PROJECT_TEMPLATE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every skip carries a reason (checkov records the comment it was given).
    for template in (PROJECT_TEMPLATE, PORTFOLIO_TEMPLATE):
        for logical_id, body in load_template(template)["Resources"].items():
            for skip in body.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip.get("comment", "")) > 40, (logical_id, skip)


def test_project_parameters_follow_sagemaker_and_naming(project: dict[str, Any]) -> None:
    parameters = project["Parameters"]
    assert parameters["SageMakerProjectName"]["AllowedPattern"] == (
        f"^{build_naming.PROJECT_NAME_PATTERN}$"
    )
    assert parameters["SageMakerProjectId"]["AllowedPattern"] == (
        f"^{build_naming.PROJECT_ID_PATTERN}$"
    )
    assert "Default" not in parameters["SageMakerProjectName"]
    # The run waits up to DEFAULT_TIMEOUT_SECONDS for the pipelines: CodeBuild must outlast it.
    assert parameters["ModelBuildTimeoutMinutes"]["MinValue"] > DEFAULT_TIMEOUT_SECONDS / 60


def test_the_published_datasets_default_is_the_registry(
    project: dict[str, Any], tmp_path: Path
) -> None:
    """Packaging writes the registry's datasets as the default: adding one changes no template."""
    published = tmp_path / "project.yml"
    seeds = {build_naming.MODELBUILD_REPO: "s/b.zip", build_naming.MODELDEPLOY_REPO: "s/d.zip"}
    published.write_text(published_project_template("my-templates", seeds))
    default = load_template(published)["Parameters"]["Datasets"]["Default"].split(",")
    assert default == list(default_registry())
    assert len(default) <= build_naming.MAX_TEMPLATE_DATASETS
    groups = resources(project, "AWS::SageMaker::ModelPackageGroup")
    assert len(groups) == build_naming.MAX_TEMPLATE_DATASETS


@pytest.mark.parametrize(
    "datasets", [["breast-cancer"], list(default_registry()), list("abcdefgh")]
)
def test_one_group_per_dataset_named_like_the_code(
    project: dict[str, Any], datasets: list[str]
) -> None:
    resolve = Evaluator(
        project, SageMakerProjectName=PROJECT, SageMakerProjectId=PROJECT_ID, Datasets=datasets
    )
    expected = [build_naming.model_package_group_name(PROJECT, d) for d in datasets]
    created = [
        resolve(body["Properties"]["ModelPackageGroupName"])
        for logical_id, body in project["Resources"].items()
        if body["Type"] == "AWS::SageMaker::ModelPackageGroup" and resolve.exists(logical_id)
    ]
    assert created == expected
    # The approval rule names exactly these groups, and ignores registrations.
    pattern = resolve(resource(project, "ModelPackageStateRule")["EventPattern"])
    assert pattern["source"] == ["aws.sagemaker"]
    assert pattern["detail-type"] == ["SageMaker Model Package State Change"]
    assert pattern["detail"]["ModelPackageGroupName"] == expected
    assert pattern["detail"]["ModelApprovalStatus"] == [{"anything-but": ["PendingManualApproval"]}]
    for group in created:
        assert deploy_naming.dataset_of_group(PROJECT, group) in datasets


def test_the_approval_rule_starts_the_modeldeploy_pipeline(project: dict[str, Any]) -> None:
    [target] = resource(project, "ModelPackageStateRule")["Targets"]
    assert "${ModelDeployPipeline}" in target["Arn"]["Sub"]
    assert target["RoleArn"] == {"GetAtt": "EventsRole.Arn"}


def test_resource_names_are_the_naming_modules(project: dict[str, Any], resolve: Evaluator) -> None:
    def name(logical_id: str, prop: str) -> str:
        return resolve(resource(project, logical_id)[prop])

    assert name("ArtifactBucket", "BucketName") == build_naming.artifact_bucket_name(PROJECT_ID)
    assert name("ImageRepository", "RepositoryName") == build_naming.image_repository_name(
        PROJECT_ID
    )
    assert name("ImageUriParameter", "Name") == build_naming.image_uri_parameter(PROJECT)
    assert name("NotificationTopic", "TopicName") == build_naming.notification_topic_name(PROJECT)
    for repo, logical_id in (("modelbuild", "ModelBuild"), ("modeldeploy", "ModelDeploy")):
        assert name(f"{logical_id}Repository", "RepositoryName") == build_naming.repository_name(
            PROJECT, repo
        )
        assert name(f"{logical_id}Pipeline", "Name") == build_naming.codepipeline_name(
            PROJECT, repo
        )
    builds = {
        "ImageBuildProject": "image",
        "ModelBuildProject": "modelbuild",
        "ModelDeployBuildProject": "modeldeploy-build",
        "ModelDeployTestProject": "modeldeploy-test",
        "OperationsProject": "operations",
    }
    assert {resolve(p["Name"]) for p in resources(project, "AWS::CodeBuild::Project")} == {
        build_naming.codebuild_project_name(PROJECT, purpose) for purpose in builds.values()
    }
    for logical_id, purpose in builds.items():
        assert name(logical_id, "Name") == build_naming.codebuild_project_name(PROJECT, purpose)
    rules = {resolve(r["Name"]) for r in resources(project, "AWS::Events::Rule")}
    assert rules == {
        build_naming.event_rule_name(PROJECT, purpose)
        for purpose in (
            "model-approval",
            "modelbuild-push",
            "modeldeploy-push",
            "pipeline-failure",
            "drift-schedule",
            "canary-schedule",
            "retrain-schedule",
            "retrain-on-drift",
            "operations-failure",
        )
    }


def test_roles_are_named_pathed_and_trusted_as_naming_says(
    project: dict[str, Any], resolve: Evaluator
) -> None:
    roles = resources(project, "AWS::IAM::Role")
    assert len(roles) == len(build_naming.ROLE_PURPOSES)
    for role in roles:
        role_name = resolve(role["RoleName"])
        purpose = role_name.removeprefix(f"sagemaker-mme-{PROJECT_ID}-")
        assert role_name == build_naming.role_name(PROJECT_ID, purpose)
        assert role["Path"] == build_naming.ROLE_PATH
        [trust] = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"]["Service"] == build_naming.ROLE_PURPOSES[purpose]
    # The pipeline role passes itself to its jobs by the ARN naming.role_arn computes.
    [pass_self] = [
        s
        for s in statements(resource(project, "PipelineExecutionRole"))
        if s["Sid"] == "PassSelfToJobs"
    ]
    assert resolve(pass_self["Resource"]) == build_naming.role_arn(
        "123456789012", PROJECT_ID, "pipeline"
    )


# Actions IAM cannot scope to a resource: only these may name Resource "*".
UNSCOPABLE = {
    "ecr:GetAuthorizationToken",
    "sagemaker:ListModelPackageGroups",
    "sagemaker:ListPipelines",
    "sagemaker:ListModelPackages",
    "cloudwatch:PutMetricData",
    "kms:CreateKey",
    "cloudformation:GetTemplateSummary",
    "cloudformation:ValidateTemplate",
    # Reads of CloudFormation's resource handlers (tests/test_handler_permissions.py).
    "kms:ListAliases",
    "codecommit:ListRepositories",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:DescribeScheduledActions",
    "cloudwatch:GetMetricData",
    "logs:DescribeLogGroups",
    "logs:DescribeIndexPolicies",
    "logs:DescribeResourcePolicies",
}


@pytest.mark.parametrize("path", [PROJECT_TEMPLATE, PORTFOLIO_TEMPLATE], ids=lambda p: p.name)
def test_roles_are_least_privilege(path: Path) -> None:
    template = load_template(path)
    roles = resources(template, "AWS::IAM::Role")
    assert roles
    for role in roles:
        for statement in statements(role):
            actions = as_list(statement["Action"])
            assert all(a != "*" and not a.endswith(":*") for a in actions), statement
            if statement["Resource"] == "*":
                assert set(actions) <= UNSCOPABLE, statement
            assert statement["Effect"] in ("Allow", "Deny"), statement


def actions_on(role: dict[str, Any], resolve: Evaluator) -> dict[str, list[str]]:
    """action -> the resolved resources it is allowed on."""
    granted: dict[str, list[str]] = {}
    for statement in statements(role):
        targets = []
        for target in as_list(statement["Resource"]):
            try:
                targets.append(resolve(target))
            except KeyError:  # a resource attribute (GetAtt): named by logical id
                targets.append(str(target))
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(targets)
    return granted


def test_modelbuild_role_allows_what_the_run_calls(
    project: dict[str, Any], resolve: Evaluator
) -> None:
    granted = actions_on(resource(project, "ModelBuildRole"), resolve)
    pipeline_arn = (
        "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/"
        f"{build_naming.pipeline_name(PROJECT, 'breast-cancer')}"
    )
    for action in (
        "CreatePipeline",
        "UpdatePipeline",
        "AddTags",
        "StartPipelineExecution",
        "DescribePipelineExecution",
        "ListPipelineExecutionSteps",
    ):
        assert any(glob_matches(r, pipeline_arn) for r in granted[f"sagemaker:{action}"]), action
    group_arn = (
        "arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/"
        f"{build_naming.model_package_group_name(PROJECT, 'wine')}"
    )
    assert any(glob_matches(r, group_arn) for r in granted["sagemaker:CreateModelPackageGroup"])
    assert granted["sagemaker:ListModelPackageGroups"] == ["*"]
    assert granted["sagemaker:ListPipelines"] == ["*"]
    staged = f"{BUCKET_ARN}/{build_naming.staged_data_key('wine', '0' * 64)}"
    for action in ("s3:PutObject", "s3:GetObject"):  # HeadObject is authorized as GetObject
        assert any(glob_matches(r, staged) for r in granted[action]), action
    assert not any(
        glob_matches(r, f"{BUCKET_ARN}/dev/models/x.tar.gz") for r in granted["s3:PutObject"]
    )
    assert "iam:PassRole" in granted


def test_modeldeploy_role_allows_what_the_deploy_calls(
    project: dict[str, Any], resolve: Evaluator
) -> None:
    granted = actions_on(resource(project, "ModelDeployRole"), resolve)
    bucket = build_naming.artifact_bucket_name(PROJECT_ID)
    target = deploy_naming.target_model("wine", 3, "a" * 64)
    for stage in deploy_naming.STAGES:
        table = deploy_naming.split_s3_uri(deploy_naming.routing_table_uri(bucket, stage))[1]
        model = deploy_naming.artifact_key(stage, target)
        for key in (table, model):
            for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
                assert any(glob_matches(r, f"{BUCKET_ARN}/{key}") for r in granted[action]), (
                    key,
                    action,
                )
        endpoint = deploy_naming.endpoint_name(PROJECT, stage)
        assert (
            f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint/{endpoint}"
            in granted["sagemaker:InvokeEndpoint"]
        )
    assert granted["sagemaker:ListModelPackages"] == ["*"]
    package = (
        "arn:aws:sagemaker:eu-west-1:123456789012:model-package/"
        f"{build_naming.model_package_group_name(PROJECT, 'wine')}/3"
    )
    assert any(glob_matches(r, package) for r in granted["sagemaker:DescribeModelPackage"])
    # The registered artifact is read where the pipeline's tuning jobs wrote it.
    trial = f"{BUCKET_ARN}/{build_naming.tuning_output_prefix('wine')}/job/output/model.tar.gz"
    assert any(glob_matches(r, trial) for r in granted["s3:GetObject"])
    # Nothing outside the stage prefixes is writable but the invoker's upload key.
    assert not any(glob_matches(r, f"{BUCKET_ARN}/datasets/x.csv") for r in granted["s3:PutObject"])


def test_codebuild_projects_provide_what_the_buildspecs_need(project: dict[str, Any]) -> None:
    def env(logical_id: str) -> set[str]:
        variables = resource(project, logical_id)["Environment"]["EnvironmentVariables"]
        return {v["Name"] for v in variables}

    def buildspec(logical_id: str) -> str:
        return resource(project, logical_id)["Source"]["BuildSpec"]

    for logical_id in (
        "ImageBuildProject",
        "ModelBuildProject",
        "ModelDeployBuildProject",
        "OperationsProject",
    ):
        assert (REPO / buildspec(logical_id)).is_file(), buildspec(logical_id)
    modelbuild = buildspec_provides("modelbuild.yml")
    assert {"SAGEMAKER_PIPELINE_ROLE_ARN", "IMAGE_URI", "ARTIFACT_BUCKET"} <= modelbuild
    assert modelbuild <= env("ModelBuildProject")
    modeldeploy = buildspec_provides("modeldeploy.yml")
    assert {"MME_DATASETS", "MODEL_EXECUTION_ROLE_ARN", "ARTIFACT_KMS_KEY_ARN"} <= modeldeploy
    assert modeldeploy <= env("ModelDeployBuildProject")
    assert modeldeploy <= env("ModelDeployTestProject")
    image = buildspec_provides("image.yml")
    assert image <= env("ImageBuildProject")
    operations = buildspec_provides("operations.yml")
    assert {"MME_STAGES", "MME_DRIFT_WINDOW_HOURS", "ARTIFACT_BUCKET"} <= operations
    assert operations <= env("OperationsProject")
    timeout = resource(project, "ModelBuildProject")["TimeoutInMinutes"]
    assert timeout == {"Ref": "ModelBuildTimeoutMinutes"}


def _actions(pipeline: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    stages = {}
    for stage in pipeline["Stages"]:
        found = []
        for action in stage["Actions"]:
            found.extend(action["If"][1:] if "If" in action else [action])
        stages[stage["Name"]] = found
    return stages


def test_modelbuild_pipeline_builds_the_image_then_runs_the_pipelines(
    project: dict[str, Any],
) -> None:
    stages = _actions(resource(project, "ModelBuildPipeline"))
    assert tuple(stages) == build_naming.MODELBUILD_STAGES
    assert {a["ActionTypeId"]["Provider"] for a in stages["Source"]} == {
        "CodeCommit",
        "CodeStarSourceConnection",
    }
    [image] = stages["BuildImage"]
    assert "#{SourceVariables.CommitId}" in image["Configuration"]["EnvironmentVariables"]
    [run] = stages["RunPipelines"]
    assert "#{ImageVariables.IMAGE_URI}" in run["Configuration"]["EnvironmentVariables"]
    assert image["Namespace"] == "ImageVariables"
    exported = yaml.safe_load((REPO / "buildspecs" / "image.yml").read_text())["env"]
    assert "IMAGE_URI" in exported["exported-variables"]


def test_modeldeploy_pipeline_deploys_dev_smokes_waits_then_prod(
    project: dict[str, Any], resolve: Evaluator
) -> None:
    stages = _actions(resource(project, "ModelDeployPipeline"))
    assert tuple(stages) == build_naming.MODELDEPLOY_STAGES
    build, publish = sorted(stages["Build"], key=lambda a: a["RunOrder"])
    assert build["OutputArtifacts"] == [{"Name": "BuildArtifact"}]
    # The scheduled operations run the source the pipeline last built (tests/test_operations.py).
    assert publish["ActionTypeId"]["Provider"] == "S3"
    [approval] = stages["ApproveProd"]
    assert approval["ActionTypeId"]["Provider"] == "Manual"
    assert approval["Configuration"]["NotificationArn"] == {"Ref": "NotificationTopic"}
    for stage, stage_name in zip(deploy_naming.STAGES, ("DeployDev", "DeployProd"), strict=True):
        deploy, smoke = sorted(stages[stage_name], key=lambda a: a["RunOrder"])
        configuration = deploy["Configuration"]
        assert resolve(configuration["StackName"]) == deploy_naming.stack_name(PROJECT, stage)
        assert configuration["TemplatePath"] == (
            f"BuildArtifact::{deploy_naming.ENDPOINT_TEMPLATE_FILE}"
        )
        assert ENDPOINT_TEMPLATE.name == deploy_naming.ENDPOINT_TEMPLATE_FILE
        assert configuration["TemplateConfiguration"] == (
            f"BuildArtifact::{deploy_naming.config_export_file(stage)}"
        )
        assert '"name": "DEPLOY_STAGE"' in smoke["Configuration"]["EnvironmentVariables"]
        assert f'"value": "{stage}"' in smoke["Configuration"]["EnvironmentVariables"]
        assert smoke["Configuration"]["ProjectName"] == {"Ref": "ModelDeployTestProject"}
    assert deploy_naming.DEPLOY_STAGE_ENV == "DEPLOY_STAGE"


def test_codepipeline_role_may_touch_only_the_endpoint_stacks(
    project: dict[str, Any], resolve: Evaluator
) -> None:
    granted = actions_on(resource(project, "CodePipelineRole"), resolve)
    [stacks] = {tuple(granted["cloudformation:CreateStack"])}
    for stage in deploy_naming.STAGES:
        arn = (
            "arn:aws:cloudformation:eu-west-1:123456789012:stack/"
            f"{deploy_naming.stack_name(PROJECT, stage)}/some-id"
        )
        assert any(glob_matches(r, arn) for r in stacks)


def test_storage_is_encrypted_versioned_private_and_scanned(project: dict[str, Any]) -> None:
    bucket = resource(project, "ArtifactBucket")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert resource(project, "ArtifactKey")["EnableKeyRotation"] is True
    assert resource(project, "ImageRepository")["ImageScanningConfiguration"] == {
        "ScanOnPush": True
    }


def test_source_provider_switches_repositories(project: dict[str, Any]) -> None:
    for provider, commit in (("CodeCommit", True), ("CodeConnections", False)):
        resolve = Evaluator(
            project,
            attributes={"ModelDeployRepository.Name": "repo"},
            SageMakerProjectName=PROJECT,
            SageMakerProjectId=PROJECT_ID,
            SourceProvider=provider,
        )
        assert resolve.exists("ModelBuildRepository") is commit
        assert resolve.exists("ModelBuildPushRule") is commit
        [source] = resolve(resource(project, "ModelDeployPipeline")["Stages"][0]["Actions"])
        provider_name = source["ActionTypeId"]["Provider"]
        assert provider_name == ("CodeCommit" if commit else "CodeStarSourceConnection")
    seeded = resource(project, "ModelBuildRepository")["Code"]
    assert seeded["S3"] == {
        "Bucket": {"Ref": "SeedCodeBucket"},
        "Key": {"Ref": "ModelBuildSeedKey"},
    }


def test_notifications_subscribe_the_email_only_when_given(project: dict[str, Any]) -> None:
    for email, subscribed in (("", False), ("ops@example.com", True)):
        resolve = Evaluator(
            project,
            SageMakerProjectName=PROJECT,
            SageMakerProjectId=PROJECT_ID,
            NotificationEmail=email,
        )
        assert resolve.exists("NotificationSubscription") is subscribed
    failure = resource(project, "PipelineFailureRule")
    assert failure["EventPattern"]["detail"]["state"] == ["FAILED"]


def test_portfolio_publishes_a_studio_visible_product(portfolio: dict[str, Any]) -> None:
    [product] = resources(portfolio, "AWS::ServiceCatalog::CloudFormationProduct")
    assert {"Key": "sagemaker:studio-visibility", "Value": "true"} in product["Tags"]
    [artifact] = product["ProvisioningArtifactParameters"]
    assert artifact["Info"] == {"LoadTemplateFromURL": {"Ref": "ProjectTemplateUrl"}}
    [principal] = resources(portfolio, "AWS::ServiceCatalog::PortfolioPrincipalAssociation")
    assert principal["PrincipalARN"] == {"Ref": "PrincipalArn"}
    [constraint] = resources(portfolio, "AWS::ServiceCatalog::LaunchRoleConstraint")
    assert constraint["RoleArn"]["If"][0] == "CreateLaunchRole"
    resolve = Evaluator(portfolio, LaunchRoleArn="arn:aws:iam::123456789012:role/existing")
    assert not resolve.exists("LaunchRole")
    assert Evaluator(portfolio).exists("LaunchRole")


def test_launch_role_creates_only_project_roles(portfolio: dict[str, Any]) -> None:
    role = resource(portfolio, "LaunchRole")
    # Outside the path it manages: it cannot rewrite its own policy.
    assert role["Path"] != build_naming.ROLE_PATH
    launch_arn = f"arn:aws:iam::123456789012:role{role['Path']}sagemaker-mme-launch-eu-west-1"
    resolve = Evaluator(portfolio, TemplateBucket="my-templates")
    granted = actions_on(role, resolve)
    for action in ("iam:CreateRole", "iam:PassRole", "iam:PutRolePolicy"):
        assert granted[action] == [f"arn:aws:iam::123456789012:role{build_naming.ROLE_PATH}*"]
    project_role = build_naming.role_arn("123456789012", PROJECT_ID, "modelbuild")
    assert glob_matches(granted["iam:CreateRole"][0], project_role)
    assert not glob_matches(granted["iam:PutRolePolicy"][0], launch_arn)
    bucket = build_naming.artifact_bucket_name(PROJECT_ID)
    assert any(glob_matches(r, f"arn:aws:s3:::{bucket}") for r in granted["s3:CreateBucket"])


def test_deploy_role_cannot_touch_or_pass_the_project_roles(
    project: dict[str, Any], resolve: Evaluator
) -> None:
    """The endpoint stack creates the invoker's role; it must not reach the project's roles."""
    role = resource(project, "CloudFormationRole")
    denied: dict[str, list[str]] = {}
    for statement in statements(role):
        if statement["Effect"] == "Deny":
            for action in as_list(statement["Action"]):
                denied.setdefault(action, []).extend(
                    resolve(r) for r in as_list(statement["Resource"])
                )
    for purpose in build_naming.ROLE_PURPOSES:
        arn = build_naming.role_arn("123456789012", PROJECT_ID, purpose)
        for action in ("iam:PutRolePolicy", "iam:CreateRole", "iam:PassRole"):
            assert any(glob_matches(r, arn) for r in denied.get(action, [])), (purpose, action)


def test_data_prefixes_in_policies_are_the_naming_layouts(
    project: dict[str, Any], resolve: Evaluator
) -> None:
    from modeldeploy.build import INVOKER_KEY_PREFIX

    bucket = build_naming.artifact_bucket_name(PROJECT_ID)
    target = deploy_naming.target_model("wine", 3, "a" * 64)
    model_reads = actions_on(resource(project, "ModelExecutionRole"), resolve)["s3:GetObject"]
    for stage in deploy_naming.STAGES:
        prefix = deploy_naming.model_prefix_uri(bucket, stage)
        assert prefix == f"s3://{bucket}/{deploy_naming.artifact_key(stage, '')}"
        key = deploy_naming.artifact_key(stage, target)
        assert any(glob_matches(r, f"{BUCKET_ARN}/{key}") for r in model_reads), stage
        # The endpoint's model reads models, not the routing table.
        table = deploy_naming.split_s3_uri(deploy_naming.routing_table_uri(bucket, stage))[1]
        assert not any(glob_matches(r, f"{BUCKET_ARN}/{table}") for r in model_reads)
    code = actions_on(resource(project, "CloudFormationRole"), resolve)["s3:GetObject"]
    assert any(glob_matches(r, f"{BUCKET_ARN}/{INVOKER_KEY_PREFIX}/invoker-0.zip") for r in code)
    pipeline_reads = actions_on(resource(project, "PipelineExecutionRole"), resolve)
    trial = f"{BUCKET_ARN}/{build_naming.tuning_output_prefix('wine')}/job/output/model.tar.gz"
    assert any(glob_matches(r, trial) for r in pipeline_reads["s3:PutObject"])
    # CodePipeline keys artifacts by the pipeline name's first 20 characters.
    for repo in (build_naming.MODELBUILD_REPO, build_naming.MODELDEPLOY_REPO):
        key = f"{build_naming.codepipeline_name(PROJECT, repo)[:20]}/Source/abc.zip"
        granted = actions_on(resource(project, "CodePipelineRole"), resolve)["s3:PutObject"]
        assert any(glob_matches(r, f"{BUCKET_ARN}/{key}") for r in granted), repo
