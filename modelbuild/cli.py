"""`pipeline` commands: write and validate a dataset's definition, validate a file, run on AWS.

Mounted into the project's `mme` CLI as `mme pipeline ...`; also runnable on its own as
`python -m modelbuild.cli ...`. The SDK and boto3 are imported only inside the commands, so
`mme --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from container.errors import InputError
from modelbuild import environment, naming
from modelbuild.cli_common import (
    HELP_OPTIONS,
    ProjectGroup,
    parameter_option,
    project_option,
)
from modelbuild.definition import typed_parameter

# Pipeline parameter overrides: option name = PipelineSettings field; unset keeps the registry's.
_OVERRIDES: list[tuple[str, Any, str]] = [
    ("processing_instance_type", str, "instance type of the preprocess and evaluate jobs"),
    ("training_instance_type", str, "instance type of each tuning trial"),
    ("inference_instance_type", str, "instance type the model package declares for serving"),
    ("max_jobs", int, "tuning trials in all (registry budget.max_jobs)"),
    ("max_parallel_jobs", int, "tuning trials at once (registry budget.max_parallel_jobs)"),
    ("tuning_strategy", str, "Bayesian or Random"),
    ("cv_folds", int, "cross-validation folds"),
    ("metric", str, "objective and registration metric"),
    ("threshold", click.FloatRange(0.0, 1.0), "register only if the holdout metric is >= this"),
    ("approval_status", str, "PendingManualApproval or Approved"),
    ("model_package_group", str, "model package group to register into"),
]


def _overrides(function: Callable[..., Any]) -> Callable[..., Any]:
    for name, kind, help_text in reversed(_OVERRIDES):
        function = click.option(f"--{name.replace('_', '-')}", name, type=kind, help=help_text)(
            function
        )
    return function


def _context(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        project_option,
        click.option(
            "--bucket",
            envvar=environment.ARTIFACT_BUCKET,
            help="project bucket [env ARTIFACT_BUCKET]",
        ),
        click.option(
            "--role-arn",
            envvar=environment.PIPELINE_ROLE_ARN,
            help="pipeline execution role [env SAGEMAKER_PIPELINE_ROLE_ARN]",
        ),
        click.option(
            "--region",
            envvar=[environment.REGION, environment.DEFAULT_REGION],
            default="us-east-1",
            show_default=True,
            help="AWS region [env AWS_REGION]",
        ),
        click.option(
            "--image-uri", envvar=environment.IMAGE_URI, help="the project image [env IMAGE_URI]"
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.group("pipeline", cls=ProjectGroup, context_settings=HELP_OPTIONS)
def pipeline() -> None:
    """The modelbuild SageMaker Pipeline: definitions, validation, runs."""


@pipeline.command("definition")
@click.argument("dataset")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="write here")
@click.option("--input-data-url", help="s3:// URI of the CSV (default: its staged location)")
@_context
@_overrides
def definition(
    dataset: str,
    output: Path | None,
    input_data_url: str | None,
    project_name: str,
    bucket: str | None,
    role_arn: str | None,
    region: str,
    image_uri: str | None,
    **overrides: Any,
) -> None:
    """Build DATASET's pipeline definition offline, validate it, print or write the JSON.

    Without AWS settings it uses local stand-ins (bucket, role, image) that pass validation.
    """
    from modelbuild.pipeline import (
        PipelineSettings,
        ProjectContext,
        build_definition,
        checked,
        definition_text,
    )
    from modelbuild.run import staged_input
    from modelbuild.suggest import registered_dataset
    from modelbuild.validate import ensure_valid

    entry = registered_dataset(dataset)
    context = checked(
        ProjectContext,
        {
            "project_name": project_name,
            "bucket": bucket or naming.local_bucket(project_name),
            "role_arn": role_arn or naming.local_role_arn(project_name),
            "region": region,
        },
    )
    settings = PipelineSettings.for_dataset(
        entry,
        project_name=context.project_name,
        input_data_url=input_data_url or staged_input(entry, context.bucket).uri,
        image_uri=image_uri or naming.LOCAL_IMAGE_URI,
        **overrides,
    )
    built = build_definition(settings, context)
    ensure_valid(built, dataset=dataset)
    text = definition_text(built)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        click.echo(f"{dataset}: wrote a valid definition to {output}", err=True)


@pipeline.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@parameter_option(
    "a value an execution would pass (repeatable), typed as FILE declares it (a Boolean is "
    "true or false); others are checked with their defaults"
)
def validate(file: Path, parameters: dict[str, str]) -> None:
    """Check a definition JSON FILE against the SageMaker API shapes, offline."""
    from modelbuild.validate import PARAMETER_TYPES, validate_definition

    try:
        document = json.loads(file.read_text())
    except ValueError as error:
        raise click.ClickException(f"{file}: not JSON ({error})") from None
    declared = (
        {p.get("Name"): p.get("Type") for p in (document.get("Parameters") or [])}
        if isinstance(document, dict)
        else {}
    )
    values: dict[str, Any] = {}
    for name, raw in parameters.items():
        # An undeclared name (or type) stays text: the validator reports it with the rest.
        kind = declared.get(name)
        try:
            values[name] = typed_parameter(name, kind, raw) if kind in PARAMETER_TYPES else raw
        except InputError as error:
            raise click.BadParameter(error.describe(), param_hint="--parameter") from None
    problems = validate_definition(document, values)
    if problems:
        raise click.ClickException(
            f"{file}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    click.echo(f"{file}: valid")


def _only(value: str) -> list[str]:
    """The --only list; 'all' (or nothing) means every registered dataset."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    return [] if names in ([], [naming.ALL_DATASETS]) else names


@pipeline.command("run")
@click.argument("datasets", nargs=-1)
@click.option("--wait/--no-wait", default=False, help="wait for the executions and report them")
@click.option("--poll-seconds", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option("--timeout-minutes", type=click.FloatRange(min=1), default=420.0, show_default=True)
@click.option("--project-id", envvar=environment.PROJECT_ID, help="[env SAGEMAKER_PROJECT_ID]")
@click.option(
    "--only",
    envvar=naming.RETRAIN_DATASETS_ENV,
    default=naming.ALL_DATASETS,
    show_default=True,
    help="without DATASET arguments: comma-separated datasets, or 'all' "
    f"[env {naming.RETRAIN_DATASETS_ENV}, the modelbuild CodePipeline's "
    f"{naming.RETRAIN_DATASETS_VARIABLE} variable]",
)
@_context
@_overrides
def run(
    datasets: tuple[str, ...],
    only: str,
    wait: bool,
    poll_seconds: float,
    timeout_minutes: float,
    project_id: str | None,
    project_name: str,
    bucket: str | None,
    role_arn: str | None,
    region: str,
    image_uri: str | None,
    **overrides: Any,
) -> None:
    """Upsert and start the pipeline of each DATASET (default: every registered one) on AWS."""
    from botocore.exceptions import BotoCoreError, ClientError

    from modelbuild import run as runner
    from modelbuild.aws_calls import aws_problem
    from modelbuild.datasets import default_registry
    from modelbuild.suggest import registered_dataset

    missing = [
        f"--{flag} (or {env})"
        for flag, env, value in (
            ("bucket", environment.ARTIFACT_BUCKET, bucket),
            ("role-arn", environment.PIPELINE_ROLE_ARN, role_arn),
            ("image-uri", environment.IMAGE_URI, image_uri),
        )
        if not value
    ]
    if missing:
        raise click.UsageError(f"a run on AWS needs {', '.join(missing)}")
    try:
        names = list(datasets) or _only(only)
        entries = [registered_dataset(n) for n in names] or list(default_registry().values())
        request = runner.RunRequest(
            datasets=entries,
            project_name=project_name,
            project_id=project_id,
            bucket=str(bucket),
            role_arn=str(role_arn),
            region=region,
            image_uri=str(image_uri),
            overrides=overrides,
            source_version=os.environ.get(environment.SOURCE_VERSION),
            every=not names,
        )
        s3, sagemaker = runner.clients(region)
        outcomes = runner.start_all(request, s3, sagemaker, log=click.echo)
        if wait:
            runner.wait_for(
                sagemaker,
                outcomes,
                poll_seconds=poll_seconds,
                timeout_seconds=timeout_minutes * 60,
                log=click.echo,
            )
    except (ClientError, BotoCoreError) as error:
        raise aws_problem(error) from None
    click.echo(runner.summary(outcomes))
    failed = [o for o in outcomes if o.failed]
    for outcome in failed:
        for step, reason in outcome.failures:
            click.echo(
                f"error: dataset '{outcome.dataset}': step {step} failed: {reason}", err=True
            )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    pipeline(prog_name="python -m modelbuild.cli")
