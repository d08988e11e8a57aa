"""What a SageMaker pipeline execution does as the pipeline's role, derived from its definition.

No moto run can show it: SageMaker Pipelines starts the jobs of each step as the pipeline role
(CreateProcessingJob, CreateHyperParameterTuningJob, CreateModelPackage, passing the role each
job runs as), reads property files for Std:JsonGet, and each job then runs as the role the
definition gives it: it reads its S3 inputs, writes its S3 outputs, pulls its image from ECR and
writes its logs and metrics. The SageMaker developer guide lists those: "IAM Access Management"
for Pipelines (iam:PassRole, Create and Describe of each job type, s3:GetObject for JsonGet) and
"How to use SageMaker AI execution roles" (CreateProcessingJob and CreateTrainingJob execution
role permissions: S3, ECR, CloudWatch Logs and metrics).

The definition's expressions are evaluated with the local executor's own evaluator
(`local.expressions`), over the properties each step's Describe* call would return.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from local.expressions import Scope, StepState, resolve
from tests.iam_policy import Request
from tests.platform_iam import image_pull, sagemaker_logs
from tests.runtime_iam import PARTITION, REGION, sagemaker_arn

EXECUTION_ID = "x1y2z3a4b5c6"
# Pipelines names a step's job pipelines-<execution id>-<step>-<random>; SageMaker lowercases
# the names in job ARNs.
_JOB_SUFFIX = "AbCdEf1234"
_VIA_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}


def _job_name(step: str) -> str:
    return f"pipelines-{EXECUTION_ID}-{step}-{_JOB_SUFFIX}"


def _s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class Derivation:
    """The requests of one execution, keyed by what each stands for."""

    def __init__(self, bucket_keys: dict[str, str]) -> None:
        self.bucket_keys = bucket_keys  # bucket -> the KMS key its objects are encrypted with
        self.requests: dict[str, Request] = {}

    def add(self, what: str, request: Request) -> None:
        self.requests[what] = request

    def read(self, what: str, uri: str, prefix: bool) -> None:
        """An S3Prefix input lists the prefix, then gets each object under it."""
        bucket, key = _s3(uri)
        if prefix:
            self.add(
                f"{what}: list",
                Request("s3:ListBucket", f"arn:{PARTITION}:s3:::{bucket}", {"s3:prefix": key}),
            )
        # A prefix that names no file is a folder: an object under it.
        obj = key if re.search(r"\.[a-z0-9]+$", key) else f"{key.rstrip('/')}/part-0.csv"
        self.add(f"{what}: get", Request("s3:GetObject", f"arn:{PARTITION}:s3:::{bucket}/{obj}"))
        if bucket in self.bucket_keys:
            self.add(f"{what}: decrypt", Request("kms:Decrypt", self.bucket_keys[bucket], _VIA_S3))

    def write(self, what: str, uri: str, file: str) -> None:
        bucket, key = _s3(uri)
        self.add(
            what, Request("s3:PutObject", f"arn:{PARTITION}:s3:::{bucket}/{key.rstrip('/')}/{file}")
        )
        if bucket in self.bucket_keys:
            self.add(
                f"{what}: encrypt",
                Request("kms:GenerateDataKey", self.bucket_keys[bucket], _VIA_S3),
            )

    def job_runs(self, what: str, kind: str, job: str, image: str) -> None:
        """What any job does as its role: pull its image, write its log and metrics."""
        self.requests.update(image_pull(what, image))
        group = f"/aws/sagemaker/{kind}"
        self.requests.update(sagemaker_logs(what, group, f"{job}/algo-1-1700000000", group))


def _steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step, those inside a Condition's branches too (either branch may run)."""
    for step in steps:
        yield step
        arguments = step.get("Arguments", {})
        if step["Type"] == "Condition":
            yield from _steps(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))


def _processing(derivation: Derivation, name: str, arguments: dict[str, Any], scope: Scope) -> None:
    job = _job_name(name)
    types = [arguments["ProcessingResources"]["ClusterConfig"]["InstanceType"]]
    derivation.add(
        f"{name}: start",
        Request(
            "sagemaker:CreateProcessingJob",
            sagemaker_arn("processing-job", job),
            {"sagemaker:InstanceTypes": types},
        ),
    )
    derivation.add(
        f"{name}: watch",
        Request("sagemaker:DescribeProcessingJob", sagemaker_arn("processing-job", job)),
    )
    derivation.add(
        f"{name}: pass role",
        Request(
            "iam:PassRole", arguments["RoleArn"], {"iam:PassedToService": "sagemaker.amazonaws.com"}
        ),
    )
    for item in arguments.get("ProcessingInputs", []):
        s3_input = item["S3Input"]
        derivation.read(
            f"{name}: input {item['InputName']}",
            s3_input["S3Uri"],
            s3_input["S3DataType"] == "S3Prefix",
        )
    for item in arguments["ProcessingOutputConfig"]["Outputs"]:
        derivation.write(
            f"{name}: output {item['OutputName']}", item["S3Output"]["S3Uri"], "part-0"
        )
    derivation.job_runs(name, "ProcessingJobs", job, arguments["AppSpecification"]["ImageUri"])
    scope.steps[name] = StepState(arguments)


def _tuning(derivation: Derivation, name: str, arguments: dict[str, Any], scope: Scope) -> None:
    # A tuning job's name is at most 32 characters: Pipelines shortens it.
    job = f"{EXECUTION_ID}-{name[:4]}-{_JOB_SUFFIX}"[:32]
    arn = sagemaker_arn("hyper-parameter-tuning-job", job)
    definitions = arguments["TrainingJobDefinitions"]
    types = sorted({d["HyperParameterTuningResourceConfig"]["InstanceType"] for d in definitions})
    derivation.add(
        f"{name}: start",
        Request("sagemaker:CreateHyperParameterTuningJob", arn, {"sagemaker:InstanceTypes": types}),
    )
    derivation.add(f"{name}: watch", Request("sagemaker:DescribeHyperParameterTuningJob", arn))
    # The step's TrainingJobSummaries property.
    derivation.add(
        f"{name}: trials", Request("sagemaker:ListTrainingJobsForHyperParameterTuningJob", arn)
    )
    summaries = []
    for definition in definitions:
        trial = f"{job}-001-{definition['DefinitionName'][:8]}"
        what = f"{name}: {definition['DefinitionName']} trial"
        derivation.add(
            f"{what}: pass role",
            Request(
                "iam:PassRole",
                definition["RoleArn"],
                {"iam:PassedToService": "sagemaker.amazonaws.com"},
            ),
        )
        for channel in definition["InputDataConfig"]:
            source = channel["DataSource"]["S3DataSource"]
            derivation.read(
                f"{what}: channel {channel['ChannelName']}",
                source["S3Uri"],
                source["S3DataType"] == "S3Prefix",
            )
        derivation.write(
            f"{what}: model",
            f"{definition['OutputDataConfig']['S3OutputPath']}/{trial}/output",
            "model.tar.gz",
        )
        derivation.job_runs(
            what, "TrainingJobs", trial, definition["AlgorithmSpecification"]["TrainingImage"]
        )
        summaries.append(
            {"TrainingJobName": trial, "TrainingJobDefinitionName": definition["DefinitionName"]}
        )
    scope.steps[name] = StepState(
        {**arguments, "HyperParameterTuningJobName": job, "TrainingJobSummaries": summaries}
    )


def _register(derivation: Derivation, name: str, arguments: dict[str, Any], version: int) -> None:
    group = arguments["ModelPackageGroupName"]
    context: dict[str, Any] = {"sagemaker:ModelApprovalStatus": arguments["ModelApprovalStatus"]}
    for key, value in arguments.get("CustomerMetadataProperties", {}).items():
        context[f"sagemaker:CustomerMetadataProperties/{key}"] = str(value)
    derivation.add(
        f"{name}: register",
        Request(
            "sagemaker:CreateModelPackage",
            sagemaker_arn("model-package", f"{group}/{version}"),
            context,
        ),
    )


def execution_requests(
    definition: dict[str, Any],
    parameters: dict[str, Any],
    bucket_keys: dict[str, str],
    registered_version: int = 1,
) -> dict[str, Request]:
    """Every request one execution of `definition` with `parameters` (over its defaults) makes
    as its roles, if every step runs."""
    derivation = Derivation(bucket_keys)
    values = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}

    def read_json(uri: str) -> Any:
        # Std:JsonGet reads the property file as the pipeline role.
        derivation.read(f"JsonGet {uri.rsplit('/', 1)[-1]}", uri, prefix=False)
        return {
            "register_metric": {"value": 1.0},
            "model_sha256": "b" * 64,
            "algorithm": "xgboost",
            "selection": {"chosen_trial": f"{EXECUTION_ID}-Tune-001-xgboost"},
        }

    scope = Scope({**values, **parameters}, {"PipelineExecutionId": EXECUTION_ID}, {}, read_json)
    for step in _steps(definition["Steps"]):
        name = step["Name"]
        if step["Type"] == "Condition":
            resolve(step["Arguments"]["Conditions"], scope, name)
            continue
        if step["Type"] == "Fail":
            continue
        arguments = resolve(step["Arguments"], scope, name)
        if step["Type"] == "Processing":
            _processing(derivation, name, arguments, scope)
            for prop in step.get("PropertyFiles", []):
                output = next(
                    o
                    for o in arguments["ProcessingOutputConfig"]["Outputs"]
                    if o["OutputName"] == prop["OutputName"]
                )
                uri = f"{output['S3Output']['S3Uri'].rstrip('/')}/{prop['FilePath']}"
                scope.steps[name] = StepState(
                    arguments, {**scope.steps[name].property_files, prop["PropertyFileName"]: uri}
                )
        elif step["Type"] == "Tuning":
            _tuning(derivation, name, arguments, scope)
        elif step["Type"] == "RegisterModel":
            _register(derivation, name, arguments, registered_version)
        else:
            raise AssertionError(f"step {name}: no derivation for step type {step['Type']}")
    return derivation.requests
