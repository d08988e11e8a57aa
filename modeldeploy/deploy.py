"""Approved models onto a stage's multi-model endpoint: the one deploy algorithm.

Used by the modeldeploy pipeline on AWS and by the local runtime alike; storage and registry come
in through `modeldeploy.interfaces`. For each dataset of a stage:

1. Decide the wanted package: the latest Approved version of the dataset's group (`deploy`), or
   the version live in the source stage, if it is still Approved (`promote`, after the manual
   gate, so prod gets exactly what dev smoke-tested).
2. Copy its artifact to a new versioned key under the stage's multi-model prefix, after checking
   what can be known before serving it (`modeldeploy.artifacts`: a readable archive within the
   size limits, its model file against the sha256 the pipeline recorded in the registry when it
   registered the version, a schema for this dataset, the serving image's library versions),
   and read the copy back to verify its sha256. The key carries the model file's sha256
   (`naming.target_model`), which the serving container checks before it unpickles the model
   (`container.provenance`). An artifact the container would refuse never gets a route, and a
   route whose key does not carry its checksum (deployed before keys did) is placed again.
3. Switch the routing table once for the whole run: write the new revision, then replace the
   live table in one atomic put (the swap). Every target placed is marked as awaiting its smoke
   test.
4. Delete keys no route references; the previous live artifact is kept for rollback as long as
   its package is still Approved.

The smoke test runs after the deploy, as its own command (`modeldeploy.smoke.smoke_stage`), and
`conclude_smoke` applies its verdict with the same swap: a target awaiting its test that fails
it is rolled back to the route's previous version (or, with none, removed from routing; a
failed canary is dropped) and its version rejected in the registry, so no later deploy places
it again; a target that passes loses the mark. A failure that says the endpoint was unavailable
(503) rolls back without rejecting: the next deploy tries the version again.

Rejecting the live version makes the next run pick the latest remaining approved one (a
rollback); a group with no approved version is removed from routing with a log line saying so.
Canary mode (`deploy(..., canary_weight=w)` or `promote(..., canary_weight=w)`, per-model
canary, `modeldeploy.canary`): a newer version of a dataset whose live version is still approved
is placed as the route's canary (same copy and verification) instead of replacing it; a dataset
with nothing live, or whose live version was rejected, gets the new version live at once.
`conclude_canary` later promotes the canary or rolls it back with the same table swap.

Running twice changes nothing the second time: the table is rewritten only when a route changed,
and an artifact already in place under its versioned key is not copied again. A failure for one
dataset (registry unreachable, corrupt artifact) leaves that dataset's route as it was and is
reported; the other datasets still deploy.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from container.errors import InputError, ProjectError
from container.provenance import routed_model_sha256
from modeldeploy import naming
from modeldeploy.artifacts import (
    check_registered_checksum,
    check_servable,
    verify_archive,
)
from modeldeploy.conclusions import Conclusions
from modeldeploy.interfaces import ModelPackageRef, NoSuchObject
from modeldeploy.report import Action, Change, DeployError, DeployReport
from modeldeploy.routing import Route

# The report types are defined in modeldeploy.report; callers know them from here.
__all__ = ["Absent", "Action", "Change", "DeployError", "DeployReport", "Deployer", "Wanted"]

log = logging.getLogger("modeldeploy")


@dataclass(frozen=True)
class Absent:
    """The dataset should serve nothing, and why."""

    reason: str


# What a dataset should serve: a package, nothing, or the error that keeps us from knowing.
Wanted = ModelPackageRef | Absent | Exception


class Deployer(Conclusions):
    """Places approved versions on a stage (module doc); `Conclusions` applies verdicts."""

    # -- public operations ---------------------------------------------------------------------

    def deploy(
        self, stage: str, datasets: Iterable[str], *, canary_weight: float | None = None
    ) -> DeployReport:
        """Route each dataset to the latest Approved version of its model package group.

        With `canary_weight` (0 < w < 1) a newer version of a dataset that has a live one is
        placed as its canary, served that share of the requests, instead of replacing it.
        """
        naming.check_stage(stage)
        wanted: dict[str, Wanted] = {}
        for dataset in sorted(set(datasets)):
            group = naming.model_package_group_name(self.project, dataset)
            try:
                latest = self.registry.latest_approved(group)
            except ProjectError as error:
                wanted[dataset] = error
                continue
            wanted[dataset] = (
                latest if latest else Absent(f"group {group} has no approved model package")
            )
        return self._apply(stage, wanted, canary_weight)

    def promote(
        self, source_stage: str, target_stage: str, *, canary_weight: float | None = None
    ) -> DeployReport:
        """Make the target stage serve the versions live in the source stage (the manual gate);
        the source's canaries are not promoted.

        With `canary_weight`, as in `deploy`: a source version newer than the target's live one
        goes in as the target's canary beside it; where the target has nothing live, it goes
        live at once.
        """
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
            except ProjectError as error:
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
        return self._apply(target_stage, wanted, canary_weight)

    # -- the algorithm -------------------------------------------------------------------------

    def _apply(
        self, stage: str, wanted: dict[str, Wanted], canary_weight: float | None = None
    ) -> DeployReport:
        if canary_weight is not None and not 0 < canary_weight < 1:
            raise InputError(f"the canary weight must lie between 0 and 1, got {canary_weight}")
        table = self.read_table(stage)
        routes = dict(table.routes)
        changes = []
        for dataset, package in wanted.items():
            change = self._decide(stage, dataset, package, table.routes.get(dataset), canary_weight)
            changes.append(change)
            if change.action in ("deployed", "canary", "rolled back", "unchanged"):
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
        self._swap(table, routes, report)
        failed = {change.dataset for change in report.failures}
        for dataset in wanted:
            if dataset not in failed:
                report.deleted += self._collect(stage, dataset, routes.get(dataset))
        return report

    def _decide(
        self,
        stage: str,
        dataset: str,
        package: Wanted,
        current: Route | None,
        canary_weight: float | None = None,
    ) -> Change:
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
                and _verifiable(current)
                and self.storage.exists(current.model_data_url)
            ):
                if current.canary is not None:
                    # The live version is the one wanted (in deploy: its canary was rejected).
                    return Change(
                        dataset,
                        "rolled back",
                        f"canary version {current.canary.model_package_version} removed: "
                        f"version {package.version} is the one wanted and stays live",
                        self._prune_previous(current.without_canary()),
                    )
                awaiting = ", awaiting its smoke test" if current.awaiting_smoke_test else ""
                return Change(
                    dataset,
                    "unchanged",
                    f"version {package.version} is already live ({current.target_model}{awaiting})",
                    self._prune_previous(current),
                )
            if (
                canary_weight is not None
                and current is not None
                and self._holds_back(package, current)
            ):
                return self._decide_canary(stage, dataset, package, current, canary_weight)
            route = self._place(stage, dataset, package, current)
        except ProjectError as error:
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

    def _holds_back(self, package: ModelPackageRef, current: Route) -> bool:
        """In canary mode, whether the package waits as canary beside the live version: only a
        newer one, and only next to a live version still approved (a rejected one must go)."""
        return package.version > current.model_package_version and self.registry.is_approved(
            current.model_package_arn
        )

    def _decide_canary(
        self,
        stage: str,
        dataset: str,
        package: ModelPackageRef,
        current: Route,
        canary_weight: float,
    ) -> Change:
        """Place the package as the canary next to the live version (raises InputError)."""
        canary = current.canary
        if (
            canary is not None
            and canary.model_package_arn == package.arn
            and _verifiable(canary)
            and self.storage.exists(canary.model_data_url)
        ):
            return Change(
                dataset,
                "unchanged",
                f"version {package.version} is already canary ({canary.target_model}) next to "
                f"live version {current.model_package_version}",
                self._prune_previous(current),
            )
        placed = self._place(stage, dataset, package, None)
        route = replace(
            self._prune_previous(current),
            canary=placed.without_previous(),
            canary_weight=canary_weight,
        )
        return Change(
            dataset,
            "canary",
            f"version {package.version} placed as canary ({placed.target_model}, weight "
            f"{canary_weight:g}) next to live version {current.model_package_version}",
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
            check_servable(
                verified.signature, dataset, package.model_data_url, self.serving_versions
            )
            check_registered_checksum(
                verified.model_sha256,
                self.registry.recorded_model_sha256(package.arn),
                dataset,
                package.version,
                package.model_data_url,
            )
            target = naming.target_model(dataset, package.version, verified.model_sha256)
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
            awaiting_smoke_test=True,
        )

    def _prune_previous(self, route: Route) -> Route:
        """Drop the rollback artifact once its package is no longer approved."""
        if route.previous is None or self.registry.is_approved(route.previous.model_package_arn):
            return route
        return replace(route, previous=None)


def _verifiable(route: Route) -> bool:
    """Whether the serving container can verify the route's model: its key carries the model
    file's sha256 (routes placed before keys did must be placed again)."""
    return routed_model_sha256(route.target_model) == route.model_sha256
