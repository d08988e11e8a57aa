"""Processing-job entry point: validate a dataset and write a stratified train/test split.

Reads one CSV (a file, or a directory holding exactly one), infers the schema, encodes the
target, and writes train/train.csv, test/test.csv (both with headers) and schema.json beside
each. Every check runs before anything is written, and files appear under their final names
only once complete, so a failed run leaves no output that looks like a result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from container import paths
from container.errors import InputError, run_entry_point
from container.files import replacing
from container.layout import TEST_FILE, TRAIN_FILE
from container.schema import Schema, encode_target, infer_schema, read_csv


def resolve_input(path: Path, dataset: str) -> Path:
    if path.is_dir():
        csvs = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".txt"))
        if len(csvs) != 1:
            raise InputError(
                f"expected exactly one .csv file in the input directory, found {len(csvs)}",
                dataset=dataset,
                file=path,
            )
        return csvs[0]
    return path


def check_class_counts(y: pd.Series, schema: Schema, cv_folds: int, what: str, file: Path) -> None:
    counts = y.value_counts()
    for index, label in enumerate(schema.classes):
        count = int(counts.get(index, 0))
        if count < cv_folds:
            raise InputError(
                f"class {label!r} has {count} row(s) in the {what}, fewer than the "
                f"{cv_folds} cross-validation folds",
                dataset=schema.dataset,
                file=file,
            )


def _write_csv(frame: pd.DataFrame, directory: Path, name: str, schema: Schema) -> None:
    with replacing(directory / name) as tmp:
        frame.to_csv(tmp, index=False)
    schema.write(directory)


def split_dataset(
    source: Path,
    *,
    dataset: str,
    target: str,
    positive_class: str | None,
    categorical: tuple[str, ...],
    test_size: float,
    random_state: int,
    cv_folds: int,
) -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """Validate and split; returns frames whose target column holds encoded class indices."""
    if not 0.0 < test_size < 1.0:
        raise InputError(f"test size must be between 0 and 1, got {test_size}", dataset=dataset)
    frame = read_csv(source, dataset)
    schema = infer_schema(
        frame,
        dataset=dataset,
        target=target,
        positive_class=positive_class,
        categorical=categorical,
        file=source,
    )
    features = frame[schema.feature_names]
    y = pd.Series(encode_target(frame[target], schema, source), name=target)
    for index, label in enumerate(schema.classes):
        if int((y == index).sum()) < 2:
            raise InputError(
                f"class {label!r} has a single row; a stratified split needs at least two",
                dataset=dataset,
                file=source,
            )
    x_train, x_test, y_train, y_test = train_test_split(
        features, y, test_size=test_size, stratify=y, random_state=random_state
    )
    check_class_counts(y_train, schema, cv_folds, "training split", source)
    train = x_train.assign(**{target: y_train.to_numpy()}).reset_index(drop=True)
    test = x_test.assign(**{target: y_test.to_numpy()}).reset_index(drop=True)
    return train, test, schema


def main(argv: list[str] | None = None) -> None:
    root = paths.processing_root()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset name, used in messages")
    parser.add_argument("--target", required=True, help="name of the target column")
    parser.add_argument("--positive-class", default=None, help="positive label (binary only)")
    parser.add_argument("--categorical", default="", help="comma-separated categorical columns")
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--cv-folds", type=int, default=5)
    parser.add_argument("--input", type=Path, default=root / "input")
    parser.add_argument("--train-dir", type=Path, default=root / "train")
    parser.add_argument("--test-dir", type=Path, default=root / "test")
    args = parser.parse_args(argv)

    source = resolve_input(args.input, args.dataset)
    train, test, schema = split_dataset(
        source,
        dataset=args.dataset,
        target=args.target,
        positive_class=args.positive_class or None,
        categorical=tuple(c for c in args.categorical.split(",") if c),
        test_size=args.test_size,
        random_state=args.random_state,
        cv_folds=args.cv_folds,
    )
    _write_csv(train, args.train_dir, TRAIN_FILE, schema)
    _write_csv(test, args.test_dir, TEST_FILE, schema)
    print(
        f"{args.dataset}: {len(train)} training and {len(test)} test rows, "
        f"{len(schema.features)} features, classes {list(schema.classes)}"
    )


def run() -> None:
    run_entry_point(main)


if __name__ == "__main__":
    run()
