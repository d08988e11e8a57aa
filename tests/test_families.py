"""Every declared hyperparameter reaches the estimator and changes what is fitted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from container.errors import InputError
from container.families import FAMILIES, get_family
from container.search_space import CategoricalRange, sample
from container.training import TrainingData, load_training_data

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
