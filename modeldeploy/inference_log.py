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

Sinks:
- `SQLiteSink`, locally: `<home>/inference.sqlite`, an embedded database.
- `DynamoDBSink`, on AWS: a DynamoDB table per stage with TTL, keyed dataset / time. Chosen over
  Firehose -> S3 Parquet -> Athena because the drift job's only query is "this dataset's recent
  inputs", a single key-range Query; TTL bounds the table with no lifecycle job; the whole store
  is one CloudFormation resource with no Glue schema or Athena workgroup; and records are
  readable a moment after the call rather than after Firehose's buffer interval. Its limits:
  400 KB per item (larger inputs are left out of the record, which says so) and one partition's
  throughput per dataset, both fine for an MME's per-dataset traffic; at sustained thousands of
  requests a second per dataset Firehose to Parquet becomes the cheaper store.

Standard library (and boto3 for DynamoDB, imported on use): the invoker Lambda ships this file.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

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


def _wanted(record: InferenceRecord, include_smoke: bool) -> bool:
    return include_smoke or record.purpose != PURPOSE_SMOKE


# -- local: SQLite -----------------------------------------------------------------------------

_COLUMNS = [f.name for f in fields(InferenceRecord)]
# Columns added since the first release, which an older file lacks: the writer adds them.
_ADDED_COLUMNS = {"purpose": f"purpose TEXT NOT NULL DEFAULT '{PURPOSE_TRAFFIC}'"}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS inference_log (
    request_id TEXT NOT NULL,
    time REAL NOT NULL,
    stage TEXT NOT NULL,
    dataset TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    content_type TEXT NOT NULL,
    inputs TEXT,
    outputs TEXT,
    target_model TEXT NOT NULL,
    model_package_version INTEGER,
    model_version TEXT NOT NULL,
    error TEXT NOT NULL,
    {_ADDED_COLUMNS["purpose"]}
);
CREATE INDEX IF NOT EXISTS inference_log_by_dataset ON inference_log (stage, dataset, time);
-- Expiry deletes by time alone, after every batch: without this it would scan the table.
CREATE INDEX IF NOT EXISTS inference_log_by_time ON inference_log (time);
"""


def local_log_path(home: Path) -> Path:
    return home / "inference.sqlite"


class SQLiteSink:
    """The local store. Opened by the writer thread on first write (sqlite3 connections stay in
    the thread that made them); rows older than `ttl_days` are removed as the table grows."""

    def __init__(self, path: Path, ttl_days: float = DEFAULT_TTL_DAYS) -> None:
        self.path = path
        self.ttl_days = ttl_days
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=1.0)
            connection.execute("PRAGMA journal_mode=WAL")  # readers (the drift job) never block
            connection.executescript(_SCHEMA)
            _add_missing_columns(connection)
            self._connection = connection
        return self._connection

    def write(self, records: Sequence[InferenceRecord]) -> int:
        connection = self._connect()
        fitted = [fit_for_store(r) for r in records]
        placeholders = ", ".join("?" for _ in _COLUMNS)
        try:
            with connection:
                connection.executemany(
                    f"INSERT INTO inference_log ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                    [tuple(getattr(r, name) for name in _COLUMNS) for r in fitted],
                )
                connection.execute(
                    "DELETE FROM inference_log WHERE time < ?",
                    (time.time() - self.ttl_days * 86_400,),
                )
        except sqlite3.Error:
            # A broken connection is not reused: the next batch reopens the file.
            self._connection = None
            connection.close()
            raise
        return 0


def _table_columns(connection: sqlite3.Connection) -> set[str]:
    return {row[1] for row in connection.execute("PRAGMA table_info(inference_log)")}


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Bring a file written by an older version up to the current schema."""
    # Immediate: two processes opening the same old file must not both add a column.
    connection.execute("BEGIN IMMEDIATE")
    try:
        present = _table_columns(connection)
        for name, definition in _ADDED_COLUMNS.items():
            if name not in present:
                connection.execute(f"ALTER TABLE inference_log ADD COLUMN {definition}")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise


def read_local(
    path: Path,
    stage: str,
    dataset: str,
    since: float,
    until: float | None = None,
    *,
    include_errors: bool = False,
    include_smoke: bool = False,
) -> Iterator[InferenceRecord]:
    """The successful real-traffic invocations of a dataset in a stage from `since` (epoch
    seconds) on; with `include_errors` the refused and failed ones too, with `include_smoke` the
    smoke tests' too."""
    if not path.is_file():
        return
    status = "" if include_errors else "AND status = 200 "
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        # Read-only, so an older file is read as it is: a column it lacks takes the default.
        present = _table_columns(connection)
        columns = [name for name in _COLUMNS if name in present]
        rows = connection.execute(
            f"SELECT {', '.join(columns)} FROM inference_log "
            f"WHERE stage = ? AND dataset = ? {status}AND time >= ? AND time < ? "
            "ORDER BY time",
            (stage, dataset, since, until if until is not None else float("inf")),
        )
        for row in rows:
            record = InferenceRecord(**dict(zip(columns, row, strict=True)))
            if _wanted(record, include_smoke):
                yield record
    finally:
        connection.close()


# -- AWS: DynamoDB -----------------------------------------------------------------------------
#
# Item: pk = dataset ("-" when unreadable), sk = "<epoch ms, 13 digits>#<request id>" (time
# order within a dataset), every record field as an attribute (an item written before a field
# existed lacks it, and reads back with the field's default), and `expires_at` (epoch seconds)
# for the table's TTL.


def _attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    return {"S": str(value)}


def _value(attribute: dict[str, Any]) -> Any:
    if "NULL" in attribute:
        return None
    if "N" in attribute:
        text = attribute["N"]
        return float(text) if any(c in text for c in ".eE") else int(text)
    if "BOOL" in attribute:
        return attribute["BOOL"]
    return attribute["S"]


def dynamodb_item(entry: InferenceRecord, ttl_days: float) -> dict[str, Any]:
    item = {name: _attribute(getattr(entry, name)) for name in _COLUMNS}
    item["pk"] = {"S": entry.dataset or "-"}
    item["sk"] = {"S": f"{int(entry.time * 1000):013d}#{entry.request_id}"}
    item["iso_time"] = {"S": entry.iso_time}
    item["expires_at"] = {"N": str(int(entry.time + ttl_days * 86_400))}
    return item


class DynamoDBSink:
    def __init__(self, table: str, client: Any, ttl_days: float = DEFAULT_TTL_DAYS) -> None:
        self.table = table
        self.client = client
        self.ttl_days = ttl_days

    def write(self, records: Sequence[InferenceRecord]) -> int:
        requests = [
            {"PutRequest": {"Item": dynamodb_item(fit_for_store(r), self.ttl_days)}}
            for r in records
        ]
        unprocessed = self.client.batch_write_item(RequestItems={self.table: requests}).get(
            "UnprocessedItems", {}
        )
        pending = unprocessed.get(self.table, [])
        if pending:
            # One retry for throttled items; the writer must keep up with the invoker.
            retry = self.client.batch_write_item(RequestItems={self.table: pending})
            pending = retry.get("UnprocessedItems", {}).get(self.table, [])
        return len(pending)


def dynamodb_client(timeout_seconds: float = 1.0) -> Any:
    """A client that gives up fast: a slow store must not back the queue up for long."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        config=Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


def read_dynamodb(
    client: Any,
    table: str,
    dataset: str,
    since: float,
    until: float | None = None,
    *,
    include_errors: bool = False,
    include_smoke: bool = False,
) -> Iterator[InferenceRecord]:
    """The successful real-traffic invocations of a dataset from `since` on, in time order;
    with `include_errors` the refused and failed ones too, with `include_smoke` the smoke tests'
    too."""
    upper = f"{int((until if until is not None else 9_999_999_999) * 1000):013d}#~"
    arguments: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :dataset AND sk BETWEEN :since AND :until",
        "FilterExpression": "#status = :ok",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {
            ":dataset": {"S": dataset},
            ":since": {"S": f"{int(since * 1000):013d}#"},
            ":until": {"S": upper},
            ":ok": {"N": "200"},
        },
    }
    if include_errors:
        del arguments["FilterExpression"], arguments["ExpressionAttributeNames"]
        del arguments["ExpressionAttributeValues"][":ok"]
    while True:
        page = client.query(**arguments)
        for item in page.get("Items", []):
            record = InferenceRecord(
                **{name: _value(item[name]) for name in _COLUMNS if name in item}
            )
            if _wanted(record, include_smoke):
                yield record
        if "LastEvaluatedKey" not in page:
            return
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
