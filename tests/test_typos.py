"""Typos never create state: a mistyped stage, dataset, version, file, port or threshold is
refused in one line that says what exists, before anything is read, written or started."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from local.cli import main
from local.home import LocalHome
from modeldeploy.build import CONFIG_DIR

GROUP = "mme-wine"


def mme(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args])


def _stored(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


def test_an_unknown_stage_is_refused_and_never_written(tmp_path: Path) -> None:
    assert {p.stem for p in CONFIG_DIR.glob("*.json")} == {"dev", "prod"}
    for args in (
        ("deploy", "prd"),
        ("table", "prd"),
        ("smoke", "prd"),
        ("canary", "prd"),
        ("drift", "prd"),
        ("promote", "--to", "prd"),
        ("invoke", "wine", "[]", "--stage", "prd"),
    ):
        result = mme(tmp_path, "endpoint", *args)
        assert result.exit_code == 1, (args, result.output)
        assert "unknown stage 'prd'; did you mean 'prod'? (configured in modeldeploy/config/: " \
            "dev, prod)" in result.output, result.output  # fmt: skip
        assert "Traceback" not in result.output
    assert not any("prd" in path for path in _stored(tmp_path)), _stored(tmp_path)


def test_an_unknown_dataset_is_named_with_the_closest(tmp_path: Path) -> None:
    run = mme(tmp_path, "run", "wien")
    assert run.exit_code == 2, run.output
    assert "unknown dataset 'wien'; did you mean 'wine'?" in run.output
    for args in (("models", "wien"), ("approve", "wien"), ("executions", "-d", "wien")):
        result = mme(tmp_path, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "unknown dataset 'wien'; did you mean 'wine'?" in result.output, result.output
    far = mme(tmp_path, "models", "zzzz")
    assert "unknown dataset 'zzzz' (registered or with models: " in far.output
    assert "did you mean" not in far.output
    assert LocalHome(tmp_path).registry.list_groups() == []


def test_a_dataset_known_only_by_its_models_is_still_listed(tmp_path: Path) -> None:
    home = LocalHome(tmp_path)
    home.registry.register("mme-retired", "s3://b/model.tar.gz")
    result = mme(tmp_path, "models", "retired")
    assert result.exit_code == 0, result.output
    assert "mme-retired" in result.output


@pytest.mark.parametrize("version", ["v2", "2", "V2"])
def test_approve_takes_the_version_as_the_tables_print_it(tmp_path: Path, version: str) -> None:
    home = LocalHome(tmp_path)
    for _ in range(2):
        home.registry.register(GROUP, "s3://b/model.tar.gz")
    result = mme(tmp_path, "approve", "wine", version, "--no-deploy", "-m", "looks right")
    assert result.exit_code == 0, result.output
    assert home.registry.get(GROUP, 2).approval_status == "Approved"
    assert home.registry.get(GROUP, 2).approval_description == "looks right"
    assert home.registry.get(GROUP, 1).approval_status == "PendingManualApproval"
    for bad in ("v0", "vv2", "two"):
        refused = mme(tmp_path, "reject", "wine", bad, "--no-deploy")
        assert refused.exit_code == 2 and "is not a model version" in refused.output


def test_invoke_with_a_missing_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for rows in ("rows.json", "rows.csv", "data/rows"):
        result = mme(tmp_path / "home", "endpoint", "invoke", "wine", rows)
        assert result.exit_code == 1, result.output
        assert f"file '{rows}': file not found" in result.output, result.output


@pytest.mark.integration
def test_a_second_serve_names_the_busy_port_and_its_holder(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        for args in (("--port", str(port)), ("--port", "0", "--invoker-port", str(port))):
            result = mme(tmp_path, "endpoint", "serve", *args)
            assert result.exit_code == 1, result.output
            option = args[-2]
            assert f"port {port} on 127.0.0.1 is busy, held by process {os.getpid()} (" \
                in result.output, result.output  # fmt: skip
            assert f"choose another port with {option}" in result.output
            assert "Traceback" not in result.output
    assert not (tmp_path / "endpoint").exists() or not any((tmp_path / "endpoint").iterdir())


def test_a_threshold_outside_zero_to_one_is_refused(tmp_path: Path) -> None:
    from modelbuild.cli import pipeline

    for value in ("1.5", "-0.1"):
        local = mme(tmp_path, "run", "wine", "--threshold", value)
        assert local.exit_code == 2 and "0<=x<=1" in local.output, local.output
        aws = CliRunner().invoke(pipeline, ["definition", "wine", "--threshold", value])
        assert aws.exit_code == 2 and "0<=x<=1" in aws.output, aws.output


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return found


def test_dash_d_means_dataset_in_every_command() -> None:
    meanings = {
        name: option.name
        for name, command in _commands(main)
        for option in command.params
        if "-d" in getattr(option, "opts", [])
    }
    assert {"executions", "endpoint deploy", "endpoint smoke"} <= set(meanings)
    assert set(meanings.values()) <= {"dataset", "datasets"}, meanings
