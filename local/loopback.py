"""The base of the local runtime's HTTP servers (endpoint, invoker adapter).

Both answer in JSON whatever arrives: a method they do not serve gets a JSON 405 (not
http.server's 501 HTML page), a malformed request line or header a JSON 4xx, a Content-Length
that is not a non-negative integer a 400, one over the server's limit a 413 without reading the
body; a client that stops sending mid-body is dropped after READ_TIMEOUT_SECONDS, so no request
holds a thread for longer.
"""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("local.http")

# How long a client may take to send a request, and how long an idle keep-alive stays open.
READ_TIMEOUT_SECONDS = 30.0
# http.server's own refusals that are 5xx only because HTTP says so: the request was wrong.
_AS_CLIENT_ERRORS = {
    HTTPStatus.NOT_IMPLEMENTED: HTTPStatus.METHOD_NOT_ALLOWED,
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: HTTPStatus.BAD_REQUEST,
}


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading server whose request errors go to the log, not to stderr as tracebacks.

    socketserver prints every handler exception to stderr, so a client that hangs up early (a
    health probe, a closed keep-alive connection) would splice a traceback into the output of
    whatever command runs the server in-process.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address, error)
            return
        log.exception("request from %s failed", client_address)


class JSONRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every answer, refusals included, is JSON (`error_body`)."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle on, a keep-alive client's delayed
    # ACK holds every response for ~40 ms.
    disable_nagle_algorithm = True
    timeout = READ_TIMEOUT_SECONDS
    # The methods the server answers; any other gets 405 naming them.
    allowed_methods: tuple[str, ...] = ("POST",)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def error_body(self, status: int, code: str, message: str) -> tuple[bytes, dict[str, str]]:
        """The body and extra headers of a refusal; each server words them its own way."""
        raise NotImplementedError

    def send_json(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        if not any(key.lower() == "content-type" for key in headers):
            headers["Content-Type"] = "application/json"
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def refuse(self, status: int, code: str, message: str, close: bool = False) -> None:
        body, headers = self.error_body(status, code, message)
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            headers = {"Allow": ", ".join(self.allowed_methods), **headers}
        if close:
            # The rest of what the client sent cannot be read as a request.
            self.close_connection = True
            headers = {"Connection": "close", **headers}
        self.send_json(status, body, headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (unknown method, malformed request line or headers) as
        JSON; the connection is closed, as http.server does."""
        status = _AS_CLIENT_ERRORS.get(HTTPStatus(code), HTTPStatus(code))
        if code == HTTPStatus.NOT_IMPLEMENTED:
            message = f"{self.command} is not supported; use {' or '.join(self.allowed_methods)}"
        kind = "MethodNotAllowed" if status == HTTPStatus.METHOD_NOT_ALLOWED else "BadRequest"
        self.refuse(int(status), kind, message or status.phrase, close=True)

    def read_body(self, limit: int) -> bytes | None:
        """The request body, or None once the request has been refused (answered here)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.refuse(411, "LengthRequired", "send the body with a Content-Length", close=True)
            return None
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        if not declared.strip().isdigit():
            self.refuse(
                400,
                "BadRequest",
                f"Content-Length must be a non-negative integer, got {declared[:40]!r}",
                close=True,
            )
            return None
        length = int(declared)
        if length > limit:
            self.refuse(
                413,
                "PayloadTooLarge",
                f"the body is {length} bytes, over the {limit} bytes a request may have",
                close=True,
            )
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client closed early: nobody to answer
            self.close_connection = True
            return None
        return body
