"""`mme trials`: the tuning leaderboard of a local run, read back from the execution record and
each trial's own model artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from container.artifact import read_signature, unpack
from local.home import LocalHome
from modelbuild.pipeline import Steps

pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
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
        assert trial["fold_scores"] == signature["cv"]["fold_scores"]
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


def test_gone_artifacts_leave_the_recorded_objective_and_say_so(home: Path, tmp_path: Path) -> None:
    # A copy of the state without the trials' artifacts (as after clearing local S3).
    copy = tmp_path / "home"
    shutil.copytree(home / "executions", copy / "executions")
    _, recorded = summaries(home)
    trials = leaderboard(copy, "wine")["trials"]
    assert all(t["fold_scores"] is None and t["cv_std"] is None for t in trials)
    assert (
        trials[0]["cv_mean"] == recorded[0]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    )
    assert f"fold scores unavailable for {TRIALS} trial(s)" in mme(copy, "trials", "wine").output
