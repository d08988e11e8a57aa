"""The smoke test of a deployed stage: one valid row per routed dataset, through the invoker.

The row is built from the deployed artifact's own signature: for a numeric feature the median of
the training data (the middle decile edge of its baseline, else its mean), for a categorical one
its most frequent category. The answer must be a 200 holding one prediction whose label is one
of the model's classes, probabilities that sum to one, and the model version the routing table
says is live, both the package version and the checksum of the model file. A dataset with a
canary is tested twice, the invoker's weighted choice pinned once to each side, and passes only
when the live and the canary version both answer as their own artifacts say.

Its requests are marked as smoke tests (`PURPOSE_SMOKE`): the inference log keeps them, but
drift and canary judgements leave them out, since a training-like row says nothing about traffic.

`smoke_stage` is what the pipeline's smoke command runs after a deploy: the test, then its
verdict applied to the routing table (`Deployer.conclude_smoke`): a target placed by the deploy
that fails is rolled back to the previous version and rejected, and one that passes is marked
as tested.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from container.errors import ProjectError
from modeldeploy.artifacts import verify_archive
from modeldeploy.deploy import Deployer, DeployReport
from modeldeploy.inference_log import PURPOSE_SMOKE
from modeldeploy.interfaces import Storage
from modeldeploy.invoker import Invoker, request_event
from modeldeploy.routing import Route, RoutingTable
from modeldeploy.verdicts import SmokeResult, TargetCheck

# The invoker's answer when the endpoint throttles, is busy or cannot be reached: says nothing
# about the model, so a version failing only that way is rolled back but not rejected.
UNAVAILABLE = 503
# A version restored by a rollback may itself await its test: one more round tests it.
MAX_ROUNDS = 2


@dataclass(frozen=True)
class StageSmoke:
    results: list[SmokeResult]
    reports: list[DeployReport]  # the verdicts applied, one per round


def example_record(signature: dict[str, Any]) -> dict[str, Any]:
    """A row the model must accept, keyed by feature name, from the training baseline."""
    baseline = signature.get("baseline") or {}
    record: dict[str, Any] = {}
    for feature in signature["schema"]["features"]:
        name, stats = feature["name"], baseline.get(feature["name"]) or {}
        if feature["kind"] == "numeric":
            edges = stats.get("bin_edges") or []
            if edges:
                record[name] = edges[len(edges) // 2]
            else:
                record[name] = stats.get("mean", 0.0)
        else:
            shares = stats.get("category_shares") or {}
            # No category seen: a missing value, which the fitted pipeline imputes.
            record[name] = max(shares, key=shares.__getitem__) if shares else None
    return record


def _targets(route: Route) -> list[tuple[str, Route, float]]:
    """Each version the invoker may answer with, its role, and a draw of the invoker's weighted
    choice that picks it (the canary takes draws below its weight, 0 < weight < 1)."""
    live = [("live", route, 1.0)]
    return live if route.canary is None else [*live, ("canary", route.canary, 0.0)]


@contextmanager
def _drawing(invoker: Invoker, draw: float) -> Iterator[None]:
    """The invoker's weighted choice pinned, so each target is tested rather than a random one."""
    rng = invoker.rng
    invoker.rng = lambda: draw
    try:
        yield
    finally:
        invoker.rng = rng


def _check(
    expected: Route, role: str, signature: dict[str, Any], response: dict[str, Any]
) -> tuple[bool, str]:
    """Whether the invoker's answer is right and came from the expected version."""
    try:
        body = json.loads(response["body"])
    except (KeyError, ValueError):
        return False, f"status {response.get('statusCode')} with an unreadable body"
    if response["statusCode"] != 200:
        return False, f"status {response['statusCode']}: {body.get('message', body)}"
    predictions = body.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != 1:
        return False, f"expected one prediction, got {predictions!r}"
    classes = signature["schema"]["classes"]
    label = predictions[0].get("label")
    if label not in classes:
        return False, f"label {label!r} is not one of the model's classes {classes}"
    probabilities = predictions[0].get("probabilities") or {}
    total = sum(probabilities.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        return False, f"probabilities sum to {total}, not 1"
    if body.get("model_package_version") != expected.model_package_version:
        return False, (
            f"answered by package version {body.get('model_package_version')}, "
            f"but the {role} version is {expected.model_package_version}"
        )
    if body.get("model_version") != expected.model_sha256:
        return False, (
            f"answered by model {str(body.get('model_version'))[:12]}..., but the {role} "
            f"artifact holds {expected.model_sha256[:12]}..."
        )
    return True, f"version {expected.model_package_version} ({role}) answered correctly"


def _smoke_target(
    dataset: str, role: str, target: Route, storage: Storage, invoker: Invoker
) -> TargetCheck:
    try:
        with tempfile.TemporaryDirectory(prefix="smoke-") as scratch:
            local = Path(scratch) / "model.tar.gz"
            storage.download(target.model_data_url, local)
            signature = verify_archive(local, target.model_data_url).signature
    except ProjectError as error:  # absent, unreadable, or storage unavailable
        return TargetCheck(role, target.target_model, False, f"{role} artifact unusable: {error}")
    request = request_event(dataset, [example_record(signature)], purpose=PURPOSE_SMOKE)
    response = invoker.handle(request)
    ok, message = _check(target, role, signature, response)
    transient = not ok and response.get("statusCode") == UNAVAILABLE
    return TargetCheck(role, target.target_model, ok, message, transient)


def smoke_test(
    table: RoutingTable,
    storage: Storage,
    invoker: Invoker,
    datasets: list[str] | None = None,
) -> list[SmokeResult]:
    """One result per dataset: every routed one, or those named (a named one must be routed)."""
    names = sorted(table.routes) if datasets is None else sorted(set(datasets))
    results = []
    for dataset in names:
        route = table.routes.get(dataset)
        if route is None:
            results.append(SmokeResult(dataset, False, f"no live model in stage {table.stage}"))
            continue
        checks = []
        for role, target, draw in _targets(route):
            with _drawing(invoker, draw):
                checks.append(_smoke_target(dataset, role, target, storage, invoker))
        failed = [check.message for check in checks if not check.ok]
        results.append(
            SmokeResult(
                dataset,
                not failed,
                "; ".join(failed or [check.message for check in checks]),
                tuple(checks),
            )
        )
    return results


def smoke_stage(
    deployer: Deployer, stage: str, invoker: Invoker, datasets: list[str] | None = None
) -> StageSmoke:
    """Smoke-test the stage and apply the verdict (module doc). A result's message says what
    was done about a failure. The caller holds the stage's deploy lock, if it has one."""
    results: dict[str, SmokeResult] = {}
    reports: list[DeployReport] = []
    names = datasets
    for _ in range(MAX_ROUNDS):
        table = deployer.read_table(stage)
        round_results = smoke_test(table, deployer.storage, invoker, names)
        report = deployer.conclude_smoke(stage, round_results)
        reports.append(report)
        changes = {change.dataset: change for change in report.changes}
        for result in round_results:
            change = changes.get(result.dataset)
            if not result.ok and change is not None:
                result = replace(result, message=f"{result.message}; {change.message}")
            earlier = results.get(result.dataset)
            if earlier is not None:
                # Tested again only after a rollback: the dataset's test stays failed.
                result = replace(earlier, message=f"{earlier.message}; then {result.message}")
            results[result.dataset] = result
        restored = deployer.read_table(stage)
        names = sorted(
            change.dataset
            for change in report.changes
            if change.action == "rolled back"
            and (route := restored.routes.get(change.dataset)) is not None
            and route.awaiting_smoke_test
        )
        if not names:
            break
    return StageSmoke([results[name] for name in sorted(results)], reports)
