"""Check a dataset's data before its pipeline starts: within a second, naming the user's file.

The preprocess step refuses the same data, but only once the pipeline runs (seconds locally,
minutes on AWS), and it names the content-addressed copy it was given. This check reads the file
the registry names, says what is wrong in the user's terms (the separator to set, the label
column's empty rows, a continuous target, free-text columns) and then runs the preprocess
step's own validation and split on the data the pipeline will read, so anything that step
would refuse is refused here too, under the user's file name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from container.errors import InputError
from container.preprocess import split_dataset
from modelbuild.datasets import (
    CsvSource,
    Dataset,
    SklearnSource,
    UrlSource,
    display_path,
    materialize,
    read_table,
    source_file,
)

SEPARATORS = (",", ";", "\t", "|")
# A numeric target with more distinct values than this is a quantity, not a set of classes.
MAX_CLASSES = 50
SHOWN_ROWS = 5


@dataclass(frozen=True)
class DataCheck:
    dataset: str
    file: str  # the user's file (or the source's URL or loader) every message names
    rows: int  # the rows the pipeline trains and evaluates on
    classes: tuple[object, ...]
    notes: tuple[str, ...]  # what the user should know but need not fix


def _origin(dataset: Dataset) -> str:
    source = dataset.source
    if isinstance(source, UrlSource):
        return source.url
    if isinstance(source, SklearnSource):
        return f"sklearn.datasets.{source.sklearn}"
    return source.csv


def _separator_name(sep: str) -> str:
    return {"\t": "tabs", ",": "commas"}.get(sep, f"'{sep}'")


def check_separator(path: Path, sep: str, dataset: str) -> None:
    """Refuse a header that has no configured separator but another common one."""
    with path.open(encoding="utf-8-sig", errors="replace") as stream:
        header = stream.readline()
    if sep in header:
        return
    found = max(SEPARATORS, key=header.count)
    if header.count(found):
        # YAML reads \t as a tab only between double quotes.
        setting = 'sep: "\\t"' if found == "\t" else f"sep: '{found}'"
        raise InputError(
            f"the columns are separated by {_separator_name(found)}, not "
            f"{_separator_name(sep)}: set {setting} in the dataset's source",
            dataset=dataset,
            file=display_path(path),
        )


def _check_target(frame: pd.DataFrame, dataset: Dataset, shown: str) -> None:
    if dataset.target in frame.columns:
        return
    columns = [str(c) for c in frame.columns]
    lowered = {c.lower(): c for c in columns}
    close = lowered.get(dataset.target.lower()) or next(
        iter(difflib.get_close_matches(dataset.target, columns, n=1)), None
    )
    hint = f"; did you mean '{close}'?" if close else ""
    raise InputError(
        f"target column '{dataset.target}' is absent{hint} (columns: {', '.join(columns[:20])})",
        dataset=dataset.name,
        file=shown,
    )


def _labelled(frame: pd.DataFrame, dataset: Dataset, shown: str, notes: list[str]) -> pd.DataFrame:
    missing = frame[dataset.target].isna()
    count = int(missing.sum())
    if not count:
        return frame
    if dataset.unlabelled == "refuse":
        rows = ", ".join(str(i + 1) for i in missing[missing].index[:SHOWN_ROWS])
        more = ", ..." if count > SHOWN_ROWS else ""
        raise InputError(
            f"{count} row(s) have no label in target column '{dataset.target}' (data rows "
            f"{rows}{more}): fill them in, or set unlabelled: drop to train on the labelled rows",
            dataset=dataset.name,
            file=shown,
        )
    notes.append(f"dropped {count} row(s) without a label in '{dataset.target}'")
    return frame[~missing]


def _check_discrete_target(labels: pd.Series, dataset: Dataset, shown: str) -> None:
    if not pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        return
    distinct = int(labels.nunique())
    fractional = bool((labels % 1 != 0).any())
    if fractional or distinct > MAX_CLASSES:
        raise InputError(
            f"regression is not supported: target column '{dataset.target}' has {distinct} "
            "distinct numeric values; this project trains classifiers (bin the values into "
            "classes, or choose a label column)",
            dataset=dataset.name,
            file=shown,
        )


def _free_text(
    frame: pd.DataFrame, categorical: list[str], dataset: Dataset, shown: str, notes: list[str]
) -> None:
    many = {
        c: int(frame[c].nunique()) for c in categorical if frame[c].nunique() > dataset.max_levels
    }
    if not many:
        return
    described = "; ".join(f"'{c}' has {n} distinct values" for c, n in many.items())
    problem = (
        f"{described} in {len(frame)} rows: free text or an id, not a category a model learns "
        f"from (drop the column, or raise max_levels from {dataset.max_levels})"
    )
    if dataset.many_levels == "refuse":
        raise InputError(problem, dataset=dataset.name, file=shown)
    notes.append(problem)


def check_dataset(dataset: Dataset, data_directory: Path | None = None) -> DataCheck:
    """Refuse (InputError naming the user's file) what the pipeline would refuse, or describe
    the data it will train on. An s3:// source is read only by the pipeline, which checks it."""
    source = dataset.source
    if isinstance(source, CsvSource) and source.remote:
        return DataCheck(dataset.name, source.csv, 0, (), ("checked by the pipeline on AWS",))
    if isinstance(source, CsvSource):
        original = source_file(dataset)
        shown, sep = display_path(original), source.sep
        check_separator(original, sep, dataset.name)
    else:
        original = materialize(dataset, data_directory)
        shown, sep = _origin(dataset), ","
    frame = read_table(original, dataset.name, sep)
    notes: list[str] = []
    _check_target(frame, dataset, shown)
    frame = _labelled(frame, dataset, shown, notes)
    _check_discrete_target(frame[dataset.target], dataset, shown)
    try:
        # The preprocess step's own checks, on exactly the file the pipeline will read.
        train, test, schema = split_dataset(
            materialize(dataset, data_directory),
            dataset=dataset.name,
            target=dataset.target,
            positive_class=dataset.positive_class,
            categorical=tuple(dataset.categorical),
            test_size=dataset.test_size,
            random_state=dataset.random_state,
            cv_folds=dataset.cv_folds,
        )
    except InputError as error:
        raise InputError(error.problem, dataset=dataset.name, file=shown) from None
    categorical = [f.name for f in schema.features if f.kind == "categorical"]
    _free_text(frame, categorical, dataset, shown, notes)
    return DataCheck(dataset.name, shown, len(train) + len(test), schema.classes, tuple(notes))
