"""What the `endpoint` commands share: where they act (options and backend), stage and dataset
names, and how a deploy report is printed."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from modelbuild.cli_common import home_option, project_option
from modelbuild.did_you_mean import unknown
from modeldeploy import environment, naming
from modeldeploy.backend import Backends, DeployBackend
from modeldeploy.deploy import DeployReport

DATASETS_ENV = environment.DATASETS
# Set by the project template on the modeldeploy CodeBuild project, so canary mode is switched
# on without a buildspec change.
CANARY_ENV = environment.CANARY
AWS_ENV = environment.ON_AWS
BUCKET_ENV = environment.ARTIFACT_BUCKET

F = TypeVar("F", bound=Callable[..., Any])


def target_options(function: F) -> F:
    """--home, --project-name, --aws, --bucket: where the command acts. The command receives
    them as one `target: DeployBackend` (`backend`), built before its body runs, so no command
    repeats the four parameters or the call that turns them into a backend."""

    @functools.wraps(function)
    def with_target(
        *args: Any, home: Path, project_name: str, aws: bool, bucket: str | None, **kwargs: Any
    ) -> Any:
        target = backend(click.get_current_context(), home, project_name, aws, bucket)
        return function(*args, target=target, **kwargs)

    command = click.option(
        "--bucket",
        envvar=BUCKET_ENV,
        help=f"project bucket with --aws [env {BUCKET_ENV}]; locally <project>-local-artifacts",
    )(with_target)
    command = click.option(
        "--aws",
        is_flag=True,
        envvar=AWS_ENV,
        help=f"act on AWS (S3 + SageMaker) instead of the local runtime [env {AWS_ENV}]",
    )(command)
    return cast(F, home_option(project_option(command)))


def backend(
    ctx: click.Context, home: Path, project_name: str, aws: bool, bucket: str | None
) -> DeployBackend:
    """The backend the command's options name, built by the `Backends` in the context object
    (none: the seed's entry point, which acts on AWS only)."""
    backends = ctx.find_object(Backends) or Backends()
    return backends.build(home, project_name, aws, bucket)


def stage_name(stage: str) -> str:
    """A stage the project deploys: one configured in modeldeploy/config/<stage>.json. Any other
    name is refused before it is read or written, so a typo ('prd') never creates a stage."""
    from modeldeploy.build import CONFIG_DIR  # reads YAML: only for commands that take a stage

    naming.check_stage(stage)
    known = sorted(path.stem for path in CONFIG_DIR.glob("*.json"))
    if stage not in known:
        raise unknown("stage", stage, known, "configured in modeldeploy/config/")
    return stage


def dataset_names(target: DeployBackend, given: tuple[str, ...], routed: list[str]) -> list[str]:
    """Named datasets; else $MME_DATASETS; else the backend's known datasets plus those routed
    now."""
    if given:
        return list(given)
    from_env = [name.strip() for name in os.environ.get(DATASETS_ENV, "").split(",")]
    if any(from_env):
        return [name for name in from_env if name]
    return sorted(set(target.known_datasets()) | set(routed))


canary_option = click.option(
    "--canary",
    is_flag=True,
    envvar=CANARY_ENV,
    help="a newer version goes in as canary next to the live one, with the stage config's "
    f"Canary.Weight [env {CANARY_ENV}=true|false]",
)


def canary_weight(canary: bool, stage: str) -> float | None:
    """The stage's canary weight in canary mode; None deploys live."""
    if not canary:
        return None
    from modeldeploy.canary import load_policy

    return load_policy(stage_name(stage)).weight


def print_report(report: DeployReport) -> None:
    for change in report.changes:
        click.echo(f"{report.stage}  {change.dataset:<24} {change.action:<12} {change.message}")
    state = "written" if report.table_written else "unchanged"
    click.echo(f"{report.stage}: routing table revision {report.revision} ({state})")
    for uri in report.deleted:
        click.echo(f"{report.stage}: deleted {uri}")
