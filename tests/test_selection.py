"""The one-standard-error choice among tuning trials, and reading trials' fold scores safely."""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest

from container.errors import InputError
from container.layout import ARTIFACT_FILE, MODEL_FILE, SIGNATURE_FILE
from container.selection import RULE, TrialScores, select
from container.trials import find_artifacts, read_trial, read_trials, trial_name

# The SDK's dependencies carry regex literals that Python 3.12+ warns about when compiling them.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")


def _trial(name: str, folds: list[float] | None, algorithm: str = "xgboost") -> TrialScores:
    return TrialScores(
        name, algorithm, tuple(folds) if folds is not None else None, metric="roc_auc"
    )


# A high-variance setting with the top mean, and a steady one 0.002 below it: the noise in the
# first one's mean (its standard error) is far larger than the gap.
NOISY = _trial("tune-001-aaaa", [0.99, 0.90, 0.97, 0.88, 0.98], "mlp")
STEADY = _trial("tune-002-bbbb", [0.94, 0.94, 0.941, 0.939, 0.93], "lightgbm")
FAR = _trial("tune-003-cccc", [0.80, 0.80, 0.80, 0.80, 0.80], "naive-bayes")


def test_a_steadier_trial_within_one_standard_error_beats_the_top_mean() -> None:
    noisy_mean, steady_mean = np.mean(NOISY.fold_scores), np.mean(STEADY.fold_scores)
    assert noisy_mean > steady_mean  # the tuner's best is the noisy one
    choice = select([STEADY, NOISY, FAR], "roc_auc")
    assert choice.best.trial is NOISY
    assert choice.chosen.trial is STEADY, "the rule picked the plain top mean"
    assert {c.trial.name for c in choice.candidates} == {NOISY.name, STEADY.name}
    # The standard error is the sample std of the best's folds over sqrt(k).
    se = np.std(NOISY.fold_scores, ddof=1) / math.sqrt(5)
    assert choice.best.standard_error == pytest.approx(se)
    assert choice.threshold == pytest.approx(noisy_mean - se)
    assert choice.chosen.std == pytest.approx(np.std(STEADY.fold_scores))
    record = choice.to_dict()
    assert record["rule"] == RULE
    assert record["best_trial"] == NOISY.name and record["chosen_trial"] == STEADY.name
    assert record["chosen_algorithm"] == "lightgbm"
    assert STEADY.name in record["reason"] and "lowest fold spread" in record["reason"]
    assert [c["trial"] for c in record["candidates"]] == [NOISY.name, STEADY.name]
    assert record["candidates"][1]["fold_scores"] == list(STEADY.fold_scores)
    json.dumps(record)  # the report is JSON


def test_a_steadier_trial_outside_one_standard_error_does_not_win() -> None:
    steady_low = _trial("tune-004-dddd", [0.80, 0.80, 0.801, 0.799, 0.80])
    choice = select([NOISY, steady_low], "roc_auc")
    assert choice.chosen.trial is NOISY
    assert [c.trial for c in choice.candidates] == [NOISY]
    assert "no other" in choice.reason and "kept" in choice.reason


def test_the_best_is_kept_when_it_is_also_the_steadiest() -> None:
    steady_best = _trial("tune-005-eeee", [0.95, 0.951, 0.949, 0.95, 0.95])
    choice = select([steady_best, STEADY], "roc_auc")
    assert choice.chosen.trial is steady_best is choice.best.trial


def test_a_single_trial_is_chosen() -> None:
    choice = select([STEADY], "roc_auc")
    assert choice.best.trial is choice.chosen.trial is STEADY
    assert choice.scored == 1 and choice.skipped == ()
    assert choice.to_dict()["candidates"][0]["trial"] == STEADY.name


def test_ties_are_broken_deterministically() -> None:
    # Equal means and equal spreads: the earlier trial (job names carry the trial number),
    # whatever order the artifacts arrive in.
    first = _trial("tune-001-ffff", [0.9, 0.8, 0.9, 0.8])
    second = _trial("tune-002-ffff", [0.9, 0.8, 0.9, 0.8])
    assert select([second, first], "roc_auc").chosen.trial is first
    assert select([first, second], "roc_auc").chosen.trial is first
    # Equal spreads, different means (both within one SE): the higher mean.
    lower = _trial("tune-003-gggg", [0.89, 0.79, 0.89, 0.79])
    assert select([lower, second], "roc_auc").chosen.trial is second
    # Perfect folds have no spread: the standard error is 0 and only equal means are candidates.
    perfect = _trial("tune-009-hhhh", [1.0, 1.0, 1.0])
    also = _trial("tune-004-hhhh", [1.0, 1.0, 1.0])
    choice = select([perfect, also, STEADY], "roc_auc")
    assert choice.best.standard_error == 0.0
    assert {c.trial.name for c in choice.candidates} == {perfect.name, also.name}
    assert choice.chosen.trial is also


def test_trials_without_usable_fold_scores_are_skipped_with_their_reason() -> None:
    plain = _trial("tune-010-iiii", None)
    one_fold = _trial("tune-011-jjjj", [0.99])
    broken = _trial("tune-012-kkkk", [0.99, float("nan")])
    other_metric = TrialScores("tune-013-llll", "mlp", (0.99, 0.99), metric="accuracy")
    unreadable = TrialScores("tune-014-mmmm", "unknown", None, problem="not a readable tar.gz")
    choice = select([plain, one_fold, broken, other_metric, unreadable, STEADY], "roc_auc")
    assert choice.chosen.trial is STEADY and choice.scored == 1
    reasons = {s.trial: s.reason for s in choice.skipped}
    assert "no cross-validation result" in reasons[plain.name]
    assert "at least 2" in reasons[one_fold.name]
    assert "not a finite number" in reasons[broken.name]
    assert "'accuracy'" in reasons[other_metric.name]
    assert reasons[unreadable.name] == "not a readable tar.gz"
    assert len(choice.to_dict()["skipped"]) == 5

    with pytest.raises(InputError, match=r"none of the 2 tuning trial\(s\).*tune-010-iiii"):
        select([plain, unreadable], "roc_auc")
    with pytest.raises(InputError, match="no trial artifacts"):
        select([], "roc_auc")


# ----------------------------------------------------------------- reading trial artifacts


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _signature(folds: list[float] | None, algorithm: str = "svm") -> bytes:
    cv = None if folds is None else {"metric": "roc_auc", "folds": len(folds), "fold_scores": folds}
    return json.dumps({"algorithm": algorithm, "hyperparameters": {"C": 1.0}, "cv": cv}).encode()


def test_trial_artifacts_are_read_without_unpickling(tmp_path: Path) -> None:
    # The model file is not a pickle at all: only the signature may be read.
    root = tmp_path / "trials"
    job = "abc-Tune"
    _archive(
        root / f"{job}-001-aaaa" / "output" / ARTIFACT_FILE,
        {MODEL_FILE: b"not a pickle", SIGNATURE_FILE: _signature([0.9, 0.8, 0.85])},
    )
    # A layout where the tuning job's name was cut off with the prefix.
    _archive(root / "002-bbbb" / "output" / ARTIFACT_FILE, {SIGNATURE_FILE: _signature(None)})
    _archive(root / f"{job}-003-cccc" / "output" / ARTIFACT_FILE, {MODEL_FILE: b"x"})
    (root / f"{job}-004-dddd" / "output").mkdir(parents=True)
    (root / f"{job}-004-dddd" / "output" / ARTIFACT_FILE).write_bytes(b"garbage")

    trials, artifacts = read_trials(root, job)
    by_name = {t.name: t for t in trials}
    assert set(by_name) == {f"{job}-001-aaaa", f"{job}-002-bbbb", f"{job}-003-cccc",
                            f"{job}-004-dddd"}  # fmt: skip
    first = by_name[f"{job}-001-aaaa"]
    assert first.fold_scores == (0.9, 0.8, 0.85) and first.algorithm == "svm"
    assert first.metric == "roc_auc" and first.hyperparameters == {"C": "1.0"}
    assert by_name[f"{job}-002-bbbb"].fold_scores is None
    assert "no signature.json" in (by_name[f"{job}-003-cccc"].problem or "")
    assert "not a readable tar.gz" in (by_name[f"{job}-004-dddd"].problem or "")
    assert artifacts[f"{job}-001-aaaa"] == root / f"{job}-001-aaaa" / "output" / ARTIFACT_FILE
    assert select(trials, "roc_auc").chosen.trial.name == f"{job}-001-aaaa"


def test_trial_names_follow_either_prefix_layout(tmp_path: Path) -> None:
    root = tmp_path
    assert trial_name(root / "t-001-a/output/model.tar.gz", root, "t") == "t-001-a"
    assert trial_name(root / "001-a/output/model.tar.gz", root, "t") == "t-001-a"
    assert trial_name(root / "-001-a/output/model.tar.gz", root, "t") == "t-001-a"
    assert trial_name(root / "t-001-a/output/model.tar.gz", root, "") == "t-001-a"
    with pytest.raises(InputError, match="does not exist"):
        find_artifacts(tmp_path / "missing")


def test_a_malformed_fold_list_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    bad = json.dumps({"algorithm": "mlp", "cv": {"fold_scores": ["0.9", None]}}).encode()
    path = _archive(tmp_path / "t-001-a" / "output" / ARTIFACT_FILE, {SIGNATURE_FILE: bad})
    trial = read_trial("t-001-a", path)
    assert trial.fold_scores is None and "not a list of numbers" in (trial.problem or "")


# ------------------------------------------------------------- end to end, on the local runtime


@pytest.mark.integration
def test_a_local_run_records_the_choice_and_registers_the_chosen_model(tmp_path: Path) -> None:
    """The real wine definition on the local executor, twice without caching: each Evaluate sees
    exactly its own execution's trials, records the rule's choice in evaluation.json, and the
    registered version is the chosen trial's artifact, byte for byte."""
    from local.executor import PipelineExecutor
    from local.home import LocalHome
    from local.jobs import JobRunner
    from local.runs import build
    from modelbuild import naming
    from modelbuild.datasets import get_dataset
    from modelbuild.naming import Steps
    from modelbuild.pipeline import CHOSEN_MODEL_OUTPUT
    from tests.local_support import SMALL_BUDGET, WORKERS

    home = LocalHome(tmp_path / "home")
    pipeline = build(get_dataset("wine"), home, naming.DEFAULT_PROJECT_NAME, None)
    tune_step = next(s for s in pipeline.definition["Steps"] if s["Name"] == Steps.TUNE)
    output_path = tune_step["Arguments"]["TrainingJobDefinitions"][0]["OutputDataConfig"][
        "S3OutputPath"
    ]
    with JobRunner(WORKERS) as runner:
        executor = PipelineExecutor(home, runner, use_cache=False)
        records = [
            executor.start(pipeline.name, pipeline.definition, SMALL_BUDGET) for _ in range(2)
        ]
    for version, record in enumerate(records, start=1):
        assert record.status == "Succeeded", record.failure_reason
        tune, evaluate = record.step(Steps.TUNE), record.step(Steps.EVALUATE)
        assert tune is not None and evaluate is not None
        summaries = tune.properties["TrainingJobSummaries"]
        completed = {
            s["TrainingJobName"] for s in summaries if s["TrainingJobStatus"] == "Completed"
        }
        report = json.loads(
            home.s3.get_bytes(evaluate.property_files[naming.EVALUATION_PROPERTY_FILE])
        )
        selection = report["selection"]
        assert selection["rule"] == RULE
        # Only this execution's trials, every one that saved a model.
        seen = {c["trial"] for c in selection["candidates"]} | {
            s["trial"] for s in selection["skipped"]
        }
        assert seen <= completed
        assert selection["trials_scored"] + len(selection["skipped"]) == len(completed)
        # The best mean is the tuner's best objective; the chosen trial is within one SE of it.
        top = summaries[0]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        assert selection["best_mean"] == pytest.approx(top, abs=1e-7)
        chosen = next(c for c in selection["candidates"] if c["trial"] == selection["chosen_trial"])
        assert chosen["cv_mean"] >= selection["threshold"] - 1e-12
        assert chosen["cv_std"] == min(c["cv_std"] for c in selection["candidates"])
        assert report["cv"]["fold_scores"] == chosen["fold_scores"]

        package = home.registry.get(f"{naming.DEFAULT_PROJECT_NAME}-wine", version)
        assert package.customer_metadata["training-job"] == selection["chosen_trial"]
        assert package.customer_metadata["algorithm"] == report["algorithm"]
        assert package.customer_metadata[naming.MODEL_SHA256_METADATA_KEY] == report["model_sha256"]
        trial_artifact = f"{output_path}/{selection['chosen_trial']}/output/{ARTIFACT_FILE}"
        assert home.s3.get_bytes(package.model_data_url) == home.s3.get_bytes(trial_artifact)
        chosen_output = next(o for o in evaluate.outputs if o.endswith(f"/{CHOSEN_MODEL_OUTPUT}"))
        assert package.model_data_url == f"{chosen_output}/{ARTIFACT_FILE}"
    first, second = (r.step(Steps.TUNE).properties["HyperParameterTuningJobName"] for r in records)  # type: ignore[union-attr]
    assert first != second
