"""An artifact is trusted through the registry, never because it agrees with itself (issue 13,
item 3).

The attack: a valid-looking model.tar.gz (a signature.json whose checksum matches the model file
beside it) whose pickle runs code when unpickled; here it only creates a marker file in the
test's temporary directory. It must be refused by the deploy, because the model file differs
from the sha256 the pipeline recorded in the registry, and by the serving container, because it
differs from the sha256 the routed target model's name carries, when it is put straight onto
the stage's prefix. The marker never appears.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from container.provenance import routed_model_sha256
from local.endpoint import LocalEndpoint, runtime_client
from modeldeploy import naming
from modeldeploy.routing import RoutingTable
from tests.artifact_faults import repack
from tests.deploy_support import (
    PROJECT,
    artifacts,
    local_backend,
    signature_sha256,
)
from tests.serving_support import Server, running_server

CANCER = "breast-cancer"
ENDPOINT = f"{PROJECT}-dev"
CANCER_ROW = ", ".join(["14.0"] * 30)
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


class _CreatesMarker:
    """Unpickling it calls open(marker, "w"): the file appears if, and only if, it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def malicious_pickle(marker: Path) -> bytes:
    """A pickle that creates `marker` when loaded, proved here on a probe path of its own."""
    probe = marker.with_name(marker.name + ".probe")
    pickle.loads(pickle.dumps(_CreatesMarker(probe))).close()
    assert probe.is_file(), "the crafted pickle must really run code when unpickled"
    probe.unlink()
    return pickle.dumps(_CreatesMarker(marker))


def crafted_archive(tmp_path: Path, marker: Path) -> Path:
    """The cancer-0 artifact with the malicious pickle as its model file and a signature whose
    checksum matches it: every check the archive can make on itself passes."""
    crafted = repack(
        artifacts()["cancer-0"], tmp_path / "crafted.tar.gz", model=malicious_pickle(marker)
    )
    assert signature_sha256(crafted) != signature_sha256(artifacts()["cancer-0"])
    return crafted


# -- the name carries the checksum --------------------------------------------------------------


def test_the_target_model_carries_the_full_model_sha256() -> None:
    sha = hashlib.sha256(b"model").hexdigest()
    target = naming.target_model(CANCER, 3, sha)
    assert target == f"{CANCER}/3-{sha}.tar.gz"
    assert routed_model_sha256(target) == sha
    for name in (
        None,
        "",
        f"{CANCER}/3-{sha[:12]}.tar.gz",  # the key before it carried the whole digest
        f"{CANCER}/3-{sha}.tar.gz/x",
        f"{CANCER}/3-{sha.upper()}.tar.gz",
        f"{sha}.tar.gz",
    ):
        assert routed_model_sha256(name) is None, name


# -- the deploy: the registry's record, not the archive's own signature ----------------------


def test_deploy_refuses_an_artifact_changed_after_registration(backend, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    version = backend.register(CANCER, artifacts()["cancer-0"])
    group = naming.model_package_group_name(PROJECT, CANCER)
    source = backend.deployer.registry.latest_approved(group).model_data_url
    backend.storage.upload(crafted_archive(tmp_path, marker), source)

    report = backend.deployer.deploy("dev", [CANCER])

    [failure] = report.failures
    assert failure.dataset == CANCER
    assert f"version {version}:" in failure.message
    assert "changed after registration" in failure.message
    assert backend.deployer.read_table("dev").routes == {}
    assert not [key for key in backend.objects() if "/dev/models/" in f"/{key}"]
    assert not marker.exists()


def test_deploy_refuses_a_version_without_a_recorded_checksum(backend) -> None:
    version = backend.register(CANCER, artifacts()["cancer-0"], model_sha256=None)

    [failure] = backend.deployer.deploy("dev", [CANCER]).failures

    assert f"version {version} has no '{naming.MODEL_SHA256_METADATA_KEY}'" in failure.message
    assert "run the pipeline again" in failure.message
    assert backend.deployer.read_table("dev").routes == {}


def test_a_normal_deploy_routes_the_model_sha256_in_its_key(backend) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])

    backend.deployer.deploy("dev", [CANCER]).raise_for_failures()

    route = backend.deployer.read_table("dev").routes[CANCER]
    assert routed_model_sha256(route.target_model) == route.model_sha256
    assert route.model_sha256 == signature_sha256(artifacts()["cancer-0"])


def test_a_route_whose_key_carries_no_checksum_is_placed_again(backend) -> None:
    """A route deployed before keys carried the model's sha256 cannot be verified by the
    container: the next deploy places the same version under a key that can."""
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.deployer.deploy("dev", [CANCER]).raise_for_failures()
    table = backend.deployer.read_table("dev")
    route = table.routes[CANCER]
    old_target = f"{CANCER}/{route.model_package_version}-{route.sha256[:12]}.tar.gz"
    old_uri = naming.s3_uri(backend.bucket, naming.artifact_key("dev", old_target))
    backend.storage.upload(artifacts()["cancer-0"], old_uri)
    old = replace(route, target_model=old_target, model_data_url=old_uri)
    aged = RoutingTable("dev", table.revision, table.updated_at, {CANCER: old})
    table_uri = naming.routing_table_uri(backend.bucket, "dev")
    backend.storage.write(table_uri, aged.to_json(), "application/json")

    [change] = backend.deployer.deploy("dev", [CANCER]).changes

    assert change.action == "deployed"
    assert backend.deployer.read_table("dev").routes[CANCER].target_model == route.target_model


# -- the serving side: the routed name, on the local endpoint (the same container as AWS) ------


@pytest.mark.integration
def test_the_endpoint_refuses_a_crafted_archive_on_the_stage_prefix(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    home = tmp_path / "home"
    backend = local_backend(home)
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.register("iris", artifacts()["iris"])
    backend.deployer.deploy("dev", [CANCER, "iris"]).raise_for_failures()
    routes = backend.deployer.read_table("dev").routes
    crafted = crafted_archive(tmp_path, marker)
    # Put straight onto the stage's prefix: over the routed key, and under a key naming no sha.
    backend.storage.upload(crafted, routes[CANCER].model_data_url)
    unnamed = f"{CANCER}/9-evil.tar.gz"
    backend.storage.upload(
        crafted, naming.s3_uri(backend.bucket, naming.artifact_key("dev", unnamed))
    )

    with LocalEndpoint(home, PROJECT) as endpoint:
        client = runtime_client(endpoint.url)
        answer = client.invoke_endpoint(
            EndpointName=ENDPOINT,
            TargetModel=routes["iris"].target_model,
            ContentType="application/json",
            Body=json.dumps([IRIS_ROW]),
        )
        assert json.loads(answer["Body"].read())["model_version"] == routes["iris"].model_sha256
        refusals = {}
        for target in (routes[CANCER].target_model, unnamed):
            with pytest.raises(ClientError) as raised:
                client.invoke_endpoint(
                    EndpointName=ENDPOINT,
                    TargetModel=target,
                    ContentType="text/csv",
                    Body=CANCER_ROW,
                )
            refusals[target] = raised.value.response

    routed = refusals[routes[CANCER].target_model]
    assert routed["Error"]["Code"] == "ModelError" and routed["OriginalStatusCode"] == 422
    assert f"{ENDPOINT}/{routes[CANCER].target_model}" in routed["OriginalMessage"]
    assert "not the model the deploy verified" in routed["OriginalMessage"]
    assert refusals[unnamed]["OriginalStatusCode"] == 400
    assert "names its model file's sha256" in refusals[unnamed]["OriginalMessage"]
    for response in refusals.values():
        text = json.dumps(response["Error"]) + response["OriginalMessage"]
        assert str(home) not in text and "mme-serve-" not in text and str(tmp_path) not in text
    assert not marker.exists()


# -- the serving container itself, as SageMaker drives it ---------------------------------------


@pytest.fixture(scope="module")
def verifying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("verify"), "--workers", "2", "--verify-target-model"
    ) as live:
        yield live


def invoke(server: Server, name: str, target: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "text/csv"}
    if target is not None:
        headers["X-Amzn-SageMaker-Target-Model"] = target
    return server.json("POST", f"/models/{name}/invoke", CANCER_ROW, headers=headers)


@pytest.mark.integration
def test_the_container_loads_only_what_the_target_model_names(
    verifying: Server, tmp_path: Path
) -> None:
    """SageMaker's order: POST /models with an opaque name, then invocations naming the target
    model. A model file is unpickled only once an invocation names its sha256."""
    marker = tmp_path / "unpickled"
    genuine = artifacts()["cancer-0"]
    sha = signature_sha256(genuine)
    assert sha is not None
    routed = naming.target_model(CANCER, 1, sha)
    load = {"model_name": "opaque-1", "url": str(crafted_archive(tmp_path, marker))}
    assert verifying.json("POST", "/models", load)[0] == 200
    assert verifying.json("GET", "/models/opaque-1")[1]["status"] == "verified on first invoke"

    status, body = invoke(verifying, "opaque-1", None)
    assert status == 400 and "model opaque-1 is served only to invocations" in body["message"]
    status, body = invoke(verifying, "opaque-1", routed)
    assert status == 422 and body["message"].startswith("cannot load model opaque-1: ")
    assert "not the model the deploy verified" in body["message"]
    assert "/" not in body["message"].split(": ", 1)[1]  # no path of the server's
    assert verifying.json("DELETE", "/models/opaque-1")[0] == 200
    assert not marker.exists()

    genuine_load = {"model_name": "opaque-2", "url": str(genuine)}
    assert verifying.json("POST", "/models", genuine_load)[0] == 200
    status, body = invoke(verifying, "opaque-2", routed)
    assert status == 200 and body["model_version"] == sha
    other = naming.target_model(CANCER, 2, hashlib.sha256(b"other").hexdigest())
    status, body = invoke(verifying, "opaque-2", other)
    assert status == 422 and "model opaque-2 has model sha256" in body["message"]
    assert verifying.json("DELETE", "/models/opaque-2")[0] == 200
