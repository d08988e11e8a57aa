"""The supervisor: owns the socket, the worker processes and the list of loaded models.

It binds the port at once (so connections are accepted within SageMaker's 250 ms, queued until a
worker is ready), starts one worker per core, and serialises every load and unload: checks (409,
404, 507), then applies it in every worker, rolling back if any fails, and only then answers. A
worker that dies is restarted with the current models, so one crash never takes the endpoint
down. It imports no ML library: its memory stays small and its own start is instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Not container.artifact: it pulls in pandas (~60 MB, seconds of start-up) the supervisor never
# needs; container.archive unpacks with the standard library alone.
from container.archive import unpack_archive
from container.errors import InputError
from container.layout import ARTIFACT_FILE, MODEL_FILE, SIGNATURE_FILE
from container.serving import memory
from container.serving.config import DEFAULT_BUDGET_FRACTION, ServerConfig, config_to_json
from container.serving.control import Channel, ChannelClosed

log = logging.getLogger("container.serve")

LOAD_TIMEOUT = 300.0
START_TIMEOUT = 600.0
STOP_TIMEOUT = 25.0
# More restarts than this within the window means something is wrong with every start.
RESTART_LIMIT, RESTART_WINDOW = 5, 60.0
# One thread per worker for the numeric libraries: the workers already use every core.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    channel: Channel
    ready: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


@dataclass(frozen=True)
class Entry:
    url: str
    directory: Path
    unpacked: bool  # a directory we created from a model.tar.gz, removed on unload


class Supervisor:
    def __init__(self, config: ServerConfig):
        self.config = config
        budget = config.memory_budget_bytes
        if budget is None:
            budget = memory.default_budget(DEFAULT_BUDGET_FRACTION)
        self.budget = memory.Budget(budget)
        self.workers: list[Worker] = []
        self.registry: dict[str, Entry] = {}
        self.default: dict[str, str] | None = None
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.restarts: list[float] = []
        self.scratch = Path(tempfile.mkdtemp(prefix="mme-serve-"))
        self.listener: socket.socket | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        try:
            self.listener = _bind(self.config.host, self.config.port)
            if self.config.model_dir is not None:
                directory, _ = self._resolve(str(self.config.model_dir), "_invocations")
                self.default = {
                    "name": "_invocations",
                    "url": str(self.config.model_dir),
                    "dir": str(directory),
                }
            async with self.lock:
                started = await asyncio.gather(
                    *(self._start_worker() for _ in range(self.config.workers))
                )
            failures = [failure for failure in started if failure]
            if failures:
                log.error("%s", failures[0])
                self.exit_code = 2
            else:
                host, port = self.listener.getsockname()[:2]
                log.info(
                    "serving on %s:%d with %d worker(s), memory budget %s",
                    host,
                    port,
                    len(self.workers),
                    f"{self.budget.budget_bytes / 2**20:.0f} MB"
                    if self.budget.budget_bytes
                    else "none",
                )
                await self.stopping.wait()
        except (InputError, OSError) as error:
            log.error("cannot start: %s", error)
            self.exit_code = 2
        finally:
            await self._stop_workers()
            if self.listener is not None:
                self.listener.close()
            shutil.rmtree(self.scratch, ignore_errors=True)
        return self.exit_code

    async def _start_worker(self) -> str | None:
        """Start one worker and hand it the current models; a message if it cannot start.

        The caller holds the lock, so no load or unload can slip between the snapshot of the
        models handed over and the worker counting as ready.
        """
        assert self.listener is not None
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        for variable in THREAD_VARIABLES:
            env.setdefault(variable, "1")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "container.serving.worker",
            "--listen-fd",
            str(self.listener.fileno()),
            "--control-fd",
            str(theirs.fileno()),
            "--config",
            config_to_json(self.config),
            pass_fds=(self.listener.fileno(), theirs.fileno()),
            env=env,
        )
        theirs.close()
        worker = Worker(process, await Channel.open(ours))
        self.workers.append(worker)
        self._spawn(worker, worker.channel.serve(self._on_request))
        self._spawn(worker, self._watch(worker))
        models = [
            {"name": name, "url": entry.url, "dir": str(entry.directory)}
            for name, entry in sorted(self.registry.items())
        ]
        try:
            reply = await worker.channel.call(
                {"op": "init", "default": self.default, "models": models}, START_TIMEOUT
            )
        except (ChannelClosed, TimeoutError):
            return f"worker {process.pid} exited during start-up"
        if not reply["ok"]:
            return reply["message"]
        worker.ready = True
        return None

    def _spawn(self, worker: Worker, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        worker.tasks.add(task)
        task.add_done_callback(worker.tasks.discard)

    async def _watch(self, worker: Worker) -> None:
        code = await worker.process.wait()
        was_ready = worker.ready
        worker.ready = False
        if worker in self.workers:
            self.workers.remove(worker)
        if self.stopping.is_set() or not was_ready:
            return
        log.error("worker %d exited with code %s; restarting it", worker.process.pid, code)
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW] + [now]
        if len(self.restarts) > RESTART_LIMIT:
            log.error("workers keep exiting; stopping the server")
            self.exit_code = 1
            self.stopping.set()
            return
        async with self.lock:
            failure = await self._start_worker()
        if failure:
            log.error("restarted worker failed: %s", failure)

    async def _stop_workers(self) -> None:
        self.stopping.set()
        processes = [worker.process for worker in self.workers]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        waits = [asyncio.wait_for(p.wait(), STOP_TIMEOUT) for p in processes]
        for process, outcome in zip(
            processes, await asyncio.gather(*waits, return_exceptions=True), strict=True
        ):
            if isinstance(outcome, BaseException):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    # -- loads and unloads -------------------------------------------------------------------

    async def _on_request(self, message: dict[str, Any]) -> dict[str, Any]:
        if message["op"] == "load":
            return await self.load(message["name"], message["url"])
        if message["op"] == "unload":
            return await self.unload(message["name"])
        return _reply(400, "BadRequest", f"unknown operation {message['op']!r}")

    async def load(self, name: str, url: str) -> dict[str, Any]:
        async with self.lock:
            if name in self.registry:
                # MMS's wording, which AWS's own container tests assert.
                return _reply(409, "ConflictException", f"Model {name} is already registered.")
            if not _exists(url):
                return _reply(
                    404, "ModelNotFoundException", f"Model not found in model store: {url}"
                )
            try:
                directory, unpacked = self._resolve(url, name)
            except InputError as error:
                # The problem, not the server's paths: the caller knows the model by its name.
                return _reply(
                    422, "InvalidModelException", f"cannot load model {name}: {error.problem}"
                )
            workers = [w for w in self.workers if w.ready]
            estimate = memory.estimate_load_bytes(directory, MODEL_FILE, len(workers))
            refusal = self.budget.refusal(self._pids(), estimate)
            if refusal:
                self._discard(directory, unpacked)
                return _reply(507, "InsufficientMemory", f"cannot load model {name}: {refusal}")
            command = {"op": "apply_load", "name": name, "url": url, "dir": str(directory)}
            replies = await asyncio.gather(
                *(w.channel.call(command, LOAD_TIMEOUT) for w in workers), return_exceptions=True
            )
            failures = [_failure(reply) for reply in replies if _failure(reply)]
            if failures:
                await self._broadcast_unload(name, workers)
                self._discard(directory, unpacked)
                status, message = max(failures, key=lambda f: f[0] == 507)
                kind = {507: "InsufficientMemory", 422: "InvalidModelException"}.get(
                    status, "ModelLoadError"
                )
                return _reply(status, kind, f"cannot load model {name}: {message}")
            self.registry[name] = Entry(url, directory, unpacked)
            grown = sum(reply["memory"] for reply in replies if isinstance(reply, dict))
            log.info("model %s loaded in %d worker(s), +%.1f MB", name, len(workers), grown / 2**20)
            return {"status": 200, "body": {"status": "Workers scaled", "modelName": name}}

    async def unload(self, name: str) -> dict[str, Any]:
        async with self.lock:
            entry = self.registry.pop(name, None)
            if entry is None:
                return _reply(404, "ModelNotFoundException", f"Model not found: {name}")
            await self._broadcast_unload(name, [w for w in self.workers if w.ready])
            self._discard(entry.directory, entry.unpacked)
            return {"status": 200, "body": {"status": f'Model "{name}" unregistered'}}

    async def _broadcast_unload(self, name: str, workers: list[Worker]) -> None:
        command = {"op": "apply_unload", "name": name}
        # A worker that died meanwhile holds nothing; its restart gets the registry as it is.
        await asyncio.gather(
            *(w.channel.call(command, LOAD_TIMEOUT) for w in workers), return_exceptions=True
        )

    def _resolve(self, url: str, name: str) -> tuple[Path, bool]:
        """The artifact directory for `url`: as given, or unpacked from its model.tar.gz."""
        path = Path(url)
        if path.is_dir() and (path / SIGNATURE_FILE).is_file():
            return path, False
        archive = path / ARTIFACT_FILE if path.is_dir() else path
        if not archive.is_file():
            raise InputError(
                f"expected {MODEL_FILE} and {SIGNATURE_FILE}, or a {ARTIFACT_FILE}", file=path
            )
        target = Path(tempfile.mkdtemp(prefix="model-", dir=self.scratch))
        try:
            # Rare on AWS, where SageMaker extracts model.tar.gz itself; the local endpoint
            # hands over the archive.
            unpack_archive(archive, target, ARTIFACT_FILE)
        except InputError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return target, True

    def _discard(self, directory: Path, unpacked: bool) -> None:
        if unpacked:
            shutil.rmtree(directory, ignore_errors=True)

    def _pids(self) -> list[int]:
        return [os.getpid(), *(w.process.pid for w in self.workers)]


def _exists(url: str) -> bool:
    try:
        return Path(url).exists()
    except (ValueError, OSError):  # a NUL byte, a name too long for the filesystem
        return False


def _reply(status: int, kind: str, message: str) -> dict[str, Any]:
    return {"status": status, "body": {"code": status, "type": kind, "message": message}}


def _failure(reply: Any) -> tuple[int, str] | None:
    if isinstance(reply, ChannelClosed):
        # Most likely killed by the kernel's OOM killer; 507 makes SageMaker free memory first.
        return 507, "a worker process exited while loading (out of memory?)"
    if isinstance(reply, TimeoutError):
        return 503, f"loading did not finish within {LOAD_TIMEOUT:.0f} s"
    if isinstance(reply, BaseException):
        return 500, f"{type(reply).__name__}: {reply}"
    if not reply["ok"]:
        return reply["status"], reply["message"]
    return None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def run_supervisor(config: ServerConfig) -> int:
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s",
    )
    return asyncio.run(Supervisor(config).main())
