"""The fast predict path: derived from each family's real Pipeline, equal to it, or not used.

Every family in `container.families.FAMILIES` (so a family added later is covered without
editing this file) is trained with the project's own training code on binary and multiclass
data, numeric-only and with categoricals, with missing values; the path chosen at load must then
answer like the Pipeline on rows it was not proved on: the training rows, unseen categories and
missing values, in one batch and one row at a time.
"""

from __future__ import annotations

import functools
import gc
import math
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from container import fastpath
from container.artifact import load_model_dir
from container.families import FAMILIES
from container.schema import infer_schema
from container.serving import heap
from container.serving.decode import InputDecoder
from container.serving.model import load_served_model
from tests.serving_support import iris_frame, mixed_frame, train_artifact

# The families whose model step has a native path; every other one keeps its predict_proba.
NATIVE = {
    "logistic-regression": "linear",
    "lightgbm": "lightgbm-booster",
    "xgboost": "xgboost-booster",
}
SMALL = {"n_estimators": "50", "max_iter": "50"}  # the lower bounds, to train quickly


def _multiclass_mixed() -> pd.DataFrame:
    frame = mixed_frame(rows=450, seed=3)
    score = frame["size"].fillna(10.0) + (frame["colour"] == "red") * 4.0
    frame["y"] = np.select([score < 9.5, score < 12.5], ["low", "mid"], "high")
    return frame


def _iris_with_missing() -> pd.DataFrame:
    frame = iris_frame()
    rng = np.random.default_rng(5)
    for column in ("sepal_length", "petal_width"):
        frame.loc[rng.choice(len(frame), 12, replace=False), column] = np.nan
    return frame


DATASETS: dict[str, tuple[Any, str, tuple[str, ...]]] = {
    "binary-categorical": (mixed_frame, "y", ("colour", "code")),
    "multiclass-categorical": (_multiclass_mixed, "y", ("colour", "code")),
    "binary-numeric": (lambda: mixed_frame().drop(columns=["colour", "code"]), "y", ()),
    "multiclass-numeric": (_iris_with_missing, "target", ()),
}
CASES = [(family, dataset) for family in sorted(FAMILIES) for dataset in DATASETS]


@functools.cache
def _root() -> Path:
    return Path(tempfile.mkdtemp(prefix="fastpath-artifacts-"))


@functools.cache
def artifact(family: str, dataset: str) -> Path:
    make, target, categorical = DATASETS[dataset]
    known = FAMILIES[family].ranges
    return train_artifact(
        _root() / f"{family}-{dataset}",
        make(),
        dataset=dataset,
        target=target,
        family=family,
        hyperparameters={k: v for k, v in SMALL.items() if k in known},
        categorical=categorical,
    )


def held_out_rows(dataset: str, decoder: InputDecoder) -> np.ndarray:
    """The training rows (missing values included) and unseen categories, decoded as requests."""
    make, target, categorical = DATASETS[dataset]
    frame = make().drop(columns=[target])[decoder.names]
    rows = [
        [None if isinstance(v, float) and math.isnan(v) else v for v in row]
        for row in frame.itertuples(index=False)
    ]
    for k, column in enumerate(categorical):
        position = decoder.names.index(column)
        rows[k][position] = "never-seen-in-training"
    rows.append([None] * decoder.width)
    return decoder.from_rows(rows)


@pytest.mark.parametrize(("family", "dataset"), CASES)
def test_the_chosen_path_answers_like_the_pipeline(family: str, dataset: str) -> None:
    model = load_served_model("m", "u", artifact(family, dataset))
    pipeline = model.estimator.predict_proba
    rows = held_out_rows(dataset, model.decoder)
    expected = pipeline(rows)
    got = model.predict_proba(rows)
    assert got.shape == expected.shape == (len(rows), len(model.labels))
    assert np.max(np.abs(got - expected)) <= fastpath.TOLERANCE
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    for i in (0, 1, len(rows) - 1):
        one = model.predict_proba(rows[i : i + 1])
        assert np.max(np.abs(one - expected[i : i + 1])) <= fastpath.TOLERANCE


@pytest.mark.parametrize(("family", "dataset"), [c for c in CASES if c[0] in NATIVE])
def test_native_families_skip_scikit_learn(family: str, dataset: str) -> None:
    path = load_served_model("m", "u", artifact(family, dataset)).path
    assert path.name == f"numpy-preprocess+{NATIVE[family]}", path.reason
    assert path.reason.startswith("proved equal")


def test_proof_rows_cover_every_category_unseen_values_and_missing() -> None:
    loaded = load_model_dir(artifact("xgboost", "binary-categorical"))
    baseline = loaded.signature["baseline"]
    rows = fastpath.proof_rows(loaded.schema, baseline)
    assert rows.dtype == object and len(rows) >= fastpath.PROOF_ROWS
    for j, feature in enumerate(loaded.schema.features):
        column = rows[:, j].tolist()
        assert any(isinstance(v, float) and math.isnan(v) for v in column)
        stats = baseline[feature.name]
        if feature.kind == "categorical":
            assert set(stats["category_shares"]) <= set(column)
            assert any(isinstance(v, str) and v not in stats["category_shares"] for v in column)
        else:
            assert {stats["min"], stats["max"], stats["mean"]} <= set(column)


def test_a_derived_path_that_disagrees_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_model_dir(artifact("logistic-regression", "binary-categorical"))
    honest = fastpath._linear

    def off_by_a_little(model: Any) -> Any:
        predict = honest(model)
        return lambda x: predict(x) * (1 - 1e-6)

    monkeypatch.setattr(fastpath, "_linear", off_by_a_little)
    path = fastpath.choose_path(loaded.estimator, loaded.schema, loaded.signature["baseline"])
    assert path.name == fastpath.PIPELINE
    assert "differ" in path.reason


def test_a_derived_path_that_fails_on_one_row_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_model_dir(artifact("lightgbm", "multiclass-numeric"))
    honest = fastpath._lightgbm

    def batch_only(model: Any) -> Any:
        predict = honest(model)

        def checked(x: np.ndarray) -> np.ndarray:
            if len(x) == 1:
                raise RuntimeError("one row")
            return predict(x)

        return checked

    monkeypatch.setattr(fastpath, "_lightgbm", batch_only)
    path = fastpath.choose_path(loaded.estimator, loaded.schema, loaded.signature["baseline"])
    assert path.name == fastpath.PIPELINE
    assert "RuntimeError: one row" in path.reason


def test_unknown_steps_and_estimators_keep_their_own_code() -> None:
    frame = iris_frame()
    schema = infer_schema(frame, dataset="iris", target="target")
    x = frame[schema.feature_names].to_numpy(dtype=np.float64)
    y = frame["target"].to_numpy()
    scaled = Pipeline(
        [
            ("impute", SimpleImputer()),
            ("scale", MinMaxScaler()),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    path = fastpath.choose_path(scaled.fit(x, y), schema, None)
    assert path.name == "mixed-preprocess+linear"
    assert np.max(np.abs(path.predict_proba(x) - scaled.predict_proba(x))) <= fastpath.TOLERANCE
    bare = LogisticRegression(max_iter=500).fit(x, y)
    path = fastpath.choose_path(bare, schema, None)
    assert path.name == fastpath.PIPELINE and "not a Pipeline" in path.reason


def test_a_pipeline_that_refuses_missing_values_keeps_refusing_them() -> None:
    """A matrix product would answer NaN where the Pipeline raises (a 400): keep the Pipeline."""
    frame = iris_frame()
    schema = infer_schema(frame, dataset="iris", target="target")
    x = frame[schema.feature_names].to_numpy(dtype=np.float64)
    strict = Pipeline([("model", LogisticRegression(max_iter=500))]).fit(x, frame["target"])
    path = fastpath.choose_path(strict, schema, None)
    assert path.name == fastpath.PIPELINE
    with pytest.raises(ValueError):
        path.predict_proba(np.full((1, 4), np.nan))


def test_an_input_the_derived_path_cannot_take_goes_to_the_pipeline() -> None:
    def derived(x: np.ndarray) -> np.ndarray:
        raise ValueError("not covered")

    pipeline = fastpath._guarded(derived, lambda x: np.full((len(x), 2), 0.5))
    assert pipeline(np.zeros((3, 4))).tolist() == [[0.5, 0.5]] * 3


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_unloaded_model_is_freed_without_a_garbage_collection(family: str) -> None:
    """What lets `heap` freeze models: dropping the last reference frees them at once."""
    model = load_served_model("m", "u", artifact(family, "binary-categorical"))
    model.predict_proba(model.decoder.from_rows([[None, 1.0, "007", 0.5]]))
    gc.disable()
    try:
        released = weakref.ref(model.estimator)
        del model
        assert released() is None
    finally:
        gc.enable()


def test_a_model_kept_alive_by_a_cycle_is_still_freed_on_unload() -> None:
    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    gc.freeze()
    try:
        released = weakref.ref(node)
        del node
        assert released() is not None  # frozen: no collection would reach it
        heap.forget(released)
        assert released() is None
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("dataset", ["binary-numeric", "multiclass-numeric"])
def test_a_scaled_linear_model_predicts_with_the_scaling_folded_in(dataset: str) -> None:
    loaded = load_model_dir(artifact("logistic-regression", dataset))
    path = fastpath.choose_path(loaded.estimator, loaded.schema, loaded.signature["baseline"])
    assert path.name == "numpy-preprocess+linear"
    assert "folded" in path.reason, path.reason
    rows = held_out_rows(dataset, InputDecoder(loaded.schema))
    gap = np.max(np.abs(path.predict_proba(rows) - loaded.estimator.predict_proba(rows)))
    assert gap <= fastpath.TOLERANCE


def test_a_fold_that_disagrees_leaves_the_step_by_step_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = load_model_dir(artifact("logistic-regression", "binary-numeric"))
    honest = fastpath.derive_folded

    def off_by_a_little(estimator: Any) -> Any:
        predict = honest(estimator)
        return lambda x: predict(x) * (1 - 1e-6)

    monkeypatch.setattr(fastpath, "derive_folded", off_by_a_little)
    path = fastpath.choose_path(loaded.estimator, loaded.schema, loaded.signature["baseline"])
    assert path.name == "numpy-preprocess+linear"
    assert path.reason == f"proved equal within {fastpath.TOLERANCE:g}"
