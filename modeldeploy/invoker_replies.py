"""What the invoker answers: Function URL responses, and the one mapping of failures to statuses.

Every way a request can stop short of a prediction becomes a `Reply` (status, error type, message)
in `reply_for`: a Reply raised on purpose as it is; the project's errors by kind (the user's input
400, a retryable outage 503 with Retry-After); a SageMaker runtime failure by its code and the
serving container's own status (`endpoint_failure`); anything else 500, naming its type. Kept
apart from the request parsing and the routing so that the status table the module docstring of
`modeldeploy.invoker` promises lives in one file.

Standard library only: part of the invoker Lambda's zip (modeldeploy.build).
"""

from __future__ import annotations

import json
from typing import Any

RETRY_AFTER_SECONDS = "2"
# Function URLs hand the handler lower-case header names.
REQUEST_ID_HEADER = "x-mme-request-id"
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


class Reply(Exception):
    """An answer other than 200, raised from wherever the request stops."""

    def __init__(self, status: int, error: str, message: str, retry_after: bool = False):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after


def response(
    status: int, body: dict[str, Any], extra: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(extra or {})},
        "body": json.dumps(body, allow_nan=False, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error_response(reply: Reply) -> dict[str, Any]:
    extra = {"retry-after": RETRY_AFTER_SECONDS} if reply.retry_after else {}
    if reply.status == 405:
        extra["allow"] = "POST"
    return response(reply.status, {"error": reply.error, "message": reply.message}, extra)


def with_request_id(answer: dict[str, Any], request_id: str) -> dict[str, Any]:
    answer["headers"][REQUEST_ID_HEADER] = request_id
    return answer


def is_project_error(error: BaseException) -> bool:
    """One of the project's errors (container.errors.ProjectError): told by its shape, since
    the Lambda's zip ships without container/ and a local runtime may raise them."""
    return isinstance(getattr(error, "retryable", None), bool) and callable(
        getattr(error, "describe", None)
    )


def reply_for(error: BaseException) -> Reply:
    """The answer for whatever stopped a request: the invoker's one error-to-status mapping."""
    if isinstance(error, Reply):
        return error
    if is_project_error(error):
        message = str(error.describe())  # type: ignore[attr-defined]
        if error.retryable:  # type: ignore[attr-defined]
            return Reply(503, "ServiceUnavailable", message, retry_after=True)
        return Reply(400, "BadRequest", message)
    return Reply(500, "InternalError", f"the invoker failed: {type(error).__name__}: {error}")


def _container_message(original: str) -> str:
    """The serving container's own message out of its {"code","type","message"} body."""
    try:
        parsed = json.loads(original)
    except ValueError:
        return original
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return parsed["message"]
    return original


def endpoint_failure(error: Exception) -> Reply:
    """A failed InvokeEndpoint call: the rows' fault 4xx, an outage 503, the endpoint's 502."""
    if is_project_error(error):
        return reply_for(error)
    answer = getattr(error, "response", None)
    if not isinstance(answer, dict):
        # botocore's connection, timeout and credential errors carry no response.
        name = type(error).__name__
        if "Connect" in name or "Timeout" in name:
            return Reply(
                503, "EndpointUnavailable", f"cannot reach the endpoint: {error}", retry_after=True
            )
        return Reply(502, "EndpointError", f"calling the endpoint failed: {name}: {error}")
    details = answer.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", "")) or str(error)
    if code == "ModelError":
        original = answer.get("OriginalStatusCode")
        text = _container_message(str(answer.get("OriginalMessage", message)))
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
