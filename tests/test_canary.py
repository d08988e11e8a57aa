"""Per-model canary: placement next to the live version, weighted routing in the invoker, the
promote / rollback / wait decision from the inference log, and concluding it (local backend)."""

from __future__ import annotations

import io
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from modeldeploy import canary, naming
from modeldeploy.canary import Decision, Policy, evaluate, load_policy
from modeldeploy.inference_log import InferenceRecord
from modeldeploy.invoker import Invoker, request_event
from modeldeploy.routing import RoutingTable, RoutingTableError
from tests.deploy_support import ListLog, LocalBackend, artifacts, local_backend

CANCER = "breast-cancer"
STAGE = "dev"


class Clock:
    """Deployed-at stamps in the past, so every test record is 'since the canary'."""

    def __call__(self) -> str:
        return "2020-01-01T00:00:00+00:00"


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    backend = local_backend(tmp_path / "home")
    backend.deployer.clock = Clock()
    return backend


def with_canary(backend: LocalBackend, weight: float = 0.25) -> None:
    """Version 1 live, version 2 approved later and placed as canary."""
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    backend.register(CANCER, a["cancer-1"])
    report = backend.deployer.deploy(STAGE, [CANCER], canary_weight=weight)
    assert [c.action for c in report.changes] == ["canary"]


def keys(backend: LocalBackend) -> list[str]:
    prefix = f"{backend.bucket}/{naming.artifact_key(STAGE, CANCER + '/')}"
    return sorted(key for key in backend.objects() if key.startswith(prefix))


def key_of(backend: LocalBackend, uri: str) -> str:
    return uri.removeprefix("s3://")


def record(target: str, status: int = 200, latency: float = 10.0) -> InferenceRecord:
    return InferenceRecord(
        request_id="r",
        time=1.9e9,
        stage=STAGE,
        dataset=CANCER,
        status=status,
        latency_ms=latency,
        target_model=target,
    )


# -- placement ---------------------------------------------------------------------------------


def test_a_canary_is_placed_next_to_the_live_version(backend) -> None:
    with_canary(backend, 0.25)

    route = backend.deployer.read_table(STAGE).routes[CANCER]
    assert route.model_package_version == 1
    assert route.canary is not None and route.canary.model_package_version == 2
    assert route.canary_weight == 0.25
    assert route.canary.previous is None
    assert backend.storage.read(route.canary.model_data_url) == artifacts()["cancer-1"].read_bytes()
    assert keys(backend) == sorted(
        key_of(backend, u) for u in (route.model_data_url, route.canary.model_data_url)
    )
    # The table round-trips; a second canary deploy changes nothing.
    assert (
        RoutingTable.from_json(backend.deployer.read_table(STAGE).to_json()).routes[CANCER] == route
    )
    again = backend.deployer.deploy(STAGE, [CANCER], canary_weight=0.25)
    assert [c.action for c in again.changes] == ["unchanged"] and not again.table_written


def test_a_table_without_canaries_is_written_as_before(backend) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    document = json.loads(backend.deployer.read_table(STAGE).to_json())
    assert "canary" not in document["datasets"][CANCER]
    assert "canary_weight" not in document["datasets"][CANCER]


def test_a_first_version_goes_live_directly_even_in_canary_mode(backend) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])
    report = backend.deployer.deploy(STAGE, [CANCER], canary_weight=0.1)
    assert [c.action for c in report.changes] == ["deployed"]
    assert backend.deployer.read_table(STAGE).routes[CANCER].canary is None


def test_a_corrupt_canary_never_gets_a_route(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    backend.register(CANCER, a["corrupt"])
    report = backend.deployer.deploy(STAGE, [CANCER], canary_weight=0.1)
    assert [c.action for c in report.changes] == ["failed"]
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    assert route.canary is None and route.model_package_version == 1
    assert keys(backend) == [key_of(backend, route.model_data_url)]


def test_rejecting_the_canary_version_removes_it_on_the_next_deploy(backend) -> None:
    with_canary(backend)
    backend.set_status(CANCER, 2, "Rejected")
    report = backend.deployer.deploy(STAGE, [CANCER], canary_weight=0.25)
    assert [c.action for c in report.changes] == ["rolled back"]
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    assert route.canary is None and route.model_package_version == 1
    assert keys(backend) == [key_of(backend, route.model_data_url)]


@pytest.mark.parametrize("canary_there", [False, True])
def test_a_rejected_live_version_is_replaced_at_once_in_canary_mode(backend, canary_there) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    backend.register(CANCER, a["cancer-1"])
    if canary_there:
        backend.deployer.deploy(STAGE, [CANCER], canary_weight=0.25)
    backend.set_status(CANCER, 1, "Rejected")

    report = backend.deployer.deploy(STAGE, [CANCER], canary_weight=0.25)

    # A rejected version must stop serving: the newer one goes live, not beside it as canary.
    assert [c.action for c in report.changes] == ["deployed"]
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    assert route.model_package_version == 2 and route.canary is None and route.previous is None
    assert keys(backend) == [key_of(backend, route.model_data_url)]


def test_an_invalid_canary_weight_is_refused(backend) -> None:
    from container.errors import InputError

    with pytest.raises(InputError, match="between 0 and 1"):
        backend.deployer.deploy(STAGE, [CANCER], canary_weight=1.0)
    with pytest.raises(InputError, match="between 0 and 1"):
        backend.deployer.promote(STAGE, "prod", canary_weight=0.0)
    with_canary(backend)
    document = json.loads(backend.deployer.read_table(STAGE).to_json())
    document["datasets"][CANCER]["canary_weight"] = 1.5
    with pytest.raises(RoutingTableError, match="canary_weight"):
        RoutingTable.from_json(json.dumps(document).encode())


# -- the invoker -------------------------------------------------------------------------------


class Runtime:
    """InvokeEndpoint: each target answers, or fails with a model error if listed as failing."""

    def __init__(self, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.failing = failing
        self.calls: list[str] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        target = kwargs["TargetModel"]
        self.calls.append(target)
        if target in self.failing:
            error = RuntimeError("model error")
            error.response = {  # type: ignore[attr-defined]
                "Error": {"Code": "ModelError", "Message": "boom"},
                "OriginalStatusCode": 500,
                "OriginalMessage": "boom",
            }
            raise error
        body = {"predictions": [0], "classes": [0, 1], "model_version": target}
        return {"Body": io.BytesIO(json.dumps(body).encode())}


def make_invoker(backend: LocalBackend, runtime: Runtime, log: ListLog, seed: int) -> Invoker:
    uri = naming.routing_table_uri(backend.bucket, STAGE)
    return Invoker(
        runtime=runtime,
        endpoint_name="mme-dev",
        read_table=lambda: backend.storage.read(uri),
        stage=STAGE,
        inference_log=log,
        rng=random.Random(seed).random,
    )


def test_weighted_routing_splits_traffic_by_the_canary_weight(backend) -> None:
    with_canary(backend, 0.25)
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    runtime, log = Runtime(), ListLog()
    invoker = make_invoker(backend, runtime, log, seed=7)

    versions = []
    for _ in range(2000):
        response = invoker.handle(request_event(CANCER, [[0.0] * 30]))
        assert response["statusCode"] == 200
        versions.append(json.loads(response["body"])["model_package_version"])

    share = versions.count(2) / len(versions)
    assert 0.22 < share < 0.28
    assert runtime.calls.count(route.canary.target_model) == versions.count(2)
    logged = {(r.target_model, r.model_package_version) for r in log.records}
    assert logged == {(route.target_model, 1), (route.canary.target_model, 2)}


def test_a_route_without_canary_never_draws(backend) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    runtime, log = Runtime(), ListLog()
    invoker = make_invoker(backend, runtime, log, seed=1)
    invoker.rng = lambda: pytest.fail("no canary: the rng must not be used")  # type: ignore[assignment]
    assert invoker.handle(request_event(CANCER, [[0.0] * 30]))["statusCode"] == 200


# -- the decision ------------------------------------------------------------------------------

POLICY = Policy(min_requests=50, min_rollback_requests=20, max_error_rate_increase=0.02)


def test_evaluate_rolls_back_on_errors_and_latency_promotes_and_waits() -> None:
    live = [record("L")] * 200
    healthy = [record("C")] * 60
    assert evaluate(live, healthy, POLICY).action == "promote"
    failing = [record("C")] * 25 + [record("C", status=502)] * 5
    assert evaluate(live, failing, POLICY).action == "rollback"
    slow = [record("C", latency=40.0)] * 25
    decision = evaluate(live, slow, POLICY)
    assert decision.action == "rollback" and "latency" in decision.reason
    assert evaluate(live, [record("C")] * 10, POLICY).action == "wait"
    # Too few calls to roll back on: one error in three is not yet a verdict.
    assert evaluate(live, [record("C", status=500)] + [record("C")] * 2, POLICY).action == "wait"
    # Caller errors (4xx) are not the model's.
    refused = [record("C")] * 40 + [record("C", status=400)] * 20
    assert evaluate(live, refused, POLICY).action == "promote"


def test_the_stage_configs_hold_a_valid_canary_policy(tmp_path: Path) -> None:
    assert 0 < load_policy("dev").weight < 1 and 0 < load_policy("prod").weight < 1
    (tmp_path / "dev.json").write_text(json.dumps({"Parameters": {}}))
    assert load_policy("dev", tmp_path) == Policy()
    (tmp_path / "dev.json").write_text(json.dumps({"Canary": {"Weight": 2}}))
    from container.errors import InputError

    with pytest.raises(InputError, match="Weight"):
        load_policy("dev", tmp_path)


def run_traffic(backend: LocalBackend, failing_canary: bool, calls: int) -> list[InferenceRecord]:
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    failing = {route.canary.target_model} if failing_canary else set()
    log = ListLog()
    invoker = make_invoker(backend, Runtime(failing), log, seed=3)
    for _ in range(calls):
        invoker.handle(request_event(CANCER, [[0.0] * 30]))
    # Sub-millisecond timings of a fake endpoint are noise: equal latencies keep the decision on
    # the error rates these tests are about (latency verdicts are covered by the unit test above).
    return [replace(record, latency_ms=1.0) for record in log.records]


def source_of(records: list[InferenceRecord]):
    return lambda dataset, since: [r for r in records if r.dataset == dataset and r.time >= since]


def test_a_failing_canary_is_rolled_back_automatically(backend) -> None:
    with_canary(backend, 0.3)
    before = backend.deployer.read_table(STAGE).routes[CANCER]
    records = run_traffic(backend, failing_canary=True, calls=200)

    [outcome] = canary.run(backend.deployer, STAGE, source_of(records), POLICY)

    assert outcome.decision.action == "rollback", outcome.decision.reason
    assert [c.action for c in outcome.report.changes] == ["rolled back"]
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    assert route == before.without_canary()
    assert outcome.report.deleted == [before.canary.model_data_url]
    assert keys(backend) == [key_of(backend, route.model_data_url)]


def test_a_healthy_canary_with_enough_traffic_is_promoted(backend) -> None:
    with_canary(backend, 0.3)
    before = backend.deployer.read_table(STAGE).routes[CANCER]
    records = run_traffic(backend, failing_canary=False, calls=300)

    [outcome] = canary.run(backend.deployer, STAGE, source_of(records), POLICY)

    assert outcome.decision.action == "promote", outcome.decision.reason
    assert [c.action for c in outcome.report.changes] == ["promoted"]
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    assert route.model_package_version == 2 and route.canary is None
    assert route.target_model == before.canary.target_model
    assert route.previous == before.without_previous()
    assert keys(backend) == sorted(
        key_of(backend, u) for u in (route.model_data_url, route.previous.model_data_url)
    )


def test_a_canary_with_too_few_requests_waits(backend) -> None:
    with_canary(backend, 0.3)
    before = backend.deployer.read_table(STAGE)
    records = run_traffic(backend, failing_canary=False, calls=20)

    [outcome] = canary.run(backend.deployer, STAGE, source_of(records), POLICY)

    assert outcome.decision.action == "wait"
    assert not outcome.report.table_written and outcome.report.deleted == []
    assert backend.deployer.read_table(STAGE) == before


@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_concluding_twice_changes_nothing_the_second_time(backend, action) -> None:
    with_canary(backend)
    target = backend.deployer.read_table(STAGE).routes[CANCER].canary.target_model
    decision = Decision(action, "test", target)
    first = backend.deployer.conclude_canary(STAGE, CANCER, decision)
    assert first.table_written
    table, objects = backend.deployer.read_table(STAGE), backend.objects()

    second = backend.deployer.conclude_canary(STAGE, CANCER, decision)

    assert not second.table_written and second.deleted == []
    assert [c.action for c in second.changes] == ["unchanged"]
    assert backend.deployer.read_table(STAGE) == table and backend.objects() == objects
    assert canary.run(backend.deployer, STAGE, source_of([]), POLICY) == []


def test_a_decision_about_another_canary_is_not_applied(backend) -> None:
    with_canary(backend)
    before = backend.deployer.read_table(STAGE)
    report = backend.deployer.conclude_canary(
        STAGE, CANCER, Decision("promote", "stale", "breast-cancer/9-000000000000.tar.gz")
    )
    assert [c.action for c in report.changes] == ["unchanged"] and not report.table_written
    assert backend.deployer.read_table(STAGE) == before


def test_the_cli_places_and_judges_canaries(backend) -> None:
    from click.testing import CliRunner

    from local.commands.endpoint import endpoint

    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    backend.register(CANCER, a["cancer-1"])
    options = ["--home", str(backend.home), "--project-name", "mme"]
    runner = CliRunner()

    placed = runner.invoke(endpoint, ["deploy", STAGE, "-d", CANCER, "--canary", *options])
    assert placed.exit_code == 0, placed.output
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    assert route.canary is not None and route.canary_weight == load_policy(STAGE).weight

    judged = runner.invoke(endpoint, ["canary", STAGE, "-d", CANCER, *options])
    assert judged.exit_code == 0, judged.output
    assert "wait" in judged.output


def cli_options(backend: LocalBackend) -> list[str]:
    return ["--home", str(backend.home), "--project-name", "mme"]


@pytest.mark.parametrize(("value", "action"), [("true", "canary"), ("false", "deployed")])
def test_mme_canary_switches_the_deploy_command_to_canary_mode(backend, value, action) -> None:
    from click.testing import CliRunner

    from local.commands.endpoint import endpoint

    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    backend.register(CANCER, a["cancer-1"])

    result = CliRunner().invoke(
        endpoint, ["deploy", STAGE, "-d", CANCER, *cli_options(backend)], env={"MME_CANARY": value}
    )

    assert result.exit_code == 0, result.output
    assert f"{CANCER:<24} {action} " in result.output
    route = backend.deployer.read_table(STAGE).routes[CANCER]
    live = 1 if action == "canary" else 2
    assert route.model_package_version == live
    assert (route.canary is not None) == (action == "canary")


@pytest.mark.parametrize(
    ("arguments", "env"), [(["--canary"], {}), ([], {"MME_CANARY": "true"})], ids=["flag", "env"]
)
def test_the_cli_promotes_a_newer_version_as_prod_canary_with_the_prod_weight(
    backend, arguments, env
) -> None:
    from click.testing import CliRunner

    from local.commands.endpoint import endpoint

    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    backend.deployer.promote(STAGE, "prod")
    backend.register(CANCER, a["cancer-1"])
    backend.deployer.deploy(STAGE, [CANCER])
    prod_live = backend.deployer.read_table("prod").routes[CANCER]

    result = CliRunner().invoke(endpoint, ["promote", *arguments, *cli_options(backend)], env=env)

    assert result.exit_code == 0, result.output
    route = backend.deployer.read_table("prod").routes[CANCER]
    assert route.without_canary() == prod_live
    assert route.canary is not None and route.canary.model_package_version == 2
    assert route.canary_weight == load_policy("prod").weight != load_policy(STAGE).weight


def test_pruning_keeps_live_canary_and_previous(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy(STAGE, [CANCER])
    backend.register(CANCER, a["cancer-1"])
    backend.deployer.deploy(STAGE, [CANCER])
    backend.register(CANCER, a["cancer-2"])
    backend.deployer.deploy(STAGE, [CANCER], canary_weight=0.1)

    route = backend.deployer.read_table(STAGE).routes[CANCER]
    assert route.model_package_version == 2 and route.previous.model_package_version == 1
    assert route.canary.model_package_version == 3
    uris = (route.model_data_url, route.previous.model_data_url, route.canary.model_data_url)
    assert keys(backend) == sorted(key_of(backend, u) for u in uris)
