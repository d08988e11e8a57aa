"""`endpoint` commands: deploy a stage, promote dev to prod, serve, invoke, smoke-test, drift.

Mounted into the project's `mme` CLI as `mme endpoint ...`; also runnable on its own as
`python -m modeldeploy.cli ...` (what the modeldeploy CodeBuild stages call, with `--aws`).
Locally every command works on the state root `--home` (env MME_HOME, default `.mme`); with
`--aws` on the project bucket (env ARTIFACT_BUCKET) and the SageMaker registry through boto3.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from container.errors import InputError
from modeldeploy import naming
from modeldeploy.deploy import Deployer, DeployReport
from modeldeploy.interfaces import Storage
from modeldeploy.invoker import REQUEST_ID_HEADER, Invoker, TableMissing, request_event

if TYPE_CHECKING:
    from modeldeploy.drift_job import RecordReader

DATASETS_ENV = "MME_DATASETS"
# Set by the project template on the modeldeploy CodeBuild project, so canary mode is switched
# on without a buildspec change.
CANARY_ENV = "MME_CANARY"


@dataclass(frozen=True)
class Target:
    """Where a command acts: the local runtime's home, or the project's AWS account."""

    aws: bool
    home: Path
    project: str
    bucket: str

    def deployer(self) -> Deployer:
        if self.aws:
            from modeldeploy.artifacts import pinned_versions
            from modeldeploy.aws import S3Storage, SageMakerRegistry

            return Deployer(
                S3Storage(),
                SageMakerRegistry(),
                bucket=self.bucket,
                project=self.project,
                # The image installs the versions pyproject.toml pins.
                serving_versions=pinned_versions(),
            )
        from modeldeploy.local import local_deployer

        return local_deployer(self.home, self.project)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Locally, one deploy at a time; on AWS the pipeline runs one execution per stage."""
        if self.aws:
            yield
            return
        from modeldeploy.local import deploy_lock

        with deploy_lock(self.home):
            yield

    @contextmanager
    def invoker(self, stage: str, storage: Storage) -> Iterator[Invoker]:
        """The invoker handler for a stage: on AWS against the real endpoint, locally against
        the running local endpoint or a temporary one."""
        table_uri = naming.routing_table_uri(self.bucket, stage)

        def read_table() -> bytes:
            if not storage.exists(table_uri):
                raise TableMissing(table_uri)
            return storage.read(table_uri)

        if self.aws:
            import boto3

            yield Invoker(
                runtime=boto3.client("sagemaker-runtime"),
                endpoint_name=naming.endpoint_name(self.project, stage),
                read_table=read_table,
                stage=stage,
            )
            return
        from local.endpoint import endpoint_url_for, local_invoker

        with endpoint_url_for(self.home, self.project) as url:
            yield local_invoker(self.home, stage, url, self.project)


def _target_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--home",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="MME_HOME",
            default=".mme",
            show_default=True,
            help="local state root [env MME_HOME]",
        ),
        click.option(
            "--project-name",
            envvar="SAGEMAKER_PROJECT_NAME",
            default=naming.DEFAULT_PROJECT_NAME,
            show_default=True,
            help="SageMaker project name [env SAGEMAKER_PROJECT_NAME]",
        ),
        click.option(
            "--aws",
            is_flag=True,
            envvar="MME_ON_AWS",
            help="act on AWS (S3 + SageMaker) instead of the local runtime [env MME_ON_AWS]",
        ),
        click.option(
            "--bucket",
            envvar="ARTIFACT_BUCKET",
            help="project bucket with --aws [env ARTIFACT_BUCKET]; locally <project>-local-artifacts",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _target(home: Path, project_name: str, aws: bool, bucket: str | None) -> Target:
    naming.check_project_name(project_name)
    if aws:
        if not bucket:
            raise click.UsageError("--aws needs --bucket (or ARTIFACT_BUCKET)")
        return Target(True, home, project_name, naming.check_bucket(bucket))
    return Target(False, home, project_name, bucket or naming.local_bucket(project_name))


def _fail(error: InputError) -> click.ClickException:
    return click.ClickException(error.describe())


def _stage(stage: str) -> str:
    """A stage the project deploys: one configured in modeldeploy/config/<stage>.json. Any other
    name is refused before it is read or written, so a typo ('prd') never creates a stage."""
    from modelbuild.suggest import unknown
    from modeldeploy.build import CONFIG_DIR

    naming.check_stage(stage)
    known = sorted(path.stem for path in CONFIG_DIR.glob("*.json"))
    if stage not in known:
        raise unknown("stage", stage, known, "configured in modeldeploy/config/")
    return stage


def _datasets(given: tuple[str, ...], routed: list[str]) -> list[str]:
    """Named datasets; else $MME_DATASETS; else the dataset registry plus those routed now."""
    if given:
        return list(given)
    from_env = [name.strip() for name in os.environ.get(DATASETS_ENV, "").split(",")]
    if any(from_env):
        return [name for name in from_env if name]
    from modelbuild.datasets import default_registry

    return sorted(set(default_registry()) | set(routed))


_canary_option = click.option(
    "--canary",
    is_flag=True,
    envvar=CANARY_ENV,
    help="a newer version goes in as canary next to the live one, with the stage config's "
    f"Canary.Weight [env {CANARY_ENV}=true|false]",
)


def _canary_weight(canary: bool, stage: str) -> float | None:
    """The stage's canary weight in canary mode; None deploys live."""
    if not canary:
        return None
    from modeldeploy.canary import load_policy

    return load_policy(_stage(stage)).weight


def _print_report(report: DeployReport) -> None:
    for change in report.changes:
        click.echo(f"{report.stage}  {change.dataset:<24} {change.action:<12} {change.message}")
    state = "written" if report.table_written else "unchanged"
    click.echo(f"{report.stage}: routing table revision {report.revision} ({state})")
    for uri in report.deleted:
        click.echo(f"{report.stage}: deleted {uri}")


@click.group("endpoint", context_settings={"help_option_names": ["-h", "--help"]})
def endpoint() -> None:
    """The multi-model endpoint: deploy approved models, promote, serve, invoke, smoke-test."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_not_in_the_report)


def _not_in_the_report(record: logging.LogRecord) -> bool:
    """Leave out the deploy logic's own log lines: each is a change of the DeployReport that
    every deploying command prints (`_print_report`), and would show twice."""
    return not (record.name == "modeldeploy" and record.module == "deploy")


@endpoint.command()
@click.argument("stage")
@click.option("-d", "--dataset", "datasets", multiple=True, help="deploy only these datasets")
@_canary_option
@_target_options
def deploy(
    stage: str,
    datasets: tuple[str, ...],
    canary: bool,
    home: Path,
    project_name: str,
    aws: bool,
    bucket: str | None,
) -> None:
    """Route each dataset of STAGE to the latest Approved version of its model package group."""
    try:
        target = _target(home, project_name, aws, bucket)
        weight = _canary_weight(canary, _stage(stage))
        with target.locked():
            deployer = target.deployer()
            names = _datasets(datasets, list(deployer.read_table(stage).routes))
            report = deployer.deploy(stage, names, canary_weight=weight)
        _print_report(report)
        report.raise_for_failures()
    except InputError as error:
        raise _fail(error) from None


@endpoint.command()
@click.option("--from", "source", default=naming.STAGES[0], show_default=True)
@click.option("--to", "destination", default=naming.STAGES[-1], show_default=True)
@_canary_option
@_target_options
def promote(
    source: str,
    destination: str,
    canary: bool,
    home: Path,
    project_name: str,
    aws: bool,
    bucket: str | None,
) -> None:
    """The manual gate: make the prod stage serve the versions live in dev (not dev's canaries).

    With --canary a version newer than prod's live one goes in as prod's canary beside it,
    with prod's Canary.Weight; a dataset with nothing live in prod goes live at once.
    """
    try:
        target = _target(home, project_name, aws, bucket)
        _stage(source)
        weight = _canary_weight(canary, _stage(destination))
        with target.locked():
            report = target.deployer().promote(source, destination, canary_weight=weight)
        _print_report(report)
        report.raise_for_failures()
    except InputError as error:
        raise _fail(error) from None


@endpoint.command("canary")
@click.argument("stage")
@click.option("-d", "--dataset", "datasets", multiple=True, help="only these datasets")
@_target_options
def canary_command(
    stage: str,
    datasets: tuple[str, ...],
    home: Path,
    project_name: str,
    aws: bool,
    bucket: str | None,
) -> None:
    """Judge each canary of STAGE from the inference log; promote, roll back or wait."""
    from modeldeploy import canary

    try:
        target = _target(home, project_name, aws, bucket)
        policy = canary.load_policy(_stage(stage))
        with target.locked():
            outcomes = canary.run(
                target.deployer(),
                stage,
                # A canary is judged on its errors too.
                _log_reader(target, stage, include_errors=True),
                policy,
                datasets or None,
            )
    except InputError as error:
        raise _fail(error) from None
    if not outcomes:
        click.echo(f"{stage}: no canary to judge")
    for outcome in outcomes:
        click.echo(f"{stage}  {outcome.dataset:<24} {outcome.decision.action:<9}")
        _print_report(outcome.report)


@endpoint.command()
@click.argument("stage")
@click.option("--json", "as_json", is_flag=True, help="print the stored routing table document")
@_target_options
def table(
    stage: str, as_json: bool, home: Path, project_name: str, aws: bool, bucket: str | None
) -> None:
    """Print STAGE's routing table: each dataset's live version, and its canary if any."""
    try:
        routing = _target(home, project_name, aws, bucket).deployer().read_table(_stage(stage))
    except InputError as error:
        raise _fail(error) from None
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


@endpoint.command()
@click.argument("stage")
@click.option("-d", "--dataset", "datasets", multiple=True, help="test only these datasets")
@_target_options
def smoke(
    stage: str,
    datasets: tuple[str, ...],
    home: Path,
    project_name: str,
    aws: bool,
    bucket: str | None,
) -> None:
    """Send each routed dataset of STAGE one valid row; fail naming any dataset that misanswers.

    A version the last deploy placed that fails is rolled back to the version live before it
    (or removed from routing if there was none) and rejected in the registry."""
    from modeldeploy.smoke import smoke_stage

    try:
        target = _target(home, project_name, aws, bucket)
        deployer = target.deployer()
        routing = deployer.read_table(_stage(stage))
        if not routing.routes and not datasets:
            raise InputError(f"stage {stage} routes no dataset: nothing to smoke-test")
        with target.locked(), target.invoker(stage, deployer.storage) as invoker:
            outcome = smoke_stage(deployer, stage, invoker, list(datasets) or None)
    except InputError as error:
        raise _fail(error) from None
    for result in outcome.results:
        click.echo(
            f"{stage}  {result.dataset:<24} {'ok' if result.ok else 'FAILED':<7} {result.message}"
        )
    for report in outcome.reports:
        if report.table_written:
            _print_report(report)
    failed = [result.dataset for result in outcome.results if not result.ok]
    if failed:
        raise click.ClickException(f"stage {stage}: smoke test failed for {', '.join(failed)}")


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


@endpoint.command()
@click.argument("dataset")
@click.argument("rows")
@click.option("--stage", default=naming.STAGES[0], show_default=True)
@_target_options
def invoke(
    dataset: str,
    rows: str,
    stage: str,
    home: Path,
    project_name: str,
    aws: bool,
    bucket: str | None,
) -> None:
    """Predict ROWS (a .csv/.json file, '-' for stdin, or inline JSON/CSV) with DATASET's model."""
    try:
        target = _target(home, project_name, aws, bucket)
        _stage(stage)
        deployer = target.deployer()
        event = request_event(dataset, _read_rows(rows))
        with target.invoker(stage, deployer.storage) as invoker:
            response = invoker.handle(event)
    except InputError as error:
        raise _fail(error) from None
    body = json.loads(response["body"])
    if response["statusCode"] != 200:
        request_id = response["headers"].get(REQUEST_ID_HEADER, "-")
        raise click.ClickException(
            f"{response['statusCode']} {body['error']}: {body['message']} (request {request_id})"
        )
    click.echo(json.dumps(body, indent=2))


@endpoint.command()
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
@_target_options
def drift(
    stage: str,
    datasets: tuple[str, ...],
    hours: float,
    output_dir: Path,
    min_rows: int,
    fail_on_drift: bool,
    publish_metrics: bool,
    upload_reports: bool,
    home: Path,
    project_name: str,
    aws: bool,
    bucket: str | None,
) -> None:
    """Compare STAGE's logged inputs with each live model's training baseline (PSI, KS)."""
    import time

    from modeldeploy import drift_job
    from modeldeploy.drift import Thresholds

    try:
        target = _target(home, project_name, aws, bucket)
        if publish_metrics and not aws:
            raise click.UsageError("--publish-metrics needs --aws")
        deployer = target.deployer()
        table = deployer.read_table(_stage(stage))
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
            _log_reader(target, stage),
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
    except InputError as error:
        raise _fail(error) from None
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


def _log_reader(target: Target, stage: str, *, include_errors: bool = False) -> RecordReader:
    """The inference log the stage's invoker writes (DynamoDB on AWS, SQLite locally), as
    (dataset, since, until=None) -> records; answered calls only unless `include_errors`."""
    if target.aws:
        from modeldeploy.inference_log import dynamodb_client, read_dynamodb

        client, table = dynamodb_client(), naming.inference_log_table(target.project, stage)

        def read(dataset: str, since: float, until: float | None = None) -> Any:
            return read_dynamodb(
                client, table, dataset, since, until, include_errors=include_errors
            )

        return read
    from modeldeploy.inference_log import local_log_path, read_local

    path = local_log_path(target.home)

    def read(dataset: str, since: float, until: float | None = None) -> Any:
        return read_local(path, stage, dataset, since, until, include_errors=include_errors)

    return read


@endpoint.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="InvokeEndpoint API port")
@click.option("--invoker-port", type=int, default=8081, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--memory-budget-mb", type=click.IntRange(min=1), help="serving memory budget")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MME_HOME",
    default=".mme",
    show_default=True,
)
@click.option(
    "--project-name", envvar="SAGEMAKER_PROJECT_NAME", default=naming.DEFAULT_PROJECT_NAME
)
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

    try:
        # Before the serving container starts: a busy port is one line naming its holder.
        check_free(host, port, "--port")
        check_free(host, invoker_port, "--invoker-port")
    except InputError as error:
        raise _fail(error) from None
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


@endpoint.command()
@click.option(
    "--image-uri", envvar="IMAGE_URI", required=True, help="the serving image [env IMAGE_URI]"
)
@click.option("-d", "--dataset", "datasets", multiple=True, help="only these datasets")
@_target_options
def ready(
    image_uri: str,
    datasets: tuple[str, ...],
    home: Path,
    project_name: str,
    aws: bool,
    bucket: str | None,
) -> None:
    """Print "true" when the deploy stages have something to deploy, else "false" (the reason
    goes to stderr); exit 1 when the registry or the bucket cannot tell."""
    from modeldeploy import readiness

    try:
        deployer = _target(home, project_name, aws, bucket).deployer()
        # Routed datasets need no listing here: any route makes the stages run (readiness).
        answer = readiness.check(image_uri, deployer, _datasets(datasets, []))
    except InputError as error:
        raise _fail(error) from None
    verdict = "deploying" if answer.ready else "nothing to deploy, the deploy stages are skipped"
    click.echo(f"{verdict}: {answer.reason}", err=True)
    click.echo(answer.answer)


@endpoint.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    show_default=True,
)
@click.option("--project-name", envvar="SAGEMAKER_PROJECT_NAME", required=True)
@click.option("--project-id", envvar="SAGEMAKER_PROJECT_ID", required=True)
@click.option("--bucket", envvar="ARTIFACT_BUCKET", required=True)
@click.option("--image-uri", envvar="IMAGE_URI", required=True)
@click.option("--model-execution-role-arn", envvar="MODEL_EXECUTION_ROLE_ARN", required=True)
@click.option("--artifact-kms-key-arn", envvar="ARTIFACT_KMS_KEY_ARN", default="")
@click.option(
    "--alarm-topic-arn",
    envvar=naming.ALARM_TOPIC_ENV,
    default="",
    help=f"SNS topic the endpoint alarms notify; empty for none [env {naming.ALARM_TOPIC_ENV}]",
)
@click.option("--upload/--no-upload", default=True, help="upload the invoker zip to the bucket")
def build(
    output_dir: Path,
    project_name: str,
    project_id: str,
    bucket: str,
    image_uri: str,
    model_execution_role_arn: str,
    artifact_kms_key_arn: str,
    alarm_topic_arn: str,
    upload: bool,
) -> None:
    """The build stage: package the invoker and write each stage's stack configuration."""
    from modeldeploy.build import TEMPLATE, export_stage_config, package_invoker

    try:
        zip_path, key = package_invoker(output_dir)
        if upload:
            from modeldeploy.aws import S3Storage

            S3Storage().upload(zip_path, naming.s3_uri(naming.check_bucket(bucket), key))
        for stage in naming.STAGES:
            config = export_stage_config(
                stage,
                project=project_name,
                project_id=project_id,
                bucket=bucket,
                image_uri=image_uri,
                model_execution_role_arn=model_execution_role_arn,
                invoker_code_key=key,
                artifact_kms_key_arn=artifact_kms_key_arn,
                alarm_topic_arn=alarm_topic_arn,
            )
            path = output_dir / f"{stage}-config-export.json"
            path.write_text(json.dumps(config, indent=2))
            click.echo(f"wrote {path}")
        (output_dir / TEMPLATE.name).write_bytes(TEMPLATE.read_bytes())
    except InputError as error:
        raise _fail(error) from None
    click.echo(f"invoker package {zip_path} -> s3://{bucket}/{key}")


if __name__ == "__main__":
    endpoint()
