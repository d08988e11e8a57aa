"""A TCP port the local endpoint wants: is it free, and if not, which process listens on it.

`mme endpoint serve` checks its ports before it starts the serving container, so a second serve
(or any other program on 8080) is one clear line naming the holder instead of a traceback.
The holder is read from Linux's /proc (the listening socket's inode, then the process holding
that inode); elsewhere, or without permission to look, the message says only that it is busy.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from container.errors import InputError

PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == _LISTEN
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    return inodes


def holder(port: int, proc: Path = PROC) -> str | None:
    """`process 1234 (mme endpoint serve)` for the process listening on `port`, if knowable."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:  # another user's process, or it just ended
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                try:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except (OSError, UnicodeDecodeError):
                    command = ""
                shown = f" ({command.strip()})" if command.strip() else ""
                return f"process {entry.name}{shown}"
    return None


def check_free(host: str, port: int, option: str) -> None:
    """Refuse a port something already listens on, naming the holder and the option to change."""
    if port == 0:  # the system picks a free one
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As http.server binds (allow_reuse_address): a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise InputError(f"cannot listen on {host}:{port}: {error.strerror}") from None
            by = holder(port)
            raise InputError(
                f"port {port} on {host} is busy{f', held by {by}' if by else ''}: stop that "
                f"process, or choose another port with {option}"
            ) from None
