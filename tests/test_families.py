"""Every declared hyperparameter reaches the estimator and changes what is fitted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from container.artifact import load_model_dir, save_model
from container.errors import InputError
from container.families import FAMILIES, NATIVE_CATEGORY_LIMIT, get_family
from container.search_space import CategoricalRange, sample
from container.training import TrainingData, load_training_data, run_trial

CASES = [(family.name, r.name) for family in FAMILIES.values() for r in family.space]


def _values_to_try(family_name: str, parameter: str) -> list[str]:
    """Every value of a categorical parameter; the two extremes of a numeric range."""
    declared = FAMILIES[family_name].ranges[parameter]
    if isinstance(declared, CategoricalRange):
        return list(declared.values)
    return [str(declared.low), str(declared.high)]


@pytest.fixture(scope="module")
def data(mixed_split: Path) -> TrainingData:
    return load_training_data(mixed_split / "train")


def _fitted_proba(family_name: str, overrides: dict[str, str], data: TrainingData) -> np.ndarray:
    family = FAMILIES[family_name]
    pipeline = family.build(family.parse(overrides), data.schema, random_state=0)
    return pipeline.fit(data.x, data.y).predict_proba(data.x)


@pytest.mark.integration
@pytest.mark.parametrize(("family_name", "parameter"), CASES, ids=[f"{f}.{p}" for f, p in CASES])
def test_every_hyperparameter_changes_the_fitted_model(
    family_name: str, parameter: str, data: TrainingData
) -> None:
    """Categorical values must all fit different models; a numeric range must matter at one end.

    (One end of a range may be out of reach on small data, e.g. a depth limit deeper than any
    tree grows; a parameter that never reaches the estimator matters at neither end.)
    """
    declared = FAMILIES[family_name].ranges[parameter]
    fitted = {
        v: _fitted_proba(family_name, {parameter: v}, data)
        for v in _values_to_try(family_name, parameter)
    }
    values = list(fitted)
    distinct = [
        (a, b)
        for i, a in enumerate(values)
        for b in values[i + 1 :]
        if not np.allclose(fitted[a], fitted[b])
    ]
    if isinstance(declared, CategoricalRange):
        pairs = len(values) * (len(values) - 1) // 2
        assert len(distinct) == pairs, (
            f"{family_name}.{parameter}: some values fit identical models "
            f"(distinct pairs {distinct} of {pairs}); a value is lost on its way to the estimator"
        )
    else:
        assert distinct, (
            f"{family_name}.{parameter}: {values[0]} and {values[1]} fit the same model; "
            "the hyperparameter never reaches the estimator or has no effect"
        )


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_sampled_configurations_parse_back_within_range(family_name: str) -> None:
    family = FAMILIES[family_name]
    rng = np.random.default_rng(0)
    for _ in range(50):
        raw = sample(family.space, rng)
        parsed = family.parse(raw)
        assert set(parsed) == set(family.ranges)


def test_out_of_range_and_unknown_hyperparameters_are_named() -> None:
    forest = get_family("random-forest")
    with pytest.raises(InputError, match=r"'min_samples_leaf'=0 is outside its range \[1, 20\]"):
        forest.parse({"min_samples_leaf": "0"})
    with pytest.raises(InputError, match=r"'n_estimators' must be an integer"):
        forest.parse({"n_estimators": "12.5"})
    with pytest.raises(InputError, match=r"'criterion'='mse' is not one of"):
        forest.parse({"criterion": "mse"})
    with pytest.raises(InputError, match=r"unknown hyperparameter\(s\) \['var-smoothing'\]"):
        get_family("naive-bayes").parse({"var-smoothing": "1e-3"})
    with pytest.raises(InputError, match=r"unknown algorithm family 'svm'"):
        get_family("svm")


def test_json_quoted_strings_from_framework_estimators_are_accepted() -> None:
    assert get_family('"random-forest"').parse({"criterion": '"entropy"'})["criterion"] == "entropy"


def test_hist_gradient_boosting_splits_on_categories_natively(
    data: TrainingData, tmp_path: Path
) -> None:
    """Categoricals reach the model as category codes (not one-hot columns), and a saved model
    scores missing and never-seen levels instead of failing on them."""
    family = FAMILIES["hist-gradient-boosting"]
    trained = run_trial(family, {}, data, metric="roc_auc", folds=None, random_state=0)
    fitted = trained.estimator
    kinds = [f.kind for f in data.schema.features]
    model = fitted.named_steps["model"]
    # The preprocessor puts numeric columns first, then one code column per categorical.
    assert model.is_categorical_.tolist() == sorted(k == "categorical" for k in kinds)
    assert model.n_features_in_ == len(kinds)

    save_model(tmp_path, fitted, trained.signature)
    loaded = load_model_dir(tmp_path).estimator
    column = kinds.index("categorical")
    rows = data.x[:3].copy()
    rows[0, column] = "a level never seen in training"
    rows[1, column] = np.nan
    proba = loaded.predict_proba(rows)
    assert np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba[2], fitted.predict_proba(data.x[2:3])[0])


def test_native_categorical_codes_change_what_is_fitted(data: TrainingData) -> None:
    """Declaring the codes categorical matters: the same codes read as numbers fit another model."""
    family = FAMILIES["hist-gradient-boosting"]
    native = family.build(family.parse({}), data.schema, random_state=0)
    as_numbers = family.build(family.parse({}), data.schema, random_state=0)
    as_numbers.set_params(model__categorical_features=None)
    assert not np.allclose(
        native.fit(data.x, data.y).predict_proba(data.x),
        as_numbers.fit(data.x, data.y).predict_proba(data.x),
    )


def test_more_category_levels_than_native_codes_still_fit(data: TrainingData) -> None:
    """Levels beyond HistGradientBoosting's 254 category codes share one code instead of failing."""
    family = FAMILIES["hist-gradient-boosting"]
    column = [f.kind for f in data.schema.features].index("categorical")
    x, y = np.tile(data.x, (2, 1)), np.tile(data.y, 2)
    x[:, column] = [f"level-{i}" for i in range(len(x))]
    assert len(x) > NATIVE_CATEGORY_LIMIT
    fitted = family.build(family.parse({}), data.schema, random_state=0).fit(x, y)
    assert fitted.predict_proba(x).shape == (len(x), len(data.schema.classes))
