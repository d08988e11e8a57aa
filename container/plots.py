"""PNG plots of an evaluation report: confusion matrix, ROC and precision-recall curves,
reliability (calibration) and permutation feature importance.

Every plot is drawn from the report alone, so what a plot shows is what the JSON says; the
`*_data` functions are that data, in the form it is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")  # no display in a job or a test
import matplotlib.pyplot as plt
import numpy as np

CONFUSION_PLOT = "confusion_matrix.png"
CURVES_PLOT = "roc_pr_curves.png"
CALIBRATION_PLOT = "calibration.png"
IMPORTANCE_PLOT = "feature_importance.png"
MAX_IMPORTANCE_BARS = 20


class Curve(NamedTuple):
    name: str  # the class, as the precision-recall legend shows it
    label: str  # the class and its ROC AUC, as the ROC legend shows it
    fpr: list[float]
    tpr: list[float]
    recalls: list[float]
    precisions: list[float]


def _section(report: dict[str, Any]) -> dict[str, Any]:
    return report[next(k for k in report if k.endswith("_classification_metrics"))]


def _auc_text(value: Any) -> str:
    return f"AUC {value:.3f}" if isinstance(value, float) else "AUC n/a"


def curve_data(report: dict[str, Any]) -> list[Curve]:
    """One curve per class (one-vs-rest) when multiclass, the positive class's when binary,
    each labelled with its class name and its AUC."""
    if "one_vs_rest_curves" in report:
        sets = {
            name: (curves, curves["auc"]) for name, curves in report["one_vs_rest_curves"].items()
        }
    else:
        section = _section(report)
        positive = report["classes"][-1]  # the positive class is encoded last
        sets = {positive: (section, section["auc"]["value"])}
    return [
        Curve(
            name,
            f"{name} ({_auc_text(auc)})",
            c["receiver_operating_characteristic_curve"]["false_positive_rates"],
            c["receiver_operating_characteristic_curve"]["true_positive_rates"],
            c["precision_recall_curve"]["recalls"],
            c["precision_recall_curve"]["precisions"],
        )
        for name, (c, auc) in sets.items()
    ]


def confusion_data(report: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels, counts, and counts normalised per actual class (each row: that class's recall and
    where its misses went). A class absent from the holdout has a row of zeros."""
    matrix = _section(report)["confusion_matrix"]
    labels = list(matrix)
    counts = np.array([[matrix[a][p] for p in labels] for a in labels], dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return labels, counts.astype(int), normalised


def figures(report: dict[str, Any], title: str) -> dict[str, plt.Figure]:
    """The report's plots by file name (the caller saves or inspects them)."""
    drawn = {CONFUSION_PLOT: _confusion(report, title), CURVES_PLOT: _curves(report, title)}
    if "calibration" in report:
        drawn[CALIBRATION_PLOT] = _calibration(report, title)
    if report.get("importance"):
        drawn[IMPORTANCE_PLOT] = _importance(report, title)
    return drawn


def write_plots(report: dict[str, Any], directory: Path, title: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures(report, title).items():
        fig.tight_layout()
        fig.savefig(directory / name, dpi=100)
        plt.close(fig)
        written.append(directory / name)
    return written


def _confusion(report: dict[str, Any], title: str) -> plt.Figure:
    labels, counts, normalised = confusion_data(report)
    fig, ax = plt.subplots(figsize=(4 + 0.5 * len(labels), 3.5 + 0.5 * len(labels)))
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the actual class")
    for (i, j), share in np.ndenumerate(normalised):
        color = "white" if share > 0.5 else "black"
        ax.text(j, i, f"{share:.0%}\n({counts[i, j]})", ha="center", va="center", color=color)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"{title}\nconfusion matrix (share of each actual class)")
    return fig


def _curves(report: dict[str, Any], title: str) -> plt.Figure:
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.5))
    for curve in curve_data(report):
        roc.plot(curve.fpr, curve.tpr, label=curve.label)
        pr.plot(curve.recalls, curve.precisions, label=curve.name)
    roc.plot([0, 1], [0, 1], linestyle="--", color="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC")
    pr.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall")
    roc.legend(loc="lower right")
    pr.legend(loc="lower left")
    return fig


def _calibration(report: dict[str, Any], title: str) -> plt.Figure:
    calibration = report["calibration"]
    bins = calibration["bins"]
    fig, (curve, counts) = plt.subplots(
        2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    curve.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    curve.plot(
        [b["mean_predicted"] for b in bins],
        [b["observed"] for b in bins],
        marker="o",
        label=f"model (ECE {calibration['expected_calibration_error']:.3f})",
    )
    observed = (
        "fraction correct" if "confidence" in calibration["predicted"] else "fraction positive"
    )
    curve.set(ylabel=f"observed {observed}", title=f"{title}: reliability")
    curve.legend(loc="upper left")
    check = calibration["overconfidence"]
    note = "OVERCONFIDENT" if check["overconfident"] else "log loss as expected"
    curve.text(
        0.98,
        0.04,
        f"log loss {check['log_loss']:.3f}, expected {check['expected_log_loss']:.3f}: {note}",
        transform=curve.transAxes,
        ha="right",
        fontsize=8,
        color="red" if check["overconfident"] else "black",
    )
    counts.bar(
        [(b["lower"] + b["upper"]) / 2 for b in bins],
        [b["rows"] for b in bins],
        width=[b["upper"] - b["lower"] for b in bins],
        edgecolor="white",
    )
    counts.set(xlabel=f"predicted {calibration['predicted']}", ylabel="rows", xlim=(0, 1))
    return fig


def _importance(report: dict[str, Any], title: str) -> plt.Figure:
    importance = report["importance"]
    shown = importance["features"][:MAX_IMPORTANCE_BARS][::-1]  # most important on top
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.3 * len(shown)))
    ax.barh([f["name"] for f in shown], [f["mean"] for f in shown], xerr=[f["std"] for f in shown])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"drop in holdout {importance['metric']} when shuffled")
    ax.set_title(
        f"{title}\npermutation importance ({importance['repeats']} repeats, "
        f"{importance['rows']} rows)"
    )
    return fig
