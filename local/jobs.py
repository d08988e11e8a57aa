"""SageMaker jobs as local processes: the image's Python entry points run on warm workers.

A job is what SageMaker would run in a container: a command (`python3 -m container train`, or a
processing job's ContainerEntrypoint and ContainerArguments) with `/opt/ml` somewhere else. Every
`/opt/ml` path in the command is rewritten to the job's own directory and `SM_ML_ROOT` points
there, so the entry points (which read their paths from the environment at call time, see
`container/paths.py`) see the SageMaker layout without Docker.

Jobs run on warm worker processes (spawned once, every entry point's libraries imported once):
a worker swaps in the job's environment and argv, points file descriptors 1 and 2 at the job's
log (so output from C extensions is kept too), runs the module as `__main__`, and puts
everything back. A trial therefore pays for neither a fresh interpreter nor its imports, and one
job per core runs at a time. A job that kills its worker is reported as failed and the pool is
replaced; a job past its MaxRuntimeInSeconds is stopped.
"""

from __future__ import annotations

import importlib
import os
import re
import runpy
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from types import TracebackType

from container.errors import InputError

ML_ROOT = "/opt/ml"
# The image's ENTRYPOINT (container/Dockerfile); SageMaker starts a training job as
# `<ENTRYPOINT> train`.
IMAGE_ENTRYPOINT: tuple[str, ...] = ("python3", "-m", "container")
TRAIN_COMMAND = "train"
LOG_TAIL_LINES = 20
EXIT_TIMEOUT = 124
EXIT_WORKER_DIED = -9
# Every job's entry point, imported when a worker starts rather than by its first job.
WORKER_PRELOAD = ("container.training", "container.preprocess", "container.evaluate")
_PYTHON = re.compile(r"^(?:.*/)?python(?:\d+(?:\.\d+)?)?$")
# /opt/ml as a path of its own: at the start, or after '=' or ':' (e.g. `--input=/opt/ml/...`).
_ML_PATH = re.compile(r"(?:^|(?<=[=:]))/opt/ml(?=/|$)")


class JobError(InputError):
    """A job the local runtime cannot start as asked (not a failure of the job itself)."""


def python_module(command: list[str] | tuple[str, ...]) -> tuple[str, list[str]]:
    """`python3 -m <module> args...` -> (module, args); anything else cannot run in-process."""
    if len(command) >= 3 and _PYTHON.match(command[0]) and command[1] == "-m":
        return command[2], list(command[3:])
    raise JobError(
        f"entry point {' '.join(command)!r} is not 'python3 -m <module> ...'; the local runtime "
        "runs the image's Python entry points in worker processes"
    )


def remap(value: str, ml_root: Path) -> str:
    """Every /opt/ml path in a string (a path or a `--flag=/opt/ml/...` argument) moved."""
    return _ML_PATH.sub(str(ml_root).replace("\\", "/"), value)


@dataclass(frozen=True)
class Job:
    name: str
    command: tuple[str, ...]  # as SageMaker runs it, /opt/ml paths included
    ml_root: Path  # where /opt/ml lives for this job
    log: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    max_seconds: float | None = None

    def local_command(self) -> list[str]:
        return [remap(part, self.ml_root) for part in self.command]

    def local_environment(self) -> dict[str, str]:
        remapped = {k: remap(v, self.ml_root) for k, v in self.environment.items()}
        return {**remapped, "SM_ML_ROOT": str(self.ml_root)}


@dataclass(frozen=True)
class JobResult:
    name: str
    exit_code: int
    seconds: float
    log: Path

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().rstrip().splitlines()[-lines:])


class _JobTimeout(BaseException):
    """Raised in the job by the alarm; a BaseException so `except Exception` cannot swallow it."""


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise _JobTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _job_process_state(job: Job, log_fd: int) -> Iterator[None]:
    """The job's environment, argv and stdout/stderr for its duration, then the worker's again."""
    saved_env = dict(os.environ)
    saved_argv = list(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.environ.update(job.local_environment())
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv


def run_in_worker(job: Job) -> JobResult:
    """Run one job in this (warm) process as `python -m <module>` would, output to its log."""
    module, args = python_module(job.command)
    local_args = [remap(a, job.ml_root) for a in args]
    job.log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with job.log.open("ab") as log:
        log.write(f"$ {' '.join(job.local_command())}\n".encode())
        log.flush()
        with _job_process_state(job, log.fileno()):
            try:
                with _deadline(job.max_seconds):
                    sys.argv = [module, *local_args]
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as stop:
                code = _exit_code(stop.code)
            except _JobTimeout:
                print(f"error: the job ran past its {job.max_seconds:g} s limit", file=sys.stderr)
                code = EXIT_TIMEOUT
            except BaseException:
                traceback.print_exc()
                code = 1
    return JobResult(job.name, code, time.perf_counter() - started, job.log)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what the interpreter does with `sys.exit("message")`
    return 1


def _init_worker(preload: tuple[str, ...]) -> None:
    from threadpoolctl import threadpool_limits

    # Imported once per worker, not once per job.
    for module in preload:
        importlib.import_module(module)

    # Parallelism comes from running one job per core; BLAS/OpenMP threads would oversubscribe.
    threadpool_limits(limits=1)


def _ready(_index: int) -> int:
    return os.getpid()


def new_pool(
    workers: int | None = None, preload: tuple[str, ...] = WORKER_PRELOAD
) -> ProcessPoolExecutor:
    """Warm workers (spawned, so no OpenMP state is forked) with `preload` imported."""
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(preload,),
    )


def warm_up(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start every worker (imports included) before timing-sensitive work."""
    list(pool.map(_ready, range(workers * 4)))


class JobRunner:
    """A pool of warm worker processes running jobs; replaced if a job kills its worker."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def _current_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = new_pool(self.workers, WORKER_PRELOAD)
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def start(self) -> None:
        """Start the workers in the background (they import while the caller does other work)."""
        pool = self._current_pool()
        for _ in range(self.workers):
            pool.submit(os.getpid)

    def warm_up(self) -> None:
        """Start every worker now, so the first jobs do not pay for the imports."""
        warm_up(self._current_pool(), self.workers)

    def submit(self, job: Job) -> Future[JobResult]:
        """Run a job on a worker; a dead worker becomes a failed result, never an exception."""
        outer: Future[JobResult] = Future()
        pool = self._current_pool()
        try:
            inner = pool.submit(run_in_worker, job)
        except BrokenProcessPool:
            self._discard(pool)
            pool = self._current_pool()
            inner = pool.submit(run_in_worker, job)

        def settle(done: Future[JobResult]) -> None:
            try:
                outer.set_result(done.result())
            except BrokenProcessPool:
                self._discard(pool)
                with job.log.open("a") as log:
                    log.write(
                        "\nerror: the worker process running this job died without a result "
                        "(killed, or crashed in native code); jobs running beside it failed too\n"
                    )
                outer.set_result(JobResult(job.name, EXIT_WORKER_DIED, 0.0, job.log))
            except BaseException as error:
                outer.set_exception(error)

        inner.add_done_callback(settle)
        return outer

    def run(self, job: Job) -> JobResult:
        return self.submit(job).result()
