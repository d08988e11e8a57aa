"""The deploy commands' backend on the local runtime, and the approval hook.

`LocalBackend` is `modeldeploy.backend.DeployBackend` over the state root (`local.deploy_store`):
its storage and registry, its deploy lock, the running local endpoint (or one started for the
command) and its SQLite inference log. `mme endpoint` hands it to modeldeploy's commands.

`on_model_package_event` is what EventBridge does on AWS: subscribe it to the registry,

    registry.subscribe(lambda event: on_model_package_event(event, home))

and approving (or rejecting) a version deploys that dataset to dev and smoke-tests it there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from container.errors import InputError
from local.deploy_store import deploy_lock, local_deployer
from local.endpoint import endpoint_url_for, local_invoker, smoke_locally
from modeldeploy import naming
from modeldeploy.deploy import Deployer, DeployReport
from modeldeploy.inference_log_sqlite import local_log_path, read_local
from modeldeploy.interfaces import Storage
from modeldeploy.invoker import Invoker
from modeldeploy.smoke import SmokeResult

if TYPE_CHECKING:
    from local.registry import StateChangeEvent
    from modeldeploy.drift_job import RecordReader

log = logging.getLogger("modeldeploy")


@dataclass(frozen=True)
class LocalBackend:
    """`modeldeploy.backend.DeployBackend` on the local runtime's state root `home`."""

    home: Path
    project: str = naming.DEFAULT_PROJECT_NAME
    bucket: str = ""

    def deployer(self) -> Deployer:
        return local_deployer(self.home, self.project)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One deploy at a time per home."""
        with deploy_lock(self.home):
            yield

    @contextmanager
    def invoker(self, stage: str, storage: Storage) -> Iterator[Invoker]:
        """Against the running local endpoint, or one started for the block."""
        with endpoint_url_for(self.home, self.project) as url:
            yield local_invoker(self.home, stage, url, self.project)

    def log_reader(self, stage: str, *, include_errors: bool = False) -> RecordReader:
        path = local_log_path(self.home)

        def read(dataset: str, since: float, until: float | None = None) -> Any:
            return read_local(path, stage, dataset, since, until, include_errors=include_errors)

        return read

    def known_datasets(self) -> list[str]:
        from modelbuild.datasets import default_registry

        return list(default_registry())


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
    results = smoke_locally(home, stage, [dataset], project)
    failed = [result for result in results if not result.ok]
    if failed:
        raise SmokeTestFailed(
            f"stage {stage}: smoke test failed: "
            + "; ".join(f"{r.dataset}: {r.message}" for r in failed)
        )
    return EventOutcome(dataset, report, results)
