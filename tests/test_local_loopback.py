"""The local HTTP servers keep request errors out of the output of the command running them."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler

import pytest

from local.loopback import LoopbackHTTPServer

# Every test here starts processes or servers (tests/process_guard.py).
pytestmark = pytest.mark.integration


def test_a_client_hanging_up_is_logged_not_printed(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    server = LoopbackHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        with caplog.at_level(logging.DEBUG, logger="local.http"):
            try:
                raise ConnectionResetError(104, "Connection reset by peer")
            except ConnectionResetError:
                server.handle_error(None, ("127.0.0.1", 1))
            try:
                raise ValueError("handler bug")
            except ValueError:
                server.handle_error(None, ("127.0.0.1", 2))
    finally:
        server.server_close()
    assert capsys.readouterr().err == ""
    levels = {record.levelname for record in caplog.records}
    assert levels == {"DEBUG", "ERROR"}
    assert "handler bug" in caplog.text
