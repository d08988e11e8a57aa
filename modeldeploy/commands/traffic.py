"""The commands on a stage's traffic: invoke its invoker, and check its logged inputs for drift."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from container.errors import InputError
from modeldeploy import naming
from modeldeploy.backend import DeployBackend
from modeldeploy.commands.common import stage_name, target_options
from modeldeploy.invoker import REQUEST_ID_HEADER, request_event


def _read_rows(rows: str) -> Any:
    """ROWS: a .json or .csv file, '-' for stdin, or inline JSON or CSV text."""
    if rows == "-":
        text = sys.stdin.read()
    elif Path(rows).is_file():
        text = Path(rows).read_text()
        if Path(rows).suffix.lower() != ".json":
            return text
    elif _names_a_file(rows):
        raise InputError(
            "file not found (ROWS is a .csv or .json file, '-' or inline rows)", file=rows
        )
    else:
        text = rows
    try:
        return json.loads(text)
    except ValueError:
        return text


def _names_a_file(rows: str) -> bool:
    """One line that reads as a path (rows.json, data/rows) rather than inline rows; inline CSV
    has commas and inline JSON starts with a bracket or a brace."""
    line = rows.strip()
    if "\n" in line or line[:1] in ("[", "{"):
        return False
    return Path(line).suffix.lower() in (".json", ".csv") or ("/" in line and "," not in line)


@click.command()
@click.argument("dataset")
@click.argument("rows")
@click.option("--stage", default=naming.STAGES[0], show_default=True)
@target_options
def invoke(
    dataset: str,
    rows: str,
    stage: str,
    target: DeployBackend,
) -> None:
    """Predict ROWS (a .csv/.json file, '-' for stdin, or inline JSON/CSV) with DATASET's model."""
    stage_name(stage)
    deployer = target.deployer()
    event = request_event(dataset, _read_rows(rows))
    with target.invoker(stage, deployer.storage) as invoker:
        response = invoker.handle(event)
    body = json.loads(response["body"])
    if response["statusCode"] != 200:
        request_id = response["headers"].get(REQUEST_ID_HEADER, "-")
        raise click.ClickException(
            f"{response['statusCode']} {body['error']}: {body['message']} (request {request_id})"
        )
    click.echo(json.dumps(body, indent=2))


@click.command()
@click.argument("stage")
@click.option("-d", "--dataset", "datasets", multiple=True, help="only these datasets")
@click.option(
    "--hours",
    type=click.FloatRange(min=0, min_open=True),
    default=24.0,
    show_default=True,
    help="the window: invocations logged in the last HOURS",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("drift"),
    show_default=True,
    help="reports go to OUTPUT_DIR/STAGE/DATASET/",
)
@click.option(
    "--min-rows",
    type=click.IntRange(min=1),
    default=100,  # modeldeploy.drift.MIN_ROWS, not imported here: it needs numpy
    show_default=True,
    help="fewer logged values than this: the feature is not judged",
)
@click.option("--fail-on-drift", is_flag=True, help="exit 1 when any dataset drifts")
@click.option(
    "--publish-metrics", is_flag=True, help="with --aws: put the MME/Drift CloudWatch metrics"
)
@click.option(
    "--upload-reports",
    is_flag=True,
    help="also copy the reports to <bucket>/STAGE/drift/<UTC time>/DATASET/",
)
@target_options
def drift(
    stage: str,
    datasets: tuple[str, ...],
    hours: float,
    output_dir: Path,
    min_rows: int,
    fail_on_drift: bool,
    publish_metrics: bool,
    upload_reports: bool,
    target: DeployBackend,
) -> None:
    """Compare STAGE's logged inputs with each live model's training baseline (PSI, KS)."""
    import time

    from modeldeploy import drift_job
    from modeldeploy.drift import Thresholds

    # --aws itself went into `target` (target_options); the flag is read back for this check.
    if publish_metrics and not click.get_current_context().params["aws"]:
        raise click.UsageError("--publish-metrics needs --aws")
    deployer = target.deployer()
    table = deployer.read_table(stage_name(stage))
    names = list(datasets) or sorted(table.routes)
    if not names:
        # Not a failure: the scheduled job runs before the first deploy too.
        click.echo(f"{stage}: routes no dataset, nothing to check for drift")
        return
    now = time.time()
    since = now - hours * 3600
    outcomes = drift_job.run(
        deployer.storage,
        table,
        target.log_reader(stage),
        names,
        since,
        None,
        output_dir,
        Thresholds(min_rows=min_rows),
    )
    if publish_metrics:
        import boto3

        drift_job.publish_metrics(
            boto3.client("cloudwatch"), stage, [outcome.report for outcome in outcomes]
        )
    if upload_reports:
        destination = naming.drift_report_uri(target.bucket, stage, drift_job.run_id(now))
        for outcome in outcomes:
            drift_job.upload(deployer.storage, outcome, output_dir / stage, destination)
        click.echo(f"{stage}: reports uploaded to {destination}/")
    for outcome in outcomes:
        report = outcome.report
        flagged = ", ".join(report.drifted + report.warned) or "-"
        click.echo(
            f"{stage}  {report.dataset:<24} {report.status:<12} rows {report.rows:<7} "
            f"max PSI {report.max_psi:.3f}  flagged: {flagged}  {outcome.files[0].parent}"
        )
        for feature in report.features:
            if feature.unseen_rows:
                named = ", ".join(f"{value!r} ({n})" for value, n in feature.unseen.items())
                more = ", ..." if sum(feature.unseen.values()) < feature.unseen_rows else ""
                click.echo(
                    f"{stage}  {report.dataset:<24} {feature.name}: {feature.unseen_rows} row(s) "
                    f"with categories not in the training baseline: {named}{more}"
                )
    drifted = [outcome.report.dataset for outcome in outcomes if outcome.report.status == "drift"]
    if fail_on_drift and drifted:
        raise click.ClickException(f"stage {stage}: drift in {', '.join(drifted)}")
