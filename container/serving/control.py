"""Calls between the supervisor and a worker over their socketpair.

Each message is a 4-byte length and an orjson document. Either side can call the other and await
the reply: a worker calls the supervisor with a load or unload it received over HTTP; the
supervisor calls every worker to apply it. A handler that raises still answers, with an error the
caller's `call` raises as RemoteError, so no call waits out its timeout because of a bug.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

_HEADER = struct.Struct("!I")
log = logging.getLogger("container.serve")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ChannelClosed(ConnectionError):
    """The other process has gone (exited or crashed)."""


class RemoteError(RuntimeError):
    """The other process failed to answer a call: its handler raised (the message says how)."""


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def call(self, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        if self.closed:
            raise ChannelClosed("the other process has exited")
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        try:
            await self._send({"id": call_id, "call": message})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(call_id, None)

    async def serve(self, handler: Handler) -> None:
        """Read until the other side closes: answer its calls, resolve replies to ours."""
        try:
            while True:
                try:
                    header = await self._reader.readexactly(_HEADER.size)
                    payload = await self._reader.readexactly(_HEADER.unpack(header)[0])
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                message = orjson.loads(payload)
                if "reply" in message or "error" in message:
                    future = self._waiting.get(message["id"])
                    if future is not None and not future.done():
                        if "error" in message:
                            future.set_exception(RemoteError(message["error"]))
                        else:
                            future.set_result(message["reply"])
                else:
                    task = asyncio.create_task(self._answer(handler, message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            self.closed = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ChannelClosed("the other process has exited"))
            self._writer.close()

    async def _answer(self, handler: Handler, message: dict[str, Any]) -> None:
        try:
            answer: dict[str, Any] = {"id": message["id"], "reply": await handler(message["call"])}
        except Exception as error:
            # Without an answer the caller would wait out its whole timeout (minutes for a load).
            log.exception("handling %s failed", message["call"].get("op"))
            answer = {"id": message["id"], "error": f"{type(error).__name__}: {error}"}
        try:
            await self._send(answer)
        except ConnectionError:
            log.warning("could not reply to %s: the other process has exited", message["call"])

    async def _send(self, message: dict[str, Any]) -> None:
        payload = orjson.dumps(message)
        self._writer.write(_HEADER.pack(len(payload)) + payload)
        await self._writer.drain()
