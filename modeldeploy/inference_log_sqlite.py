"""The local inference log store: `<home>/inference.sqlite`, an embedded SQLite database,
written by `SQLiteSink` (behind `modeldeploy.inference_log.BackgroundLog`) and read by
`read_local`. The record format is `modeldeploy.inference_log`'s; standard library only."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from modeldeploy.inference_log import (
    DEFAULT_TTL_DAYS,
    PURPOSE_TRAFFIC,
    RECORD_FIELDS,
    InferenceRecord,
    fit_for_store,
    wanted,
)

# -- local: SQLite -----------------------------------------------------------------------------

# Columns added since the first release, which an older file lacks: the writer adds them.
_ADDEDRECORD_FIELDS = {"purpose": f"purpose TEXT NOT NULL DEFAULT '{PURPOSE_TRAFFIC}'"}
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
    {_ADDEDRECORD_FIELDS["purpose"]}
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
        placeholders = ", ".join("?" for _ in RECORD_FIELDS)
        try:
            with connection:
                connection.executemany(
                    f"INSERT INTO inference_log ({', '.join(RECORD_FIELDS)}) VALUES ({placeholders})",
                    [tuple(getattr(r, name) for name in RECORD_FIELDS) for r in fitted],
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
        for name, definition in _ADDEDRECORD_FIELDS.items():
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
        columns = [name for name in RECORD_FIELDS if name in present]
        rows = connection.execute(
            f"SELECT {', '.join(columns)} FROM inference_log "
            f"WHERE stage = ? AND dataset = ? {status}AND time >= ? AND time < ? "
            "ORDER BY time",
            (stage, dataset, since, until if until is not None else float("inf")),
        )
        for row in rows:
            record = InferenceRecord(**dict(zip(columns, row, strict=True)))
            if wanted(record, include_smoke):
                yield record
    finally:
        connection.close()
