"""`mme`: the project's command line (local runtime first; AWS commands mount here too).

The root resolves --home and --project-name once and hands them down through the click
context (`local.commands.common.Settings` for mme's own commands, `modelbuild.cli_common.inherit`
for the mounted groups), and maps the project's errors to clean exits once (`ProjectGroup`).
The commands live in `local.commands` (runs, executions, registry, endpoint) and the groups of
the other packages (`pipeline`, `template`, `aws`, `report`, `trials`, `ui`) mount here.

Heavy imports (the SageMaker SDK, scikit-learn) happen inside the commands that need them, so
listing executions or approving a model starts quickly.
"""

from __future__ import annotations

from pathlib import Path

import click

from container.errors import InputError
from local.commands.common import Settings
from local.commands.common import console as console  # local.trials_cli prints through it
from local.commands.endpoint import endpoint
from local.commands.executions import executions, steps
from local.commands.registry import approve, events, models, reject
from local.commands.runs import demo, run
from local.home import LocalHome
from local.report_cli import report
from local.trials_cli import trials
from local.ui.cli import ui
from modelbuild import naming
from modelbuild.cli import pipeline
from modelbuild.cli_common import HELP_OPTIONS, ProjectGroup, home_option, inherit, project_option
from template.aws_cli import aws
from template.cli import template


@click.group(cls=ProjectGroup, context_settings=HELP_OPTIONS)
@click.version_option(package_name="sagemaker-mme-mlops", prog_name="mme")
@home_option
@project_option
@click.pass_context
def main(ctx: click.Context, home: Path, project_name: str) -> None:
    """SageMaker multi-model endpoint MLOps template: local runtime and tools.

    Start with `mme demo`; `mme COMMAND --help` describes each command.
    """
    try:
        naming.check_project_name(project_name)
    except InputError as error:
        raise click.BadParameter(error.problem, param_hint="--project-name") from None
    ctx.obj = Settings(LocalHome(home), project_name)
    # Mounted groups (`mme endpoint`, `mme pipeline`) take these unless given their own.
    inherit(ctx, home, project_name)


for command in (run, demo, executions, steps, models, approve, reject, events):
    main.add_command(command)
for group in (pipeline, endpoint, template, aws, report, trials, ui):
    main.add_command(group)


if __name__ == "__main__":
    main()
