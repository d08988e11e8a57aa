"""Deploy-side names: stage prefixes, routing-table keys, endpoints and stacks.

Names shared with the build side (project, bucket, model package group) come from
`modelbuild.naming`, the one source of truth; this module only adds what deployment introduces.

Scheme (project `mlops`, stage `dev`, dataset `breast-cancer`, package version 3):
    multi-model prefix   s3://<bucket>/dev/models/            (the MME model's ModelDataUrl)
    artifact             s3://<bucket>/dev/models/breast-cancer/3-<model sha256>.tar.gz
    target model         breast-cancer/3-<model sha256>.tar.gz   (relative to the prefix)
    routing table        s3://<bucket>/dev/routing/live.json      (outside the model prefix)
    table revisions      s3://<bucket>/dev/routing/revisions/<n>.json
    endpoint             mlops-dev
    endpoint stack       sagemaker-mlops-deploy-dev
    inference log        mlops-dev-inference-log                  (DynamoDB, per stage)

A version key carries the full sha256 of the model file (the one the pipeline recorded in the
registry, checked by the deploy) as well as the package version: a different model never reuses a
key (SageMaker may keep serving an overwritten key from its cache), and the serving container
checks the model file against the key before it unpickles it (`container.provenance`).
"""

from __future__ import annotations

import re
from typing import Final

from container.errors import InputError
from container.provenance import SHA256_PATTERN, routed_file_name
from modelbuild.naming import (
    DEFAULT_PROJECT_NAME,
    LOCAL_ACCOUNT,
    MODEL_SHA256_METADATA_KEY,
    check_bucket,
    check_project_name,
    local_bucket,
    model_package_group_name,
    s3_uri,
    split_s3_uri,
)
from modeldeploy import environment

__all__ = [
    "DEFAULT_PROJECT_NAME",
    "LOCAL_ACCOUNT",
    "MODEL_SHA256_METADATA_KEY",
    "STAGES",
    "artifact_key",
    "check_stage",
    "dataset_of_group",
    "endpoint_name",
    "inference_log_table",
    "local_bucket",
    "model_package_group_name",
    "model_prefix_uri",
    "routing_revision_uri",
    "routing_table_uri",
    "s3_uri",
    "split_s3_uri",
    "stack_name",
    "target_model",
]

# The stages the modeldeploy pipeline walks through, in order; the manual gate sits between.
STAGES: Final = ("dev", "prod")
STAGE_PATTERN: Final = r"[a-z][a-z0-9]{0,15}"
# SageMaker EndpointName: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}.
ENDPOINT_NAME_PATTERN: Final = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
# CloudFormation stack names: letters, digits and hyphens, starting with a letter, <= 128.
STACK_NAME_PATTERN: Final = r"[a-zA-Z][-a-zA-Z0-9]{0,127}"
MODELS_FOLDER: Final = "models"
ROUTING_FOLDER: Final = "routing"
ROUTING_LIVE_FILE: Final = "live.json"
ROUTING_REVISIONS_FOLDER: Final = "revisions"
# The production variant the endpoint stack creates and the autoscaling target names.
VARIANT_NAME: Final = "AllTraffic"


def check_stage(stage: str) -> str:
    if not re.fullmatch(STAGE_PATTERN, stage):
        raise InputError(
            f"stage '{stage}' must be 1-16 lowercase letters and digits, starting with a letter "
            f"(the pipeline's stages are {', '.join(STAGES)})"
        )
    return stage


def model_prefix_uri(bucket: str, stage: str) -> str:
    """The multi-model endpoint's ModelDataUrl: every target model is a key below it."""
    return s3_uri(check_bucket(bucket), f"{check_stage(stage)}/{MODELS_FOLDER}/")


def target_model(dataset: str, package_version: int, model_sha256: str) -> str:
    """`<dataset>/<version>-<model file sha256>.tar.gz`: the serving side reads the digest back
    (`container.provenance.routed_model_sha256`) and loads only a model file that has it."""
    if not SHA256_PATTERN.fullmatch(model_sha256):
        raise InputError(f"'{model_sha256}' is not a hex sha256 digest", dataset=dataset)
    if package_version < 1:
        raise InputError(
            f"model package version {package_version} is not positive", dataset=dataset
        )
    return f"{dataset}/{routed_file_name(package_version, model_sha256)}"


def artifact_key(stage: str, target: str) -> str:
    return f"{check_stage(stage)}/{MODELS_FOLDER}/{target}"


def routing_table_uri(bucket: str, stage: str) -> str:
    return s3_uri(
        check_bucket(bucket), f"{check_stage(stage)}/{ROUTING_FOLDER}/{ROUTING_LIVE_FILE}"
    )


def routing_revision_uri(bucket: str, stage: str, revision: int) -> str:
    return s3_uri(
        check_bucket(bucket),
        f"{check_stage(stage)}/{ROUTING_FOLDER}/{ROUTING_REVISIONS_FOLDER}/{revision:08d}.json",
    )


def endpoint_name(project: str, stage: str) -> str:
    name = f"{check_project_name(project)}-{check_stage(stage)}"
    if not re.fullmatch(ENDPOINT_NAME_PATTERN, name):
        raise InputError(f"endpoint name '{name}' does not match {ENDPOINT_NAME_PATTERN}")
    return name


def inference_log_table(project: str, stage: str) -> str:
    """The stage's DynamoDB inference log (created by the endpoint stack)."""
    return f"{endpoint_name(project, stage)}-inference-log"


def stack_name(project: str, stage: str) -> str:
    name = f"sagemaker-{check_project_name(project)}-deploy-{check_stage(stage)}"
    if not re.fullmatch(STACK_NAME_PATTERN, name):
        raise InputError(f"stack name '{name}' does not match {STACK_NAME_PATTERN}")
    return name


def dataset_of_group(project: str, group: str) -> str | None:
    """The dataset a model package group belongs to, or None if the group is not the project's."""
    prefix = f"{check_project_name(project)}-"
    if not group.startswith(prefix) or len(group) == len(prefix):
        return None
    return group[len(prefix) :]


# ---------------------------------------------------------------------------------------------
# The project template's modeldeploy CodePipeline (template/project.yml). Appended for issue 6;
# tests/test_template.py checks the template against these.
# ---------------------------------------------------------------------------------------------

# The environment variable buildspecs/modeldeploy.yml switches on, per pipeline action.
DEPLOY_STAGE_ENV: Final = environment.DEPLOY_STAGE
# The build action's output: what each CloudFormation deploy action reads.
ENDPOINT_TEMPLATE_FILE: Final = "endpoint.yml"
# The build action's variable namespace and the variable it exports ("true"/"false",
# `modeldeploy.readiness`): the deploy stages' entry conditions skip them unless it is "true".
BUILD_VARIABLES_NAMESPACE: Final = "BuildVariables"
DEPLOY_READY_VARIABLE: Final = environment.DEPLOY_READY
# The project's SNS topic, given to the build, which hands it to the endpoint stack's alarms.
ALARM_TOPIC_ENV: Final = environment.ALARM_TOPIC_ARN


def config_export_file(stage: str) -> str:
    """The TemplateConfiguration file `python -m modeldeploy.cli build` writes for a stage."""
    return f"{check_stage(stage)}-config-export.json"


# ---------------------------------------------------------------------------------------------
# Scheduled operations (issue 7): the project template's operations CodeBuild project runs the
# drift job, the canary judgement and retraining on drift; tests/test_template.py checks the
# template's spellings against these.
# ---------------------------------------------------------------------------------------------

# The modeldeploy repository as last built by its pipeline: the operations project's source,
# so scheduled jobs run the same code as the deploys.
OPERATIONS_SOURCE_KEY: Final = "modeldeploy/operations/source.zip"
DRIFT_FOLDER: Final = "drift"
# Which operation a build of the operations project runs (buildspecs/operations.yml).
OPERATION_ENV: Final = environment.OPERATION
OPERATIONS: Final = environment.OPERATIONS
# The alarm state change a retrain is started for (set by the EventBridge rule).
DRIFT_ALARM_ENV: Final = environment.DRIFT_ALARM
# The stage whose drift alarms notify and retrain: real traffic reaches prod.
MONITORED_STAGE: Final = STAGES[-1]


def drift_report_uri(bucket: str, stage: str, run: str) -> str:
    """Where one drift run's reports go: <stage>/drift/<run>/<dataset>/..., beside the stage's
    routing table, outside its model prefix."""
    if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", run):
        raise InputError(f"drift run id '{run}' must be 1-64 letters, digits and hyphens")
    return s3_uri(check_bucket(bucket), f"{check_stage(stage)}/{DRIFT_FOLDER}/{run}")


def drift_alarm_prefix(project: str, stage: str) -> str:
    return f"sagemaker-{check_project_name(project)}-{check_stage(stage)}-drift-"


def drift_alarm_name(project: str, stage: str, dataset: str) -> str:
    """The per-dataset alarm on the MME/Drift DriftedFeatures metric."""
    return f"{drift_alarm_prefix(project, stage)}{dataset}"


def dataset_of_drift_alarm(project: str, stage: str, alarm: str) -> str | None:
    """The dataset a drift alarm watches, or None if the alarm is not the project's."""
    prefix = drift_alarm_prefix(project, stage)
    if not alarm.startswith(prefix) or len(alarm) == len(prefix):
        return None
    return alarm[len(prefix) :]
