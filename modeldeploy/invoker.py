"""The invoker: a Lambda handler behind a Function URL (AWS_IAM auth) that routes by dataset.

Request (POST, JSON body):
    {"dataset": "breast-cancer", "rows": [[1.0, 2.0, ...], ...]}      rows as lists,
    {"dataset": "breast-cancer", "rows": [{"feature": value, ...}]}    or records by name,
    {"dataset": "breast-cancer", "rows": "1.0,2.0,...\n..."}           or CSV text.

200: {"dataset", "stage", "model_version" (sha256 of the serving model file),
      "model_package_version", "model_package_arn", "target_model", "predictions", "classes"}
Errors answer {"error": <type>, "message": <what is wrong>}:
    400 malformed request or rows the model refuses; 404 unknown dataset or no live model
    (NothingDeployed: the stage has no routing table or an empty one); 405 not a POST; 413
    request over the payload limit (PayloadTooLarge), more rows than MAX_ROWS_PER_REQUEST
    (TooManyRows), or an answer too large for Lambda to return (ResponseTooLarge); 502 the
    endpoint failed or answered nonsense; 503 the endpoint throttles, is busy loading or is
    unavailable (with Retry-After), or the invoker may not read its routing table
    (RoutingForbidden: its role's S3 permissions need fixing).

Limits, the same locally as on AWS: the request body at most MAX_PAYLOAD_BYTES (InvokeEndpoint's
6 MB), at most MAX_ROWS_PER_REQUEST rows (CSV text: that many lines besides a header), and the
whole response as the Lambda runtime serialises it at most MAX_RESPONSE_BYTES (a buffered
Function URL's 6 MB response limit): a larger answer would fail on AWS with no body at all, so it
is refused with a 413 saying how many rows would fit.

Headers: every response, answered or refused, carries `x-mme-request-id`, the id its inference
log record has: the Function URL's request id (requestContext.requestId), else a fresh one.
A request may say what it is for with `x-mme-purpose`: `traffic` (the default) or `smoke`, which
the smoke test sends so that its rows stay out of drift and canary judgements; another value
gets 400.

A dataset whose route has a canary sends a `canary_weight` share of its requests (at random) to
the canary target; the answer and the log record name the version that answered. When the
canary refuses a caller's rows (a 4xx: its schema differs, say), the same request goes to the
live version: if that answers, the caller gets its answer, and the canary's refusal is logged as
a record of its own (request id + "/canary", error "CanaryRefused: ...") that the canary
judgement counts as the canary's error (`modeldeploy.canary`); if the live version refuses too,
the rows are at fault and the caller gets the refusal. A smoke test's call is never redirected:
it tests the version it was pinned to.
The routing table is cached for ROUTING_TTL_SECONDS. Every invocation, answered or refused, is
handed to the inference log (`modeldeploy.inference_log`) without waiting for it. Standard library
and boto3 only: this file, `modeldeploy/routing.py` and `modeldeploy/inference_log.py` are the
whole Lambda package.

Environment: ENDPOINT_NAME, ROUTING_TABLE_URI (s3://bucket/<stage>/routing/live.json), STAGE,
ROUTING_TTL_SECONDS (default 10), MAX_PAYLOAD_BYTES (default 6 MB, InvokeEndpoint's limit),
MAX_ROWS_PER_REQUEST (default 10,000), MAX_RESPONSE_BYTES (default 6 MB, Lambda's);
INFERENCE_LOG_TABLE (the DynamoDB table; unset: no log), INFERENCE_LOG_TTL_DAYS (default 30),
INFERENCE_LOG_DRAIN_SECONDS (default 0.05: how long a call may wait for its record to be written
before the Lambda freezes; 0 leaves it queued for the next call).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modeldeploy.inference_log import (
    DEFAULT_TTL_DAYS,
    PURPOSE_TRAFFIC,
    PURPOSES,
    BackgroundLog,
    DynamoDBSink,
    InferenceLog,
    InferenceRecord,
    dynamodb_client,
)
from modeldeploy.routing import Route, RoutingTable, RoutingTableError

log = logging.getLogger("modeldeploy.invoker")
log.setLevel(logging.INFO)

DEFAULT_TTL_SECONDS = 10.0
DEFAULT_LOG_DRAIN_SECONDS = 0.05
# Embedded Metric Format: a log line CloudWatch turns into a metric, with no API call.
LOSS_METRIC_NAMESPACE = "MME/Invoker"
LOSS_METRIC = "InferenceLogDropped"
# InvokeEndpoint's own limit (botocore BodyBlob max); a larger body could never reach a model.
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# A buffered Function URL returns at most 6 MB (the Invoke API's synchronous payload limit).
DEFAULT_MAX_RESPONSE_BYTES = 6 * 1024 * 1024
# Keeps an answer well inside the response limit for models with few classes, and a single
# call from holding the endpoint's workers for long.
DEFAULT_MAX_ROWS = 10_000
# The error of the log record a canary's refusal gets when the live version answered instead.
CANARY_REFUSED = "CanaryRefused"
RETRY_AFTER_SECONDS = "2"
# Function URLs hand the handler lower-case header names.
PURPOSE_HEADER = "x-mme-purpose"
REQUEST_ID_HEADER = "x-mme-request-id"
_REQUEST_KEYS = frozenset({"dataset", "rows"})
# ModelError.OriginalStatusCode from the serving container -> what the caller gets.
_CONTAINER_INPUT_ERRORS = frozenset({400, 406, 415, 422})
_THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ModelNotReadyException",
        "RequestLimitExceeded",
    }
)


def request_event(dataset: str, rows: Any, purpose: str = PURPOSE_TRAFFIC) -> dict[str, Any]:
    """A Function URL event carrying an invoker request, as a caller's POST arrives."""
    return {
        "version": "2.0",
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "headers": {"content-type": "application/json", PURPOSE_HEADER: purpose},
        "body": json.dumps({"dataset": dataset, "rows": rows}),
        "isBase64Encoded": False,
    }


class TableMissing(Exception):
    """No routing table has been written for the stage yet (nothing deployed)."""


class TableForbidden(Exception):
    """The invoker's role may not read the routing table (S3 AccessDenied)."""


class Reply(Exception):
    """An answer other than 200, raised from wherever the request stops."""

    def __init__(self, status: int, error: str, message: str, retry_after: bool = False):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after


def _response(
    status: int, body: dict[str, Any], extra: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(extra or {})},
        "body": json.dumps(body, allow_nan=False, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def _request_id(event: dict[str, Any]) -> str:
    return str(event.get("requestContext", {}).get("requestId") or uuid.uuid4().hex)


def _with_request_id(response: dict[str, Any], request_id: str) -> dict[str, Any]:
    response["headers"][REQUEST_ID_HEADER] = request_id
    return response


def _purpose(event: dict[str, Any]) -> str:
    purpose = (event.get("headers") or {}).get(PURPOSE_HEADER, PURPOSE_TRAFFIC)
    if purpose not in PURPOSES:
        raise Reply(
            400,
            "BadRequest",
            f"{PURPOSE_HEADER} must be one of {', '.join(PURPOSES)}, not {purpose!r}",
        )
    return purpose


def _error_response(reply: Reply) -> dict[str, Any]:
    extra = {"retry-after": RETRY_AFTER_SECONDS} if reply.retry_after else {}
    if reply.status == 405:
        extra["allow"] = "POST"
    return _response(reply.status, {"error": reply.error, "message": reply.message}, extra)


@dataclass
class _Call:
    """What one request got as far as, for its inference log record."""

    request_id: str
    purpose: str = PURPOSE_TRAFFIC
    dataset: str = ""
    payload: bytes | None = None
    content_type: str = ""
    route: Route | None = None
    answer: dict[str, Any] | None = None
    error: str = ""
    # A canary's refusal of rows the live version then answered: (canary, reply, when).
    canary_refusal: tuple[Route, Reply, float] | None = None


class Invoker:
    def __init__(
        self,
        *,
        runtime: Any,
        endpoint_name: str,
        read_table: Callable[[], bytes],
        stage: str = "",
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        inference_log: InferenceLog | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.runtime = runtime
        self.endpoint_name = endpoint_name
        self.read_table = read_table
        self.stage = stage
        self.ttl_seconds = ttl_seconds
        self.max_payload_bytes = max_payload_bytes
        self.max_rows = max_rows
        self.max_response_bytes = max_response_bytes
        self.clock = clock
        self.inference_log = inference_log
        self.rng = rng
        self._table: RoutingTable | None = None
        self._expires = float("-inf")
        self._lock = threading.Lock()

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """A Function URL event (payload 2.0) -> a Function URL response; never raises."""
        started = time.perf_counter()
        call = _Call(_request_id(event))
        try:
            response = self._handle(event, call)
        except Reply as reply:
            if reply.status >= 500:
                log.warning(
                    "%s: %d %s: %s", call.request_id, reply.status, reply.error, reply.message
                )
            call.error = f"{reply.error}: {reply.message}"
            response = _error_response(reply)
        except Exception as error:  # a bug here must still answer with its reason
            log.exception("%s: invoker failed", call.request_id)
            call.error = f"InternalError: {type(error).__name__}: {error}"
            response = _error_response(
                Reply(500, "InternalError", f"the invoker failed: {type(error).__name__}: {error}")
            )
        response = _with_request_id(response, call.request_id)
        if response["statusCode"] == 200:
            response = self._within_response_limit(response, call)
        if self.inference_log is not None:
            self._log_call(self.inference_log, call, response, started)
        return response

    def _within_response_limit(self, response: dict[str, Any], call: _Call) -> dict[str, Any]:
        """The response, or a 413 if Lambda could not return it: it serialises the whole
        dictionary as JSON, the body string escaped inside it."""
        size = len(json.dumps(response).encode())
        if size <= self.max_response_bytes:
            return response
        rows = len((call.answer or {}).get("predictions") or []) or 1
        fits = max(1, self.max_response_bytes * rows // size)
        reply = Reply(
            413,
            "ResponseTooLarge",
            f"the answer for {rows} rows is {size} bytes, over the {self.max_response_bytes} "
            f"bytes a response may have; send at most about {fits} rows per request",
        )
        call.answer, call.error = None, f"{reply.error}: {reply.message}"
        return _with_request_id(_error_response(reply), call.request_id)

    def _log_call(
        self,
        inference_log: InferenceLog,
        call: _Call,
        response: dict[str, Any],
        started: float,
    ) -> None:
        if call.canary_refusal is not None:
            self._log_canary_refusal(inference_log, call, started)
        try:
            route, answer = call.route, call.answer or {}
            predictions = answer.get("predictions")
            inference_log.record(
                InferenceRecord(
                    request_id=call.request_id,
                    time=time.time(),
                    stage=self.stage,
                    dataset=call.dataset,
                    status=int(response["statusCode"]),
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    content_type=call.content_type,
                    inputs=call.payload.decode() if call.payload is not None else None,
                    outputs=None if predictions is None else json.dumps(predictions),
                    target_model=route.target_model if route else "",
                    model_package_version=route.model_package_version if route else None,
                    model_version=str(answer.get("model_version") or ""),
                    error=call.error,
                    purpose=call.purpose,
                )
            )
        except Exception:  # the log is never worth a prediction
            log.exception("could not build the inference log record")

    def _log_canary_refusal(self, inference_log: InferenceLog, call: _Call, started: float) -> None:
        assert call.canary_refusal is not None
        canary, reply, when = call.canary_refusal
        try:
            inference_log.record(
                InferenceRecord(
                    request_id=f"{call.request_id}/canary",
                    time=time.time() - (time.perf_counter() - when),
                    stage=self.stage,
                    dataset=call.dataset,
                    status=reply.status,
                    latency_ms=(when - started) * 1000.0,
                    content_type=call.content_type,
                    inputs=call.payload.decode() if call.payload is not None else None,
                    target_model=canary.target_model,
                    model_package_version=canary.model_package_version,
                    error=f"{CANARY_REFUSED}: {reply.error}: {reply.message}",
                    purpose=call.purpose,
                )
            )
        except Exception:  # the log is never worth a prediction
            log.exception("could not build the canary's inference log record")

    # -- request -------------------------------------------------------------------------------

    def _handle(self, event: dict[str, Any], call: _Call) -> dict[str, Any]:
        # First, so that a smoke test's call is marked even when it is refused.
        call.purpose = _purpose(event)
        method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
        if method != "POST":
            raise Reply(405, "MethodNotAllowed", f"use POST, not {method}")
        raw = self._raw_body(event)
        dataset, payload, content_type = self._parse(raw)
        call.dataset, call.payload, call.content_type = dataset, payload, content_type
        live = self._route(dataset)
        route = call.route = self._target(live)
        try:
            answer = self._invoke(route, payload, content_type)
        except Reply as reply:
            if reply.error == "TargetModelGone":
                # The target vanished: the table moved on since it was cached. Refresh once.
                live = self._route(dataset, refresh=True)
                fresh = self._target(live)
                if fresh.target_model == route.target_model:
                    raise Reply(502, "EndpointError", reply.message) from None
                route = call.route = fresh
                answer = self._invoke(fresh, payload, content_type)
            elif (
                route is not live and 400 <= reply.status < 500 and call.purpose == PURPOSE_TRAFFIC
            ):
                # The canary refused: the live version decides whether the rows were at fault.
                canary, refused_at = route, time.perf_counter()
                route = call.route = live
                answer = self._invoke(live, payload, content_type)
                call.canary_refusal = (canary, reply, refused_at)
            else:
                raise
        call.answer = answer
        return _response(
            200,
            {
                "dataset": dataset,
                "stage": self.stage,
                "model_version": answer.get("model_version"),
                "model_package_version": route.model_package_version,
                "model_package_arn": route.model_package_arn,
                "target_model": route.target_model,
                "predictions": answer["predictions"],
                "classes": answer.get("classes"),
            },
        )

    def _raw_body(self, event: dict[str, Any]) -> bytes:
        body = event.get("body")
        if body is None or body == "":
            raise Reply(400, "BadRequest", 'the request has no body; send {"dataset", "rows"}')
        if not isinstance(body, str):
            raise Reply(400, "BadRequest", "the request body is not text")
        if event.get("isBase64Encoded"):
            # base64 is 4/3 of the payload: refuse on the encoded size before decoding it.
            if len(body) > (self.max_payload_bytes * 4) // 3 + 4:
                raise self._too_large()
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise Reply(400, "BadRequest", "the body is marked base64 but is not") from None
        else:
            raw = body.encode()
        if len(raw) > self.max_payload_bytes:
            raise self._too_large()
        return raw

    def _too_large(self) -> Reply:
        return Reply(
            413,
            "PayloadTooLarge",
            f"the body is over the {self.max_payload_bytes} byte limit; send fewer rows",
        )

    def _parse(self, raw: bytes) -> tuple[str, bytes, str]:
        try:
            request = json.loads(
                raw,
                parse_constant=_refuse_constant,
                parse_float=_finite_float,
                parse_int=_finite_int,
            )
        except (ValueError, UnicodeDecodeError) as error:
            raise Reply(400, "BadRequest", f"the body is not valid JSON: {error}") from None
        except RecursionError:
            raise Reply(400, "BadRequest", "the body is nested too deeply") from None
        if not isinstance(request, dict):
            raise Reply(400, "BadRequest", 'the body must be a JSON object {"dataset", "rows"}')
        unknown = sorted(set(request) - _REQUEST_KEYS)
        if unknown:
            raise Reply(
                400, "BadRequest", f"unknown field(s) {unknown}; the fields are dataset and rows"
            )
        dataset, rows = request.get("dataset"), request.get("rows")
        if not isinstance(dataset, str) or not dataset:
            raise Reply(400, "BadRequest", "'dataset' must be a non-empty string")
        if isinstance(rows, str):
            if not rows.strip():
                raise Reply(400, "BadRequest", "'rows' holds no CSV rows")
            # One line may be a header; a quoted field may span lines, so count records.
            if rows.count("\n") >= self.max_rows and _csv_records(rows) > self.max_rows + 1:
                raise self._too_many_rows(_csv_records(rows))
            return dataset, rows.encode(), "text/csv"
        if not isinstance(rows, list) or not rows:
            raise Reply(
                400,
                "BadRequest",
                "'rows' must be a non-empty list of rows (lists or records) or CSV text",
            )
        if len(rows) > self.max_rows:
            raise self._too_many_rows(len(rows))
        try:
            payload = json.dumps(rows, allow_nan=False, separators=(",", ":"))
        except RecursionError:
            raise Reply(400, "BadRequest", "'rows' is nested too deeply") from None
        return dataset, payload.encode(), "application/json"

    def _too_many_rows(self, rows: int) -> Reply:
        return Reply(
            413,
            "TooManyRows",
            f"the request holds {rows} rows, more than the {self.max_rows} a request may have; "
            "split it",
        )

    # -- routing -------------------------------------------------------------------------------

    def _table_now(self, refresh: bool) -> RoutingTable | None:
        with self._lock:
            now = self.clock()
            if not refresh and now < self._expires:
                return self._table
            try:
                self._table = RoutingTable.from_json(self.read_table())
            except TableMissing:
                self._table = None
            except RoutingTableError as error:
                raise Reply(502, "RoutingTableError", str(error)) from None
            except TableForbidden as error:
                # The caller learns what kind of problem it is; the bucket, key and role stay
                # in the function's log for the operators.
                log.error("AccessDenied reading the routing table %s", error)
                if self._table is None:
                    raise Reply(
                        503,
                        "RoutingForbidden",
                        "the invoker is not allowed to read its routing table (S3 AccessDenied); "
                        "the stage's operators must fix the invoker role's S3 permissions",
                    ) from None
                log.warning("using the cached routing table")
            except Exception as error:
                if self._table is None:
                    raise Reply(
                        503,
                        "RoutingUnavailable",
                        f"cannot read the routing table: {error}",
                        retry_after=True,
                    ) from None
                # Serving from the last good table beats failing every request.
                log.warning("routing table unreadable, using the cached one: %s", error)
            self._expires = now + self.ttl_seconds
            return self._table

    def _route(self, dataset: str, refresh: bool = False) -> Route:
        table = self._table_now(refresh)
        if table is None or not table.routes:
            raise Reply(
                404,
                "NothingDeployed",
                f"nothing deployed to {self.stage or 'this stage'}: no dataset has a live model "
                "yet (approve a model version to deploy one)",
            )
        route = table.routes.get(dataset)
        if route is None:
            raise Reply(
                404,
                "NoLiveModel",
                f"dataset '{dataset}' is unknown or has no live model in this stage "
                f"(datasets with a live model: {', '.join(sorted(table.routes))})",
            )
        return route

    def _target(self, route: Route) -> Route:
        """The route's canary for a `canary_weight` share of the calls, else the live target."""
        if route.canary is not None and self.rng() < route.canary_weight:
            return route.canary
        return route

    # -- the endpoint --------------------------------------------------------------------------

    def _invoke(self, route: Route, payload: bytes, content_type: str) -> dict[str, Any]:
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint_name,
                TargetModel=route.target_model,
                ContentType=content_type,
                Accept="application/json",
                Body=payload,
            )
            body = response["Body"].read()
        except Exception as error:
            raise _endpoint_failure(error) from None
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Reply(
                502, "EndpointError", f"the endpoint answered non-JSON: {body[:200]!r}"
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
            raise Reply(502, "EndpointError", "the endpoint's answer has no predictions list")
        return answer


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON; null marks a missing value.
    raise ValueError(f"{name} is not JSON; send null for a missing value")


def _finite_float(text: str) -> float:
    # Python reads 1e999 as infinity, which no model takes and JSON cannot carry back out.
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is beyond the range of a float")
    return value


def _finite_int(text: str) -> int:
    value = int(text)
    if abs(value) > sys.float_info.max:
        raise ValueError(f"the number {text[:40]}... is beyond the range of a float")
    return value


def _csv_records(text: str) -> int:
    try:
        return sum(1 for record in csv.reader(io.StringIO(text)) if record)
    except csv.Error:
        return text.count("\n") + 1  # unparseable: the container will say why; lines bound it


def _container_message(original: str) -> str:
    """The serving container's own message out of its {"code","type","message"} body."""
    try:
        parsed = json.loads(original)
    except ValueError:
        return original
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return parsed["message"]
    return original


def _endpoint_failure(error: Exception) -> Reply:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        # botocore's connection, timeout and credential errors carry no response.
        name = type(error).__name__
        if "Connect" in name or "Timeout" in name:
            return Reply(
                503, "EndpointUnavailable", f"cannot reach the endpoint: {error}", retry_after=True
            )
        return Reply(502, "EndpointError", f"calling the endpoint failed: {name}: {error}")
    details = response.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", "")) or str(error)
    if code == "ModelError":
        original = response.get("OriginalStatusCode")
        text = _container_message(str(response.get("OriginalMessage", message)))
        if original in _CONTAINER_INPUT_ERRORS:
            return Reply(400, "BadRequest", f"the model refused the rows: {text}")
        if original == 413:
            return Reply(413, "PayloadTooLarge", f"the model refused the payload size: {text}")
        if original == 507:
            return Reply(503, "EndpointBusy", f"the endpoint is out of memory: {text}", True)
        return Reply(502, "EndpointError", f"the model failed (status {original}): {text}")
    if code in _THROTTLING:
        return Reply(503, "EndpointBusy", f"{code}: {message}", retry_after=True)
    if code == "ValidationError" and "model data" in message.lower():
        return Reply(502, "TargetModelGone", message)
    return Reply(502, "EndpointError", f"{code or type(error).__name__}: {message}")


def _s3_reader(uri: str) -> Callable[[], bytes]:
    import boto3  # imported here so that importing the module for tests stays cheap

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ValueError(f"ROUTING_TABLE_URI must be s3://bucket/key, got {uri!r}")
    client = boto3.client("s3")

    def read() -> bytes:
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.ClientError as error:
            # NoSuchKey needs s3:ListBucket as well; without it S3 says AccessDenied instead.
            code = error.response.get("Error", {}).get("Code")
            if code == "NoSuchKey":
                raise TableMissing(uri) from None
            if code == "AccessDenied":
                raise TableForbidden(f"{uri}: {error}") from None
            raise

    return read


_default: Invoker | None = None


def _inference_log_from_environment() -> BackgroundLog | None:
    table = os.environ.get("INFERENCE_LOG_TABLE")
    if not table:
        return None
    ttl_days = float(os.environ.get("INFERENCE_LOG_TTL_DAYS", DEFAULT_TTL_DAYS))
    return BackgroundLog(DynamoDBSink(table, dynamodb_client(), ttl_days))


def _from_environment() -> Invoker:
    import boto3
    from botocore.config import Config

    return Invoker(
        # One quick retry: the caller has its own timeout and a throttle is answered with 503.
        runtime=boto3.client(
            "sagemaker-runtime", config=Config(retries={"max_attempts": 2, "mode": "standard"})
        ),
        endpoint_name=os.environ["ENDPOINT_NAME"],
        read_table=_s3_reader(os.environ["ROUTING_TABLE_URI"]),
        stage=os.environ.get("STAGE", ""),
        ttl_seconds=float(os.environ.get("ROUTING_TTL_SECONDS", DEFAULT_TTL_SECONDS)),
        max_payload_bytes=int(os.environ.get("MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES)),
        max_rows=int(os.environ.get("MAX_ROWS_PER_REQUEST", DEFAULT_MAX_ROWS)),
        max_response_bytes=int(os.environ.get("MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES)),
        inference_log=_inference_log_from_environment(),
    )


_reported_losses = 0


def _after_call(inference_log: BackgroundLog) -> None:
    """Give the record a moment to reach the store, then publish any new losses as a metric."""
    global _reported_losses
    inference_log.drain(
        float(os.environ.get("INFERENCE_LOG_DRAIN_SECONDS", DEFAULT_LOG_DRAIN_SECONDS))
    )
    dropped = inference_log.stats().dropped
    if dropped > _reported_losses:
        print(json.dumps(_loss_metric(dropped - _reported_losses)))
        _reported_losses = dropped


def _loss_metric(count: int) -> dict[str, Any]:
    stage = os.environ.get("STAGE", "")
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": LOSS_METRIC_NAMESPACE,
                    "Dimensions": [["Stage"]],
                    "Metrics": [{"Name": LOSS_METRIC, "Unit": "Count"}],
                }
            ],
        },
        "Stage": stage,
        LOSS_METRIC: count,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: one Invoker per execution environment, reused across calls."""
    global _default
    if _default is None:
        try:
            _default = _from_environment()
        except (KeyError, ValueError) as error:
            log.exception("invoker misconfigured")
            return _with_request_id(
                _error_response(
                    Reply(502, "InvokerMisconfigured", f"the invoker is misconfigured: {error!r}")
                ),
                _request_id(event),
            )
    response = _default.handle(event)
    if isinstance(_default.inference_log, BackgroundLog):
        _after_call(_default.inference_log)
    return response
