"""The base of the local runtime's HTTP servers (endpoint, invoker adapter)."""

from __future__ import annotations

import logging
import sys
from http.server import ThreadingHTTPServer
from typing import Any

log = logging.getLogger("local.http")


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading server whose request errors go to the log, not to stderr as tracebacks.

    socketserver prints every handler exception to stderr, so a client that hangs up early (a
    health probe, a closed keep-alive connection) would splice a traceback into the output of
    whatever command runs the server in-process.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.debug("client %s went away: %s", client_address, error)
            return
        log.exception("request from %s failed", client_address)
