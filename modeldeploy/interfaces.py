"""The two things deployment talks to: object storage and the model registry.

Each has an AWS implementation (`modeldeploy.aws`, boto3) and a local one (`local.deploy_store`,
the local runtime's S3 directory and SQLite registry); the deploy logic sees only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from container.errors import InputError, ProjectError, ServiceError


class NoSuchObject(InputError):
    """The object does not exist (S3 NoSuchKey, or no file in the local S3)."""


class StorageError(ProjectError):
    """Storage refused or failed a request: one of the two kinds below."""


class StorageRefused(StorageError, InputError):
    """Storage refused a request (permissions, a bucket or key that cannot be), the same way
    each time it is asked."""


class StorageUnavailable(StorageError, ServiceError):
    """Storage throttled or failed (5xx, a dropped connection, a timeout): retrying may work."""


class RegistryError(ProjectError):
    """The model registry could not answer; routing must stay as it is. One of the two kinds
    below."""


class RegistryRefused(RegistryError, InputError):
    """The model registry refused the request (access, validation, an unusable package)."""


class RegistryUnavailable(RegistryError, ServiceError):
    """The model registry throttled or failed; retrying may work."""


@dataclass(frozen=True)
class ModelPackageRef:
    arn: str
    group: str
    version: int
    model_data_url: str


class Storage(Protocol):
    def read(self, uri: str) -> bytes:
        """The object's bytes; NoSuchObject if absent."""
        ...

    def write(self, uri: str, data: bytes, content_type: str) -> None:
        """Replace the object in one atomic put (readers see the old or the new, never half)."""
        ...

    def download(self, uri: str, destination: Path) -> None:
        """Stream the object into a file; NoSuchObject if absent."""
        ...

    def upload(self, source: Path, uri: str) -> None: ...

    def sha256(self, uri: str) -> str | None:
        """The sha256 of the object's bytes as stored, read back; None if absent."""
        ...

    def exists(self, uri: str) -> bool: ...

    def list(self, prefix_uri: str) -> list[str]:
        """Every object URI under the prefix, sorted."""
        ...

    def delete(self, uri: str) -> None:
        """Delete the object; deleting an absent object is not an error."""
        ...


class ModelRegistry(Protocol):
    def latest_approved(self, group: str) -> ModelPackageRef | None:
        """The most recently created Approved version of the group, None if it has none."""
        ...

    def is_approved(self, arn: str) -> bool:
        """Whether the version exists and is Approved now."""
        ...

    def reject(self, arn: str, reason: str) -> None:
        """Set the version Rejected with the reason as its approval description."""
        ...

    def recorded_model_sha256(self, arn: str) -> str | None:
        """The model file's sha256 the pipeline recorded when it registered the version (its
        CustomerMetadataProperties, `naming.MODEL_SHA256_METADATA_KEY`); None if it has none."""
        ...
