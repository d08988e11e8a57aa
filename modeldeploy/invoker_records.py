"""What one invoker call leaves in the inference log: its record, and a canary's refusal's.

A `Call` gathers what a request got as far as (purpose, dataset, rows, route, answer, error) while
the invoker handles it; `record_call` turns it into the records the drift job and the canary
judgement read (`modeldeploy.inference_log`), never failing the call it describes. Apart from the
invoker's flow because the record layout is a contract with those readers, not with callers.

Standard library only: part of the invoker Lambda's zip (modeldeploy.build).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from modeldeploy.inference_log import PURPOSE_TRAFFIC, InferenceLog, InferenceRecord
from modeldeploy.invoker_replies import Reply
from modeldeploy.routing import Route

log = logging.getLogger("modeldeploy.invoker")

# The error of the log record a canary's refusal gets when the live version answered instead.
CANARY_REFUSED = "CanaryRefused"


@dataclass
class Call:
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


def record_call(
    inference_log: InferenceLog,
    call: Call,
    answer: dict[str, Any],
    started: float,
    stage: str,
) -> None:
    """Hand the call's record (and its canary's refusal, if any) to the log, without waiting."""
    if call.canary_refusal is not None:
        _record_canary_refusal(inference_log, call, started, stage)
    try:
        route, body = call.route, call.answer or {}
        predictions = body.get("predictions")
        inference_log.record(
            InferenceRecord(
                request_id=call.request_id,
                time=time.time(),
                stage=stage,
                dataset=call.dataset,
                status=int(answer["statusCode"]),
                latency_ms=(time.perf_counter() - started) * 1000.0,
                content_type=call.content_type,
                inputs=call.payload.decode() if call.payload is not None else None,
                outputs=None if predictions is None else json.dumps(predictions),
                target_model=route.target_model if route else "",
                model_package_version=route.model_package_version if route else None,
                model_version=str(body.get("model_version") or ""),
                error=call.error,
                purpose=call.purpose,
            )
        )
    except Exception:  # the log is never worth a prediction
        log.exception("could not build the inference log record")


def _record_canary_refusal(
    inference_log: InferenceLog, call: Call, started: float, stage: str
) -> None:
    assert call.canary_refusal is not None
    canary, reply, when = call.canary_refusal
    try:
        inference_log.record(
            InferenceRecord(
                request_id=f"{call.request_id}/canary",
                time=time.time() - (time.perf_counter() - when),
                stage=stage,
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
