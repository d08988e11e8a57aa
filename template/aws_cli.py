"""`aws` commands: check an AWS account before publishing the template or creating a project.

Mounted into `mme` as `mme aws preflight ...`. boto3 and the checks are imported inside the
command, so `mme --help` stays fast.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from container.errors import InputError
from modelbuild.cli_common import HELP_OPTIONS, ProjectGroup

STATUS_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red"}
# A failed check exits 1; the preflight itself not running (no region, no credentials, bad
# input) exits 2, so a script can tell "the account is not ready" from "nothing was checked".
EXIT_FAILED_CHECK = 1
EXIT_NOT_RUN = 2


class PreflightNotRun(click.ClickException):
    exit_code = EXIT_NOT_RUN


@click.command("preflight")
@click.option("--region", help="AWS region of the SageMaker domain [env AWS_REGION]")
@click.option(
    "--project-name",
    help="check this name against the template and the account (no project or groups by it)",
)
@click.option(
    "--template-bucket",
    help="the bucket `mme template package` publishes to: it must be in --region",
)
def preflight_command(
    region: str | None, project_name: str | None, template_bucket: str | None
) -> None:
    """Read-only checks that this account and region can take a project from the template.

    SageMaker Projects and a Studio domain in the region, CodeCommit for the default
    SourceProvider, SageMaker instance quotas for the pipelines and endpoints at their configured
    parallelism, Lambda concurrency for the invoker, and optionally the template bucket's region
    and a project name. Exits 1 when a check fails (warnings pass), 2 when it cannot run.
    """
    from template import preflight
    from template.package import resolve_region

    try:
        resolved = resolve_region(region)
        clients = preflight.connect(resolved)
        who = preflight.identity(clients, resolved)
        results = preflight.run(
            clients, resolved, project_name=project_name, template_bucket=template_bucket
        )
    except InputError as error:
        raise PreflightNotRun(error.describe()) from None
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"Preflight of {resolved}: {escape(who)}")
    for column in ("check", "status", "detail", "what to do"):
        table.add_column(column, no_wrap=column in ("check", "status"))
    for result in results:
        style = STATUS_STYLES[result.status.value]
        table.add_row(
            escape(result.name),
            f"[{style}]{result.status.value}[/{style}]",
            escape(result.detail),
            escape(result.action),
        )
    console.print(table)
    failed = [result.name for result in results if result.status is preflight.Status.FAIL]
    if failed:
        console.print(f"{len(failed)} check(s) failed: {escape(', '.join(failed))}")
        click.get_current_context().exit(EXIT_FAILED_CHECK)


@click.group("aws", cls=ProjectGroup, context_settings=HELP_OPTIONS)
def aws() -> None:
    """AWS account checks (read-only)."""


aws.add_command(preflight_command)
