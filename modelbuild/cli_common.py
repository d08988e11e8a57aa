"""What every command line of the project shares, declared once.

- `ProjectGroup`: the root of a command tree (`mme`, `pipeline`, `endpoint`, `template`, ...)
  maps the project's errors to clean exits in one place: an `InputError` (the user's input) is
  the one-line `Error: ...` and exit 1 it always was; a `ServiceError` (a throttled or failing
  service) exits SERVICE_EXIT_CODE with a message saying that retrying may help. Commands
  raise, they do not catch.
- `home_option`, `project_option`: --home and --project-name. A group mounted into `mme` takes
  the values `mme --home X --project-name Y` resolved (`Inherited`, in the click context)
  unless its own command line gives them: settings travel through the context, not through
  os.environ.
- `parameter_option`: `-p NAME=VALUE`, one parser (the values are typed by
  `modelbuild.definition.typed_parameter`, the one typing rule for pipeline parameters).

It lives in modelbuild, the lowest layer that has a command line, so both seed repositories
ship it (template.package) and modeldeploy and local build on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from container.errors import ProjectError
from modelbuild import environment, naming

# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry later".
SERVICE_EXIT_CODE = 75
DEFAULT_HOME = Path(".mme")
HOME_ENV = environment.HOME
PROJECT_ENV = environment.PROJECT_NAME
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

F = TypeVar("F", bound=Callable[..., Any])


class ServiceFailure(click.ClickException):
    """A ServiceError at the command line: its own exit code, and the hint to retry."""

    exit_code = SERVICE_EXIT_CODE

    def format_message(self) -> str:
        return f"{self.message} (a service failed or throttled: retrying may help)"


def fail(error: ProjectError) -> click.ClickException:
    """The clean exit for one of the project's errors."""
    if error.retryable:
        return ServiceFailure(error.describe())
    return click.ClickException(error.describe())


class ProjectGroup(click.Group):
    """A click group whose commands' ProjectErrors become clean exits (module doc)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProjectError as error:
            raise fail(error) from None


# ---------------------------------------------------------------------------- shared options


@dataclass(frozen=True)
class Inherited:
    """--home and --project-name as an enclosing command line resolved them."""

    home: Path
    project: str


def inherit(ctx: click.Context, home: Path, project: str) -> None:
    """Hand the settings to every group mounted below `ctx` (click's meta is shared by the
    whole context chain; the context object stays each group's own)."""
    ctx.meta[Inherited] = Inherited(home, project)


def _inherited(attribute: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        outer = ctx.meta.get(Inherited)
        if (
            outer is None
            or ctx.get_parameter_source(str(param.name)) is ParameterSource.COMMANDLINE
        ):
            return value
        return getattr(outer, attribute)

    return callback


def home_option(function: F) -> F:
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=HOME_ENV,
        default=DEFAULT_HOME,
        show_default=True,
        callback=_inherited("home"),
        help=f"State directory: local S3, model registry, executions and logs [env {HOME_ENV}].",
    )(function)


def project_option(function: F) -> F:
    return click.option(
        "--project-name",
        envvar=PROJECT_ENV,
        default=naming.DEFAULT_PROJECT_NAME,
        show_default=True,
        callback=_inherited("project"),
        help="SageMaker project name: names pipelines, the bucket and model package groups "
        f"[env {PROJECT_ENV}].",
    )(function)


# ---------------------------------------------------------------------------- -p NAME=VALUE


def _split(ctx: click.Context, param: click.Parameter, items: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", ctx, param)
        values[name] = raw
    return values


def parameter_option(help_text: str) -> Callable[[F], F]:
    """`-p/--parameter NAME=VALUE`, repeatable; the command receives {name: text}."""
    return click.option(
        "-p",
        "--parameter",
        "parameters",
        multiple=True,
        metavar="NAME=VALUE",
        callback=_split,
        help=help_text,
    )
