"""Micro-batching: concurrent requests to one model share a single predict call.

Tree ensembles and scikit-learn pipelines pay most of their cost per call, not per row, so under
load one call for sixteen one-row requests costs little more than one call for one. A request
never waits longer than the predict already running for its model plus its own (and, if
configured, `max_delay` for others to join): when the model is idle the batch is flushed as soon
as the event loop has taken in the requests that arrived together with it. While a model is under
concurrent load (its last batch had company), a lone request waits a little for others: a
quarter of the model's measured predict time, at most ADAPTIVE_WAIT_CAP. A slow model then
batches its callers instead of serving them one by one; a fast one, or an idle one, never waits.

Small batches predict on the event loop thread, which is cheapest; large ones run on a thread so
that /ping and other models keep answering meanwhile (the estimators release the GIL in their
numeric kernels).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

# Rows above which a batch leaves the event loop: ~1-50 ms of predict for the families here.
INLINE_ROWS = 256
ADAPTIVE_WAIT_CAP = 0.002


class MicroBatcher:
    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        executor: Executor,
        max_rows: int,
        max_delay: float,
    ):
        self._predict = predict
        self._executor = executor
        self._max_rows = max_rows
        self._max_delay = max_delay
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._pending_rows = 0
        self._scheduled: asyncio.Handle | None = None
        self._busy = False
        self._contended = False
        self._cost = 0.0  # moving average of one predict call, seconds

    async def predict(self, matrix: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((matrix, future))
        self._pending_rows += len(matrix)
        if not self._busy:
            if self._pending_rows >= self._max_rows:
                self._schedule(loop, 0.0)
            elif self._scheduled is None:
                self._schedule(loop, self._wait())
        return await future

    def _wait(self) -> float:
        if self._max_delay > 0:
            return self._max_delay
        return min(ADAPTIVE_WAIT_CAP, self._cost / 4) if self._contended else 0.0

    def _schedule(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
        # call_soon runs after the handlers already woken in this loop iteration, so requests
        # that arrived together join the batch without any timer.
        self._scheduled = (
            loop.call_later(delay, self._flush) if delay > 0 else loop.call_soon(self._flush)
        )

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        pending = self._pending
        if self._pending_rows <= self._max_rows:  # all of it: the usual case
            taken, self._pending, self._pending_rows = pending, [], 0
        else:
            count, rows = 0, 0
            while count < len(pending) and (
                not count or rows + len(pending[count][0]) <= self._max_rows
            ):
                rows += len(pending[count][0])
                count += 1
            taken, self._pending = pending[:count], pending[count:]
            self._pending_rows -= rows
        return [(m, f) for m, f in taken if not f.cancelled()]

    def _flush(self) -> None:
        self._scheduled = None
        if len(self._pending) == 1 and len(self._pending[0][0]) <= INLINE_ROWS:
            self._flush_one()
            return
        batch = self._take()
        if not batch:
            return
        self._contended = len(batch) > 1 or bool(self._pending)
        if sum(len(m) for m, _ in batch) <= INLINE_ROWS:
            _deliver(batch, self._run(batch))
            self._after()
            return
        self._busy = True
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, self._run, batch)
        done.add_done_callback(lambda outcome: self._finished(batch, outcome))

    def _flush_one(self) -> None:
        """One request and an idle model, what every request at concurrency 1 meets: the same
        as a batch of one, without the list-building of a batch."""
        matrix, future = self._pending.pop()
        self._pending_rows = 0
        if future.cancelled():
            return
        self._contended = False
        started = time.perf_counter()
        try:
            proba = self._predict(matrix)
        except Exception as error:
            future.set_exception(error)
        else:
            future.set_result(proba)
        finally:
            self._cost = 0.8 * self._cost + 0.2 * (time.perf_counter() - started)

    def _finished(self, batch: list, outcome: asyncio.Future) -> None:
        self._busy = False
        try:
            results = outcome.result()
        except BaseException as error:  # the executor itself failed (e.g. shutting down)
            results = [error] * len(batch)
        _deliver(batch, results)
        self._after()

    def _after(self) -> None:
        if self._pending and self._scheduled is None:
            self._schedule(asyncio.get_running_loop(), 0.0)

    def _run(self, batch: list) -> list[np.ndarray | BaseException]:
        """One predict for the batch; if it fails, each request alone, so a request that makes
        the model fail cannot fail the others."""
        matrices = [matrix for matrix, _ in batch]
        started = time.perf_counter()
        try:
            return self._predict_each(matrices)
        finally:
            self._cost = 0.8 * self._cost + 0.2 * (time.perf_counter() - started)

    def _predict_each(self, matrices: list[np.ndarray]) -> list[np.ndarray | BaseException]:
        if len(matrices) > 1:
            try:
                proba = self._predict(np.concatenate(matrices))
            except Exception:
                pass
            else:
                bounds = np.cumsum([len(m) for m in matrices])[:-1]
                return list(np.split(proba, bounds))
        results: list[np.ndarray | BaseException] = []
        for matrix in matrices:
            try:
                results.append(self._predict(matrix))
            except Exception as error:
                results.append(error)
        return results


def _deliver(batch: list, results: list[np.ndarray | BaseException]) -> None:
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
