"""The cheapest predict equivalent to a fitted Pipeline's `predict_proba`, chosen once per load.

The artifact stays a self-contained scikit-learn Pipeline; this module only derives from it a
shorter way to the same numbers. scikit-learn's per-call overhead (input validation, output
wrapping, feature-name checks) costs 100-300 us for one row, more than LightGBM, XGBoost or a
linear model spend predicting it (reference/serving.md, B.5; issue 16). So:

- each preprocessing step the module knows (FunctionTransformer, SimpleImputer, StandardScaler,
  OneHotEncoder, OrdinalEncoder, nested Pipelines and a ColumnTransformer of them) becomes the
  same arithmetic on numpy arrays; a step it does not know keeps its own `transform`;
- the final estimator is called through its native booster (LightGBM, XGBoost) or as a matrix
  product (logistic regression); any other estimator keeps its own `predict_proba`.

Nothing derived is trusted until `choose_path` has compared it with the Pipeline on rows built
from the signature's baseline statistics (typical values, extremes, decile edges, missing values,
every known category and an unseen one), one batch and single rows: every probability must agree
within TOLERANCE and every predicted class must be the same. Otherwise, or if deriving fails in
any way, the Pipeline itself serves, so a family this module has never seen still works.

Why this file is long: it is one compiler from a fitted scikit-learn Pipeline to a NumPy
function, one small translator per supported step plus the proof that the result agrees; the
translators share the Transform type and the refusal rule and are only meaningful together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

from container.schema import Schema

# Largest absolute difference allowed between a derived path's probability and the Pipeline's.
# The derived arithmetic is the same sequence of float64 operations, so observed differences are
# 0 or a few ulps (~1e-16); 1e-9 leaves room for BLAS summation order and nothing else.
TOLERANCE = 1e-9
# Rows of the proof batch, and how many of them are also checked one at a time (the usual
# request is a single row, which takes other code paths, e.g. a 1-D booster output).
PROOF_ROWS = 48
SINGLE_ROW_CHECKS = 1
PIPELINE = "pipeline"
_UNSEEN = "\x00unseen category\x00"

Transform = Callable[[np.ndarray], np.ndarray]
Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PredictPath:
    name: str  # "pipeline", or "<preprocessing>+<model>" for a derived path
    predict_proba: Predict
    reason: str  # why this path: proved equal, or why the Pipeline is kept


class _Unsupported(Exception):
    """The structure is not one this module derives a path for."""


# -- preprocessing ------------------------------------------------------------------------------


def _compile_step(step: Any) -> tuple[Transform, bool]:
    """(transform, derived): the step as numpy arithmetic, or its own transform if unknown."""
    try:
        return _derive_step(step), True
    except _Unsupported:
        return step.transform, False


def _derive_step(step: Any) -> Transform:
    if step is None or step == "passthrough":
        return _identity
    kind = type(step)
    if kind is Pipeline:
        return _chain([_derive_step(inner) for _, inner in step.steps])
    if kind is FunctionTransformer:
        return _function(step)
    if kind is SimpleImputer:
        return _imputer(step)
    if kind is StandardScaler:
        return _scaler(step)
    if kind is OneHotEncoder:
        return _one_hot(step)
    if kind is OrdinalEncoder:
        return _ordinal(step)
    if kind is ColumnTransformer:
        return _columns(step)
    raise _Unsupported(kind.__name__)


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _chain(transforms: Sequence[Transform]) -> Transform:
    steps = [t for t in transforms if t is not _identity]
    if not steps:
        return _identity
    if len(steps) == 1:
        return steps[0]

    def chained(x: np.ndarray) -> np.ndarray:
        for transform in steps:
            x = transform(x)
        return x

    return chained


def _function(step: FunctionTransformer) -> Transform:
    # With validate=False, FunctionTransformer.transform is func(X, **kw_args) plus checks.
    if step.validate:
        raise _Unsupported("validating FunctionTransformer")
    if step.func is None:
        return _identity
    func, kwargs = step.func, dict(step.kw_args or {})
    return (lambda x: func(x, **kwargs)) if kwargs else func


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _imputer(step: SimpleImputer) -> Transform:
    if step.add_indicator or not _is_nan(step.missing_values):
        raise _Unsupported("SimpleImputer with an indicator or other missing markers")
    statistics = step.statistics_
    if statistics.dtype.kind == "f":
        if np.isnan(statistics).any():
            raise _Unsupported("SimpleImputer with an empty feature")
        fill = statistics.astype(np.float64)

        def impute_numeric(x: np.ndarray) -> np.ndarray:
            if x.dtype != np.float64:
                raise _Unsupported("numeric imputation of a non-float block")
            missing = np.isnan(x)
            return np.where(missing, fill, x) if missing.any() else x

        return impute_numeric
    values = list(statistics)
    if any(_is_nan(v) or v is None for v in values):
        raise _Unsupported("SimpleImputer with an empty categorical feature")

    def impute_objects(x: np.ndarray) -> np.ndarray:
        if x.dtype != object:
            raise _Unsupported("categorical imputation of a non-object block")
        out = x.copy()
        for j, value in enumerate(values):
            column = out[:, j]
            for i, cell in enumerate(column):
                if cell != cell:  # NaN, the only missing marker the decoder produces
                    column[i] = value
        return out

    return impute_objects


def _scaler(step: StandardScaler) -> Transform:
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def scale_numeric(x: np.ndarray) -> np.ndarray:
        # The same operations, in the same order, as StandardScaler.transform.
        out = np.array(x, dtype=np.float64)
        if mean is not None:
            out -= mean
        if scale is not None:
            out /= scale
        return out

    return scale_numeric


def _has_infrequent(step: OneHotEncoder | OrdinalEncoder) -> bool:
    """Whether fitting grouped rare levels into one code (a mapping this module does not copy);
    with max_categories set but every level frequent enough, the codes are the plain ones."""
    if not getattr(step, "_infrequent_enabled", False):
        return False
    return any(levels is not None for levels in step.infrequent_categories_)


def _category_index(categories: np.ndarray, missing_fitted: bool = False) -> dict[Any, int]:
    """Level -> code; a missing value among the levels only where the caller maps it itself."""
    index = {}
    for position, category in enumerate(categories.tolist()):
        if _is_nan(category) or category is None:
            if missing_fitted:
                continue
            raise _Unsupported("a missing value fitted as a category")
        index[category] = position
    return index


def _one_hot(step: OneHotEncoder) -> Transform:
    if (
        step.handle_unknown != "ignore"
        or step.drop_idx_ is not None
        or _has_infrequent(step)
        or step.sparse_output
        or step.dtype not in (np.float64, float)
    ):
        raise _Unsupported("OneHotEncoder other than dense, ignore-unknown, no drop")
    indexes = [_category_index(c) for c in step.categories_]
    offsets = np.cumsum([0] + [len(c) for c in step.categories_]).tolist()
    width = offsets[-1]

    def one_hot(x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], width), dtype=np.float64)
        for j, index in enumerate(indexes):
            offset = offsets[j]
            for i, value in enumerate(x[:, j].tolist()):
                position = index.get(value)
                if position is not None:
                    out[i, offset + position] = 1.0
        return out

    return one_hot


def _ordinal(step: OrdinalEncoder) -> Transform:
    if _has_infrequent(step) or step.handle_unknown != "use_encoded_value":
        raise _Unsupported("OrdinalEncoder with infrequent levels or errors on unknown")
    # OrdinalEncoder lists NaN among the levels when training had missing values, but encodes
    # it as encoded_missing_value, as `ordinal` does below.
    indexes = [_category_index(c, missing_fitted=True) for c in step.categories_]
    unknown = float(step.unknown_value)
    missing = float(step.encoded_missing_value)

    def ordinal(x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, dtype=np.float64)
        for j, index in enumerate(indexes):
            for i, value in enumerate(x[:, j].tolist()):
                if value != value:
                    out[i, j] = missing
                else:
                    position = index.get(value)
                    out[i, j] = unknown if position is None else position
        return out

    return ordinal


def _columns(step: ColumnTransformer) -> Transform:
    if getattr(step, "sparse_output_", False):
        raise _Unsupported("sparse ColumnTransformer")
    parts: list[tuple[list[int], Transform]] = []
    for _name, transformer, columns in step.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        selected = np.arange(step.n_features_in_)[columns].tolist()
        if not all(type(c) is int for c in selected):
            raise _Unsupported("columns selected by name")
        if not selected:
            continue
        parts.append((selected, _derive_step(transformer)))
    if not parts:
        raise _Unsupported("a ColumnTransformer that keeps nothing")

    def columns(x: np.ndarray) -> np.ndarray:
        blocks = [transform(x[:, selected]) for selected, transform in parts]
        return np.hstack(blocks) if len(blocks) > 1 else blocks[0]

    return columns


# -- final estimators -------------------------------------------------------------------------


def _two_columns(positive: np.ndarray) -> np.ndarray:
    # The scikit-learn wrappers' values, vstack((1 - p, p)).T, in the input's dtype, without
    # vstack's per-call overhead (~5 us of a ~15 us one-row linear predict).
    out = np.empty((positive.shape[0], 2), dtype=positive.dtype)
    np.subtract(1.0, positive, out=out[:, 0])
    out[:, 1] = positive
    return out


def _linear(model: LogisticRegression) -> Predict:
    weights = np.ascontiguousarray(model.coef_.T, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if len(model.classes_) == 2:

        def binary(x: np.ndarray) -> np.ndarray:
            return _two_columns(expit((x @ weights + intercept).ravel()))

        return binary

    def softmax(x: np.ndarray) -> np.ndarray:
        scores = x @ weights + intercept
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    return softmax


def _lightgbm(model: Any) -> Predict:
    booster = model.booster_
    binary = len(model.classes_) == 2

    def predict(x: np.ndarray) -> np.ndarray:
        # One thread, as each worker owns one core (the supervisor also sets OMP_NUM_THREADS):
        # spread over every core, one row cost ~12 ms instead of ~40 us on a busy machine.
        result = booster.predict(x, num_threads=1)
        return _two_columns(result) if binary else result

    return predict


def _xgboost(model: Any) -> Predict:
    booster = model.get_booster()
    binary = len(model.classes_) == 2
    missing = model.missing

    def predict(x: np.ndarray) -> np.ndarray:
        result = booster.inplace_predict(x, missing=missing, validate_features=False)
        return _two_columns(result) if binary else result

    return predict


def _final(model: Any) -> tuple[Predict, str]:
    module = type(model).__module__
    if type(model) is LogisticRegression:
        return _linear(model), "linear"
    if module.startswith("lightgbm") and type(model).__name__ == "LGBMClassifier":
        return _lightgbm(model), "lightgbm-booster"
    if module.startswith("xgboost") and type(model).__name__ == "XGBClassifier":
        return _xgboost(model), "xgboost-booster"
    return model.predict_proba, f"{type(model).__name__}.predict_proba"


def derive(estimator: Any) -> tuple[Predict, str]:
    """The derived path and its name; raises _Unsupported when the model is not a Pipeline."""
    if type(estimator) is not Pipeline:
        raise _Unsupported(f"the model is a {type(estimator).__name__}, not a Pipeline")
    steps = [step for _, step in estimator.steps]
    compiled = [_compile_step(step) for step in steps[:-1]]
    transform = _chain([t for t, _ in compiled])
    final, model_name = _final(steps[-1])
    derived_all = all(derived for _, derived in compiled)
    name = f"{'numpy' if derived_all else 'mixed'}-preprocess+{model_name}"
    if transform is _identity:
        return final, name

    def predict(x: np.ndarray) -> np.ndarray:
        return final(transform(x))

    return predict, name


def _flatten(steps: Sequence[Any]) -> list[Any]:
    """Nested Pipelines as the steps they run, in order."""
    flat: list[Any] = []
    for step in steps:
        if type(step) is Pipeline:
            flat += _flatten([inner for _, inner in step.steps])
        elif not (step is None or step == "passthrough"):
            flat.append(step)
    return flat


def derive_folded(estimator: Any) -> Predict:
    """A logistic regression whose last preprocessing step is a StandardScaler, with the scaling
    folded into its coefficients (w / scale, b - mean . w / scale): one matrix product instead
    of a copy, a subtraction and a division per call. Rounding differs from the Pipeline's by a
    few ulps, so it is proved like every other path. Raises _Unsupported for other shapes."""
    if type(estimator) is not Pipeline:
        raise _Unsupported("not a Pipeline")
    steps = [step for _, step in estimator.steps]
    model = steps[-1]
    flat = _flatten(steps[:-1])
    if type(model) is not LogisticRegression or not flat or type(flat[-1]) is not StandardScaler:
        raise _Unsupported("no StandardScaler right before a LogisticRegression")
    scaler = flat[-1]
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if scaler.with_std and scaler.scale_ is not None:
        coef = coef / scaler.scale_
    if scaler.with_mean and scaler.mean_ is not None:
        intercept = intercept - coef @ scaler.mean_
    folded = SimpleNamespace(coef_=coef, intercept_=intercept, classes_=model.classes_)
    transform = _chain([_compile_step(step)[0] for step in flat[:-1]])
    final = _linear(folded)  # type: ignore[arg-type]
    if transform is _identity:
        return final

    def predict(x: np.ndarray) -> np.ndarray:
        return final(transform(x))

    return predict


# -- the proof --------------------------------------------------------------------------------


def _numeric_values(stats: dict[str, Any]) -> list[float]:
    values = [stats.get(key) for key in ("mean", "min", "max")]
    mean, std = stats.get("mean"), stats.get("std")
    if mean is not None and std:
        values += [mean - std, mean + std]
    values += list(stats.get("bin_edges") or [])
    found = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return [*dict.fromkeys(found or [0.0]), math.nan]


def _categorical_values(stats: dict[str, Any]) -> list[Any]:
    return [*(stats.get("category_shares") or {}), _UNSEEN, math.nan]


def proof_rows(schema: Schema, baseline: dict[str, Any] | None) -> np.ndarray:
    """Rows as the request decoder builds them, covering each feature's recorded range."""
    baseline = baseline or {}
    candidates = [
        _numeric_values(baseline.get(f.name) or {})
        if f.kind == "numeric"
        else _categorical_values(baseline.get(f.name) or {})
        for f in schema.features
    ]
    rows = [[values[0] for values in candidates]]  # the typical row: means and top categories
    deepest = max(len(values) for values in candidates)
    # Every candidate of every feature at least once, the last of each being the missing value.
    rows += [[values[k % len(values)] for values in candidates] for k in range(1, deepest)]
    rows.append([values[-1] for values in candidates])  # everything missing
    # Then random mixes (fixed seed: the same proof on every load of the same model).
    sizes = np.array([len(values) for values in candidates])
    draws = np.random.default_rng(0).random((max(PROOF_ROWS - len(rows), 0), len(candidates)))
    for picks in (draws * sizes).astype(int).tolist():
        rows.append([values[k] for values, k in zip(candidates, picks, strict=True)])
    numeric_only = all(f.kind == "numeric" for f in schema.features)
    if numeric_only:
        return np.array(rows, dtype=np.float64)
    matrix = np.empty((len(rows), len(candidates)), dtype=object)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            matrix[i, j] = value
    return matrix


def _disagreement(expected: np.ndarray, got: Any) -> str | None:
    got = np.asarray(got)
    if got.shape != expected.shape:
        return f"shape {got.shape} instead of {expected.shape}"
    if not np.isfinite(got).all():
        return "non-finite probabilities"
    gap = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if gap > TOLERANCE:
        return f"probabilities differ by up to {gap:.3g} (tolerance {TOLERANCE:g})"
    ordered = np.sort(expected, axis=1)
    clear = ordered[:, -1] - ordered[:, -2] > 2 * TOLERANCE if expected.shape[1] > 1 else True
    if np.any((got.argmax(axis=1) != expected.argmax(axis=1)) & clear):
        return "a predicted class differs"
    return None


def prove(predict: Predict, expected: np.ndarray, rows: np.ndarray) -> str | None:
    """None if `predict` gives the Pipeline's `expected` answers on the batch and on single
    rows; else how it does not."""
    problem = _disagreement(expected, predict(rows))
    if problem is not None:
        return f"on the proof batch: {problem}"
    for i in range(min(SINGLE_ROW_CHECKS, len(rows))):
        problem = _disagreement(expected[i : i + 1], predict(rows[i : i + 1]))
        if problem is not None:
            return f"on proof row {i + 1} alone: {problem}"
    return None


def choose_path(estimator: Any, schema: Schema, baseline: dict[str, Any] | None) -> PredictPath:
    """The derived path if it is proved equal to the Pipeline on the proof rows, else the Pipeline."""
    pipeline = estimator.predict_proba
    try:
        predict, name = derive(estimator)
    except _Unsupported as why:
        return PredictPath(PIPELINE, pipeline, f"no derived path: {why}")
    except Exception as error:  # a fitted object can lack what its class promises
        return PredictPath(PIPELINE, pipeline, f"deriving failed: {type(error).__name__}")
    # Cheapest first: the folded linear model, then the step-by-step path it is a shortcut of.
    candidates = [(predict, f"proved equal within {TOLERANCE:g}")]
    try:
        folded = derive_folded(estimator)
    except Exception:  # _Unsupported, or a fitted object lacking what its class promises
        pass
    else:
        folded_reason = f"proved equal within {TOLERANCE:g}; scaling folded into the coefficients"
        candidates.insert(0, (folded, folded_reason))
    rows = proof_rows(schema, baseline)
    try:
        expected = np.asarray(pipeline(rows), dtype=np.float64)
    except Exception as error:  # e.g. a model refusing missing values: nothing to compare with
        return PredictPath(
            PIPELINE,
            pipeline,
            f"the Pipeline cannot predict the proof rows: {type(error).__name__}",
        )
    problem = None
    for candidate, reason in candidates:
        try:
            problem = prove(candidate, expected, rows)
        except _Unsupported as why:
            problem = f"not derivable for these inputs: {why}"
        except Exception as error:
            problem = f"fails: {type(error).__name__}: {error}"
        if problem is None:
            return PredictPath(name, _guarded(candidate, pipeline), reason)
    return PredictPath(PIPELINE, pipeline, f"derived {name} kept out: {problem}")


def _guarded(predict: Predict, pipeline: Predict) -> Predict:
    """An input the proof rows did not cover and the derived path cannot take goes to the
    Pipeline, which then accepts it or raises its own error as before."""

    def guarded(x: np.ndarray) -> np.ndarray:
        try:
            return predict(x)
        except Exception:
            return pipeline(x)

    return guarded
