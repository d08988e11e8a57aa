"""The evaluation report (registry model-quality layout) and its plots, binary and multiclass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from container.artifact import pack
from container.errors import InputError
from container.evaluate import evaluate
from container.layout import ARTIFACT_FILE, REGISTER_METRIC_PATH, REPORT_FILE
from container.metrics import METRIC_NAMES
from container.train import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _trained_artifact(split: Path, tmp: Path, family: str) -> Path:
    train({"family": family, "mode": "plain"}, split / "train", tmp / "model")
    return pack(tmp / "model", tmp / ARTIFACT_FILE)


def _is_metric(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry["value"], float)
        and (entry["standard_deviation"] == "NaN" or entry["standard_deviation"] >= 0)
    )


def _json_path(report: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        report = report[key]
    return report


def test_binary_report_follows_the_model_quality_layout(mixed_split: Path, tmp_path: Path) -> None:
    artifact = _trained_artifact(mixed_split, tmp_path, "logistic-regression")
    report = evaluate(artifact, mixed_split / "test", tmp_path / "eval", "f1")

    assert json.loads((tmp_path / "eval" / REPORT_FILE).read_text()) == report
    section = report["binary_classification_metrics"]
    for name in ("accuracy", "precision", "recall", "f1", "auc", "true_positive_rate"):
        assert _is_metric(section[name]), name
        assert 0.0 <= section[name]["value"] <= 1.0
    matrix = section["confusion_matrix"]
    assert set(matrix) == {"ok", "fraud"}
    assert sum(sum(row.values()) for row in matrix.values()) == report["test_rows"]
    roc = section["receiver_operating_characteristic_curve"]
    assert len(roc["false_positive_rates"]) == len(roc["true_positive_rates"]) > 2
    pr = section["precision_recall_curve"]
    assert len(pr["precisions"]) == len(pr["recalls"]) > 2
    assert set(report["metrics"]) == {*METRIC_NAMES, "log_loss"}
    assert report["register_metric"]["name"] == "f1"
    assert _json_path(report, REGISTER_METRIC_PATH) == pytest.approx(section["f1"]["value"])


def test_multiclass_report_has_one_vs_rest_curves(wine_split: Path, tmp_path: Path) -> None:
    artifact = _trained_artifact(wine_split, tmp_path, "random-forest")
    report = evaluate(artifact, wine_split / "test", tmp_path / "eval", "f1_macro")

    section = report["multiclass_classification_metrics"]
    for name in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "auc", "weighted_f1"):
        assert _is_metric(section[name]), name
    assert set(section["confusion_matrix"]) == {"class_0", "class_1", "class_2"}
    assert set(report["one_vs_rest_curves"]) == {"class_0", "class_1", "class_2"}
    assert _json_path(report, REGISTER_METRIC_PATH) == pytest.approx(section["macro_f1"]["value"])


def test_plots_are_written_as_png(mixed_split: Path, tmp_path: Path) -> None:
    artifact = _trained_artifact(mixed_split, tmp_path, "naive-bayes")
    evaluate(artifact, mixed_split / "test", tmp_path / "eval", "roc_auc")
    for name in ("confusion_matrix.png", "roc_pr_curves.png"):
        data = (tmp_path / "eval" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name


def test_a_test_split_with_foreign_labels_is_named(mixed_split: Path, tmp_path: Path) -> None:
    artifact = _trained_artifact(mixed_split, tmp_path, "naive-bayes")
    broken = tmp_path / "broken-test"
    broken.mkdir()
    text = (mixed_split / "test" / "test.csv").read_text().splitlines()
    text[1] = text[1].rsplit(",", 1)[0] + ",spam"
    (broken / "test.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(InputError, match=r"test\.csv'.*label\(s\) \['#spam'\] not in the schema"):
        evaluate(artifact, broken, tmp_path / "eval", "roc_auc")
    assert not (tmp_path / "eval" / REPORT_FILE).exists()


def _cv_trial(split: Path, tmp: Path, family: str) -> Path:
    """A tuning trial's model directory, trained in cv mode as the pipeline's trials are."""
    train({"family": family, "cv_folds": "4", "metric": "roc_auc"}, split / "train", tmp / family)
    return tmp / family


def _with_folds(model_dir: Path, destination: Path, folds: list[float]) -> Path:
    """The trial packed with other fold scores in its signature: the model file (and so the
    checksum its signature names) is unchanged, so the artifact still verifies."""
    from container.layout import SIGNATURE_FILE

    signature = json.loads((model_dir / SIGNATURE_FILE).read_text())
    signature["cv"].update(fold_scores=folds, mean=sum(folds) / len(folds))
    (model_dir / SIGNATURE_FILE).write_text(json.dumps(signature))
    return pack(model_dir, destination)


def test_evaluate_registers_the_steadier_trial_within_one_standard_error(
    mixed_split: Path, tmp_path: Path
) -> None:
    """The tuner's top mean is a noisy trial; Evaluate chooses, outputs and scores the steadier
    one within one standard error of it, and the report says which and why."""
    from container.evaluate import evaluate_trials

    trials = tmp_path / "trials"
    job = "exec-Tune"
    noisy = f"{job}-001-aaaaaaaa"
    steady = f"{job}-002-bbbbbbbb"
    noisy_archive = _with_folds(
        _cv_trial(mixed_split, tmp_path, "naive-bayes"),
        trials / noisy / "output" / ARTIFACT_FILE,
        [0.99, 0.85, 0.98, 0.86],
    )
    steady_archive = _with_folds(
        _cv_trial(mixed_split, tmp_path, "logistic-regression"),
        trials / steady / "output" / ARTIFACT_FILE,
        [0.91, 0.91, 0.915, 0.905],
    )
    # A trial that failed after writing a broken archive is skipped, not fatal.
    (trials / f"{job}-003-cccccccc" / "output").mkdir(parents=True)
    (trials / f"{job}-003-cccccccc" / "output" / ARTIFACT_FILE).write_bytes(b"truncated")

    report = evaluate_trials(
        trials, mixed_split / "test", tmp_path / "eval", "roc_auc", tmp_path / "chosen", job
    )
    selection = report["selection"]
    assert selection["best_trial"] == noisy
    assert selection["chosen_trial"] == steady, "the plain top mean was registered"
    assert report["algorithm"] == "logistic-regression"
    assert [s["trial"] for s in selection["skipped"]] == [f"{job}-003-cccccccc"]
    assert steady in selection["reason"]
    chosen = tmp_path / "chosen" / ARTIFACT_FILE
    assert chosen.read_bytes() == steady_archive.read_bytes() != noisy_archive.read_bytes()
    written = json.loads((tmp_path / "eval" / REPORT_FILE).read_text())
    assert written["selection"] == selection
    assert written["model_sha256"] == report["model_sha256"]


def test_evaluate_main_chooses_among_trials_and_names_a_run_without_any(
    mixed_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from container.evaluate import main

    trials = tmp_path / "trials"
    model_dir = _cv_trial(mixed_split, tmp_path, "naive-bayes")
    pack(model_dir, trials / "001-aaaaaaaa" / "output" / ARTIFACT_FILE)
    arguments = [
        f"--trials={trials}",
        "--tuning-job=exec-Tune",
        f"--model-output={tmp_path / 'chosen'}",
        f"--test-dir={mixed_split / 'test'}",
        f"--output-dir={tmp_path / 'eval'}",
    ]
    main(arguments)
    assert "chose exec-Tune-001-aaaaaaaa" in capsys.readouterr().out
    assert (tmp_path / "chosen" / ARTIFACT_FILE).is_file()

    # Trials without fold scores (trained without CV) leave nothing to choose from.
    empty = tmp_path / "plain-trials"
    train({"family": "naive-bayes", "mode": "plain"}, mixed_split / "train", tmp_path / "plain")
    pack(tmp_path / "plain", empty / "exec-Tune-001-a" / "output" / ARTIFACT_FILE)
    with pytest.raises(InputError, match="no cross-validation result"):
        main([f"--trials={empty}", *arguments[1:]])
