"""Per-feature drift of logged inputs against the training baseline stored in the signature.

SageMaker Model Monitor does not support multi-model endpoints (and is closed to new customers),
so the project measures drift itself, per dataset, from the invoker's inference log. The
baseline is what `container.baseline` wrote into the artifact's signature at training time:

    numeric       interior decile edges + the training share of rows in each of the open bins
    categorical   the shares of the most frequent categories + the share of all others

Statistics, per feature:

- **PSI** (population stability index) over exactly the baseline's bins (numeric) or categories
  plus "other" (categorical): sum((live - base) * ln(live / base)), shares floored at
  `SHARE_FLOOR` so an empty bin does not make it infinite. Conventional reading: < 0.1 stable,
  0.1-0.25 a moderate shift (warn), >= 0.25 a major shift (drift).
- **Binned KS** (numeric): the largest gap between the live and the baseline CDF, taken at the
  baseline's decile edges, where the baseline CDF is known exactly; the raw training values are
  not in the artifact, so this is a two-sample Kolmogorov-Smirnov statistic evaluated on a
  subset of points. That makes it a lower bound of the full statistic and its p-value
  (Kolmogorov's asymptotic distribution with the two samples' effective size) conservative.
- **Total variation distance** (categorical): the largest gap in probability the two
  distributions give any set of categories, which is what KS measures over half-lines.

A feature is `drift` at PSI >= 0.25; `warn` at PSI >= 0.1 or a KS p-value below `KS_ALPHA`;
`insufficient` when fewer than `min_rows` live values were seen, because PSI has a positive bias
of about (bins - 1) / rows on an unshifted sample and reads as a shift on a handful of rows.

numpy and the standard library only: the scheduled drift job must stay light (no pandas), and
the plots live in `modeldeploy.drift_plots`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

PSI_WARN = 0.1
PSI_DRIFT = 0.25
KS_ALPHA = 0.01
MIN_ROWS = 100
# The share a bin or category with no rows is given, so that ln(live / base) stays finite.
SHARE_FLOOR = 1e-4
OTHER = "<other>"
# Unseen categories named in a report, most frequent first; the count covers all of them.
MAX_UNSEEN_NAMED = 20

Status = Literal["ok", "warn", "drift", "insufficient", "no-baseline"]
_SEVERITY: dict[str, int] = {"no-baseline": 0, "insufficient": 0, "ok": 1, "warn": 2, "drift": 3}


class DriftError(ValueError):
    """Logged inputs or a baseline that cannot be compared; the message says why."""


@dataclass(frozen=True)
class Thresholds:
    psi_warn: float = PSI_WARN
    psi_drift: float = PSI_DRIFT
    ks_alpha: float = KS_ALPHA
    min_rows: int = MIN_ROWS


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str
    status: Status
    rows: int  # live values present (missing ones are counted apart)
    psi: float | None
    # Numeric: the binned KS statistic and its p-value; categorical: total variation distance.
    distance: float | None
    p_value: float | None
    labels: list[str]  # the bins ("<= 1.5", "(1.5, 2]", "> 9") or categories, in order
    baseline_shares: list[float]
    live_shares: list[float]
    baseline_missing_share: float
    live_missing_share: float
    # Categorical: live values that are none of the baseline's categories (so counted under
    # OTHER), by value, most frequent first; `unseen_rows` counts them all. When the training
    # data had no other categories (baseline other_share 0) the model never saw these values.
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_rows: int = 0


@dataclass(frozen=True)
class DriftReport:
    dataset: str
    features: list[FeatureDrift]
    rows: int
    thresholds: Thresholds = field(default_factory=Thresholds)
    context: dict[str, Any] = field(default_factory=dict)  # stage, model version, time window

    @property
    def status(self) -> Status:
        """The worst feature's status; `insufficient` if no feature could be judged."""
        judged = [f.status for f in self.features if f.status in ("ok", "warn", "drift")]
        if not judged:
            return "insufficient"
        return max(judged, key=_SEVERITY.__getitem__)

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.status == "drift"]

    @property
    def warned(self) -> list[str]:
        return [f.name for f in self.features if f.status == "warn"]

    @property
    def max_psi(self) -> float:
        return max((f.psi for f in self.features if f.psi is not None), default=0.0)

    @property
    def unseen(self) -> dict[str, dict[str, int]]:
        """Feature -> its unseen categories and their row counts, for features that had any."""
        return {f.name: f.unseen for f in self.features if f.unseen}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "status": self.status,
            "rows": self.rows,
            "max_psi": self.max_psi,
            "drifted_features": self.drifted,
            "warned_features": self.warned,
            "unseen_categories": self.unseen,
            "thresholds": asdict(self.thresholds),
            **self.context,
            "features": [asdict(feature) for feature in self.features],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


# -- statistics --------------------------------------------------------------------------------


def psi(baseline: Sequence[float], live: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    base = np.maximum(np.asarray(baseline, dtype=np.float64), SHARE_FLOOR)
    now = np.maximum(np.asarray(live, dtype=np.float64), SHARE_FLOOR)
    return float(np.sum((now - base) * np.log(now / base)))


def kolmogorov_sf(statistic: float, effective_n: float) -> float:
    """P(D >= statistic) under the null, Kolmogorov's asymptotic series with Stephens'
    small-sample correction (Numerical Recipes' `probks`)."""
    if statistic <= 0.0 or effective_n <= 0.0:
        return 1.0
    root = math.sqrt(effective_n)
    lam = (root + 0.12 + 0.11 / root) * statistic
    if lam < 0.2:  # the series converges too slowly here, and the answer is 1 to 1e-20
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 101):
        term = sign * math.exp(-2.0 * (k * lam) ** 2)
        total += term
        if abs(term) < 1e-12 * max(abs(total), 1e-300):
            break
        sign = -sign
    return float(min(1.0, max(0.0, 2.0 * total)))


def _status(psi_value: float, p_value: float | None, thresholds: Thresholds) -> Status:
    if psi_value >= thresholds.psi_drift:
        return "drift"
    if psi_value >= thresholds.psi_warn or (p_value is not None and p_value < thresholds.ks_alpha):
        return "warn"
    return "ok"


def _to_float(value: Any) -> float | None:
    """A logged cell as a number; None, '', NaN and anything unparseable count as missing."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _numeric_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    labels = [f"< {edges[0]:.4g}"]
    labels += [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f">= {edges[-1]:.4g}"]


def numeric_drift(
    name: str, baseline: dict[str, Any], values: Sequence[Any], thresholds: Thresholds
) -> FeatureDrift:
    numbers = [_to_float(value) for value in values]
    present = np.asarray([n for n in numbers if n is not None], dtype=np.float64)
    missing_share = (len(numbers) - present.size) / len(numbers) if numbers else 0.0
    base_total = baseline.get("count", 0) + baseline.get("missing", 0)
    base_missing = baseline.get("missing", 0) / base_total if base_total else 0.0
    edges = [float(e) for e in baseline.get("bin_edges", [])]
    base_shares = [float(s) for s in baseline.get("bin_shares", [])]
    if not base_shares or len(base_shares) != len(edges) + 1:
        return FeatureDrift(
            name, "numeric", "no-baseline", int(present.size), None, None, None, [], [], [],
            base_missing, missing_share,
        )  # fmt: skip
    # side="right" is how container.baseline binned the training values: a value equal to an
    # edge belongs to the bin above it.
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), present, side="right"), minlength=len(base_shares)
    )
    live_shares = (counts / present.size).tolist() if present.size else [0.0] * len(counts)
    labels = _numeric_labels(edges)
    if present.size < thresholds.min_rows:
        return FeatureDrift(
            name, "numeric", "insufficient", int(present.size), None, None, None, labels,
            base_shares, live_shares, base_missing, missing_share,
        )  # fmt: skip
    # The CDFs at each interior edge (P(X < edge)): exact for both samples.
    gap = np.abs(np.cumsum(live_shares)[:-1] - np.cumsum(base_shares)[:-1])
    statistic = float(gap.max()) if gap.size else 0.0
    base_rows = float(baseline.get("count", 0))
    effective = present.size * base_rows / (present.size + base_rows) if base_rows else 0.0
    p_value = kolmogorov_sf(statistic, effective) if effective else None
    value = psi(base_shares, live_shares)
    return FeatureDrift(
        name, "numeric", _status(value, p_value, thresholds), int(present.size), value,
        statistic, p_value, labels, base_shares, live_shares, base_missing, missing_share,
    )  # fmt: skip


def categorical_drift(
    name: str, baseline: dict[str, Any], values: Sequence[Any], thresholds: Thresholds
) -> FeatureDrift:
    present = [str(v) for v in values if v is not None and v != "" and _is_not_nan(v)]
    missing_share = (len(values) - len(present)) / len(values) if values else 0.0
    base_total = baseline.get("count", 0) + baseline.get("missing", 0)
    base_missing = baseline.get("missing", 0) / base_total if base_total else 0.0
    categories: dict[str, float] = baseline.get("category_shares", {})
    labels = [*categories, OTHER]
    base_shares = [float(s) for s in categories.values()] + [float(baseline.get("other_share", 0))]
    index = {category: i for i, category in enumerate(categories)}
    counts = np.zeros(len(labels))
    unseen: Counter[str] = Counter()
    for value in present:
        position = index.get(value)
        if position is None:
            unseen[value] += 1
            position = len(labels) - 1
        counts[position] += 1
    live_shares = (counts / len(present)).tolist() if present else [0.0] * len(labels)
    named = dict(unseen.most_common(MAX_UNSEEN_NAMED)) if categories else {}
    unseen_rows = sum(unseen.values()) if categories else 0
    if not categories:
        status: Status = "no-baseline"
    elif len(present) < thresholds.min_rows:
        status = "insufficient"
    else:
        value = psi(base_shares, live_shares)
        distance = 0.5 * float(np.abs(np.asarray(live_shares) - np.asarray(base_shares)).sum())
        return FeatureDrift(
            name, "categorical", _status(value, None, thresholds), len(present), value, distance,
            None, labels, base_shares, live_shares, base_missing, missing_share, named,
            unseen_rows,
        )  # fmt: skip
    return FeatureDrift(
        name, "categorical", status, len(present), None, None, None, labels, base_shares,
        live_shares, base_missing, missing_share, named, unseen_rows,
    )  # fmt: skip


def _is_not_nan(value: Any) -> bool:
    return not (isinstance(value, float) and math.isnan(value))


# -- logged inputs -----------------------------------------------------------------------------


def columns_from_payloads(
    payloads: Iterable[tuple[str, str]], feature_names: Sequence[str]
) -> dict[str, list[Any]]:
    """Feature name -> every logged value, from the invoker's payloads (content type, body).

    A payload is what the invoker sent the endpoint: JSON rows (lists in feature order, or
    records by name) or CSV text, read as the serving container reads it
    (`container.serving.decode`): blank lines skipped, leading spaces dropped, and a first row
    naming every feature is the header, which orders the columns and is not a data row. A row
    of the wrong width is skipped rather than guessed at: the model refused it anyway.
    """
    columns: dict[str, list[Any]] = {name: [] for name in feature_names}
    width = len(feature_names)
    for content_type, body in payloads:
        if content_type == "text/csv":
            rows: list[Any] = _csv_rows(body, feature_names)
        else:
            try:
                rows = json.loads(body)
            except ValueError:
                continue
            if not isinstance(rows, list):
                continue
        for row in rows:
            if isinstance(row, dict):
                for name in feature_names:
                    columns[name].append(row.get(name))
            elif isinstance(row, list) and len(row) == width:
                for name, value in zip(feature_names, row, strict=True):
                    columns[name].append(value)
    return columns


def _csv_rows(body: str, feature_names: Sequence[str]) -> list[Any]:
    """CSV text as rows in feature order, its header row (if any) used and left out."""
    try:
        rows = [row for row in csv.reader(io.StringIO(body), skipinitialspace=True) if row]
    except csv.Error:
        return []  # the container refuses what it cannot parse: no model answered it
    if not rows:
        return rows
    header = [cell.strip() for cell in rows[0]]
    if len(header) != len(feature_names) or set(header) != set(feature_names):
        return rows
    position = {name: k for k, name in enumerate(header)}
    order = [position[name] for name in feature_names]
    return [[row[k] for k in order] if len(row) == len(order) else row for row in rows[1:]]


def _row_count(columns: dict[str, list[Any]]) -> int:
    return max((len(values) for values in columns.values()), default=0)


def compare(
    signature: dict[str, Any],
    columns: dict[str, list[Any]],
    thresholds: Thresholds = Thresholds(),
    context: dict[str, Any] | None = None,
) -> DriftReport:
    """Every feature of the signature's schema against its baseline statistics."""
    try:
        schema = signature["schema"]
        features = [(f["name"], f["kind"]) for f in schema["features"]]
    except (KeyError, TypeError) as error:
        raise DriftError(f"the signature has no readable schema: {error!r}") from None
    baselines = signature.get("baseline")
    if not isinstance(baselines, dict):
        raise DriftError("the signature has no baseline statistics (trained before they existed)")
    results = []
    for name, kind in features:
        baseline = baselines.get(name, {})
        values = columns.get(name, [])
        if kind == "numeric":
            results.append(numeric_drift(name, baseline, values, thresholds))
        else:
            results.append(categorical_drift(name, baseline, values, thresholds))
    return DriftReport(
        dataset=str(schema.get("dataset", "")),
        features=results,
        rows=_row_count(columns),
        thresholds=thresholds,
        context=dict(context or {}),
    )
