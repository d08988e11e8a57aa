"""The inference log: every invocation through the invoker, in a structured store.

One record per invocation (`InferenceRecord`): request id, time, stage, dataset, the routed
target model and package version, the model version the container answered with, the HTTP
status, latency, the inputs exactly as sent to the endpoint, the predictions, and the call's
purpose: real traffic, or a smoke test (the invoker's `x-mme-purpose` request header).

The readers return real traffic only unless asked (`include_smoke`): a smoke test sends one
training-like row per deploy, which would pull the drift window toward the baseline, and a
canary is judged on what real callers got, not on the deploy pipeline's own probe (which may
also be the call that loads the model, with its cold-start latency).

Logging must never fail or slow a prediction, so `BackgroundLog` puts a record on a bounded
in-memory queue (`put_nowait`: it never waits) and a daemon thread writes batches to a sink.
A full queue, a failing sink or a record too large for the store drops the record and counts
it (`stats()`); nothing is raised to the invoker.

Sinks (each store with its reader in its own module; this one holds the record and the queue):
- `SQLiteSink` (modeldeploy.inference_log_sqlite), locally: `<home>/inference.sqlite`, an embedded database.
- `DynamoDBSink` (modeldeploy.inference_log_dynamodb), on AWS: a DynamoDB table per stage with TTL, keyed dataset / time. Chosen over
  Firehose -> S3 Parquet -> Athena because the drift job's only query is "this dataset's recent
  inputs", a single key-range Query; TTL bounds the table with no lifecycle job; the whole store
  is one CloudFormation resource with no Glue schema or Athena workgroup; and records are
  readable a moment after the call rather than after Firehose's buffer interval. Its limits:
  400 KB per item (larger inputs are left out of the record, which says so) and one partition's
  throughput per dataset, both fine for an MME's per-dataset traffic; at sustained thousands of
  requests a second per dataset Firehose to Parquet becomes the cheaper store.

Standard library: the invoker Lambda ships this file (and the DynamoDB one, whose boto3 is
imported on use).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Protocol

log = logging.getLogger("modeldeploy.inference_log")

# What a call was for, as recorded in InferenceRecord.purpose.
PURPOSE_TRAFFIC = "traffic"
PURPOSE_SMOKE = "smoke"
PURPOSES = (PURPOSE_TRAFFIC, PURPOSE_SMOKE)

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_BATCH_SIZE = 25  # DynamoDB BatchWriteItem's maximum
DEFAULT_TTL_DAYS = 30
# A store that is down fails every batch: say so once a minute, not once a batch.
WARNING_INTERVAL_SECONDS = 60.0
# DynamoDB's item limit is 400 KB; the rest of the record and attribute names need some room.
MAX_LOGGED_INPUT_BYTES = 350_000


@dataclass(frozen=True)
class InferenceRecord:
    request_id: str
    time: float  # epoch seconds
    stage: str
    dataset: str  # "" when the request was unreadable
    status: int
    latency_ms: float
    content_type: str = ""  # of `inputs`: application/json (rows) or text/csv
    inputs: str | None = None  # the rows as sent to the endpoint
    outputs: str | None = None  # the predictions, JSON
    target_model: str = ""
    model_package_version: int | None = None
    model_version: str = ""  # sha256 of the model file the container answered with
    error: str = ""
    # Rows and items written before this field existed lack it: they were all real traffic.
    purpose: str = PURPOSE_TRAFFIC

    @property
    def iso_time(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class LogStats:
    recorded: int  # written to the store
    dropped: int  # lost: queue full, store down, or refused
    queued: int  # waiting to be written


class InferenceLog(Protocol):
    """What the invoker needs: hand over a record without waiting; count what was lost."""

    def record(self, entry: InferenceRecord) -> None: ...

    def stats(self) -> LogStats: ...


class Sink(Protocol):
    """A store the background writer writes batches to; raises when the store is down."""

    def write(self, records: Sequence[InferenceRecord]) -> int:
        """Store the records; return how many the store refused (dropped)."""
        ...


class BackgroundLog:
    """A bounded queue in front of a sink, drained by one daemon thread."""

    def __init__(
        self,
        sink: Sink,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.sink = sink
        self.batch_size = batch_size
        self._queue: queue.Queue[InferenceRecord] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._recorded = 0
        self._dropped = 0
        self._writing = 0  # taken off the queue, not yet written or dropped
        self._last_warning = float("-inf")
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def record(self, entry: InferenceRecord) -> None:
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._count(dropped=1)
            self._warn("the queue is full: the store does not keep up")

    def stats(self) -> LogStats:
        with self._lock:
            return LogStats(self._recorded, self._dropped, self._queue.qsize() + self._writing)

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every queued record to be written or dropped.

        The Lambda handler calls this with a small budget before returning: a frozen execution
        environment runs no thread, and one that is shut down loses its queue.
        """
        deadline = time.monotonic() + timeout
        while self.stats().queued:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def _count(self, recorded: int = 0, dropped: int = 0, writing: int = 0) -> None:
        with self._lock:
            self._recorded += recorded
            self._dropped += dropped
            self._writing += writing

    def _take_batch(self) -> list[InferenceRecord]:
        batch = [self._queue.get()]
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._count(writing=len(batch))
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            failure = ""
            try:
                refused = self.sink.write(batch)
            except Exception as error:  # the store is down: predictions go on, the loss counts
                refused, failure = len(batch), f"the store failed: {error}"
            self._count(recorded=len(batch) - refused, dropped=refused, writing=-len(batch))
            if refused:
                self._warn(failure or "the store refused records")

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            self._last_warning = now
            log.warning("inference log: %s (%d record(s) lost so far)", what, self.stats().dropped)


def fit_for_store(entry: InferenceRecord) -> InferenceRecord:
    """The record without its inputs when they are too large to store, saying so."""
    if entry.inputs is not None and len(entry.inputs) > MAX_LOGGED_INPUT_BYTES:
        note = f"inputs of {len(entry.inputs)} bytes not logged"
        return InferenceRecord(**{**asdict(entry), "inputs": None, "error": note})
    return entry


def wanted(record: InferenceRecord, include_smoke: bool) -> bool:
    """Whether a reader returns this record: real traffic always, smoke tests when asked."""
    return include_smoke or record.purpose != PURPOSE_SMOKE


# Every field, in the order both stores write them.
RECORD_FIELDS = [f.name for f in fields(InferenceRecord)]
