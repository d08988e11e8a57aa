"""Retraining on drift: what the operations CodeBuild project runs when a drift alarm fires.

The project template's per-dataset drift alarm (on the MME/Drift DriftedFeatures metric the
scheduled drift job publishes) goes into ALARM; an EventBridge rule starts the operations project
with the alarm's name and state-change time; this command maps the alarm to its dataset and
starts the modelbuild CodePipeline with that dataset alone in its Datasets variable. The
pipeline re-stages the dataset's data from its source, so new data means a new model (unchanged
data hits the SageMaker pipeline cache and registers nothing new).

    python -m modeldeploy.operations retrain --alarm NAME [--alarm-time ISO]   (env MME_DRIFT_ALARM)
    python -m modeldeploy.operations retrain --dataset wine

EventBridge delivers at least once: the alarm's name and state-change time make the request
token, so a duplicate delivery does not start a second retrain.
"""

from __future__ import annotations

import hashlib
from typing import Any

import click

from container.errors import InputError
from modelbuild import naming as build_naming
from modelbuild.cli_common import HELP_OPTIONS, ProjectGroup
from modeldeploy import environment, naming

ALARM_TIME_ENV = environment.DRIFT_ALARM_TIME
# CodePipeline's clientRequestToken: [a-zA-Z0-9-]+, at most 128 characters.
_TOKEN_LENGTH = 64


def dataset_for(project: str, alarm: str | None, dataset: str | None) -> str:
    """The dataset to retrain: named directly, or the one the project's drift alarm watches."""
    if alarm is None and dataset is not None:
        return dataset
    if alarm is None or dataset is not None:
        raise InputError("name exactly one of --alarm (a drift alarm) or --dataset")
    found = naming.dataset_of_drift_alarm(project, naming.MONITORED_STAGE, alarm)
    if found is None:
        expected = naming.drift_alarm_name(project, naming.MONITORED_STAGE, "<dataset>")
        raise InputError(f"alarm '{alarm}' is not a drift alarm of project {project} ({expected})")
    return found


def request_token(alarm: str | None, alarm_time: str | None, dataset: str) -> str | None:
    """One token per alarm transition; none for a manual retrain, which always starts."""
    if alarm is None or not alarm_time:
        return None
    digest = hashlib.sha256(f"{alarm}\n{alarm_time}\n{dataset}".encode()).hexdigest()
    return digest[:_TOKEN_LENGTH]


def start_retrain(
    codepipeline: Any, project: str, dataset: str, token: str | None = None
) -> tuple[str, str]:
    """Start the modelbuild CodePipeline for one dataset; returns (pipeline, execution id)."""
    pipeline = build_naming.codepipeline_name(project, build_naming.MODELBUILD_REPO)
    request: dict[str, Any] = {
        "name": pipeline,
        "variables": [{"name": build_naming.RETRAIN_DATASETS_VARIABLE, "value": dataset}],
    }
    if token is not None:
        request["clientRequestToken"] = token
    return pipeline, codepipeline.start_pipeline_execution(**request)["pipelineExecutionId"]


@click.group(cls=ProjectGroup, context_settings=HELP_OPTIONS)
def operations() -> None:
    """Operations the scheduled operations job runs besides `endpoint drift` and `canary`."""


@operations.command()
@click.option("--alarm", envvar=naming.DRIFT_ALARM_ENV, help="the drift alarm that fired")
@click.option("--alarm-time", envvar=ALARM_TIME_ENV, help="its state-change time")
@click.option("--dataset", help="retrain this dataset (instead of --alarm)")
@click.option(
    "--project-name", envvar=environment.PROJECT_NAME, default=naming.DEFAULT_PROJECT_NAME
)
def retrain(
    alarm: str | None, alarm_time: str | None, dataset: str | None, project_name: str
) -> None:
    """Start the modelbuild CodePipeline for the dataset of a drift alarm (or --dataset)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        naming.check_project_name(project_name)
        name = dataset_for(project_name, alarm or None, dataset)
        token = request_token(alarm or None, alarm_time, name)
        pipeline, execution = start_retrain(boto3.client("codepipeline"), project_name, name, token)
    except (ClientError, BotoCoreError) as error:
        raise click.ClickException(f"could not start the modelbuild pipeline: {error}") from None
    click.echo(f"{name}: started {pipeline} execution {execution} (retrain on drift)")


if __name__ == "__main__":
    operations(prog_name="python -m modeldeploy.operations")
