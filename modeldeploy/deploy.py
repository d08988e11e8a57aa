"""Approved models onto a stage's multi-model endpoint: the one deploy algorithm.

Used by the modeldeploy pipeline on AWS and by the local runtime alike; storage and registry come
in through `modeldeploy.interfaces`. For each dataset of a stage:

1. Decide the wanted package: the latest Approved version of the dataset's group (`deploy`), or
   the version live in the source stage, if it is still Approved (`promote`, after the manual
   gate, so prod gets exactly what dev smoke-tested).
2. Copy its artifact to a new versioned key under the stage's multi-model prefix, after checking
   the archive (readable, signature present, model checksum matching), and read the copy back to
   verify its sha256. A corrupt artifact never gets a route.
3. Switch the routing table once for the whole run: write the new revision, then replace the
   live table in one atomic put (the swap).
4. Delete keys no route references; the previous live artifact is kept for rollback as long as
   its package is still Approved.

Rejecting the live version makes the next run pick the latest remaining approved one (a
rollback); a group with no approved version is removed from routing with a log line saying so.
Running twice changes nothing the second time: the table is rewritten only when a route changed,
and an artifact already in place under its versioned key is not copied again. A failure for one
dataset (registry unreachable, corrupt artifact) leaves that dataset's route as it was and is
reported; the other datasets still deploy.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from container.errors import InputError
from modeldeploy import naming
from modeldeploy.artifacts import verify_archive
from modeldeploy.interfaces import ModelPackageRef, ModelRegistry, NoSuchObject, Storage
from modeldeploy.routing import Route, RoutingTable, RoutingTableError

log = logging.getLogger("modeldeploy")

Action = Literal["deployed", "rolled back", "unchanged", "removed", "not routed", "failed"]
ROUTING_CONTENT_TYPE = "application/json"


class DeployError(InputError):
    """A deploy run finished with datasets that could not be deployed."""


@dataclass(frozen=True)
class Change:
    dataset: str
    action: Action
    message: str
    route: Route | None = None


@dataclass
class DeployReport:
    stage: str
    revision: int
    table_written: bool
    changes: list[Change] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Change]:
        return [change for change in self.changes if change.action == "failed"]

    def raise_for_failures(self) -> None:
        if self.failures:
            raise DeployError(
                f"stage {self.stage}: "
                + "; ".join(f"{c.dataset}: {c.message}" for c in self.failures)
            )


@dataclass(frozen=True)
class Absent:
    """The dataset should serve nothing, and why."""

    reason: str


# What a dataset should serve: a package, nothing, or the error that keeps us from knowing.
Wanted = ModelPackageRef | Absent | Exception


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Deployer:
    def __init__(
        self,
        storage: Storage,
        registry: ModelRegistry,
        *,
        bucket: str,
        project: str,
        clock: Callable[[], str] = _now,
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.bucket = bucket
        self.project = project
        self.clock = clock

    # -- public operations ---------------------------------------------------------------------

    def read_table(self, stage: str) -> RoutingTable:
        uri = naming.routing_table_uri(self.bucket, stage)
        try:
            data = self.storage.read(uri)
        except NoSuchObject:
            return RoutingTable(stage)
        try:
            return RoutingTable.from_json(data, uri)
        except RoutingTableError as error:
            # Refuse rather than start over: a fresh table would drop every live route.
            raise DeployError(f"{error}; fix or remove it before deploying") from None

    def deploy(self, stage: str, datasets: Iterable[str]) -> DeployReport:
        """Route each dataset to the latest Approved version of its model package group."""
        naming.check_stage(stage)
        wanted: dict[str, Wanted] = {}
        for dataset in sorted(set(datasets)):
            group = naming.model_package_group_name(self.project, dataset)
            try:
                latest = self.registry.latest_approved(group)
            except InputError as error:
                wanted[dataset] = error
                continue
            wanted[dataset] = (
                latest if latest else Absent(f"group {group} has no approved model package")
            )
        return self._apply(stage, wanted)

    def promote(self, source_stage: str, target_stage: str) -> DeployReport:
        """Make the target stage serve exactly what the source stage serves (the manual gate)."""
        naming.check_stage(source_stage)
        naming.check_stage(target_stage)
        if source_stage == target_stage:
            raise InputError(f"cannot promote stage '{source_stage}' onto itself")
        source = self.read_table(source_stage)
        target = self.read_table(target_stage)
        wanted: dict[str, Wanted] = {}
        for dataset in sorted(set(source.routes) | set(target.routes)):
            route = source.routes.get(dataset)
            if route is None:
                wanted[dataset] = Absent(f"no model is live in {source_stage}")
                continue
            try:
                approved = self.registry.is_approved(route.model_package_arn)
            except InputError as error:
                wanted[dataset] = error
                continue
            group = naming.model_package_group_name(self.project, dataset)
            wanted[dataset] = (
                ModelPackageRef(
                    route.model_package_arn,
                    group,
                    route.model_package_version,
                    route.source_model_data_url,
                )
                if approved
                else InputError(
                    f"version {route.model_package_version} live in {source_stage} is no longer "
                    f"Approved; deploy {source_stage} again before promoting",
                    dataset=dataset,
                )
            )
        return self._apply(target_stage, wanted)

    # -- the algorithm -------------------------------------------------------------------------

    def _apply(self, stage: str, wanted: dict[str, Wanted]) -> DeployReport:
        table = self.read_table(stage)
        routes = dict(table.routes)
        changes = []
        for dataset, package in wanted.items():
            change = self._decide(stage, dataset, package, table.routes.get(dataset))
            changes.append(change)
            if change.action in ("deployed", "rolled back", "unchanged"):
                assert change.route is not None
                routes[dataset] = change.route
            elif change.action in ("removed", "not routed"):
                routes.pop(dataset, None)
            log_line = f"stage {stage}: dataset {dataset}: {change.message}"
            if change.action == "failed":
                log.error(log_line)
            else:
                log.info(log_line)

        report = DeployReport(stage, table.revision, table_written=False, changes=changes)
        if routes != table.routes:
            new_table = RoutingTable(stage, table.revision + 1, self.clock(), routes)
            data = new_table.to_json()
            # The revision first, then the swap: the live table only ever names artifacts
            # that are already in place and verified.
            revision_uri = naming.routing_revision_uri(self.bucket, stage, new_table.revision)
            self.storage.write(revision_uri, data, ROUTING_CONTENT_TYPE)
            self.storage.write(
                naming.routing_table_uri(self.bucket, stage), data, ROUTING_CONTENT_TYPE
            )
            report.revision, report.table_written = new_table.revision, True
            log.info("stage %s: routing table revision %d is live", stage, new_table.revision)

        failed = {change.dataset for change in report.failures}
        for dataset in wanted:
            if dataset not in failed:
                report.deleted += self._collect(stage, dataset, routes.get(dataset))
        return report

    def _decide(self, stage: str, dataset: str, package: Wanted, current: Route | None) -> Change:
        if isinstance(package, Exception):
            kept = f"; version {current.model_package_version} stays live" if current else ""
            return Change(dataset, "failed", f"{package}{kept}", current)
        if isinstance(package, Absent):
            if current is None:
                return Change(dataset, "not routed", package.reason)
            return Change(
                dataset,
                "removed",
                f"{package.reason}; removed from routing "
                f"(version {current.model_package_version} was live)",
            )
        try:
            if (
                current is not None
                and current.model_package_arn == package.arn
                and self.storage.exists(current.model_data_url)
            ):
                return Change(
                    dataset,
                    "unchanged",
                    f"version {package.version} is already live ({current.target_model})",
                    self._prune_previous(current),
                )
            route = self._place(stage, dataset, package, current)
        except InputError as error:
            kept = f"; version {current.model_package_version} stays live" if current else ""
            return Change(dataset, "failed", f"{error.describe()}{kept}", current)
        rolled_back = current is not None and package.version < current.model_package_version
        verb = "rolled back to" if rolled_back else "deployed"
        return Change(
            dataset,
            "rolled back" if rolled_back else "deployed",
            f"{verb} version {package.version} as {route.target_model}"
            + (f" (was version {current.model_package_version})" if current else ""),
            route,
        )

    def _place(
        self, stage: str, dataset: str, package: ModelPackageRef, current: Route | None
    ) -> Route:
        """Copy and verify the package's artifact under its versioned key; the new route."""
        with tempfile.TemporaryDirectory(prefix="modeldeploy-") as scratch:
            local = Path(scratch) / "model.tar.gz"
            try:
                self.storage.download(package.model_data_url, local)
            except NoSuchObject:
                raise InputError(
                    f"the artifact of version {package.version} is missing: "
                    f"{package.model_data_url}",
                    dataset=dataset,
                ) from None
            verified = verify_archive(local, package.model_data_url)
            target = naming.target_model(dataset, package.version, verified.sha256)
            uri = naming.s3_uri(self.bucket, naming.artifact_key(stage, target))
            existing = self.storage.sha256(uri)
            if existing is None:
                self.storage.upload(local, uri)
                existing = self.storage.sha256(uri)
                if existing != verified.sha256:
                    self.storage.delete(uri)
            if existing != verified.sha256:
                raise InputError(
                    f"the copy at {uri} has sha256 {existing} instead of {verified.sha256}",
                    dataset=dataset,
                )
        previous = None
        # Only a still-approved model may stay around for rollback.
        if (
            current is not None
            and current.model_package_arn != package.arn
            and self.registry.is_approved(current.model_package_arn)
        ):
            previous = current.without_previous()
        return Route(
            target_model=target,
            model_data_url=uri,
            model_package_arn=package.arn,
            model_package_version=package.version,
            sha256=verified.sha256,
            model_sha256=verified.model_sha256,
            source_model_data_url=package.model_data_url,
            deployed_at=self.clock(),
            previous=previous,
        )

    def _prune_previous(self, route: Route) -> Route:
        """Drop the rollback artifact once its package is no longer approved."""
        if route.previous is None or self.registry.is_approved(route.previous.model_package_arn):
            return route
        return route.without_previous()

    def _collect(self, stage: str, dataset: str, route: Route | None) -> list[str]:
        """Delete the dataset's artifacts that neither the live route nor its rollback names."""
        keep = set()
        if route is not None:
            keep.add(route.model_data_url)
            if route.previous is not None:
                keep.add(route.previous.model_data_url)
        prefix = naming.s3_uri(self.bucket, naming.artifact_key(stage, f"{dataset}/"))
        deleted = [uri for uri in self.storage.list(prefix) if uri not in keep]
        for uri in deleted:
            self.storage.delete(uri)
            log.info("stage %s: dataset %s: deleted unreferenced %s", stage, dataset, uri)
        return deleted
