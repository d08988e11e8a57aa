"""The eight algorithm families: each a search space plus a self-contained scikit-learn Pipeline.

A fitted pipeline carries its own preprocessing (imputation, scaling where the model needs it,
one-hot encoding of categoricals, or ordinal codes for a model that splits on categories
natively), so an artifact is all the serving side needs. Each tuned
hyperparameter is passed to the estimator under its own name; `tests/test_families.py` proves
that every one of them changes what is fitted.

Why this file is long: it is the registry of model families, one builder and one search space
per family side by side, so adding or reading a family is one place; the length is the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from xgboost import XGBClassifier

from container.errors import InputError
from container.schema import Schema
from container.search_space import (
    CategoricalRange,
    ContinuousRange,
    IntegerRange,
    Range,
    unquote,
)

# Parallelism lives at the trial and fold level; one thread per estimator avoids oversubscription.
ESTIMATOR_THREADS = 1
# HistGradientBoostingClassifier accepts at most max_bins - 1 = 254 category codes (plus missing);
# rarer levels beyond that share one "infrequent" code instead of failing the fit.
NATIVE_CATEGORY_LIMIT = 254


@dataclass(frozen=True)
class Family:
    name: str
    space: tuple[Range, ...]
    defaults: Mapping[str, str]
    make_estimator: Callable[[dict[str, Any], int], BaseEstimator]
    scale_numeric: bool
    impute_numeric: bool = True
    # Categoricals as ordinal codes (NaN for missing or unseen) the model splits on natively,
    # instead of one-hot columns; the model's `categorical_features` is set to match.
    native_categorical: bool = False
    ranges: dict[str, Range] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranges", {r.name: r for r in self.space})
        if set(self.defaults) != set(self.ranges):
            raise ValueError(f"{self.name}: defaults and search space name different parameters")

    def parse(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Strings as a training job receives them -> typed values, defaults filled in."""
        unknown = sorted(set(raw) - set(self.ranges))
        if unknown:
            raise InputError(
                f"unknown hyperparameter(s) {unknown} for family '{self.name}' "
                f"(known: {sorted(self.ranges)})"
            )
        merged = {**self.defaults, **{k: unquote(v) for k, v in raw.items()}}
        return {name: self.ranges[name].parse(merged[name]) for name in self.ranges}

    def build(self, params: dict[str, Any], schema: Schema, random_state: int) -> Pipeline:
        model = self.make_estimator(params, random_state)
        if self.native_categorical:
            # Which transformed columns are categorical depends on the schema, not the trial.
            model.set_params(categorical_features=_native_categorical_columns(schema))
        preprocess = _preprocessor(
            schema, self.scale_numeric, self.impute_numeric, self.native_categorical
        )
        return Pipeline([("preprocess", preprocess), ("model", model)])


def _as_float(block: np.ndarray) -> np.ndarray:
    return np.asarray(block, dtype=np.float64)


def _native_categorical_columns(schema: Schema) -> list[int] | None:
    """Positions of the categorical codes in the preprocessor's output (numeric columns first)."""
    kinds = [f.kind for f in schema.features]
    if "categorical" not in kinds:
        return None
    numeric = kinds.count("numeric")
    return list(range(numeric, len(kinds)))


def _preprocessor(schema: Schema, scale: bool, impute: bool, native: bool) -> BaseEstimator:
    numeric_steps: list[BaseEstimator] = [FunctionTransformer(_as_float)]
    if impute:
        # keep_empty_features: a column empty in one CV fold must not shift the others.
        numeric_steps.append(SimpleImputer(strategy="median", keep_empty_features=True))
    if scale:
        numeric_steps.append(StandardScaler())
    numeric = make_pipeline(*numeric_steps)
    categorical_idx = [i for i, f in enumerate(schema.features) if f.kind == "categorical"]
    if not categorical_idx:
        # All-numeric input is already a float matrix: skip the ColumnTransformer (serving cost).
        return numeric
    numeric_idx = [i for i, f in enumerate(schema.features) if f.kind == "numeric"]
    if native:
        # Missing and unseen levels both become NaN, which the model routes as missing.
        categorical: BaseEstimator = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            max_categories=NATIVE_CATEGORY_LIMIT,
        )
    else:
        categorical = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        )
    transformers = [("categorical", categorical, categorical_idx)]
    if numeric_idx:
        transformers.insert(0, ("numeric", numeric, numeric_idx))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0)


def _optional(value: str) -> str | None:
    return None if value == "none" else value


def _max_features(value: str) -> str | float:
    return value if value == "sqrt" else float(value)


def _forest(
    kind: type[RandomForestClassifier | ExtraTreesClassifier],
) -> Callable[[dict[str, Any], int], BaseEstimator]:
    """Random forest and extra-trees take the same hyperparameters; they differ in the trees."""

    def build(p: dict[str, Any], seed: int) -> BaseEstimator:
        return kind(
            n_estimators=p["n_estimators"],
            max_depth=p["max_depth"],
            min_samples_split=p["min_samples_split"],
            min_samples_leaf=p["min_samples_leaf"],
            max_features=_max_features(p["max_features"]),
            criterion=p["criterion"],
            class_weight=_optional(p["class_weight"]),
            n_jobs=ESTIMATOR_THREADS,
            random_state=seed,
        )

    return build


def _hist_gradient_boosting(p: dict[str, Any], seed: int) -> BaseEstimator:
    return HistGradientBoostingClassifier(
        max_iter=p["max_iter"],
        learning_rate=p["learning_rate"],
        max_leaf_nodes=p["max_leaf_nodes"],
        min_samples_leaf=p["min_samples_leaf"],
        l2_regularization=p["l2_regularization"],
        max_features=p["max_features"],
        class_weight=_optional(p["class_weight"]),
        # A fixed number of boosting rounds: the tuner, not a split-off validation set, picks it.
        early_stopping=False,
        random_state=seed,
    )


def _naive_bayes(p: dict[str, Any], seed: int) -> BaseEstimator:
    return GaussianNB(var_smoothing=p["var_smoothing"])


def _logistic_regression(p: dict[str, Any], seed: int) -> BaseEstimator:
    return LogisticRegression(
        C=p["C"], class_weight=_optional(p["class_weight"]), max_iter=2000, random_state=seed
    )


def _mlp(p: dict[str, Any], seed: int) -> BaseEstimator:
    return MLPClassifier(
        hidden_layer_sizes=(p["hidden_units"],) * p["hidden_layers"],
        activation=p["activation"],
        alpha=p["alpha"],
        learning_rate_init=p["learning_rate_init"],
        max_iter=500,
        random_state=seed,
    )


def _xgboost(p: dict[str, Any], seed: int) -> BaseEstimator:
    return XGBClassifier(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"],
        learning_rate=p["learning_rate"],
        subsample=p["subsample"],
        colsample_bytree=p["colsample_bytree"],
        min_child_weight=p["min_child_weight"],
        reg_lambda=p["reg_lambda"],
        tree_method="hist",
        n_jobs=ESTIMATOR_THREADS,
        random_state=seed,
    )


def _lightgbm(p: dict[str, Any], seed: int) -> BaseEstimator:
    return LGBMClassifier(
        n_estimators=p["n_estimators"],
        num_leaves=p["num_leaves"],
        learning_rate=p["learning_rate"],
        # Row subsampling only happens when bagging is enabled (subsample_freq > 0).
        subsample=p["subsample"],
        subsample_freq=1,
        colsample_bytree=p["colsample_bytree"],
        min_child_samples=p["min_child_samples"],
        reg_lambda=p["reg_lambda"],
        n_jobs=ESTIMATOR_THREADS,
        random_state=seed,
        verbose=-1,
    )


# Random forest and extra-trees search the same space but for class_weight.
_FOREST_RANGES: tuple[Range, ...] = (
    # Measured on wine, breast-cancer and a 400-row mixed set: past ~300 trees the 5-fold CV
    # score moves less than its seed-to-seed spread; time grows linearly.
    IntegerRange("n_estimators", 50, 300, "Logarithmic"),
    IntegerRange("max_depth", 2, 32, "Logarithmic"),
    IntegerRange("min_samples_split", 2, 20),
    IntegerRange("min_samples_leaf", 1, 20),
    CategoricalRange("max_features", ("sqrt", "0.25", "0.5", "1.0")),
    CategoricalRange("criterion", ("gini", "entropy")),
)
_FOREST_DEFAULTS: Mapping[str, str] = {
    "n_estimators": "200",
    "max_depth": "16",
    "min_samples_split": "2",
    "min_samples_leaf": "1",
    "max_features": "sqrt",
    "criterion": "gini",
    "class_weight": "none",
}


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "random-forest",
            (
                *_FOREST_RANGES,
                CategoricalRange("class_weight", ("none", "balanced", "balanced_subsample")),
            ),
            _FOREST_DEFAULTS,
            _forest(RandomForestClassifier),
            scale_numeric=False,
        ),
        Family(
            "extra-trees",
            (
                *_FOREST_RANGES,
                # No bootstrap samples, so "balanced_subsample" would fit the same model as "balanced".
                CategoricalRange("class_weight", ("none", "balanced")),
            ),
            _FOREST_DEFAULTS,
            _forest(ExtraTreesClassifier),
            scale_numeric=False,
        ),
        Family(
            "naive-bayes",
            (ContinuousRange("var_smoothing", 1e-12, 1e-1, "Logarithmic"),),
            {"var_smoothing": "1e-9"},
            _naive_bayes,
            scale_numeric=False,
        ),
        Family(
            "mlp",
            (
                # Measured on wine, breast-cancer and a 400-row mixed set: 256 units or a third
                # layer never scored best and cost 2-3x the CPU of 64 units in one layer.
                IntegerRange("hidden_units", 8, 128, "Logarithmic"),
                IntegerRange("hidden_layers", 1, 2),
                CategoricalRange("activation", ("relu", "tanh")),
                ContinuousRange("alpha", 1e-6, 1e-1, "Logarithmic"),
                ContinuousRange("learning_rate_init", 1e-4, 1e-1, "Logarithmic"),
            ),
            {
                "hidden_units": "64",
                "hidden_layers": "1",
                "activation": "relu",
                "alpha": "1e-4",
                "learning_rate_init": "1e-3",
            },
            _mlp,
            scale_numeric=True,
        ),
        Family(
            "logistic-regression",
            (
                ContinuousRange("C", 1e-4, 1e3, "Logarithmic"),
                CategoricalRange("class_weight", ("none", "balanced")),
            ),
            {"C": "1.0", "class_weight": "none"},
            _logistic_regression,
            scale_numeric=True,
        ),
        Family(
            "xgboost",
            (
                IntegerRange("n_estimators", 50, 500, "Logarithmic"),
                IntegerRange("max_depth", 2, 10),
                ContinuousRange("learning_rate", 0.01, 0.3, "Logarithmic"),
                ContinuousRange("subsample", 0.5, 1.0),
                ContinuousRange("colsample_bytree", 0.5, 1.0),
                ContinuousRange("min_child_weight", 0.5, 10.0, "Logarithmic"),
                ContinuousRange("reg_lambda", 1e-3, 10.0, "Logarithmic"),
            ),
            {
                "n_estimators": "200",
                "max_depth": "4",
                "learning_rate": "0.1",
                "subsample": "1.0",
                "colsample_bytree": "1.0",
                "min_child_weight": "1.0",
                "reg_lambda": "1.0",
            },
            _xgboost,
            scale_numeric=False,
            impute_numeric=False,  # native missing-value handling
        ),
        Family(
            "lightgbm",
            (
                IntegerRange("n_estimators", 50, 500, "Logarithmic"),
                IntegerRange("num_leaves", 8, 128, "Logarithmic"),
                ContinuousRange("learning_rate", 0.01, 0.3, "Logarithmic"),
                ContinuousRange("subsample", 0.5, 1.0),
                ContinuousRange("colsample_bytree", 0.5, 1.0),
                IntegerRange("min_child_samples", 5, 50),
                ContinuousRange("reg_lambda", 1e-3, 10.0, "Logarithmic"),
            ),
            {
                "n_estimators": "200",
                "num_leaves": "31",
                "learning_rate": "0.1",
                "subsample": "1.0",
                "colsample_bytree": "1.0",
                "min_child_samples": "20",
                "reg_lambda": "1e-3",
            },
            _lightgbm,
            scale_numeric=False,
            impute_numeric=False,  # native missing-value handling
        ),
        Family(
            "hist-gradient-boosting",
            (
                IntegerRange("max_iter", 50, 500, "Logarithmic"),
                ContinuousRange("learning_rate", 0.01, 0.3, "Logarithmic"),
                IntegerRange("max_leaf_nodes", 8, 128, "Logarithmic"),
                IntegerRange("min_samples_leaf", 5, 50),
                ContinuousRange("l2_regularization", 1e-3, 10.0, "Logarithmic"),
                ContinuousRange("max_features", 0.5, 1.0),
                CategoricalRange("class_weight", ("none", "balanced")),
            ),
            {
                "max_iter": "100",
                "learning_rate": "0.1",
                "max_leaf_nodes": "31",
                "min_samples_leaf": "20",
                "l2_regularization": "1e-3",
                "max_features": "1.0",
                "class_weight": "none",
            },
            _hist_gradient_boosting,
            scale_numeric=False,
            impute_numeric=False,  # native missing-value handling
            native_categorical=True,
        ),
    )
}


def get_family(name: str) -> Family:
    family = FAMILIES.get(unquote(name))
    if family is None:
        raise InputError(f"unknown algorithm family {name!r} (known: {sorted(FAMILIES)})")
    return family
