"""`mme` in scripts: --json on the listings, COLUMNS honoured when piped, --version, and the
deploy commands print each change once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from local.cli import main
from local.executions import ExecutionRecord, StepRecord
from local.home import LocalHome
from modelbuild import naming
from tests.deploy_support import PROJECT, artifacts, local_backend

REPO = Path(__file__).resolve().parents[1]
MME = str(Path(sys.executable).parent / "mme")


def mme(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args])


def _state(home: Path) -> ExecutionRecord:
    """One registered model version (with its events) and one finished execution."""
    local = LocalHome(home)
    local.registry.register("mme-wine", "s3://b/model.tar.gz", customer_metadata={"a": "b"})
    local.registry.update_approval("mme-wine", 1, "Approved", "fine")
    record = ExecutionRecord(
        id=local.executions.new_id(),
        pipeline=naming.pipeline_name("mme", "wine"),
        status="Succeeded",
        started="2026-01-01T00:00:00.000+00:00",
        ended="2026-01-01T00:00:30.000+00:00",
        parameters={},
        steps=[
            StepRecord(
                naming.Steps.REGISTER, "RegisterModel", "Succeeded",
                "2026-01-01T00:00:20.000+00:00", "2026-01-01T00:00:30.000+00:00",
                properties={"ModelPackageVersion": 1}, logs=["register.log"],
            )
        ],
    )  # fmt: skip
    local.executions.save(record)
    return record


def test_listings_print_json_for_scripts(tmp_path: Path) -> None:
    record = _state(tmp_path)
    models = json.loads(mme(tmp_path, "models", "--json").output)
    assert [(m["group_name"], m["version"], m["approval_status"]) for m in models] == [
        ("mme-wine", 1, "Approved")
    ]
    assert models[0]["customer_metadata"] == {"a": "b"}
    executions = json.loads(mme(tmp_path, "executions", "--json").output)
    assert [(e["id"], e["status"], e["seconds"]) for e in executions] == [
        (record.id, "Succeeded", 30.0)
    ]
    assert executions[0]["result"] == "registered version 1"
    steps = json.loads(mme(tmp_path, "steps", record.id, "--json").output)
    assert steps["id"] == record.id and steps["steps"][0]["seconds"] == 10.0
    log = Path(steps["steps"][0]["logs"][0])
    assert log == LocalHome(tmp_path).executions.directory(record.id) / "register.log"
    events = json.loads(mme(tmp_path, "events", "--json").output)
    assert [e["detail"]["ModelApprovalStatus"] for e in events] == [
        "PendingManualApproval",
        "Approved",
    ]
    assert [
        e["id"] for e in json.loads(mme(tmp_path, "events", "--after", "1", "--json").output)
    ] == [2]


def test_the_routing_table_is_a_table_or_json(tmp_path: Path) -> None:
    backend = local_backend(tmp_path)
    backend.register("breast-cancer", artifacts()["cancer-0"])
    backend.deployer.deploy("dev", ["breast-cancer"]).raise_for_failures()
    options = ["--project-name", PROJECT]
    shown = mme(tmp_path, *options, "endpoint", "table", "dev")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("dev: routing table revision 1, updated ")
    assert lines[1].split()[:3] == ["dev", "breast-cancer", "v1"]
    document = json.loads(mme(tmp_path, *options, "endpoint", "table", "dev", "--json").output)
    assert document["revision"] == 1 and list(document["datasets"]) == ["breast-cancer"]
    empty = mme(tmp_path, *options, "endpoint", "table", "prod")
    assert "prod: routes no dataset" in empty.output


def _piped(home: Path, columns: str | None, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    done = subprocess.run(
        [MME, "--home", str(home), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.integration
def test_tables_follow_columns_when_piped(tmp_path: Path) -> None:
    LocalHome(tmp_path).registry.register("mme-wine", "s3://bucket/" + "x" * 300 + "/model.tar.gz")
    widths = {
        columns: max(len(line) for line in _piped(tmp_path, columns, "models").splitlines())
        for columns in (None, "80", "200")
    }
    assert widths == {None: 120, "80": 80, "200": 200}


def test_version_is_the_installed_packages() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mme, version {version('sagemaker-mme-mlops')}"


@pytest.mark.integration
def test_a_deploy_prints_each_change_once(tmp_path: Path) -> None:
    """Run as CodeBuild runs it (a fresh process, logging to stderr): the deploy logic's log
    lines and the printed report used to say every change twice."""
    backend = local_backend(tmp_path)
    backend.register("breast-cancer", artifacts()["cancer-0"])
    done = subprocess.run(
        [sys.executable, "-m", "local.cli", "endpoint", "deploy", "dev", "-d", "breast-cancer",
         "--home", str(tmp_path), "--project-name", PROJECT],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    mentions = [line for line in lines if "deployed version 1" in line or "revision 1" in line]
    assert len(mentions) == 2, lines  # the change, and the routing table's revision
    assert "deployed" in mentions[0] and "revision 1" in mentions[1]
