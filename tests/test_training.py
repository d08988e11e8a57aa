"""The training entry point: the objective line, the saved refit model, SageMaker's conventions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from container.artifact import load_model_dir
from container.families import get_family
from container.metrics import OBJECTIVE_METRIC_REGEX, objective_line, parse_objective
from container.train import train
from container.training import load_training_data, run_trial

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("score", [0.0, 1.0, 0.98765432, 1e-9, -0.5])
def test_objective_line_is_read_back_by_the_tuner_regex(score: float) -> None:
    assert parse_objective(f"fold 3 done\n{objective_line(score)}\nsaved\n") == pytest.approx(
        score, abs=1e-8
    )
    assert OBJECTIVE_METRIC_REGEX.startswith("cv_score=")


def test_no_objective_when_the_line_is_absent_or_not_a_number() -> None:
    assert parse_objective("cv_score=nan;\ncv_score=;") is None


@pytest.mark.parametrize(
    "family", ["xgboost", "logistic-regression", "extra-trees", "hist-gradient-boosting"]
)
def test_cv_mode_prints_the_objective_and_saves_the_refit_model(
    family: str, mixed_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signature = train(
        {"family": family, "metric": "roc_auc", "cv_folds": "4", "random_state": "7"},
        mixed_split / "train",
        tmp_path,
    )
    printed = parse_objective(capsys.readouterr().out)
    assert printed == pytest.approx(signature["cv"]["mean"], abs=1e-8)
    assert len(signature["cv"]["fold_scores"]) == 4

    data = load_training_data(mixed_split / "train")
    fresh = run_trial(
        get_family(family), {}, data, metric="roc_auc", folds=None, random_state=7
    ).estimator
    saved = load_model_dir(tmp_path).estimator
    np.testing.assert_array_equal(saved.predict_proba(data.x), fresh.predict_proba(data.x))


def test_plain_mode_trains_once_without_cross_validation(
    wine_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signature = train({"family": "naive-bayes", "mode": "plain"}, wine_split / "train", tmp_path)
    assert signature["cv"] is None
    assert parse_objective(capsys.readouterr().out) is None
    assert signature["schema"]["classes"] == ["class_0", "class_1", "class_2"]


def _run_training_job(
    ml: Path, split: Path, hyperparameters: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`<image> train` as SageMaker starts it, with /opt/ml relocated to `ml`."""
    (ml / "input" / "config").mkdir(parents=True)
    (ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    env = {**os.environ, "SM_ML_ROOT": str(ml), "SM_CHANNEL_TRAIN": str(split / "train")}
    return subprocess.run(
        [sys.executable, "-m", "container", "train"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_training_job_runs_as_sagemaker_starts_it(mixed_split: Path, tmp_path: Path) -> None:
    ml = tmp_path / "ml"
    hyperparameters = {
        "family": '"random-forest"',  # framework estimators JSON-quote strings
        "n_estimators": "60",
        "criterion": "entropy",
        "cv_folds": "3",
        "_tuning_objective_metric": "cv_score",
        "sagemaker_job_name": "tuning-job-001",
    }
    done = _run_training_job(ml, mixed_split, hyperparameters)
    assert done.returncode == 0, done.stderr
    assert parse_objective(done.stdout) is not None
    signature = json.loads((ml / "model" / "signature.json").read_text())
    assert signature["algorithm"] == "random-forest"
    assert signature["hyperparameters"]["criterion"] == "entropy"
    assert signature["hyperparameters"]["n_estimators"] == "60"


@pytest.mark.integration
def test_bad_hyperparameter_fails_the_job_with_sagemakers_failure_reason(
    mixed_split: Path, tmp_path: Path
) -> None:
    ml = tmp_path / "ml"
    done = _run_training_job(ml, mixed_split, {"family": "lightgbm", "subsample": "1.5"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    reason = (ml / "output" / "failure").read_text()
    assert "'subsample'=1.5 is outside its range [0.5, 1.0]" in reason
    assert not (ml / "model" / "model.joblib").exists()


def test_cv_mode_prints_each_fold_and_the_spread_as_declared_metrics(
    mixed_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the pipeline's MetricDefinitions read: every fold, the spread, and the objective (the
    mean the tuner maximises) last; no fold the run did not have."""
    from container.metrics import CV_STD_METRIC_NAME, fold_metric_name, parse_metrics

    signature = train(
        {"family": "naive-bayes", "metric": "roc_auc", "cv_folds": "4", "random_state": "3"},
        mixed_split / "train",
        tmp_path,
    )
    out = capsys.readouterr().out
    metrics = parse_metrics(out)
    cv = signature["cv"]
    assert metrics == pytest.approx(
        {
            "cv_score": cv["mean"],
            CV_STD_METRIC_NAME: cv["std"],
            **{fold_metric_name(i): s for i, s in enumerate(cv["fold_scores"], start=1)},
        },
        abs=1e-8,
    )
    assert fold_metric_name(5) not in metrics
    assert cv["std"] == pytest.approx(np.std(cv["fold_scores"]))
    metric_lines = [line for line in out.splitlines() if line.startswith("cv_")]
    assert metric_lines[-1].startswith("cv_score=")
