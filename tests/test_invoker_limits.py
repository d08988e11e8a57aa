"""The invoker's limits and edges (issue 13, items 2, 5 and 6): numbers JSON cannot carry back,
nesting Python cannot parse, rows and answers over the limits, and a canary refusing rows the
live version answers. The same handler runs behind the local HTTP adapter, so the limits hold
there exactly as in the Lambda: the last test goes through it.
"""

from __future__ import annotations

import http.client
import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.invoker_http import InvokerHTTPServer
from modeldeploy.invoker import (
    CANARY_REFUSED,
    DEFAULT_MAX_RESPONSE_BYTES,
    Invoker,
    request_event,
)
from modeldeploy.routing import Route, RoutingTable
from tests.deploy_support import ListLog
from tests.test_invoker import make_route


class Endpoint:
    """InvokeEndpoint: one prediction per row, each `bulk` bytes of probabilities, or the
    container's 422 for rows of another width than `widths[target]`."""

    def __init__(self, widths: dict[str, int] | None = None, bulk: int = 0) -> None:
        self.widths = widths or {}
        self.bulk = bulk
        self.calls: list[str] = []

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        target = request["TargetModel"]
        self.calls.append(target)
        body = request["Body"]
        if request["ContentType"] == "text/csv":
            rows = [line.split(",") for line in body.decode().splitlines()[1:]]
        else:
            rows = json.loads(body)
        width = self.widths.get(target)
        if width is not None and any(len(row) != width for row in rows):
            message = {"code": 422, "message": f"row 0: the model takes {width} features"}
            raise ClientError(
                {
                    "Error": {"Code": "ModelError", "Message": "Received client error (422)"},
                    "OriginalStatusCode": 422,
                    "OriginalMessage": json.dumps(message),
                },
                "InvokeEndpoint",
            )
        probabilities = {f"class-{i}": 0.0 for i in range(self.bulk)} or {"0": 1.0}
        answer = {
            "predictions": [{"label": 0, "probabilities": probabilities}] * len(rows),
            "classes": [0],
            "model_version": target,
        }
        return {"Body": io.BytesIO(json.dumps(answer).encode())}


def invoker(endpoint: Endpoint, route: Route | None = None, **kwargs: Any) -> Invoker:
    table = RoutingTable("dev", 1, "", {"iris": route or make_route()}).to_json()
    return Invoker(
        runtime=endpoint, endpoint_name="mme-dev", read_table=lambda: table, stage="dev", **kwargs
    )


def call(handler: Invoker, body: str) -> tuple[int, dict[str, Any]]:
    event = request_event("iris", [])
    event["body"] = body
    response = handler.handle(event)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"dataset": "iris", "rows": [[1e999, 1, 2, 3]]}', "beyond the range of a float"),
        ('{"dataset": "iris", "rows": [[-1e400, 1, 2, 3]]}', "beyond the range of a float"),
        ('{"dataset": "iris", "rows": [[' + "9" * 400 + ", 1, 2, 3]]}", "beyond the range"),
        ('{"dataset": "iris", "rows": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ],
)
def test_numbers_and_nesting_python_cannot_carry_get_400(body: str, problem: str) -> None:
    endpoint = Endpoint()
    status, answer = call(invoker(endpoint), body)
    assert status == 400 and problem in answer["message"], answer
    assert endpoint.calls == []


def test_more_rows_than_the_limit_get_413_before_the_endpoint() -> None:
    endpoint = Endpoint()
    handler = invoker(endpoint, max_rows=100)
    status, answer = call(handler, json.dumps({"dataset": "iris", "rows": [[1, 2, 3, 4]] * 101}))
    assert status == 413 and answer["error"] == "TooManyRows" and "100" in answer["message"]
    csv_rows = "\n".join(["a,b,c,d", *["1,2,3,4"] * 100])  # a header and 100 rows fit
    assert call(handler, json.dumps({"dataset": "iris", "rows": csv_rows}))[0] == 200
    status, answer = call(handler, json.dumps({"dataset": "iris", "rows": csv_rows + "\n1,2,3,4"}))
    assert status == 413 and answer["error"] == "TooManyRows"
    assert len(endpoint.calls) == 1


def test_an_answer_over_lambdas_response_limit_gets_413_saying_what_fits() -> None:
    endpoint = Endpoint(bulk=400)  # ~10 KB per prediction: 1,000 rows make ~10 MB
    log = ListLog()
    handler = invoker(endpoint, inference_log=log)
    rows = [[1, 2, 3, 4]] * 1000
    status, answer = call(handler, json.dumps({"dataset": "iris", "rows": rows}))

    assert status == 413 and answer["error"] == "ResponseTooLarge"
    fits = int(answer["message"].rsplit("at most about ", 1)[1].split()[0])
    assert 100 < fits < 1000
    # The advice holds: that many rows come back under the limit.
    response = handler.handle(request_event("iris", rows[:fits]))
    assert response["statusCode"] == 200
    assert len(json.dumps(response).encode()) <= DEFAULT_MAX_RESPONSE_BYTES
    assert [r.status for r in log.records] == [413, 200]
    assert log.records[0].outputs is None and "ResponseTooLarge" in log.records[0].error


def canary_route(width_live: int, width_canary: int) -> tuple[Route, dict[str, int]]:
    live, canary = make_route(3), make_route(4)
    route = Route(**{**live.__dict__, "canary": canary, "canary_weight": 0.5})
    return route, {live.target_model: width_live, canary.target_model: width_canary}


def test_a_canary_refusing_rows_the_live_version_answers_is_logged_as_its_error() -> None:
    route, widths = canary_route(4, 3)
    assert route.canary is not None
    endpoint, log = Endpoint(widths), ListLog()
    handler = invoker(endpoint, route, inference_log=log, rng=lambda: 0.0)  # always the canary

    response = handler.handle(request_event("iris", [[1, 2, 3, 4]]))

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["model_package_version"] == 3  # the live one answered
    assert endpoint.calls == [route.canary.target_model, route.target_model]
    refusal, answered = log.records
    request_id = response["headers"]["x-mme-request-id"]
    assert (refusal.request_id, refusal.status) == (f"{request_id}/canary", 400)
    assert refusal.target_model == route.canary.target_model
    assert refusal.error.startswith(f"{CANARY_REFUSED}: BadRequest")
    assert (answered.request_id, answered.status) == (request_id, 200)
    assert answered.target_model == route.target_model


def test_rows_both_versions_refuse_are_the_callers_fault() -> None:
    route, widths = canary_route(4, 3)
    endpoint, log = Endpoint(widths), ListLog()
    handler = invoker(endpoint, route, inference_log=log, rng=lambda: 0.0)

    response = handler.handle(request_event("iris", [[1, 2]]))

    assert response["statusCode"] == 400
    [record] = log.records
    assert record.status == 400 and not record.error.startswith(CANARY_REFUSED)


def test_a_smoke_test_of_the_canary_is_never_redirected() -> None:
    route, widths = canary_route(4, 3)
    endpoint = Endpoint(widths)
    handler = invoker(endpoint, route, rng=lambda: 0.0)
    response = handler.handle(request_event("iris", [[1, 2, 3, 4]], purpose="smoke"))
    assert response["statusCode"] == 400 and "takes 3 features" in response["body"]
    assert endpoint.calls == [route.canary.target_model]  # type: ignore[union-attr]


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/dev", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


@pytest.mark.integration
def test_the_limits_are_the_same_behind_the_local_http_adapter() -> None:
    handler = invoker(Endpoint(bulk=400), max_rows=5000)
    server = InvokerHTTPServer(("127.0.0.1", 0), {"dev": handler}).start()
    try:
        rows = json.dumps({"dataset": "iris", "rows": [[1, 2, 3, 4]] * 1000}).encode()
        status, answer = post(server.url, rows)
        assert status == 413 and answer["error"] == "ResponseTooLarge"
        status, answer = post(server.url, b'{"dataset": "iris", "rows": [[1e999, 1, 2, 3]]}')
        assert status == 400 and "beyond the range" in answer["message"]
    finally:
        server.stop()
