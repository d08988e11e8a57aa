"""The data contract between preprocess, train, evaluate and serve.

A schema says which columns are features (numeric or categorical), which is the target, and the
class labels in encoded order (label i is encoded as integer i; for a binary problem the positive
class is always 1). Every stage turns a table into model input through `to_model_input`, so the
fitted pipeline sees the same array layout at training and at serving time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from container.errors import InputError
from container.layout import SCHEMA_FILE

FeatureKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind


@dataclass(frozen=True)
class Schema:
    dataset: str
    target: str
    features: tuple[Feature, ...]
    classes: tuple[Any, ...]
    positive_class: Any | None

    @property
    def problem_type(self) -> Literal["binary", "multiclass"]:
        return "binary" if len(self.classes) == 2 else "multiclass"

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "target": self.target,
            "features": [asdict(feature) for feature in self.features],
            "classes": list(self.classes),
            "positive_class": self.positive_class,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(
            dataset=data["dataset"],
            target=data["target"],
            features=tuple(Feature(f["name"], f["kind"]) for f in data["features"]),
            classes=tuple(data["classes"]),
            positive_class=data.get("positive_class"),
        )

    def write(self, directory: Path) -> Path:
        path = directory / SCHEMA_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def read(cls, directory: Path, dataset: str | None = None) -> Schema:
        path = directory / SCHEMA_FILE
        if not path.is_file():
            raise InputError(
                "schema file is missing (run preprocess first)", dataset=dataset, file=path
            )
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(
                f"schema file is not valid: {error}", dataset=dataset, file=path
            ) from None


def read_csv(path: Path, dataset: str, dtype: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a CSV with a header row, turning every way it can be unreadable into an InputError."""
    if not path.is_file():
        raise InputError("file not found", dataset=dataset, file=path)
    try:
        frame = pd.read_csv(path, dtype=dtype, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError("the file is empty", dataset=dataset, file=path) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise InputError(
            f"not a parseable CSV: {error}".strip(), dataset=dataset, file=path
        ) from None
    if frame.empty:
        raise InputError("the CSV has a header but no data rows", dataset=dataset, file=path)
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed:")]
    if unnamed:
        raise InputError(
            f"the CSV has {len(unnamed)} column(s) without a name in the header row",
            dataset=dataset,
            file=path,
        )
    return frame


def _native(value: Any) -> Any:
    """A label as a JSON-native value (numpy scalars do not serialise)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def infer_schema(
    frame: pd.DataFrame,
    *,
    dataset: str,
    target: str,
    positive_class: Any | None = None,
    categorical: tuple[str, ...] = (),
    file: Path | None = None,
) -> Schema:
    """Infer feature kinds and the class order, refusing tables no model can be trained on."""
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:20]))
        raise InputError(
            f"target column '{target}' is absent (columns: {columns})", dataset=dataset, file=file
        )
    missing_target = int(frame[target].isna().sum())
    if missing_target:
        raise InputError(
            f"target column '{target}' has {missing_target} row(s) without a value",
            dataset=dataset,
            file=file,
        )
    feature_columns = [c for c in frame.columns if c != target]
    if not feature_columns:
        raise InputError(
            "there is no feature column besides the target", dataset=dataset, file=file
        )
    unknown = sorted(set(categorical) - set(feature_columns))
    if unknown:
        raise InputError(
            f"categorical column(s) {unknown} are not feature columns", dataset=dataset, file=file
        )
    empty = [c for c in feature_columns if frame[c].isna().all()]
    if empty:
        raise InputError(
            f"feature column(s) {empty} have no values at all", dataset=dataset, file=file
        )

    features = tuple(
        Feature(
            str(column),
            "numeric"
            if column not in categorical
            and pd.api.types.is_numeric_dtype(frame[column])
            and not pd.api.types.is_bool_dtype(frame[column])
            else "categorical",
        )
        for column in feature_columns
    )

    labels = sorted({_native(v) for v in frame[target].unique()}, key=lambda v: (str(type(v)), v))
    if len(labels) < 2:
        raise InputError(
            f"target column '{target}' has a single class ({labels[0]!r}); "
            "a classifier needs at least two",
            dataset=dataset,
            file=file,
        )
    if positive_class is not None:
        matches = [label for label in labels if str(label) == str(positive_class)]
        if not matches:
            raise InputError(
                f"positive class {positive_class!r} is not among the labels {labels}",
                dataset=dataset,
                file=file,
            )
        if len(labels) != 2:
            raise InputError(
                f"a positive class is set but the target has {len(labels)} classes",
                dataset=dataset,
                file=file,
            )
        positive_class = matches[0]
        labels = [label for label in labels if label != positive_class] + [positive_class]
    elif len(labels) == 2:
        positive_class = labels[1]
    return Schema(dataset, str(target), features, tuple(labels), positive_class)


def encode_target(series: pd.Series, schema: Schema, file: Path | None = None) -> np.ndarray:
    """Original labels -> integers in schema order; unknown labels are an InputError."""
    index = {str(label): i for i, label in enumerate(schema.classes)}
    as_text = series.map(lambda v: str(_native(v)))
    unknown = sorted(set(as_text) - set(index))
    if unknown:
        raise InputError(
            f"target has label(s) {unknown[:5]} not in the schema's classes {list(schema.classes)}",
            dataset=schema.dataset,
            file=file,
        )
    return as_text.map(index).to_numpy(dtype=np.int64)


def csv_dtypes(schema: Schema) -> dict[str, Any]:
    """Read categorical columns as text so that '007' stays '007' across a CSV round trip."""
    return {f.name: str for f in schema.features if f.kind == "categorical"}


def to_model_input(frame: pd.DataFrame, schema: Schema, file: Path | None = None) -> np.ndarray:
    """A table -> the array every fitted pipeline takes (columns in schema order).

    All-numeric schemas give a float64 matrix (the fast path); mixed schemas give an object matrix
    whose numeric columns hold floats and categorical columns hold strings or NaN.
    """
    missing = [name for name in schema.feature_names if name not in frame.columns]
    if missing:
        raise InputError(
            f"feature column(s) {missing} are missing", dataset=schema.dataset, file=file
        )
    all_numeric = all(f.kind == "numeric" for f in schema.features)
    columns = []
    for feature in schema.features:
        column = frame[feature.name]
        if feature.kind == "numeric":
            numeric = pd.to_numeric(column, errors="coerce")
            bad = column.notna() & numeric.isna()
            if bad.any():
                example = column[bad].iloc[0]
                raise InputError(
                    f"feature '{feature.name}' is numeric but has the value {example!r}",
                    dataset=schema.dataset,
                    file=file,
                )
            columns.append(numeric.to_numpy(dtype=np.float64))
        else:
            # None and pd.NA become NaN: the imputers treat only NaN as missing in object arrays.
            columns.append(
                column.map(lambda v: np.nan if pd.isna(v) else str(v)).to_numpy(dtype=object)
            )
    if all_numeric:
        return np.column_stack(columns).astype(np.float64, copy=False)
    return np.column_stack(columns).astype(object, copy=False)
