"""The local endpoint: SageMaker Runtime's InvokeEndpoint API over the real serving container,
the invoker behind its HTTP adapter, the approval hook and the `endpoint` CLI.

One endpoint (one container process) serves the whole module; the artifacts are real.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from container.artifact import pack
from local.commands.endpoint import endpoint as endpoint_cli
from local.deploy_backend import on_model_package_event
from local.deploy_store import endpoint_state_path, local_inference_log
from local.endpoint import LocalEndpoint, ModelCache, local_invoker, runtime_client, smoke_locally
from local.invoker_http import InvokerHTTPServer
from local.registry import LocalModelRegistry
from modeldeploy import canary, naming
from modeldeploy.canary import Policy
from modeldeploy.drift_job import live_signature
from modeldeploy.inference_log_sqlite import local_log_path, read_local
from modeldeploy.invoker import request_event
from modeldeploy.smoke import example_record
from tests.artifact_faults import not_a_model
from tests.deploy_support import PROJECT, artifacts, local_backend, signature_sha256
from tests.serving_support import breast_cancer_frame, train_artifact

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("endpoint-home")
    backend = local_backend(root)
    backend.register("iris", artifacts()["iris"])
    backend.register("breast-cancer", artifacts()["cancer-0"])
    backend.deployer.deploy("dev", ["iris", "breast-cancer"])
    backend.deployer.promote("dev", "prod")
    return root


@pytest.fixture(scope="module")
def running(home: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(home, PROJECT) as endpoint:
        # What `endpoint serve` writes: how smoke tests and the approval hook find it.
        state = endpoint_state_path(home)
        state.write_text(json.dumps({"endpoint_url": endpoint.url}))
        yield endpoint
        state.unlink()


@pytest.fixture(scope="module")
def client(running: LocalEndpoint) -> Any:
    return runtime_client(running.url)


def target(home: Path, dataset: str, stage: str = "dev") -> str:
    return local_backend(home).deployer.read_table(stage).routes[dataset].target_model


@pytest.mark.integration
def test_an_unmodified_boto3_client_gets_predictions(client, home: Path) -> None:
    response = client.invoke_endpoint(
        EndpointName=f"{PROJECT}-dev",
        TargetModel=target(home, "iris"),
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes="trace=42",
        Body=json.dumps([IRIS_ROW]),
    )
    body = json.loads(response["Body"].read())
    assert response["InvokedProductionVariant"] == naming.VARIANT_NAME
    assert response["CustomAttributes"] == "trace=42"
    assert body["predictions"][0]["label"] == 0
    route = local_backend(home).deployer.read_table("dev").routes["iris"]
    assert body["model_version"] == route.model_sha256


@pytest.mark.integration
def test_csv_in_and_out(client, home: Path) -> None:
    response = client.invoke_endpoint(
        EndpointName=f"{PROJECT}-prod",
        TargetModel=target(home, "iris", "prod"),
        ContentType="text/csv",
        Accept="text/csv",
        Body="5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
    )
    lines = response["Body"].read().decode().splitlines()
    assert response["ContentType"].startswith("text/csv")
    assert lines[0] == "label,0,1,2" and [line.split(",")[0] for line in lines[1:]] == ["0", "2"]


def errors(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response


@pytest.mark.integration
def test_errors_come_back_as_sagemaker_sends_them(client, home: Path) -> None:
    unknown = errors(
        lambda: client.invoke_endpoint(
            EndpointName="nope", TargetModel="x.tar.gz", ContentType="text/csv", Body="1"
        )
    )
    assert unknown["Error"]["Code"] == "ValidationError" and "nope" in unknown["Error"]["Message"]
    no_target = errors(
        lambda: client.invoke_endpoint(
            EndpointName=f"{PROJECT}-dev", ContentType="text/csv", Body="1"
        )
    )
    assert "TargetModel header is required" in no_target["Error"]["Message"]
    missing = errors(
        lambda: client.invoke_endpoint(
            EndpointName=f"{PROJECT}-dev",
            TargetModel="iris/9-000000000000.tar.gz",
            ContentType="text/csv",
            Body="1",
        )
    )
    assert missing["Error"]["Code"] == "ValidationError"
    assert "Failed to download model data" in missing["Error"]["Message"]
    refused = errors(
        lambda: client.invoke_endpoint(
            EndpointName=f"{PROJECT}-dev",
            TargetModel=target(home, "iris"),
            ContentType="application/json",
            Body="[[1, 2]]",
        )
    )
    assert refused["Error"]["Code"] == "ModelError"
    assert refused["OriginalStatusCode"] == 400
    assert "takes 4 features" in refused["OriginalMessage"]


@pytest.mark.integration
def test_concurrent_first_calls_load_the_model_once(client, home: Path, running) -> None:
    name = f"{PROJECT}-dev/{target(home, 'breast-cancer')}"
    running.cache.forget(name)
    running.serving.request("DELETE", "/models/" + name.replace("/", "%2F"))
    row = [0.0] * 30
    results: list[int] = []

    def call() -> None:
        response = runtime_client(running.url).invoke_endpoint(
            EndpointName=f"{PROJECT}-dev",
            TargetModel=target(home, "breast-cancer"),
            ContentType="application/json",
            Body=json.dumps([row]),
        )
        results.append(response["ResponseMetadata"]["HTTPStatusCode"])

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 4
    assert running.cache.loaded().count(name) == 1


def post(url: str, path: str, body: Any, method: str = "POST") -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request(
        method, path, body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


@pytest.mark.integration
def test_the_invoker_behind_its_http_adapter(home: Path, running: LocalEndpoint) -> None:
    invokers = {stage: local_invoker(home, stage, running.url, PROJECT) for stage in naming.STAGES}
    server = InvokerHTTPServer(("127.0.0.1", 0), invokers).start()
    try:
        status, body = post(server.url, "/prod", {"dataset": "iris", "rows": [IRIS_ROW]})
        route = local_backend(home).deployer.read_table("prod").routes["iris"]
        assert status == 200
        assert body["model_version"] == route.model_sha256
        assert body["model_package_version"] == route.model_package_version
        assert body["stage"] == "prod" and body["predictions"][0]["label"] == 0
        status, body = post(server.url, "/dev", {"dataset": "iris", "rows": [[1.0]]})
        assert status == 400 and "takes 4 features" in body["message"]
        assert post(server.url, "/dev", {"dataset": "wine", "rows": [[1.0]]})[0] == 404
        assert post(server.url, "/staging", {"dataset": "iris", "rows": [IRIS_ROW]})[0] == 404
        assert post(server.url, "/dev", {}, method="GET")[0] == 405
    finally:
        server.stop()


@pytest.mark.integration
def test_approval_deploys_dev_and_smoke_tests_it(home: Path, running: LocalEndpoint) -> None:
    registry = LocalModelRegistry(home / "registry.sqlite")
    outcomes: list[Any] = []
    registry.subscribe(lambda event: outcomes.append(on_model_package_event(event, home, PROJECT)))
    backend = local_backend(home)
    uri = f"s3://{backend.bucket}/pipelines/breast-cancer/approval/model.tar.gz"
    backend.storage.upload(artifacts()["cancer-1"], uri)

    # As the pipeline's register step records it: the model checksum the deploy verifies.
    metadata = {naming.MODEL_SHA256_METADATA_KEY: signature_sha256(artifacts()["cancer-1"]) or ""}
    package = registry.register(f"{PROJECT}-breast-cancer", uri, customer_metadata=metadata)
    assert outcomes == [None]  # PendingManualApproval: the rule ignores it
    registry.update_approval(package.group_name, package.version, "Approved")

    outcome = outcomes[-1]
    assert outcome.dataset == "breast-cancer"
    assert [change.action for change in outcome.report.changes] == ["deployed"]
    assert [(r.dataset, r.ok) for r in outcome.smoke] == [("breast-cancer", True)]
    dev = backend.deployer.read_table("dev").routes["breast-cancer"]
    assert dev.model_package_version == package.version
    # prod waits for the manual gate
    assert backend.deployer.read_table("prod").routes["breast-cancer"].model_package_version == 1
    registry.register("another-project-iris", uri, approval_status="Approved")
    assert outcomes[-1] is None


def run_cli(home: Path, *args: str) -> Any:
    return CliRunner().invoke(
        endpoint_cli,
        [*args, "--home", str(home), "--project-name", PROJECT],
        catch_exceptions=False,
    )


@pytest.mark.integration
def test_the_cli_deploys_promotes_invokes_and_smoke_tests(home: Path, running) -> None:
    deployed = run_cli(home, "deploy", "dev", "-d", "iris")
    assert deployed.exit_code == 0 and "iris" in deployed.output and "unchanged" in deployed.output

    promoted = run_cli(home, "promote")
    assert promoted.exit_code == 0, promoted.output
    dev = local_backend(home).deployer.read_table("dev")
    prod = local_backend(home).deployer.read_table("prod")
    assert {d: r.model_package_arn for d, r in dev.routes.items()} == {
        d: r.model_package_arn for d, r in prod.routes.items()
    }

    invoked = run_cli(home, "invoke", "iris", json.dumps([IRIS_ROW]), "--stage", "prod")
    assert invoked.exit_code == 0, invoked.output
    assert json.loads(invoked.output)["predictions"][0]["label"] == 0
    refused = run_cli(home, "invoke", "iris", "[[1]]")
    assert refused.exit_code == 1 and "400 BadRequest" in refused.output
    # The id names the refused call's inference log record.
    [request_id] = re.findall(r"\(request ([0-9a-f]{32})\)", refused.output)
    assert local_inference_log(home).drain(10)
    logged = read_local(local_log_path(home), "dev", "iris", 0, include_errors=True)
    assert any(r.request_id == request_id and r.status == 400 for r in logged)

    smoked = run_cli(home, "smoke", "dev")
    assert smoked.exit_code == 0, smoked.output
    assert smoked.output.count(" ok ") == 2

    table = json.loads(run_cli(home, "table", "prod", "--json").output)
    assert set(table["datasets"]) == {"iris", "breast-cancer"}


@pytest.mark.integration
def test_a_failing_smoke_test_exits_non_zero_naming_the_dataset(home: Path, running) -> None:
    backend = local_backend(home)
    route = backend.deployer.read_table("dev").routes["iris"]
    original = backend.storage.read(route.model_data_url)
    backend.storage.write(route.model_data_url, original[:100], "application/gzip")
    try:
        result = run_cli(home, "smoke", "dev")
    finally:
        backend.storage.write(route.model_data_url, original, "application/gzip")
    assert result.exit_code == 1
    assert "smoke test failed for iris" in result.output
    assert "breast-cancer" not in result.output.split("failed for")[1]


class FakeContainer:
    """The serving container's management API with room for `capacity` models."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.models: list[str] = []
        self.calls: list[str] = []

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Any = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.calls.append(f"{method} {path}")
        if method == "POST" and path == "/models":
            name = json.loads(body or b"{}")["model_name"]
            if len(self.models) >= self.capacity:
                return 507, {}, b'{"code": 507}'
            self.models.append(name)
            return 200, {}, b"{}"
        if method == "DELETE":
            self.models.remove(path.split("/")[-1].replace("%2F", "/"))
            return 200, {}, b"{}"
        raise AssertionError(path)


def test_a_full_container_unloads_the_least_recently_used_model(tmp_path: Path) -> None:
    from local.s3 import LocalS3

    s3 = LocalS3(tmp_path / "s3")
    for name in ("a", "b", "c"):
        s3.put_bytes(f"s3://bkt/dev/models/{name}.tar.gz", name.encode())
    fake = FakeContainer(capacity=2)
    cache = ModelCache(fake, s3, tmp_path / "cache")  # type: ignore[arg-type]
    cache.ensure("a", "s3://bkt/dev/models/a.tar.gz")
    cache.ensure("b", "s3://bkt/dev/models/b.tar.gz")
    cache.ensure("a", "s3://bkt/dev/models/a.tar.gz")  # a is now the most recent

    cache.ensure("c", "s3://bkt/dev/models/c.tar.gz")

    assert fake.models == ["a", "c"] and cache.loaded() == ["a", "c"]
    assert "DELETE /models/b" in fake.calls
    # Kept under a digest of the name: any target name gives a short, safe directory.
    cached = tmp_path / "cache" / hashlib.sha256(b"c").hexdigest() / "model.tar.gz"
    assert cached.read_bytes() == b"c"


def test_a_model_too_big_for_an_empty_container_is_a_model_error(tmp_path: Path) -> None:
    from local.endpoint import EndpointFailure
    from local.s3 import LocalS3

    s3 = LocalS3(tmp_path / "s3")
    s3.put_bytes("s3://bkt/dev/models/a.tar.gz", b"a")
    cache = ModelCache(FakeContainer(capacity=0), s3, tmp_path / "cache")  # type: ignore[arg-type]
    with pytest.raises(EndpointFailure) as raised:
        cache.ensure("a", "s3://bkt/dev/models/a.tar.gz")
    assert raised.value.code == "ModelError" and raised.value.members["OriginalStatusCode"] == 507


@pytest.mark.integration
def test_a_version_that_cannot_serve_is_rolled_back_by_the_smoke_command(
    home: Path, running, tmp_path: Path
) -> None:
    """The pipeline's two commands, deploy then smoke, on the real container: a pickle that is
    no classifier passes every check deploy can make without unpickling it, fails to load in
    the container, and the smoke command puts the previous version back and rejects it."""
    backend = local_backend(home)
    before = backend.deployer.read_table("dev").routes["iris"]
    version = backend.register("iris", not_a_model(artifacts()["iris"], tmp_path / "x.tar.gz"))

    deployed = run_cli(home, "deploy", "dev", "-d", "iris")
    assert deployed.exit_code == 0, deployed.output
    assert backend.deployer.read_table("dev").routes["iris"].model_package_version == version

    smoked = run_cli(home, "smoke", "dev", "-d", "iris")

    assert smoked.exit_code == 1
    assert "smoke test failed for iris" in smoked.output
    assert "no predict_proba" in smoked.output
    assert f"rolled back to version {before.model_package_version}" in smoked.output
    assert str(home) not in smoked.output and "mme-serve-" not in smoked.output
    assert backend.deployer.read_table("dev").routes["iris"] == before
    group = naming.model_package_group_name(PROJECT, "iris")
    [package] = [p for p in backend.registry.list_packages(group) if p.version == version]
    assert package.approval_status == "Rejected"
    again = run_cli(home, "deploy", "dev", "-d", "iris")
    assert again.exit_code == 0
    assert f"version {before.model_package_version} is already live" in again.output
    assert f"version {version} is already live" not in again.output
    invoked = run_cli(home, "invoke", "iris", json.dumps([IRIS_ROW]))
    assert invoked.exit_code == 0, invoked.output


@pytest.mark.integration
def test_a_canary_whose_schema_differs_is_rolled_back_and_callers_never_see_it(
    home: Path, running, tmp_path: Path
) -> None:
    """A canary trained on 10 of breast-cancer's 30 features refuses every caller's row (the
    container's 422, the invoker's 400): each call is answered by the live version instead,
    the refusals count as the canary's errors, and the judgement rolls it back."""
    frame = breast_cancer_frame()
    narrow = frame[[*frame.columns[:10], "target"]]
    directory = train_artifact(
        tmp_path / "narrow",
        narrow,
        dataset="breast-cancer",
        target="target",
        family="logistic-regression",
    )
    backend = local_backend(home)
    live = backend.deployer.read_table("dev").routes["breast-cancer"]
    version = backend.register("breast-cancer", pack(directory, tmp_path / "narrow.tar.gz"))
    report = backend.deployer.deploy("dev", ["breast-cancer"], canary_weight=0.5)
    assert [c.action for c in report.changes] == ["canary"]
    # The smoke test passes: each version answers rows of its own schema.
    assert all(result.ok for result in smoke_locally(home, "dev", ["breast-cancer"], PROJECT))
    route = backend.deployer.read_table("dev").routes["breast-cancer"]
    assert route.canary is not None and not route.canary.awaiting_smoke_test

    invoker = local_invoker(home, "dev", running.url, PROJECT)
    invoker.rng = random.Random(5).random
    row = example_record(live_signature(backend.storage, live))
    answers = [invoker.handle(request_event("breast-cancer", [row])) for _ in range(40)]

    assert [a["statusCode"] for a in answers] == [200] * 40
    assert {json.loads(a["body"])["model_package_version"] for a in answers} == {
        live.model_package_version
    }
    assert local_inference_log(home).drain(10)
    records = list(read_local(local_log_path(home), "dev", "breast-cancer", 0, include_errors=True))
    refused = [r for r in records if r.target_model == route.canary.target_model]
    assert len(refused) > 10 and all(r.status == 400 for r in refused)
    assert all(r.error.startswith("CanaryRefused: BadRequest") for r in refused)

    policy = Policy(min_requests=30, min_rollback_requests=10)
    [outcome] = canary.run(
        backend.deployer,
        "dev",
        lambda dataset, since: read_local(
            local_log_path(home), "dev", dataset, since, include_errors=True
        ),
        policy,
        ["breast-cancer"],
    )
    assert outcome.decision.action == "rollback", outcome.decision.reason
    assert backend.deployer.read_table("dev").routes["breast-cancer"] == route.without_canary()
    group = naming.model_package_group_name(PROJECT, "breast-cancer")
    [package] = [p for p in backend.registry.list_packages(group) if p.version == version]
    assert package.approval_status == "Rejected"
