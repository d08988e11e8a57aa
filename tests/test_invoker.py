"""The invoker handler's contract: every status code, the routing cache, the Lambda entry point.

The SageMaker runtime is a real boto3 client under botocore's Stubber, which checks every request
against the service model; the end-to-end path through a real endpoint is in test_endpoint.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from modeldeploy import invoker as invoker_module
from modeldeploy.inference_log import PURPOSE_SMOKE, PURPOSE_TRAFFIC
from modeldeploy.invoker import (
    PURPOSE_HEADER,
    REQUEST_ID_HEADER,
    Invoker,
    TableMissing,
    request_event,
)
from modeldeploy.routing import Route, RoutingTable
from tests.deploy_support import ListLog, offline_aws

ENDPOINT = "mme-dev"
SHA = "c" * 64
MODEL_SHA = "d" * 64


def make_route(version: int = 3) -> Route:
    return Route(
        target_model=f"iris/{version}-cccccccccccc.tar.gz",
        model_data_url=f"s3://b/dev/models/iris/{version}-cccccccccccc.tar.gz",
        model_package_arn=f"arn:aws:sagemaker:us-east-1:1:model-package/mme-iris/{version}",
        model_package_version=version,
        sha256=SHA,
        model_sha256=MODEL_SHA,
        source_model_data_url="s3://b/pipelines/iris/model.tar.gz",
        deployed_at="2026-01-01T00:00:00+00:00",
    )


def table_bytes(route: Route) -> bytes:
    return RoutingTable("dev", 1, "", {"iris": route}).to_json()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tables:
    """The routing table source: a queue of answers, counting reads."""

    def __init__(self, *answers: bytes | Exception) -> None:
        self.answers = list(answers)
        self.reads = 0

    def __call__(self) -> bytes:
        self.reads += 1
        answer = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    offline_aws(monkeypatch)
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def make_invoker(client: Any, tables: Tables | None = None, **kwargs: Any) -> Invoker:
    return Invoker(
        runtime=client,
        endpoint_name=ENDPOINT,
        read_table=tables or Tables(table_bytes(make_route())),
        stage="dev",
        **kwargs,
    )


def event(body: Any, method: str = "POST", encode: bool = False) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "version": "2.0",
        "requestContext": {"http": {"method": method, "path": "/"}},
        "body": base64.b64encode(text.encode()).decode() if encode else text,
        "isBase64Encoded": encode,
    }


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def container_body(version: str = MODEL_SHA) -> StreamingBody:
    data = json.dumps(
        {
            "predictions": [{"label": 0, "probabilities": {"0": 0.9, "1": 0.1}}],
            "classes": [0, 1],
            "model_version": version,
        }
    ).encode()
    import io

    return StreamingBody(io.BytesIO(data), len(data))


def expect_invoke(stub: Stubber, content_type: str = "application/json", body: Any = ANY) -> None:
    stub.add_response(
        "invoke_endpoint",
        {"Body": container_body(), "ContentType": "application/json"},
        {
            "EndpointName": ENDPOINT,
            "TargetModel": "iris/3-cccccccccccc.tar.gz",
            "ContentType": content_type,
            "Accept": "application/json",
            "Body": body,
        },
    )


def test_rows_are_routed_to_the_datasets_live_model(runtime) -> None:
    client, stub = runtime
    expect_invoke(stub, body=b"[[5.1,3.5,1.4,0.2]]")
    status, body = answer(
        make_invoker(client).handle(event({"dataset": "iris", "rows": [[5.1, 3.5, 1.4, 0.2]]}))
    )
    assert status == 200
    assert body == {
        "dataset": "iris",
        "stage": "dev",
        "model_version": MODEL_SHA,
        "model_package_version": 3,
        "model_package_arn": make_route().model_package_arn,
        "target_model": "iris/3-cccccccccccc.tar.gz",
        "predictions": [{"label": 0, "probabilities": {"0": 0.9, "1": 0.1}}],
        "classes": [0, 1],
    }


def test_csv_text_rows_go_as_csv_and_base64_bodies_are_decoded(runtime) -> None:
    client, stub = runtime
    expect_invoke(stub, content_type="text/csv", body=b"5.1,3.5,1.4,0.2\n")
    request = event({"dataset": "iris", "rows": "5.1,3.5,1.4,0.2\n"}, encode=True)
    assert answer(make_invoker(client).handle(request))[0] == 200


@pytest.mark.parametrize(
    ("request_body", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"rows": [[1]]}, "'dataset' must be a non-empty string"),
        ({"dataset": "", "rows": [[1]]}, "'dataset' must be a non-empty string"),
        ({"dataset": "iris"}, "'rows' must be a non-empty list"),
        ({"dataset": "iris", "rows": []}, "'rows' must be a non-empty list"),
        ({"dataset": "iris", "rows": 5}, "'rows' must be a non-empty list"),
        ({"dataset": "iris", "rows": "  \n"}, "holds no CSV rows"),
        ({"dataset": "iris", "row": [[1]]}, r"unknown field\(s\) \['row'\]"),
        ("", "has no body"),
        ('{"dataset": "iris", "rows": [[NaN]]}', "NaN is not JSON; send null"),
    ],
)
def test_malformed_requests_get_400_saying_what_is_wrong(runtime, request_body, problem) -> None:
    client, _ = runtime
    status, body = answer(make_invoker(client).handle(event(request_body)))
    assert status == 400 and body["error"] == "BadRequest"
    assert problem in body["message"] or __import__("re").search(problem, body["message"])


def test_a_body_marked_base64_that_is_not_gets_400(runtime) -> None:
    client, _ = runtime
    request = {**event("x"), "body": "!!!not base64", "isBase64Encoded": True}
    assert answer(make_invoker(client).handle(request)) == (
        400,
        {"error": "BadRequest", "message": "the body is marked base64 but is not"},
    )


def test_only_post_is_allowed(runtime) -> None:
    client, _ = runtime
    response = make_invoker(client).handle(event({"dataset": "iris"}, method="GET"))
    assert response["statusCode"] == 405 and response["headers"]["allow"] == "POST"


@pytest.mark.parametrize("encode", [False, True])
def test_payloads_over_the_limit_get_413(runtime, encode: bool) -> None:
    client, _ = runtime
    rows = [[1.0, 2.0, 3.0, 4.0]] * 200
    status, body = answer(
        make_invoker(client, max_payload_bytes=1000).handle(
            event({"dataset": "iris", "rows": rows}, encode=encode)
        )
    )
    assert status == 413 and "1000 byte limit" in body["message"]


def test_unknown_datasets_and_stages_without_a_table_get_404(runtime) -> None:
    client, _ = runtime
    status, body = answer(make_invoker(client).handle(event({"dataset": "wine", "rows": [[1]]})))
    assert status == 404 and "'wine'" in body["message"] and "iris" in body["message"]
    assert body["error"] == "NoLiveModel"
    for tables in (
        Tables(TableMissing("s3://b/dev/routing/live.json")),
        Tables(RoutingTable("dev", 4).to_json()),  # every route taken out
    ):
        status, body = answer(
            make_invoker(client, tables).handle(event({"dataset": "iris", "rows": [[1]]}))
        )
        assert (status, body["error"]) == (404, "NothingDeployed")
        assert body["message"].startswith("nothing deployed to dev")


def model_error(stub: Stubber, original_status: int, message: str) -> None:
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message=f"Received client error ({original_status})",
        http_status_code=424,
        response_meta={},
        modeled_fields={
            "OriginalStatusCode": original_status,
            "OriginalMessage": json.dumps({"code": original_status, "message": message}),
        },
    )


@pytest.mark.parametrize(
    ("original", "status", "fragment"),
    [
        (400, 400, "the model refused the rows: row 1 has 2 values"),
        (415, 400, "the model refused the rows"),
        (413, 413, "payload size"),
        (500, 502, "the model failed (status 500)"),
        (507, 503, "out of memory"),
    ],
)
def test_model_errors_map_to_the_callers_status(runtime, original, status, fragment) -> None:
    client, stub = runtime
    model_error(stub, original, "row 1 has 2 values but the model takes 4 features")
    response = make_invoker(client).handle(event({"dataset": "iris", "rows": [[1, 2]]}))
    got, body = answer(response)
    assert got == status and fragment in body["message"]
    assert ("retry-after" in response["headers"]) == (status == 503)


@pytest.mark.parametrize(
    ("code", "http", "status"),
    [
        ("ThrottlingException", 400, 503),
        ("ModelNotReadyException", 429, 503),
        ("ServiceUnavailable", 503, 503),
        ("InternalFailure", 500, 502),
        ("InternalDependencyException", 530, 502),
        ("ValidationError", 400, 502),
    ],
)
def test_endpoint_failures_and_throttling_get_502_or_503(runtime, code, http, status) -> None:
    client, stub = runtime
    stub.add_client_error("invoke_endpoint", code, f"{code} happened", http)
    got, body = answer(make_invoker(client).handle(event({"dataset": "iris", "rows": [[1]]})))
    assert got == status and code in body["message"]


def test_an_unreachable_endpoint_gets_503() -> None:
    class Unreachable:
        def invoke_endpoint(self, **kwargs: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="https://runtime.sagemaker")

    got, body = answer(
        make_invoker(Unreachable()).handle(event({"dataset": "iris", "rows": [[1]]}))
    )
    assert got == 503 and body["error"] == "EndpointUnavailable"


def test_a_non_json_answer_gets_502(runtime) -> None:
    import io

    client, stub = runtime
    stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(b"body"), 4)}, None)
    got, body = answer(make_invoker(client).handle(event({"dataset": "iris", "rows": [[1]]})))
    assert got == 502 and "non-JSON" in body["message"]


def test_a_bug_still_answers_with_its_reason() -> None:
    class Broken:
        def invoke_endpoint(self, **kwargs: Any) -> Any:
            return {"Body": None}  # .read() on None: an invoker-side AttributeError

    got, body = answer(make_invoker(Broken()).handle(event({"dataset": "iris", "rows": [[1]]})))
    assert got == 502 and "AttributeError" in body["message"]


def test_the_routing_table_is_cached_for_its_ttl(runtime) -> None:
    client, stub = runtime
    clock, tables = Clock(), Tables(table_bytes(make_route()))
    invoker = make_invoker(client, tables, ttl_seconds=10, clock=clock)
    request = event({"dataset": "iris", "rows": [[1]]})
    for now in (0.0, 5.0, 9.9, 10.0):
        clock.now = now
        expect_invoke(stub)
        assert invoker.handle(request)["statusCode"] == 200
    assert tables.reads == 2


def test_an_unreadable_table_falls_back_to_the_cached_one(runtime) -> None:
    client, stub = runtime
    clock = Clock()
    tables = Tables(table_bytes(make_route()), OSError("S3 is down"))
    invoker = make_invoker(client, tables, ttl_seconds=1, clock=clock)
    for now in (0.0, 5.0):
        clock.now = now
        expect_invoke(stub)
        assert invoker.handle(event({"dataset": "iris", "rows": [[1]]}))["statusCode"] == 200
    cold = make_invoker(client, Tables(OSError("S3 is down")))
    got, body = answer(cold.handle(event({"dataset": "iris", "rows": [[1]]})))
    assert got == 503 and "S3 is down" in body["message"]


def test_a_corrupt_table_gets_502(runtime) -> None:
    client, _ = runtime
    got, body = answer(
        make_invoker(client, Tables(b"{}")).handle(event({"dataset": "iris", "rows": [[1]]}))
    )
    assert got == 502 and body["error"] == "RoutingTableError"


def test_a_vanished_target_refreshes_the_table_and_retries_once(runtime) -> None:
    client, stub = runtime
    old, new = make_route(3), make_route(4)
    tables = Tables(table_bytes(old), table_bytes(new))
    invoker = make_invoker(client, tables, ttl_seconds=60)
    stub.add_client_error(
        "invoke_endpoint",
        "ValidationError",
        "Failed to download model data(bucket: b, key: k)",
        400,
    )
    stub.add_response(
        "invoke_endpoint",
        {"Body": container_body()},
        {
            "EndpointName": ENDPOINT,
            "TargetModel": new.target_model,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": ANY,
        },
    )
    got, body = answer(invoker.handle(event({"dataset": "iris", "rows": [[1]]})))
    assert got == 200 and body["model_package_version"] == 4


def test_the_lambda_entry_point_reads_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployed form: ENDPOINT_NAME and ROUTING_TABLE_URI, the table in S3 (moto)."""
    from moto import mock_aws

    offline_aws(monkeypatch)
    monkeypatch.setattr(invoker_module, "_default", None)
    misconfigured = invoker_module.handler(event({"dataset": "iris", "rows": [[1]]}), None)
    assert misconfigured["statusCode"] == 502 and "ENDPOINT_NAME" in misconfigured["body"]
    assert misconfigured["headers"][REQUEST_ID_HEADER]

    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("ROUTING_TABLE_URI", "s3://bkt/dev/routing/live.json")
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("ROUTING_TTL_SECONDS", "0")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        got, body = answer(invoker_module.handler(event({"dataset": "iris", "rows": [[1]]}), None))
        assert got == 404  # no table yet: nothing deployed
        s3.put_object(Bucket="bkt", Key="dev/routing/live.json", Body=table_bytes(make_route()))
        # moto's runtime answers a canned non-JSON body: the invoker reaches the endpoint
        # with the routed target and says what came back.
        got, body = answer(invoker_module.handler(event({"dataset": "iris", "rows": [[1]]}), None))
        assert got == 502 and "non-JSON" in body["message"]
    monkeypatch.setattr(invoker_module, "_default", None)


# -- the routing table in S3, with IAM enforced -------------------------------------------------

TABLE_URI = "s3://sagemaker-project-p-abc123/dev/routing/live.json"


def invoker_role_policy(without_sid: str = "") -> str:
    """The endpoint stack's InvokerRole policy, resolved for a stage, minus one statement."""
    from modeldeploy.build import load_template
    from tests.cfn_support import Evaluator
    from tests.iam_policy import role_statements

    template = load_template()
    resolve = Evaluator(
        template,
        attributes={
            "InvokerLogGroup.Arn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/x",
            "InferenceLog.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/mme-dev-log",
        },
        SageMakerProjectName="mme",
        SageMakerProjectId="p-abc123",
        StageName="dev",
        ArtifactBucket="sagemaker-project-p-abc123",
    )
    statements = [
        s for s in role_statements(template, "InvokerRole", resolve) if s.get("Sid") != without_sid
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@pytest.mark.parametrize(
    ("without", "status", "error"),
    [("", 404, "NothingDeployed"), ("RoutingTable", 503, "RoutingForbidden")],
)
def test_the_deployed_invoker_tells_nothing_deployed_from_a_permission_problem(
    monkeypatch: pytest.MonkeyPatch, without: str, status: int, error: str
) -> None:
    """Under moto with IAM enforced, as the invoker role: no table is 404 NothingDeployed; a
    role that may not read the table gets 503 RoutingForbidden, naming the permission problem
    and not the bucket. moto answers a missing key with NoSuchKey whenever GetObject is
    allowed, without AWS's s3:ListBucket rule: test_stack.py checks that grant."""
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    offline_aws(monkeypatch)
    monkeypatch.setattr(invoker_module, "_default", None)
    monkeypatch.setenv("ENDPOINT_NAME", "mme-dev")
    monkeypatch.setenv("ROUTING_TABLE_URI", TABLE_URI)
    monkeypatch.setenv("STAGE", "dev")
    policy = invoker_role_policy(without_sid=without)

    @set_initial_no_auth_action_count(4)  # the set-up calls below, then IAM applies
    def call() -> tuple[int, dict[str, Any]]:
        with mock_aws():
            boto3.client("s3").create_bucket(Bucket="sagemaker-project-p-abc123")
            iam = boto3.client("iam")
            iam.create_user(UserName="invoker")
            iam.put_user_policy(UserName="invoker", PolicyName="invoker", PolicyDocument=policy)
            key = iam.create_access_key(UserName="invoker")["AccessKey"]
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
            monkeypatch.delenv("AWS_SESSION_TOKEN")
            # The Lambda's boto3 default session must pick these up, not cached test keys.
            monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
            return answer(invoker_module.handler(event({"dataset": "iris", "rows": [[1]]}), None))

    got, body = call()
    monkeypatch.setattr(invoker_module, "_default", None)
    assert (got, body["error"]) == (status, error), body
    assert "sagemaker-project-p-abc123" not in body["message"]
    if error == "RoutingForbidden":
        assert "not allowed to read its routing table" in body["message"]


# -- request ids and purposes ------------------------------------------------------------------


def test_an_answer_carries_the_function_urls_request_id_as_logged(runtime) -> None:
    client, stub = runtime
    expect_invoke(stub)
    log = ListLog()
    request = event({"dataset": "iris", "rows": [[1]]})
    request["requestContext"]["requestId"] = "c0ffee-42"
    response = make_invoker(client, inference_log=log).handle(request)
    assert response["statusCode"] == 200
    assert response["headers"][REQUEST_ID_HEADER] == "c0ffee-42"
    assert [r.request_id for r in log.records] == ["c0ffee-42"]


@pytest.mark.parametrize(
    ("body", "method", "endpoint_error", "status"),
    [
        ("{not json", "POST", None, 400),
        ({"dataset": "wine", "rows": [[1]]}, "POST", None, 404),
        ({"dataset": "iris", "rows": [[1]]}, "GET", None, 405),
        ({"dataset": "iris", "rows": [[1.0, 2.0]] * 200}, "POST", None, 413),
        ({"dataset": "iris", "rows": [[1]]}, "POST", ("InternalFailure", 500), 502),
        ({"dataset": "iris", "rows": [[1]]}, "POST", ("ThrottlingException", 400), 503),
    ],
)
def test_every_refusal_names_the_request_id_it_was_logged_under(
    runtime, body, method, endpoint_error, status
) -> None:
    client, stub = runtime
    if endpoint_error:
        stub.add_client_error("invoke_endpoint", *endpoint_error)
    log = ListLog()
    response = make_invoker(client, inference_log=log, max_payload_bytes=1000).handle(
        event(body, method=method)
    )
    assert response["statusCode"] == status
    # No id from the Function URL (as locally): the invoker makes one, and logs the same.
    [record] = log.records
    assert response["headers"][REQUEST_ID_HEADER] == record.request_id != ""


def test_a_smoke_test_call_is_logged_as_one_and_a_callers_as_traffic(runtime) -> None:
    client, stub = runtime
    log = ListLog()
    invoker = make_invoker(client, inference_log=log)
    for purpose in (PURPOSE_SMOKE, PURPOSE_TRAFFIC):
        expect_invoke(stub)
        assert invoker.handle(request_event("iris", [[1]], purpose=purpose))["statusCode"] == 200
    expect_invoke(stub)
    assert invoker.handle(event({"dataset": "iris", "rows": [[1]]}))["statusCode"] == 200  # none
    # Refused, a smoke test's call is still marked: it is not a caller's error either.
    assert invoker.handle(request_event("wine", [[1]], purpose=PURPOSE_SMOKE))["statusCode"] == 404
    assert [r.purpose for r in log.records] == [
        PURPOSE_SMOKE,
        PURPOSE_TRAFFIC,
        PURPOSE_TRAFFIC,
        PURPOSE_SMOKE,
    ]


def test_an_unknown_purpose_gets_400_naming_the_header(runtime) -> None:
    client, _ = runtime
    request = request_event("iris", [[1]])
    request["headers"][PURPOSE_HEADER] = "load-test"
    status, body = answer(make_invoker(client).handle(request))
    assert status == 400 and PURPOSE_HEADER in body["message"] and "'load-test'" in body["message"]
