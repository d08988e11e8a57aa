"""`mme`: the project's command line (local runtime first; AWS commands mount here too).

Heavy imports (the SageMaker SDK, scikit-learn) happen inside the commands that need them, so
listing executions or approving a model starts quickly.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from container.errors import InputError
from local.home import DEFAULT_HOME, LocalHome
from local.report_cli import report
from local.trials_cli import trials
from modelbuild import naming
from modelbuild.cli import pipeline
from modeldeploy.cli import endpoint
from template.aws_cli import aws
from template.cli import template

if TYPE_CHECKING:
    from local.executions import ExecutionRecord
    from local.registry import ModelPackage
    from local.runs import Summary
    from modelbuild.datasets import Dataset

# Piped or captured output (CI logs, files) gets room for the summary tables, unless COLUMNS
# says how wide the reader is.
PIPED_WIDTH = 120


def _width() -> int | None:
    """COLUMNS when set (also when piped); else the terminal's (None: rich asks it), else 120."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if sys.stdout.isatty() else PIPED_WIDTH


console = Console(width=_width())
DEMO_MAX_JOBS = 12
# Progress lines per tuning step when the output is not a terminal.
TRIAL_LINES = 10


@dataclass(frozen=True)
class Settings:
    home: LocalHome
    project: str


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_root().obj  # type: ignore[no-any-return]


def _fail(error: InputError) -> click.ClickException:
    return click.ClickException(error.describe())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sagemaker-mme-mlops", prog_name="mme")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MME_HOME",
    default=DEFAULT_HOME,
    show_default=True,
    help="State directory: local S3, model registry, executions and logs [env: MME_HOME].",
)
@click.option(
    "--project-name",
    envvar="SAGEMAKER_PROJECT_NAME",
    default=naming.DEFAULT_PROJECT_NAME,
    show_default=True,
    help="Project name: names pipelines, the bucket and model package groups.",
)
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
    # Mounted groups (`mme endpoint`, `mme pipeline`) read these from the environment; click
    # parses a subcommand's options after this callback, so `mme --home X endpoint ...` agrees.
    for name, value in (("MME_HOME", str(home)), ("SAGEMAKER_PROJECT_NAME", project_name)):
        ctx.call_on_close(partial(_restore_env, name, os.environ.get(name)))
        os.environ[name] = value


def _restore_env(name: str, previous: str | None) -> None:
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


# ---------------------------------------------------------------------------- run and demo


def _run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--max-jobs",
            type=click.IntRange(1, 500),
            help="Tuning trials per dataset (MaxTuningJobs; default: the dataset's budget).",
        ),
        click.option(
            "--max-parallel-jobs",
            type=click.IntRange(1, 100),
            help="Trials at once (MaxParallelTuningJobs; also capped by --workers).",
        ),
        click.option("--cv-folds", type=click.IntRange(2, 20), help="Cross-validation folds."),
        click.option(
            "--workers", type=click.IntRange(1, 256), help="Worker processes (default: all cores)."
        ),
        click.option(
            "--cache/--no-cache",
            default=True,
            show_default=True,
            help="Reuse unchanged steps from earlier executions (SageMaker step caching).",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="MME_DATA_DIR",
            help="Directory holding URL datasets' files, for offline use [env: MME_DATA_DIR].",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _run_datasets(
    settings: Settings,
    names: tuple[str, ...],
    overrides: dict[str, Any],
    *,
    workers: int | None,
    use_cache: bool,
    data_dir: Path | None,
) -> list[Summary]:
    """Check each dataset's data, then build and execute its pipeline; a summary per dataset
    that ran."""
    from modelbuild.datasets import default_registry
    from modelbuild.suggest import registered_dataset

    try:
        chosen = [registered_dataset(name) for name in names] or list(default_registry().values())
    except InputError as error:
        raise click.UsageError(error.describe()) from None
    chosen = _checked(chosen, named=bool(names), data_dir=data_dir)

    from local.executor import PipelineExecutor
    from local.jobs import JobRunner
    from local.runs import build, execute, summarize

    summaries = []
    with JobRunner(workers) as runner, _progress() as progress:
        runner.start()  # workers import their libraries while the definitions are built
        executor = PipelineExecutor(settings.home, runner, use_cache=use_cache)
        for dataset in chosen:
            task = progress.add_task(f"{dataset.name:>14}  building the definition", total=None)
            executor.listener = _progress_listener(progress, task, dataset.name)
            try:
                built = build(dataset, settings.home, settings.project, data_dir)
                record = execute(executor, built, overrides)
            except InputError as error:
                raise _fail(error) from None
            progress.update(task, description=f"{dataset.name:>14}  {record.status}")
            summaries.append(summarize(settings.home, dataset.name, record))
    return summaries


def _checked(chosen: list[Dataset], *, named: bool, data_dir: Path | None) -> list[Dataset]:
    """The datasets whose data passes the early check (modelbuild.data_check), in a second and
    before any worker starts or the SDK is imported; what the user should know is printed.
    A dataset named on the command line fails the run; otherwise a failing one is skipped."""
    from modelbuild.data_check import check_dataset

    usable = []
    for dataset in chosen:
        try:
            found = check_dataset(dataset, data_dir)
        except InputError as error:
            if named:
                raise _fail(error) from None
            console.print(f"[yellow]skipped:[/] {escape(error.describe())}")
            continue
        for note in found.notes:
            warning = InputError(note, dataset=dataset.name, file=found.file).describe()
            console.print(f"[yellow]warning:[/] {escape(warning)}")
        usable.append(dataset)
    return usable


def _progress_listener(progress: Any, task: Any, dataset: str) -> Callable[[Any], None]:
    """One dataset's bar: the step running, and the tuning trials done out of all."""

    def listener(event: Any) -> None:
        if event.kind == "step-started":
            progress.update(task, description=f"{dataset:>14}  {event.step}")
        elif event.kind == "job-finished":
            progress.update(task, completed=event.done, total=event.total)
        elif event.kind == "step-finished" and event.cached:
            progress.update(task, description=f"{dataset:>14}  {event.step} (cached)")
        if not console.is_terminal:
            _progress_line(event, dataset)

    return listener


def _progress_line(event: Any, dataset: str) -> None:
    """Piped or logged output has no live bar: a line per finished step, and per tenth of the
    tuning trials, so a CI log shows the run moving instead of a minute of silence."""
    if event.kind == "step-finished":
        cached = " (cached)" if event.cached else ""
        console.print(f"{dataset:>14}  {event.step}: {event.status}{cached}", highlight=False)
    elif event.kind == "job-finished" and event.total:
        batch = max(1, -(-event.total // TRIAL_LINES))  # ceil: at most TRIAL_LINES lines
        if event.done % batch == 0 or event.done == event.total:
            console.print(
                f"{dataset:>14}  {event.step}: {event.done}/{event.total} trials finished",
                highlight=False,
            )


def _summary_table(summaries: list[Summary]) -> Table:
    table = Table(title="Pipeline executions (holdout = the test split)")
    for column in (
        "dataset",
        "best family",
        "CV score",
        "holdout metrics",
        "registered",
        "status",
        "execution",
    ):
        table.add_column(column, no_wrap=True)
    for s in summaries:
        holdout = "\n".join(f"{name} {value:.4f}" for name, value in s.holdout.items())
        status = "[green]Succeeded[/]" if s.status == "Succeeded" else f"[red]{s.status}[/]"
        table.add_row(
            s.dataset,
            s.best_family or "-",
            f"{s.cv_score:.4f}" if s.cv_score is not None else "-",
            holdout or "-",
            f"v{s.version}"
            if s.version is not None
            else ("unchanged" if _unchanged(s.execution) else "-"),
            status,
            s.execution.id,
        )
    return table


def _report(summaries: list[Summary]) -> None:
    console.print(_summary_table(summaries))
    for s in summaries:
        if s.status != "Succeeded":
            console.print(f"[red]{s.dataset}:[/] {escape(s.reason or s.status)}")
        elif (unchanged := _unchanged(s.execution)) is not None:
            console.print(f"{s.dataset}: {escape(unchanged)}")


@main.command()
@click.argument("datasets", nargs=-1)
@_run_options
@click.option(
    "--threshold",
    # The registry's bounds for a dataset's threshold (modelbuild.datasets.Dataset).
    type=click.FloatRange(0.0, 1.0),
    help="RegistrationThreshold for this execution, from 0 to 1.",
)
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any pipeline parameter for this execution (repeatable).",
)
@click.pass_context
def run(
    ctx: click.Context,
    datasets: tuple[str, ...],
    max_jobs: int | None,
    max_parallel_jobs: int | None,
    cv_folds: int | None,
    workers: int | None,
    cache: bool,
    data_dir: Path | None,
    threshold: float | None,
    parameters: tuple[str, ...],
) -> None:
    """Run the modelbuild pipeline of each DATASET (default: every registered one) locally.

    Builds each dataset's SageMaker pipeline definition with the same code CI uses and executes
    that JSON: preprocess, tune, evaluate, and register the model if its holdout metric clears
    the threshold. Each dataset's data is checked first, within a second (modelbuild.data_check);
    a named dataset that fails the check fails the run naming its file; with no dataset named,
    a failing one (or a URL dataset neither cached nor in --data-dir) is skipped with a warning.
    """
    from local.runs import PARAMETER_OPTIONS

    overrides: dict[str, Any] = {}
    for item in parameters:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="-p")
        overrides[name] = value
    given = {"max_jobs": max_jobs, "max_parallel_jobs": max_parallel_jobs,
             "cv_folds": cv_folds, "threshold": threshold}  # fmt: skip
    overrides.update({PARAMETER_OPTIONS[k]: v for k, v in given.items() if v is not None})
    summaries = _run_datasets(
        _settings(ctx), datasets, overrides, workers=workers, use_cache=cache, data_dir=data_dir
    )
    _report(summaries)
    if any(s.status != "Succeeded" for s in summaries):
        sys.exit(1)


@main.command()
@_run_options
@click.pass_context
def demo(
    ctx: click.Context,
    max_jobs: int | None,
    max_parallel_jobs: int | None,
    cv_folds: int | None,
    workers: int | None,
    cache: bool,
    data_dir: Path | None,
) -> None:
    """The whole lifecycle on this machine: run every dataset's pipeline, approve what it
    registered (each approval deploys to dev and smoke-tests it), promote dev to prod through
    the manual gate, and invoke every dataset's live model through the prod invoker.

    Uses a small tuning budget (--max-jobs, default 12 per dataset) so it finishes in minutes.
    """
    from local.runs import PARAMETER_OPTIONS

    settings = _settings(ctx)
    given = {"max_jobs": max_jobs or DEMO_MAX_JOBS, "max_parallel_jobs": max_parallel_jobs,
             "cv_folds": cv_folds}  # fmt: skip
    overrides = {PARAMETER_OPTIONS[k]: v for k, v in given.items() if v is not None}
    console.rule("1. Model build: the pipeline definition of every dataset, executed locally")
    summaries = _run_datasets(
        settings, (), overrides, workers=workers, use_cache=cache, data_dir=data_dir
    )
    _report(summaries)
    console.rule("2. Approval in the model registry -> dev deployment and smoke test")
    from local.endpoint import LocalEndpoint, announced

    try:
        with (
            LocalEndpoint(settings.home.root, settings.project) as running,
            announced(running, settings.home.root),
        ):
            _approve_all(settings, summaries)
            console.rule("3. The manual gate: promote dev to prod, smoke-test prod")
            _promote_and_smoke(settings)
            console.rule("4. Invoke: one row per dataset through the prod invoker")
            _invoke_examples(settings, running.url)
    except InputError as error:
        raise _fail(error) from None
    console.rule("Next")
    console.print(
        "mme executions · mme steps <execution> · mme models · mme approve/reject <dataset> "
        "\\[version] · mme endpoint serve · mme endpoint invoke <dataset> <rows> · "
        f"state in {settings.home.root.resolve()}"
    )
    if any(s.status != "Succeeded" for s in summaries):
        sys.exit(1)


def _approve_all(settings: Settings, summaries: list[Summary]) -> None:
    from local.approval import deploy_on_approval

    registry = settings.home.registry
    registry.subscribe(deploy_on_approval(settings.home, settings.project, _say))
    for s in summaries:
        if s.version is None:
            reason = _unchanged(s.execution) or "nothing registered"
            console.print(f"{s.dataset}: {reason}, nothing to approve")
            continue
        group = naming.model_package_group_name(settings.project, s.dataset)
        package = registry.update_approval(group, s.version, "Approved", "approved by mme demo")
        console.print(f"{s.dataset}: approved {package.arn}")
    console.print(_models_table(settings, registry.list_packages()))


def _promote_and_smoke(settings: Settings) -> None:
    from local.endpoint import smoke_locally
    from modeldeploy.local import promote

    report = promote(settings.home.root, project=settings.project)
    for change in report.changes:
        console.print(f"prod: {change.dataset} {change.action}: {escape(change.message)}")
    report.raise_for_failures()
    for result in smoke_locally(settings.home.root, "prod", project=settings.project):
        verdict = "[green]ok[/]" if result.ok else "[red]FAILED[/]"
        console.print(f"prod smoke test {result.dataset}: {verdict} {escape(result.message)}")


def _invoke_examples(settings: Settings, endpoint_url: str) -> None:
    """What a caller of the invoker URL sees, for a typical row of each dataset."""
    import tempfile

    from local.endpoint import local_invoker
    from modeldeploy.artifacts import verify_archive
    from modeldeploy.invoker import request_event
    from modeldeploy.local import local_deployer
    from modeldeploy.smoke import example_record

    deployer = local_deployer(settings.home.root, settings.project)
    invoker = local_invoker(settings.home.root, "prod", endpoint_url, settings.project)
    table = Table(title="POST {dataset, rows} to the prod invoker")
    for column in ("dataset", "label", "probability", "package version", "model (sha256)"):
        table.add_column(column)
    for dataset, route in sorted(deployer.read_table("prod").routes.items()):
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / "model.tar.gz"
            deployer.storage.download(route.model_data_url, archive)
            signature = verify_archive(archive, route.model_data_url).signature
        response = invoker.handle(request_event(dataset, [example_record(signature)]))
        body = json.loads(response["body"])
        if response["statusCode"] != 200:
            raise InputError(f"invoking {dataset}: {response['statusCode']} {body['message']}")
        prediction = body["predictions"][0]
        table.add_row(
            dataset,
            str(prediction["label"]),
            f"{max(prediction['probabilities'].values()):.3f}",
            str(body["model_package_version"]),
            body["model_version"][:12],
        )
    console.print(table)


# ---------------------------------------------------------------------------- executions

_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
)


def _print_json(document: Any) -> None:
    # click.echo, not the rich console: no wrapping, colour or markup in what a script parses.
    click.echo(json.dumps(document, indent=2, default=str))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _when(timestamp: str | None) -> str:
    return timestamp[:19].replace("T", " ") if timestamp else "-"


@main.command()
@click.option("-d", "--dataset", help="Only this dataset's pipeline.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@_json_option
@click.pass_context
def executions(ctx: click.Context, dataset: str | None, limit: int, as_json: bool) -> None:
    """List pipeline executions, newest first."""
    settings = _settings(ctx)
    try:
        pipeline_name = (
            naming.pipeline_name(settings.project, _dataset_of(settings, dataset))
            if dataset
            else None
        )
    except InputError as error:
        raise _fail(error) from None
    records = settings.home.executions.list(pipeline_name)[:limit]
    if as_json:
        fields = ("id", "pipeline", "status", "started", "ended", "seconds", "failure_reason")
        _print_json([{**{f: getattr(r, f) for f in fields}, "result": _result(r)} for r in records])
        return
    table = Table(title=f"Pipeline executions in {settings.home.root}")
    for column in ("execution", "pipeline", "status", "started (UTC)", "duration", "result"):
        table.add_column(column, no_wrap=column != "result")
    for record in records:
        result = _result(record)
        colour = {"Succeeded": "green", "Executing": "yellow"}.get(record.status, "red")
        table.add_row(
            record.id,
            record.pipeline,
            f"[{colour}]{record.status}[/]",
            _when(record.started),
            _duration(record.seconds),
            escape(result),
        )
    console.print(table)
    if not records:
        console.print("No executions yet: `mme run` or `mme demo` starts one.")


def _result(record: ExecutionRecord) -> str:
    """What an execution came to, in one line: the version it registered, or why not."""
    register = record.step(naming.Steps.REGISTER)
    if register is not None and register.status == "Succeeded":
        return f"registered version {register.properties.get('ModelPackageVersion')}"
    if record.failure_reason:
        return record.failure_reason.splitlines()[0]
    return _unchanged(record) or ""


def _unchanged(record: ExecutionRecord) -> str | None:
    """Why a succeeded execution registered nothing: CheckModelChanged found the same model."""
    from modelbuild.versions import unchanged_message

    check = record.step(naming.Steps.CHECK_CHANGED)
    if check is None or check.status != "Succeeded" or check.properties.get("Outcome") is not False:
        return None
    return unchanged_message(
        int(record.parameters.get(naming.Params.LATEST_MODEL_VERSION, 0)),
        str(record.parameters.get(naming.Params.LATEST_MODEL_SHA256, "")),
    )


def _step_outputs(step: Any) -> str:
    properties = step.properties
    if step.type == "Processing":
        return "\n".join(o["S3Output"]["S3Uri"] for o in properties.get("ProcessingOutputConfig", {}).get("Outputs", []))  # fmt: skip
    if step.type == "Tuning":
        best = properties.get("BestTrainingJob", {})
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        counts = properties.get("TrainingJobStatusCounters", {})
        return (
            f"best {best.get('TrainingJobName')} ({best.get('TrainingJobDefinitionName')}, "
            f"{objective.get('MetricName')} {objective.get('Value', float('nan')):.4f}); "
            f"{counts.get('Completed', 0)} completed, {counts.get('NonRetryableError', 0)} failed"
        )
    if step.type == "Training":
        return str(properties.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""))
    if step.type == "Condition":
        return f"outcome {properties.get('Outcome')}"
    if step.type == "RegisterModel":
        return str(properties.get("ModelPackageArn", ""))
    return ""


@main.command()
@click.argument("execution")
@click.option("--logs", is_flag=True, help="Also list every job's log file.")
@_json_option
@click.pass_context
def steps(ctx: click.Context, execution: str, logs: bool, as_json: bool) -> None:
    """Show the steps of EXECUTION (an id, or a prefix of one): status, duration, outputs."""
    settings = _settings(ctx)
    try:
        record = settings.home.executions.load(execution)
    except InputError as error:
        raise _fail(error) from None
    if as_json:
        # The whole record (each step's properties are what a Describe* call returns); log
        # paths are made absolute so a script can open them.
        directory = settings.home.executions.directory(record.id)
        document = asdict(record)
        for step, raw in zip(record.steps, document["steps"], strict=True):
            raw.update(seconds=step.seconds, logs=[str(directory / log) for log in step.logs])
        _print_json({**document, "seconds": record.seconds, "result": _result(record)})
        return
    console.print(
        f"execution [bold]{record.id}[/] of {record.pipeline}: {record.status}, "
        f"started {_when(record.started)} UTC, {_duration(record.seconds)}"
    )
    table = Table()
    for column in ("step", "type", "status", "duration", "cache", "outputs"):
        table.add_column(column, no_wrap=column != "outputs", overflow="fold")
    for step in record.steps:
        colour = {"Succeeded": "green", "Executing": "yellow"}.get(step.status, "red")
        cache = (
            f"hit: {step.cached_from}" if step.cached_from else ("miss" if step.cache_key else "-")
        )
        table.add_row(
            step.name,
            step.type,
            f"[{colour}]{step.status}[/]",
            _duration(step.seconds),
            cache,
            escape(_step_outputs(step) if step.status == "Succeeded" else ""),
        )
    console.print(table)
    if record.failure_reason:
        console.print(f"[red]failure:[/] {escape(record.failure_reason)}")
    unchanged = _unchanged(record)
    if unchanged:
        console.print(f"[green]{escape(unchanged)}[/]")
    if logs:
        directory = settings.home.executions.directory(record.id)
        for step in record.steps:
            for log in step.logs:
                console.print(f"{step.name}: {directory / log}", highlight=False)


# ---------------------------------------------------------------------------- registry


def _holdout(settings: Settings, package: ModelPackage) -> str:
    from local.runs import read_json

    uri = package.model_metrics.get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    report = read_json(settings.home, uri) if uri else {}
    metric = report.get("register_metric", {})
    return f"{metric['name']} {metric['value']:.4f}" if "value" in metric else "-"


def _models_table(settings: Settings, packages: list[ModelPackage]) -> Table:
    table = Table(title="Model registry")
    for column in ("group", "version", "status", "algorithm", "holdout", "created (UTC)",
                   "artifact", "approval description"):  # fmt: skip
        table.add_column(column, no_wrap=column not in ("artifact", "approval description"))
    colours = {"Approved": "green", "Rejected": "red", "PendingManualApproval": "yellow"}
    for package in packages:
        table.add_row(
            package.group_name,
            str(package.version),
            f"[{colours[package.approval_status]}]{package.approval_status}[/]",
            package.customer_metadata.get("algorithm", "-"),
            _holdout(settings, package),
            _when(package.creation_time),
            package.model_data_url,
            escape(package.approval_description),
        )
    return table


@main.command()
@click.argument("dataset", required=False)
@click.option(
    "--status",
    type=click.Choice(["PendingManualApproval", "Approved", "Rejected"]),
    help="Only versions with this approval status.",
)
@_json_option
@click.pass_context
def models(ctx: click.Context, dataset: str | None, status: str | None, as_json: bool) -> None:
    """List model versions (all groups, or DATASET's), newest first."""
    settings = _settings(ctx)
    try:
        group = _group(settings, dataset) if dataset else None
        packages = settings.home.registry.list_packages(group, status)  # type: ignore[arg-type]
    except InputError as error:
        raise _fail(error) from None
    if as_json:
        _print_json([asdict(package) for package in packages])
        return
    console.print(_models_table(settings, packages))
    if not packages:
        console.print("No model versions yet: `mme run` registers one per dataset that passes.")


def _group(settings: Settings, dataset_or_group: str) -> str:
    from local.approval import group_of

    return group_of(settings.home, settings.project, dataset_or_group)


def _dataset_of(settings: Settings, dataset_or_group: str) -> str:
    from local.approval import dataset_of

    return dataset_of(settings.home, settings.project, dataset_or_group)


def _say(outcome: Any) -> None:
    verdict = "" if outcome.ok else "[red]"
    console.print(f"  {verdict}{escape(outcome.text)}")


class _Version(click.ParamType):
    """A model package version as the tables print it: `v2` (the run summary) or `2`."""

    name = "VERSION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        digits = str(value).strip().removeprefix("v").removeprefix("V")
        if not digits.isdigit() or int(digits) < 1:
            self.fail(f"{value!r} is not a model version (1, 2, ... or v1, v2, ...)", param, ctx)
        return int(digits)


VERSION = _Version()

_deploy_option = click.option(
    "--deploy/--no-deploy",
    default=True,
    show_default=True,
    help="Deploy the change to dev and smoke-test it, as EventBridge does on AWS.",
)


def _decide(
    ctx: click.Context,
    target: str,
    version: int | None,
    status: str,
    note: str,
    deploy: bool,
    canary: bool = False,
) -> None:
    from local.approval import decide

    settings = _settings(ctx)
    if canary and not deploy:
        raise click.UsageError("--canary deploys to dev; it cannot go with --no-deploy")
    try:
        decision = decide(
            settings.home,
            settings.project,
            target,
            version,
            status,  # type: ignore[arg-type]
            note,
            deploy=deploy,
            canary=canary,
            report=_say,
        )
    except InputError as error:
        raise _fail(error) from None
    package = decision.package
    if not decision.changed:
        console.print(f"{package.arn} was already {status}; nothing changed")
        return
    console.print(f"{package.arn}: {decision.before} -> {status}")


@main.command()
@click.argument("dataset")
@click.argument("version", type=VERSION, required=False)
@click.option("-m", "--description", default="", help="Approval description.")
@_deploy_option
@click.option(
    "--canary",
    is_flag=True,
    help="Deploy a version newer than dev's live one as dev's canary beside it, with dev's "
    "Canary.Weight, instead of replacing it.",
)
@click.pass_context
def approve(
    ctx: click.Context,
    dataset: str,
    version: int | None,
    description: str,
    deploy: bool,
    canary: bool,
) -> None:
    """Approve VERSION (default: the newest) of DATASET's model package group."""
    _decide(ctx, dataset, version, "Approved", description, deploy, canary)


@main.command()
@click.argument("dataset")
@click.argument("version", type=VERSION, required=False)
@click.option("-m", "--description", default="", help="Why it was rejected.")
@_deploy_option
@click.pass_context
def reject(
    ctx: click.Context, dataset: str, version: int | None, description: str, deploy: bool
) -> None:
    """Reject VERSION (default: the newest) of DATASET's model package group; on dev, a
    rejected live version rolls back to the newest approved one."""
    _decide(ctx, dataset, version, "Rejected", description, deploy)


@main.command()
@click.option("--after", type=click.IntRange(0), default=0, help="Only events after this id.")
@_json_option
@click.pass_context
def events(ctx: click.Context, after: int, as_json: bool) -> None:
    """List model package state change events (what EventBridge would deliver)."""
    settings = _settings(ctx)
    try:
        found = settings.home.registry.events(after)
    except InputError as error:
        raise _fail(error) from None
    if as_json:
        _print_json([asdict(event) for event in found])
        return
    table = Table(title="SageMaker Model Package State Change events")
    for column in ("id", "time (UTC)", "group", "version", "status", "description"):
        table.add_column(column)
    for event in found:
        table.add_row(
            str(event.id),
            _when(event.time),
            event.group_name,
            str(event.detail["ModelPackageVersion"]),
            event.approval_status,
            escape(event.detail.get("ApprovalDescription", "")),
        )
    console.print(table)


main.add_command(pipeline)
main.add_command(endpoint)
main.add_command(template)
main.add_command(aws)
main.add_command(report)
main.add_command(trials)


if __name__ == "__main__":
    main()
