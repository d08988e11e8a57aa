"""`mme trials EXECUTION|DATASET [--aws]`: the tuning leaderboard of one pipeline execution.

Locally, the Tune step's record holds what DescribeHyperParameterTuningJob and its
TrainingJobSummaries say of each trial (family = training job definition, tuned hyperparameters,
status, times, the objective). The per-fold scores are not in a summary, on AWS or here: each
trial's model signature (`signature.json` in its model.tar.gz, written by
`container.training.run_trial`) carries them, at `<definition's S3OutputPath>/<training
job>/output/model.tar.gz`, where the executor, like SageMaker, puts a training job's artifact.
With --aws the same rows come from SageMaker (`modelbuild.trials_aws`); both print here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from container.errors import InputError
from modelbuild import naming
from modelbuild.trials import (
    Leaderboard,
    Trial,
    TrialScores,
    cv_from_metrics,
    rank_trials,
    signature_cv,
)

if TYPE_CHECKING:
    from local.executions import ExecutionRecord, StepRecord
    from local.home import LocalHome


def _dataset(record: ExecutionRecord) -> str:
    return str(record.parameters.get(naming.Params.DATASET, record.pipeline))


def _tuned(record: ExecutionRecord) -> StepRecord | None:
    """The execution's Tune step once it has trial summaries."""
    step = record.step(naming.Steps.TUNE)
    return step if step is not None and step.properties.get("TrainingJobSummaries") else None


def find_execution(home: LocalHome, project: str, target: str) -> ExecutionRecord:
    """TARGET as a registered dataset (its newest execution that got as far as tuning) or as an
    execution id or id prefix; a name that is neither is refused with the closest dataset."""
    from modelbuild.datasets import default_registry
    from modelbuild.did_you_mean import closest

    store = home.executions
    known = set(default_registry()) | {_dataset(r) for r in store.list()}
    if target not in known:
        try:
            return store.load(target)
        except InputError:
            near = closest(target, known)
            hint = f"; did you mean '{near}'?" if near else ""
            raise InputError(
                f"'{target}' is neither a pipeline execution nor a dataset{hint} "
                f"(datasets: {', '.join(sorted(known))}; executions: `mme executions`)"
            ) from None
    records = store.list(naming.pipeline_name(project, target))
    tuned = next((r for r in records if _tuned(r) is not None), None)
    if tuned is not None:
        return tuned
    if not records:
        raise InputError(f"dataset '{target}' has no pipeline executions yet (`mme run {target}`)")
    newest = records[0]
    why = f": {newest.failure_reason.splitlines()[0]}" if newest.failure_reason else ""
    raise InputError(
        f"dataset '{target}' has no execution that reached tuning "
        f"(newest: {newest.id}, {newest.status}{why})"
    )


def _output_paths(home: LocalHome, record: ExecutionRecord) -> dict[str, str]:
    """Each training job definition's S3OutputPath, from the definition the execution ran."""
    from local.executions import DEFINITION_FILE

    path = home.executions.directory(record.id) / DEFINITION_FILE
    try:
        definition = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    step = next((s for s in definition.get("Steps", []) if s.get("Name") == naming.Steps.TUNE), {})
    arguments = step.get("Arguments") or {}
    paths = {}
    for spec in arguments.get("TrainingJobDefinitions") or []:
        output = (spec.get("OutputDataConfig") or {}).get("S3OutputPath")
        if isinstance(output, str):  # a pipeline expression here would need the execution's scope
            paths[spec.get("DefinitionName", "")] = output.rstrip("/")
    return paths


def read_cv(home: LocalHome, artifact: str) -> TrialScores:
    """A trial's fold scores from the signature in its model.tar.gz in local S3, without
    unpacking the model; no scores when the artifact is gone or holds no CV result."""
    path = home.s3.path(artifact)
    if not path.is_file():
        return TrialScores(None, artifact)
    return TrialScores(signature_cv(path, artifact), artifact)


def leaderboard(home: LocalHome, record: ExecutionRecord) -> Leaderboard:
    """Every trial of the execution's Tune step, best first (by the objective's own type)."""
    step = _tuned(record)
    if step is None:
        tune = record.step(naming.Steps.TUNE)
        state = f"its Tune step is {tune.status}" if tune else "it has no Tune step"
        raise InputError(f"execution {record.id} has no tuning trials ({state})")
    outputs = _output_paths(home, record)

    trial_metrics = step.metadata.get("TrialMetrics", {})

    def lookup(summary: dict[str, Any]) -> TrialScores:
        """Like AWS: the trial's emitted metrics when they hold its folds, else its signature."""
        family = summary["TrainingJobDefinitionName"]
        artifact = (
            f"{outputs[family]}/{summary['TrainingJobName']}/output/model.tar.gz"
            if family in outputs
            else None
        )
        cv = cv_from_metrics(trial_metrics.get(summary["TrainingJobName"]))
        if cv is not None:
            return TrialScores(cv, artifact)
        return read_cv(home, artifact) if artifact else TrialScores()

    return Leaderboard(
        execution=record.id,
        pipeline=record.pipeline,
        dataset=_dataset(record),
        status=record.status,
        tuning_job=step.properties.get("HyperParameterTuningJobName"),
        cached_from=step.cached_from,
        metric=str(record.parameters.get(naming.Params.METRIC, "objective")),
        trials=rank_trials(step.properties["TrainingJobSummaries"], lookup),
    )


def _compact(hyperparameters: dict[str, str]) -> str:
    """`max_depth=28 learning_rate=0.01866`: floats to 4 significant digits, the rest as is."""
    parts = []
    for name, value in hyperparameters.items():
        try:
            shown = value if float(value).is_integer() else f"{float(value):.4g}"
        except ValueError:
            shown = value
        parts.append(f"{name}={shown}")
    return " ".join(parts)


def _score(trial: Trial) -> str:
    if trial.cv_mean is None:
        return "-"
    spread = f" ± {trial.cv_std:.4f}" if trial.cv_std is not None else ""
    return f"{trial.cv_mean:.4f}{spread}"


@click.command()
@click.argument("target", metavar="EXECUTION|DATASET")
@click.option("--limit", type=click.IntRange(1), help="Show only the best N trials.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
)
@click.option(
    "--aws",
    "on_aws",
    is_flag=True,
    help="Read the trials from SageMaker (TARGET: a pipeline execution ARN or a dataset) with "
    "your own AWS credentials.",
)
@click.option(
    "--region",
    # No envvar here: an ARN's own region must win over AWS_REGION; boto3 reads that after.
    help="AWS region with --aws (default: the ARN's, else AWS_REGION or your profile's).",
)
@click.pass_context
def trials(
    ctx: click.Context,
    target: str,
    limit: int | None,
    as_json: bool,
    on_aws: bool,
    region: str | None,
) -> None:
    """Show the tuning leaderboard of EXECUTION (an id or a prefix of one) or of DATASET's newest
    execution that reached tuning: family, hyperparameters, CV mean ± std and each fold's score,
    time and status, best first. With --aws, EXECUTION is a pipeline execution ARN."""
    settings = ctx.find_root().obj
    if target.startswith("arn:") and not on_aws:
        raise click.UsageError(f"'{target}' is an AWS ARN: add --aws to read it from SageMaker")
    if on_aws:
        from modelbuild.trials_aws import aws_leaderboard

        board = aws_leaderboard(target, settings.project, region)
    else:
        board = leaderboard(settings.home, find_execution(settings.home, settings.project, target))
    if as_json:
        click.echo(json.dumps(board.document(limit), indent=2))
        return
    _print(board, board.trials[:limit])


def _print(board: Leaderboard, shown: list[Trial]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from local.commands import common

    console = common.console  # the one that honours COLUMNS when piped; read when printing

    total = len(board.trials)
    running = sum(t.status in ("InProgress", "Stopping") for t in board.trials)
    cached = f", cached from execution {board.cached_from}" if board.cached_from else ""
    console.print(
        f"execution [bold]{escape(board.execution)}[/] of {board.pipeline} ({board.status}): "
        f"{total} trials, {board.completed} completed, "
        f"{total - board.completed - running} failed"
        f"{f', {running} running' if running else ''}{cached}",
        highlight=False,
    )
    table = Table()
    for column in ("rank", "family", "hyperparameters", f"CV {board.metric}", "folds", "time",
                   "status"):  # fmt: skip
        table.add_column(column, no_wrap=column not in ("hyperparameters", "status"))
    for trial in shown:
        folds = " ".join(f"{s:.4f}" for s in trial.fold_scores) if trial.fold_scores else "-"
        status = trial.status
        if trial.failure_reason:
            status += f": {trial.failure_reason.splitlines()[0]}"
        table.add_row(
            str(trial.rank) if trial.rank else "-",
            trial.family,
            escape(_compact(trial.hyperparameters)),
            _score(trial),
            folds,
            f"{trial.seconds:.1f} s" if trial.seconds is not None else "-",
            f"[{'green' if trial.status == 'Completed' else 'red'}]{escape(status)}[/]",
        )
    console.print(table)
    if len(shown) < len(board.trials):
        console.print(f"best {len(shown)} of {len(board.trials)} trials (--limit)")
    missing = [t for t in shown if t.status == "Completed" and t.fold_scores is None]
    if missing:
        console.print(
            f"[yellow]fold scores unavailable for {len(missing)} trial(s): their model artifacts "
            "are gone (the mean is the objective the tuner recorded)[/]"
        )
