"""`mme trials EXECUTION|DATASET`: the tuning leaderboard of one pipeline execution.

The Tune step's record holds what DescribeHyperParameterTuningJob and its TrainingJobSummaries
say of each trial (family = training job definition, tuned hyperparameters, status, times, the
objective). The per-fold scores are not in a summary, on AWS or here: each trial's model
signature (`signature.json` in its model.tar.gz, written by `container.training.run_trial`)
carries them, at `<definition's S3OutputPath>/<training job>/output/model.tar.gz`, where the
executor, like SageMaker, puts a training job's artifact.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from container.archive import checked_members, open_archive
from container.errors import InputError
from container.layout import SIGNATURE_FILE
from modelbuild import naming

if TYPE_CHECKING:
    from local.executions import ExecutionRecord, StepRecord
    from local.home import LocalHome

# A signature is feature names, classes and baseline statistics: a few hundred KB at most.
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Trial:
    rank: int | None  # None: the trial reported no objective
    training_job: str
    family: str
    hyperparameters: dict[str, str]  # the tuned ones, as the tuner passed them
    status: str
    cv_mean: float | None
    cv_std: float | None
    fold_scores: list[float] | None  # None: the trial's artifact is gone or unreadable
    seconds: float | None
    failure_reason: str | None
    artifact: str | None


@dataclass(frozen=True)
class Leaderboard:
    execution: ExecutionRecord
    step: StepRecord
    metric: str
    trials: list[Trial]  # best first


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
    from modelbuild.suggest import closest

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


def _seconds(summary: dict[str, Any]) -> float | None:
    started, ended = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
    if not started or not ended:
        return None
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()


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


def read_cv(home: LocalHome, artifact: str) -> dict[str, Any] | None:
    """The `cv` section of the signature inside a trial's model.tar.gz, without unpacking the
    model; None when the artifact is gone or holds no CV result."""
    path = home.s3.path(artifact)
    if not path.is_file():
        return None
    with open_archive(path, artifact) as tar:
        for member in checked_members(tar, artifact):
            if member.name != SIGNATURE_FILE:
                continue
            if member.size > MAX_SIGNATURE_BYTES:
                raise InputError(f"{SIGNATURE_FILE} is {member.size} bytes", file=artifact)
            stream = tar.extractfile(member)
            try:
                signature = json.loads(stream.read()) if stream else {}
            except ValueError as error:
                raise InputError(f"{SIGNATURE_FILE} is not JSON: {error}", file=artifact) from None
            cv = signature.get("cv")
            return cv if isinstance(cv, dict) else None
    return None


def leaderboard(home: LocalHome, record: ExecutionRecord) -> Leaderboard:
    """Every trial of the execution's Tune step, best first (by the objective's own type)."""
    step = _tuned(record)
    if step is None:
        tune = record.step(naming.Steps.TUNE)
        state = f"its Tune step is {tune.status}" if tune else "it has no Tune step"
        raise InputError(f"execution {record.id} has no tuning trials ({state})")
    outputs = _output_paths(home, record)
    trials = []
    for summary in step.properties["TrainingJobSummaries"]:
        family = summary["TrainingJobDefinitionName"]
        objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        artifact = None
        cv = None
        if summary["TrainingJobStatus"] == "Completed" and family in outputs:
            artifact = f"{outputs[family]}/{summary['TrainingJobName']}/output/model.tar.gz"
            cv = read_cv(home, artifact)
        trials.append(
            (
                objective,
                Trial(
                    rank=None,
                    training_job=summary["TrainingJobName"],
                    family=family,
                    hyperparameters=dict(summary.get("TunedHyperParameters") or {}),
                    status=summary["TrainingJobStatus"],
                    cv_mean=cv["mean"] if cv else objective.get("Value"),
                    cv_std=cv["std"] if cv else None,
                    fold_scores=list(cv["fold_scores"]) if cv else None,
                    seconds=_seconds(summary),
                    failure_reason=summary.get("FailureReason"),
                    artifact=artifact,
                ),
            )
        )

    def order(item: tuple[dict[str, Any], Trial]) -> tuple[int, float]:
        objective, _ = item
        if "Value" not in objective:
            return (1, 0.0)
        value = float(objective["Value"])
        return (0, -value if objective.get("Type") == "Maximize" else value)

    ranked = []
    for position, (objective, trial) in enumerate(sorted(trials, key=order), start=1):
        ranked.append(
            Trial(**{**asdict(trial), "rank": position if "Value" in objective else None})
        )
    metric = str(record.parameters.get(naming.Params.METRIC, "objective"))
    return Leaderboard(record, step, metric, ranked)


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


def _document(board: Leaderboard, trials: list[Trial]) -> dict[str, Any]:
    record, step = board.execution, board.step
    return {
        "execution": record.id,
        "pipeline": record.pipeline,
        "dataset": _dataset(record),
        "status": record.status,
        "tuning_job": step.properties.get("HyperParameterTuningJobName"),
        "cached_from": step.cached_from,
        "metric": board.metric,
        "trials_total": len(board.trials),
        "trials": [asdict(t) for t in trials],
    }


@click.command()
@click.argument("target", metavar="EXECUTION|DATASET")
@click.option("--limit", type=click.IntRange(1), help="Show only the best N trials.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
)
@click.pass_context
def trials(ctx: click.Context, target: str, limit: int | None, as_json: bool) -> None:
    """Show the tuning leaderboard of EXECUTION (an id or a prefix of one) or of DATASET's newest
    execution that reached tuning: family, hyperparameters, CV mean ± std and each fold's score,
    time and status, best first."""
    settings = ctx.find_root().obj
    try:
        record = find_execution(settings.home, settings.project, target)
        board = leaderboard(settings.home, record)
    except InputError as error:
        raise click.ClickException(error.describe()) from None
    shown = board.trials[:limit]
    if as_json:
        click.echo(json.dumps(_document(board, shown), indent=2))
        return
    _print(board, shown)


def _print(board: Leaderboard, shown: list[Trial]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from local.cli import console  # the one console that honours COLUMNS when piped

    record, step = board.execution, board.step
    completed = sum(t.status == "Completed" for t in board.trials)
    cached = f", cached from execution {step.cached_from}" if step.cached_from else ""
    console.print(
        f"execution [bold]{record.id}[/] of {record.pipeline} ({record.status}): "
        f"{len(board.trials)} trials, {completed} completed, "
        f"{len(board.trials) - completed} failed{cached}",
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
