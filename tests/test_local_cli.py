"""`mme` end to end: run, executions, steps, models, approve, reject, events, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from local.cli import main
from local.home import LocalHome
from modelbuild.datasets import get_dataset
from tests.local_support import widen_console

pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
GROUP = "mme-wine"


@pytest.fixture(autouse=True, scope="module")
def wide_console() -> Iterator[None]:
    """Tables at full width, so cells are not cut short in the captured output."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        widen_console(monkeypatch, 240)
        yield


def mme(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-home")
    result = mme(root, "run", "wine", "--max-jobs", "8", "--cv-folds", "2", "--workers", "2")
    assert result.exit_code == 0, result.output
    (root / "run-output.txt").write_text(result.output)
    return root


@pytest.mark.integration
def test_piped_output_shows_progress_lines(home: Path) -> None:
    """Not a terminal (CliRunner): a line per finished step and per tenth of the trials."""
    lines = [" ".join(line.split()) for line in (home / "run-output.txt").read_text().splitlines()]
    assert "wine Preprocess: Succeeded" in lines and "wine Tune: Succeeded" in lines
    trials = [line for line in lines if line.startswith("wine Tune: ") and "trials" in line]
    assert trials == [f"wine Tune: {n}/8 trials finished" for n in range(1, 9)]


@pytest.mark.integration
def test_run_prints_the_summary_and_the_state_is_listed(home: Path) -> None:
    record = LocalHome(home).executions.list()[0]
    listing = mme(home, "executions")
    assert listing.exit_code == 0 and record.id in listing.output
    assert "registered version 1" in listing.output

    steps = mme(home, "steps", record.id[:6], "--logs")
    assert steps.exit_code == 0, steps.output
    for name in ("Preprocess", "Tune", "Evaluate", "CheckMetric", "Register-RegisterModel"):
        assert name in steps.output
    assert "outcome True" in steps.output and ".log" in steps.output

    models = mme(home, "models", "wine")
    assert models.exit_code == 0 and "PendingManualApproval" in models.output
    assert "f1_macro" in models.output


@pytest.mark.integration
def test_approve_and_reject_change_the_state_and_emit_events(home: Path) -> None:
    registry = LocalHome(home).registry
    approved = mme(home, "approve", "wine", "-m", "good enough")
    assert approved.exit_code == 0, approved.output
    assert "PendingManualApproval -> Approved" in approved.output
    # The approval event deploys to dev and smoke-tests it, as EventBridge does on AWS.
    assert "dev: wine deployed" in approved.output
    assert "dev smoke test wine: ok" in approved.output
    assert registry.get(GROUP, 1).approval_description == "good enough"
    again = mme(home, "approve", "wine", "1")
    assert "already Approved" in again.output
    rejected = mme(home, "reject", GROUP, "1", "-m", "drift")
    assert rejected.exit_code == 0 and "Approved -> Rejected" in rejected.output
    # The rejected live version leaves dev routing: no other version is approved.
    assert "dev: wine removed" in rejected.output
    statuses = [e.approval_status for e in registry.events()]
    assert statuses == ["PendingManualApproval", "Approved", "Rejected"]
    listing = mme(home, "events")
    assert "Rejected" in listing.output and "drift" in listing.output
    missing = mme(home, "approve", "wine", "9")
    assert missing.exit_code == 1 and "has no version 9" in missing.output


@pytest.mark.integration
def test_approve_with_canary_keeps_dev_live_and_adds_the_canary(tmp_path: Path) -> None:
    from modeldeploy.canary import load_policy
    from tests.deploy_support import artifacts, local_backend

    backend = local_backend(tmp_path)
    cancer = artifacts()
    backend.register("breast-cancer", cancer["cancer-0"], status="PendingManualApproval")
    assert mme(tmp_path, "approve", "breast-cancer").exit_code == 0
    live = backend.deployer.read_table("dev").routes["breast-cancer"]
    backend.register("breast-cancer", cancer["cancer-1"], status="PendingManualApproval")

    approved = mme(tmp_path, "approve", "breast-cancer", "--canary")

    assert approved.exit_code == 0, approved.output
    assert "dev: breast-cancer canary" in approved.output
    route = backend.deployer.read_table("dev").routes["breast-cancer"]
    assert route.without_canary() == live
    assert route.canary is not None and route.canary.model_package_version == 2
    assert route.canary_weight == load_policy("dev").weight
    refused = mme(tmp_path, "approve", "breast-cancer", "1", "--canary", "--no-deploy")
    assert refused.exit_code == 2 and "--no-deploy" in refused.output


@pytest.mark.integration
def test_two_approvals_racing_record_one_change(tmp_path: Path) -> None:
    home = LocalHome(tmp_path)
    home.registry.register(GROUP, "s3://b/model.tar.gz")
    command = [
        str(Path(sys.executable).parent / "mme"),
        "--home",
        str(tmp_path),
        "approve",
        "wine",
        "1",
        "--no-deploy",  # the artifact is a stand-in: only the registry is under test here
    ]
    racers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "COLUMNS": "200"}) for _ in range(2)]  # fmt: skip
    outputs = [r.communicate(timeout=120)[0].decode() for r in racers]
    assert all(r.returncode == 0 for r in racers), outputs
    assert sum("-> Approved" in o for o in outputs) == 1
    assert sum("already Approved" in o for o in outputs) == 1
    assert [e.approval_status for e in home.registry.events()] == [
        "PendingManualApproval",
        "Approved",
    ]
    assert [p.version for p in home.registry.list_packages()] == [1]


def test_a_corrupt_registry_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "registry.sqlite").write_bytes(b"not a database" * 200)
    for args in (("models",), ("approve", "wine"), ("events",)):
        result = mme(tmp_path, *args)
        assert result.exit_code == 1, result.output
        assert "corrupt" in result.output and "Traceback" not in result.output


@pytest.mark.integration
def test_bad_input_gets_clear_errors(tmp_path: Path) -> None:
    unknown = mme(tmp_path, "run", "iris")
    assert unknown.exit_code == 2 and "unknown dataset 'iris'" in unknown.output
    parameter = mme(tmp_path, "run", "wine", "-p", "Nope=1")
    assert parameter.exit_code == 1 and "unknown pipeline parameter(s) Nope" in parameter.output
    malformed = mme(tmp_path, "run", "wine", "-p", "Nope")
    assert malformed.exit_code == 2 and "expected NAME=VALUE" in malformed.output
    execution = mme(tmp_path, "steps", "nosuchid")
    assert execution.exit_code == 1 and "no pipeline execution 'nosuchid'" in execution.output
    project = mme(tmp_path, "--project-name", "bad_name", "executions")
    assert project.exit_code == 2 and "--project-name" in project.output


@pytest.mark.integration
def test_an_unreachable_url_dataset_is_skipped_only_when_not_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    named = mme(tmp_path, "run", "banknote", "--data-dir", str(empty_mirror))
    assert named.exit_code == 1
    assert "dataset 'banknote'" in named.output and "not in the data directory" in named.output

    banknote = get_dataset("banknote")
    monkeypatch.setattr("modelbuild.datasets.default_registry", lambda: {"banknote": banknote})
    unnamed = mme(tmp_path, "run", "--data-dir", str(empty_mirror))
    assert unnamed.exit_code == 0, unnamed.output
    assert "skipped:" in unnamed.output


def test_every_command_has_help() -> None:
    for command in ("run", "demo", "executions", "steps", "models", "approve", "reject", "events"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_mounted_groups_follow_the_global_home_and_leave_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modeldeploy import naming as deploy_naming

    monkeypatch.delenv("MME_HOME", raising=False)
    table = {"format": 1, "stage": "dev", "revision": 7, "updated_at": "", "datasets": {}}
    uri = deploy_naming.routing_table_uri(deploy_naming.local_bucket("mme"), "dev")
    LocalHome(tmp_path).s3.put_bytes(uri, json.dumps(table).encode())
    result = mme(tmp_path, "endpoint", "table", "dev", "--json")
    assert result.exit_code == 0, result.output
    assert '"revision": 7' in result.output
    assert "MME_HOME" not in os.environ
