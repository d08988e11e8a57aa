"""The commands that change or show what a stage routes: deploy, promote, canary, smoke, table,
and `ready` (whether the pipeline's deploy stages have anything to do)."""

from __future__ import annotations

import click

from container.errors import InputError
from modeldeploy import environment, naming
from modeldeploy.backend import DeployBackend
from modeldeploy.commands.common import (
    canary_option,
    canary_weight,
    dataset_names,
    print_report,
    stage_name,
    target_options,
)


@click.command()
@click.argument("stage")
@click.option("-d", "--dataset", "datasets", multiple=True, help="deploy only these datasets")
@canary_option
@target_options
def deploy(
    stage: str,
    datasets: tuple[str, ...],
    canary: bool,
    target: DeployBackend,
) -> None:
    """Route each dataset of STAGE to the latest Approved version of its model package group."""
    weight = canary_weight(canary, stage_name(stage))
    with target.locked():
        deployer = target.deployer()
        names = dataset_names(target, datasets, list(deployer.read_table(stage).routes))
        report = deployer.deploy(stage, names, canary_weight=weight)
    print_report(report)
    report.raise_for_failures()


@click.command()
@click.option("--from", "source", default=naming.STAGES[0], show_default=True)
@click.option("--to", "destination", default=naming.STAGES[-1], show_default=True)
@canary_option
@target_options
def promote(
    source: str,
    destination: str,
    canary: bool,
    target: DeployBackend,
) -> None:
    """The manual gate: make the prod stage serve the versions live in dev (not dev's canaries).

    With --canary a version newer than prod's live one goes in as prod's canary beside it,
    with prod's Canary.Weight; a dataset with nothing live in prod goes live at once.
    """
    stage_name(source)
    weight = canary_weight(canary, stage_name(destination))
    with target.locked():
        report = target.deployer().promote(source, destination, canary_weight=weight)
    print_report(report)
    report.raise_for_failures()


@click.command("canary")
@click.argument("stage")
@click.option("-d", "--dataset", "datasets", multiple=True, help="only these datasets")
@target_options
def canary_command(
    stage: str,
    datasets: tuple[str, ...],
    target: DeployBackend,
) -> None:
    """Judge each canary of STAGE from the inference log; promote, roll back or wait."""
    from modeldeploy import canary

    policy = canary.load_policy(stage_name(stage))
    with target.locked():
        outcomes = canary.run(
            target.deployer(),
            stage,
            # A canary is judged on its errors too.
            target.log_reader(stage, include_errors=True),
            policy,
            datasets or None,
        )
    if not outcomes:
        click.echo(f"{stage}: no canary to judge")
    for outcome in outcomes:
        click.echo(f"{stage}  {outcome.dataset:<24} {outcome.decision.action:<9}")
        print_report(outcome.report)


@click.command()
@click.argument("stage")
@click.option("--json", "as_json", is_flag=True, help="print the stored routing table document")
@target_options
def table(
    stage: str,
    as_json: bool,
    target: DeployBackend,
) -> None:
    """Print STAGE's routing table: each dataset's live version, and its canary if any."""
    routing = target.deployer().read_table(stage_name(stage))
    if as_json:
        click.echo(routing.to_json().decode())
        return
    updated = f", updated {routing.updated_at}" if routing.updated_at else ""
    click.echo(f"{stage}: routing table revision {routing.revision}{updated}")
    if not routing.routes:
        click.echo(f"{stage}: routes no dataset")
    for dataset, route in sorted(routing.routes.items()):
        canary = route.canary
        beside = (
            f"  canary v{canary.model_package_version} at {route.canary_weight:.0%}"
            if canary is not None
            else ""
        )
        click.echo(
            f"{stage}  {dataset:<24} v{route.model_package_version:<4} {route.target_model}{beside}"
        )


@click.command()
@click.argument("stage")
@click.option("-d", "--dataset", "datasets", multiple=True, help="test only these datasets")
@target_options
def smoke(
    stage: str,
    datasets: tuple[str, ...],
    target: DeployBackend,
) -> None:
    """Send each routed dataset of STAGE one valid row; fail naming any dataset that misanswers.

    A version the last deploy placed that fails is rolled back to the version live before it
    (or removed from routing if there was none) and rejected in the registry."""
    from modeldeploy.smoke import smoke_stage

    deployer = target.deployer()
    routing = deployer.read_table(stage_name(stage))
    if not routing.routes and not datasets:
        raise InputError(f"stage {stage} routes no dataset: nothing to smoke-test")
    with target.locked(), target.invoker(stage, deployer.storage) as invoker:
        outcome = smoke_stage(deployer, stage, invoker, list(datasets) or None)
    for result in outcome.results:
        click.echo(
            f"{stage}  {result.dataset:<24} {'ok' if result.ok else 'FAILED':<7} {result.message}"
        )
    for report in outcome.reports:
        if report.table_written:
            print_report(report)
    failed = [result.dataset for result in outcome.results if not result.ok]
    if failed:
        raise click.ClickException(f"stage {stage}: smoke test failed for {', '.join(failed)}")


@click.command()
@click.option(
    "--image-uri",
    envvar=environment.IMAGE_URI,
    required=True,
    help="the serving image [env IMAGE_URI]",
)
@click.option("-d", "--dataset", "datasets", multiple=True, help="only these datasets")
@target_options
def ready(
    image_uri: str,
    datasets: tuple[str, ...],
    target: DeployBackend,
) -> None:
    """Print "true" when the deploy stages have something to deploy, else "false" (the reason
    goes to stderr); exit 1 when the registry or the bucket cannot tell."""
    from modeldeploy import readiness

    # Routed datasets need no listing here: any route makes the stages run (readiness).
    answer = readiness.check(image_uri, target.deployer(), dataset_names(target, datasets, []))
    verdict = "deploying" if answer.ready else "nothing to deploy, the deploy stages are skipped"
    click.echo(f"{verdict}: {answer.reason}", err=True)
    click.echo(answer.answer)
