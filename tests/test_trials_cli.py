"""`mme trials`: the tuning leaderboard of a local run, read back from the execution record and
each trial's own model artifact."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from container.artifact import read_signature, unpack
from local.executions import RECORD_FILE
from local.executor import PipelineExecutor
from local.home import LocalHome
from local.jobs import JobRunner
from local.runs import build, read_json, summarize
from modelbuild import naming
from modelbuild.datasets import get_dataset
from modelbuild.pipeline import Steps
from tests.local_support import runner

__all__ = ["runner"]  # a fixture used by name

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning"),
]
TRIALS = 2
FOLDS = 2


def mme(home: Path, *args: str) -> Result:
    from local.cli import main

    return CliRunner().invoke(main, ["--home", str(home), *args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trials-home")
    result = mme(
        root, "run", "wine", "--max-jobs", str(TRIALS), "--cv-folds", str(FOLDS), "--workers", "2"
    )
    assert result.exit_code == 0, result.output
    return root


def summaries(home: Path) -> tuple[str, list[dict[str, Any]]]:
    (record,) = LocalHome(home).executions.list()
    tune = record.step(Steps.TUNE)
    assert tune is not None
    return record.id, tune.properties["TrainingJobSummaries"]


def leaderboard(home: Path, *args: str) -> dict[str, Any]:
    result = mme(home, "trials", *args, "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def test_json_holds_every_trial_with_the_fold_scores_its_artifact_carries(
    home: Path, tmp_path: Path
) -> None:
    execution, recorded = summaries(home)
    board = leaderboard(home, execution)
    assert board["execution"] == execution and board["dataset"] == "wine"
    assert board["metric"] == "f1_macro" and board["trials_total"] == TRIALS
    by_job = {s["TrainingJobName"]: s for s in recorded}
    assert {t["training_job"] for t in board["trials"]} == set(by_job)
    for trial in board["trials"]:
        summary = by_job[trial["training_job"]]
        # Read the artifact independently: unpack it and read the signature the trial wrote.
        workdir = tmp_path / trial["training_job"]
        unpack(LocalHome(home).s3.path(trial["artifact"]), workdir)
        signature = read_signature(workdir)
        assert trial["family"] == summary["TrainingJobDefinitionName"] == signature["algorithm"]
        assert trial["hyperparameters"] == summary["TunedHyperParameters"]
        # From the trial's emitted metrics (printed to 8 decimals), as on AWS.
        assert trial["fold_scores"] == pytest.approx(signature["cv"]["fold_scores"], abs=1e-7)
        assert len(trial["fold_scores"]) == FOLDS
        assert trial["cv_mean"] == pytest.approx(np.mean(trial["fold_scores"]))
        assert trial["cv_std"] == pytest.approx(np.std(trial["fold_scores"]))
        # The tuner ranked on the objective the job printed (8 decimals) from the same folds.
        objective = summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        assert trial["cv_mean"] == pytest.approx(objective, abs=1e-7)
        assert trial["status"] == "Completed" and trial["seconds"] > 0


def test_trials_are_ranked_best_first(home: Path) -> None:
    trials = leaderboard(home, "wine")["trials"]
    assert [t["rank"] for t in trials] == list(range(1, TRIALS + 1))
    means = [t["cv_mean"] for t in trials]
    assert means == sorted(means, reverse=True)


def test_a_dataset_name_an_id_prefix_and_the_full_id_show_the_same_execution(home: Path) -> None:
    execution, _ = summaries(home)
    for target in ("wine", execution[:5], execution):
        assert leaderboard(home, target)["execution"] == execution


def test_limit_keeps_the_best(home: Path) -> None:
    full = leaderboard(home, "wine")
    best = leaderboard(home, "wine", "--limit", "1")
    assert best["trials"] == full["trials"][:1] and best["trials_total"] == TRIALS


def test_table_shows_each_trial_in_rank_order(home: Path) -> None:
    trials = leaderboard(home, "wine")["trials"]
    result = mme(home, "trials", "wine")
    assert result.exit_code == 0, result.output
    assert f"{TRIALS} trials, {TRIALS} completed, 0 failed" in result.output
    positions = []
    for trial in trials:
        cell = f"{trial['cv_mean']:.4f} ± {trial['cv_std']:.4f}"
        folds = " ".join(f"{s:.4f}" for s in trial["fold_scores"])
        row = next(line for line in result.output.splitlines() if cell in line)
        assert trial["family"] in row and folds in row
        positions.append(result.output.index(cell))
    assert positions == sorted(positions)


def test_a_typo_is_named_with_the_closest_dataset(home: Path) -> None:
    result = mme(home, "trials", "wien")
    assert result.exit_code != 0
    assert "'wien' is neither a pipeline execution nor a dataset; did you mean 'wine'?" in (
        result.output
    )


def test_a_dataset_without_executions_says_how_to_start_one(home: Path) -> None:
    result = mme(home, "trials", "banknote")
    assert result.exit_code != 0
    assert "dataset 'banknote' has no pipeline executions yet (`mme run banknote`)" in result.output


def test_the_record_holds_each_trials_metrics_as_describe_training_job_does(
    home: Path, tmp_path: Path
) -> None:
    """The Tune step's record carries every trial's FinalMetricDataList (the objective, the
    spread and each fold), so the leaderboard needs no artifact, like `mme trials --aws`."""
    (record,) = LocalHome(home).executions.list()
    tune = record.step(Steps.TUNE)
    assert tune is not None
    metrics = tune.metadata["TrialMetrics"]
    expected = {"cv_score", "cv_std", *(f"cv_fold_{k}" for k in range(1, FOLDS + 1))}
    for summary in tune.properties["TrainingJobSummaries"]:
        names = {m["MetricName"] for m in metrics[summary["TrainingJobName"]]}
        assert names == expected
    with_artifacts = {t["training_job"]: t for t in leaderboard(home, "wine")["trials"]}
    copy = tmp_path / "home"
    shutil.copytree(home / "executions", copy / "executions")
    for trial in leaderboard(copy, "wine")["trials"]:
        assert trial["fold_scores"] == with_artifacts[trial["training_job"]]["fold_scores"]
        assert trial["cv_std"] == with_artifacts[trial["training_job"]]["cv_std"]


def test_gone_artifacts_leave_the_recorded_objective_and_say_so(home: Path, tmp_path: Path) -> None:
    # A copy of the state without the trials' artifacts (as after clearing local S3), recorded
    # before trials emitted their fold scores as metrics (no TrialMetrics).
    copy = tmp_path / "home"
    shutil.copytree(home / "executions", copy / "executions")
    (path,) = (copy / "executions").glob(f"*/{RECORD_FILE}")
    document = json.loads(path.read_text())
    for step in document["steps"]:
        step["metadata"].pop("TrialMetrics", None)
    path.write_text(json.dumps(document))
    _, recorded = summaries(home)
    trials = leaderboard(copy, "wine")["trials"]
    assert all(t["fold_scores"] is None and t["cv_std"] is None for t in trials)
    assert (
        trials[0]["cv_mean"] == recorded[0]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    )
    assert f"fold scores unavailable for {TRIALS} trial(s)" in mme(copy, "trials", "wine").output


# ---------------------------------------------------------------------------- a failed trial


@pytest.fixture(scope="module")
def failed_home(tmp_path_factory: pytest.TempPathFactory, runner: JobRunner) -> Path:
    """A wine run whose tuner tried two families, one of which crashed in every trial: its
    training job is a process that raises, as a broken trainer would."""
    root = tmp_path_factory.mktemp("failed-trial-home")
    home = LocalHome(root)
    pipeline = build(get_dataset("wine"), home, naming.DEFAULT_PROJECT_NAME, None)
    definition = copy.deepcopy(pipeline.definition)
    tune = next(s for s in definition["Steps"] if s["Name"] == Steps.TUNE)
    broken, healthy = tune["Arguments"]["TrainingJobDefinitions"][:2]
    broken["AlgorithmSpecification"]["ContainerEntrypoint"] = [
        "python3", "-m", "tests.local_support", "raise",
    ]  # fmt: skip
    tune["Arguments"]["TrainingJobDefinitions"] = [broken, healthy]
    # The leaderboard needs the tuning step only: the steps after it would just add time.
    definition["Steps"] = definition["Steps"][: definition["Steps"].index(tune) + 1]
    # The first round tries every definition once, so two trials are one of each.
    record = PipelineExecutor(home, runner).start(
        pipeline.name, definition, {"MaxTuningJobs": 2, "MaxParallelTuningJobs": 2, "CvFolds": 2}
    )
    step = record.step(Steps.TUNE)
    assert step is not None and step.status == "Succeeded", record.failure_reason
    return root


def test_a_failed_trial_is_listed_with_its_status_and_reason(
    failed_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, recorded = summaries(failed_home)
    failed = next(s for s in recorded if s["TrainingJobStatus"] == "Failed")
    board = leaderboard(failed_home, "wine")
    assert board["trials_total"] == 2
    good, bad = board["trials"]  # the completed trial ranks; the failed one follows, unranked
    assert good["status"] == "Completed" and good["rank"] == 1 and len(good["fold_scores"]) == 2
    assert bad["training_job"] == failed["TrainingJobName"]
    assert bad["family"] == failed["TrainingJobDefinitionName"]
    assert (bad["status"], bad["rank"], bad["cv_mean"], bad["fold_scores"]) == (
        "Failed", None, None, None,
    )  # fmt: skip
    assert bad["failure_reason"] == failed["FailureReason"]
    assert "the job broke on purpose" in bad["failure_reason"]

    # Wide enough that the reason's first line fits its cell unwrapped.
    monkeypatch.setattr("local.commands.common.console", Console(width=400))
    result = mme(failed_home, "trials", "wine")
    assert result.exit_code == 0, result.output
    assert "2 trials, 1 completed, 1 failed" in result.output
    row = next(line for line in result.output.splitlines() if bad["family"] in line)
    assert f"Failed: {failed['FailureReason'].splitlines()[0]}" in row
    assert "fold scores unavailable" not in result.output  # a failed trial has none to show


# ---------------------------------------------------------------------------- the run table


def test_the_run_summary_carries_the_chosen_trials_cv_spread(home: Path) -> None:
    (record,) = LocalHome(home).executions.list()
    summary = summarize(LocalHome(home), "wine", record)
    # The trial Evaluate chose (and Register registered), which need not be the tuner's top one.
    evaluate = record.step(Steps.EVALUATE)
    assert evaluate is not None
    report = read_json(LocalHome(home), evaluate.property_files[naming.EVALUATION_PROPERTY_FILE])
    trials = leaderboard(home, "wine")["trials"]
    chosen = next(t for t in trials if t["training_job"] == report["selection"]["chosen_trial"])
    assert summary.best_family == chosen["family"] == report["algorithm"]
    assert summary.cv_score == pytest.approx(chosen["cv_mean"])
    assert summary.cv_std == pytest.approx(chosen["cv_std"]) and summary.cv_std > 0
    assert summary.cv_cell == f"{summary.cv_score:.4f} ± {chosen['cv_std']:.4f}"


def test_the_run_summary_shows_the_model_evaluate_chose_not_the_tuners_top(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the one-standard-error rule picks another trial than the tuner's top, the run table
    names the family and CV result of the chosen (registered) model."""
    from local import runs

    trials = leaderboard(home, "wine")["trials"]
    other = next(t for t in trials[1:] if t["family"] != trials[0]["family"] and t["cv_std"])
    real = runs.read_json

    def chosen_elsewhere(state: LocalHome, uri: str) -> Any:
        report = real(state, uri)
        if "selection" in report:
            report["algorithm"] = other["family"]
            report["cv"] = {**report["cv"], "mean": other["cv_mean"], "std": other["cv_std"]}
        return report

    monkeypatch.setattr(runs, "read_json", chosen_elsewhere)
    (record,) = LocalHome(home).executions.list()
    summary = summarize(LocalHome(home), "wine", record)
    assert summary.best_family == other["family"] != trials[0]["family"]
    assert summary.cv_score == pytest.approx(other["cv_mean"])
    assert summary.cv_std == pytest.approx(other["cv_std"])
