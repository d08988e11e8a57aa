"""PNG plots of an evaluation report: confusion matrix, ROC and precision-recall curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in a job or a test
import matplotlib.pyplot as plt
import numpy as np


def _curve_sets(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if "one_vs_rest_curves" in section:
        return section["one_vs_rest_curves"]
    return {"positive class": section}


def write_plots(report: dict[str, Any], directory: Path, title: str) -> list[Path]:
    section_key = next(k for k in report if k.endswith("_classification_metrics"))
    section = report[section_key]
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    labels = list(section["confusion_matrix"])
    matrix = np.array([[section["confusion_matrix"][a][p] for p in labels] for a in labels])
    fig, ax = plt.subplots(figsize=(4 + 0.4 * len(labels), 3.5 + 0.4 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"{title}: confusion matrix")
    written.append(_save(fig, directory / "confusion_matrix.png"))

    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.5))
    for label, curves in _curve_sets(section).items():
        roc_curve = curves["receiver_operating_characteristic_curve"]
        pr_curve = curves["precision_recall_curve"]
        roc.plot(roc_curve["false_positive_rates"], roc_curve["true_positive_rates"], label=label)
        pr.plot(pr_curve["recalls"], pr_curve["precisions"], label=label)
    roc.plot([0, 1], [0, 1], linestyle="--", color="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC")
    pr.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall")
    roc.legend(loc="lower right")
    pr.legend(loc="lower left")
    written.append(_save(fig, directory / "roc_pr_curves.png"))
    return written


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
