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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from container.errors import InputError
from container.provenance import routed_model_sha256
from modeldeploy import naming
from modeldeploy.artifacts import (
    ServingVersions,
    check_registered_checksum,
    check_servable,
    verify_archive,
)
from modeldeploy.interfaces import ModelPackageRef, ModelRegistry, NoSuchObject, Storage
from modeldeploy.routing import Route, RoutingTable, RoutingTableError

if TYPE_CHECKING:
    from modeldeploy.canary import Decision
    from modeldeploy.smoke import SmokeResult

log = logging.getLogger("modeldeploy")

Action = Literal[
    "deployed",
    "canary",
    "promoted",
    "rolled back",
    "verified",
    "unchanged",
    "removed",
    "not routed",
    "failed",
]
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
        serving_versions: ServingVersions | None = None,
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.bucket = bucket
        self.project = project
        self.clock = clock
        # The serving image's library versions; None: not known here, not checked before the
        # swap (the container still refuses a mismatch, and the smoke test rolls it back).
        self.serving_versions = serving_versions

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
            except InputError as error:
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
        return self._apply(target_stage, wanted, canary_weight)

    # -- the algorithm -------------------------------------------------------------------------

    def conclude_canary(self, stage: str, dataset: str, decision: Decision) -> DeployReport:
        """Apply a canary decision: promote (the canary goes live, the old live version becomes
        the rollback artifact), roll back (the canary is dropped and its artifact deleted) or
        wait. A rolled-back canary's version is rejected in the registry after the swap.
        Without a canary, or when the canary is no longer the one decided on, nothing changes,
        so running it again is harmless."""
        naming.check_stage(stage)
        table = self.read_table(stage)
        routes = dict(table.routes)
        current = routes.get(dataset)
        canary = current.canary if current else None
        rejected: str | None = None
        if current is None or canary is None:
            change = Change(dataset, "unchanged", "no canary", current)
        elif decision.target_model and decision.target_model != canary.target_model:
            change = Change(
                dataset,
                "unchanged",
                f"the canary is now {canary.target_model}, not {decision.target_model} "
                "as evaluated; evaluate again",
                current,
            )
        elif decision.action == "promote":
            previous = (
                current.without_previous()
                if self.registry.is_approved(current.model_package_arn)
                else None
            )
            route = replace(canary, previous=previous, canary=None, canary_weight=0.0)
            change = Change(
                dataset,
                "promoted",
                f"canary version {canary.model_package_version} promoted to live "
                f"(was version {current.model_package_version}): {decision.reason}",
                route,
            )
        elif decision.action == "rollback":
            rejected = canary.model_package_arn
            change = Change(
                dataset,
                "rolled back",
                f"canary version {canary.model_package_version} rolled back; version "
                f"{current.model_package_version} stays live: {decision.reason}",
                current.without_canary(),
            )
        else:
            change = Change(
                dataset,
                "unchanged",
                f"canary version {canary.model_package_version} stays canary: {decision.reason}",
                current,
            )
        log.info("stage %s: dataset %s: %s", stage, dataset, change.message)
        if change.route is not None:
            routes[dataset] = change.route
        report = DeployReport(stage, table.revision, table_written=False, changes=[change])
        self._swap(table, routes, report)
        report.deleted += self._collect(stage, dataset, routes.get(dataset))
        if rejected is not None:
            # Still Approved and newer, the version would come back as canary on the next
            # deploy; rejected, the registry says why, and every stage follows (on AWS the
            # rejection starts the modeldeploy pipeline, as a person's rejection would).
            self.registry.reject(
                rejected,
                f"rolled back by the {stage} canary judgement: {decision.reason}",
            )
        return report

    def conclude_smoke(self, stage: str, results: Iterable[SmokeResult]) -> DeployReport:
        """Apply a smoke test's verdicts in one swap (module doc): roll back what failed while
        awaiting its test, clear the mark of what passed. A verdict about a target that is no
        longer routed (the table moved on since the test) is not applied. The rolled-back
        versions are rejected after the swap, unless the endpoint was only unavailable."""
        naming.check_stage(stage)
        table = self.read_table(stage)
        routes = dict(table.routes)
        changes: list[Change] = []
        rejections: list[tuple[int, str, str]] = []  # (change index, version ARN, reason)
        for result in results:
            current = routes.get(result.dataset)
            if current is None or not result.checks:
                continue
            change, rejected = self._judge_smoke(stage, result, current)
            rejections += [(len(changes), arn, reason) for arn, reason in rejected]
            changes.append(change)
            if change.route is None:
                routes.pop(result.dataset)
            else:
                routes[result.dataset] = change.route
            log_line = f"stage {stage}: dataset {result.dataset}: {change.message}"
            (log.error if change.action in ("rolled back", "removed") else log.info)(log_line)
        report = DeployReport(stage, table.revision, table_written=False, changes=changes)
        self._swap(table, routes, report)
        for change in changes:
            report.deleted += self._collect(stage, change.dataset, routes.get(change.dataset))
        for index, arn, reason in rejections:
            try:
                self.registry.reject(arn, reason)
            except InputError as error:
                # The route is already rolled back; without the rejection the next deploy
                # places the version again and its smoke test rolls it back again.
                log.error("stage %s: %s", stage, error.describe())
                change = report.changes[index]
                report.changes[index] = replace(
                    change, message=f"{change.message} (rejecting it failed: {error.describe()})"
                )
        return report

    def _judge_smoke(
        self, stage: str, result: SmokeResult, current: Route
    ) -> tuple[Change, list[tuple[str, str]]]:
        """One dataset's new route after its smoke test (None: removed), and the versions to
        reject with the reason."""
        route: Route | None = current
        notes: list[str] = []
        rejected: list[tuple[str, str]] = []
        action: Action = "unchanged"

        def failed(target: Route, role: str, message: str, transient: bool) -> str:
            if transient:
                return (
                    f"{role} version {target.model_package_version} failed its smoke test "
                    f"({message}); not rejected, since the endpoint was unavailable: the next "
                    "deploy tries it again"
                )
            rejected.append(
                (
                    target.model_package_arn,
                    f"failed its smoke test in {stage} and was rolled back: {message}",
                )
            )
            return (
                f"{role} version {target.model_package_version} failed its smoke test "
                f"({message}) and is rejected"
            )

        for check in result.checks:
            target = current.canary if check.role == "canary" else current
            if target is None or target.target_model != check.target_model:
                continue  # the table moved on since the test
            if check.ok:
                if target.awaiting_smoke_test:
                    action = "verified" if action == "unchanged" else action
                    notes.append(
                        f"{check.role} version {target.model_package_version} passed its smoke test"
                    )
                    if check.role == "canary" and route is not None and route.canary is not None:
                        route = replace(route, canary=replace(target, awaiting_smoke_test=False))
                    elif check.role == "live" and route is not None:
                        route = replace(route, awaiting_smoke_test=False)
                continue
            if not target.awaiting_smoke_test:
                notes.append(
                    f"{check.role} version {target.model_package_version} failed its smoke "
                    f"test ({check.message}), but passed one before: it stays"
                )
                continue
            notes.append(failed(target, check.role, check.message, check.transient))
            if check.role == "canary":
                action = "rolled back"
                route = route.without_canary() if route is not None else None
                continue
            previous = current.previous
            if previous is not None and self.storage.exists(previous.model_data_url):
                action = "rolled back"
                kept = route.canary if route is not None else None
                route = replace(
                    previous, canary=kept, canary_weight=route.canary_weight if kept else 0.0
                )
                notes.append(f"rolled back to version {previous.model_package_version}")
            else:
                action, route = "removed", None
                notes.append("removed from routing: there is no earlier version to go back to")
        return Change(
            result.dataset, action, "; ".join(notes) or "nothing to apply", route
        ), rejected

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

    def _swap(self, table: RoutingTable, routes: dict[str, Route], report: DeployReport) -> None:
        """Write a new revision and swap it live, if any route changed."""
        stage = table.stage
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

    def _collect(self, stage: str, dataset: str, route: Route | None) -> list[str]:
        """Delete the dataset's artifacts that neither the live route, its rollback nor its
        canary names."""
        keep = set()
        if route is not None:
            keep.add(route.model_data_url)
            if route.previous is not None:
                keep.add(route.previous.model_data_url)
            if route.canary is not None:
                keep.add(route.canary.model_data_url)
        prefix = naming.s3_uri(self.bucket, naming.artifact_key(stage, f"{dataset}/"))
        deleted = [uri for uri in self.storage.list(prefix) if uri not in keep]
        for uri in deleted:
            self.storage.delete(uri)
            log.info("stage %s: dataset %s: deleted unreferenced %s", stage, dataset, uri)
        return deleted


def _verifiable(route: Route) -> bool:
    """Whether the serving container can verify the route's model: its key carries the model
    file's sha256 (routes placed before keys did must be placed again)."""
    return routed_model_sha256(route.target_model) == route.model_sha256
