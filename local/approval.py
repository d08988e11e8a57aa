"""Approving and rejecting model versions on the local registry.

What `mme approve`/`mme reject` and the local web view (`mme ui`) share, so a button and a
command go through the same code: the name a user typed is resolved to a model package group
(a dataset name or a group name; a typo is refused with the closest dataset), the registry's
approval status changes, and, like EventBridge's rule on AWS, the change deploys to dev and
smoke-tests it. What the deployment reports goes to a `say` callback (the console, a web page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from container.errors import InputError
from modelbuild import naming

if TYPE_CHECKING:
    from local.home import LocalHome
    from local.registry import ApprovalStatus, ModelPackage, StateChangeEvent

# Receives one line (rich markup escaped by the caller's renderer, not here) per deploy change.
Say = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    """One line of what an approval's dev deployment did (for the caller to render)."""

    text: str
    ok: bool = True


@dataclass(frozen=True)
class Decision:
    package: ModelPackage
    before: str

    @property
    def changed(self) -> bool:
        return self.before != self.package.approval_status


def group_of(home: LocalHome, project: str, dataset_or_group: str) -> str:
    """A model package group from a dataset name (the usual) or a group name; a name that is
    neither is refused with the closest dataset, so a typo is named instead of quietly
    listing an empty group."""
    from modelbuild.datasets import default_registry
    from modelbuild.did_you_mean import unknown
    from modeldeploy.naming import dataset_of_group

    groups = home.registry.list_groups()
    if dataset_or_group in groups:
        return dataset_or_group
    with_models = {d for group in groups if (d := dataset_of_group(project, group))}
    known = set(default_registry()) | with_models
    if dataset_or_group not in known:
        raise unknown("dataset", dataset_or_group, known, "registered or with models")
    return naming.model_package_group_name(project, dataset_or_group)


def dataset_of(home: LocalHome, project: str, dataset_or_group: str) -> str:
    """The dataset a name means: itself, or the dataset of the project's group so named."""
    from modeldeploy.naming import dataset_of_group

    group = group_of(home, project, dataset_or_group)
    return dataset_of_group(project, group) or dataset_or_group


def deploy_on_approval(
    home: LocalHome,
    project: str,
    report: Callable[[Outcome], None],
    canary: bool = False,
) -> Callable[[StateChangeEvent], None]:
    """What EventBridge's rule starts on AWS: deploy the event's dataset to dev, smoke-test it;
    with `canary`, a newer version goes in as dev's canary with dev's Canary.Weight."""
    from local.deploy_backend import on_model_package_event
    from modeldeploy import naming as deploy_naming
    from modeldeploy.canary import load_policy

    stage = deploy_naming.STAGES[0]
    # Read before the registry changes: a broken stage config must not leave an approval
    # recorded whose deployment never ran.
    weight = load_policy(stage).weight if canary else None

    def hook(event: StateChangeEvent) -> None:
        try:
            outcome = on_model_package_event(event, home.root, project, stage, canary_weight=weight)
        except InputError as error:
            raise InputError(
                f"{event.detail['ModelPackageArn']} is now {event.approval_status}, but the dev "
                f"deployment it triggers failed: {error.describe()}"
            ) from None
        if outcome is None:
            return
        for change in outcome.report.changes:
            report(Outcome(f"dev: {change.dataset} {change.action}: {change.message}"))
        for result in outcome.smoke:
            verdict = "ok" if result.ok else "FAILED"
            report(
                Outcome(
                    f"dev smoke test {result.dataset}: {verdict} {result.message}", ok=result.ok
                )
            )

    return hook


def decide(
    home: LocalHome,
    project: str,
    target: str,
    version: int | None,
    status: ApprovalStatus,
    note: str,
    *,
    deploy: bool,
    report: Callable[[Outcome], None],
    canary: bool = False,
) -> Decision:
    """Set VERSION (default: the newest) of TARGET's group to STATUS; with `deploy`, the change
    deploys to dev and is smoke-tested before this returns."""
    if canary and not deploy:
        raise InputError("--canary deploys to dev; it cannot go with --no-deploy")
    from local.registry import LocalModelRegistry

    # A registry of its own: the deploy hook is subscribed for this one decision, not for every
    # later change made through `home.registry` (a long-running `mme ui` decides many times).
    registry = LocalModelRegistry(home.registry_path, busy_timeout=home.registry_timeout)
    if deploy:
        registry.subscribe(deploy_on_approval(home, project, report, canary))
    group = group_of(home, project, target)
    if version is None:
        packages = registry.list_packages(group)
        if not packages:
            raise InputError(f"model package group '{group}' has no versions")
        version = packages[0].version
    before = registry.get(group, version).approval_status
    package = registry.update_approval(group, version, status, note)
    return Decision(package, before)
