"""A stage's routing table as deployment reads, swaps and cleans up after it: the base of the
deploy logic (`modeldeploy.deploy.Deployer`, module doc there).

Reading a missing table gives an empty one; a swap writes the new revision first and then
replaces the live table in one atomic put, only when a route changed; collecting deletes the
artifacts of a dataset that no route (live, rollback or canary) names any more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from modeldeploy import naming
from modeldeploy.artifacts import ServingVersions
from modeldeploy.interfaces import ModelRegistry, NoSuchObject, Storage
from modeldeploy.report import DeployError, DeployReport
from modeldeploy.routing import Route, RoutingTable, RoutingTableError

log = logging.getLogger("modeldeploy")

ROUTING_CONTENT_TYPE = "application/json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StageTables:
    """Storage and registry, and the routing table operations every deploy step shares."""

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
