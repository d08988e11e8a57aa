"""Shared fixtures: isolated caches and settings, and small prepared datasets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

# pytester runs the process guard's own test; the guard enforces the `integration` marker.
pytest_plugins = ["pytester", "tests.process_guard"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test writes to the user's cache, and URL datasets come from the shipped mirror
    (modelbuild/data/), never from a directory outside the repository."""
    os.environ["MME_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["MME_TRIAL_THREADS"] = "1"
    # Settings a CodeBuild project would give the CLIs, and the data directory override: a
    # developer's shell must not steer tests.
    for name in (
        "MME_CANARY",
        "MME_ON_AWS",
        "MME_DATASETS",
        "MME_RETRAIN_DATASETS",
        "MME_OPERATION",
        "MME_DRIFT_ALARM",
        "MME_DRIFT_ALARM_TIME",
        "MME_DATA_DIR",
    ):
        os.environ.pop(name, None)


def mixed_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numeric and categorical features, missing values, an imbalanced string-labelled target."""
    x, y = make_classification(
        n_samples=rows,
        n_features=6,
        n_informative=4,
        weights=[0.7, 0.3],
        flip_y=0.05,
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    frame.loc[rng.random(rows) < 0.05, "x1"] = np.nan
    frame["colour"] = np.where(x[:, 0] > 0, "red", np.where(x[:, 1] > 0, "green", "blue"))
    frame.loc[rng.random(rows) < 0.05, "colour"] = np.nan
    frame["label"] = np.where(y == 1, "fraud", "ok")
    return frame


@pytest.fixture(scope="session")
def mixed_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mixed") / "mixed.csv"
    mixed_frame().to_csv(path, index=False)
    return path


def run_preprocess(source: Path, out: Path, dataset: str, target: str, *extra: str) -> Path:
    from container import preprocess

    preprocess.main(
        [
            f"--dataset={dataset}",
            f"--target={target}",
            f"--input={source}",
            f"--train-dir={out / 'train'}",
            f"--test-dir={out / 'test'}",
            *extra,
        ]
    )
    return out


@pytest.fixture(scope="session")
def mixed_split(tmp_path_factory: pytest.TempPathFactory, mixed_csv: Path) -> Path:
    return run_preprocess(
        mixed_csv,
        tmp_path_factory.mktemp("mixed-split"),
        "mixed",
        "label",
        "--positive-class=fraud",
    )


@pytest.fixture(scope="session")
def wine_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelbuild.datasets import get_dataset, materialize

    return run_preprocess(
        materialize(get_dataset("wine")), tmp_path_factory.mktemp("wine-split"), "wine", "cultivar"
    )


@pytest.fixture(params=["local", "aws"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    """The deploy logic's storage and registry, once local and once AWS (moto): what a deploy
    test proves holds for both. Modules with their own `backend` override it."""
    from tests.deploy_support import aws_backend, local_backend, offline_aws

    offline_aws(monkeypatch)
    if request.param == "local":
        yield local_backend(tmp_path / "home")
    else:
        with aws_backend() as aws:
            yield aws
