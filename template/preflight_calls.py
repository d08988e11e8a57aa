"""How a preflight check calls AWS and what it reports: `aws_call` turns botocore's failures into
`CallFailed` (denied, unavailable or another error) or, for credentials AWS refuses, an
InputError that stops the run; `CheckResult` and `Status` are what every check returns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EndpointResolutionError,
    NoCredentialsError,
    NoRegionError,
    UnknownEndpointError,
)

from container.errors import InputError


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    action: str = ""


# ---------------------------------------------------------------------------- calling AWS

# Error codes by what they mean here (AWS services spell them differently).
DENIED_CODES: Final = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
CREDENTIAL_CODES: Final = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
# The region exists but this service or operation does not answer in it (or the region is not
# enabled for the account).
UNAVAILABLE_CODES: Final = frozenset(
    {"UnknownOperationException", "InvalidAction", "OptInRequired", "UnsupportedOperation"}
)
NO_CREDENTIALS: Final = (
    "no AWS credentials: configure a profile (aws configure / AWS_PROFILE) or set "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, then run the preflight again"
)


class CallFailed(Exception):
    """A read that AWS refused or could not serve; `kind` says which: denied/unavailable/error."""

    def __init__(self, kind: str, code: str, message: str):
        self.kind, self.code, self.message = kind, code, message
        super().__init__(f"{code}: {message}")


@contextmanager
def aws_call() -> Iterator[None]:
    """Turn botocore's exceptions into CallFailed, or into InputError for bad credentials."""
    try:
        yield
    except NoCredentialsError:
        raise InputError(NO_CREDENTIALS) from None
    except ClientError as error:
        detail = error.response.get("Error", {})
        code, message = str(detail.get("Code", "")), str(detail.get("Message", ""))
        if code in CREDENTIAL_CODES:
            raise InputError(f"AWS refused these credentials ({code}): {message}") from None
        kind = (
            "denied"
            if code in DENIED_CODES
            else "unavailable"
            if code in UNAVAILABLE_CODES
            else "error"
        )
        raise CallFailed(kind, code, message) from None
    except (
        EndpointConnectionError,
        ConnectTimeoutError,
        EndpointResolutionError,
        UnknownEndpointError,
    ) as error:
        raise CallFailed("unavailable", type(error).__name__, str(error)) from None
    except NoRegionError:
        raise InputError("no AWS region: pass --region (or set AWS_REGION)") from None
    except BotoCoreError as error:
        raise CallFailed("error", type(error).__name__, str(error)) from None


def denied(name: str, permission: str, failure: CallFailed) -> CheckResult:
    return CheckResult(
        name,
        Status.WARN,
        f"not checked: these credentials may not call {permission} ({failure.code})",
        f"run the preflight as a principal allowed {permission}, or check this by hand",
    )


def not_checked(name: str, failure: CallFailed) -> CheckResult:
    return CheckResult(
        name,
        Status.WARN,
        f"not checked: {failure.code}: {failure.message}",
        "run the preflight again; if this persists, check this by hand",
    )
