"""The image definition: lint-clean, multi-model capable, and started the way SageMaker starts it."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from container.__main__ import COMMANDS

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "container" / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    try:
        subprocess.run([found, "--version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.skip(f"the hadolint binary cannot run here: {error}")
    return found


@pytest.mark.integration
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_declares_the_multi_model_contract() -> None:
    text = DOCKERFILE.read_text()
    assert "com.amazonaws.sagemaker.capabilities.multi-models=true" in text
    # The base's Python must run the pinned libraries (scikit-learn 1.9 and pandas 3 need 3.11).
    base = re.search(r"^ARG BASE_IMAGE=\S*python:(\d+)\.(\d+)\S*$", text, re.M)
    assert base and (int(base[1]), int(base[2])) >= (3, 11)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert 'ENTRYPOINT ["python3", "-m", "container"]' in text
    # The project itself, so every library comes at the version pyproject.toml pins.
    assert re.search(r"pip install --no-cache-dir \.\s", text)


def test_serve_command_resolves_to_a_run_function() -> None:
    module = importlib.import_module(COMMANDS["serve"])
    assert callable(module.run)


def test_docker_context_keeps_what_the_image_copies() -> None:
    ignore = (REPO / "container" / "Dockerfile.dockerignore").read_text().split()
    copied = re.findall(r"^COPY (.+) \S+$", DOCKERFILE.read_text(), re.M)
    for sources in copied:
        for source in sources.split():
            assert f"!{source}" in ignore, f"{source} is excluded from the build context"


def _image_environment() -> dict[str, str]:
    """The ENV instructions of the Dockerfile, as the container's process sees them."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    environment: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", text, re.M):
        environment.update(pair.split("=", 1) for pair in line.split())
    return environment


def test_the_image_listens_outside_and_verifies_what_it_unpickles() -> None:
    from container.serving.config import parse_config

    config = parse_config([], {**_image_environment(), "SAGEMAKER_MULTI_MODEL": "true"})
    assert config.host == "0.0.0.0"
    # Only a model file with the sha256 the target model names is ever unpickled.
    assert config.verify_target_model
