"""`endpoint` commands: deploy a stage, promote dev to prod, smoke-test, invoke, drift, build.

`python -m modeldeploy.cli ...` is the modeldeploy seed's entry point (what the CodeBuild stages
run, with MME_ON_AWS=true): its commands act on the project bucket (env ARTIFACT_BUCKET) and the
SageMaker registry through boto3 (`modeldeploy.backend.AwsBackend`). The project's `mme` CLI
mounts the same commands as `mme endpoint ...` with the local runtime's backend as well
(`local.commands.endpoint`), where they act on the state root `--home` unless given `--aws`.

The commands live in `modeldeploy.commands` (routing, traffic, build); `endpoint_group` puts
them under one group that hands them their `Backends` through click's context object and maps
the project's errors to clean exits once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import click

from modelbuild.cli_common import HELP_OPTIONS, ProjectGroup
from modeldeploy.backend import Backends
from modeldeploy.commands.build import build
from modeldeploy.commands.routing import canary_command, deploy, promote, ready, smoke, table
from modeldeploy.commands.traffic import drift, invoke

COMMANDS: tuple[click.Command, ...] = (
    deploy,
    promote,
    canary_command,
    table,
    smoke,
    invoke,
    drift,
    ready,
    build,
)


def _log_to_stderr() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_not_in_the_report)


# The deploy logic's modules (modeldeploy.deploy and its bases).
_REPORTED_MODULES = frozenset({"deploy", "conclusions", "stage_tables"})


def _not_in_the_report(record: logging.LogRecord) -> bool:
    """Leave out the deploy logic's own log lines: each is a change of the DeployReport that
    every deploying command prints (`print_report`), and would show twice."""
    return not (record.name == "modeldeploy" and record.module in _REPORTED_MODULES)


def endpoint_group(backends: Backends, extra: Iterable[click.Command] = ()) -> click.Group:
    """The `endpoint` group over `backends`, with modeldeploy's commands and `extra` ones."""

    @click.group("endpoint", cls=ProjectGroup, context_settings=HELP_OPTIONS)
    @click.pass_context
    def group(ctx: click.Context) -> None:
        """The multi-model endpoint: deploy approved models, promote, invoke, smoke-test."""
        _log_to_stderr()
        ctx.obj = backends

    for command in (*COMMANDS, *extra):
        group.add_command(command)
    return group


# The seed's: AWS only (the seed has no local runtime and no dataset registry; the project
# template sets MME_DATASETS on the CodeBuild projects).
endpoint = endpoint_group(Backends())


if __name__ == "__main__":
    endpoint(prog_name="python -m modeldeploy.cli")
