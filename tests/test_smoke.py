"""The smoke test through the invoker: its calls are logged, marked as smoke tests, and judged
against the version that answered, the live one or its canary.

Real breast-cancer artifacts are deployed to dev with the deploy logic; the endpoint is a fake
that answers the way the serving container does for each deployed artifact (its classes and
model file checksum), so the smoke test's own checks apply; the log is a real SQLite store.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.drift_job import live_signature
from modeldeploy.inference_log import PURPOSE_SMOKE, PURPOSE_TRAFFIC, BackgroundLog, InferenceLog
from modeldeploy.inference_log_sqlite import SQLiteSink, read_local
from modeldeploy.invoker import Invoker, request_event
from modeldeploy.routing import RoutingTable
from modeldeploy.smoke import example_record, smoke_test
from tests.deploy_support import LocalBackend, artifacts, local_backend

CANCER = "breast-cancer"


class Container:
    """InvokeEndpoint answering one prediction per JSON row, as each deployed model would."""

    def __init__(self, classes: list[Any], model_sha256: dict[str, str]) -> None:
        self.classes = classes
        self.model_sha256 = model_sha256  # by target model

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        share = 1 / len(self.classes)
        prediction = {
            "label": self.classes[0],
            "probabilities": {str(label): share for label in self.classes},
        }
        answer = {
            "predictions": [prediction] * len(json.loads(request["Body"])),
            "classes": self.classes,
            "model_version": self.model_sha256[request["TargetModel"]],
        }
        return {"Body": io.BytesIO(json.dumps(answer).encode())}


def deployed(tmp_path: Path, canary: bool = False) -> tuple[LocalBackend, RoutingTable]:
    backend = local_backend(tmp_path / "home")
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.deployer.deploy("dev", [CANCER]).raise_for_failures()
    if canary:
        backend.register(CANCER, artifacts()["cancer-1"])
        backend.deployer.deploy("dev", [CANCER], canary_weight=0.1).raise_for_failures()
    return backend, backend.deployer.read_table("dev")


def make_invoker(
    backend: LocalBackend, table: RoutingTable, log: InferenceLog | None, draw: float = 0.5
) -> Invoker:
    route = table.routes[CANCER]
    targets = [route] if route.canary is None else [route, route.canary]
    return Invoker(
        runtime=Container(
            live_signature(backend.storage, route)["schema"]["classes"],
            {target.target_model: target.model_sha256 for target in targets},
        ),
        endpoint_name="mme-dev",
        read_table=table.to_json,
        stage="dev",
        inference_log=log,
        rng=lambda: draw,  # below the canary's weight, the call goes to the canary
    )


def test_the_smoke_tests_calls_are_logged_as_smoke_apart_from_traffic(tmp_path: Path) -> None:
    backend, table = deployed(tmp_path)
    path = tmp_path / "inference.sqlite"
    log = BackgroundLog(SQLiteSink(path))
    invoker = make_invoker(backend, table, log)

    [result] = smoke_test(table, backend.storage, invoker)
    assert result.ok, result.message
    route = table.routes[CANCER]
    row = [example_record(live_signature(backend.storage, route))]
    assert invoker.handle(request_event(CANCER, row))["statusCode"] == 200  # a caller's call
    assert log.drain(10)

    [traffic] = read_local(path, "dev", CANCER, since=0)
    assert traffic.purpose == PURPOSE_TRAFFIC
    [smoke] = [
        r for r in read_local(path, "dev", CANCER, since=0, include_smoke=True) if r != traffic
    ]
    assert smoke.purpose == PURPOSE_SMOKE and smoke.status == 200
    assert json.loads(smoke.inputs or "") == row
    assert smoke.target_model == route.target_model


def test_a_stage_with_a_canary_has_both_versions_tested_every_time(tmp_path: Path) -> None:
    backend, table = deployed(tmp_path, canary=True)
    path = tmp_path / "inference.sqlite"
    log = BackgroundLog(SQLiteSink(path))
    # Whatever the invoker would draw, the smoke test reaches the live and the canary version.
    for draw in (0.0, 0.99):
        invoker = make_invoker(backend, table, log, draw)
        [result] = smoke_test(table, backend.storage, invoker)
        assert result.ok, result.message
        assert "version 1 (live) answered" in result.message
        assert "version 2 (canary) answered" in result.message
        assert invoker.rng() == draw  # the invoker's own choice is back in place
    assert log.drain(10)
    route = table.routes[CANCER]
    answered = [r.target_model for r in read_local(path, "dev", CANCER, 0, include_smoke=True)]
    assert sorted(answered) == sorted([route.target_model, route.canary.target_model] * 2)


@pytest.mark.parametrize("draw", [0.0, 0.99])
def test_a_canary_answering_with_another_model_fails_the_smoke_test(
    tmp_path: Path, draw: float
) -> None:
    backend, table = deployed(tmp_path, canary=True)
    invoker = make_invoker(backend, table, None, draw)
    invoker.runtime.model_sha256[table.routes[CANCER].canary.target_model] = "e" * 64
    [result] = smoke_test(table, backend.storage, invoker)
    assert not result.ok and "but the canary artifact holds" in result.message
    assert "live" not in result.message  # the live version answered correctly
