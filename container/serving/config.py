"""Server settings: command-line flags win over environment variables, which win over defaults.

The environment names are the ones SageMaker and its inference toolkit already use where one
exists (`SAGEMAKER_BIND_TO_PORT`, `SAGEMAKER_MULTI_MODEL`, `SAGEMAKER_MODEL_SERVER_WORKERS`,
`SAGEMAKER_MAX_REQUEST_SIZE`), so an endpoint configured for AWS's containers behaves the same.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from container import paths

DEFAULT_PORT = 8080
# InvokeEndpoint's payload limit (botocore BodyBlob max); a larger body can never come from AWS.
DEFAULT_MAX_REQUEST_BYTES = 6 * 1024 * 1024
DEFAULT_BATCH_MAX_ROWS = 4096
# Fraction of the machine's (or cgroup's) memory the server may fill with models by default.
DEFAULT_BUDGET_FRACTION = 0.9


# Loopback unless told otherwise: a local run must not serve the network. The image sets
# MME_BIND_HOST=0.0.0.0, since SageMaker reaches the container from outside it.
DEFAULT_HOST = "127.0.0.1"
BIND_HOST_ENV = "MME_BIND_HOST"
# "true": load a model only once an invocation's target model names its sha256, and only if the
# model file has it (`container.provenance`). The local endpoint and the image set it.
VERIFY_TARGET_MODEL_ENV = "MME_VERIFY_TARGET_MODEL"


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    # None: a fraction of the memory limit measured at start-up (see memory.default_budget).
    memory_budget_bytes: int | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    batch_max_rows: int = DEFAULT_BATCH_MAX_ROWS
    batch_max_delay_s: float = 0.0
    multi_model: bool = True
    # The single-model artifact directory (SageMaker extracts model.tar.gz to /opt/ml/model).
    model_dir: Path | None = None
    log_level: str = "info"
    # Models from POST /models are unpickled on their first invocation, once the model file
    # matches the sha256 its X-Amzn-SageMaker-Target-Model names (see VERIFY_TARGET_MODEL_ENV).
    verify_target_model: bool = False


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise SystemExit(
            f"error: environment variable {name} must be an integer, got {value!r}"
        ) from None


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {value}")
    return number


def parse_config(argv: list[str], env: Mapping[str, str] | None = None) -> ServerConfig:
    env = os.environ if env is None else env
    multi_model = env.get("SAGEMAKER_MULTI_MODEL", "").strip().lower() == "true"
    parser = argparse.ArgumentParser(
        prog="python -m container serve",
        description="Serve models over the SageMaker multi-model (and single-model) HTTP API.",
    )
    parser.add_argument(
        "--host",
        default=env.get(BIND_HOST_ENV, DEFAULT_HOST),
        help=f"address to listen on (default: {DEFAULT_HOST}, or ${BIND_HOST_ENV}; the image "
        "sets 0.0.0.0)",
    )
    parser.add_argument(
        "--port", type=int, default=_env_int(env, "SAGEMAKER_BIND_TO_PORT") or DEFAULT_PORT
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=_env_int(env, "SAGEMAKER_MODEL_SERVER_WORKERS") or available_cores(),
        help="worker processes (default: the usable CPU cores)",
    )
    parser.add_argument(
        "--memory-budget-mb",
        type=_positive,
        default=_env_int(env, "MME_MEMORY_BUDGET_MB"),
        help="memory the whole server may use; a load that would exceed it gets 507 "
        # argparse %-formats help texts: the percent sign must be doubled.
        f"(default: {DEFAULT_BUDGET_FRACTION:.0%}% of the machine's or container's memory)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=_positive,
        default=_env_int(env, "SAGEMAKER_MAX_REQUEST_SIZE") or DEFAULT_MAX_REQUEST_BYTES,
    )
    parser.add_argument(
        "--batch-max-rows",
        type=_positive,
        default=_env_int(env, "MME_BATCH_MAX_ROWS") or DEFAULT_BATCH_MAX_ROWS,
        help="most rows one model predicts in a single call",
    )
    parser.add_argument(
        "--batch-max-delay-ms",
        type=_non_negative_float,
        default=float(env.get("MME_BATCH_MAX_DELAY_MS", "0") or 0),
        help="how long a request may wait for others to share its predict call; 0 batches only "
        "requests that arrive while the model is busy",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="serve this artifact on /invocations (default: /opt/ml/model unless "
        "SAGEMAKER_MULTI_MODEL=true)",
    )
    parser.add_argument("--log-level", default=env.get("MME_LOG_LEVEL", "info").lower())
    parser.add_argument(
        "--verify-target-model",
        action=argparse.BooleanOptionalAction,
        default=env.get(VERIFY_TARGET_MODEL_ENV, "").strip().lower() == "true",
        help="unpickle a model only on an invocation whose target model names the model file's "
        f"sha256, and only if the file has it (default: ${VERIFY_TARGET_MODEL_ENV} == true)",
    )
    args = parser.parse_args(argv)

    model_dir = args.model_dir
    if model_dir is None and not multi_model:
        default = Path(env.get("SM_ML_ROOT", paths.DEFAULT_ML_ROOT)) / "model"
        # A single-model endpoint always has /opt/ml/model; a local multi-model run has none.
        if default.is_dir() and any(default.iterdir()):
            model_dir = default
    return ServerConfig(
        host=args.host,
        port=args.port,
        workers=args.workers,
        memory_budget_bytes=args.memory_budget_mb * 1024 * 1024 if args.memory_budget_mb else None,
        max_request_bytes=args.max_request_bytes,
        batch_max_rows=args.batch_max_rows,
        batch_max_delay_s=args.batch_max_delay_ms / 1000.0,
        multi_model=multi_model,
        model_dir=model_dir,
        log_level=args.log_level,
        verify_target_model=args.verify_target_model,
    )


def config_to_json(config: ServerConfig) -> str:
    fields: dict[str, Any] = dict(config.__dict__)
    fields["model_dir"] = str(config.model_dir) if config.model_dir else None
    return orjson.dumps(fields).decode()


def config_from_json(text: str) -> ServerConfig:
    fields = orjson.loads(text)
    fields["model_dir"] = Path(fields["model_dir"]) if fields["model_dir"] else None
    return ServerConfig(**fields)


def serve_command(host: str, port: int, *options: str) -> list[str]:
    """The command line that starts this server on host:port (`python -m container serve`),
    with further flags; the one spelling used by the local runtime, the tests and the benchmark."""
    return [
        sys.executable,
        "-m",
        "container",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        *options,
    ]
