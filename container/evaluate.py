"""Processing-job entry point: choose the tuning trial to register, score it on the holdout split
and write the report.

In the pipeline (`--trials`) the input holds every trial artifact of the tuning job; their
signatures' fold scores are read without unpickling (`container.trials`), the one-standard-error
rule chooses one (`container.selection`), the chosen model.tar.gz is copied byte for byte to
`--model-output` (what the register step registers) and evaluated, and the choice and its reason
go into the report's `selection`. `--model` evaluates one given artifact instead. The chosen model
is verified, its test split predicted, and evaluation.json, explainability.json (the permutation
feature importance in Clarify's layout, for the model registry) and PNG plots are written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from container import paths
from container.artifact import load_artifact
from container.errors import InputError, run_entry_point
from container.importance import explainability_report, feature_importance
from container.layout import (
    ARTIFACT_FILE,
    EXPLAINABILITY_FILE,
    MODEL_SHA256_PATH,
    REPORT_FILE,
    TEST_FILE,
)
from container.metrics import METRIC_NAMES
from container.plots import write_plots
from container.report import build_report
from container.schema import csv_dtypes, encode_target, read_csv, to_model_input
from container.selection import select
from container.trials import read_trials


def evaluate(
    model_archive: Path,
    test_dir: Path,
    output_dir: Path,
    metric: str,
    selection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score one artifact on the test split and write the report (with `selection`, if given)."""
    if metric not in METRIC_NAMES:
        raise InputError(f"unknown metric {metric!r} (known: {list(METRIC_NAMES)})")
    with tempfile.TemporaryDirectory() as workdir:
        model = load_artifact(model_archive, Path(workdir))
    schema = model.schema
    test_path = test_dir / TEST_FILE
    frame = read_csv(test_path, schema.dataset, dtype=csv_dtypes(schema))
    if schema.target not in frame.columns:
        raise InputError(f"target column '{schema.target}' is absent", file=test_path)
    # The test split holds class indices; anything else is reported as an unknown label.
    indices = pd.to_numeric(frame[schema.target], errors="coerce")
    labels = [
        schema.classes[int(i)] if i == i and float(i).is_integer() and 0 <= i < len(schema.classes)
        else f"#{raw}"
        for i, raw in zip(indices, frame[schema.target], strict=True)
    ]  # fmt: skip
    labels = pd.Series(labels, dtype=object)
    y = encode_target(labels, schema, test_path)
    features = to_model_input(frame, schema, test_path)
    proba = model.estimator.predict_proba(features)
    report = build_report(y, proba, schema, metric)
    report["importance"] = feature_importance(
        model.estimator, features, y, schema.feature_names, metric
    )
    report.update(
        dataset=schema.dataset,
        algorithm=model.signature["algorithm"],
        hyperparameters=model.signature["hyperparameters"],
        cv=model.signature.get("cv"),
    )
    # The pipeline compares this with the model package group's latest version before it
    # registers; load_artifact has verified it against the model file.
    report[MODEL_SHA256_PATH] = model.signature["model_sha256"]
    if selection is not None:
        report["selection"] = selection
    output_dir.mkdir(parents=True, exist_ok=True)
    write_plots(report, output_dir, f"{schema.dataset} ({report['algorithm']})")
    (output_dir / EXPLAINABILITY_FILE).write_text(
        json.dumps(explainability_report(report["importance"], schema.target), indent=2)
    )
    # The report is written last: its presence means the evaluation is complete.
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return report


def evaluate_trials(
    trials_dir: Path,
    test_dir: Path,
    output_dir: Path,
    metric: str,
    model_output_dir: Path,
    tuning_job: str = "",
) -> dict[str, Any]:
    """Choose among the tuning trials under `trials_dir`, copy the chosen artifact to
    `model_output_dir`, and evaluate that copy (the bytes the register step registers)."""
    if metric not in METRIC_NAMES:
        raise InputError(f"unknown metric {metric!r} (known: {list(METRIC_NAMES)})")
    trials, artifacts = read_trials(trials_dir, tuning_job)
    choice = select(trials, metric)
    chosen = model_output_dir / ARTIFACT_FILE
    model_output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifacts[choice.chosen.trial.name], chosen)
    return evaluate(chosen, test_dir, output_dir, metric, selection=choice.to_dict())


def main(argv: list[str] | None = None) -> None:
    root = paths.processing_root()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="roc_auc", choices=METRIC_NAMES)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--trials", type=Path, help="every tuning trial's artifact: choose one, then evaluate it"
    )
    source.add_argument("--model", type=Path, help="evaluate this one artifact (or its directory)")
    parser.add_argument("--tuning-job", default="", help="the tuning job the trials belong to")
    parser.add_argument(
        "--model-output",
        type=Path,
        default=root / "chosen",
        help="where the chosen trial's model.tar.gz is copied (with --trials)",
    )
    parser.add_argument("--test-dir", type=Path, default=root / "test")
    parser.add_argument("--output-dir", type=Path, default=root / "evaluation")
    args = parser.parse_args(argv)
    if args.trials is not None:
        report = evaluate_trials(
            args.trials,
            args.test_dir,
            args.output_dir,
            args.metric,
            args.model_output,
            args.tuning_job,
        )
        print(f"{report['dataset']}: chose {report['selection']['chosen_trial']}: "
              f"{report['selection']['reason']}")  # fmt: skip
    else:
        model = args.model or root / "model" / ARTIFACT_FILE
        model = model / ARTIFACT_FILE if model.is_dir() else model
        report = evaluate(model, args.test_dir, args.output_dir, args.metric)
    value = report["register_metric"]["value"]
    print(f"{report['dataset']}: holdout {args.metric} = {value:.4f} ({report['algorithm']})")
    for warning in report["warnings"]:
        print(f"{report['dataset']}: warning: {warning}")


def run() -> None:
    run_entry_point(main)


if __name__ == "__main__":
    run()
