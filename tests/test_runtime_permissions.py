"""Run-time calls with IAM enforced: each code path that runs under a template role runs against
moto signed as that role, and the role's own policy document (the template's, resolved for a
project named as SageMaker names it) decides every call (tests/runtime_iam.py). A missing
permission fails the test naming the action and the ARN; every call moto answered must have been
authorized and derived, and every derived request must fit the Service Authorization Reference
(tests/sar.py).

What moto cannot evaluate, each test names:
- ListPipelineExecutionSteps (modelbuild.run --wait): moto 5.2.5 lacks it; its authorization
  is still decided, the test answers "no steps".
- The endpoint's answers (smoke test, invoker): moto's runtime answers a canned body; the tests
  queue answers that carry each artifact's model checksum.
- What AWS services do as a role around our code (CodeBuild: parameter-store variables, build
  logs, artifacts and S3 sources; Lambda: traces and logs; docker push to ECR; SageMaker
  Pipelines and its jobs; SageMaker hosting; CodePipeline; EventBridge): derived from the
  template and the pipeline definition (tests/platform_iam.py, tests/pipeline_iam.py) and decided
  by the same evaluator.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from click.testing import CliRunner
from moto import mock_aws

from modelbuild import naming as build_naming
from modeldeploy.artifacts import verify_archive
from tests.cfn_support import Evaluator
from tests.deploy_support import artifacts
from tests.iam_policy import Decision, Request, decide, role_statements, statement_applies
from tests.pipeline_iam import execution_requests
from tests.platform_iam import (
    codebuild_environment,
    codebuild_requests,
    codepipeline_requests,
    events_requests,
    hosting_requests,
)
from tests.runtime_iam import ACCOUNT, REGION, Answers, Recorder, enforced
from tests.sar import mismatches
from tests.template_values import (
    KEY_ARN,
    PROJECT,
    endpoint_resolver,
    project_resolver,
    project_template,
)

pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DATASETS = ["breast-cancer", "banknote", "wine"]


@dataclass
class Project:
    """The project stack as deployed, in moto: its template, resolver and the resources the
    code paths expect to exist (created without IAM, as CloudFormation would)."""

    template: dict[str, Any]
    resolve: Evaluator
    monkeypatch: pytest.MonkeyPatch

    def value(self, reference: str) -> str:
        """A Ref ("Logical") or GetAtt ("Logical.Attr") value as CloudFormation would give it."""
        return str(self.resolve({"Ref": reference}))

    @property
    def bucket(self) -> str:
        return self.value("ArtifactBucket")

    @property
    def image_uri(self) -> str:
        return f"{self.value('ImageRepository.RepositoryUri')}:{COMMIT}"

    @staticmethod
    def role_of(reference: dict[str, Any]) -> str:
        """The logical id of the role a `!GetAtt Role.Arn` names."""
        target = reference["GetAtt"]
        return (target if isinstance(target, str) else ".".join(target)).split(".")[0]

    def statements(self, role: str) -> list[dict[str, Any]]:
        return role_statements(self.template, role, self.resolve)

    def run_as(self, role: str, answers: Answers | None = None) -> Any:
        """Code run inside signs as the role, its own policy deciding (tests/runtime_iam.py)."""
        return enforced(role, self.statements(role), self.monkeypatch, answers)

    def codebuild_env(
        self, project: str, action_variables: str = "", **pipeline_variables: str
    ) -> dict[str, str]:
        return codebuild_environment(
            self.template,
            self.resolve,
            project,
            {self.value("ImageUriParameter"): self.image_uri},
            action_variables,
            pipeline_variables,
        )

    def codebuild_denials(self, project: str) -> list[str]:
        """What CodeBuild itself does as the project's service role, decided by that role."""
        role = self.role_of(self.template["Resources"][project]["Properties"]["ServiceRole"])
        requests = codebuild_requests(self.template, self.resolve, project)
        return denials(self.statements(role), requests)


def denials(statements: list[dict[str, Any]], requests: dict[str, Request]) -> list[str]:
    """Each derived request that is not allowed or does not fit the Service Authorization
    Reference, named with what it stands for."""
    found = mismatches(list(requests.values()))
    for what, request in requests.items():
        decision = decide(statements, request)
        if decision is not Decision.ALLOW:
            found.append(f"{what}: {request} {dict(request.context)}: {decision.value}")
    return found


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test tried to reach the network: {address}")
        return connect(self, address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return project_template()


@pytest.fixture
def project(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    _offline(monkeypatch)
    resolve = project_resolver(template)
    with mock_aws():
        found = Project(template, resolve, monkeypatch)
        bucket = resolve(template["Resources"]["ArtifactBucket"]["Properties"])
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket=bucket["BucketName"],
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )
        s3.put_bucket_versioning(
            Bucket=bucket["BucketName"], VersioningConfiguration=bucket["VersioningConfiguration"]
        )
        rules = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        s3.put_bucket_encryption(
            Bucket=bucket["BucketName"],
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                        "BucketKeyEnabled": r["BucketKeyEnabled"],
                    }
                    for r in rules
                ]
            },
        )
        yield found


def _group(dataset: str) -> str:
    return build_naming.model_package_group_name(PROJECT, dataset)


def _assert_only(recorder: Recorder, answered: frozenset[str] = frozenset()) -> None:
    """Every call allowed and authorized; no call the table could not derive; moto's gaps
    exactly the ones the test answers itself."""
    recorder.assert_all_allowed()
    assert recorder.underivable() == {}
    assert recorder.answered_by_test() == answered
    assert mismatches(recorder.requests()) == []


# --- modelbuild: python -m modelbuild.run --wait (ModelBuildProject, ModelBuildRole) ------------


def test_modelbuild_run_is_allowed_by_the_modelbuild_role(project: Project) -> None:
    """The RunPipelines action: stage every dataset, upsert its pipeline (an existing one is
    updated and re-tagged), look up its group's latest version, start it and wait. Two groups
    exist as the template made them, one has a version; the third dataset's group is created."""
    from modelbuild.cli import run

    sagemaker = boto3.client("sagemaker", region_name=REGION)
    for dataset in DATASETS[:2]:
        sagemaker.create_model_package_group(ModelPackageGroupName=_group(dataset))
    sagemaker.create_model_package(
        ModelPackageGroupName=_group(DATASETS[0]),
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={build_naming.MODEL_SHA256_METADATA_KEY: "a" * 64},
        InferenceSpecification={
            "Containers": [
                {
                    "Image": project.image_uri,
                    "ModelDataUrl": f"s3://{project.bucket}/pipelines/x/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    existing = build_naming.pipeline_name(PROJECT, DATASETS[2])
    sagemaker.create_pipeline(
        PipelineName=existing,
        PipelineDefinition='{"Version": "2020-12-01", "Steps": []}',
        RoleArn=project.value("PipelineExecutionRole.Arn"),
    )
    action = project.template["Resources"]["ModelBuildPipeline"]["Properties"]["Stages"][2]
    environment = project.codebuild_env(
        "ModelBuildProject",
        action["Actions"][0]["Configuration"]["EnvironmentVariables"],
        **{"ImageVariables.IMAGE_URI": project.image_uri, "variables.Datasets": "all"},
    )
    # moto 5.2.5 has no ListPipelineExecutionSteps: its authorization is still decided (moto
    # authorizes before it looks for the operation); the test answers "no steps".
    answers = {("sagemaker", "ListPipelineExecutionSteps"): {"PipelineExecutionSteps": []}}
    with project.run_as("ModelBuildRole", answers=answers) as recorder:
        result = CliRunner().invoke(run, ["--wait", "--poll-seconds", "1"], env=environment)
    _assert_only(recorder, frozenset({"sagemaker:ListPipelineExecutionSteps"}))
    assert result.exit_code == 0, result.output
    assert {
        "s3:HeadObject",
        "s3:PutObject",
        "sagemaker:CreateModelPackageGroup",
        "sagemaker:CreatePipeline",
        "sagemaker:UpdatePipeline",
        "sagemaker:AddTags",
        "sagemaker:StartPipelineExecution",
        "sagemaker:DescribePipelineExecution",
    } <= recorder.operations()
    assert project.codebuild_denials("ModelBuildProject") == []


# --- modeldeploy: the Build action and the deploy stages' actions (ModelDeployRole) ----------


def _pipeline_action(project: Project, pipeline: str, stage: str, action: str) -> dict[str, Any]:
    stages = project.resolve(project.template["Resources"][pipeline]["Properties"]["Stages"])
    [found] = [a for s in stages if s["Name"] == stage for a in s["Actions"] if a["Name"] == action]
    return found


def _register(project: Project, dataset: str, artifact: Path, job: str) -> str:
    """An Approved version whose artifact is where the pipeline's tuning job wrote it."""
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    if _group(dataset) not in {g["ModelPackageGroupName"] for g in groups}:
        sagemaker.create_model_package_group(ModelPackageGroupName=_group(dataset))
    key = f"{build_naming.tuning_output_prefix(dataset)}/{job}/output/model.tar.gz"
    s3.upload_file(str(artifact), project.bucket, key)
    # As the pipeline's register step records it: the model checksum the deploy verifies.
    model_sha256 = verify_archive(artifact, str(artifact)).model_sha256
    return sagemaker.create_model_package(
        ModelPackageGroupName=_group(dataset),
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={build_naming.MODEL_SHA256_METADATA_KEY: model_sha256},
        InferenceSpecification={
            "Containers": [
                {"Image": project.image_uri, "ModelDataUrl": f"s3://{project.bucket}/{key}"}
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]


def _endpoint_answers(*artifacts: Path) -> None:
    """What the endpoint answers the next new requests with: a prediction from each artifact's
    model, as the serving container reports it (moto's endpoint answers a canned body)."""
    results = []
    for artifact in artifacts:
        verified = verify_archive(artifact, str(artifact))
        classes = verified.signature["schema"]["classes"]
        prediction = {
            "label": classes[0],
            "probabilities": {str(c): 1 / len(classes) for c in classes},
        }
        body = {
            "predictions": [prediction],
            "model_version": verified.model_sha256,
            "classes": classes,
        }
        results.append({"Body": json.dumps(body), "ContentType": "application/json"})
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"account_id": ACCOUNT, "region": REGION, "results": results},
        timeout=5,
    )


def _invoke(command: Any, arguments: list[str], environment: dict[str, str]) -> Any:
    result = CliRunner().invoke(command, arguments, env=environment)
    assert result.exit_code == 0, f"{arguments}: {result.output}"
    return result


def test_the_modeldeploy_build_action_is_allowed_by_the_modeldeploy_role(
    project: Project, tmp_path: Path
) -> None:
    """Build: package and upload the invoker, write the stage configs, and decide whether the
    deploy stages have anything to do: first with nothing approved (both stages' routing tables
    are read and missing), then with an approved version."""
    from modeldeploy.cli import endpoint

    environment = project.codebuild_env("ModelDeployBuildProject")
    with project.run_as("ModelDeployRole") as recorder:
        _invoke(endpoint, ["build", "--output-dir", str(tmp_path)], environment)
        assert _invoke(endpoint, ["ready"], environment).stdout.strip() == "false"
    _assert_only(recorder)
    _register(project, "breast-cancer", artifacts()["cancer-0"], "job-1")
    with project.run_as("ModelDeployRole") as approved:
        assert _invoke(endpoint, ["ready"], environment).stdout.strip() == "true"
    _assert_only(approved)
    assert {"s3:PutObject", "s3:GetObject"} <= recorder.operations()
    assert {
        "sagemaker:ListModelPackages",
        "sagemaker:DescribeModelPackage",
    } <= approved.operations()
    assert project.codebuild_denials("ModelDeployBuildProject") == []


@pytest.mark.parametrize("canary", ["false", "true"])
def test_the_deploy_stages_are_allowed_by_the_modeldeploy_role(
    project: Project, canary: str
) -> None:
    """DeployDev's and DeployProd's CodeBuild actions, twice: version 1 goes live, then version
    2 replaces it (or, with CanaryDeployments, goes in beside it as a canary); each time every
    routed version is smoke-tested through the invoker code."""
    from modeldeploy.cli import endpoint

    project.resolve = project_resolver(project.template, CanaryDeployments=canary)
    first, second = artifacts()["cancer-0"], artifacts()["cancer-1"]
    environments = {
        stage: project.codebuild_env(
            "ModelDeployTestProject",
            _pipeline_action(project, "ModelDeployPipeline", pipeline_stage, action)[
                "Configuration"
            ]["EnvironmentVariables"],
        )
        for stage, pipeline_stage, action in (
            ("dev", "DeployDev", "DeployModelsAndSmokeTest"),
            ("prod", "DeployProd", "PromoteAndSmokeTest"),
        )
    }
    recorders = []
    for version, artifact in enumerate((first, second), start=1):
        _register(project, "breast-cancer", artifact, f"job-{version}")
        for stage, commands in (
            ("dev", (["deploy", "dev"], ["smoke", "dev"])),
            ("prod", (["promote", "--from", "dev", "--to", "prod"], ["smoke", "prod"])),
        ):
            if stage == "dev":
                # moto keys its answers by target model and body alone, not by endpoint: each
                # version needs one answer, which prod's smoke test then gets again.
                _endpoint_answers(artifact)
            with project.run_as("ModelDeployRole") as recorder:
                for command in commands:
                    _invoke(endpoint, command, environments[stage])
            _assert_only(recorder)
            recorders.append(recorder)
    made = set().union(*(r.operations() for r in recorders))
    assert {
        "s3:GetObject",
        "s3:PutObject",
        "s3:HeadObject",
        "s3:ListObjectsV2",
        "sagemaker:ListModelPackages",
        "sagemaker:DescribeModelPackage",
        "sagemaker-runtime:InvokeEndpoint",
    } <= made
    assert project.codebuild_denials("ModelDeployTestProject") == []


# --- the scheduled operations (OperationsProject, OperationsRole) -----------------------------


def _admin_deployer(project: Project) -> Any:
    """The deploy logic as an administrator: how the tests put a stage into the state an
    operation finds it in."""
    from modeldeploy.aws import S3Storage, SageMakerRegistry
    from modeldeploy.deploy import Deployer

    return Deployer(
        S3Storage(boto3.client("s3", region_name=REGION)),
        SageMakerRegistry(boto3.client("sagemaker", region_name=REGION)),
        bucket=project.bucket,
        project=PROJECT,
    )


def _inference_log(stage: str, records: list[Any]) -> None:
    """The stage's inference log table as the endpoint stack declares it, holding `records`."""
    from modeldeploy import naming
    from modeldeploy.build import load_template
    from modeldeploy.inference_log_dynamodb import DynamoDBSink

    declared = load_template()["Resources"]["InferenceLog"]["Properties"]
    client = boto3.client("dynamodb", region_name=REGION)
    table = naming.inference_log_table(PROJECT, stage)
    client.create_table(
        TableName=table,
        **{key: declared[key] for key in ("KeySchema", "AttributeDefinitions", "BillingMode")},
    )
    sink = DynamoDBSink(table, client)
    for start in range(0, len(records), 25):
        assert sink.write(records[start : start + 25]) == 0


def _operation_env(project: Project, rule: str, **placeholders: str) -> dict[str, str]:
    """The operations build an EventBridge rule starts: the project's variables, then the
    rule's environmentVariablesOverride (its InputTransformer filled with `placeholders`)."""
    [target] = project.resolve(project.template["Resources"][rule]["Properties"]["Targets"])
    text = target.get("Input") or target["InputTransformer"]["InputTemplate"]
    for name, value in placeholders.items():
        text = text.replace(f"<{name}>", json.dumps(value))
    overrides = json.loads(text)["environmentVariablesOverride"]
    return {
        **project.codebuild_env("OperationsProject"),
        **{o["name"]: o["value"] for o in overrides},
    }


def test_the_canary_judgement_is_allowed_by_the_operations_role(project: Project) -> None:
    """The canary schedule: dev's canary failed its calls, so it is rolled back and its version
    rejected; prod has no routing table yet. Every stage of MME_STAGES is judged."""
    import time

    from modeldeploy import naming
    from modeldeploy.cli import endpoint
    from modeldeploy.inference_log import InferenceRecord

    deployer = _admin_deployer(project)
    _register(project, "breast-cancer", artifacts()["cancer-0"], "job-1")
    deployer.deploy("dev", ["breast-cancer"]).raise_for_failures()
    canary_arn = _register(project, "breast-cancer", artifacts()["cancer-1"], "job-2")
    deployer.deploy("dev", ["breast-cancer"], canary_weight=0.2).raise_for_failures()
    route = deployer.read_table("dev").routes["breast-cancer"]
    now = time.time()
    _inference_log(
        "dev",
        [
            InferenceRecord(
                request_id=f"r{i}",
                time=now + i / 1000,
                stage="dev",
                dataset="breast-cancer",
                status=500 if i % 2 else 200,
                latency_ms=5.0,
                target_model=(route.canary.target_model if i % 2 else route.target_model),
            )
            for i in range(80)
        ],
    )
    environment = _operation_env(project, "CanaryScheduleRule")
    with project.run_as("OperationsRole") as recorder:
        for stage in environment["MME_STAGES"].split():
            result = _invoke(endpoint, ["canary", stage], environment)
            assert ("rollback" in result.output) == (stage == "dev"), result.output
    _assert_only(recorder)
    status = boto3.client("sagemaker", region_name=REGION).describe_model_package(
        ModelPackageName=canary_arn
    )["ModelApprovalStatus"]
    assert status == "Rejected"
    assert {"dynamodb:Query", "sagemaker:UpdateModelPackage", "s3:DeleteObject"} <= (
        recorder.operations()
    )
    assert tuple(environment["MME_STAGES"].split()) == naming.STAGES
    assert project.codebuild_denials("OperationsProject") == []


def _drift_ready(project: Project, monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """dev serves a model and holds a day of its logged traffic; prod routes nothing yet."""
    from tests.serving_support import breast_cancer_frame
    from tests.test_drift_job import records

    deployer = _admin_deployer(project)
    _register(project, "breast-cancer", artifacts()["cancer-0"], "job-1")
    deployer.deploy("dev", ["breast-cancer"]).raise_for_failures()
    target = deployer.read_table("dev").routes["breast-cancer"].target_model
    _inference_log("dev", records(breast_cancer_frame().sample(n=300, random_state=1), target))
    # The drift command writes its reports under the working directory.
    monkeypatch.chdir(directory)


def _run_drift(project: Project, statements: list[dict[str, Any]]) -> tuple[Recorder, list[Any]]:
    """The drift schedule's build, as buildspecs/operations.yml runs it for every stage."""
    from modeldeploy.cli import endpoint

    environment = _operation_env(project, "DriftScheduleRule")
    hours = environment["MME_DRIFT_WINDOW_HOURS"]
    options = ["--hours", hours, "--publish-metrics", "--upload-reports"]
    with enforced("OperationsRole", statements, project.monkeypatch) as recorder:
        results = [
            CliRunner().invoke(endpoint, ["drift", stage, *options], env=environment)
            for stage in environment["MME_STAGES"].split()
        ]
    return recorder, results


def test_the_drift_job_is_allowed_by_the_operations_role(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drift schedule: dev's live model against a day of its logged traffic, metrics and
    reports published; prod routes nothing yet."""
    _drift_ready(project, monkeypatch, tmp_path)
    recorder, results = _run_drift(project, project.statements("OperationsRole"))
    assert [r.exit_code for r in results] == [0, 0], [r.output for r in results]
    _assert_only(recorder)
    assert {"dynamodb:Query", "cloudwatch:PutMetricData", "s3:PutObject"} <= recorder.operations()


def test_each_permission_the_drift_job_relies_on_is_enforced(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The enforcement itself: drop any one Allow statement the drift run relied on and the
    same run is refused there, the test naming the action and ARN it lacked."""
    _drift_ready(project, monkeypatch, tmp_path)
    statements = project.statements("OperationsRole")
    allowed, _ = _run_drift(project, statements)
    relied = [
        s
        for s in statements
        if s["Effect"] == "Allow" and any(statement_applies(s, r) for r in allowed.requests())
    ]
    assert {s["Sid"] for s in relied} >= {"StagePrefixes", "InferenceLogs", "DriftMetrics", "Key"}
    for statement in relied:
        others = [s for s in statements if s is not statement]
        recorder, results = _run_drift(project, others)
        lost = [r for r in allowed.requests() if statement_applies(statement, r)]
        assert recorder.denials(), statement["Sid"]
        assert any(str(r) in d for r in lost for d in recorder.denials()), recorder.denials()
        assert any(r.exit_code != 0 for r in results), statement["Sid"]


def test_retraining_on_drift_is_allowed_by_the_operations_role(project: Project) -> None:
    """A prod drift alarm fired: the operations build starts the modelbuild pipeline for the
    alarm's dataset."""
    from modeldeploy import naming
    from modeldeploy.operations import operations

    pipeline = project.value("ModelBuildPipeline")
    # moto checks that CodePipeline may assume the pipeline's role.
    role = project.resolve(project.template["Resources"]["CodePipelineRole"]["Properties"])
    boto3.client("iam", region_name=REGION).create_role(
        RoleName=role["RoleName"],
        Path=role["Path"],
        AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"]),
    )
    boto3.client("codepipeline", region_name=REGION).create_pipeline(
        pipeline={
            "name": pipeline,
            "roleArn": project.value("CodePipelineRole.Arn"),
            "artifactStore": {"type": "S3", "location": project.bucket},
            "stages": [
                {"name": name, "actions": [{"name": name, "actionTypeId": kind}]}
                for name, kind in (
                    (
                        "Source",
                        {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                    ),
                    (
                        "Run",
                        {
                            "category": "Build",
                            "owner": "AWS",
                            "provider": "CodeBuild",
                            "version": "1",
                        },
                    ),
                )
            ],
        }
    )
    alarm = naming.drift_alarm_name(PROJECT, naming.MONITORED_STAGE, "wine")
    environment = _operation_env(
        project, "RetrainOnDriftRule", alarm=alarm, time="2026-11-22T06:00:00.000+0000"
    )
    with project.run_as("OperationsRole") as recorder:
        result = _invoke(operations, ["retrain"], environment)
    assert f"started {pipeline}" in result.output
    _assert_only(recorder)
    assert recorder.operations() == {"codepipeline:StartPipelineExecution"}


# --- the invoker Lambda (endpoint stack, InvokerRole) -----------------------------------------


def _endpoint_stack(project: Project, stage: str) -> Evaluator:
    """The endpoint stack as the modeldeploy build configures it for `stage`: its exported
    parameters, from the values the build's CodeBuild project is given."""
    from modeldeploy.build import export_stage_config, load_template

    environment = project.codebuild_env("ModelDeployBuildProject")
    config = export_stage_config(
        stage,
        project=environment["SAGEMAKER_PROJECT_NAME"],
        project_id=environment["SAGEMAKER_PROJECT_ID"],
        bucket=environment["ARTIFACT_BUCKET"],
        image_uri=environment["IMAGE_URI"],
        model_execution_role_arn=environment["MODEL_EXECUTION_ROLE_ARN"],
        invoker_code_key="modeldeploy/invoker/invoker-0123456789ab.zip",
        artifact_kms_key_arn=environment["ARTIFACT_KMS_KEY_ARN"],
        alarm_topic_arn=environment.get("ALARM_TOPIC_ARN", ""),
    )
    return endpoint_resolver(load_template(), config["Parameters"])


def lambda_requests(stack: dict[str, Any], resolve: Evaluator, function: str) -> dict[str, Request]:
    """What Lambda does as the function's execution role around each invocation, by the
    function's properties: with TracingConfig Active it sends the traces (xray:PutTraceSegments
    and PutTelemetryRecords, no resource type; Lambda developer guide, "Using Lambda with X-Ray"),
    and it writes the function's log to its LoggingConfig group (CreateLogStream and
    PutLogEvents on the group's streams; "Sending Lambda function logs to CloudWatch Logs")."""
    properties = resolve(stack["Resources"][function]["Properties"])
    found: dict[str, Request] = {}
    if properties.get("TracingConfig", {}).get("Mode") == "Active":
        found["traces"] = Request("xray:PutTraceSegments", "*")
        found["trace telemetry"] = Request("xray:PutTelemetryRecords", "*")
    group = properties["LoggingConfig"]["LogGroup"]
    stream = (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:2026/11/22/[$LATEST]0a1b"
    )
    found["log stream"] = Request("logs:CreateLogStream", stream)
    found["log events"] = Request("logs:PutLogEvents", stream)
    return found


def test_the_invoker_is_allowed_by_its_role(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function as deployed for dev: before anything is deployed it answers 404 (S3 must
    say NoSuchKey, not AccessDenied), then it routes a request to the live model and logs it."""
    from modeldeploy import invoker
    from modeldeploy.build import load_template
    from modeldeploy.invoker import request_event

    stack, resolve = load_template(), _endpoint_stack(project, "dev")
    function = resolve(stack["Resources"]["InvokerFunction"]["Properties"])
    for name, value in function["Environment"]["Variables"].items():
        monkeypatch.setenv(name, str(value))
    _inference_log("dev", [])
    monkeypatch.setattr(invoker, "_default", None)
    statements = role_statements(stack, "InvokerRole", resolve)
    rows = [verify_archive(artifacts()["cancer-0"], "cancer-0").signature["schema"]["features"]]
    event = request_event("breast-cancer", [{f["name"]: 1.0 for f in rows[0]}])
    with enforced("InvokerRole", statements, monkeypatch) as nothing:
        answer = invoker.handler(event, None)
    assert answer["statusCode"] == 404 and "NothingDeployed" in answer["body"], answer
    _assert_only(nothing)
    monkeypatch.setattr(invoker, "_default", None)
    _register(project, "breast-cancer", artifacts()["cancer-0"], "job-1")
    _admin_deployer(project).deploy("dev", ["breast-cancer"]).raise_for_failures()
    _endpoint_answers(artifacts()["cancer-0"])
    with enforced("InvokerRole", statements, monkeypatch) as recorder:
        answer = invoker.handler(event, None)
        assert invoker._default is not None and invoker._default.inference_log is not None
        # The log record is written by a background thread; let it finish under the role.
        assert invoker._default.inference_log.drain(10)
    monkeypatch.setattr(invoker, "_default", None)
    assert answer["statusCode"] == 200, answer
    _assert_only(recorder)
    assert recorder.operations() == {
        "s3:GetObject",
        "sagemaker-runtime:InvokeEndpoint",
        "dynamodb:BatchWriteItem",
    }
    assert denials(statements, lambda_requests(stack, resolve, "InvokerFunction")) == []


# --- the image build (ImageBuildProject, ImageBuildRole) --------------------------------------


def _aws_cli_calls(buildspec: str) -> set[tuple[str, str]]:
    """(service, command) of every `aws` CLI call a buildspec makes."""
    text = (REPO / "buildspecs" / buildspec).read_text()
    return set(re.findall(r"\baws (\w+) ([a-z][a-z-]+)", text))


def test_the_image_build_is_allowed_by_the_image_build_role(project: Project) -> None:
    """buildspecs/image.yml's AWS CLI calls (the CLI is botocore: the same operations), run with
    the values the buildspec computes; `docker push` speaks ECR's registry API, which moto does
    not serve, so its permissions are derived from the ECR user guide's list for pushing."""
    assert _aws_cli_calls("image.yml") == {
        ("ecr", "get-login-password"),  # a CLI command over GetAuthorizationToken
        ("ecr", "describe-images"),
        ("ssm", "put-parameter"),
    }
    environment = project.codebuild_env(
        "ImageBuildProject",
        _pipeline_action(project, "ModelBuildPipeline", "BuildImage", "BuildImage")[
            "Configuration"
        ]["EnvironmentVariables"],
        **{"SourceVariables.CommitId": COMMIT},
    )
    repository = environment["IMAGE_REPOSITORY_URI"].split("/", 1)[1]
    boto3.client("ecr", region_name=REGION).create_repository(repositoryName=repository)
    with project.run_as("ImageBuildRole") as recorder:
        ecr = boto3.client("ecr", region_name=REGION)
        ssm = boto3.client("ssm", region_name=REGION)
        ecr.get_authorization_token()
        with pytest.raises(ecr.exceptions.ImageNotFoundException):
            ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": COMMIT}])
        ssm.put_parameter(
            Name=environment["IMAGE_URI_PARAMETER"],
            Value=f"{environment['IMAGE_REPOSITORY_URI']}:{COMMIT}",
            Type="String",
            Overwrite=True,
        )
    _assert_only(recorder)
    repository_arn = project.value("ImageRepository.Arn")
    push = {
        f"docker push: {action}": Request(f"ecr:{action}", repository_arn)
        for action in (
            "BatchCheckLayerAvailability",
            "InitiateLayerUpload",
            "UploadLayerPart",
            "CompleteLayerUpload",
            "PutImage",
            "BatchGetImage",
        )
    }
    assert denials(project.statements("ImageBuildRole"), push) == []
    assert project.codebuild_denials("ImageBuildProject") == []


# --- the pipeline execution role: what SageMaker Pipelines and the jobs do as it ---------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_step_of_a_pipeline_execution_is_allowed_by_the_pipeline_role(
    template: dict[str, Any], dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not runnable in moto (it starts no jobs): the requests are derived from the definition
    modelbuild.run upserts, with the parameters it starts the execution with, for every step on
    either branch of each condition (tests/pipeline_iam.py)."""
    from modelbuild.datasets import get_dataset
    from modelbuild.pipeline import PipelineSettings, ProjectContext, build_definition
    from modelbuild.run import staged_input
    from modelbuild.versions import comparison_parameters

    _offline(monkeypatch)
    resolve = project_resolver(template)
    bucket = str(resolve({"Ref": "ArtifactBucket"}))
    role = str(resolve({"GetAtt": "PipelineExecutionRole.Arn"}))
    image = f"{resolve({'GetAtt': 'ImageRepository.RepositoryUri'})}:{COMMIT}"
    entry = get_dataset(dataset)
    settings = PipelineSettings.for_dataset(
        entry, project_name=PROJECT, input_data_url=staged_input(entry, bucket).uri, image_uri=image
    )
    context = ProjectContext(project_name=PROJECT, bucket=bucket, role_arn=role, region=REGION)
    definition = build_definition(settings, context)
    parameters = {**settings.parameter_values(), **comparison_parameters(None)}
    requests = execution_requests(definition, parameters, {bucket: KEY_ARN})
    assert denials(role_statements(template, "PipelineExecutionRole", resolve), requests) == []
    # Every kind of work the definition asks for was derived.
    actions = {r.action for r in requests.values()}
    assert {
        "sagemaker:CreateProcessingJob",
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:CreateModelPackage",
        "iam:PassRole",
        "s3:GetObject",
        "s3:PutObject",
        "ecr:BatchGetImage",
    } <= actions


def test_the_endpoint_model_is_allowed_by_the_model_execution_role(project: Project) -> None:
    """Not runnable in moto (it hosts nothing): what SageMaker does as the endpoint model's
    role, from the endpoint stack the modeldeploy build configures, for a target model the
    deploy logic names (tests/platform_iam.hosting_requests)."""
    from modeldeploy import naming
    from modeldeploy.build import load_template

    stack, resolve = load_template(), _endpoint_stack(project, "prod")
    model = resolve(stack["Resources"]["Model"]["Properties"])
    assert model["ExecutionRoleArn"] == project.value("ModelExecutionRole.Arn")
    target = naming.target_model("breast-cancer", 3, "c" * 64)
    requests = hosting_requests(stack, resolve, target, project.value("ArtifactKey.Arn"))
    assert denials(project.statements("ModelExecutionRole"), requests) == []


# --- the roles AWS services take on to run the project: CodePipeline and EventBridge ----------


@pytest.mark.parametrize(
    "source",
    [
        {},
        {
            "SourceProvider": "CodeConnections",
            "CodeConnectionArn": (
                f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/0a1b2c3d-4e5f-6a7b-8c9d"
            ),
            "ModelBuildRepositoryId": "example/modelbuild",
            "ModelDeployRepositoryId": "example/modeldeploy",
        },
    ],
    ids=["codecommit", "codeconnections"],
)
@pytest.mark.parametrize("pipeline", ["ModelBuildPipeline", "ModelDeployPipeline"])
def test_every_pipeline_action_is_allowed_by_the_codepipeline_role(
    template: dict[str, Any], pipeline: str, source: dict[str, str]
) -> None:
    """Not runnable in moto (CodePipeline runs nothing there): each action's requests, derived
    from the pipeline's own stages (tests/platform_iam.codepipeline_requests)."""
    resolve = project_resolver(template, **source)
    requests = codepipeline_requests(template, resolve, pipeline)
    assert denials(role_statements(template, "CodePipelineRole", resolve), requests) == []


def test_every_rule_target_is_allowed_by_the_events_role(template: dict[str, Any]) -> None:
    """Every schedule and alarm rule on (all optional schedules given), each target started as
    the events role (tests/platform_iam.events_requests)."""
    resolve = project_resolver(
        template,
        RetrainOnDrift="true",
        RetrainSchedule="rate(7 days)",
        CanaryDeployments="true",
    )
    requests = events_requests(template, resolve, "EventsRole")
    targets = {r.resource for r in requests.values()}
    assert targets == {
        str(resolve({"GetAtt": "OperationsProject.Arn"})),
        f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:{resolve({'Ref': 'ModelBuildPipeline'})}",
        f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:{resolve({'Ref': 'ModelDeployPipeline'})}",
    }
    assert denials(role_statements(template, "EventsRole", resolve), requests) == []


def test_a_failed_smoke_test_rolls_back_and_rejects_under_the_modeldeploy_role(
    project: Project,
) -> None:
    """DeployDev with a version the endpoint serves wrongly: the smoke command rolls the route
    back and rejects the version in the registry (sagemaker:UpdateModelPackage), as the role."""
    from modeldeploy.cli import endpoint

    environment = project.codebuild_env(
        "ModelDeployTestProject",
        _pipeline_action(project, "ModelDeployPipeline", "DeployDev", "DeployModelsAndSmokeTest")[
            "Configuration"
        ]["EnvironmentVariables"],
    )
    first, second = artifacts()["cancer-0"], artifacts()["cancer-1"]
    _register(project, "breast-cancer", first, "job-1")
    _endpoint_answers(first)
    with project.run_as("ModelDeployRole") as recorder:
        for command in (["deploy", "dev"], ["smoke", "dev"]):
            _invoke(endpoint, command, environment)
    _assert_only(recorder)
    bad = _register(project, "breast-cancer", second, "job-2")
    # The endpoint answers version 2's requests with version 1's model: the smoke test fails.
    _endpoint_answers(first)
    with project.run_as("ModelDeployRole") as failing:
        _invoke(endpoint, ["deploy", "dev"], environment)
        result = CliRunner().invoke(endpoint, ["smoke", "dev"], env=environment)
    assert result.exit_code != 0, result.output
    assert "breast-cancer" in result.output
    _assert_only(failing)
    assert "sagemaker:UpdateModelPackage" in failing.operations()
    described = boto3.client("sagemaker", region_name=REGION).describe_model_package(
        ModelPackageName=bad
    )
    assert described["ModelApprovalStatus"] == "Rejected"
