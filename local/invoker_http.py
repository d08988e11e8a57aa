"""The invoker handler behind a local HTTP server, as a Lambda Function URL runs it on AWS.

Each request becomes a Function URL event (payload format 2.0) for the stage named by the first
path segment (`POST http://127.0.0.1:<port>/dev` reaches the dev invoker), and the handler's
response dictionary becomes the HTTP response. On AWS each stage has its own function URL and
the path is ignored; here one port serves every stage.
"""

from __future__ import annotations

import base64
import logging
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from local.loopback import LoopbackHTTPServer
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle on, a keep-alive client's delayed
    # ACK holds every response for ~40 ms.
    disable_nagle_algorithm = True
    server: InvokerHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, b'{"error":"PayloadTooLarge","message":"the body is too large"}', {})
            return
        body = self.rfile.read(length) if length else b""
        stage = self.path.split("?", 1)[0].strip("/").split("/", 1)[0]
        invoker = self.server.invokers.get(stage)
        if invoker is None:
            known = ", ".join(f"/{name}" for name in sorted(self.server.invokers))
            message = f'{{"error":"NotFound","message":"no invoker at this path; use {known}"}}'
            self._send(404, message.encode(), {})
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        response = invoker.handle(_event(self.command, self.path, headers, body))
        payload = response.get("body") or ""
        data = (
            base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
        )
        self._send(int(response["statusCode"]), data, response.get("headers") or {})

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        headers = {"content-type": "application/json", **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


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
