"""Shared by the modelbuild tests: an offline AWS environment and definitions built once."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

PROJECT = "mmetest"
BUCKET = "mmetest-artifacts"
ROLE_ARN = "arn:aws:iam::123456789012:role/mmetest-pipeline"
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mmetest:abc123"
REGION = "us-east-1"
OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
}


def set_offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "SAGEMAKER_PROJECT_NAME", "ARTIFACT_BUCKET", "IMAGE_URI"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, and any connection beyond loopback fails the test."""
    set_offline_env(monkeypatch)
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost"):
            return real_connect(self, address, *args, **kwargs)
        raise OSError(f"test tried to reach the network: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


@dataclass(frozen=True)
class Built:
    settings: Any  # modelbuild.pipeline.PipelineSettings
    definition: dict[str, Any]


def context() -> Any:
    from modelbuild.pipeline import ProjectContext

    return ProjectContext(project_name=PROJECT, bucket=BUCKET, role_arn=ROLE_ARN, region=REGION)


def build(dataset_name: str, **overrides: Any) -> Built:
    from modelbuild.datasets import get_dataset
    from modelbuild.pipeline import PipelineSettings, build_definition
    from modelbuild.run import staged_input

    dataset = get_dataset(dataset_name)
    settings = PipelineSettings.for_dataset(
        dataset,
        project_name=PROJECT,
        input_data_url=staged_input(dataset, BUCKET).uri,
        image_uri=IMAGE_URI,
        **overrides,
    )
    return Built(settings, build_definition(settings, context()))


@cache
def _all_definitions() -> dict[str, Built]:
    from modelbuild.datasets import default_registry

    return {name: build(name) for name in default_registry()}


@pytest.fixture(scope="session")
def definitions() -> dict[str, Built]:
    """Every registered dataset's definition, built once per test session."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        set_offline_env(monkeypatch)
        return _all_definitions()


def step(definition: dict[str, Any], name: str) -> dict[str, Any]:
    from modelbuild.validate import iter_steps

    return next(s for s in iter_steps(definition["Steps"]) if s["Name"] == name)
