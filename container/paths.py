"""SageMaker's container path conventions, each root overridable for local runs.

Training jobs: /opt/ml/input/config/hyperparameters.json, /opt/ml/input/data/<channel>,
/opt/ml/model, /opt/ml/output/failure. Processing jobs: paths given as arguments, conventionally
under /opt/ml/processing. `SM_ML_ROOT` moves the whole /opt/ml tree; `SM_MODEL_DIR`,
`SM_CHANNEL_<NAME>` and `SM_OUTPUT_DATA_DIR` (set by SageMaker's training toolkit) win over it.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ML_ROOT = "/opt/ml"


def ml_root() -> Path:
    return Path(os.environ.get("SM_ML_ROOT", DEFAULT_ML_ROOT))


def hyperparameters_file() -> Path:
    return ml_root() / "input" / "config" / "hyperparameters.json"


def channel_dir(name: str) -> Path:
    override = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    return Path(override) if override else ml_root() / "input" / "data" / name


def model_dir() -> Path:
    override = os.environ.get("SM_MODEL_DIR")
    return Path(override) if override else ml_root() / "model"


def output_data_dir() -> Path:
    override = os.environ.get("SM_OUTPUT_DATA_DIR")
    return Path(override) if override else ml_root() / "output" / "data"


def failure_file() -> Path:
    return ml_root() / "output" / "failure"


def processing_root() -> Path:
    return ml_root() / "processing"
