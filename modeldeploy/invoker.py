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
and boto3 only: this file and the modeldeploy modules it imports are the whole Lambda package
(`modeldeploy.build` follows the imports).

Environment: ENDPOINT_NAME, ROUTING_TABLE_URI (s3://bucket/<stage>/routing/live.json), STAGE,
ROUTING_TTL_SECONDS (default 10), MAX_PAYLOAD_BYTES (default 6 MB, InvokeEndpoint's limit),
MAX_ROWS_PER_REQUEST (default 10,000), MAX_RESPONSE_BYTES (default 6 MB, Lambda's);
INFERENCE_LOG_TABLE (the DynamoDB table; unset: no log), INFERENCE_LOG_TTL_DAYS (default 30),
INFERENCE_LOG_DRAIN_SECONDS (default 0.05: how long a call may wait for its record to be written
before the Lambda freezes; 0 leaves it queued for the next call); read once, by
`modeldeploy.environment.InvokerSettings`, and a missing or malformed one answers 502
InvokerMisconfigured naming it.

The parts: `invoker_request` reads a request, `invoker_routing` caches the routing table,
`invoker_replies` maps every failure to its status once, `invoker_records` writes what a call
leaves in the inference log; this module runs one call through them (the canary's fallback, the
response limit) and is the Lambda entry point.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

from modeldeploy import invoker_request as request
from modeldeploy.environment import (
    DEFAULT_LOG_DRAIN_SECONDS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_ROWS,
    DEFAULT_TTL_SECONDS,
    InvokerSettings,
)
from modeldeploy.inference_log import PURPOSE_TRAFFIC, BackgroundLog, InferenceLog
from modeldeploy.inference_log_dynamodb import DynamoDBSink, dynamodb_client
from modeldeploy.invoker_records import CANARY_REFUSED, Call, record_call
from modeldeploy.invoker_replies import (
    REQUEST_ID_HEADER,
    Reply,
    endpoint_failure,
    error_response,
    reply_for,
    response,
    with_request_id,
)
from modeldeploy.invoker_request import PURPOSE_HEADER, request_event
from modeldeploy.invoker_routing import RoutingCache, TableForbidden, TableMissing, s3_reader
from modeldeploy.routing import Route

# The names callers and tests import from here, wherever they are defined.
__all__ = [
    "CANARY_REFUSED",
    "DEFAULT_LOG_DRAIN_SECONDS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_TTL_SECONDS",
    "LOSS_METRIC",
    "LOSS_METRIC_NAMESPACE",
    "PURPOSE_HEADER",
    "REQUEST_ID_HEADER",
    "Invoker",
    "Reply",
    "TableForbidden",
    "TableMissing",
    "handler",
    "request_event",
]

log = logging.getLogger("modeldeploy.invoker")
log.setLevel(logging.INFO)

# Embedded Metric Format: a log line CloudWatch turns into a metric, with no API call.
LOSS_METRIC_NAMESPACE = "MME/Invoker"
LOSS_METRIC = "InferenceLogDropped"


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
        self.stage = stage
        self.max_payload_bytes = max_payload_bytes
        self.max_rows = max_rows
        self.max_response_bytes = max_response_bytes
        self.inference_log = inference_log
        self.rng = rng
        self.routing = RoutingCache(read_table, ttl_seconds, clock, stage)

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """A Function URL event (payload 2.0) -> a Function URL response; never raises."""
        started = time.perf_counter()
        call = Call(request.request_id(event))
        try:
            answer = self._handle(event, call)
        except Exception as error:  # every failure is answered, with its reason
            reply = reply_for(error)
            if reply.status == 500:
                log.exception("%s: invoker failed", call.request_id)
            elif reply.status >= 500:
                log.warning(
                    "%s: %d %s: %s", call.request_id, reply.status, reply.error, reply.message
                )
            call.error = f"{reply.error}: {reply.message}"
            answer = error_response(reply)
        answer = with_request_id(answer, call.request_id)
        if answer["statusCode"] == 200:
            answer = self._within_response_limit(answer, call)
        if self.inference_log is not None:
            record_call(self.inference_log, call, answer, started, self.stage)
        return answer

    def _handle(self, event: dict[str, Any], call: Call) -> dict[str, Any]:
        # First, so that a smoke test's call is marked even when it is refused.
        call.purpose = request.purpose(event)
        request.check_method(event)
        parsed = request.parse(request.raw_body(event, self.max_payload_bytes), self.max_rows)
        dataset, payload, content_type = parsed.dataset, parsed.payload, parsed.content_type
        call.dataset, call.payload, call.content_type = dataset, payload, content_type
        live = self.routing.route(dataset)
        route = call.route = self._target(live)
        try:
            answer = self._invoke(route, payload, content_type)
        except Reply as reply:
            if reply.error == "TargetModelGone":
                # The target vanished: the table moved on since it was cached. Refresh once.
                live = self.routing.route(dataset, refresh=True)
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
        return response(
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

    def _target(self, route: Route) -> Route:
        """The route's canary for a `canary_weight` share of the calls, else the live target."""
        if route.canary is not None and self.rng() < route.canary_weight:
            return route.canary
        return route

    def _invoke(self, route: Route, payload: bytes, content_type: str) -> dict[str, Any]:
        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint_name,
                TargetModel=route.target_model,
                ContentType=content_type,
                Accept="application/json",
                Body=payload,
            )
            body = answer["Body"].read()
        except Exception as error:
            raise endpoint_failure(error) from None
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Reply(
                502, "EndpointError", f"the endpoint answered non-JSON: {body[:200]!r}"
            ) from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("predictions"), list):
            raise Reply(502, "EndpointError", "the endpoint's answer has no predictions list")
        return parsed

    def _within_response_limit(self, answer: dict[str, Any], call: Call) -> dict[str, Any]:
        """The response, or a 413 if Lambda could not return it: it serialises the whole
        dictionary as JSON, the body string escaped inside it."""
        size = len(json.dumps(answer).encode())
        if size <= self.max_response_bytes:
            return answer
        rows = len((call.answer or {}).get("predictions") or []) or 1
        fits = max(1, self.max_response_bytes * rows // size)
        reply = Reply(
            413,
            "ResponseTooLarge",
            f"the answer for {rows} rows is {size} bytes, over the {self.max_response_bytes} "
            f"bytes a response may have; send at most about {fits} rows per request",
        )
        call.answer, call.error = None, f"{reply.error}: {reply.message}"
        return with_request_id(error_response(reply), call.request_id)


# -- the Lambda entry point ------------------------------------------------------------------------

_default: Invoker | None = None
_settings: InvokerSettings | None = None
_reported_losses = 0


def from_settings(settings: InvokerSettings) -> Invoker:
    """The deployed invoker: the SageMaker runtime, the table in S3, the DynamoDB log."""
    import boto3
    from botocore.config import Config

    inference_log = None
    if settings.inference_log_table:
        inference_log = BackgroundLog(
            DynamoDBSink(
                settings.inference_log_table, dynamodb_client(), settings.inference_log_ttl_days
            )
        )
    return Invoker(
        # One quick retry: the caller has its own timeout and a throttle is answered with 503.
        runtime=boto3.client(
            "sagemaker-runtime", config=Config(retries={"max_attempts": 2, "mode": "standard"})
        ),
        endpoint_name=settings.endpoint_name,
        read_table=s3_reader(settings.routing_table_uri),
        stage=settings.stage,
        ttl_seconds=settings.routing_ttl_seconds,
        max_payload_bytes=settings.max_payload_bytes,
        max_rows=settings.max_rows,
        max_response_bytes=settings.max_response_bytes,
        inference_log=inference_log,
    )


def _after_call(inference_log: BackgroundLog, drain_seconds: float, stage: str) -> None:
    """Give the record a moment to reach the store, then publish any new losses as a metric."""
    global _reported_losses
    inference_log.drain(drain_seconds)
    dropped = inference_log.stats().dropped
    if dropped > _reported_losses:
        print(json.dumps(_loss_metric(dropped - _reported_losses, stage)))
        _reported_losses = dropped


def _loss_metric(count: int, stage: str = "") -> dict[str, Any]:
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
    global _default, _settings
    if _default is None:
        try:
            _settings = InvokerSettings.from_environ(os.environ)
            _default = from_settings(_settings)
        except Exception as error:  # a missing variable, a bad value, no AWS region: say which
            log.exception("invoker misconfigured")
            return with_request_id(
                error_response(
                    Reply(502, "InvokerMisconfigured", f"the invoker is misconfigured: {error}")
                ),
                request.request_id(event),
            )
    answer = _default.handle(event)
    if isinstance(_default.inference_log, BackgroundLog):
        drain = _settings.inference_log_drain_seconds if _settings else DEFAULT_LOG_DRAIN_SECONDS
        _after_call(_default.inference_log, drain, _default.stage)
    return answer
