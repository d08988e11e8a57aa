"""Helpers for the serving tests: real trained artifacts and a real server process on loopback.

Artifacts are trained with the project's own training code (`container.training.run_trial`) on
small data, so the server is tested against exactly what the pipeline would register.
"""

from __future__ import annotations

import atexit
import functools
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_iris

from container.artifact import save_model
from container.families import get_family
from container.schema import Schema, encode_target, infer_schema, to_model_input
from container.serving.config import serve_command
from container.training import TrainingData, run_trial

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90.0
STOP_TIMEOUT = 40.0


def breast_cancer_frame() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.copy()
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    return frame


def iris_frame() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame.copy()
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return frame


def mixed_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Numeric and categorical features with missing values and string labels."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], rows)
    size = rng.normal(10.0, 3.0, rows)
    code = rng.choice(["007", "042", "100"], rows)
    score = size + (colour == "red") * 4.0 + rng.normal(0, 1, rows)
    label = np.where(score > 12.0, "yes", "no")
    size[rng.choice(rows, 20, replace=False)] = np.nan
    colour = colour.astype(object)
    colour[rng.choice(rows, 15, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "colour": colour,
            "size": size,
            "code": code,
            "weight": rng.uniform(0, 1, rows),
            "y": label,
        }
    )


def bulky_frame(rows: int = 5000, seed: int = 1) -> pd.DataFrame:
    """Random labels: fully grown trees, so a forest on it takes tens of MB of memory."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 8)), columns=[f"f{i}" for i in range(8)])
    frame["y"] = rng.integers(0, 2, rows)
    return frame


def train_artifact(
    directory: Path,
    frame: pd.DataFrame,
    *,
    dataset: str,
    target: str,
    family: str,
    hyperparameters: dict[str, str] | None = None,
    categorical: tuple[str, ...] = (),
) -> Path:
    schema = infer_schema(frame, dataset=dataset, target=target, categorical=categorical)
    features = frame[schema.feature_names]
    if categorical:
        features = features.astype({c: object for c in categorical})
    y = encode_target(frame[target], schema)
    data = TrainingData(schema, features, to_model_input(features, schema), y)
    result = run_trial(
        get_family(family),
        hyperparameters or {},
        data,
        metric="roc_auc",
        folds=None,
        random_state=0,
    )
    save_model(directory, result.estimator, result.signature)
    return directory


def build_artifacts(root: Path) -> dict[str, Path]:
    return {
        "cancer": train_artifact(
            root / "cancer",
            breast_cancer_frame(),
            dataset="breast-cancer",
            target="target",
            family="logistic-regression",
        ),
        "iris": train_artifact(
            root / "iris",
            iris_frame(),
            dataset="iris",
            target="target",
            family="lightgbm",
            hyperparameters={"n_estimators": "50"},
        ),
        "mixed": train_artifact(
            root / "mixed",
            mixed_frame(),
            dataset="mixed",
            target="y",
            family="xgboost",
            hyperparameters={"n_estimators": "50"},
            categorical=("colour", "code"),
        ),
        "bulky": train_artifact(
            root / "bulky",
            bulky_frame(),
            dataset="bulky",
            target="y",
            family="random-forest",
            hyperparameters={"n_estimators": "100", "max_depth": "32"},
        ),
    }


@functools.cache
def shared_artifacts() -> dict[str, Path]:
    """Trained once per test process, whichever test module asks first."""
    root = Path(tempfile.mkdtemp(prefix="serving-artifacts-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return build_artifacts(root)


def schema_of(artifact: Path) -> Schema:
    return Schema.from_dict(orjson.loads((artifact / "signature.json").read_bytes())["schema"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A `python -m container serve` process on a loopback port."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path):
        self.process = process
        self.port = port
        self.log = log
        self._connection: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        if isinstance(body, dict | list):
            body = orjson.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                # The server may close a connection after an error; retry once on a new one.
                self._connection.close()
                self._connection = None
                if attempt:
                    raise
                continue
            if response.getheader("connection", "").lower() == "close":
                self._connection.close()
                self._connection = None
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body, **kwargs)
        return status, orjson.loads(data) if data else None

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def alive(self) -> bool:
        try:
            return self.request("GET", "/ping")[0] == 200
        except OSError:
            return False


@contextmanager
def running_server(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    port = free_port()
    log = tmp / f"server-{port}.log"
    environment = {
        **os.environ,
        "SM_ML_ROOT": str(tmp / "no-ml-root"),  # never pick up a real /opt/ml/model
        **(env or {}),
    }
    environment.pop("SAGEMAKER_MULTI_MODEL", None)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            serve_command("127.0.0.1", port, *args),
            cwd=REPO,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.alive():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield server
    finally:
        if server._connection is not None:
            server._connection.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
