"""MLServer 1.7.1 as a serving baseline: its own environment, model repository and settings.

`ensure_environment` is the benchmark's setup step: it creates `.venv-bench-mlserver` under the
repository with the pins in `requirements-mlserver*.txt` (MLServer never enters the project's
venv) and reinstalls only when those files change. `export_repository` writes the benchmark's
trained artifacts in MLServer's formats: the scikit-learn Pipeline as `model.joblib` (what
mlserver-sklearn loads; logistic regression and random forest), the XGBoost model as
`model.json` and the LightGBM booster as `model.bst`, one model-settings.json per served name.

Tuned as reference/serving.md (B.3, "mlserver-tuned") measured it on this machine: no parallel
inference workers (the server owns one core; a worker process only adds IPC), no metrics
server, no gzip, no access log, httptools; adaptive batching off, as there (enable it with
`max_batch_size`/`max_batch_time`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / ".venv-bench-mlserver"
REQUIREMENTS = HERE / "requirements-mlserver.txt"
NO_DEPS = HERE / "requirements-mlserver-nodeps.txt"
STAMP = VENV / ".requirements.sha256"

# mlserver implementation per model family, and the file name it looks for.
RUNTIMES = {
    "logistic-regression": ("mlserver_sklearn.SKLearnModel", "model.joblib"),
    "random-forest": ("mlserver_sklearn.SKLearnModel", "model.joblib"),
    "xgboost": ("mlserver_xgboost.XGBoostModel", "model.json"),
    "lightgbm": ("mlserver_lightgbm.LightGBMModel", "model.bst"),
}


class SetupError(RuntimeError):
    """The MLServer environment could not be created; the message says why."""


def _requirements_digest() -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, NO_DEPS):
        digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        # pip's own reason (a missing wheel, a resolver conflict) is in its last lines.
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        relevant = [line for line in lines if "is ignored" not in line][-15:]
        raise SetupError(f"{' '.join(command[:4])} ... failed:\n" + "\n".join(relevant))


def ensure_environment() -> Path:
    """The MLServer environment's python, created or brought up to date with the pins."""
    python = VENV / "bin" / "python"
    digest = _requirements_digest()
    if python.exists() and STAMP.exists() and STAMP.read_text() == digest:
        return python
    print(f"setting up MLServer in {VENV.relative_to(REPO)} (once; ~1-2 min)...", flush=True)
    if VENV.exists():
        shutil.rmtree(VENV)
    # The base interpreter, not the project venv's: the new venv must not see its packages.
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(VENV)])
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "-r", str(REQUIREMENTS)])
    _run([*pip, "--no-deps", "-r", str(NO_DEPS)])
    _run(
        [
            str(python),
            "-c",
            "import mlserver, mlserver_sklearn, mlserver_xgboost, mlserver_lightgbm",
        ]
    )
    STAMP.write_text(digest)
    return python


def _model_file(family: str, estimator: Any, directory: Path) -> Path:
    import joblib

    _, filename = RUNTIMES[family]
    path = directory / filename
    model = estimator.steps[-1][1]
    if family == "xgboost":
        model.save_model(path)  # the sklearn wrapper's JSON: XGBClassifier.load_model reads it
    elif family == "lightgbm":
        model.booster_.save_model(path)
    else:
        joblib.dump(estimator, path)
    return path


def export_repository(
    artifacts: dict[str, Path], copies: int, root: Path, port: int, grpc_port: int
) -> Path:
    """MLServer's model repository for the artifacts: `{family}-{n}` for n in 0..copies, every
    copy of a family pointing at one exported file, nothing loaded at start-up."""
    from container.artifact import load_model_dir

    root.mkdir(parents=True)
    for family, artifact in artifacts.items():
        estimator = load_model_dir(artifact).estimator
        files = root / "_files" / family
        files.mkdir(parents=True)
        model_file = _model_file(family, estimator, files)
        implementation, _ = RUNTIMES[family]
        for copy in range(copies + 1):
            name = f"{family}-{copy}"
            (root / name).mkdir()
            settings = {
                "name": name,
                "implementation": implementation,
                "parameters": {"uri": str(model_file)},
            }
            (root / name / "model-settings.json").write_text(json.dumps(settings))
    server_settings = {
        "debug": False,  # access log off
        "parallel_workers": 0,
        "metrics_endpoint": None,
        "gzip_enabled": False,
        "load_models_at_startup": False,
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "model_repository_root": str(root),
    }
    (root / "settings.json").write_text(json.dumps(server_settings))
    return root


def server_command(python: Path, root: Path) -> list[str]:
    return [str(python), "-m", "mlserver.cli.main", "start", str(root)]


def server_environment() -> dict[str, str]:
    """The pickled Pipelines name `container.families` functions: the repository must be
    importable, exactly as it is for our server (the MLServer venv has the same ML libraries)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.pop("VIRTUAL_ENV", None)
    return env


def infer_body(family: str, row: list[float]) -> bytes:
    """A V2 inference request for one row; the probabilities as the other servers answer them
    (mlserver-lightgbm always answers Booster.predict, the class-1 probability)."""
    request: dict[str, Any] = {
        "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]
    }
    if family != "lightgbm":
        request["outputs"] = [{"name": "predict_proba"}]
    return json.dumps(request).encode()
