"""Drift core: PSI and binned KS against the signature's training baseline.

The baselines are computed by the training code itself (`container.baseline`), so the tests
compare against exactly what a registered artifact carries.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kstwobign

from container.baseline import feature_baseline
from container.schema import infer_schema
from modeldeploy import drift
from modeldeploy.drift import Thresholds, columns_from_payloads, compare, kolmogorov_sf, psi
from tests.serving_support import breast_cancer_frame, mixed_frame


def signature_for(frame: pd.DataFrame, dataset: str, target: str) -> dict[str, Any]:
    schema = infer_schema(frame, dataset=dataset, target=target)
    # Round-trip through JSON: the drift job reads the signature file, not Python objects.
    return json.loads(
        json.dumps(
            {"schema": schema.to_dict(), "baseline": feature_baseline(frame, schema)},
            default=float,
        )
    )


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, dict[str, Any]]:
    frame = breast_cancer_frame()
    return frame, signature_for(frame, "breast-cancer", "target")


def columns(frame: pd.DataFrame, signature: dict[str, Any]) -> dict[str, list[Any]]:
    names = [f["name"] for f in signature["schema"]["features"]]
    return {name: frame[name].tolist() for name in names}


@pytest.mark.parametrize("seed", range(10))
def test_an_unshifted_sample_from_the_training_data_is_not_drift(cancer, seed: int) -> None:
    frame, signature = cancer
    sample = frame.sample(n=400, replace=True, random_state=seed)
    report = compare(signature, columns(sample, signature))
    assert report.status == "ok", [
        (f.name, f.psi, f.p_value) for f in report.features if f.status != "ok"
    ]
    assert report.drifted == [] and report.max_psi < drift.PSI_WARN


def test_a_shifted_feature_is_detected_and_only_that_one(cancer) -> None:
    frame, signature = cancer
    sample = frame.sample(n=400, replace=True, random_state=1).copy()
    # Half a standard deviation: a realistic recalibration of one sensor.
    sample["mean radius"] += 0.5 * frame["mean radius"].std()
    report = compare(signature, columns(sample, signature))
    assert report.status == "drift"
    assert report.drifted == ["mean radius"]
    shifted = next(f for f in report.features if f.name == "mean radius")
    assert shifted.psi is not None and shifted.psi >= drift.PSI_DRIFT
    assert shifted.p_value is not None and shifted.p_value < 1e-6
    # Live values past the training maximum land in the open top bin, not outside every bin.
    assert sum(shifted.live_shares) == pytest.approx(1.0)


def test_a_small_shift_warns_through_ks_before_psi_calls_it_drift(cancer) -> None:
    frame, signature = cancer
    sample = frame.sample(n=2000, replace=True, random_state=2).copy()
    sample["mean texture"] += 0.2 * frame["mean texture"].std()
    shifted = next(
        f for f in compare(signature, columns(sample, signature)).features
        if f.name == "mean texture"
    )  # fmt: skip
    assert shifted.status == "warn"
    assert shifted.psi is not None and shifted.psi < drift.PSI_DRIFT


def test_categorical_drift_is_detected() -> None:
    frame = mixed_frame(rows=600)
    signature = signature_for(frame, "mixed", "y")
    steady = compare(signature, columns(frame.sample(n=300, random_state=0), signature))
    assert {f.name: f.status for f in steady.features}["colour"] == "ok"

    live = frame.sample(n=300, random_state=0).copy()
    # Most rows turn blue, and a colour training never saw appears: it counts as <other>.
    live.loc[live.index[:200], "colour"] = "blue"
    live.loc[live.index[200:240], "colour"] = "purple"
    colour = next(f for f in compare(signature, columns(live, signature)).features
                  if f.name == "colour")  # fmt: skip
    assert colour.kind == "categorical" and colour.status == "drift"
    assert colour.labels[-1] == drift.OTHER and colour.live_shares[-1] > 0.1
    assert colour.distance is not None and colour.distance > 0.3


def test_too_few_rows_are_insufficient_not_drift(cancer) -> None:
    frame, signature = cancer
    report = compare(signature, columns(frame.head(20), signature))
    assert report.status == "insufficient"
    assert all(f.psi is None for f in report.features)


def test_missing_values_are_counted_apart(cancer) -> None:
    frame, signature = cancer
    sample = frame.sample(n=300, random_state=3).copy()
    sample["mean area"] = sample["mean area"].astype(object)
    sample.loc[sample.index[:60], "mean area"] = None
    report = compare(signature, columns(sample, signature), Thresholds(min_rows=50))
    area = next(f for f in report.features if f.name == "mean area")
    assert area.rows == 240 and area.live_missing_share == pytest.approx(0.2)


def test_psi_is_zero_for_equal_shares_and_finite_for_an_empty_bin() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert 0 < psi([0.5, 0.5], [1.0, 0.0]) < 10


@pytest.mark.parametrize("statistic", [0.02, 0.05, 0.08, 0.15])
def test_the_ks_p_value_follows_kolmogorovs_distribution(statistic: float) -> None:
    n = 10_000.0
    lam = (n**0.5 + 0.12 + 0.11 / n**0.5) * statistic
    assert kolmogorov_sf(statistic, n) == pytest.approx(kstwobign.sf(lam), rel=1e-6, abs=1e-12)


def test_payloads_in_every_invoker_format_become_columns() -> None:
    payloads = [
        ("application/json", json.dumps([[1.0, "red"], [2.0, "blue"]])),
        ("application/json", json.dumps([{"size": 3.0, "colour": "green"}])),
        ("text/csv", "4.0,red\n5.0,blue\n"),
        ("application/json", json.dumps([[1.0]])),  # the wrong width: refused by the model
    ]
    result = columns_from_payloads(payloads, ["size", "colour"])
    assert result == {
        "size": [1.0, 2.0, 3.0, "4.0", "5.0"],
        "colour": ["red", "blue", "green", "red", "blue"],
    }


def test_the_report_is_json_with_a_summary(cancer) -> None:
    frame, signature = cancer
    report = compare(
        signature, columns(frame.sample(n=200, random_state=0), signature), context={"stage": "dev"}
    )
    document = json.loads(report.to_json())
    assert document["stage"] == "dev" and document["status"] == report.status
    assert len(document["features"]) == 30
    assert np.isclose(sum(document["features"][0]["baseline_shares"]), 1.0)


def test_plots_show_the_overview_and_each_drifted_feature(cancer, tmp_path) -> None:
    from modeldeploy.drift_plots import write_plots

    frame, signature = cancer
    sample = frame.sample(n=400, replace=True, random_state=1).copy()
    sample["mean radius"] += frame["mean radius"].std()
    paths = write_plots(compare(signature, columns(sample, signature)), tmp_path)
    assert [p.name for p in paths] == ["psi.png", "feature-mean_radius.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_unseen_categories_are_counted_and_named() -> None:
    frame = mixed_frame(rows=600)
    signature = signature_for(frame, "mixed", "y")
    assert signature["baseline"]["colour"]["other_share"] == 0  # training saw every category
    live = frame.sample(n=300, random_state=0).copy()
    live.loc[live.index[:40], "colour"] = "purple"
    live.loc[live.index[40:43], "colour"] = "mauve"
    report = compare(signature, columns(live, signature))
    colour = next(f for f in report.features if f.name == "colour")
    assert colour.unseen == {"purple": 40, "mauve": 3} and colour.unseen_rows == 43
    assert list(colour.unseen) == ["purple", "mauve"]  # most frequent first
    assert report.unseen == {"colour": {"purple": 40, "mauve": 3}}
    assert json.loads(report.to_json())["unseen_categories"] == report.unseen
    assert all(not f.unseen for f in compare(signature, columns(frame, signature)).features)


def test_only_the_most_frequent_unseen_categories_are_named() -> None:
    frame = mixed_frame(rows=600)
    signature = signature_for(frame, "mixed", "y")
    live = frame.sample(n=300, random_state=0).copy()
    live["colour"] = [f"new-{i % 30}" for i in range(len(live))]
    colour = next(
        f for f in compare(signature, columns(live, signature)).features if f.name == "colour"
    )
    assert len(colour.unseen) == drift.MAX_UNSEEN_NAMED and colour.unseen_rows == 300


def test_a_csv_header_row_orders_the_columns_and_is_not_a_row() -> None:
    payloads = [
        ("text/csv", "size,colour\n4.0,red\n5.0, blue\n"),
        ("text/csv", "colour , size\n\ngreen,6.0\n"),  # reordered, spaced, a blank line
        ("text/csv", "7.0,red\n"),
    ]
    result = columns_from_payloads(payloads, ["size", "colour"])
    assert result == {
        "size": ["4.0", "5.0", "6.0", "7.0"],
        "colour": ["red", "blue", "green", "red"],
    }
