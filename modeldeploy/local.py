"""The deploy side on the local runtime: storage, registry, locking and the approval hook.

The local state root (`local.home`: `--home`, `MME_HOME`, default `.mme/`) holds the local S3
and the registry; deployment adds `deploy.lock`, the invoker its inference log
`inference.sqlite`, and the endpoint keeps its model cache, its container's log and its address
under `endpoint/`. Every function takes the home as a parameter.

`on_model_package_event` is what EventBridge does on AWS: subscribe it to the registry,

    registry.subscribe(lambda event: on_model_package_event(event, home))

and approving (or rejecting) a version deploys that dataset to dev and smoke-tests it there.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from container.checksum import sha256_file
from container.errors import InputError
from local.home import LocalHome
from local.registry import LocalModelRegistry, StateChangeEvent
from local.registry import RegistryError as LocalRegistryError
from local.s3 import LocalS3
from modeldeploy import naming
from modeldeploy.artifacts import installed_versions
from modeldeploy.deploy import Deployer, DeployReport
from modeldeploy.inference_log import BackgroundLog, SQLiteSink, local_log_path
from modeldeploy.interfaces import ModelPackageRef, NoSuchObject, RegistryError
from modeldeploy.smoke import SmokeResult

log = logging.getLogger("modeldeploy")

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
            raise RegistryError(f"cannot read model package group '{group}': {error}") from None
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
            raise RegistryError(f"cannot look up {arn}: {error}") from None
        return any(package.arn == arn for package in approved)

    def reject(self, arn: str, reason: str) -> None:
        match = _ARN.search(arn)
        if match is None:
            raise RegistryError(f"'{arn}' is not a model package ARN")
        try:
            self.registry.update_approval(match["group"], int(match["version"]), "Rejected", reason)
        except LocalRegistryError as error:
            raise RegistryError(f"cannot reject {arn}: {error}") from None

    def recorded_model_sha256(self, arn: str) -> str | None:
        match = _ARN.search(arn)
        if match is None:
            raise RegistryError(f"'{arn}' is not a model package ARN")
        try:
            package = self.registry.get(match["group"], int(match["version"]))
        except LocalRegistryError as error:
            raise RegistryError(f"cannot look up {arn}: {error}") from None
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


def deploy_stage(
    home: Path,
    stage: str,
    datasets: list[str],
    project: str = naming.DEFAULT_PROJECT_NAME,
    canary_weight: float | None = None,
) -> DeployReport:
    with deploy_lock(home):
        return local_deployer(home, project).deploy(stage, datasets, canary_weight=canary_weight)


def promote(
    home: Path,
    source_stage: str = naming.STAGES[0],
    target_stage: str = naming.STAGES[-1],
    project: str = naming.DEFAULT_PROJECT_NAME,
) -> DeployReport:
    with deploy_lock(home):
        return local_deployer(home, project).promote(source_stage, target_stage)


@dataclass(frozen=True)
class EventOutcome:
    dataset: str
    report: DeployReport
    smoke: list[SmokeResult]


class SmokeTestFailed(InputError):
    """The deployment went live but its smoke test failed; it was rolled back."""


def on_model_package_event(
    event: StateChangeEvent,
    home: Path,
    project: str = naming.DEFAULT_PROJECT_NAME,
    stage: str = naming.STAGES[0],
    canary_weight: float | None = None,
) -> EventOutcome | None:
    """EventBridge's rule and the modeldeploy pipeline's first stages, for one registry event.

    Like the rule, a PendingManualApproval event and a group outside the project are ignored.
    Otherwise the event's dataset is deployed to `stage` (dev; with `canary_weight`, in canary
    mode, as `Deployer.deploy`) and smoke-tested there, on the running local endpoint or, if none
    runs, on one started for the test. Raises the deploy's or the smoke test's failure, naming
    the dataset; a version that fails its smoke test has been rolled back and rejected by then.
    """
    if event.approval_status == "PendingManualApproval":
        return None
    dataset = naming.dataset_of_group(project, event.group_name)
    if dataset is None:
        log.info("ignoring %s: not a model package group of project %s", event.group_name, project)
        return None
    report = deploy_stage(home, stage, [dataset], project, canary_weight)
    report.raise_for_failures()
    if dataset not in local_deployer(home, project).read_table(stage).routes:
        return EventOutcome(dataset, report, [])
    from local.endpoint import smoke_locally  # the endpoint pulls in the HTTP machinery

    results = smoke_locally(home, stage, [dataset], project)
    failed = [result for result in results if not result.ok]
    if failed:
        raise SmokeTestFailed(
            f"stage {stage}: smoke test failed: "
            + "; ".join(f"{r.dataset}: {r.message}" for r in failed)
        )
    return EventOutcome(dataset, report, results)
