"""Reading one invoker request: the Function URL event -> (purpose, dataset, payload, type).

Everything a caller can get wrong about a request is refused here, before any routing or
endpoint call, with the 4xx the invoker promises: no or undecodable body 400, over the payload
limit 413, not `{"dataset", "rows"}` 400, NaN/Infinity or numbers beyond a float 400, more rows
than the limit 413. Apart from the invoker's flow because this is the part that grows with
every input format, and the part the limit and fuzz tests exercise on its own.

Standard library only: part of the invoker Lambda's zip (modeldeploy.build).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from modeldeploy.inference_log import PURPOSE_TRAFFIC, PURPOSES
from modeldeploy.invoker_replies import Reply

# A request may say what it is for: `traffic` (the default) or `smoke` (the smoke test).
PURPOSE_HEADER = "x-mme-purpose"
_REQUEST_KEYS = frozenset({"dataset", "rows"})


@dataclass(frozen=True)
class Request:
    dataset: str
    # The rows as the endpoint takes them: compact JSON, or the caller's CSV text.
    payload: bytes
    content_type: str


def request_event(dataset: str, rows: Any, purpose: str = PURPOSE_TRAFFIC) -> dict[str, Any]:
    """A Function URL event carrying an invoker request, as a caller's POST arrives."""
    return {
        "version": "2.0",
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "headers": {"content-type": "application/json", PURPOSE_HEADER: purpose},
        "body": json.dumps({"dataset": dataset, "rows": rows}),
        "isBase64Encoded": False,
    }


def request_id(event: dict[str, Any]) -> str:
    """The Function URL's request id, else a fresh one: the id the inference log record has."""
    return str(event.get("requestContext", {}).get("requestId") or uuid.uuid4().hex)


def purpose(event: dict[str, Any]) -> str:
    value = (event.get("headers") or {}).get(PURPOSE_HEADER, PURPOSE_TRAFFIC)
    if value not in PURPOSES:
        raise Reply(
            400,
            "BadRequest",
            f"{PURPOSE_HEADER} must be one of {', '.join(PURPOSES)}, not {value!r}",
        )
    return value


def check_method(event: dict[str, Any]) -> None:
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    if method != "POST":
        raise Reply(405, "MethodNotAllowed", f"use POST, not {method}")


def raw_body(event: dict[str, Any], max_payload_bytes: int) -> bytes:
    body = event.get("body")
    if body is None or body == "":
        raise Reply(400, "BadRequest", 'the request has no body; send {"dataset", "rows"}')
    if not isinstance(body, str):
        raise Reply(400, "BadRequest", "the request body is not text")
    if event.get("isBase64Encoded"):
        # base64 is 4/3 of the payload: refuse on the encoded size before decoding it.
        if len(body) > (max_payload_bytes * 4) // 3 + 4:
            raise _too_large(max_payload_bytes)
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Reply(400, "BadRequest", "the body is marked base64 but is not") from None
    else:
        raw = body.encode()
    if len(raw) > max_payload_bytes:
        raise _too_large(max_payload_bytes)
    return raw


def _too_large(max_payload_bytes: int) -> Reply:
    return Reply(
        413,
        "PayloadTooLarge",
        f"the body is over the {max_payload_bytes} byte limit; send fewer rows",
    )


def parse(raw: bytes, max_rows: int) -> Request:
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
        if rows.count("\n") >= max_rows and _csv_records(rows) > max_rows + 1:
            raise _too_many_rows(_csv_records(rows), max_rows)
        return Request(dataset, rows.encode(), "text/csv")
    if not isinstance(rows, list) or not rows:
        raise Reply(
            400,
            "BadRequest",
            "'rows' must be a non-empty list of rows (lists or records) or CSV text",
        )
    if len(rows) > max_rows:
        raise _too_many_rows(len(rows), max_rows)
    try:
        payload = json.dumps(rows, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise Reply(400, "BadRequest", "'rows' is nested too deeply") from None
    return Request(dataset, payload.encode(), "application/json")


def _too_many_rows(rows: int, max_rows: int) -> Reply:
    return Reply(
        413,
        "TooManyRows",
        f"the request holds {rows} rows, more than the {max_rows} a request may have; split it",
    )


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
