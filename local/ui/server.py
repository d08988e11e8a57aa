"""Serving the `mme ui` application with uvicorn on a socket bound here.

Binding the socket before uvicorn starts means a busy port is one clear line naming its holder
(as `mme endpoint serve` says it, `local.ports`), and port 0 gives a free port whose number is
known before the first request (the tests and the printed URL need it).
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from container.errors import InputError
from local.ports import check_free
from local.ui.security import LOOPBACK_NAMES

WILDCARDS = frozenset({"", "0.0.0.0", "::"})
STARTUP_SECONDS = 10.0


def bind(host: str, port: int, option: str = "--port") -> socket.socket:
    """A listening socket on HOST:PORT; a busy port is an InputError naming who holds it."""
    check_free(host, port, option)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:  # taken between the check and the bind
            check_free(host, port, option)
        raise InputError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in WILDCARDS:
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def allowed_hosts(host: str) -> frozenset[str]:
    """The Host names the server answers: loopback's, plus the one it was bound to (with a
    wildcard address, the machine's own names)."""
    if host in WILDCARDS:
        return LOOPBACK_NAMES | {socket.gethostname(), socket.getfqdn()}
    return LOOPBACK_NAMES | {host}


def server(app: ASGIApp) -> uvicorn.Server:
    # No lifespan: the app has no startup work. Access lines stay off: the page is one user's.
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    return uvicorn.Server(config)


def serve(app: ASGIApp, sock: socket.socket, on_started: Callable[[], None] | None = None) -> None:
    """Serve until Ctrl-C; `on_started` runs once the server accepts connections."""
    running = server(app)
    if on_started is not None:
        threading.Thread(target=_when_started, args=(running, on_started), daemon=True).start()
    running.run(sockets=[sock])


def _when_started(running: uvicorn.Server, then: Callable[[], None]) -> None:
    while not running.should_exit:
        if running.started:
            then()
            return
        time.sleep(0.05)


@contextmanager
def serving(app: ASGIApp, sock: socket.socket) -> Iterator[str]:
    """Serve in a background thread for the block (an embedding, or a test); yields the URL."""
    running = server(app)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not running.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not running.started:
            raise RuntimeError(f"mme ui did not start within {STARTUP_SECONDS:g} s")
        yield url_of(sock)
    finally:
        running.should_exit = True
        thread.join(STARTUP_SECONDS)
