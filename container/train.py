"""Training-job entry point: one family, selected by the `family` hyperparameter.

Hyperparameters come from /opt/ml/input/config/hyperparameters.json (all values are strings, as
SageMaker writes them). Static ones: `family`, `mode` (`cv`, the default, or `plain`), `metric`,
`cv_folds`, `random_state`; every other key must be a tuned hyperparameter of the family. In `cv`
mode each fold's score is printed as `cv_fold_<n>=<value>;`, their spread as `cv_std=<value>;`
and the objective (their mean) as `cv_score=<value>;`, for the tuning job's metric regexes
(`container.metrics.metric_definitions`); the model is then fitted on the whole training split
and saved, so every trial's artifact already is a refit model. `plain` mode skips
cross-validation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from container import paths
from container.artifact import save_model
from container.errors import InputError, run_entry_point
from container.families import get_family
from container.metrics import cv_lines
from container.search_space import unquote
from container.training import default_threads, load_training_data, run_trial

STATIC_KEYS = ("family", "mode", "metric", "cv_folds", "random_state")
# Keys SageMaker or its SDK add to every job (e.g. _tuning_objective_metric, sagemaker_program).
RESERVED_PREFIXES = ("_", "sagemaker_")


def read_hyperparameters(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise InputError("hyperparameters file not found", file=path)
    try:
        raw = json.loads(path.read_text())
    except ValueError as error:
        raise InputError(f"hyperparameters file is not JSON: {error}", file=path) from None
    if not isinstance(raw, dict):
        raise InputError("hyperparameters file must hold a JSON object", file=path)
    return {k: unquote(v) for k, v in raw.items() if not k.startswith(RESERVED_PREFIXES)}


def _int(static: dict[str, str], key: str, default: int) -> int:
    try:
        return int(static.get(key, default))
    except ValueError:
        raise InputError(
            f"hyperparameter '{key}' must be an integer, got {static[key]!r}"
        ) from None


def train(hyperparameters: dict[str, Any], train_dir: Path, model_dir: Path) -> dict[str, Any]:
    static = {k: hyperparameters[k] for k in STATIC_KEYS if k in hyperparameters}
    tuned = {k: v for k, v in hyperparameters.items() if k not in STATIC_KEYS}
    if "family" not in static:
        raise InputError("hyperparameter 'family' is required")
    family = get_family(static["family"])
    mode = static.get("mode", "cv")
    if mode not in ("cv", "plain"):
        raise InputError(f"hyperparameter 'mode' must be 'cv' or 'plain', got {mode!r}")
    data = load_training_data(train_dir)
    result = run_trial(
        family,
        tuned,
        data,
        metric=static.get("metric", "roc_auc"),
        folds=_int(static, "cv_folds", 5) if mode == "cv" else None,
        random_state=_int(static, "random_state", 42),
        threads=default_threads(),
    )
    if result.cv is not None:
        # The fold scores and their spread are for people (the training job's metrics, Studio);
        # the tuner reads only the mean (the objective line, printed last), and the pipeline's
        # choice among trials reads the same fold scores from the trial's signature.
        print("\n".join(cv_lines(result.cv.fold_scores, result.cv.std)), flush=True)
    return save_model(model_dir, result.estimator, result.signature)


def main() -> None:
    signature = train(
        read_hyperparameters(paths.hyperparameters_file()),
        paths.channel_dir("train"),
        paths.model_dir(),
    )
    print(f"saved {signature['algorithm']} model ({signature['model_sha256'][:12]})")


def run() -> None:
    run_entry_point(main, paths.failure_file())


if __name__ == "__main__":
    run()
