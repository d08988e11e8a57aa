"""PNG plots of a drift report: the PSI of every feature, and baseline vs live shares per feature.

Kept apart from `modeldeploy.drift` so that computing drift never imports matplotlib.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the drift job runs headless

import matplotlib.pyplot as plt
import numpy as np

from modeldeploy.drift import DriftReport, FeatureDrift

_COLOURS = {"ok": "tab:green", "warn": "tab:orange", "drift": "tab:red"}


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "feature"


def plot_overview(report: DriftReport, path: Path) -> Path:
    """One bar per judged feature, coloured by status, with the warn and drift lines."""
    judged = [f for f in report.features if f.psi is not None]
    height = max(2.5, 0.28 * len(judged) + 1.2)
    figure, axes = plt.subplots(figsize=(8, height))
    names = [f.name for f in judged]
    axes.barh(names, [f.psi or 0.0 for f in judged], color=[_COLOURS[f.status] for f in judged])
    axes.axvline(report.thresholds.psi_warn, color="tab:orange", linestyle="--", label="warn")
    axes.axvline(report.thresholds.psi_drift, color="tab:red", linestyle="--", label="drift")
    axes.invert_yaxis()
    axes.set_xlabel("population stability index")
    axes.set_title(f"{report.dataset}: drift of {report.rows} logged rows ({report.status})")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_feature(feature: FeatureDrift, path: Path) -> Path:
    """Baseline and live share of each bin (numeric) or category, side by side."""
    positions = np.arange(len(feature.labels))
    figure, axes = plt.subplots(figsize=(max(6, 0.6 * len(positions) + 2), 3.5))
    axes.bar(positions - 0.2, feature.baseline_shares, width=0.4, label="training baseline")
    axes.bar(positions + 0.2, feature.live_shares, width=0.4, label="logged inputs")
    axes.set_xticks(positions, feature.labels, rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("share of rows")
    psi_text = f"PSI {feature.psi:.3f}" if feature.psi is not None else "no PSI"
    axes.set_title(f"{feature.name} ({feature.kind}): {feature.status}, {psi_text}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_plots(report: DriftReport, directory: Path, every_feature: bool = False) -> list[Path]:
    """The overview plus one plot per feature that warns or drifts (or every judged feature)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [plot_overview(report, directory / "psi.png")]
    for feature in report.features:
        if feature.labels and (every_feature or feature.status in ("warn", "drift")):
            paths.append(
                plot_feature(feature, directory / f"feature-{_file_name(feature.name)}.png")
            )
    return paths
