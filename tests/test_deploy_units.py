"""The deploy side's small contracts: names, the routing table, artifact checks, stage configs,
the invoker package and its import footprint, the smoke test's example row."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from container.errors import InputError
from modeldeploy import naming
from modeldeploy.artifacts import ArtifactError, verify_archive
from modeldeploy.build import (
    INVOKER_MODULES,
    export_stage_config,
    load_stage_config,
    package_invoker,
)
from modeldeploy.routing import Route, RoutingTable, RoutingTableError
from modeldeploy.smoke import example_record
from tests.deploy_support import artifacts

SHA = "a" * 64


def route(version: int = 3) -> Route:
    return Route(
        target_model=naming.target_model("iris", version, SHA),
        model_data_url="s3://b/dev/models/iris/3-aaaaaaaaaaaa.tar.gz",
        model_package_arn=f"arn:aws:sagemaker:us-east-1:1:model-package/mme-iris/{version}",
        model_package_version=version,
        sha256=SHA,
        model_sha256="b" * 64,
        source_model_data_url="s3://b/pipelines/iris/model.tar.gz",
        deployed_at="2026-01-01T00:00:00+00:00",
    )


def test_names_follow_the_prefix_contract() -> None:
    assert naming.model_prefix_uri("bkt", "dev") == "s3://bkt/dev/models/"
    assert naming.target_model("iris", 3, SHA) == f"iris/3-{SHA}.tar.gz"
    assert naming.routing_table_uri("bkt", "prod") == "s3://bkt/prod/routing/live.json"
    # The routing table lives outside the multi-model prefix: it can never be a TargetModel.
    assert not naming.routing_table_uri("bkt", "dev").startswith(
        naming.model_prefix_uri("bkt", "dev")
    )
    assert naming.endpoint_name("mlops", "dev") == "mlops-dev"
    assert naming.stack_name("mlops", "prod") == "sagemaker-mlops-deploy-prod"
    assert naming.dataset_of_group("mlops", "mlops-breast-cancer") == "breast-cancer"
    assert naming.dataset_of_group("mlops", "other-iris") is None


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: naming.check_stage("Dev"), "stage 'Dev'"),
        (lambda: naming.model_prefix_uri("Bad_Bucket", "dev"), "not a valid S3 bucket"),
        (lambda: naming.target_model("iris", 0, SHA), "not positive"),
        (lambda: naming.target_model("iris", 1, "xyz"), "not a hex sha256"),
        (lambda: naming.endpoint_name("-bad", "dev"), "project name"),
    ],
)
def test_bad_names_are_refused_with_the_reason(call, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        call()


def test_the_routing_table_round_trips() -> None:
    entry = replace(route(3), previous=route(2))
    table = RoutingTable("dev", 4, "2026-01-01T00:00:00+00:00", {"iris": entry})
    assert RoutingTable.from_json(table.to_json()) == table


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d.update(format=2), "format 2"),
        (lambda d: d.pop("datasets"), "no 'datasets'"),
        (lambda d: d.update(revision=-1), "invalid revision"),
        (lambda d: d["datasets"]["iris"].update(model_package_version="3"), "must be a int"),
        (lambda d: d["datasets"]["iris"].pop("target_model"), "target_model"),
        (lambda d: d["datasets"]["iris"].update(previous=[]), "previous is not an object"),
    ],
)
def test_a_malformed_routing_table_names_the_problem(mutate, problem: str) -> None:
    document = json.loads(RoutingTable("dev", 1, "", {"iris": route()}).to_json())
    mutate(document)
    with pytest.raises(RoutingTableError, match=problem):
        RoutingTable.from_json(json.dumps(document).encode())


def test_artifact_verification_reports_the_checksums() -> None:
    verified = verify_archive(artifacts()["iris"], "iris")
    signature = json.loads(_member(artifacts()["iris"], "signature.json"))
    assert verified.model_sha256 == signature["model_sha256"]
    assert len(verified.sha256) == 64 and verified.signature == signature


def _member(archive: Path, name: str) -> bytes:
    import tarfile

    with tarfile.open(archive) as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("bad", "problem"), [("corrupt", "the artifact is corrupt"), ("truncated", "tar.gz")]
)
def test_bad_artifacts_are_refused_naming_the_source(bad: str, problem: str) -> None:
    with pytest.raises(ArtifactError, match=f"s3://x/y.*{problem}"):
        verify_archive(artifacts()[bad], "s3://x/y")


def test_the_example_row_comes_from_the_baseline() -> None:
    signature = {
        "schema": {
            "features": [
                {"name": "size", "kind": "numeric"},
                {"name": "colour", "kind": "categorical"},
                {"name": "empty", "kind": "categorical"},
                {"name": "flat", "kind": "numeric"},
            ]
        },
        "baseline": {
            "size": {"bin_edges": [1.0, 2.0, 3.0, 4.0, 5.0], "mean": 9.0},
            "colour": {"category_shares": {"red": 0.2, "blue": 0.7, "green": 0.1}},
            "flat": {"mean": 0.5},
        },
    }
    assert example_record(signature) == {"size": 3.0, "colour": "blue", "empty": None, "flat": 0.5}


def test_stage_configs_are_valid_and_prod_is_larger() -> None:
    dev, prod = load_stage_config("dev"), load_stage_config("prod")
    assert int(prod["MinCapacity"]) >= int(dev["MinCapacity"])
    assert int(prod["MaxCapacity"]) > int(dev["MaxCapacity"])
    exported = export_stage_config(
        "dev",
        project="mlops",
        project_id="p-abc123",
        bucket="sagemaker-project-p-abc123",
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/mme:latest",
        model_execution_role_arn="arn:aws:iam::123456789012:role/model",
        invoker_code_key="modeldeploy/invoker/invoker-0.zip",
    )
    assert exported["Parameters"]["StageName"] == "dev"
    assert exported["Tags"] == {
        "sagemaker:project-name": "mlops",
        "sagemaker:project-id": "p-abc123",
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"MinCapacity": "3"}, "MinCapacity 3 must be at least 1 and at most MaxCapacity 2"),
        ({"EndpointInstanceCount": "5"}, "EndpointInstanceCount 5 must lie between"),
        ({"MaxCapacity": "two"}, "MaxCapacity must be an integer"),
        ({"InstanceTyp": "ml.m5.large"}, r"\['InstanceTyp'\] are not in the endpoint stack"),
        ({"StageName": "prod"}, "StageName must be 'dev'"),
    ],
)
def test_a_bad_stage_config_names_the_problem(tmp_path: Path, change, problem: str) -> None:
    parameters = {**load_stage_config("dev"), **change}
    (tmp_path / "dev.json").write_text(json.dumps({"Parameters": parameters}))
    with pytest.raises(InputError, match=problem):
        load_stage_config("dev", tmp_path)


def test_the_invoker_package_holds_only_the_handler_and_is_reproducible(tmp_path: Path) -> None:
    first, key = package_invoker(tmp_path / "a")
    second, _ = package_invoker(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert key == f"modeldeploy/invoker/{first.name}"
    with zipfile.ZipFile(first) as archive:
        assert sorted(archive.namelist()) == sorted(f"modeldeploy/{m}" for m in INVOKER_MODULES)


@pytest.mark.integration
def test_the_invoker_package_runs_on_its_own(tmp_path: Path) -> None:
    """Unzipped alone, the handler imports with no pandas, numpy or scikit-learn loaded."""
    archive, _ = package_invoker(tmp_path)
    with zipfile.ZipFile(archive) as unzipped:
        unzipped.extractall(tmp_path / "lambda")
    probe = (
        "import sys, modeldeploy.invoker as m; "
        "heavy = sorted({'pandas', 'numpy', 'sklearn', 'container', 'local'} & set(sys.modules)); "
        "print(heavy, callable(m.handler))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, '.'); {probe}"],
        cwd=tmp_path / "lambda",
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[] True"
