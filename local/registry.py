"""The local model registry: SageMaker's model package groups and versions in SQLite.

Fields and approval states mirror SageMaker's (`PendingManualApproval`, `Approved`,
`Rejected`). Every registration and approval change is recorded as a "SageMaker Model Package
State Change" event, in the same transaction as the change itself, and handed to subscribers, so
deployment hooks onto approvals the way EventBridge does on AWS. Versions are assigned inside an
immediate transaction: concurrent registrations never share a version, and concurrent approvals
of the same version emit one event.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from container.errors import InputError

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
APPROVAL_STATUSES: tuple[ApprovalStatus, ...] = ("PendingManualApproval", "Approved", "Rejected")
EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"
LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "local"
DEFAULT_BUSY_TIMEOUT_SECONDS = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_package_groups (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    creation_time TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS model_packages (
    arn TEXT PRIMARY KEY,
    group_name TEXT NOT NULL REFERENCES model_package_groups(name),
    version INTEGER NOT NULL,
    approval_status TEXT NOT NULL,
    approval_description TEXT NOT NULL DEFAULT '',
    model_data_url TEXT NOT NULL,
    image_uri TEXT NOT NULL DEFAULT '',
    model_metrics TEXT NOT NULL DEFAULT '{}',
    customer_metadata TEXT NOT NULL DEFAULT '{}',
    content_types TEXT NOT NULL DEFAULT '[]',
    response_types TEXT NOT NULL DEFAULT '[]',
    inference_instance_types TEXT NOT NULL DEFAULT '[]',
    creation_time TEXT NOT NULL,
    last_modified_time TEXT NOT NULL,
    UNIQUE (group_name, version)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    detail_type TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


class RegistryError(InputError):
    """The registry cannot do what was asked (unknown version, corrupt or locked database)."""


@dataclass(frozen=True)
class ModelPackage:
    arn: str
    group_name: str
    version: int
    approval_status: ApprovalStatus
    approval_description: str
    model_data_url: str
    image_uri: str
    model_metrics: dict[str, Any]
    customer_metadata: dict[str, str]
    content_types: list[str]
    response_types: list[str]
    inference_instance_types: list[str]
    creation_time: str
    last_modified_time: str


@dataclass(frozen=True)
class StateChangeEvent:
    """The `detail` of EventBridge's "SageMaker Model Package State Change" event."""

    id: int
    time: str
    detail: dict[str, Any] = field(hash=False)

    @property
    def group_name(self) -> str:
        return self.detail["ModelPackageGroupName"]

    @property
    def approval_status(self) -> str:
        return self.detail["ModelApprovalStatus"]


Subscriber = Callable[[StateChangeEvent], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def package_arn(group: str, version: int) -> str:
    return f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:model-package/{group}/{version}"


def _row_to_package(row: sqlite3.Row) -> ModelPackage:
    return ModelPackage(
        arn=row["arn"],
        group_name=row["group_name"],
        version=row["version"],
        approval_status=row["approval_status"],
        approval_description=row["approval_description"],
        model_data_url=row["model_data_url"],
        image_uri=row["image_uri"],
        model_metrics=json.loads(row["model_metrics"]),
        customer_metadata=json.loads(row["customer_metadata"]),
        content_types=json.loads(row["content_types"]),
        response_types=json.loads(row["response_types"]),
        inference_instance_types=json.loads(row["inference_instance_types"]),
        creation_time=row["creation_time"],
        last_modified_time=row["last_modified_time"],
    )


class LocalModelRegistry:
    def __init__(self, path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._subscribers: list[Subscriber] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: writers queue on the database lock instead of colliding."""
        try:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise RegistryError(f"cannot open the registry: {error}", file=self.path) from None
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if "locked" in str(error) or "busy" in str(error):
                raise RegistryError(
                    f"the registry is locked by another process (waited {self.busy_timeout:g} s)",
                    file=self.path,
                ) from None
            raise RegistryError(f"registry error: {error}", file=self.path) from None
        except sqlite3.DatabaseError as error:
            raise RegistryError(
                f"the registry database is corrupt or not a registry ({error}); move it aside to "
                "start a new one",
                file=self.path,
            ) from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _record_event(self, db: sqlite3.Connection, package: ModelPackage) -> StateChangeEvent:
        detail = {
            "ModelPackageGroupName": package.group_name,
            "ModelPackageVersion": package.version,
            "ModelPackageArn": package.arn,
            "ModelApprovalStatus": package.approval_status,
            "ApprovalDescription": package.approval_description,
            "ModelDataUrl": package.model_data_url,
        }
        when = _now()
        cursor = db.execute(
            "INSERT INTO events (time, detail_type, detail) VALUES (?, ?, ?)",
            (when, EVENT_DETAIL_TYPE, json.dumps(detail)),
        )
        return StateChangeEvent(int(cursor.lastrowid or 0), when, detail)

    def _publish(self, event: StateChangeEvent) -> None:
        for subscriber in self._subscribers:
            subscriber(event)

    def create_group(self, name: str, description: str = "") -> None:
        """Idempotent, like the project template's pre-created groups."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO model_package_groups (name, description, creation_time) "
                "VALUES (?, ?, ?)",
                (name, description, _now()),
            )

    def register(
        self,
        group: str,
        model_data_url: str,
        *,
        approval_status: ApprovalStatus = "PendingManualApproval",
        image_uri: str = "",
        model_metrics: dict[str, Any] | None = None,
        customer_metadata: dict[str, str] | None = None,
        content_types: list[str] | None = None,
        response_types: list[str] | None = None,
        inference_instance_types: list[str] | None = None,
    ) -> ModelPackage:
        _check_status(approval_status)
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO model_package_groups (name, description, creation_time) "
                "VALUES (?, '', ?)",
                (group, _now()),
            )
            (latest,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM model_packages WHERE group_name = ?",
                (group,),
            ).fetchone()
            version = int(latest) + 1
            now = _now()
            db.execute(
                "INSERT INTO model_packages (arn, group_name, version, approval_status, "
                "model_data_url, image_uri, model_metrics, customer_metadata, content_types, "
                "response_types, inference_instance_types, creation_time, last_modified_time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    package_arn(group, version),
                    group,
                    version,
                    approval_status,
                    model_data_url,
                    image_uri,
                    json.dumps(model_metrics or {}),
                    json.dumps(customer_metadata or {}),
                    json.dumps(content_types or []),
                    json.dumps(response_types or []),
                    json.dumps(inference_instance_types or []),
                    now,
                    now,
                ),
            )
            package = self._get(db, group, version)
            event = self._record_event(db, package)
        self._publish(event)
        return package

    def _get(self, db: sqlite3.Connection, group: str, version: int) -> ModelPackage:
        row = db.execute(
            "SELECT * FROM model_packages WHERE group_name = ? AND version = ?", (group, version)
        ).fetchone()
        if row is None:
            raise RegistryError(f"model package group '{group}' has no version {version}")
        return _row_to_package(row)

    def get(self, group: str, version: int) -> ModelPackage:
        with self._transaction() as db:
            return self._get(db, group, version)

    def list_packages(
        self,
        group: str | None = None,
        approval_status: ApprovalStatus | None = None,
        descending: bool = True,
    ) -> list[ModelPackage]:
        """Like ListModelPackages sorted by CreationTime (version order is creation order)."""
        clauses, values = [], []
        if group is not None:
            clauses.append("group_name = ?")
            values.append(group)
        if approval_status is not None:
            _check_status(approval_status)
            clauses.append("approval_status = ?")
            values.append(approval_status)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if descending else "ASC"
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT * FROM model_packages {where} ORDER BY group_name, version {order}",
                values,
            ).fetchall()
        return [_row_to_package(row) for row in rows]

    def list_groups(self) -> list[str]:
        with self._transaction() as db:
            rows = db.execute("SELECT name FROM model_package_groups ORDER BY name").fetchall()
        return [row["name"] for row in rows]

    def update_approval(
        self, group: str, version: int, status: ApprovalStatus, description: str = ""
    ) -> ModelPackage:
        """Change a version's approval status; setting the status it already has is a no-op."""
        _check_status(status)
        event = None
        with self._transaction() as db:
            current = self._get(db, group, version)
            if current.approval_status != status:
                db.execute(
                    "UPDATE model_packages SET approval_status = ?, approval_description = ?, "
                    "last_modified_time = ? WHERE group_name = ? AND version = ?",
                    (status, description, _now(), group, version),
                )
                current = self._get(db, group, version)
                event = self._record_event(db, current)
        if event is not None:
            self._publish(event)
        return current

    def events(self, after_id: int = 0) -> list[StateChangeEvent]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, time, detail FROM events WHERE id > ? ORDER BY id", (after_id,)
            ).fetchall()
        return [StateChangeEvent(row["id"], row["time"], json.loads(row["detail"])) for row in rows]


def _check_status(status: str) -> None:
    if status not in APPROVAL_STATUSES:
        raise RegistryError(
            f"approval status {status!r} is not one of {', '.join(APPROVAL_STATUSES)}"
        )
