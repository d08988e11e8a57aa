"""What the ML core costs: one CV trial per family per dataset, and a seed-sized search.

1. One 5-fold CV trial (defaults, refit included) per family and dataset, in a warm process
   (libraries imported, training split loaded), against the baseline of the same trial as a
   fresh `python -m container train` process, which is what a runner that starts one process
   per training job pays.
2. A seed-sized search (60 trials per dataset, 5-fold CV) on warm workers over all cores,
   against the baseline of the same trials one after another on one core (the sum of the
   trials' own durations, measured inside the workers).

Run: `make bench` or `.venv/bin/python benchmarks/bench_search.py [--max-jobs N] [DATASET ...]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.search_baseline import plan_trials, search, warm_up, worker_pool  # noqa: E402
from container.families import FAMILIES, get_family  # noqa: E402
from container.training import load_training_data, run_trial  # noqa: E402
from modelbuild.datasets import Dataset, default_registry, get_dataset, materialize  # noqa: E402
from tests.conftest import run_preprocess  # noqa: E402


def prepare(dataset: Dataset, root: Path) -> Path:
    return run_preprocess(
        materialize(dataset), root / dataset.name, dataset.name, dataset.target,
        f"--positive-class={dataset.positive_class or ''}", f"--cv-folds={dataset.cv_folds}",
    )  # fmt: skip


def warm_trial_seconds(dataset: Dataset, split: Path, family: str, repeats: int) -> float:
    data = load_training_data(split / "train")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_trial(get_family(family), {}, data, metric=dataset.metric, folds=dataset.cv_folds,
                  random_state=dataset.random_state, threads=1)  # fmt: skip
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fresh_process_trial_seconds(dataset: Dataset, split: Path, family: str, work: Path) -> float:
    ml = work / f"ml-{dataset.name}-{family}"
    (ml / "input" / "config").mkdir(parents=True, exist_ok=True)
    (ml / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"family": family, "metric": dataset.metric, "cv_folds": str(dataset.cv_folds)})
    )
    env = {**os.environ, "SM_ML_ROOT": str(ml), "SM_CHANNEL_TRAIN": str(split / "train"),
           "MME_TRIAL_THREADS": "1"}  # fmt: skip
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "container", "train"], cwd=REPO, env=env, check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*")
    parser.add_argument("--max-jobs", type=int, default=60, help="search trials per dataset")
    parser.add_argument("--repeats", type=int, default=3, help="warm repeats per trial")
    args = parser.parse_args()
    datasets = [get_dataset(n) for n in args.datasets] or list(default_registry().values())
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        splits = {d.name: prepare(d, work / "splits") for d in datasets}

        print(f"1. One {datasets[0].cv_folds}-fold CV trial + refit, default hyperparameters")
        print(
            f"{'dataset':<14}{'family':<21}{'warm (s)':>10}{'fresh process (s)':>19}{'overhead':>10}"
        )
        for dataset in datasets:
            for family in FAMILIES:
                warm = warm_trial_seconds(dataset, splits[dataset.name], family, args.repeats)
                fresh = fresh_process_trial_seconds(dataset, splits[dataset.name], family, work)
                print(
                    f"{dataset.name:<14}{family:<21}{warm:>10.3f}{fresh:>19.3f}{fresh / warm:>9.1f}x"
                )

        print(f"\n2. Search: {args.max_jobs} trials per dataset, warm workers on {cores} cores")
        print(
            f"{'dataset':<14}{'wall (s)':>10}{'one core, in turn (s)':>23}{'speed-up':>10}{'best CV':>10}"
        )
        total_wall = total_serial = 0.0
        with worker_pool() as pool:
            started = time.perf_counter()
            warm_up(pool, cores)
            print(
                f"(starting {cores} warm workers took {time.perf_counter() - started:.1f} s, once)"
            )
            for dataset in datasets:
                trials = plan_trials(args.max_jobs, dataset.random_state)
                started = time.perf_counter()
                outcomes = search(pool, splits[dataset.name] / "train", work / "trials" / dataset.name,
                                  trials=trials, metric=dataset.metric, folds=dataset.cv_folds,
                                  random_state=dataset.random_state)  # fmt: skip
                wall = time.perf_counter() - started
                serial = sum(o.seconds for o in outcomes)
                best = max(o.score for o in outcomes if o.score is not None)
                total_wall += wall
                total_serial += serial
                print(
                    f"{dataset.name:<14}{wall:>10.1f}{serial:>23.1f}{serial / wall:>9.2f}x{best:>10.4f}"
                )
        print(
            f"{'all':<14}{total_wall:>10.1f}{total_serial:>23.1f}{total_serial / total_wall:>9.2f}x"
        )


if __name__ == "__main__":
    main()
