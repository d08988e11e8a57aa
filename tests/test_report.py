"""What a data scientist reads in the evaluation: plots with class names and AUCs, a row-normalised
confusion matrix, calibration with an overconfidence warning, permutation importance, and files
the SageMaker model registry can render (checked with the SageMaker SDK's own parsers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sagemaker.model_card.evaluation_metric_parsers import (
    ClarifyExplainabilityParser,
    ModelMonitorModelQualityParser,
)
from sklearn.linear_model import LogisticRegression

from container.artifact import pack
from container.calibration import SIMULATIONS, overconfidence, overconfidence_warning
from container.evaluate import evaluate
from container.importance import MAX_ROWS, REPEATS, feature_importance
from container.layout import ARTIFACT_FILE, EXPLAINABILITY_FILE
from container.plots import (
    CALIBRATION_PLOT,
    CONFUSION_PLOT,
    CURVES_PLOT,
    IMPORTANCE_PLOT,
    confusion_data,
    curve_data,
    figures,
)
from container.report import build_report
from container.schema import Feature, Schema
from container.train import train

pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _evaluated(split: Path, out: Path, family: str, metric: str) -> tuple[dict[str, Any], Path]:
    train({"family": family, "mode": "plain"}, split / "train", out / "model")
    artifact = pack(out / "model", out / ARTIFACT_FILE)
    return evaluate(artifact, split / "test", out / "eval", metric), out / "eval"


@pytest.fixture(scope="module")
def binary(
    mixed_split: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    return _evaluated(mixed_split, tmp_path_factory.mktemp("binary"), "logistic-regression", "f1")


@pytest.fixture(scope="module")
def multiclass(
    wine_split: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    return _evaluated(wine_split, tmp_path_factory.mktemp("multi"), "random-forest", "f1_macro")


def _legend(fig: plt.Figure, axis: int) -> list[str]:
    return [text.get_text() for text in fig.axes[axis].get_legend().get_texts()]


def test_the_registry_parser_reads_every_metric(
    binary: tuple[dict[str, Any], Path], multiclass: tuple[dict[str, Any], Path]
) -> None:
    for report, _ in (binary, multiclass):
        parsed = ModelMonitorModelQualityParser().run(report)
        (group,) = parsed["metric_groups"]
        section_key = next(k for k in report if k.endswith("_classification_metrics"))
        assert group["name"] == section_key
        names = {entry["name"] for entry in group["metric_data"]}
        assert {"accuracy", "auc", "log_loss", "confusion_matrix"} <= names
        matrix = next(e for e in group["metric_data"] if e["name"] == "confusion_matrix")
        assert matrix["x_axis_name"] == report["classes"]


def test_roc_legends_name_each_class_with_its_auc(
    binary: tuple[dict[str, Any], Path], multiclass: tuple[dict[str, Any], Path]
) -> None:
    report, _ = binary
    auc = report["binary_classification_metrics"]["auc"]["value"]
    fig = figures(report, "mixed")[CURVES_PLOT]
    assert _legend(fig, 0)[0] == f"fraud (AUC {auc:.3f})"
    assert _legend(fig, 1) == ["fraud"]  # precision-recall: the class, not the ROC AUC
    plt.close("all")

    report, _ = multiclass
    legends = _legend(figures(report, "wine")[CURVES_PLOT], 0)
    for label in ("class_0", "class_1", "class_2"):
        auc = report["one_vs_rest_curves"][label]["auc"]
        assert 0.5 < auc <= 1.0
        assert f"{label} (AUC {auc:.3f})" in legends
    # The per-class AUCs average to the report's macro one-vs-rest AUC.
    macro = np.mean([c["auc"] for c in report["one_vs_rest_curves"].values()])
    assert macro == pytest.approx(report["multiclass_classification_metrics"]["auc"]["value"])
    assert [c.label for c in curve_data(report)] == legends
    assert _legend(figures(report, "wine")[CURVES_PLOT], 1) == ["class_0", "class_1", "class_2"]
    plt.close("all")


def test_the_confusion_matrix_is_normalised_per_actual_class(
    multiclass: tuple[dict[str, Any], Path],
) -> None:
    report, _ = multiclass
    labels, counts, normalised = confusion_data(report)
    assert labels == report["classes"]
    assert counts.sum() == report["test_rows"]
    np.testing.assert_allclose(normalised.sum(axis=1), 1.0)
    recall = report["multiclass_classification_metrics"]["macro_recall"]["value"]
    assert np.mean(np.diag(normalised)) == pytest.approx(recall)


def test_calibration_bins_cover_the_holdout(
    binary: tuple[dict[str, Any], Path], multiclass: tuple[dict[str, Any], Path]
) -> None:
    for report, _ in (binary, multiclass):
        calibration = report["calibration"]
        bins = calibration["bins"]
        assert sum(b["rows"] for b in bins) == report["test_rows"]
        for b in bins:
            assert b["lower"] <= b["mean_predicted"] <= b["upper"]
            assert 0.0 <= b["observed"] <= 1.0
        assert calibration["overconfidence"]["log_loss"] == pytest.approx(
            report["metrics"]["log_loss"]
        )
    assert binary[0]["calibration"]["predicted"] == "P(fraud)"


def _drawn_labels(proba: np.ndarray, seed: int) -> np.ndarray:
    """Labels drawn from the probabilities themselves: a perfectly calibrated model's holdout."""
    rng = np.random.default_rng(seed)
    return (rng.random((len(proba), 1)) > np.cumsum(proba, axis=1)).sum(axis=1)


def _sharpened(proba: np.ndarray, power: float) -> np.ndarray:
    sharp = proba**power
    return sharp / sharp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [2, 3])
def test_overconfidence_is_flagged_only_for_overconfident_probabilities(classes: int) -> None:
    rng = np.random.default_rng(7)
    proba = rng.dirichlet(np.ones(classes), size=400)
    y = _drawn_labels(proba, seed=8)

    calibrated = overconfidence(y, proba)
    assert not calibrated["overconfident"] and overconfidence_warning(calibrated) is None
    assert calibrated["log_loss"] == pytest.approx(calibrated["expected_log_loss"], rel=0.15)

    # The same ranking, more certain than the labels justify.
    check = overconfidence(y, _sharpened(proba, 4.0))
    assert check["overconfident"] and check["p_value"] <= 1 / SIMULATIONS * 2
    warning = overconfidence_warning(check)
    assert warning is not None and "overconfident" in warning
    assert f"{check['log_loss']:.3f}" in warning


def test_the_report_warns_when_the_log_loss_says_overconfident() -> None:
    schema = Schema("toy", "y", (Feature("x", "numeric"),), ("no", "yes"), "yes")
    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(2), size=300)
    y = _drawn_labels(proba, seed=4)

    assert build_report(y, proba, schema, "roc_auc")["warnings"] == []
    (warning,) = build_report(y, _sharpened(proba, 5.0), schema, "roc_auc")["warnings"]
    assert warning.startswith("the probabilities are overconfident")


def test_permutation_importance_ranks_the_informative_feature_first() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (x[:, 1] + 0.3 * rng.normal(size=300) > 0).astype(int)
    model = LogisticRegression().fit(x, y)

    importance = feature_importance(model, x, y, ["noise_a", "signal", "noise_b"], "roc_auc")
    signal, *noise = importance["features"]
    assert signal["name"] == "signal"
    assert signal["mean"] > 0.3
    assert all(abs(f["mean"]) < 0.05 for f in noise)
    assert importance["repeats"] == REPEATS and importance["rows"] == min(300, MAX_ROWS)


def test_importance_is_in_the_report_the_plot_and_the_explainability_file(
    binary: tuple[dict[str, Any], Path],
) -> None:
    report, directory = binary
    importance = report["importance"]
    names = [f["name"] for f in importance["features"]]
    assert sorted(names) == sorted(["x0", "x1", "x2", "x3", "x4", "x5", "colour"])
    assert importance["metric"] == "f1"
    assert json.loads((directory / "evaluation.json").read_text())["importance"] == importance

    explainability = json.loads((directory / EXPLAINABILITY_FILE).read_text())
    (group,) = ClarifyExplainabilityParser().run(explainability)["metric_groups"]
    assert group["name"] == "explanations - global_shap_values, label=label"
    assert {e["name"]: e["value"] for e in group["metric_data"]} == {
        f["name"]: f["mean"] for f in importance["features"]
    }

    for name in (CONFUSION_PLOT, CURVES_PLOT, CALIBRATION_PLOT, IMPORTANCE_PLOT):
        data = (directory / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
    fig = figures(report, "mixed")[IMPORTANCE_PLOT]
    bars = [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    assert bars == names[::-1]  # the most important on top
    plt.close("all")
