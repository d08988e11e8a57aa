"""The error every handler raises: an HTTP status, a short type name and a message for the caller.

The body mirrors Multi Model Server's (`{"code", "type", "message"}`), which is what tools written
against AWS's containers already parse.
"""

from __future__ import annotations


class HttpError(Exception):
    def __init__(self, status: int, error_type: str, message: str):
        self.status = status
        self.error_type = error_type
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, object]:
        return {"code": self.status, "type": self.error_type, "message": self.message}


def bad_request(message: str) -> HttpError:
    return HttpError(400, "BadRequest", message)


def model_not_found(name: str) -> HttpError:
    # The exact wording of MMS, which AWS's own container tests assert.
    return HttpError(404, "ModelNotFoundException", f"Model not found: {name}")
