"""Applying a verdict to a stage's routes: a canary judgement (promote, roll back, wait) or a
smoke test's results (roll back or remove what failed while awaiting its test, clear the mark of
what passed), each in one table swap, with the rolled-back versions rejected after it
(`modeldeploy.deploy` module doc)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from container.errors import ProjectError
from modeldeploy import naming
from modeldeploy.report import Action, Change, DeployReport
from modeldeploy.routing import Route
from modeldeploy.stage_tables import StageTables
from modeldeploy.verdicts import Decision, SmokeResult

log = logging.getLogger("modeldeploy")


class Conclusions(StageTables):
    """The verdicts' side of the deploy logic (`Deployer` places, this concludes)."""

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
            except ProjectError as error:
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
