"""`template` commands: package and publish the SageMaker project template.

Mountable into `mme` as `mme template package ...`; also `python -m template.package ...`.
"""

from __future__ import annotations

import click

from modelbuild.cli_common import HELP_OPTIONS, ProjectGroup
from template.package import package_command


@click.group("template", cls=ProjectGroup, context_settings=HELP_OPTIONS)
def template() -> None:
    """The SageMaker project template: package the seeds and publish the templates."""


template.add_command(package_command)
