"""Where modeldeploy's commands act: the protocol of a deploy backend, and its AWS implementation.

A command (`modeldeploy.cli`) needs a deployer (storage + registry), a lock around routing
changes, an invoker for a stage, the stage's inference log and the datasets it knows of. On AWS
those are S3, the SageMaker registry, the deployed invoker's endpoint and DynamoDB
(`AwsBackend`, here); on the local runtime they are the state root's directories and SQLite
files (`local.deploy_backend.LocalBackend`, which lives with the local runtime, above this
layer: modeldeploy ships as a seed repository without `local/`).

Commands find a `Backends` in click's context object: how to build a backend from the options
they were called with. The seed's entry point (`python -m modeldeploy.cli`) knows AWS only;
`mme endpoint` adds the local runtime and the dataset registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modeldeploy import naming
from modeldeploy.deploy import Deployer
from modeldeploy.interfaces import Storage
from modeldeploy.invoker import Invoker, TableMissing

if TYPE_CHECKING:
    # Type only: drift_job needs numpy, which the deploy commands do not install.
    from modeldeploy.drift_job import RecordReader


class DeployBackend(Protocol):
    """What a deploy command acts on."""

    @property
    def project(self) -> str: ...

    @property
    def bucket(self) -> str:
        """Where the stage's routing tables, models and drift reports live."""
        ...

    def deployer(self) -> Deployer:
        """The deploy logic over this backend's storage and model registry."""
        ...

    def locked(self) -> AbstractContextManager[None]:
        """Held while a command reads, changes and swaps a routing table."""
        ...

    def invoker(self, stage: str, storage: Storage) -> AbstractContextManager[Invoker]:
        """The invoker handler for a stage, in front of the stage's endpoint."""
        ...

    def log_reader(self, stage: str, *, include_errors: bool = False) -> RecordReader:
        """The stage's inference log as (dataset, since, until=None) -> records; answered calls
        only unless `include_errors`."""
        ...

    def known_datasets(self) -> list[str]:
        """The datasets a command acts on when none is named and $MME_DATASETS is unset."""
        ...


def _table_reader(storage: Storage, table_uri: str) -> Callable[[], bytes]:
    def read_table() -> bytes:
        if not storage.exists(table_uri):
            raise TableMissing(table_uri)
        return storage.read(table_uri)

    return read_table


@dataclass(frozen=True)
class AwsBackend:
    """The project's AWS account: the project bucket, the SageMaker registry, the stage's
    endpoint and its DynamoDB inference log, through boto3 (imported when used)."""

    project: str
    bucket: str
    datasets: Callable[[], list[str]] = list

    def deployer(self) -> Deployer:
        from modeldeploy.artifacts import pinned_versions
        from modeldeploy.aws import S3Storage, SageMakerRegistry

        return Deployer(
            S3Storage(),
            SageMakerRegistry(),
            bucket=self.bucket,
            project=self.project,
            # The image installs the versions pyproject.toml pins.
            serving_versions=pinned_versions(),
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        # The modeldeploy pipeline runs one execution per stage at a time.
        yield

    @contextmanager
    def invoker(self, stage: str, storage: Storage) -> Iterator[Invoker]:
        import boto3

        yield Invoker(
            runtime=boto3.client("sagemaker-runtime"),
            endpoint_name=naming.endpoint_name(self.project, stage),
            read_table=_table_reader(storage, naming.routing_table_uri(self.bucket, stage)),
            stage=stage,
        )

    def log_reader(self, stage: str, *, include_errors: bool = False) -> RecordReader:
        from modeldeploy.inference_log_dynamodb import dynamodb_client, read_dynamodb

        client, table = dynamodb_client(), naming.inference_log_table(self.project, stage)

        def read(dataset: str, since: float, until: float | None = None) -> Any:
            return read_dynamodb(
                client, table, dataset, since, until, include_errors=include_errors
            )

        return read

    def known_datasets(self) -> list[str]:
        return self.datasets()


# (home, project, bucket) -> the local runtime's backend; given by `mme endpoint`.
LocalFactory = Callable[[Path, str, str], DeployBackend]


@dataclass(frozen=True)
class Backends:
    """How a command builds its backend from its --home/--project-name/--aws/--bucket.

    `local` is None in the seed (it has no local runtime); `known_datasets` is the dataset
    registry where there is one (the seed has none: the template sets $MME_DATASETS)."""

    local: LocalFactory | None = None
    known_datasets: Callable[[], list[str]] = field(default=list)

    def build(self, home: Path, project: str, aws: bool, bucket: str | None) -> DeployBackend:
        import click

        naming.check_project_name(project)
        if aws:
            if not bucket:
                raise click.UsageError("--aws needs --bucket (or ARTIFACT_BUCKET)")
            return AwsBackend(project, naming.check_bucket(bucket), self.known_datasets)
        if self.local is None:
            raise click.UsageError(
                "this command acts on AWS here: pass --aws (or set MME_ON_AWS=true) and "
                "--bucket; the local runtime's commands are `mme endpoint ...`"
            )
        return self.local(home, project, bucket or naming.local_bucket(project))
