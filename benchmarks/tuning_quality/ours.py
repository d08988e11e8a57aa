"""Our side: the real local pipeline (`mme run`) on the train CSV, then its registered model
scored on the test CSV.

The train CSV becomes a dataset in a registry file of its own (MME_DATASET_REGISTRY) with a
throwaway state directory (--home) and cache (MME_CACHE_DIR), so nothing of the user's is read
or changed. The pipeline splits those rows again into its own train and holdout: that is part of
our method. The wall time is the whole `mme run` process, start to exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from container.artifact import load_artifact
from container.schema import csv_dtypes, read_csv, to_model_input
from local.home import LocalHome
from modelbuild import naming
from modelbuild.datasets import Budget as DatasetBudget
from modelbuild.naming import Steps

# The registry's ceiling for max_jobs: with a time budget, the time is what stops the trials.
UNLIMITED_JOBS = 500


@dataclass(frozen=True)
class Budget:
    """A tuning budget: trials, and optionally the tuning job's MaxRuntimeInSeconds (>= 120)."""

    max_jobs: int
    max_runtime_seconds: int | None = None

    def describe(self) -> str:
        if self.max_runtime_seconds is not None:
            return f"tuning {self.max_runtime_seconds} s"
        return f"{self.max_jobs} trials"


@dataclass(frozen=True)
class OurResult:
    classes: list[str]
    proba: np.ndarray
    family: str
    trials: int
    seconds: float


def write_registry(
    folder: Path,
    name: str,
    train_csv: Path,
    *,
    target: str,
    categorical: tuple[str, ...],
    positive_class: str | None,
    budget: Budget,
) -> Path:
    """A registry file declaring the train CSV as a dataset, as a user would (datasets.yml)."""
    # The registry refuses more trials at once than trials in all.
    limits: dict[str, int] = {
        "max_jobs": budget.max_jobs,
        "max_parallel_jobs": min(budget.max_jobs, DatasetBudget().max_parallel_jobs),
    }
    if budget.max_runtime_seconds is not None:
        limits["max_runtime_seconds"] = budget.max_runtime_seconds
    entry: dict[str, object] = {
        "description": f"tuning-quality benchmark: {name}, the 75% train split",
        "source": {"csv": str(train_csv)},
        "target": target,
        "categorical": list(categorical),
        "metric": "roc_auc",
        # Always register: the benchmark scores whatever the pipeline chose.
        "threshold": 0.0,
        "budget": limits,
    }
    if positive_class is not None:
        entry["positive_class"] = positive_class
    path = folder / "datasets.yml"
    path.write_text(yaml.safe_dump({"datasets": {name: entry}}, sort_keys=False))
    return path


def run_pipeline(repo: Path, registry: Path, name: str, work: Path) -> float:
    """`mme run NAME` from the repository under test; its wall seconds."""
    env = {
        **os.environ,
        "MME_DATASET_REGISTRY": str(registry),
        "MME_CACHE_DIR": str(work / "cache"),
        "PYTHONPATH": str(repo),
        "COLUMNS": "160",
    }
    command = [sys.executable, "-m", "local.cli", "--home", str(work / "home"),
               "run", name, "--no-cache"]  # fmt: skip
    log = work / "mme-run.log"
    started = time.perf_counter()
    with log.open("w") as output:
        done = subprocess.run(command, cwd=repo, env=env, stdout=output, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"mme run {name} failed (exit {done.returncode}):\n{tail}")
    return seconds


def score_registered(work: Path, name: str, test_csv: Path) -> tuple[list[str], np.ndarray, str]:
    """The newest registered version's class labels, test-row probabilities and family."""
    home = LocalHome(work / "home")
    group = naming.model_package_group_name(naming.DEFAULT_PROJECT_NAME, name)
    packages = home.registry.list_packages(group)
    if not packages:
        raise RuntimeError(f"{name}: the pipeline registered no model")
    archive = home.s3.path(packages[0].model_data_url)
    with tempfile.TemporaryDirectory() as unpacked:
        model = load_artifact(archive, Path(unpacked))
    schema = model.schema
    frame = read_csv(test_csv, name, dtype=csv_dtypes(schema))
    proba = model.estimator.predict_proba(to_model_input(frame, schema, test_csv))
    return [str(label) for label in schema.classes], proba, str(model.signature["algorithm"])


def trials_run(work: Path, name: str) -> int:
    """How many trials the newest execution's Tune step ran."""
    home = LocalHome(work / "home")
    pipeline = naming.pipeline_name(naming.DEFAULT_PROJECT_NAME, name)
    records = home.executions.list(pipeline)
    tune = records[0].step(Steps.TUNE) if records else None
    if tune is None:
        return 0
    return len(tune.properties.get("TrainingJobSummaries", []))


def run(
    repo: Path,
    work: Path,
    name: str,
    train_csv: Path,
    test_csv: Path,
    *,
    target: str,
    categorical: tuple[str, ...],
    positive_class: str | None,
    budget: Budget,
) -> OurResult:
    work.mkdir(parents=True, exist_ok=True)
    registry = write_registry(
        work,
        name,
        train_csv,
        target=target,
        categorical=categorical,
        positive_class=positive_class,
        budget=budget,
    )
    seconds = run_pipeline(repo, registry, name, work)
    classes, proba, family = score_registered(work, name, test_csv)
    return OurResult(classes, proba, family, trials_run(work, name), seconds)
