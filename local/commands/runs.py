"""`mme run` and `mme demo`: the modelbuild pipelines executed on this machine (and, for the
demo, the whole lifecycle after them)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from container.errors import InputError
from local.commands.common import Settings, console, settings_of
from local.commands.registry import models_table, say
from local.execution_summary import unchanged_reason
from modelbuild import environment, naming
from modelbuild.cli_common import parameter_option

if TYPE_CHECKING:
    from local.runs import Summary
    from modelbuild.datasets import Dataset

DEMO_MAX_JOBS = 12
# Progress lines per tuning step when the output is not a terminal.
TRIAL_LINES = 10


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
            envvar=environment.DATA_DIR,
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
            built = build(dataset, settings.home, settings.project, data_dir)
            record = execute(executor, built, overrides)
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
                raise
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
        "CV mean ± std",
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
            s.cv_cell,
            holdout or "-",
            f"v{s.version}"
            if s.version is not None
            else ("unchanged" if unchanged_reason(s.execution) else "-"),
            status,
            s.execution.id,
        )
    return table


def _report(summaries: list[Summary]) -> None:
    console.print(_summary_table(summaries))
    for s in summaries:
        if s.status != "Succeeded":
            console.print(f"[red]{s.dataset}:[/] {escape(s.reason or s.status)}")
        elif (unchanged := unchanged_reason(s.execution)) is not None:
            console.print(f"{s.dataset}: {escape(unchanged)}")


@click.command()
@click.argument("datasets", nargs=-1)
@_run_options
@click.option(
    "--threshold",
    # The registry's bounds for a dataset's threshold (modelbuild.datasets.Dataset).
    type=click.FloatRange(0.0, 1.0),
    help="RegistrationThreshold for this execution, from 0 to 1.",
)
@parameter_option(
    "Any pipeline parameter for this execution (repeatable), typed as the definition declares "
    "it: a Boolean is true or false."
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
    parameters: dict[str, str],
) -> None:
    """Run the modelbuild pipeline of each DATASET (default: every registered one) locally.

    Builds each dataset's SageMaker pipeline definition with the same code CI uses and executes
    that JSON: preprocess, tune, evaluate, and register the model if its holdout metric clears
    the threshold. Each dataset's data is checked first, within a second (modelbuild.data_check);
    a named dataset that fails the check fails the run naming its file; with no dataset named,
    a failing one (or a URL dataset neither cached nor in --data-dir) is skipped with a warning.
    """
    from local.runs import PARAMETER_OPTIONS

    # Typed against each dataset's definition when its execution starts (local.runs).
    overrides: dict[str, Any] = dict(parameters)
    given = {"max_jobs": max_jobs, "max_parallel_jobs": max_parallel_jobs,
             "cv_folds": cv_folds, "threshold": threshold}  # fmt: skip
    overrides.update({PARAMETER_OPTIONS[k]: v for k, v in given.items() if v is not None})
    summaries = _run_datasets(
        settings_of(ctx), datasets, overrides, workers=workers, use_cache=cache, data_dir=data_dir
    )
    _report(summaries)
    if any(s.status != "Succeeded" for s in summaries):
        sys.exit(1)


@click.command()
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

    settings = settings_of(ctx)
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

    with (
        LocalEndpoint(settings.home.root, settings.project) as running,
        announced(running, settings.home.root),
    ):
        _approve_all(settings, summaries)
        console.rule("3. The manual gate: promote dev to prod, smoke-test prod")
        _promote_and_smoke(settings)
        console.rule("4. Invoke: one row per dataset through the prod invoker")
        _invoke_examples(settings, running.url)
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
    registry.subscribe(deploy_on_approval(settings.home, settings.project, say))
    for s in summaries:
        if s.version is None:
            reason = unchanged_reason(s.execution) or "nothing registered"
            console.print(f"{s.dataset}: {reason}, nothing to approve")
            continue
        group = naming.model_package_group_name(settings.project, s.dataset)
        package = registry.update_approval(group, s.version, "Approved", "approved by mme demo")
        console.print(f"{s.dataset}: approved {package.arn}")
    console.print(models_table(settings, registry.list_packages()))


def _promote_and_smoke(settings: Settings) -> None:
    from local.deploy_backend import promote
    from local.endpoint import smoke_locally

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

    from local.deploy_store import local_deployer
    from local.endpoint import local_invoker
    from modeldeploy.artifacts import verify_archive
    from modeldeploy.invoker import request_event
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
