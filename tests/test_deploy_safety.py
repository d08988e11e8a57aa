"""A model that cannot serve never stays live (issue 13, item 1), on both backends.

Before the swap, deploy refuses what it can know without unpickling: library versions other
than the serving image's, a schema for another dataset, an archive over the size limits
(decompression bombs, refused at their header) or broken mid-stream. After the swap, the smoke
test (its own command, as in buildspecs/modeldeploy.yml) rolls back a version the deploy placed
that fails, to the version the routing table kept as `previous`, and rejects it.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from container import archive
from container.errors import InputError
from modeldeploy import naming
from modeldeploy.artifacts import (
    ArtifactError,
    installed_versions,
    pinned_versions,
    verify_archive,
)
from modeldeploy.deploy import Deployer
from modeldeploy.invoker import Invoker
from modeldeploy.smoke import smoke_stage
from tests.artifact_faults import (
    corrupt_mid_stream,
    lying_header,
    members,
    pax_bomb,
    repack,
    zero_bomb,
)
from tests.deploy_support import PROJECT, artifacts, aws_backend, local_backend, offline_aws

CANCER = "breast-cancer"
STAGE = "dev"


@pytest.fixture(params=["local", "aws"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    offline_aws(monkeypatch)
    if request.param == "local":
        yield local_backend(tmp_path / "home")
    else:
        with aws_backend() as aws:
            # What the modeldeploy CodeBuild project checks against: pyproject.toml's pins.
            aws.deployer.serving_versions = pinned_versions()
            yield aws


def fresh(backend: Any) -> Deployer:
    """A deployer sharing nothing with earlier ones but storage and registry: each pipeline
    command (deploy, smoke) is a process of its own, which knows only the routing table."""
    old = backend.deployer
    return Deployer(
        old.storage,
        old.registry,
        bucket=old.bucket,
        project=old.project,
        serving_versions=old.serving_versions,
    )


def status(backend: Any, version: int) -> str:
    """The version's approval status, read from the backend's registry itself."""
    if hasattr(backend, "arns"):
        described = backend.sagemaker.describe_model_package(
            ModelPackageName=backend.arns[CANCER, version]
        )
        return str(described["ModelApprovalStatus"])
    group = naming.model_package_group_name(PROJECT, CANCER)
    [package] = [p for p in backend.registry.list_packages(group) if p.version == version]
    return str(package.approval_status)


# -- refused before the swap -------------------------------------------------------------------


def test_the_versions_checked_are_the_images(tmp_path: Path) -> None:
    """pyproject.toml's pins are what the image installs and what this environment runs."""
    pins = pinned_versions()
    assert pins is not None
    trained = json.loads(members(artifacts()["cancer-0"])["signature.json"])["library_versions"]
    libraries = [name for name in trained if name != "python"]
    assert libraries and all(pins(name) == installed_versions(name) for name in libraries)
    assert pins("Scikit_Learn") == pins("scikit-learn") != "absent"
    assert pinned_versions(tmp_path / "missing.toml") is None


def test_other_library_versions_are_refused_before_routing(backend, tmp_path: Path) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER]).raise_for_failures()
    before = backend.deployer.read_table(STAGE)

    def old_sklearn(signature: dict[str, Any]) -> None:
        signature["library_versions"]["scikit-learn"] = "0.24.2"

    backend.register(
        CANCER, repack(artifacts()["cancer-1"], tmp_path / "a.tar.gz", signature=old_sklearn)
    )
    report = backend.deployer.deploy(STAGE, [CANCER])

    [failure] = report.failures
    assert "scikit-learn" in failure.message and "trained with 0.24.2" in failure.message
    assert "version 1 stays live" in failure.message
    assert backend.deployer.read_table(STAGE) == before and not report.table_written


def test_a_model_trained_for_another_dataset_is_refused(backend) -> None:
    backend.register(CANCER, artifacts()["iris"])
    report = backend.deployer.deploy(STAGE, [CANCER])
    [failure] = report.failures
    assert "trained for dataset 'iris', not 'breast-cancer'" in failure.message
    assert CANCER not in backend.deployer.read_table(STAGE).routes


@pytest.mark.parametrize(
    ("break_schema", "problem"),
    [
        (lambda s: s["schema"].update(features=[]), "names no features"),
        (lambda s: s["schema"]["features"][0].update(kind="text"), "feature 0 must have"),
        (lambda s: s["schema"].update(classes=["only"]), "at least two classes"),
    ],
)
def test_a_schema_the_container_cannot_read_is_refused(
    tmp_path: Path, break_schema, problem
) -> None:
    backend = local_backend(tmp_path / "home")
    backend.register(
        CANCER, repack(artifacts()["cancer-0"], tmp_path / "s.tar.gz", signature=break_schema)
    )
    [failure] = backend.deployer.deploy(STAGE, [CANCER]).failures
    assert problem in failure.message


def test_a_decompression_bomb_is_refused_at_its_header(tmp_path: Path) -> None:
    # Ten GiB claimed, one MiB present: a reader that looked before checking would call it
    # truncated; this one refuses it for its size, having decompressed next to nothing.
    bomb = lying_header(tmp_path / "bomb.tar.gz", 10 * 1024**3)
    started = time.perf_counter()
    with pytest.raises(ArtifactError, match=r"unpacks to more than \d+ bytes"):
        verify_archive(bomb, "s3://b/bomb.tar.gz")
    assert time.perf_counter() - started < 5


def test_the_size_limit_comes_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    bomb = zero_bomb(artifacts()["cancer-0"], tmp_path / "zeros.tar.gz", 64 * 1024 * 1024)
    assert bomb.stat().st_size < 1024 * 1024  # a real bomb: 64 MiB in well under one
    verify_archive(bomb, "s3://b/zeros.tar.gz")  # within the default limit
    monkeypatch.setenv(archive.MAX_MODEL_BYTES_ENV, str(16 * 1024 * 1024))
    with pytest.raises(ArtifactError, match="MME_MAX_MODEL_BYTES"):
        verify_archive(bomb, "s3://b/zeros.tar.gz")
    monkeypatch.setenv(archive.MAX_MODEL_BYTES_ENV, "lots")
    with pytest.raises(InputError, match="MME_MAX_MODEL_BYTES must be a positive number"):
        verify_archive(bomb, "s3://b/zeros.tar.gz")


def test_an_oversized_extended_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="extended tar header"):
        verify_archive(pax_bomb(tmp_path / "pax.tar.gz", 1024**3), "s3://b/pax.tar.gz")


def test_links_and_climbing_paths_are_refused(tmp_path: Path) -> None:
    for name, kind in (("model.joblib", tarfile.SYMTYPE), ("../model.joblib", tarfile.REGTYPE)):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            tar.addfile(info, io.BytesIO(b""))
        path = tmp_path / "link.tar.gz"
        path.write_bytes(buffer.getvalue())
        with pytest.raises(ArtifactError, match=r"link or special file|plain relative path"):
            verify_archive(path, "s3://b/link.tar.gz")


def test_a_stream_corrupt_mid_way_fails_its_dataset_and_the_rest_deploys(
    backend, tmp_path: Path
) -> None:
    corrupt = corrupt_mid_stream(artifacts()["cancer-0"], tmp_path / "mid.tar.gz")
    backend.register(CANCER, corrupt)
    backend.register("iris", artifacts()["iris"])

    report = backend.deployer.deploy(STAGE, [CANCER, "iris"])

    [failure] = report.failures
    assert failure.dataset == CANCER and "not a readable tar.gz" in failure.message
    assert str(tmp_path) not in failure.message  # the problem, not this machine's scratch path
    assert list(backend.deployer.read_table(STAGE).routes) == ["iris"]


# -- rolled back after the swap ----------------------------------------------------------------


class Endpoint:
    """InvokeEndpoint answering as the serving container would for each deployed model, except
    for targets told to refuse (its load failed: 422) or to be unavailable (throttled: 503)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.refusing: set[str] = set()
        self.unavailable: set[str] = set()

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        target = request["TargetModel"]
        if target in self.refusing:
            raise ClientError(
                {
                    "Error": {"Code": "ModelError", "Message": "Received client error (422)"},
                    "OriginalStatusCode": 422,
                    "OriginalMessage": json.dumps(
                        {
                            "code": 422,
                            "message": f"cannot load model {target}: the model has no predict_proba",
                        }
                    ),
                },
                "InvokeEndpoint",
            )
        if target in self.unavailable:
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "InvokeEndpoint"
            )
        key = naming.artifact_key(STAGE, target)
        data = self.backend.storage.read(naming.s3_uri(self.backend.bucket, key))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            signature = json.loads(tar.extractfile("signature.json").read())  # type: ignore[union-attr]
        classes = signature["schema"]["classes"]
        share = 1 / len(classes)
        answer = {
            "predictions": [
                {"label": classes[0], "probabilities": {str(c): share for c in classes}}
            ],
            "classes": classes,
            "model_version": signature["model_sha256"],
        }
        return {"Body": io.BytesIO(json.dumps(answer).encode())}


def invoker(backend: Any, endpoint: Endpoint) -> Invoker:
    uri = naming.routing_table_uri(backend.bucket, STAGE)
    return Invoker(
        runtime=endpoint,
        endpoint_name=f"{PROJECT}-{STAGE}",
        read_table=lambda: backend.storage.read(uri),
        stage=STAGE,
        ttl_seconds=0,
    )


def test_a_version_failing_its_smoke_test_is_rolled_back_and_rejected(backend) -> None:
    endpoint = Endpoint(backend)
    backend.register(CANCER, artifacts()["cancer-0"])
    fresh(backend).deploy(STAGE, [CANCER]).raise_for_failures()
    assert smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint)).results[0].ok
    first = fresh(backend).read_table(STAGE).routes[CANCER]
    assert not first.awaiting_smoke_test  # passed: later failures are reported, not rolled back

    backend.register(CANCER, artifacts()["cancer-1"])
    fresh(backend).deploy(STAGE, [CANCER])
    second = fresh(backend).read_table(STAGE).routes[CANCER]
    assert second.model_package_version == 2 and second.awaiting_smoke_test
    assert second.previous == first
    endpoint.refusing.add(second.target_model)

    outcome = smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint))

    [result] = outcome.results
    assert not result.ok and "no predict_proba" in result.message
    assert "version 2 failed its smoke test" in result.message
    assert "rolled back to version 1" in result.message
    routed = fresh(backend).read_table(STAGE).routes[CANCER]
    assert routed == first  # the route as it was before the deploy, atomically
    assert status(backend, 2) == "Rejected" and status(backend, 1) == "Approved"
    assert second.model_data_url in outcome.reports[0].deleted
    # The next deploy keeps version 1: version 2 is never "already live" again.
    again = fresh(backend).deploy(STAGE, [CANCER])
    [change] = again.changes
    assert change.action == "unchanged" and "version 1 is already live" in change.message
    assert smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint)).results[0].ok


def test_a_first_version_failing_its_smoke_test_is_removed(backend) -> None:
    endpoint = Endpoint(backend)
    backend.register(CANCER, artifacts()["cancer-0"])
    fresh(backend).deploy(STAGE, [CANCER]).raise_for_failures()
    endpoint.refusing.add(fresh(backend).read_table(STAGE).routes[CANCER].target_model)

    [result] = smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint)).results

    assert not result.ok and "removed from routing" in result.message
    assert CANCER not in fresh(backend).read_table(STAGE).routes
    assert status(backend, 1) == "Rejected"
    assert fresh(backend).deploy(STAGE, [CANCER]).changes[0].action == "not routed"


def test_an_unavailable_endpoint_rolls_back_without_rejecting(backend) -> None:
    endpoint = Endpoint(backend)
    backend.register(CANCER, artifacts()["cancer-0"])
    fresh(backend).deploy(STAGE, [CANCER])
    smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint))
    backend.register(CANCER, artifacts()["cancer-1"])
    fresh(backend).deploy(STAGE, [CANCER])
    endpoint.unavailable.add(fresh(backend).read_table(STAGE).routes[CANCER].target_model)

    [result] = smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint)).results

    assert not result.ok and "not rejected" in result.message
    assert fresh(backend).read_table(STAGE).routes[CANCER].model_package_version == 1
    assert status(backend, 2) == "Approved"
    # Tried again by the next deploy, which places it anew.
    assert fresh(backend).deploy(STAGE, [CANCER]).changes[0].action == "deployed"


def test_a_canary_failing_its_smoke_test_is_dropped(backend) -> None:
    endpoint = Endpoint(backend)
    backend.register(CANCER, artifacts()["cancer-0"])
    fresh(backend).deploy(STAGE, [CANCER])
    smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint))
    live = fresh(backend).read_table(STAGE).routes[CANCER]
    backend.register(CANCER, artifacts()["cancer-1"])
    fresh(backend).deploy(STAGE, [CANCER], canary_weight=0.2)
    canary = fresh(backend).read_table(STAGE).routes[CANCER].canary
    assert canary is not None and canary.awaiting_smoke_test
    endpoint.refusing.add(canary.target_model)

    [result] = smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint)).results

    assert not result.ok and "canary version 2 failed its smoke test" in result.message
    assert fresh(backend).read_table(STAGE).routes[CANCER] == live
    assert status(backend, 2) == "Rejected"


def test_a_restored_version_that_never_passed_is_tested_at_once(backend) -> None:
    endpoint = Endpoint(backend)
    for name in ("cancer-0", "cancer-1"):  # deployed twice, never smoke-tested
        backend.register(CANCER, artifacts()[name])
        fresh(backend).deploy(STAGE, [CANCER])
    second = fresh(backend).read_table(STAGE).routes[CANCER]
    assert second.previous is not None and second.previous.awaiting_smoke_test
    endpoint.refusing.add(second.target_model)

    outcome = smoke_stage(fresh(backend), STAGE, invoker(backend, endpoint))

    [result] = outcome.results
    assert not result.ok and "then version 1 (live) answered correctly" in result.message
    assert len(outcome.reports) == 2
    restored = fresh(backend).read_table(STAGE).routes[CANCER]
    assert restored.model_package_version == 1 and not restored.awaiting_smoke_test


@pytest.mark.integration
@pytest.mark.parametrize(("stage", "first"), [("dev", "deploy dev"), ("prod", "promote")])
def test_the_pipeline_smoke_tests_even_when_its_deploy_failed(
    tmp_path: Path, stage: str, first: str
) -> None:
    """A deploy that failed for one dataset put the others live: the buildspec still runs the
    smoke command (which rolls back what fails), and the action fails for either."""
    import os
    import subprocess

    import yaml

    spec = yaml.safe_load((Path(__file__).parents[1] / "buildspecs/modeldeploy.yml").read_text())
    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir()
    # `python` that logs its arguments and fails the deploy (or promote) step.
    stub.write_text(f'#!/bin/sh\necho "$@" >> "$CALLS"\ncase "$*" in *"{first}"*) exit 1 ;; esac\n')
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    result = subprocess.run(
        ["bash", "-c", "\n".join(spec["phases"]["build"]["commands"])],
        env={
            "PATH": f"{stub.parent}:{os.environ['PATH']}",
            "CALLS": str(calls),
            **spec["env"]["variables"],
            "DEPLOY_STAGE": stage,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    logged = calls.read_text().splitlines()
    assert result.returncode != 0
    assert logged[-1] == f"-m modeldeploy.cli smoke {stage}"
