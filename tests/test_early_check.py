"""`mme run` and `python -m modelbuild.run` check each dataset's data before anything starts: a
bad CSV is refused naming the user's file, before the SageMaker SDK is imported (seconds of
start-up) or AWS is touched; a run over every dataset skips it and runs the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from container.errors import InputError
from modelbuild.datasets import REGISTRY_ENV, get_dataset, load_registry
from tests.conftest import mixed_frame
from tests.pipeline_fixtures import BUCKET, IMAGE_URI, PROJECT, REGION, ROLE_ARN, offline

__all__ = ["offline"]  # fixture used by name
REPO = Path(__file__).resolve().parents[1]
SEMICOLONS = r"file 'data/chile.csv': the columns are separated by ';', not commas"


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder as the working directory: a registry whose 'chile' reads data/chile.csv,
    written with semicolons while the entry says nothing of a separator (so: commas)."""
    (tmp_path / "data").mkdir()
    mixed_frame(120).to_csv(tmp_path / "data" / "chile.csv", index=False, sep=";")
    registry = tmp_path / "datasets.yml"
    registry.write_text(
        "datasets:\n"
        "  chile:\n    source: {csv: data/chile.csv}\n    target: label\n"
        "  wine:\n    source: {sklearn: load_wine}\n    target: cultivar\n    metric: f1_macro\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(REGISTRY_ENV, str(registry))
    return tmp_path


# The command runs in a fresh interpreter, so sys.modules shows what it imported before failing.
PROBE = """
import json, sys
from click.testing import CliRunner
from {module} import {command} as command
result = CliRunner().invoke(command, sys.argv[1:])
print(json.dumps({{
    "exit_code": result.exit_code,
    "output": result.output,
    "sdk": "sagemaker" in sys.modules,
}}))
"""


def _probe(user: Path, module: str, command: str, *args: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, command=command), *args],
        cwd=user, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.integration
def test_mme_run_refuses_a_bad_csv_naming_the_file_before_the_sdk(user: Path) -> None:
    home = user / "home"
    found = _probe(user, "local.cli", "main", "--home", str(home), "run", "chile")
    assert found["exit_code"] == 1, found["output"]
    assert "dataset 'chile', " + SEMICOLONS in str(found["output"])
    assert "set sep: ';'" in str(found["output"])
    assert "Traceback" not in str(found["output"])
    assert found["sdk"] is False
    assert not (home / "executions").exists() or not any((home / "executions").iterdir())


@pytest.mark.integration
def test_the_aws_run_refuses_a_bad_csv_before_the_sdk(user: Path) -> None:
    found = _probe(
        user, "modelbuild.cli", "pipeline", "run", "chile", "--bucket", BUCKET,
        "--role-arn", ROLE_ARN, "--image-uri", IMAGE_URI, "--region", REGION,
    )  # fmt: skip
    assert found["exit_code"] == 1, found["output"]
    assert SEMICOLONS in str(found["output"])
    assert found["sdk"] is False


@pytest.mark.integration
def test_mme_run_over_every_dataset_skips_a_bad_one_with_its_message(user: Path) -> None:
    from click.testing import CliRunner

    from local.cli import main

    (user / "datasets.yml").write_text(
        "datasets:\n  chile:\n    source: {csv: data/chile.csv}\n    target: label\n"
    )
    result = CliRunner().invoke(main, ["--home", str(user / "home"), "run"])
    assert result.exit_code == 0, result.output
    assert "skipped: dataset 'chile', " + SEMICOLONS in " ".join(result.output.split())


def _request(names: list[str], every: bool) -> object:
    from modelbuild.run import RunRequest

    return RunRequest(
        datasets=[get_dataset(name) for name in names],
        project_name=PROJECT,
        project_id=None,
        bucket=BUCKET,
        role_arn=ROLE_ARN,
        region=REGION,
        image_uri=IMAGE_URI,
        overrides={},
        every=every,
    )


@pytest.mark.usefixtures("offline")
def test_start_all_fails_a_named_bad_dataset_and_skips_it_in_a_run_over_all(user: Path) -> None:
    from modelbuild.run import start_all

    logged: list[str] = []
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        with pytest.raises(InputError, match=SEMICOLONS):
            start_all(_request(["chile", "wine"], every=False), s3, sagemaker, logged.append)
        assert sagemaker.list_pipelines()["PipelineSummaries"] == []

        outcomes = start_all(_request(["chile", "wine"], every=True), s3, sagemaker, logged.append)
        assert [o.dataset for o in outcomes] == ["wine"]
        assert any(line.startswith("skipped: dataset 'chile', ") for line in logged), logged


def test_notes_are_printed_as_warnings_and_the_run_goes_on(
    user: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelbuild.run import usable

    frame = mixed_frame(120)
    frame.loc[:2, "label"] = None
    frame.to_csv(user / "data" / "chile.csv", index=False)
    (user / "datasets.yml").write_text(
        "datasets:\n  chile:\n    source: {csv: data/chile.csv}\n    target: label\n"
        "    unlabelled: drop\n"
    )
    dataset = load_registry(user / "datasets.yml")["chile"]
    logged: list[str] = []
    assert usable([dataset], every=False, log=logged.append) == [dataset]
    assert logged == [
        "warning: dataset 'chile', file 'data/chile.csv': dropped 3 row(s) without a label in "
        "'label'"
    ]
    assert len(pd.read_csv(user / "data" / "chile.csv")) == 120  # the user's file is left alone
