"""FLAML's side, run in the benchmark's environment: fit AutoML on the train CSV within a time
budget, and write its class probabilities for the test CSV.

`python -m tuning_quality.flaml_side --train T --test S --target Y [--categorical C ...]
--time-budget SECONDS --seed N --out result.json`
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd


def _read(path: Path, target: str, categorical: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    # Codes such as party identification are categories for FLAML as they are for us.
    frame = pd.read_csv(path, dtype={name: str for name in [*categorical, target]})
    for name in categorical:
        frame[name] = frame[name].astype("category")
    return frame.drop(columns=[target]), frame[target]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--categorical", nargs="*", default=[])
    parser.add_argument("--time-budget", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    from flaml import AutoML  # its import is part of the wall time, as ours is

    x_train, y_train = _read(args.train, args.target, args.categorical)
    x_test, _ = _read(args.test, args.target, args.categorical)
    # The test rows' categories are those seen in training: FLAML's transform needs the same
    # category set.
    for name in args.categorical:
        x_test[name] = pd.Categorical(x_test[name], categories=x_train[name].cat.categories)
    metric = "roc_auc" if y_train.nunique() == 2 else "roc_auc_ovr"
    automl = AutoML()
    automl.fit(
        x_train,
        y_train,
        task="classification",
        metric=metric,
        time_budget=args.time_budget,
        seed=args.seed,
        verbose=0,
    )
    proba = automl.predict_proba(x_test)
    result = {
        "classes": [str(label) for label in automl.classes_],
        "proba": proba.tolist(),
        "best_learner": automl.best_estimator,
        "best_config": automl.best_config,
        "metric": metric,
        "time_budget": args.time_budget,
        "seconds": time.perf_counter() - started,
    }
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
