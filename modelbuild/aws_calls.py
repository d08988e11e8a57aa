"""What every boto3 caller in the project shares: classifying a failed call, and paging a List call.

A failed call is classified once (`is_outage`): throttling, a 5xx or 429 answer, a dropped
connection or a timeout is the service's trouble and may pass once botocore's retries are spent
(a `ServiceError`, a distinct exit code at the command line); access denied, a failed validation
or a missing resource is the same next time (an `InputError`). `pipeline run`, `mme trials --aws`
and modeldeploy's S3 storage and model registry (modeldeploy.aws) all read errors through here,
so a throttled call is retryable everywhere. Both seed repositories ship this file
(template.seeds).

botocore is imported inside the functions: importing this module costs nothing for a command
that never calls AWS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from container.errors import InputError, ServiceError

# Error codes AWS services answer when they are busy or failing rather than refusing.
OUTAGE_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
    }
)
DENIED_CODES: Final = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# What S3 answers for a key that does not exist (GetObject, and HeadObject's bare 404).
NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})


def error_code(error: Exception) -> str:
    """A ClientError's code ("" for anything else)."""
    response = getattr(error, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if response else ""


def _status(error: Exception) -> int:
    response = getattr(error, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def is_outage(error: Exception) -> bool:
    """Whether a failed AWS call is the service's trouble (retrying may work), not the caller's."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(error, ClientError):
        status = _status(error)
        return error_code(error) in OUTAGE_CODES or status == 429 or status >= 500
    # Endpoint unreachable, connect or read timeout, connection closed mid-answer.
    return isinstance(error, (BotoConnectionError, HTTPClientError))


def is_denied(error: Exception) -> bool:
    """Whether the caller's credentials lack a permission (403 or an access-denied code)."""
    return error_code(error) in DENIED_CODES or _status(error) == 403


def describe(error: Exception) -> str:
    """A failed call in one line: the operation, the error code and AWS's own message."""
    response = getattr(error, "response", None)
    if response:
        detail = response.get("Error", {})
        operation = getattr(error, "operation_name", None) or "an AWS call"
        return f"{operation} failed: {detail.get('Code', '')}: {detail.get('Message', '')}"
    return f"AWS call failed: {error}"


def aws_problem(error: Exception, what: str = "", hint: str = "") -> InputError | ServiceError:
    """A failed call as the project's error: ServiceError for an outage (say that retrying may
    help), InputError otherwise; `what` says what was being done, `hint` is added to a refusal."""
    message = f"{what}: {describe(error)}" if what else describe(error)
    if is_outage(error):
        return ServiceError(f"{message} (a temporary AWS problem: try again)")
    return InputError(f"{message}; {hint}" if hint else message)


def pages(call: Callable[..., dict[str, Any]], key: str, **kwargs: Any) -> Iterator[Any]:
    """Every item under `key` of a List* call, following NextToken."""
    token = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return
