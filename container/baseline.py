"""Per-feature statistics of the training data, stored in the signature for drift detection.

Numeric features keep decile edges and the share of rows in each bin, which is what a population
stability index needs; categorical features keep category shares (the most frequent ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from container.schema import Schema

BINS = 10
TOP_CATEGORIES = 50


def _numeric(column: pd.Series) -> dict[str, Any]:
    values = pd.to_numeric(column, errors="coerce").dropna().to_numpy(dtype=np.float64)
    stats: dict[str, Any] = {
        "kind": "numeric",
        "count": int(values.size),
        "missing": int(column.isna().sum()),
    }
    if values.size == 0:
        return stats
    edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)))
    # Interior edges only: the outer bins are open so that live values beyond them still count.
    interior = edges[1:-1]
    counts = np.bincount(
        np.searchsorted(interior, values, side="right"), minlength=len(interior) + 1
    )
    stats.update(
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
        bin_edges=[float(e) for e in interior],
        bin_shares=[float(c) / values.size for c in counts],
    )
    return stats


def _categorical(column: pd.Series) -> dict[str, Any]:
    present = column.dropna().astype(str)
    shares = present.value_counts(normalize=True)
    top = shares.head(TOP_CATEGORIES)
    return {
        "kind": "categorical",
        "count": int(present.size),
        "missing": int(column.isna().sum()),
        "category_shares": {str(k): float(v) for k, v in top.items()},
        "other_share": float(max(0.0, 1.0 - top.sum())),
    }


def feature_baseline(frame: pd.DataFrame, schema: Schema) -> dict[str, dict[str, Any]]:
    return {
        f.name: _numeric(frame[f.name]) if f.kind == "numeric" else _categorical(frame[f.name])
        for f in schema.features
    }
