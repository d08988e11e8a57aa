"""The invoker handler behind a local HTTP server, as a Lambda Function URL runs it on AWS.

Each request becomes a Function URL event (payload format 2.0) for the stage named by the first
path segment (`POST http://127.0.0.1:<port>/dev` reaches the dev invoker), and the handler's
response dictionary becomes the HTTP response. On AWS each stage has its own function URL and
the path is ignored; here one port serves every stage. Malformed HTTP (a bad Content-Length, an
unknown method) is refused in JSON before it reaches the handler (`local.loopback`).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any

from local.loopback import JSONRequestHandler, LoopbackHTTPServer
from modeldeploy.invoker import Invoker

log = logging.getLogger("local.invoker")

# A Function URL refuses bodies over 6 MB itself; reading far more than that is never useful.
MAX_BODY_BYTES = 8 * 1024 * 1024


def _event(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    raw_path, _, query = path.partition("?")
    return {
        "version": "2.0",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": raw_path, "sourceIp": "127.0.0.1"}},
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


class _Handler(JSONRequestHandler):
    server: InvokerHTTPServer

    def error_body(self, status: int, code: str, message: str) -> tuple[bytes, dict[str, str]]:
        return json.dumps({"error": code, "message": message}).encode(), {}

    def _serve(self) -> None:
        body = self.read_body(MAX_BODY_BYTES)
        if body is None:
            return
        stage = self.path.split("?", 1)[0].strip("/").split("/", 1)[0]
        invoker = self.server.invokers.get(stage)
        if invoker is None:
            known = ", ".join(f"/{name}" for name in sorted(self.server.invokers))
            self.refuse(404, "NotFound", f"no invoker at this path; use {known}")
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        response = invoker.handle(_event(self.command, self.path, headers, body))
        payload = response.get("body") or ""
        data = (
            base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
        )
        self.send_json(int(response["statusCode"]), data, response.get("headers") or {})

    # What a Function URL hands the function; the invoker answers all but POST with 405.
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve


class InvokerHTTPServer(LoopbackHTTPServer):
    def __init__(self, address: tuple[str, int], invokers: dict[str, Invoker]) -> None:
        super().__init__(address, _Handler)
        self.invokers = invokers
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> InvokerHTTPServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
