"""The local runtime's tuning step against its floor and against the naive way.

For each dataset, the same trials (the Tune step's plan: the definition's ranges, seed, budget)
run three ways on the same split:

1. executor: the pipeline executor's Tune step, as `mme run` runs it (warm workers, each trial a
   training job with its own /opt/ml, log, metric regex and model.tar.gz upload to local S3);
2. floor: the same number of trials in-process on warm workers with `benchmarks/search_baseline.py`, which is
   what `benchmarks/bench_search.py` measures (no job layout, no packing, no upload);
3. naive: one fresh `python -m container train` process per trial, as many at once as there are
   cores, which is what a runner that starts a process per training job pays.

Run: `.venv/bin/python benchmarks/bench_local_pipeline.py [--max-jobs N] [DATASET ...]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.search_baseline import TrialSpec, search, warm_up, worker_pool  # noqa: E402
from local.executor import PipelineExecutor  # noqa: E402
from local.home import LocalHome  # noqa: E402
from local.jobs import JobRunner  # noqa: E402
from local.runs import build  # noqa: E402
from modelbuild.datasets import default_registry, get_dataset  # noqa: E402
from modelbuild.naming import Params, Steps  # noqa: E402


def naive(trials: list[dict[str, Any]], train_dir: Path, work: Path, cores: int) -> float:
    """Every trial as a fresh interpreter, `cores` at a time."""

    def one(index: int, hyperparameters: dict[str, Any]) -> None:
        ml = work / f"naive-{index:03d}"
        (ml / "input" / "config").mkdir(parents=True, exist_ok=True)
        (ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        env = {**os.environ, "SM_ML_ROOT": str(ml), "SM_CHANNEL_TRAIN": str(train_dir),
               "MME_TRIAL_THREADS": "1"}  # fmt: skip
        subprocess.run([sys.executable, "-m", "container", "train"], cwd=REPO, env=env,
                       check=True, capture_output=True)  # fmt: skip

    started = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(one, range(len(trials)), trials))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*")
    parser.add_argument("--max-jobs", type=int, default=24, help="trials per dataset")
    parser.add_argument("--cv-folds", type=int, default=5)
    args = parser.parse_args()
    names = args.datasets or list(default_registry())
    cores = os.cpu_count() or 1
    print(f"Tune step, {args.max_jobs} trials per dataset, {args.cv_folds}-fold CV, {cores} cores")
    print(f"{'dataset':<14}{'executor (s)':>14}{'floor (s)':>11}{'naive (s)':>11}"
          f"{'executor/floor':>16}{'naive/executor':>16}")  # fmt: skip
    totals = [0.0, 0.0, 0.0]
    with (
        tempfile.TemporaryDirectory() as tmp,
        JobRunner(cores) as runner,
        worker_pool(cores) as floor_pool,
    ):
        home = LocalHome(Path(tmp) / "home")
        runner.warm_up()
        warm_up(floor_pool, cores)
        executor = PipelineExecutor(home, runner, use_cache=False)
        for name in names:
            dataset = get_dataset(name)
            pipeline = build(dataset, home, "bench", None)
            parameters = {Params.MAX_JOBS: args.max_jobs, Params.MAX_PARALLEL_JOBS: cores,
                          Params.CV_FOLDS: args.cv_folds, Params.THRESHOLD: 0.0}  # fmt: skip
            record = executor.start(pipeline.name, pipeline.definition, parameters)
            tune = record.step(Steps.TUNE)
            if record.status != "Succeeded" or tune is None or tune.seconds is None:
                raise SystemExit(f"{name}: {record.failure_reason}")
            summaries = tune.properties["TrainingJobSummaries"]

            split = Path(tmp) / name / "train"
            preprocess = record.step(Steps.PREPROCESS)
            assert preprocess is not None
            home.s3.download_prefix(preprocess.outputs[0], split)
            # The executor's own trials, in its order: same families, same hyperparameters.
            trials = [
                TrialSpec(i, s["TrainingJobDefinitionName"], s["TunedHyperParameters"])
                for i, s in enumerate(sorted(summaries, key=lambda s: s["TrainingJobName"]))
            ]
            started = time.perf_counter()
            search(floor_pool, split, Path(tmp) / name / "floor", trials=trials,
                   metric=dataset.metric, folds=args.cv_folds,
                   random_state=dataset.random_state)  # fmt: skip
            floor = time.perf_counter() - started

            static = {"mode": "cv", "metric": dataset.metric, "cv_folds": str(args.cv_folds),
                      "random_state": str(dataset.random_state)}  # fmt: skip
            hyperparameters = [
                {**static, "family": s["TrainingJobDefinitionName"], **s["TunedHyperParameters"]}
                for s in summaries
            ]
            fresh = naive(hyperparameters, split, Path(tmp) / name, cores)
            figures = (tune.seconds, floor, fresh)
            totals = [t + f for t, f in zip(totals, figures, strict=True)]
            print(f"{name:<14}{figures[0]:>14.1f}{figures[1]:>11.1f}{figures[2]:>11.1f}"
                  f"{figures[0] / figures[1]:>15.2f}x{figures[2] / figures[0]:>15.2f}x")  # fmt: skip
    print(f"{'all':<14}{totals[0]:>14.1f}{totals[1]:>11.1f}{totals[2]:>11.1f}"
          f"{totals[0] / totals[1]:>15.2f}x{totals[2] / totals[0]:>15.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
