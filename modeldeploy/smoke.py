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
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from container.errors import InputError
from modeldeploy.artifacts import verify_archive
from modeldeploy.inference_log import PURPOSE_SMOKE
from modeldeploy.interfaces import NoSuchObject, Storage
from modeldeploy.invoker import Invoker, request_event
from modeldeploy.routing import Route, RoutingTable


@dataclass(frozen=True)
class SmokeResult:
    dataset: str
    ok: bool
    message: str


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
) -> tuple[bool, str]:
    try:
        with tempfile.TemporaryDirectory(prefix="smoke-") as scratch:
            local = Path(scratch) / "model.tar.gz"
            storage.download(target.model_data_url, local)
            signature = verify_archive(local, target.model_data_url).signature
    except (NoSuchObject, InputError) as error:
        return False, f"{role} artifact unusable: {error}"
    request = request_event(dataset, [example_record(signature)], purpose=PURPOSE_SMOKE)
    return _check(target, role, signature, invoker.handle(request))


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
        failed = [message for ok, message in checks if not ok]
        results.append(
            SmokeResult(dataset, not failed, "; ".join(failed or [m for _, m in checks]))
        )
    return results
