"""Tuning quality: our local pipeline against FLAML at equal wall time, on data we never saw.

Datasets (six public classification tables shipped inside PyPI wheels, loaded with no download;
details and licences in `benchmarks/tuning_quality/datasets.py`):

- penguins: palmerpenguins 0.1.6, 344 rows, 3 species, numeric + categorical, missing values
  (CC0, Palmer Station LTER);
- cars-origin: vega_datasets 0.9.0 cars.json, 406 rows, 3 origins, missing values (StatLib
  auto-mpg);
- anes96: statsmodels 0.15.0, 944 rows, binary vote, coded categoricals (ANES 1996, included
  with permission);
- seattle-weather: vega_datasets 0.9.0, 1,461 days, 5 imbalanced classes (NOAA, public domain);
- digits: scikit-learn 1.9.1, 1,797 rows, 10 classes, 64 numeric (UCI optdigits, CC BY 4.0);
- fair: statsmodels 0.15.0, 5,000 of 6,366 rows (seeded stratified sample), binary, coded
  categoricals (Fair 1978, included with permission).

Protocol, per dataset: one stratified 75/25 split (seeded). Ours: the 75% is written as a CSV,
declared in a registry file of its own, and `mme run` (the real local pipeline: preprocess with
its own holdout split, tune, evaluate, register) runs on it; the registered model artifact is
loaded and scores the 25%. Our wall time is the whole `mme run` process. FLAML (flaml[automl]
2.8.0, in the benchmark's own environment `.venv-bench-tuning`, set up on first run) gets our
measured wall time as `AutoML.fit(time_budget=...)` on the same 75% (metric roc_auc, or
roc_auc_ovr when multiclass) and predicts the same 25%; its wall time is its whole process.
Then both again at half our budget: ours with half the tuning time (or half the trials when that
would be under the tuning job's 120 s minimum, or with a trial budget; the pipeline needs one
trial per family, so a trial budget needs at least 16), FLAML with the wall time that half run
took.

Scores: ROC AUC (one-vs-rest macro when multiclass), accuracy and macro F1 of the most probable
class; the AUC difference per dataset with a 95% paired bootstrap interval over the test rows
(stratified), a dataset is significantly worse when that interval lies below 0; the mean
difference over datasets with a 95% paired bootstrap interval over datasets. Goals (issue 17):
equal wall time mean >= +0.005 and no dataset significantly worse; half wall time mean >= 0.

Run: `.venv/bin/python benchmarks/bench_tuning_quality.py [--budget-seconds 120 | --max-jobs N]
[--datasets penguins anes96 ...] [--levels equal half] [--quick] [--json results.json]`, or
`--report results.json ...` to print saved runs' tables again. Without a budget option our
side runs the datasets' default budget (60 trials). Both sides use every core; run it on a quiet
machine, since a loaded one slows whichever side shares it with more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(REPO), str(BENCH_DIR)]

from tuning_quality import datasets as bench_datasets  # noqa: E402
from tuning_quality import ours  # noqa: E402
from tuning_quality.env import ensure_env  # noqa: E402
from tuning_quality.scoring import (  # noqa: E402
    EQUAL_TIME_GOAL,
    HALF_TIME_GOAL,
    PairedDifference,
    Scores,
    Verdict,
    aligned,
    auc_difference,
    score,
    verdict,
)

from container.families import FAMILIES  # noqa: E402
from modelbuild.datasets import Budget as DatasetBudget  # noqa: E402

SPLIT_SEED = 42
TEST_SIZE = 0.25
# SageMaker's MaxRuntimeInSeconds starts at 120 (the registry's budget field says the same).
MIN_RUNTIME_SECONDS = 120
# The pipeline refuses fewer trials than families (each family is tried at least once).
MIN_TRIALS = len(FAMILIES)
# The smallest budget whose half is still a valid one.
QUICK_MAX_JOBS = 2 * MIN_TRIALS
LEVELS = ("equal", "half")


@dataclass(frozen=True)
class Side:
    scores: Scores
    seconds: float
    best: str


@dataclass(frozen=True)
class Outcome:
    dataset: str
    level: str  # "equal" or "half"
    budget: str
    ours: Side
    flaml: Side
    difference: PairedDifference
    trials: int
    load: float  # the 1-minute load average when the pair finished


def _prepare(name: str, bench_python: Path, folder: Path) -> tuple[Path, Path]:
    """The dataset loaded in the benchmark's environment, split 75/25 (stratified, seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    whole = folder / "all.csv"
    subprocess.run([str(bench_python), "-m", "tuning_quality.datasets", name, str(whole)],
                   cwd=BENCH_DIR, env={**os.environ, "PYTHONPATH": str(BENCH_DIR)},
                   check=True)  # fmt: skip
    target = bench_datasets.spec(name).target
    frame = pd.read_csv(whole, dtype={target: str})
    train, test = train_test_split(
        frame, test_size=TEST_SIZE, stratify=frame[target], random_state=SPLIT_SEED
    )
    paths = folder / "train.csv", folder / "test.csv"
    train.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    return paths


def _run_flaml(
    bench_python: Path, name: str, train: Path, test: Path, seconds: float, out: Path
) -> tuple[dict[str, Any], float]:
    chosen = bench_datasets.spec(name)
    command = [str(bench_python), "-m", "tuning_quality.flaml_side", "--train", str(train),
               "--test", str(test), "--target", chosen.target, "--time-budget", f"{seconds:.1f}",
               "--seed", str(SPLIT_SEED), "--out", str(out)]  # fmt: skip
    if chosen.categorical:
        command += ["--categorical", *chosen.categorical]
    log = out.with_suffix(".log")
    started = time.perf_counter()
    with log.open("w") as output:
        done = subprocess.run(command, cwd=BENCH_DIR, stdout=output, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(BENCH_DIR)})  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"FLAML on {name} failed (exit {done.returncode}):\n{tail}")
    return json.loads(out.read_text()), wall


def _pair(
    name: str, level: str, budget: ours.Budget, train: Path, test: Path, bench_python: Path,
    work: Path,
) -> Outcome:  # fmt: skip
    """Ours with `budget`, then FLAML with the wall time ours took; both scored on the test rows."""
    chosen = bench_datasets.spec(name)
    mine = ours.run(REPO, work / f"ours-{level}", name, train, test, target=chosen.target,
                    categorical=chosen.categorical, positive_class=chosen.positive_class,
                    budget=budget)  # fmt: skip
    theirs, flaml_wall = _run_flaml(
        bench_python, name, train, test, mine.seconds, work / f"flaml-{level}.json"
    )
    labels = pd.read_csv(test, dtype={chosen.target: str})[chosen.target].to_numpy()
    order = sorted(set(labels))
    if chosen.positive_class is not None:  # binary: the positive class in column 1
        order = [label for label in order if label != chosen.positive_class]
        order.append(chosen.positive_class)
    y = np.array([order.index(label) for label in labels])
    our_proba = aligned(mine.proba, mine.classes, order)
    their_proba = aligned(np.asarray(theirs["proba"]), theirs["classes"], order)
    return Outcome(
        dataset=name,
        level=level,
        budget=budget.describe(),
        ours=Side(score(y, our_proba), mine.seconds, mine.family),
        flaml=Side(score(y, their_proba), flaml_wall, str(theirs["best_learner"])),
        difference=auc_difference(y, our_proba, their_proba),
        trials=mine.trials,
        load=os.getloadavg()[0],
    )


def _budgets(args: argparse.Namespace) -> ours.Budget:
    if args.budget_seconds is not None:
        if args.budget_seconds < MIN_RUNTIME_SECONDS:
            raise SystemExit(
                f"--budget-seconds must be at least {MIN_RUNTIME_SECONDS} (the tuning job's "
                "MaxRuntimeInSeconds range); use --max-jobs for a smaller budget"
            )
        return ours.Budget(ours.UNLIMITED_JOBS, args.budget_seconds)
    if args.max_jobs is not None:
        if args.max_jobs < MIN_TRIALS:
            raise SystemExit(f"--max-jobs must be at least {MIN_TRIALS} (one trial per family)")
        return ours.Budget(args.max_jobs)
    return ours.Budget(QUICK_MAX_JOBS if args.quick else DatasetBudget().max_jobs)


def _half(full: ours.Budget, trials_run: int | None) -> ours.Budget:
    """Half of `full`: half the tuning time when that is still a valid MaxRuntimeInSeconds,
    else half the trials (of those the full run managed, under a time budget)."""
    if full.max_runtime_seconds is not None:
        if full.max_runtime_seconds // 2 >= MIN_RUNTIME_SECONDS:
            return ours.Budget(ours.UNLIMITED_JOBS, full.max_runtime_seconds // 2)
        if trials_run is None:
            raise SystemExit(
                f"half of {full.max_runtime_seconds} s is under {MIN_RUNTIME_SECONDS} s: the half "
                "run then takes half the trials of the full run, so run both levels"
            )
        trials = trials_run
    else:
        trials = full.max_jobs
    if trials // 2 < MIN_TRIALS:
        raise SystemExit(
            f"half of {trials} trials is under the {MIN_TRIALS} the pipeline needs (one per "
            f"family): give at least {2 * MIN_TRIALS} trials, or --levels equal"
        )
    return ours.Budget(trials // 2)


def _row(o: Outcome) -> str:
    d = o.difference
    mark = " worse" if d.significantly_worse else (" better" if d.significantly_better else "")
    return (
        f"{o.dataset:<16}{o.ours.scores.roc_auc:>8.4f}{o.flaml.scores.roc_auc:>8.4f}"
        f"{d.difference:>+9.4f} [{d.low:+.3f}, {d.high:+.3f}]{mark:<7}"
        f"{o.ours.scores.accuracy:>7.3f}{o.flaml.scores.accuracy:>7.3f}"
        f"{o.ours.scores.f1_macro:>7.3f}{o.flaml.scores.f1_macro:>7.3f}"
        f"{o.ours.seconds:>7.0f}{o.flaml.seconds:>7.0f}{o.trials:>7}  "
        f"{o.ours.best:<21}{o.flaml.best:<12}{o.load:>5.1f}"
    )


HEADER = (
    f"{'':<16}{'AUC':>12}{'':<4}{'  AUC difference':<33}{'accuracy':>11}{'':<3}"
    f"{'macro F1':>11}{'':<3}{'wall (s)':>11}{'':<3}{'':>7}  {'best model'}\n"
    f"{'dataset':<16}{'ours':>8}{'FLAML':>8}{'  ours-FLAML [95% CI]':<33}"
    f"{'ours':>7}{'FLAML':>7}{'ours':>7}{'FLAML':>7}{'ours':>7}{'FLAML':>7}{'trials':>7}  "
    f"{'ours':<21}{'FLAML':<12}{'load':>5}"
)


def _goal_line(label: str, v: Verdict) -> str:
    worse = ", ".join(v.worse) or "none"
    needs = ", no dataset significantly worse" if v.needs_none_worse else ""
    return (
        f"{label}: mean AUC ours-FLAML {v.mean:+.4f} (95% CI {v.low:+.4f} to {v.high:+.4f}); "
        f"significantly worse: {worse}; goal >= {v.goal:+.3f}{needs}: "
        f"{'PASS' if v.passed else 'FAIL'}"
    )


def report(outcomes: list[Outcome]) -> list[str]:
    lines: list[str] = []
    verdicts: dict[str, Verdict] = {}
    for level, title, goal, strict in (
        ("equal", "Equal wall time", EQUAL_TIME_GOAL, True),
        ("half", "Half the wall time", HALF_TIME_GOAL, False),
    ):
        chosen = [o for o in outcomes if o.level == level]
        if not chosen:
            continue
        budgets = sorted({o.budget for o in chosen})
        lines += ["", f"{title} (ours: {', '.join(budgets)}; FLAML: our wall time)", HEADER]
        lines += [_row(o) for o in chosen]
        verdicts[level] = verdict(
            {o.dataset: o.difference for o in chosen}, goal, needs_none_worse=strict
        )
    lines.append("")
    names = {"equal": "equal wall time", "half": "half the wall time"}
    lines += [_goal_line(names[level], v) for level, v in verdicts.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=bench_datasets.DATASET_NAMES)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget-seconds", type=int, help="our tuning job's time limit (>= 120)")
    budget.add_argument("--max-jobs", type=int, help="our tuning trials (default: 60)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {' and '.join(bench_datasets.QUICK_DATASETS)}, "
                             f"{QUICK_MAX_JOBS} trials")  # fmt: skip
    parser.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS),
                        help="which runs: at the full budget (equal wall time), at half")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--report", type=Path, nargs="+", metavar="JSON",
                        help="print the tables of earlier runs' --json files; run nothing")  # fmt: skip
    args = parser.parse_args()
    if args.report:
        saved = [o for path in args.report for o in json.loads(path.read_text())]
        print("\n".join(report([_outcome(o) for o in saved])))
        return
    names = args.datasets or list(
        bench_datasets.QUICK_DATASETS if args.quick else bench_datasets.DATASET_NAMES
    )
    full = _budgets(args)
    if "half" in args.levels and full.max_runtime_seconds is None:
        _half(full, None)  # refuse an invalid half budget before an hour of running
    bench_python = ensure_env(REPO)
    cores = os.cpu_count() or 1
    print(f"tuning quality: {len(names)} datasets, ours {full.describe()} at full budget, "
          f"FLAML 2.8.0 at our wall time; {cores} cores, load {os.getloadavg()[0]:.1f} at start",
          flush=True)  # fmt: skip
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
        for name in names:
            work = Path(tmp) / name
            train, test = _prepare(name, bench_python, work)
            trials = None
            # The full run first: a half run may take half of the trials it managed.
            for level in [level for level in LEVELS if level in args.levels]:
                budget = full if level == "equal" else _half(full, trials)
                outcome = _pair(name, level, budget, train, test, bench_python, work)
                trials = outcome.trials
                outcomes.append(outcome)
                print(_row(outcome), flush=True)
                _save(args.json, outcomes)
    print("\n".join(report(outcomes)))


def _outcome(saved: dict[str, Any]) -> Outcome:
    """An Outcome from its --json form."""
    sides = {
        key: Side(Scores(**saved[key]["scores"]), saved[key]["seconds"], saved[key]["best"])
        for key in ("ours", "flaml")
    }
    return Outcome(**{**saved, **sides, "difference": PairedDifference(**saved["difference"])})


def _save(path: Path | None, outcomes: list[Outcome]) -> None:
    """Every figure so far, rewritten after each pair so a long run loses nothing."""
    if path is not None:
        path.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))


if __name__ == "__main__":
    main()
