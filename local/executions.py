"""Pipeline executions and their steps, as ListPipelineExecutions/ListPipelineExecutionSteps show.

One JSON document per execution (`executions/<id>/execution.json`, replaced atomically after
every step), beside the definition it ran and its jobs' logs, so an execution can be read while
it runs and a crash never leaves half a record.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from container.errors import InputError
from container.files import write_atomically

Status = Literal["Executing", "Succeeded", "Failed", "Stopped"]
RECORD_FILE = "execution.json"
DEFINITION_FILE = "definition.json"
_ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 12  # like SageMaker's pipeline execution ids


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _seconds(started: str | None, ended: str | None) -> float | None:
    if not started or not ended:
        return None
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()


@dataclass
class StepRecord:
    name: str
    type: str
    status: Status
    started: str
    ended: str | None = None
    failure_reason: str | None = None
    # What a Describe* call on the step's job returns; later steps `Get` from it.
    properties: dict[str, Any] = field(default_factory=dict)
    property_files: dict[str, str] = field(default_factory=dict)  # name -> s3:// URI
    outputs: list[str] = field(default_factory=list)  # s3:// objects or prefixes it wrote
    logs: list[str] = field(default_factory=list)  # job logs, relative to the execution dir
    metadata: dict[str, Any] = field(default_factory=dict)
    cache_key: str | None = None
    cached_from: str | None = None  # the execution whose run of this step was reused

    @property
    def seconds(self) -> float | None:
        return _seconds(self.started, self.ended)


@dataclass
class ExecutionRecord:
    id: str
    pipeline: str
    status: Status
    started: str
    parameters: dict[str, Any]
    ended: str | None = None
    failure_reason: str | None = None
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return _seconds(self.started, self.ended)

    def step(self, name: str) -> StepRecord | None:
        return next((s for s in self.steps if s.name == name), None)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExecutionRecord:
        known = {f.name for f in fields(StepRecord)}
        steps = [StepRecord(**{k: v for k, v in s.items() if k in known}) for s in raw["steps"]]
        return cls(**{**raw, "steps": steps})


class ExecutionStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def new_id(self) -> str:
        while True:
            candidate = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
            if not (self.root / candidate).exists():
                return candidate

    def directory(self, execution_id: str) -> Path:
        return self.root / execution_id

    def save(self, record: ExecutionRecord) -> None:
        write_atomically(
            self.directory(record.id) / RECORD_FILE, json.dumps(asdict(record), indent=2).encode()
        )

    def _read(self, path: Path) -> ExecutionRecord:
        try:
            return ExecutionRecord.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"unreadable execution record ({error})", file=path) from None

    def load(self, execution_id: str) -> ExecutionRecord:
        """An execution by id, or by a prefix of its id that names one execution."""
        matches = (
            sorted(p for p in self.root.glob(f"{execution_id}*/{RECORD_FILE}"))
            if execution_id and all(c in _ID_ALPHABET for c in execution_id)
            else []
        )
        if not matches:
            raise InputError(f"no pipeline execution '{execution_id}' (see `mme executions`)")
        if len(matches) > 1:
            names = ", ".join(p.parent.name for p in matches[:5])
            raise InputError(f"execution id '{execution_id}' is ambiguous: {names}")
        return self._read(matches[0])

    def list(self, pipeline: str | None = None) -> list[ExecutionRecord]:
        """Newest first. A record that cannot be read is left out rather than hiding the rest."""
        records = []
        for path in self.root.glob(f"*/{RECORD_FILE}"):
            try:
                record = self._read(path)
            except InputError:
                continue
            if pipeline is None or record.pipeline == pipeline:
                records.append(record)
        return sorted(records, key=lambda r: r.started, reverse=True)

    def cache_candidates(self, pipeline: str, step: str, key: str) -> list[tuple[str, StepRecord]]:
        """(execution id, step) of earlier successful runs of a step with this cache key that
        were not cache hits themselves, newest first."""
        found = []
        for record in self.list(pipeline):
            previous = record.step(step)
            if (
                previous is not None
                and previous.status == "Succeeded"
                and previous.cache_key == key
                and previous.cached_from is None
            ):
                found.append((record.id, previous))
        return found
