"""`mme endpoint ...`: modeldeploy's commands with the local runtime's backend, and `serve`.

The same commands the modeldeploy seed runs on AWS (`modeldeploy.cli`), given a `Backends` that
also builds the local runtime's (`local.deploy_backend.LocalBackend`) and knows the dataset
registry; `--aws` still acts on the project's AWS account.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from local.deploy_backend import LocalBackend
from modelbuild.cli_common import home_option, project_option
from modeldeploy import naming
from modeldeploy.backend import Backends
from modeldeploy.cli import endpoint_group


def _registered_datasets() -> list[str]:
    from modelbuild.datasets import default_registry

    return list(default_registry())


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="InvokeEndpoint API port")
@click.option("--invoker-port", type=int, default=8081, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--memory-budget-mb", type=click.IntRange(min=1), help="serving memory budget")
@home_option
@project_option
def serve(
    host: str,
    port: int,
    invoker_port: int,
    workers: int,
    memory_budget_mb: int | None,
    home: Path,
    project_name: str,
) -> None:
    """Serve every stage's endpoint (SageMaker Runtime API) and invoker (POST /<stage>)."""
    from local.endpoint import LocalEndpoint, announced, local_invoker
    from local.invoker_http import InvokerHTTPServer
    from local.ports import check_free

    # Before the serving container starts: a busy port is one line naming its holder.
    check_free(host, port, "--port")
    check_free(host, invoker_port, "--invoker-port")
    endpoint_ = LocalEndpoint(
        home, project_name, host=host, port=port, workers=workers, memory_budget_mb=memory_budget_mb
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with endpoint_:
        invokers = {
            stage: local_invoker(home, stage, endpoint_.url, project_name)
            for stage in naming.STAGES
        }
        invoker_server = InvokerHTTPServer((host, invoker_port), invokers).start()
        with announced(endpoint_, home, invoker_url=invoker_server.url):
            click.echo(f"endpoint (InvokeEndpoint API): {endpoint_.url}")
            for stage in naming.STAGES:
                name = naming.endpoint_name(project_name, stage)
                click.echo(f"  {stage}: endpoint {name}, invoker POST {invoker_server.url}/{stage}")
            sys.stdout.flush()  # the addresses must show even when stdout is a pipe or a file
            try:
                stop.wait()
            finally:
                invoker_server.stop()


endpoint = endpoint_group(
    Backends(local=LocalBackend, known_datasets=_registered_datasets), extra=[serve]
)
