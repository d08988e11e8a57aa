"""`mme`: the project's command line (local runtime first; AWS commands mount here too)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from container.errors import InputError
from local.search import worker_pool
from local.workflow import DatasetResult, train_dataset
from modelbuild.cli import pipeline
from modelbuild.datasets import DataUnavailableError, default_registry, get_dataset

console = Console()
DEFAULT_WORKDIR = Path(".mme")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SageMaker multi-model endpoint MLOps template: local runtime and tools."""


def _summary(results: list[DatasetResult]) -> Table:
    table = Table(title="Best model per dataset (holdout = the test split)")
    for column in ("dataset", "best family", "metric", "CV", "holdout", "gate"):
        table.add_column(column, no_wrap=True)
    for r in results:
        verdict = "[green]pass[/]" if r.passes_gate else "[red]fail[/]"
        table.add_row(
            r.dataset.name,
            r.best.spec.family,
            r.dataset.metric,
            f"{r.best.score or float('nan'):.4f}",
            f"{r.holdout_value:.4f}",
            f"{verdict} >= {r.dataset.threshold}",
        )
    return table


@main.command()
@click.argument("datasets", nargs=-1)
@click.option(
    "--max-jobs", type=click.IntRange(1, 500), help="Trials per dataset (default: its budget)."
)
@click.option(
    "--workers", type=click.IntRange(1, 256), help="Worker processes (default: all cores)."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MME_DATA_DIR",
    help="Directory holding URL datasets' files, for offline use [env: MME_DATA_DIR].",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_WORKDIR,
    show_default=True,
    help="Where splits, trials, models and reports are written.",
)
def train(
    datasets: tuple[str, ...],
    max_jobs: int | None,
    workers: int | None,
    data_dir: Path | None,
    workdir: Path,
) -> None:
    """Tune all six families on each dataset (default: every registered one) and evaluate the best.

    With no dataset named, a URL dataset that can be neither found offline nor downloaded is
    skipped with a warning, so a machine without network still trains the bundled ones.
    """
    try:
        chosen = [get_dataset(name) for name in datasets] or list(default_registry().values())
    except InputError as error:
        raise click.UsageError(error.describe()) from None
    results = []
    with (
        worker_pool(workers) as pool,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        for dataset in chosen:
            task = progress.add_task(
                f"{dataset.name:>14}", total=max_jobs or dataset.budget.max_jobs
            )
            try:
                result = train_dataset(
                    dataset,
                    pool,
                    workdir,
                    max_jobs=max_jobs,
                    data_dir=data_dir,
                    on_trial=lambda _outcome, task=task: progress.advance(task),
                )
            except DataUnavailableError as error:
                if datasets:  # named on the command line: the user asked for this one
                    progress.stop()
                    console.print(f"[red]error:[/] {error.describe()}")
                    sys.exit(1)
                progress.remove_task(task)
                console.print(f"[yellow]skipped:[/] {error.describe()}")
                continue
            except InputError as error:
                progress.stop()
                console.print(f"[red]error:[/] {error.describe()}")
                sys.exit(1)
            results.append(result)
    console.print(_summary(results))
    console.print(f"Models, reports and plots: {workdir.resolve()}/<dataset>/")


main.add_command(pipeline)


if __name__ == "__main__":
    main()
