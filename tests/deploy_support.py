"""Helpers for the deploy, invoker and endpoint tests: real packed artifacts and two backends.

Artifacts are trained with the project's own training code (through `serving_support`) and
packed with `container.artifact.pack`, so deployment is tested on exactly what the pipeline
registers. A backend bundles a Deployer with the storage and registry it uses, behind the same
small API for the local runtime (LocalS3 + SQLite) and for AWS (moto S3 + SageMaker).
"""

from __future__ import annotations

import atexit
import functools
import io
import json
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from container.artifact import pack
from container.layout import MODEL_FILE, SIGNATURE_FILE
from modeldeploy import naming
from modeldeploy.deploy import Deployer
from modeldeploy.inference_log import InferenceRecord, LogStats
from modeldeploy.interfaces import Storage
from tests.serving_support import breast_cancer_frame, iris_frame, train_artifact

PROJECT = "mme"
REGION = "us-east-1"


@functools.cache
def artifacts() -> dict[str, Path]:
    """Packed model.tar.gz files: three different breast-cancer models and one iris model."""
    root = Path(tempfile.mkdtemp(prefix="deploy-artifacts-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    packed = {}
    cancer = breast_cancer_frame()
    for i in range(3):
        # Different rows give a different model file, so every version has its own bytes.
        frame = cancer.sample(frac=0.7, random_state=i)
        directory = train_artifact(
            root / f"cancer-{i}",
            frame,
            dataset="breast-cancer",
            target="target",
            family="logistic-regression",
        )
        packed[f"cancer-{i}"] = pack(directory, root / f"cancer-{i}.tar.gz")
    iris = train_artifact(
        root / "iris", iris_frame(), dataset="iris", target="target", family="logistic-regression"
    )
    packed["iris"] = pack(iris, root / "iris.tar.gz")
    packed["corrupt"] = corrupt_copy(packed["cancer-0"], root / "corrupt.tar.gz")
    truncated = root / "truncated.tar.gz"
    truncated.write_bytes(packed["cancer-1"].read_bytes()[:200])
    packed["truncated"] = truncated
    return packed


def corrupt_copy(archive: Path, destination: Path) -> Path:
    """The same archive with one byte of the model file changed: its checksum no longer matches."""
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: (m, tar.extractfile(m).read()) for m in tar.getmembers()}  # type: ignore[union-attr]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in (MODEL_FILE, SIGNATURE_FILE):
            info, data = members[name]
            if name == MODEL_FILE:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    destination.write_bytes(buffer.getvalue())
    return destination


# `register(..., model_sha256=FROM_SIGNATURE)`: record what the pipeline's register step records,
# the model checksum in the archive's signature.json.
FROM_SIGNATURE = "from-signature"


def signature_sha256(archive: Path) -> str | None:
    """The model_sha256 the archive's signature.json carries; None if it cannot be read."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            stream = tar.extractfile(SIGNATURE_FILE)
            return str(json.loads(stream.read())["model_sha256"])  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError, KeyError, ValueError, zlib.error):
        return None


def _metadata(archive: Path, model_sha256: str | None) -> dict[str, str]:
    """The version's CustomerMetadataProperties, as the pipeline's register step writes them."""
    if model_sha256 == FROM_SIGNATURE:
        model_sha256 = signature_sha256(archive)
    return {} if model_sha256 is None else {naming.MODEL_SHA256_METADATA_KEY: model_sha256}


class Backend(Protocol):
    deployer: Deployer
    storage: Storage
    bucket: str

    def register(
        self,
        dataset: str,
        artifact: Path,
        status: str = "Approved",
        *,
        model_sha256: str | None = FROM_SIGNATURE,
    ) -> int: ...

    def set_status(self, dataset: str, version: int, status: str) -> None: ...

    def objects(self) -> dict[str, bytes]: ...


@dataclass
class LocalBackend:
    home: Path
    deployer: Deployer
    storage: Storage
    bucket: str
    registry: Any

    def register(
        self,
        dataset: str,
        artifact: Path,
        status: str = "Approved",
        *,
        model_sha256: str | None = FROM_SIGNATURE,
    ) -> int:
        group = naming.model_package_group_name(PROJECT, dataset)
        uri = f"s3://{self.bucket}/pipelines/{dataset}/{len(self.objects())}/model.tar.gz"
        self.storage.upload(artifact, uri)
        return self.registry.register(
            group,
            uri,
            approval_status=status,
            customer_metadata=_metadata(artifact, model_sha256),
        ).version

    def set_status(self, dataset: str, version: int, status: str) -> None:
        self.registry.update_approval(
            naming.model_package_group_name(PROJECT, dataset), version, status
        )

    def objects(self) -> dict[str, bytes]:
        root = self.home / "s3"
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }


def local_backend(home: Path) -> LocalBackend:
    from local.deploy_store import local_deployer
    from local.registry import LocalModelRegistry

    deployer = local_deployer(home, PROJECT)
    return LocalBackend(
        home,
        deployer,
        deployer.storage,
        deployer.bucket,
        LocalModelRegistry(home / "registry.sqlite"),
    )


@dataclass
class AwsBackend:
    deployer: Deployer
    storage: Storage
    bucket: str
    s3: Any
    sagemaker: Any
    arns: dict[tuple[str, int], str] = field(default_factory=dict)

    def register(
        self,
        dataset: str,
        artifact: Path,
        status: str = "Approved",
        *,
        model_sha256: str | None = FROM_SIGNATURE,
    ) -> int:
        group = naming.model_package_group_name(PROJECT, dataset)
        existing = {
            g["ModelPackageGroupName"]
            for g in self.sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
        }
        if group not in existing:
            self.sagemaker.create_model_package_group(ModelPackageGroupName=group)
        key = f"pipelines/{dataset}/{len(self.objects())}/model.tar.gz"
        self.s3.upload_file(str(artifact), self.bucket, key)
        metadata = _metadata(artifact, model_sha256)
        arn = self.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mme:latest",
                        "ModelDataUrl": f"s3://{self.bucket}/{key}",
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            # CreateModelPackage refuses an empty map (CustomerMetadataMap has min 1).
            **({"CustomerMetadataProperties": metadata} if metadata else {}),
        )["ModelPackageArn"]
        version = int(arn.rsplit("/", 1)[1])
        self.arns[dataset, version] = arn
        return version

    def set_status(self, dataset: str, version: int, status: str) -> None:
        self.sagemaker.update_model_package(
            ModelPackageArn=self.arns[dataset, version], ModelApprovalStatus=status
        )

    def objects(self) -> dict[str, bytes]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {
            f"{self.bucket}/{item['Key']}": self.s3.get_object(Bucket=self.bucket, Key=item["Key"])[
                "Body"
            ].read()
            for item in listing
        }


@contextmanager
def aws_backend() -> Iterator[AwsBackend]:
    import boto3
    from moto import mock_aws

    from modeldeploy.aws import S3Storage, SageMakerRegistry

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        bucket = "sagemaker-project-p-abc123"
        s3.create_bucket(Bucket=bucket)
        storage = S3Storage(s3)
        deployer = Deployer(storage, SageMakerRegistry(sagemaker), bucket=bucket, project=PROJECT)
        yield AwsBackend(deployer, storage, bucket, s3, sagemaker)


def offline_aws(monkeypatch: Any) -> None:
    """Fake credentials and a socket guard: a test that tries to leave loopback fails loudly."""
    import socket

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test tried to reach the network: {address}")
        return connect(self, address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded)


class ListLog:
    """An inference log in memory: what the invoker recorded, in order."""

    def __init__(self) -> None:
        self.records: list[InferenceRecord] = []

    def record(self, entry: InferenceRecord) -> None:
        self.records.append(entry)

    def stats(self) -> LogStats:
        return LogStats(len(self.records), 0, 0)
