"""The local runtime's stand-ins for what deployment talks to on AWS: storage, registry, lock.

The local state root (`local.home`: `--home`, `MME_HOME`, default `.mme/`) holds the local S3
and the registry; deployment adds `deploy.lock`, the invoker its inference log
`inference.sqlite`, and the endpoint keeps its model cache, its container's log and its address
under `endpoint/`. Every function takes the home as a parameter. The backend the deploy
commands use (`local.deploy_backend`) and the local endpoint (`local.endpoint`) build on these.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from container.checksum import sha256_file
from local.home import LocalHome
from local.registry import LocalModelRegistry
from local.registry import RegistryError as LocalRegistryError
from local.s3 import LocalS3
from modeldeploy import naming
from modeldeploy.artifacts import installed_versions
from modeldeploy.deploy import Deployer
from modeldeploy.inference_log import BackgroundLog
from modeldeploy.inference_log_sqlite import SQLiteSink, local_log_path
from modeldeploy.interfaces import ModelPackageRef, NoSuchObject, RegistryRefused

_ARN = re.compile(r"model-package/(?P<group>[^/]+)/(?P<version>[0-9]+)$")


def endpoint_dir(home: Path) -> Path:
    """The local endpoint's own state: its model cache and the serving container's log."""
    return home / "endpoint"


def endpoint_state_path(home: Path) -> Path:
    """Written by a running `endpoint serve`: where its endpoint and invoker listen."""
    return endpoint_dir(home) / "endpoint.json"


class LocalStorage:
    """`modeldeploy.interfaces.Storage` over the local S3 directory tree."""

    def __init__(self, s3: LocalS3) -> None:
        self.s3 = s3

    def _existing(self, uri: str) -> Path:
        path = self.s3.path(uri)
        if not path.is_file():
            raise NoSuchObject(f"no such object: {uri}")
        return path

    def read(self, uri: str) -> bytes:
        return self._existing(uri).read_bytes()

    def write(self, uri: str, data: bytes, content_type: str) -> None:
        self.s3.put_bytes(uri, data)

    def download(self, uri: str, destination: Path) -> None:
        shutil.copyfile(self._existing(uri), destination)

    def upload(self, source: Path, uri: str) -> None:
        self.s3.put_file(uri, source)

    def sha256(self, uri: str) -> str | None:
        path = self.s3.path(uri)
        return sha256_file(path) if path.is_file() else None

    def exists(self, uri: str) -> bool:
        return self.s3.exists(uri)

    def list(self, prefix_uri: str) -> list[str]:
        return list(self.s3.list(prefix_uri))

    def delete(self, uri: str) -> None:
        self.s3.delete(uri)


class LocalRegistry:
    """`modeldeploy.interfaces.ModelRegistry` over the local SQLite model registry."""

    def __init__(self, registry: LocalModelRegistry) -> None:
        self.registry = registry

    def latest_approved(self, group: str) -> ModelPackageRef | None:
        try:
            approved = self.registry.list_packages(group, "Approved", descending=True)
        except LocalRegistryError as error:
            raise RegistryRefused(f"cannot read model package group '{group}': {error}") from None
        if not approved:
            return None
        latest = approved[0]
        return ModelPackageRef(latest.arn, latest.group_name, latest.version, latest.model_data_url)

    def is_approved(self, arn: str) -> bool:
        match = _ARN.search(arn)
        if match is None:
            return False
        try:
            approved = self.registry.list_packages(match["group"], "Approved")
        except LocalRegistryError as error:
            raise RegistryRefused(f"cannot look up {arn}: {error}") from None
        return any(package.arn == arn for package in approved)

    def reject(self, arn: str, reason: str) -> None:
        match = _ARN.search(arn)
        if match is None:
            raise RegistryRefused(f"'{arn}' is not a model package ARN")
        try:
            self.registry.update_approval(match["group"], int(match["version"]), "Rejected", reason)
        except LocalRegistryError as error:
            raise RegistryRefused(f"cannot reject {arn}: {error}") from None

    def recorded_model_sha256(self, arn: str) -> str | None:
        match = _ARN.search(arn)
        if match is None:
            raise RegistryRefused(f"'{arn}' is not a model package ARN")
        try:
            package = self.registry.get(match["group"], int(match["version"]))
        except LocalRegistryError as error:
            raise RegistryRefused(f"cannot look up {arn}: {error}") from None
        return package.customer_metadata.get(naming.MODEL_SHA256_METADATA_KEY)


# How long a command that invoked the endpoint waits, on exit, for its last records.
EXIT_DRAIN_SECONDS = 5.0


@functools.cache
def _inference_log(path: Path) -> BackgroundLog:
    log_ = BackgroundLog(SQLiteSink(path))
    # The writer is a daemon thread: a short-lived command (invoke, smoke) would otherwise exit
    # with its records still queued.
    atexit.register(log_.drain, EXIT_DRAIN_SECONDS)
    return log_


def local_inference_log(home: Path) -> BackgroundLog:
    """The home's inference log (`<home>/inference.sqlite`): one writer per process and file,
    shared by every stage's invoker."""
    return _inference_log(local_log_path(home).resolve())


def local_storage(home: Path) -> LocalStorage:
    return LocalStorage(LocalHome(home).s3)


def local_deployer(home: Path, project: str = naming.DEFAULT_PROJECT_NAME) -> Deployer:
    return Deployer(
        local_storage(home),
        LocalRegistry(LocalHome(home).registry),
        bucket=naming.local_bucket(project),
        project=project,
        # The local serving container runs in this environment, with its libraries.
        serving_versions=installed_versions,
    )


@contextmanager
def deploy_lock(home: Path) -> Iterator[None]:
    """One deploy at a time per home: the routing table is read, changed and swapped whole."""
    path = home / "deploy.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
