"""`mme ui`: serve the local web view over the `mme` state (the `ui` extra).

Mounted by `mme` (`main.add_command(ui)`); the home and project come from the root group's
context object, like every other `mme` command.
"""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from container.errors import InputError

DEFAULT_PORT = 8765
# What `ModuleNotFoundError.name` says when the `ui` extra is not installed.
_EXTRA_MODULES = frozenset({"starlette", "jinja2", "markupsafe"})
MISSING_EXTRA = (
    "`mme ui` needs the ui extra (Starlette and Jinja2): "
    "pip install 'sagemaker-mme-mlops[ui]', or in a checkout `make setup`"
)


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The page approves and deploys models: keep it on loopback.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--open/--no-open",
    "open_browser",
    default=False,
    show_default=True,
    help="Open the page in the default browser once it is up.",
)
@click.option(
    "--drift-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("drift"),
    show_default=True,
    help="Where `mme endpoint drift` wrote its reports (its --output-dir).",
)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, open_browser: bool, drift_dir: Path) -> None:
    """Serve a local web page over this machine's state: pipeline executions and their steps,
    the model registry with each version's report and plots, Approve/Reject buttons (the same
    code as `mme approve`/`mme reject`, deploying to dev), the routing table of each stage, and
    drift reports. Ctrl-C stops it."""
    settings = ctx.find_root().obj
    try:
        from local.ui.app import create_app
        from local.ui.server import allowed_hosts, bind, serve, url_of
    except ModuleNotFoundError as error:
        if error.name not in _EXTRA_MODULES:
            raise
        raise click.ClickException(MISSING_EXTRA) from None
    try:
        sock = bind(host, port)
    except InputError as error:
        raise click.ClickException(error.describe()) from None
    app = create_app(
        settings.home, settings.project, drift_dir=drift_dir, allowed_hosts=allowed_hosts(host)
    )
    url = url_of(sock)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.secho(
            f"warning: listening on {host}: anyone who can reach this address can approve and "
            "deploy models",
            fg="yellow",
            err=True,
        )
    click.echo(
        f"mme ui: {url} (home {settings.home.root}, project {settings.project}); Ctrl-C stops it"
    )
    serve(app, sock, on_started=(lambda: webbrowser.open(url)) if open_browser else None)
