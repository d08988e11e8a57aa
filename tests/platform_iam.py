"""What AWS services do as a template role, which no moto run can show: CodeBuild before and
around a buildspec, Lambda around the invoker. Each request is derived from the template's own
resource properties, per the service's documentation named at each derivation.

Also the environment a CodeBuild project gives its buildspec, so the code under test runs with
exactly the variables the template sets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.cfn_support import Evaluator
from tests.iam_policy import Request
from tests.runtime_iam import ACCOUNT, PARTITION, REGION, ssm_parameter_arn

REPO = Path(__file__).resolve().parents[1]
# A build id is "<project>:<uuid>"; the uuid names the build's log stream in the project's group.
BUILD_UUID = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"


def codebuild_environment(
    template: Mapping[str, Any],
    resolve: Evaluator,
    project: str,
    parameter_store: Mapping[str, str],
    action_variables: str = "",
    pipeline_variables: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a build of `project` sees, in CodeBuild's order of precedence: its
    buildspec's env.variables, the project's EnvironmentVariables (a PARAMETER_STORE one holds
    the parameter's value, given by name in `parameter_store`), the pipeline action's
    EnvironmentVariables JSON with its #{...} references filled in from `pipeline_variables`;
    and what CodeBuild itself sets."""
    properties = resolve(template["Resources"][project]["Properties"])
    buildspec = yaml.safe_load((REPO / properties["Source"]["BuildSpec"]).read_text())
    found: dict[str, str] = {
        name: str(value) for name, value in buildspec.get("env", {}).get("variables", {}).items()
    }
    found.update(AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION)
    environment = properties["Environment"]
    for variable in environment.get("EnvironmentVariables", []):
        value = str(variable["Value"])
        if variable.get("Type") == "PARAMETER_STORE":
            value = parameter_store[value]
        found[variable["Name"]] = value
    if action_variables:
        for variable in json.loads(action_variables):
            value = variable["value"]
            for reference, replacement in (pipeline_variables or {}).items():
                value = value.replace(f"#{{{reference}}}", replacement)
            assert "#{" not in value, f"no value given for {value}"
            found[variable["name"]] = value
    found["CODEBUILD_RESOLVED_SOURCE_VERSION"] = "0123456789abcdef0123456789abcdef01234567"
    return found


def codebuild_requests(
    template: Mapping[str, Any], resolve: Evaluator, project: str
) -> dict[str, Request]:
    """What CodeBuild does as the project's service role for every build, by what it does:

    - fetches an S3 source, and a pipeline action's input artifacts; stores its output
      artifacts, encrypted with the project's EncryptionKey;
    - reads each PARAMETER_STORE variable (ssm:GetParameters; CodeBuild user guide, "Environment
      variables in build environments": the service role needs ssm:GetParameters);
    - writes the build log to the project's CloudWatch Logs group (CreateLogGroup on the group,
      CreateLogStream and PutLogEvents on the build's stream; the user guide's service role
      policy grants both the group ARN and the group ARN with ":*").
    """
    properties = resolve(template["Resources"][project]["Properties"])
    found: dict[str, Request] = {}
    source = properties["Source"]
    if source["Type"] == "S3":
        # An S3 source: the service role policy of the CodeBuild user guide's "Create a
        # CodeBuild service role" grants these four for it.
        bucket, _, key = source["Location"].partition("/")
        found["source object"] = Request("s3:GetObject", _object(bucket, key))
        found["source object version"] = Request("s3:GetObjectVersion", _object(bucket, key))
        found["source bucket ACL"] = Request("s3:GetBucketAcl", f"arn:{PARTITION}:s3:::{bucket}")
        found["source bucket location"] = Request(
            "s3:GetBucketLocation", f"arn:{PARTITION}:s3:::{bucket}"
        )
        found.update(_decrypt(template, resolve, bucket, "source object key"))
    for pipeline, action in _actions_running(template, resolve, project):
        store = pipeline["ArtifactStore"]
        # CodePipeline keys an artifact <pipeline name[:20]>/<artifact name[:10]>/<random>.
        prefix = f"{pipeline['Name'][:20]}"
        for artifact in action.get("InputArtifacts", []):
            key = f"{prefix}/{artifact['Name'][:10]}/AbCdE12"
            found[f"{action['Name']} input {artifact['Name']}"] = Request(
                "s3:GetObject", _object(store["Location"], key)
            )
        for artifact in action.get("OutputArtifacts", []):
            key = f"{prefix}/{artifact['Name'][:10]}/AbCdE12"
            found[f"{action['Name']} output {artifact['Name']}"] = Request(
                "s3:PutObject", _object(store["Location"], key)
            )
        # CodeBuild encrypts the output artifacts with the project's EncryptionKey and reads
        # the inputs CodePipeline encrypted with the store's key, as the service role.
        via = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
        if action.get("InputArtifacts"):
            found[f"{action['Name']} input key"] = Request(
                "kms:Decrypt", store["EncryptionKey"]["Id"], via
            )
        if action.get("OutputArtifacts"):
            found[f"{action['Name']} output key"] = Request(
                "kms:GenerateDataKey", properties["EncryptionKey"], via
            )
    for variable in properties["Environment"].get("EnvironmentVariables", []):
        if variable.get("Type") == "PARAMETER_STORE":
            found[f"environment variable {variable['Name']}"] = Request(
                "ssm:GetParameters", ssm_parameter_arn(variable["Value"])
            )
    logs = properties.get("LogsConfig", {}).get("CloudWatchLogs", {})
    if logs.get("Status") == "ENABLED":
        group = logs["GroupName"]
        group_arn = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{group}"
        stream_arn = f"{group_arn}:log-stream:{BUILD_UUID}"
        found["build log group"] = Request("logs:CreateLogGroup", group_arn)
        found["build log stream"] = Request("logs:CreateLogStream", stream_arn)
        found["build log events"] = Request("logs:PutLogEvents", stream_arn)
    return found


def _object(bucket: str, key: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}/{key}"


def _decrypt(
    template: Mapping[str, Any], resolve: Evaluator, bucket: str, what: str
) -> dict[str, Request]:
    """kms:Decrypt of an object S3 encrypted with the template bucket's default KMS key."""
    for body in template["Resources"].values():
        if body["Type"] != "AWS::S3::Bucket":
            continue
        properties = resolve(body["Properties"])
        if properties.get("BucketName") != bucket:
            continue
        for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
            default = rule["ServerSideEncryptionByDefault"]
            if default["SSEAlgorithm"] == "aws:kms":
                via = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
                return {what: Request("kms:Decrypt", default["KMSMasterKeyID"], via)}
    return {}


def _actions_running(
    template: Mapping[str, Any], resolve: Evaluator, project: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pipeline, action) for every CodePipeline action that runs the CodeBuild project."""
    found = []
    for body in template["Resources"].values():
        if body["Type"] != "AWS::CodePipeline::Pipeline":
            continue
        pipeline = resolve(body["Properties"])
        name = resolve({"Ref": project})
        for stage in pipeline["Stages"]:
            for action in stage["Actions"]:
                provider = action["ActionTypeId"]["Provider"]
                if provider == "CodeBuild" and action["Configuration"]["ProjectName"] == name:
                    found.append((pipeline, action))
    return found


_IMAGE = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<name>[^:@]+)"
)


def image_pull(what: str, image: str) -> dict[str, Request]:
    """Pulling a private ECR image as a SageMaker execution role: the SageMaker developer
    guide's execution role permissions for CreateModel, CreateProcessingJob and CreateTrainingJob
    list these four."""
    match = _IMAGE.match(image)
    assert match is not None, f"{what}: {image} is not an ECR image"
    repository = (
        f"arn:{PARTITION}:ecr:{match['region']}:{match['account']}:repository/{match['name']}"
    )
    found = {f"{what}: registry login": Request("ecr:GetAuthorizationToken", "*")}
    for action in ("BatchCheckLayerAvailability", "GetDownloadUrlForLayer", "BatchGetImage"):
        found[f"{what}: pull {action}"] = Request(f"ecr:{action}", repository)
    return found


def sagemaker_logs(what: str, group: str, stream: str, namespace: str) -> dict[str, Request]:
    """A SageMaker job's or endpoint's log and metrics, written as its execution role (the same
    guide's lists: CreateLogGroup, DescribeLogStreams on the group; CreateLogStream,
    PutLogEvents on the stream; PutMetricData in the group's namespace)."""
    group_arn = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{group}"
    stream_arn = f"{group_arn}:log-stream:{stream}"
    return {
        f"{what}: log group": Request("logs:CreateLogGroup", group_arn),
        f"{what}: log streams": Request("logs:DescribeLogStreams", group_arn),
        f"{what}: log stream": Request("logs:CreateLogStream", stream_arn),
        f"{what}: log events": Request("logs:PutLogEvents", stream_arn),
        f"{what}: metrics": Request(
            "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": namespace}
        ),
    }


def hosting_requests(
    stack: Mapping[str, Any], resolve: Evaluator, target_model: str, kms_key: str
) -> dict[str, Request]:
    """What SageMaker hosting does as the endpoint model's execution role: pull the image, load
    a target model from the multi-model prefix (ModelDataUrl + TargetModel, an object the
    project's KMS key encrypts), write the endpoint's log (/aws/sagemaker/Endpoints/<endpoint>,
    a stream per variant and instance) and its metrics."""
    model = resolve(stack["Resources"]["Model"]["Properties"])
    endpoint = resolve(stack["Resources"]["Endpoint"]["Properties"]["EndpointName"])
    container = model["PrimaryContainer"]
    bucket, _, prefix = container["ModelDataUrl"].removeprefix("s3://").partition("/")
    via = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    found = image_pull("image", container["Image"])
    found["target model"] = Request("s3:GetObject", _object(bucket, prefix + target_model))
    found["target model key"] = Request("kms:Decrypt", kms_key, via)
    found.update(
        sagemaker_logs(
            "endpoint",
            f"/aws/sagemaker/Endpoints/{endpoint}",
            "AllTraffic/i-0a1b2c3d",
            "/aws/sagemaker/Endpoints",
        )
    )
    return found


def _arn(service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


def codepipeline_requests(
    template: Mapping[str, Any], resolve: Evaluator, pipeline_id: str
) -> dict[str, Request]:
    """What CodePipeline does as the pipeline's role, action by action, per the service role
    permissions each action's page of the CodePipeline action reference lists:

    - every action: reads its input artifacts and writes its output artifacts in the artifact
      store, encrypted with the store's key;
    - CodeCommit source: GetBranch, GetCommit, GetRepository, UploadArchive,
      GetUploadArchiveStatus, CancelUploadArchive on the repository;
    - CodeStarSourceConnection source: UseConnection on the connection (codeconnections: or
      codestar-connections:, by the ARN's service);
    - CodeBuild: StartBuild and BatchGetBuilds on the project;
    - CloudFormation CREATE_UPDATE: DescribeStacks, CreateStack, UpdateStack on the stack, and
      iam:PassRole of its RoleArn to CloudFormation;
    - S3 deploy: PutObject of the object, encrypted with KMSEncryptionKeyARN;
    - Manual approval with NotificationArn: sns:Publish to the topic, and the topic's key
      (SNS developer guide, "Encryption at rest": a publisher to an encrypted topic needs
      kms:GenerateDataKey* and kms:Decrypt).
    """
    pipeline = resolve(template["Resources"][pipeline_id]["Properties"])
    store = pipeline["ArtifactStore"]
    key, via = store["EncryptionKey"]["Id"], {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    found: dict[str, Request] = {}
    for stage in pipeline["Stages"]:
        for action in stage["Actions"]:
            what = f"{stage['Name']}.{action['Name']}"
            for artifact in action.get("InputArtifacts", []):
                obj = _object(
                    store["Location"], f"{pipeline['Name'][:20]}/{artifact['Name'][:10]}/AbCdE12"
                )
                found[f"{what} reads {artifact['Name']}"] = Request("s3:GetObject", obj)
                found[f"{what} decrypts {artifact['Name']}"] = Request("kms:Decrypt", key, via)
            for artifact in action.get("OutputArtifacts", []):
                obj = _object(
                    store["Location"], f"{pipeline['Name'][:20]}/{artifact['Name'][:10]}/AbCdE12"
                )
                found[f"{what} writes {artifact['Name']}"] = Request("s3:PutObject", obj)
                found[f"{what} encrypts {artifact['Name']}"] = Request(
                    "kms:GenerateDataKey", key, via
                )
            found.update(_action_requests(template, resolve, what, action))
    return found


def _action_requests(
    template: Mapping[str, Any], resolve: Evaluator, what: str, action: dict[str, Any]
) -> dict[str, Request]:
    provider, configuration = action["ActionTypeId"]["Provider"], action.get("Configuration", {})
    found: dict[str, Request] = {}
    if provider == "CodeCommit":
        repository = _arn("codecommit", configuration["RepositoryName"])
        for name in (
            "GetBranch",
            "GetCommit",
            "GetRepository",
            "UploadArchive",
            "GetUploadArchiveStatus",
            "CancelUploadArchive",
        ):
            found[f"{what}: {name}"] = Request(f"codecommit:{name}", repository)
    elif provider == "CodeStarSourceConnection":
        connection = configuration["ConnectionArn"]
        found[f"{what}: use connection"] = Request(
            f"{connection.split(':')[2]}:UseConnection", connection
        )
    elif provider == "CodeBuild":
        project = _arn("codebuild", f"project/{configuration['ProjectName']}")
        found[f"{what}: start build"] = Request("codebuild:StartBuild", project)
        found[f"{what}: watch build"] = Request("codebuild:BatchGetBuilds", project)
    elif provider == "CloudFormation":
        assert configuration["ActionMode"] == "CREATE_UPDATE", configuration["ActionMode"]
        stack = _arn("cloudformation", f"stack/{configuration['StackName']}/0a1b2c3d-0000")
        for name in ("DescribeStacks", "CreateStack", "UpdateStack"):
            found[f"{what}: {name}"] = Request(f"cloudformation:{name}", stack)
        found[f"{what}: pass role"] = Request(
            "iam:PassRole",
            configuration["RoleArn"],
            {"iam:PassedToService": "cloudformation.amazonaws.com"},
        )
    elif provider == "S3" and action["ActionTypeId"]["Category"] == "Deploy":
        obj = _object(configuration["BucketName"], configuration["ObjectKey"])
        found[f"{what}: put object"] = Request("s3:PutObject", obj)
        found[f"{what}: encrypt object"] = Request(
            "kms:GenerateDataKey",
            configuration["KMSEncryptionKeyARN"],
            {"kms:ViaService": f"s3.{REGION}.amazonaws.com"},
        )
    elif provider == "Manual":
        topic = configuration["NotificationArn"]
        found[f"{what}: notify"] = Request("sns:Publish", topic)
        for body in template["Resources"].values():
            if body["Type"] != "AWS::SNS::Topic":
                continue
            properties = resolve(body["Properties"])
            if _arn("sns", properties["TopicName"]) == topic:
                via = {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}
                # KmsMasterKeyId may be a key id (Ref of a key): KMS authorizes the key's ARN.
                key = properties["KmsMasterKeyId"]
                key = key if key.startswith("arn:") else _arn("kms", f"key/{key}")
                found[f"{what}: topic data key"] = Request("kms:GenerateDataKey", key, via)
                found[f"{what}: topic decrypt"] = Request("kms:Decrypt", key, via)
    else:
        raise AssertionError(f"{what}: no derivation for a {provider} action")
    return found


def events_requests(
    template: Mapping[str, Any], resolve: Evaluator, role_id: str
) -> dict[str, Request]:
    """What EventBridge does as the role a rule's target names (EventBridge user guide,
    "Using IAM roles for targets": codepipeline:StartPipelineExecution for a pipeline,
    codebuild:StartBuild for a CodeBuild project)."""
    role = resolve({"GetAtt": f"{role_id}.Arn"})
    found: dict[str, Request] = {}
    for rule_id, body in template["Resources"].items():
        if body["Type"] != "AWS::Events::Rule" or not resolve.exists(rule_id):
            continue
        for target in resolve(body["Properties"]["Targets"]):
            if target.get("RoleArn") != role:
                continue
            arn = target["Arn"]
            service = arn.split(":")[2]
            action = {
                "codepipeline": "codepipeline:StartPipelineExecution",
                "codebuild": "codebuild:StartBuild",
            }[service]
            found[f"{rule_id} -> {target['Id']}"] = Request(action, arn)
    return found
