"""The one source of truth for names: pipelines, model package groups, S3 keys, steps, parameters.

Everything that names an AWS resource or a pipeline element is derived here, so the pipeline
builder, the run command, the local runtime, the deploy side and the project template agree.
Each derived name is checked against the SageMaker limit it must respect; a name that would be
rejected by AWS is rejected here first, naming the problem.

Scheme (project `mlops`, dataset `breast-cancer`):
    pipeline               mlops-modelbuild-breast-cancer   (one pipeline per dataset)
    model package group    mlops-breast-cancer
    staged data            s3://<bucket>/datasets/breast-cancer/<sha256>.csv
    pipeline outputs       s3://<bucket>/pipelines/breast-cancer/<execution-id>/<output>
    tuning trial models    s3://<bucket>/pipelines/breast-cancer/tuning/<job>/output/model.tar.gz
"""

from __future__ import annotations

import re
from typing import Final

from container.errors import InputError
from container.layout import REPORT_FILE

# SageMaker's own limits (botocore service model: ProjectEntityName, PipelineName, EntityName).
# The project name is SageMaker's ProjectEntityName without capitals: SageMaker lowercases the
# ARNs of the endpoints, pipelines and model packages named after the project, while IAM compares
# ARNs case-sensitively, so the project's roles could not reach a "Churn-dev" endpoint (ARN
# .../endpoint/churn-dev) and CloudFormation has no function that lowercases a name.
PROJECT_NAME_PATTERN: Final = r"[a-z0-9](-*[a-z0-9]){0,31}"
PROJECT_NAME_MAX_LENGTH: Final = 32
PIPELINE_NAME_PATTERN: Final = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}"
PIPELINE_NAME_MAX_LENGTH: Final = 256
MODEL_PACKAGE_GROUP_PATTERN: Final = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
MODEL_PACKAGE_GROUP_MAX_LENGTH: Final = 63
# S3 bucket naming rules (general purpose buckets), the subset that matters for a typo.
BUCKET_PATTERN: Final = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"

# Used when no SageMaker project is given (`SAGEMAKER_PROJECT_NAME` unset): local runs and
# `mme pipeline definition` on a laptop.
DEFAULT_PROJECT_NAME: Final = "mme"

# Stand-ins where no AWS account exists (local runs, `mme pipeline definition` offline): valid by
# SageMaker's patterns, so the same validation applies, and obviously not real.
LOCAL_ACCOUNT: Final = "000000000000"
LOCAL_IMAGE_URI: Final = "sagemaker-mme-container:local"

PIPELINE_INFIX: Final = "modelbuild"
STAGED_DATA_PREFIX: Final = "datasets"
PIPELINE_OUTPUT_PREFIX: Final = "pipelines"
TUNING_OUTPUT_FOLDER: Final = "tuning"

# Tags SageMaker Projects uses to show a resource in the project's Studio view.
PROJECT_NAME_TAG: Final = "sagemaker:project-name"
PROJECT_ID_TAG: Final = "sagemaker:project-id"
DATASET_TAG: Final = "mme:dataset"


class Steps:
    """Step names as they appear in the definition (max 64 characters, [A-Za-z0-9-_])."""

    PREPROCESS: Final = "Preprocess"
    TUNE: Final = "Tune"
    EVALUATE: Final = "Evaluate"
    CHECK: Final = "CheckMetric"
    # Inside CheckMetric's if-branch: register only a model that differs from the group's
    # latest version; its empty else-branch ends an unchanged run successfully, registering
    # nothing (a Fail step would mark the execution Failed and notify the project).
    CHECK_CHANGED: Final = "CheckModelChanged"
    # The SDK's ModelStep names its step "<name>-RegisterModel"; this is the resulting name.
    REGISTER: Final = "Register-RegisterModel"
    FAIL: Final = "MetricBelowThreshold"


class Outputs:
    """Processing output names: the keys of ProcessingOutputConfig.Outputs['...']."""

    TRAIN: Final = "train"
    TEST: Final = "test"
    EVALUATION: Final = "evaluation"


# The evaluation report as a pipeline property file: the condition step's JsonGet reads it.
EVALUATION_PROPERTY_FILE: Final = "EvaluationReport"
EVALUATION_REPORT_FILE: Final = REPORT_FILE


class Params:
    """Pipeline parameter names (max 256 characters, [A-Za-z0-9-_])."""

    DATASET: Final = "DatasetName"
    INPUT_DATA: Final = "InputDataUrl"
    IMAGE: Final = "ImageUri"
    PROCESSING_INSTANCE: Final = "ProcessingInstanceType"
    TRAINING_INSTANCE: Final = "TrainingInstanceType"
    INFERENCE_INSTANCE: Final = "InferenceInstanceType"
    TARGET: Final = "TargetColumn"
    POSITIVE_CLASS: Final = "PositiveClass"
    CATEGORICAL: Final = "CategoricalColumns"
    TEST_SIZE: Final = "TestSize"
    RANDOM_STATE: Final = "RandomState"
    CV_FOLDS: Final = "CvFolds"
    METRIC: Final = "ObjectiveMetric"
    STRATEGY: Final = "TuningStrategy"
    MAX_JOBS: Final = "MaxTuningJobs"
    MAX_PARALLEL_JOBS: Final = "MaxParallelTuningJobs"
    THRESHOLD: Final = "RegistrationThreshold"
    APPROVAL_STATUS: Final = "ModelApprovalStatus"
    MODEL_PACKAGE_GROUP: Final = "ModelPackageGroupName"
    # The group's latest version and the model checksum it carries, looked up by the run command
    # (modelbuild.run on AWS, `mme run` locally) when it starts the execution. The defaults ("",
    # 0) mean "no version to compare with": the execution registers what it built.
    LATEST_MODEL_SHA256: Final = "LatestModelSha256"
    LATEST_MODEL_VERSION: Final = "LatestModelVersion"


# The model package's CustomerMetadataProperties key holding the sha256 of its model file (the
# checksum the artifact's signature carries), written by the pipeline's register step; the next
# run compares its best model with the latest version's value.
MODEL_SHA256_METADATA_KEY: Final = "model-sha256"


def _check(kind: str, value: str, pattern: str, max_length: int) -> str:
    if len(value) > max_length:
        raise InputError(
            f"{kind} '{value}' is {len(value)} characters long; the limit is {max_length}"
        )
    if not re.fullmatch(pattern, value):
        raise InputError(f"{kind} '{value}' does not match the SageMaker pattern {pattern}")
    return value


def check_project_name(project: str) -> str:
    if project != project.lower():
        raise InputError(
            f"project name '{project}' has capital letters; use '{project.lower()}': SageMaker "
            "lowercases the ARNs of the endpoints, pipelines and model packages named after the "
            "project and IAM matches ARNs case-sensitively, so the project's own roles could "
            "not reach them"
        )
    return _check("project name", project, PROJECT_NAME_PATTERN, PROJECT_NAME_MAX_LENGTH)


def check_bucket(bucket: str) -> str:
    if not re.fullmatch(BUCKET_PATTERN, bucket) or ".." in bucket:
        raise InputError(
            f"bucket name '{bucket}' is not a valid S3 bucket name "
            "(3-63 lowercase letters, digits, dots and hyphens; no s3:// prefix)"
        )
    return bucket


def local_bucket(project: str) -> str:
    return check_bucket(f"{check_project_name(project).lower()}-local-artifacts")


def local_role_arn(project: str) -> str:
    return f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{check_project_name(project)}-local-pipeline"


def pipeline_name(project: str, dataset: str) -> str:
    check_project_name(project)
    return _check(
        "pipeline name",
        f"{project}-{PIPELINE_INFIX}-{dataset}",
        PIPELINE_NAME_PATTERN,
        PIPELINE_NAME_MAX_LENGTH,
    )


def check_model_package_group_name(name: str) -> str:
    return _check(
        "model package group name",
        name,
        MODEL_PACKAGE_GROUP_PATTERN,
        MODEL_PACKAGE_GROUP_MAX_LENGTH,
    )


def model_package_group_name(project: str, dataset: str) -> str:
    check_project_name(project)
    return check_model_package_group_name(f"{project}-{dataset}")


def staged_data_key(dataset: str, sha256: str) -> str:
    """Content-addressed: unchanged data keeps its key, so cached pipeline steps stay valid."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise InputError(f"'{sha256}' is not a hex sha256 digest", dataset=dataset)
    return f"{STAGED_DATA_PREFIX}/{dataset}/{sha256}.csv"


def pipeline_output_prefix(dataset: str) -> str:
    """Key prefix of a dataset's processing outputs; the execution id and output name follow."""
    return f"{PIPELINE_OUTPUT_PREFIX}/{dataset}"


def tuning_output_prefix(dataset: str) -> str:
    """Key prefix of the tuning trials' artifacts: <prefix>/<training-job>/output/model.tar.gz."""
    return f"{PIPELINE_OUTPUT_PREFIX}/{dataset}/{TUNING_OUTPUT_FOLDER}"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if match is None:
        raise InputError(f"'{uri}' is not an s3://bucket/key URI")
    return match.group(1), match.group(2)


# ---------------------------------------------------------------------------------------------
# Project template resources (template/project.yml). Appended for issue 6: the CloudFormation
# template spells these with !Sub, and tests/test_template.py proves each spelling equals what
# these functions compute, so the template, the IAM scoping and the code cannot drift apart.
# ---------------------------------------------------------------------------------------------

# IAM path of every role the project template creates: the launch role may create and pass
# roles under this path only (arn:...:role/sagemaker-mme/*), never arbitrary roles.
ROLE_PATH: Final = "/sagemaker-mme/"
# SageMaker project ids look like p-abcdefghij12; the template's parameter pattern.
PROJECT_ID_PATTERN: Final = r"[a-z0-9](-*[a-z0-9]){0,19}"
# A parameter of the template can name this many datasets (one model package group each):
# CloudFormation has no loop without a transform, so each dataset takes one slot.
MAX_TEMPLATE_DATASETS: Final = 8
# Seed repositories and their CodeBuild/CodePipeline purposes.
MODELBUILD_REPO: Final = "modelbuild"
MODELDEPLOY_REPO: Final = "modeldeploy"
# Role purposes (the role name's last part) and what assumes each role.
ROLE_PURPOSES: Final = {
    "image-build": "codebuild.amazonaws.com",
    "modelbuild": "codebuild.amazonaws.com",
    "modeldeploy": "codebuild.amazonaws.com",
    "pipeline": "sagemaker.amazonaws.com",
    "model": "sagemaker.amazonaws.com",
    "codepipeline": "codepipeline.amazonaws.com",
    "cloudformation": "cloudformation.amazonaws.com",
    "events": "events.amazonaws.com",
    "operations": "codebuild.amazonaws.com",
}
# CodeBuild project purposes: the image, the modelbuild run, the modeldeploy build and tests,
# and the scheduled operations (drift, canary judgement, retraining on drift).
CODEBUILD_PURPOSES: Final = (
    "image",
    "modelbuild",
    "modeldeploy-build",
    "modeldeploy-test",
    "operations",
)
# The modeldeploy CodePipeline's stages, in order (DeployDev/DeployProd hold the stack update
# and then the models + smoke test; ApproveProd is the manual gate).
MODELDEPLOY_STAGES: Final = ("Source", "Build", "DeployDev", "ApproveProd", "DeployProd")
MODELBUILD_STAGES: Final = ("Source", "BuildImage", "RunPipelines")
# The modelbuild CodePipeline's variable naming the datasets an execution retrains (a drift
# alarm retrains one dataset; a push or the retrain schedule leaves the default: all of them),
# handed to `python -m modelbuild.run` in this environment variable.
RETRAIN_DATASETS_VARIABLE: Final = "Datasets"
RETRAIN_DATASETS_ENV: Final = "MME_RETRAIN_DATASETS"
ALL_DATASETS: Final = "all"


def check_project_id(project_id: str) -> str:
    if not re.fullmatch(PROJECT_ID_PATTERN, project_id):
        raise InputError(
            f"project id '{project_id}' must be 1-20 lowercase letters, digits and hyphens "
            "(SageMaker generates ids like p-abcdefghij12)"
        )
    return project_id


def artifact_bucket_name(project_id: str) -> str:
    """The project bucket; the id (lowercase, unique) keeps it a valid, unlikely-taken name."""
    return check_bucket(f"sagemaker-project-{check_project_id(project_id)}")


def image_repository_name(project_id: str) -> str:
    """The ECR repository: ECR names must be lowercase, project names need not be."""
    return f"sagemaker-project-{check_project_id(project_id)}"


def image_uri_parameter(project: str) -> str:
    """SSM parameter the image build writes and the modeldeploy build reads (the serving image)."""
    return f"/sagemaker-mme/{check_project_name(project)}/image-uri"


def repository_name(project: str, repo: str) -> str:
    """CodeCommit repository (CodeCommit mode): sagemaker-<project>-modelbuild|modeldeploy."""
    if repo not in (MODELBUILD_REPO, MODELDEPLOY_REPO):
        raise InputError(f"repository kind '{repo}' is not {MODELBUILD_REPO} or {MODELDEPLOY_REPO}")
    return f"sagemaker-{check_project_name(project)}-{repo}"


def codepipeline_name(project: str, repo: str) -> str:
    return repository_name(project, repo)


def codebuild_project_name(project: str, purpose: str) -> str:
    if purpose not in CODEBUILD_PURPOSES:
        raise InputError(f"CodeBuild purpose '{purpose}' is not one of {CODEBUILD_PURPOSES}")
    return f"sagemaker-{check_project_name(project)}-{purpose}"


def role_name(project_id: str, purpose: str) -> str:
    """IAM role names are global to the account: the project id, unique, keeps them apart."""
    if purpose not in ROLE_PURPOSES:
        raise InputError(f"role purpose '{purpose}' is not one of {sorted(ROLE_PURPOSES)}")
    name = f"sagemaker-mme-{check_project_id(project_id)}-{purpose}"
    if len(name) > 64:
        raise InputError(f"role name '{name}' is longer than IAM's 64 characters")
    return name


def role_arn(account: str, project_id: str, purpose: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:role{ROLE_PATH}{role_name(project_id, purpose)}"


def notification_topic_name(project: str) -> str:
    return f"sagemaker-{check_project_name(project)}-notifications"


def event_rule_name(project: str, purpose: str) -> str:
    return f"sagemaker-{check_project_name(project)}-{purpose}"
