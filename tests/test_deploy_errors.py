"""An AWS failure is told apart once: an outage (throttling, 5xx, a dropped connection) is a
ServiceError the command line exits with its own code and a hint to retry; a refusal (access
denied, validation, not found) is an InputError, one line and exit 1 as always."""

from __future__ import annotations

from pathlib import Path

import boto3
import click
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from click.testing import CliRunner

from container.errors import InputError, ServiceError
from modelbuild.cli_common import SERVICE_EXIT_CODE, ProjectGroup
from modeldeploy.aws import S3Storage, SageMakerRegistry, is_outage
from modeldeploy.interfaces import (
    RegistryRefused,
    RegistryUnavailable,
    StorageRefused,
    StorageUnavailable,
)
from tests.deploy_support import offline_aws

URI = "s3://bucket/dev/routing/live.json"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> object:
    offline_aws(monkeypatch)
    return boto3.client("s3", region_name="us-east-1")


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("SlowDown", 503, StorageUnavailable),
        ("InternalError", 500, StorageUnavailable),
        ("ThrottlingException", 400, StorageUnavailable),
        ("AccessDenied", 403, StorageRefused),
        ("InvalidBucketName", 400, StorageRefused),
    ],
)
def test_s3_failures_are_outages_or_refusals(
    s3: object, code: str, status: int, kind: type
) -> None:
    with Stubber(s3) as stub:  # type: ignore[arg-type]
        stub.add_client_error("get_object", code, http_status_code=status)
        with pytest.raises(kind, match=f"cannot read {URI}"):
            S3Storage(s3).read(URI)


def test_connection_failures_are_outages() -> None:
    assert is_outage(EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"))
    assert is_outage(ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"))


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ThrottlingException", 400, RegistryUnavailable),
        ("AccessDeniedException", 400, RegistryRefused),
    ],
)
def test_registry_failures_are_outages_or_refusals(
    monkeypatch: pytest.MonkeyPatch, code: str, status: int, kind: type
) -> None:
    offline_aws(monkeypatch)
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("list_model_packages", code, http_status_code=status)
        with pytest.raises(kind, match="cannot read model package group 'mme-wine'"):
            SageMakerRegistry(client).latest_approved("mme-wine")


def test_the_root_group_maps_each_kind_once(tmp_path: Path) -> None:
    @click.group(cls=ProjectGroup)
    def root() -> None:
        pass

    @root.command()
    @click.argument("kind")
    def fail(kind: str) -> None:
        if kind == "input":
            raise InputError("bad row", dataset="wine", file=tmp_path / "rows.csv")
        raise ServiceError("S3 answered 503 SlowDown")

    refused = CliRunner().invoke(root, ["fail", "input"])
    assert refused.exit_code == 1
    assert refused.output == f"Error: dataset 'wine', file '{tmp_path / 'rows.csv'}': bad row\n"

    outage = CliRunner().invoke(root, ["fail", "service"])
    assert outage.exit_code == SERVICE_EXIT_CODE != 1
    assert "S3 answered 503 SlowDown" in outage.output and "retrying may help" in outage.output
    assert "Traceback" not in outage.output


def test_each_kind_is_an_input_error_or_a_service_error_never_both() -> None:
    for refused, outage in (
        (StorageRefused, StorageUnavailable),
        (RegistryRefused, RegistryUnavailable),
    ):
        assert issubclass(refused, InputError) and not issubclass(refused, ServiceError)
        assert issubclass(outage, ServiceError) and not issubclass(outage, InputError)
